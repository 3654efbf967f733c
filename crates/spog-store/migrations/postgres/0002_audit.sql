-- The audit trail (SPEC 3). An entry is inserted with the change it records, unlinked
-- (seq, prev_hash and hash NULL); the chain linker appends it to its account's chain.

CREATE TABLE audit_logs (
    id               TEXT COLLATE "C" PRIMARY KEY,
    account_id       TEXT COLLATE "C" NOT NULL,
    seq              BIGINT,
    occurred_at      BIGINT NOT NULL,
    organization_id  TEXT COLLATE "C",
    actor_type       TEXT NOT NULL,
    actor_id         TEXT COLLATE "C",
    actor_email      TEXT,
    actor_name       TEXT,
    source           TEXT NOT NULL,
    ip               TEXT,
    user_agent       TEXT,
    request_id       TEXT COLLATE "C",
    action           TEXT NOT NULL,
    resource_type    TEXT NOT NULL,
    resource_id      TEXT COLLATE "C",
    resource_name    TEXT,
    outcome          TEXT NOT NULL,
    before_state     TEXT,
    after_state      TEXT,
    metadata         TEXT,
    prev_hash        TEXT,
    hash             TEXT,
    UNIQUE (account_id, seq),
    UNIQUE (account_id, prev_hash)
);
CREATE INDEX audit_logs_unlinked ON audit_logs (account_id, id) WHERE seq IS NULL;
-- Filter indexes end with (occurred_at, id): the order of every listing, newest first.
CREATE INDEX audit_logs_time ON audit_logs (account_id, occurred_at, id);
CREATE INDEX audit_logs_action ON audit_logs (account_id, action, occurred_at, id);
CREATE INDEX audit_logs_actor ON audit_logs (account_id, actor_id, occurred_at, id);
CREATE INDEX audit_logs_actor_type ON audit_logs (account_id, actor_type, occurred_at, id);
CREATE INDEX audit_logs_actor_email ON audit_logs (account_id, actor_email, occurred_at, id);
CREATE INDEX audit_logs_resource_type ON audit_logs (account_id, resource_type, occurred_at, id);
CREATE INDEX audit_logs_resource_id ON audit_logs (account_id, resource_id, occurred_at, id);
CREATE INDEX audit_logs_organization ON audit_logs (account_id, organization_id, occurred_at, id);
CREATE INDEX audit_logs_outcome ON audit_logs (account_id, outcome, occurred_at, id);

-- The head of each account's chain: the linker locks this row while it appends.
CREATE TABLE audit_heads (
    account_id  TEXT COLLATE "C" PRIMARY KEY,
    seq         BIGINT NOT NULL,
    hash        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
