-- Notification channels (SPEC 7.1). `config` holds the non-secret configuration as JSON;
-- the secret fields (SMTP password, webhook HMAC secret) are one JSON object sealed with the
-- server key, NULL when the channel has none. Deliveries to a channel use the shared queue
-- with target_kind 'channel'.

CREATE TABLE notification_channels (
    id                  TEXT COLLATE "C" PRIMARY KEY,
    account_id          TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    organization_id     TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    name                TEXT NOT NULL,
    channel_type        TEXT NOT NULL,
    config              TEXT NOT NULL,
    secrets_ciphertext  TEXT,
    enabled             BIGINT NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    UNIQUE (organization_id, name)
);
CREATE INDEX notification_channels_account ON notification_channels (account_id, id);
