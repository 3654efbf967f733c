-- Silences of alerts (SPEC 7.4). State follows from starts_at/ends_at; expiring one early
-- moves ends_at to the moment it was expired.
CREATE TABLE silences (
    id               TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL REFERENCES accounts (id),
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    matchers         TEXT NOT NULL,
    starts_at        BIGINT NOT NULL,
    ends_at          BIGINT NOT NULL,
    comment          TEXT NOT NULL,
    created_by_id    TEXT,
    created_by_email TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX silences_list ON silences (account_id, created_at, id);
CREATE INDEX silences_current ON silences (organization_id, ends_at);

-- Suppression: what silenced an alert when it fired, when it notified (NULL: never), and
-- whether it still waits for its silences to end to notify.
ALTER TABLE alerts ADD COLUMN suppressed_by TEXT NOT NULL DEFAULT '[]';
ALTER TABLE alerts ADD COLUMN notified_at BIGINT;
ALTER TABLE alerts ADD COLUMN held BIGINT NOT NULL DEFAULT 0;
CREATE INDEX alerts_held ON alerts (account_id, organization_id) WHERE held = 1;
