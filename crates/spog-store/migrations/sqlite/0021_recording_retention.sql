-- no-transaction
-- Retention, deletion and legal holds of recordings (SPEC 8.3). A recording outlives its host:
-- it keeps the host's id and hostname, so its reference to `hosts` goes, and SQLite can drop a
-- reference only by rebuilding the table. The rebuild follows SQLite's own procedure (foreign
-- keys off around one transaction), so rows of other tables that refer to a recording
-- (ON DELETE CASCADE) are not deleted with the old table.

PRAGMA foreign_keys = OFF;
BEGIN;

CREATE TABLE terminal_recordings_v3 (
    id                 TEXT PRIMARY KEY,
    session_id         TEXT NOT NULL UNIQUE,
    account_id         TEXT NOT NULL REFERENCES accounts (id),
    organization_id    TEXT NOT NULL REFERENCES organizations (id),
    host_id            TEXT NOT NULL,
    hostname           TEXT NOT NULL,
    user_id            TEXT,
    user_email         TEXT NOT NULL,
    shell              TEXT NOT NULL,
    width              BIGINT NOT NULL,
    height             BIGINT NOT NULL,
    started_at         BIGINT NOT NULL,
    ended_at           BIGINT,
    end_reason         TEXT,
    last_activity_at   BIGINT NOT NULL,
    duration_micros    BIGINT NOT NULL DEFAULT 0,
    bytes_in           BIGINT NOT NULL DEFAULT 0,
    bytes_out          BIGINT NOT NULL DEFAULT 0,
    event_count        BIGINT NOT NULL DEFAULT 0,
    file_path          TEXT NOT NULL,
    origin             TEXT NOT NULL DEFAULT 'api',
    os_user            TEXT,
    client_addr        TEXT,
    exit_code          BIGINT,
    source_key         TEXT,
    legal_hold         BIGINT NOT NULL DEFAULT 0,
    legal_hold_reason  TEXT
);
INSERT INTO terminal_recordings_v3 (id, session_id, account_id, organization_id, host_id,
    hostname, user_id, user_email, shell, width, height, started_at, ended_at, end_reason,
    last_activity_at, duration_micros, bytes_in, bytes_out, event_count, file_path, origin,
    os_user, client_addr, exit_code, source_key)
SELECT r.id, r.session_id, r.account_id, r.organization_id, r.host_id,
    (SELECT h.hostname FROM hosts h WHERE h.id = r.host_id), r.user_id, r.user_email, r.shell,
    r.width, r.height, r.started_at, r.ended_at, r.end_reason, r.last_activity_at,
    r.duration_micros, r.bytes_in, r.bytes_out, r.event_count, r.file_path, r.origin, r.os_user,
    r.client_addr, r.exit_code, r.source_key
FROM terminal_recordings r;
DROP TABLE terminal_recordings;
ALTER TABLE terminal_recordings_v3 RENAME TO terminal_recordings;
CREATE INDEX terminal_recordings_list ON terminal_recordings (account_id, id);
CREATE INDEX terminal_recordings_host ON terminal_recordings (account_id, host_id, id);
CREATE INDEX terminal_recordings_active ON terminal_recordings (last_activity_at) WHERE ended_at IS NULL;
CREATE INDEX terminal_recordings_active_by_account ON terminal_recordings (account_id) WHERE ended_at IS NULL;
CREATE INDEX terminal_recordings_source ON terminal_recordings (host_id, source_key) WHERE source_key IS NOT NULL;
-- The retention job's walk: an account's ended recordings, oldest first.
CREATE INDEX terminal_recordings_ended ON terminal_recordings (account_id, ended_at) WHERE ended_at IS NOT NULL;

CREATE TABLE desktop_recordings_v2 (
    id                 TEXT PRIMARY KEY,
    account_id         TEXT NOT NULL REFERENCES accounts (id),
    organization_id    TEXT NOT NULL REFERENCES organizations (id),
    host_id            TEXT NOT NULL,
    hostname           TEXT NOT NULL,
    user_id            TEXT NOT NULL,
    user_email         TEXT NOT NULL,
    width              BIGINT NOT NULL,
    height             BIGINT NOT NULL,
    started_at         BIGINT NOT NULL,
    ended_at           BIGINT,
    end_reason         TEXT,
    last_activity_at   BIGINT NOT NULL,
    duration_ms        BIGINT NOT NULL DEFAULT 0,
    frame_count        BIGINT NOT NULL DEFAULT 0,
    total_bytes        BIGINT NOT NULL DEFAULT 0,
    file_path          TEXT NOT NULL,
    legal_hold         BIGINT NOT NULL DEFAULT 0,
    legal_hold_reason  TEXT
);
INSERT INTO desktop_recordings_v2 (id, account_id, organization_id, host_id, hostname, user_id,
    user_email, width, height, started_at, ended_at, end_reason, last_activity_at, duration_ms,
    frame_count, total_bytes, file_path)
SELECT r.id, r.account_id, r.organization_id, r.host_id,
    (SELECT h.hostname FROM hosts h WHERE h.id = r.host_id), r.user_id, r.user_email, r.width,
    r.height, r.started_at, r.ended_at, r.end_reason, r.last_activity_at, r.duration_ms,
    r.frame_count, r.total_bytes, r.file_path
FROM desktop_recordings r;
DROP TABLE desktop_recordings;
ALTER TABLE desktop_recordings_v2 RENAME TO desktop_recordings;
CREATE INDEX desktop_recordings_list ON desktop_recordings (account_id, id);
CREATE INDEX desktop_recordings_host ON desktop_recordings (account_id, host_id, id);
CREATE INDEX desktop_recordings_active ON desktop_recordings (last_activity_at) WHERE ended_at IS NULL;
CREATE INDEX desktop_recordings_active_by_account ON desktop_recordings (account_id) WHERE ended_at IS NULL;
CREATE INDEX desktop_recordings_ended ON desktop_recordings (account_id, ended_at) WHERE ended_at IS NOT NULL;

-- An account's recording settings; no row: the service's defaults.
CREATE TABLE recording_settings (
    account_id      TEXT PRIMARY KEY REFERENCES accounts (id),
    retention_days  BIGINT,
    updated_at      BIGINT NOT NULL
);

-- `session_recordings.manage` is the built-in admin role's like every permission (SPEC 11.1).
UPDATE roles SET permissions = permissions || ',session_recordings.manage'
    WHERE builtin = 1 AND name = 'admin' AND permissions NOT LIKE '%session_recordings.manage%';

-- Retention of failed deliveries, resolved alerts and notifications walks them by age.
CREATE INDEX deliveries_failed_completed ON deliveries (completed_at) WHERE status = 'failed';
CREATE INDEX alerts_resolved ON alerts (resolved_at) WHERE resolved_at IS NOT NULL;
CREATE INDEX notifications_created ON notifications (created_at);

COMMIT;
PRAGMA foreign_keys = ON;
