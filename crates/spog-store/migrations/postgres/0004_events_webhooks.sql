-- Platform events, webhook subscriptions and the outbound delivery queue (SPEC 4 and 5).
-- The delivery queue serves every target kind (webhooks now, notification channels later):
-- a delivery names its target by kind and id and is the row of truth for its state.

CREATE TABLE events (
    id               TEXT COLLATE "C" PRIMARY KEY,
    account_id       TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    organization_id  TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    event_type       TEXT NOT NULL,
    occurred_at      BIGINT NOT NULL,
    received_at      BIGINT NOT NULL,
    data             TEXT NOT NULL,
    -- The exact body every webhook delivery of the event sends (SPEC 5.2).
    payload          TEXT NOT NULL,
    idempotency_key  TEXT,
    UNIQUE (account_id, idempotency_key)
);
CREATE INDEX events_received ON events (received_at);

CREATE TABLE webhooks (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    account_id         TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    organization_id    TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    name               TEXT NOT NULL,
    url                TEXT NOT NULL,
    -- Sealed with the server key; NULL when the subscription has no secret.
    secret_ciphertext  TEXT,
    headers            TEXT NOT NULL,
    event_types        TEXT NOT NULL,
    active             BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    UNIQUE (organization_id, name)
);
CREATE INDEX webhooks_account ON webhooks (account_id, id);
CREATE INDEX webhooks_fan_out ON webhooks (organization_id, active);

CREATE TABLE deliveries (
    id                TEXT COLLATE "C" PRIMARY KEY,
    account_id        TEXT COLLATE "C" NOT NULL,
    organization_id   TEXT COLLATE "C" NOT NULL,
    target_kind       TEXT NOT NULL,
    target_id         TEXT COLLATE "C" NOT NULL,
    event_id          TEXT COLLATE "C" NOT NULL REFERENCES events (id),
    event_type        TEXT NOT NULL,
    status            TEXT NOT NULL,
    attempt_count     BIGINT NOT NULL,
    -- Due time of the next attempt while pending or retrying.
    next_attempt_at   BIGINT,
    -- While delivering: the claim's token and when the claim lapses if its instance died.
    lease_token       TEXT,
    lease_expires_at  BIGINT,
    last_status_code  BIGINT,
    last_error        TEXT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    completed_at      BIGINT
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status IN ('pending', 'retrying');
CREATE INDEX deliveries_leases ON deliveries (lease_expires_at) WHERE status = 'delivering';
CREATE INDEX deliveries_target ON deliveries (account_id, target_kind, target_id, id);
CREATE INDEX deliveries_succeeded ON deliveries (completed_at) WHERE status = 'succeeded';
CREATE INDEX deliveries_event ON deliveries (event_id);

CREATE TABLE delivery_attempts (
    id               TEXT COLLATE "C" PRIMARY KEY,
    delivery_id      TEXT COLLATE "C" NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt          BIGINT NOT NULL,
    started_at       BIGINT NOT NULL,
    duration_ms      BIGINT NOT NULL,
    success          BIGINT NOT NULL,
    status_code      BIGINT,
    error            TEXT,
    response_body    TEXT
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, id);

-- A queue table: rows change state constantly, so vacuum it early to keep its indexes lean.
ALTER TABLE deliveries SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
