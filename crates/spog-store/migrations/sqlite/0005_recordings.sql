-- Session recordings (SPEC 8). The recorded bytes live in files under the data directory
-- (`file_path`, relative to it); these rows say whose they are, on which host, and how far
-- they have grown. A terminal recording and its session are one row: the session is the
-- recording while `ended_at` is NULL.

CREATE TABLE terminal_recordings (
    id                TEXT PRIMARY KEY,
    session_id        TEXT NOT NULL UNIQUE,
    account_id        TEXT NOT NULL REFERENCES accounts (id),
    organization_id   TEXT NOT NULL REFERENCES organizations (id),
    host_id           TEXT NOT NULL REFERENCES hosts (id),
    user_id           TEXT NOT NULL,
    user_email        TEXT NOT NULL,
    shell             TEXT NOT NULL,
    width             BIGINT NOT NULL,
    height            BIGINT NOT NULL,
    started_at        BIGINT NOT NULL,
    ended_at          BIGINT,
    end_reason        TEXT,
    -- When the source last sent anything; the scheduler ends sessions silent for too long.
    last_activity_at  BIGINT NOT NULL,
    duration_micros   BIGINT NOT NULL DEFAULT 0,
    bytes_in          BIGINT NOT NULL DEFAULT 0,
    bytes_out         BIGINT NOT NULL DEFAULT 0,
    event_count       BIGINT NOT NULL DEFAULT 0,
    file_path         TEXT NOT NULL
);
CREATE INDEX terminal_recordings_list ON terminal_recordings (account_id, id);
CREATE INDEX terminal_recordings_host ON terminal_recordings (account_id, host_id, id);
CREATE INDEX terminal_recordings_active ON terminal_recordings (last_activity_at) WHERE ended_at IS NULL;

CREATE TABLE desktop_recordings (
    id                TEXT PRIMARY KEY,
    account_id        TEXT NOT NULL REFERENCES accounts (id),
    organization_id   TEXT NOT NULL REFERENCES organizations (id),
    host_id           TEXT NOT NULL REFERENCES hosts (id),
    user_id           TEXT NOT NULL,
    user_email        TEXT NOT NULL,
    width             BIGINT NOT NULL,
    height            BIGINT NOT NULL,
    started_at        BIGINT NOT NULL,
    ended_at          BIGINT,
    end_reason        TEXT,
    last_activity_at  BIGINT NOT NULL,
    duration_ms       BIGINT NOT NULL DEFAULT 0,
    frame_count       BIGINT NOT NULL DEFAULT 0,
    total_bytes       BIGINT NOT NULL DEFAULT 0,
    file_path         TEXT NOT NULL
);
CREATE INDEX desktop_recordings_list ON desktop_recordings (account_id, id);
CREATE INDEX desktop_recordings_host ON desktop_recordings (account_id, host_id, id);
CREATE INDEX desktop_recordings_active ON desktop_recordings (last_activity_at) WHERE ended_at IS NULL;
