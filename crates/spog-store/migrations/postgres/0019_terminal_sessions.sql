-- Terminal sessions that spog relays itself (SPEC 13): where a session started, as whom it
-- runs on the host, from where, and how its shell exited. Sessions streamed through the
-- ingest API are `api`. A session that started on the host (`spog-agent shell`) has no spog
-- user, and is found again by its agent's key when the agent uploads the rest of it later.

ALTER TABLE terminal_recordings ADD COLUMN origin TEXT NOT NULL DEFAULT 'api';
ALTER TABLE terminal_recordings ADD COLUMN os_user TEXT;
ALTER TABLE terminal_recordings ADD COLUMN client_addr TEXT;
ALTER TABLE terminal_recordings ADD COLUMN exit_code BIGINT;
ALTER TABLE terminal_recordings ADD COLUMN source_key TEXT;
ALTER TABLE terminal_recordings ALTER COLUMN user_id DROP NOT NULL;
CREATE INDEX terminal_recordings_source ON terminal_recordings (host_id, source_key)
    WHERE source_key IS NOT NULL;

-- `terminal.connect` is the built-in admin role's like every permission (SPEC 11.1).
UPDATE roles SET permissions = permissions || ',terminal.connect'
    WHERE builtin = 1 AND name = 'admin' AND permissions NOT LIKE '%terminal.connect%';

-- The instances of a cluster and where their peers reach them (SPEC 13.4): the instance
-- holding a host's agent relays terminals opened on another; each refreshes its row every 10 s.
CREATE TABLE cluster_instances (
    instance_id  TEXT PRIMARY KEY,
    cluster_url  TEXT NOT NULL,
    seen_at      BIGINT NOT NULL
);
