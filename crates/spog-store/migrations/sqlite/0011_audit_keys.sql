-- An entry's key leads with its account, as every other key of the trail does: a walk along
-- one account's chain reads its entries by ranges of that key (one index descent a batch
-- rather than one an entry), and an id need only be unique within its account. SQLite
-- changes a key by rebuilding the table.
DROP VIEW audit_logs;

CREATE TABLE audit_entries_keyed (
    id               TEXT NOT NULL,
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
    metadata         TEXT,
    PRIMARY KEY (account_id, id)
);
INSERT INTO audit_entries_keyed SELECT * FROM audit_entries ORDER BY account_id, id;
DROP TABLE audit_entries;
ALTER TABLE audit_entries_keyed RENAME TO audit_entries;
CREATE INDEX audit_logs_time ON audit_entries (account_id, occurred_at, id);
CREATE INDEX audit_logs_action ON audit_entries (account_id, action, occurred_at, id);
CREATE INDEX audit_logs_actor ON audit_entries (account_id, actor_id, occurred_at, id);
CREATE INDEX audit_logs_actor_type ON audit_entries (account_id, actor_type, occurred_at, id);
CREATE INDEX audit_logs_actor_email ON audit_entries (account_id, actor_email, occurred_at, id);
CREATE INDEX audit_logs_resource_type ON audit_entries (account_id, resource_type, occurred_at, id);
CREATE INDEX audit_logs_resource_id ON audit_entries (account_id, resource_id, occurred_at, id);
CREATE INDEX audit_logs_organization ON audit_entries (account_id, organization_id, occurred_at, id);
CREATE INDEX audit_logs_outcome ON audit_entries (account_id, outcome, occurred_at, id);

CREATE TABLE audit_links_keyed (
    account_id  TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    entry_id    TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    PRIMARY KEY (account_id, seq),
    UNIQUE (account_id, entry_id)
) WITHOUT ROWID;
INSERT INTO audit_links_keyed SELECT * FROM audit_links;
DROP TABLE audit_links;
ALTER TABLE audit_links_keyed RENAME TO audit_links;

-- The chain's guard beside its primary key (one link per position): every link follows the
-- link before it, its prev_hash being that link's hash (the genesis hash at seq 1). It
-- implies that no two links share a prev_hash, which a unique index on prev_hash guarded
-- before; that index grew at random places, which cost more than the rest of linking on
-- large chains, where this check reads the previous position of the primary key. It guards
-- what linking does (inserting); a change made behind the store's back is for verification
-- to report.
CREATE TRIGGER audit_links_follow BEFORE INSERT ON audit_links
WHEN NEW.prev_hash IS NOT COALESCE(
    (SELECT hash FROM audit_links WHERE account_id = NEW.account_id AND seq = NEW.seq - 1),
    CASE WHEN NEW.seq = 1 THEN '0000000000000000000000000000000000000000000000000000000000000000' END)
BEGIN
    SELECT RAISE(ABORT, 'an audit link does not follow the link before it');
END;

CREATE VIEW audit_logs AS
SELECT e.id, l.seq, e.occurred_at, e.account_id, e.organization_id, e.actor_type, e.actor_id,
       e.actor_email, e.actor_name, e.source, e.ip, e.user_agent, e.request_id, e.action,
       e.resource_type, e.resource_id, e.resource_name, e.outcome, e.before_state,
       e.after_state, e.metadata, l.prev_hash, l.hash
FROM audit_entries e
LEFT JOIN audit_links l ON l.entry_id = e.id AND l.account_id = e.account_id;
