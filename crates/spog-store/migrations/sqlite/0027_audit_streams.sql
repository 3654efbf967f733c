-- Audit streams (SPEC 3.5): an account's chain sent to a SIEM or archive. A stream is a cursor
-- over the chain's seq (`delivered_seq`) held under a lease whose epoch fences a lapsed holder
-- out of writing it. `next_from_seq` is where the next batch's range starts: it stays behind
-- `delivered_seq` while the entries after it matched no filter, so they fold into the next
-- batch and receivers still see contiguous ranges.

CREATE TABLE audit_streams (
    id                    TEXT PRIMARY KEY,
    account_id            TEXT NOT NULL REFERENCES accounts (id),
    name                  TEXT NOT NULL,
    -- The sink as reads show it (secret values left out); `sink_secrets` holds them sealed.
    sink                  TEXT NOT NULL,
    sink_secrets          TEXT NOT NULL,
    format                TEXT NOT NULL,
    filter                TEXT NOT NULL,
    batch                 TEXT NOT NULL,
    include_snapshots     BIGINT NOT NULL,
    paused                BIGINT NOT NULL,
    delivered_seq         BIGINT NOT NULL,
    next_from_seq         BIGINT NOT NULL,
    -- The end of a failed batch's range: the retry covers the same range.
    retry_to_seq          BIGINT,
    last_delivered_at     BIGINT,
    last_error            TEXT,
    last_error_at         BIGINT,
    failing_since         BIGINT,
    consecutive_failures  BIGINT NOT NULL DEFAULT 0,
    next_attempt_at       BIGINT,
    entries_sent          BIGINT NOT NULL DEFAULT 0,
    bytes_sent            BIGINT NOT NULL DEFAULT 0,
    failing_notified      BIGINT NOT NULL DEFAULT 0,
    lease_holder          TEXT,
    lease_until           BIGINT,
    lease_epoch           BIGINT NOT NULL DEFAULT 0,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL,
    UNIQUE (account_id, name)
);
CREATE INDEX audit_streams_account ON audit_streams (account_id, id);

-- Batch attempts, the last 1,000 per stream kept.
CREATE TABLE audit_stream_attempts (
    id           TEXT PRIMARY KEY,
    stream_id    TEXT NOT NULL REFERENCES audit_streams (id) ON DELETE CASCADE,
    account_id   TEXT NOT NULL,
    from_seq     BIGINT,
    to_seq       BIGINT,
    entries      BIGINT NOT NULL,
    bytes        BIGINT NOT NULL,
    success      BIGINT NOT NULL,
    status_code  BIGINT,
    error        TEXT,
    duration_ms  BIGINT NOT NULL,
    at           BIGINT NOT NULL
);
CREATE INDEX audit_stream_attempts_stream ON audit_stream_attempts (stream_id, id);
