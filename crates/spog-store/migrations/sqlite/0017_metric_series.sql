-- Metrics as a stored series (SPEC 12.4). A series is (host, metric, labels); its samples are
-- kept raw for `metrics_raw_retention` and as one-minute rollups for `metrics_retention`.
-- Everything hangs off the host: deleting it deletes its series, samples and rollups.

CREATE TABLE metric_series (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    host_id     TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    metric      TEXT NOT NULL,
    -- Canonical JSON of the labels sorted by key, `{}` when none.
    labels      TEXT NOT NULL,
    -- The newest sample (never moved back by a late one).
    last_value  DOUBLE PRECISION NOT NULL,
    last_at     BIGINT NOT NULL,
    UNIQUE (host_id, metric, labels)
);
-- A metric's silent series (metric rules' no-data checks: metric, then `last_at` below a
-- cutoff). Neither host nor account leads, so that a host's own lookups can only take the
-- unique index above: with the account leading, SQLite without statistics read every series
-- of the account for each batch a host sent.
CREATE INDEX metric_series_metric ON metric_series (metric, last_at, account_id);
-- Pruning finds series silent for longer than the retention.
CREATE INDEX metric_series_last_at ON metric_series (last_at);

-- Raw samples, keyed by series and time: a re-sent sample counts once. Stored in key order
-- (WITHOUT ROWID), so a series' range is one contiguous read.
CREATE TABLE metric_samples (
    series_id  TEXT NOT NULL REFERENCES metric_series (id) ON DELETE CASCADE,
    at         BIGINT NOT NULL,
    value      DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (series_id, at)
) WITHOUT ROWID;
-- Pruning walks samples by age.
CREATE INDEX metric_samples_at ON metric_samples (at);

-- One row per series and UTC minute (`minute` is its start, in µs).
CREATE TABLE metric_rollups (
    series_id  TEXT NOT NULL REFERENCES metric_series (id) ON DELETE CASCADE,
    minute     BIGINT NOT NULL,
    value_sum  DOUBLE PRECISION NOT NULL,
    value_min  DOUBLE PRECISION NOT NULL,
    value_max  DOUBLE PRECISION NOT NULL,
    samples    BIGINT NOT NULL,
    PRIMARY KEY (series_id, minute)
) WITHOUT ROWID;
CREATE INDEX metric_rollups_minute ON metric_rollups (minute);
