-- An entry's key leads with its account, as every other key of the trail does: a walk along
-- one account's chain reads its entries by ranges of that key (one index descent a batch
-- rather than one an entry), and an id need only be unique within its account.
ALTER TABLE audit_entries DROP CONSTRAINT audit_entries_pkey;
ALTER TABLE audit_entries ADD PRIMARY KEY (account_id, id);
ALTER TABLE audit_links DROP CONSTRAINT audit_links_entry_id_key;
ALTER TABLE audit_links ADD UNIQUE (account_id, entry_id);

-- The chain's guard beside its primary key (one link per position): every link follows the
-- link before it, its prev_hash being that link's hash (the genesis hash at seq 1). It
-- implies that no two links share a prev_hash, which a unique index on prev_hash guarded
-- before; that index grew at random places, which cost more than the rest of linking on
-- large chains, where this check reads the previous position of the primary key. It guards
-- what linking does (inserting); a change made behind the store's back is for verification
-- to report.
ALTER TABLE audit_links DROP CONSTRAINT audit_links_account_id_prev_hash_key;
CREATE FUNCTION audit_links_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM added a
        WHERE a.prev_hash IS DISTINCT FROM COALESCE(
            (SELECT p.hash FROM audit_links p WHERE p.account_id = a.account_id AND p.seq = a.seq - 1),
            CASE WHEN a.seq = 1 THEN repeat('0', 64) END)
    ) THEN
        RAISE EXCEPTION 'an audit link does not follow the link before it'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER audit_links_follow AFTER INSERT ON audit_links
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION audit_links_follow();
