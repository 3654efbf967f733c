-- Entries name the credential a change was made with and when the service stored them
-- (SPEC 3.1). Entries recorded before keep NULL, which their canonical form leaves out, so
-- their hashes, and the chains they are in, verify as before.
ALTER TABLE audit_entries ADD COLUMN credential_id TEXT;
ALTER TABLE audit_entries ADD COLUMN credential_name TEXT;
ALTER TABLE audit_entries ADD COLUMN recorded_at BIGINT;

DROP VIEW audit_logs;
CREATE VIEW audit_logs AS
SELECT e.id, l.seq, e.occurred_at, e.account_id, e.organization_id, e.actor_type, e.actor_id,
       e.actor_email, e.actor_name, e.source, e.ip, e.user_agent, e.request_id, e.action,
       e.resource_type, e.resource_id, e.resource_name, e.outcome, e.before_state,
       e.after_state, e.metadata, l.prev_hash, l.hash, e.credential_id, e.credential_name,
       e.recorded_at
FROM audit_entries e
LEFT JOIN audit_links l ON l.entry_id = e.id AND l.account_id = e.account_id;
