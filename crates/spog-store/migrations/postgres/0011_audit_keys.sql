-- An entry's key leads with its account, as every other key of the trail does: a walk along
-- one account's chain reads its entries by ranges of that key (one index descent a batch
-- rather than one an entry), and an id need only be unique within its account.
ALTER TABLE audit_entries DROP CONSTRAINT audit_entries_pkey;
ALTER TABLE audit_entries ADD PRIMARY KEY (account_id, id);
ALTER TABLE audit_links DROP CONSTRAINT audit_links_entry_id_key;
ALTER TABLE audit_links ADD UNIQUE (account_id, entry_id);
