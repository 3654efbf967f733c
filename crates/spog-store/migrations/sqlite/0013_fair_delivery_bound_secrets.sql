-- Issue 12. Fair delivery: a due delivery is found per target (a loose scan of the queued
-- targets, then each target's earliest due deliveries), in-flight attempts are counted per
-- target from the leased rows (few, read through deliveries_leases), and a target whose
-- attempts keep timing out is backed off (its deliveries wait, no attempt counted).
CREATE INDEX deliveries_queued_target ON deliveries (target_id, next_attempt_at)
    WHERE status IN ('pending', 'retrying');

-- One row per target whose last attempts timed out; gone once it answers again.
CREATE TABLE delivery_targets (
    target_id      TEXT PRIMARY KEY,
    -- Attempts in a row that used their whole timeout without an answer.
    timeouts       BIGINT NOT NULL,
    -- No attempt to this target is claimed before this.
    backoff_until  BIGINT
);

-- Secrets at rest bound to their rows: every secret, header value and channel URL is sealed
-- with its row and field as associated data. A migration cannot seal (no key in SQL): rows
-- written before keep 0 until the server's start-up pass re-seals them and sets 1.
ALTER TABLE webhooks ADD COLUMN secrets_bound BIGINT NOT NULL DEFAULT 0;
ALTER TABLE notification_channels ADD COLUMN secrets_bound BIGINT NOT NULL DEFAULT 0;
