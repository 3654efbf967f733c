-- Free-text search of the audit trail (`q=`, SPEC 3.3) through an index made for it: trigrams
-- of the searched text, the expression `audit::query::SEARCHED_TEXT` writes, led by the
-- account (btree_gin) so one tenant's lookup never reads another's matches. A trail of a
-- million entries builds it in about 15 s, during which writes to the trail wait.
CREATE EXTENSION IF NOT EXISTS btree_gin;
CREATE INDEX audit_entries_text ON audit_entries USING gin (
    account_id,
    (lower(action || E'\x1f' || coalesce(resource_name, '') || E'\x1f' || coalesce(actor_email, '')))
        gin_trgm_ops
);

-- The trail only grows, by many rows a second at times: vacuum (which lets reads skip
-- checking each row's visibility) and statistics follow at a twentieth of new rows rather
-- than PostgreSQL's default fifth and tenth, so a trail just filled is not read for long with
-- what its statistics said when it was small.
ALTER TABLE audit_entries SET (autovacuum_vacuum_insert_scale_factor = 0.05,
                               autovacuum_analyze_scale_factor = 0.05);
ALTER TABLE audit_links SET (autovacuum_vacuum_insert_scale_factor = 0.05,
                             autovacuum_analyze_scale_factor = 0.05);
