-- Retention, deletion and legal holds of recordings (SPEC 8.3). A recording outlives its host:
-- it keeps the host's id and hostname, so its reference to `hosts` goes.

ALTER TABLE terminal_recordings DROP CONSTRAINT terminal_recordings_host_id_fkey;
ALTER TABLE terminal_recordings ADD COLUMN hostname TEXT;
UPDATE terminal_recordings r SET hostname = h.hostname FROM hosts h WHERE h.id = r.host_id;
ALTER TABLE terminal_recordings ALTER COLUMN hostname SET NOT NULL;
ALTER TABLE terminal_recordings ADD COLUMN legal_hold BIGINT NOT NULL DEFAULT 0;
ALTER TABLE terminal_recordings ADD COLUMN legal_hold_reason TEXT;
-- The retention job's walk: an account's ended recordings, oldest first.
CREATE INDEX terminal_recordings_ended ON terminal_recordings (account_id, ended_at) WHERE ended_at IS NOT NULL;

ALTER TABLE desktop_recordings DROP CONSTRAINT desktop_recordings_host_id_fkey;
ALTER TABLE desktop_recordings ADD COLUMN hostname TEXT;
UPDATE desktop_recordings r SET hostname = h.hostname FROM hosts h WHERE h.id = r.host_id;
ALTER TABLE desktop_recordings ALTER COLUMN hostname SET NOT NULL;
ALTER TABLE desktop_recordings ADD COLUMN legal_hold BIGINT NOT NULL DEFAULT 0;
ALTER TABLE desktop_recordings ADD COLUMN legal_hold_reason TEXT;
CREATE INDEX desktop_recordings_ended ON desktop_recordings (account_id, ended_at) WHERE ended_at IS NOT NULL;

-- An account's recording settings; no row: the service's defaults.
CREATE TABLE recording_settings (
    account_id      TEXT COLLATE "C" PRIMARY KEY REFERENCES accounts (id),
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
