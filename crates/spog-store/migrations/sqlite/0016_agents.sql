-- Host agents (SPEC 12.1): one-time enrollment tokens, stored hashed; one credential per host,
-- stored hashed, with where its agent is connected; what the agent reports on the host.

CREATE TABLE enrollment_tokens (
    id               TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL REFERENCES accounts (id),
    organization_id  TEXT NOT NULL REFERENCES organizations (id),
    -- The host to claim. No foreign key: a token outlives a deleted host and then fails.
    host_id          TEXT,
    description      TEXT,
    token_hash       TEXT NOT NULL UNIQUE,
    created_by       TEXT,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    used_at          BIGINT,
    used_by_host_id  TEXT,
    revoked_at       BIGINT
);
CREATE INDEX enrollment_tokens_account ON enrollment_tokens (account_id, id);

ALTER TABLE hosts ADD COLUMN facts TEXT;
ALTER TABLE hosts ADD COLUMN agent_connected BIGINT NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN agent_version TEXT;
ALTER TABLE hosts ADD COLUMN enrolled_at BIGINT;

-- The host's agent: its credential (replaced when the host enrolls again, kept revoked after
-- a revocation) and its connection, if any (`connection_id` names the one that counts).
CREATE TABLE host_agents (
    host_id           TEXT PRIMARY KEY REFERENCES hosts (id) ON DELETE CASCADE,
    account_id        TEXT NOT NULL REFERENCES accounts (id),
    credential_id     TEXT NOT NULL UNIQUE,
    credential_hash   TEXT NOT NULL UNIQUE,
    enrolled_at       BIGINT NOT NULL,
    revoked_at        BIGINT,
    connection_id     TEXT,
    connected_at      BIGINT,
    last_seen_at      BIGINT,
    protocol          TEXT,
    instance_id       TEXT,
    remote_addr       TEXT,
    terminal_enabled  BIGINT NOT NULL DEFAULT 0
);
