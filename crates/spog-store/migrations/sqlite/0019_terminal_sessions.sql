-- Terminal sessions that spog relays itself (SPEC 13): where a session started, as whom it
-- runs on the host, from where, and how its shell exited. Sessions streamed through the
-- ingest API are `api`. A session that started on the host (`spog-agent shell`) has no spog
-- user, and is found again by its agent's key when the agent uploads the rest of it later.
-- SQLite cannot drop a NOT NULL, so the table is rebuilt.

CREATE TABLE terminal_recordings_v2 (
    id                TEXT PRIMARY KEY,
    session_id        TEXT NOT NULL UNIQUE,
    account_id        TEXT NOT NULL REFERENCES accounts (id),
    organization_id   TEXT NOT NULL REFERENCES organizations (id),
    host_id           TEXT NOT NULL REFERENCES hosts (id),
    user_id           TEXT,
    user_email        TEXT NOT NULL,
    shell             TEXT NOT NULL,
    width             BIGINT NOT NULL,
    height            BIGINT NOT NULL,
    started_at        BIGINT NOT NULL,
    ended_at          BIGINT,
    end_reason        TEXT,
    last_activity_at  BIGINT NOT NULL,
    duration_micros   BIGINT NOT NULL DEFAULT 0,
    bytes_in          BIGINT NOT NULL DEFAULT 0,
    bytes_out         BIGINT NOT NULL DEFAULT 0,
    event_count       BIGINT NOT NULL DEFAULT 0,
    file_path         TEXT NOT NULL,
    origin            TEXT NOT NULL DEFAULT 'api',
    os_user           TEXT,
    client_addr       TEXT,
    exit_code         BIGINT,
    source_key        TEXT
);
INSERT INTO terminal_recordings_v2 (id, session_id, account_id, organization_id, host_id,
    user_id, user_email, shell, width, height, started_at, ended_at, end_reason,
    last_activity_at, duration_micros, bytes_in, bytes_out, event_count, file_path)
SELECT id, session_id, account_id, organization_id, host_id, user_id, user_email, shell,
    width, height, started_at, ended_at, end_reason, last_activity_at, duration_micros,
    bytes_in, bytes_out, event_count, file_path FROM terminal_recordings;
DROP TABLE terminal_recordings;
ALTER TABLE terminal_recordings_v2 RENAME TO terminal_recordings;
CREATE INDEX terminal_recordings_list ON terminal_recordings (account_id, id);
CREATE INDEX terminal_recordings_host ON terminal_recordings (account_id, host_id, id);
CREATE INDEX terminal_recordings_active ON terminal_recordings (last_activity_at) WHERE ended_at IS NULL;
CREATE INDEX terminal_recordings_active_by_account ON terminal_recordings (account_id) WHERE ended_at IS NULL;
CREATE INDEX terminal_recordings_source ON terminal_recordings (host_id, source_key) WHERE source_key IS NOT NULL;

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
