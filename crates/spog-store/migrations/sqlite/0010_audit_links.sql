-- The chain moves beside the entries: an entry is written once and never updated; the
-- linker appends a narrow row to audit_links instead of rewriting the wide entry row (and,
-- on PostgreSQL, every one of its index entries). audit_unlinked is the linker's queue.
-- audit_logs becomes a view of both, so readers see entries with their links as before.

CREATE TABLE audit_entries (
    id               TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL,
    occurred_at      BIGINT NOT NULL,
    organization_id  TEXT,
    actor_type       TEXT NOT NULL,
    actor_id         TEXT,
    actor_email      TEXT,
    actor_name       TEXT,
    source           TEXT NOT NULL,
    ip               TEXT,
    user_agent       TEXT,
    request_id       TEXT,
    action           TEXT NOT NULL,
    resource_type    TEXT NOT NULL,
    resource_id      TEXT,
    resource_name    TEXT,
    outcome          TEXT NOT NULL,
    before_state     TEXT,
    after_state      TEXT,
    metadata         TEXT
);
INSERT INTO audit_entries
SELECT id, account_id, occurred_at, organization_id, actor_type, actor_id, actor_email, actor_name,
       source, ip, user_agent, request_id, action, resource_type, resource_id, resource_name,
       outcome, before_state, after_state, metadata
FROM audit_logs;

-- One row per linked entry; the keys are the chain's schema guards.
CREATE TABLE audit_links (
    account_id  TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    entry_id    TEXT NOT NULL UNIQUE,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    PRIMARY KEY (account_id, seq),
    UNIQUE (account_id, prev_hash)
) WITHOUT ROWID;
INSERT INTO audit_links
SELECT account_id, seq, id, prev_hash, hash FROM audit_logs WHERE seq IS NOT NULL;

-- Entries recorded but not linked yet.
CREATE TABLE audit_unlinked (
    account_id  TEXT NOT NULL,
    entry_id    TEXT NOT NULL,
    PRIMARY KEY (account_id, entry_id)
) WITHOUT ROWID;
INSERT INTO audit_unlinked SELECT account_id, id FROM audit_logs WHERE seq IS NULL;

DROP TABLE audit_logs;

-- Filter indexes end with (occurred_at, id): the order of every listing, newest first.
CREATE INDEX audit_logs_time ON audit_entries (account_id, occurred_at, id);
CREATE INDEX audit_logs_action ON audit_entries (account_id, action, occurred_at, id);
CREATE INDEX audit_logs_actor ON audit_entries (account_id, actor_id, occurred_at, id);
CREATE INDEX audit_logs_actor_type ON audit_entries (account_id, actor_type, occurred_at, id);
CREATE INDEX audit_logs_actor_email ON audit_entries (account_id, actor_email, occurred_at, id);
CREATE INDEX audit_logs_resource_type ON audit_entries (account_id, resource_type, occurred_at, id);
CREATE INDEX audit_logs_resource_id ON audit_entries (account_id, resource_id, occurred_at, id);
CREATE INDEX audit_logs_organization ON audit_entries (account_id, organization_id, occurred_at, id);
CREATE INDEX audit_logs_outcome ON audit_entries (account_id, outcome, occurred_at, id);

-- Joined on the account too, so a query of one account's chain in seq order can walk
-- audit_links' primary key.
CREATE VIEW audit_logs AS
SELECT e.id, l.seq, e.occurred_at, e.account_id, e.organization_id, e.actor_type, e.actor_id,
       e.actor_email, e.actor_name, e.source, e.ip, e.user_agent, e.request_id, e.action,
       e.resource_type, e.resource_id, e.resource_name, e.outcome, e.before_state,
       e.after_state, e.metadata, l.prev_hash, l.hash
FROM audit_entries e
LEFT JOIN audit_links l ON l.entry_id = e.id AND l.account_id = e.account_id;
