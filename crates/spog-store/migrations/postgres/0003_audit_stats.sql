-- Audit statistics and checkpoints (SPEC 3.3, 3.4).

-- Per-day counts by dimension, maintained by the chain linker as it links entries, so that
-- statistics read a few hundred rows instead of scanning the trail.
CREATE TABLE audit_daily_counts (
    account_id  TEXT COLLATE "C" NOT NULL,
    day         BIGINT NOT NULL,
    dimension   TEXT NOT NULL,
    value       TEXT NOT NULL,
    label       TEXT,
    count       BIGINT NOT NULL,
    PRIMARY KEY (account_id, day, dimension, value)
);

-- Signed statements of a chain's head (SPEC 3.4).
CREATE TABLE audit_checkpoints (
    id          TEXT COLLATE "C" PRIMARY KEY,
    account_id  TEXT COLLATE "C" NOT NULL,
    seq         BIGINT NOT NULL,
    head_hash   TEXT NOT NULL,
    signed_at   BIGINT NOT NULL,
    key_id      TEXT NOT NULL,
    signature   TEXT NOT NULL,
    UNIQUE (account_id, seq)
);
