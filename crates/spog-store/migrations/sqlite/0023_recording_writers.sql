-- The instance writing each active recording (SPEC 8.3, 13.4): reads of an active recording
-- on another instance are relayed from it. Null for recordings started before this.
ALTER TABLE terminal_recordings ADD COLUMN instance_id TEXT;
ALTER TABLE desktop_recordings ADD COLUMN instance_id TEXT;
