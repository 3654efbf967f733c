-- Sealed recordings (SPEC 8.3): once a recording ends, its content is hashed and compressed
-- into one object in the configured storage; the row keeps the hash (also in the end's audit
-- entry), the object's size and which storage holds it. All null while active, and for
-- recordings that ended before sealing (their uncompressed file stays where it was).
ALTER TABLE terminal_recordings ADD COLUMN sha256 TEXT;
ALTER TABLE terminal_recordings ADD COLUMN stored_bytes BIGINT;
ALTER TABLE terminal_recordings ADD COLUMN storage TEXT;
ALTER TABLE desktop_recordings ADD COLUMN sha256 TEXT;
ALTER TABLE desktop_recordings ADD COLUMN stored_bytes BIGINT;
ALTER TABLE desktop_recordings ADD COLUMN storage TEXT;
