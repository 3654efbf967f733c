-- Free-text search of the audit trail (`q=`, SPEC 3.3) through an index made for it: an FTS5
-- table with the trigram tokenizer holds the searched text of every entry (the expression
-- `audit::query::SEARCHED_TEXT` writes) beside its key. It keeps its own copy rather than
-- pointing at audit_entries' implicit rowids, which VACUUM (and VACUUM INTO, the online
-- backup) may renumber. Entries are never updated; a removed entry's row is found through its
-- own text.
CREATE VIRTUAL TABLE audit_text USING fts5(
    body, entry_account UNINDEXED, entry_id UNINDEXED, tokenize = 'trigram'
);
INSERT INTO audit_text (body, entry_account, entry_id)
SELECT lower(action || char(31) || coalesce(resource_name, '') || char(31) || coalesce(actor_email, '')),
       account_id, id
FROM audit_entries;
CREATE TRIGGER audit_text_added AFTER INSERT ON audit_entries BEGIN
    INSERT INTO audit_text (body, entry_account, entry_id) VALUES (
        lower(new.action || char(31) || coalesce(new.resource_name, '') || char(31) ||
              coalesce(new.actor_email, '')),
        new.account_id, new.id);
END;
CREATE TRIGGER audit_text_removed AFTER DELETE ON audit_entries BEGIN
    DELETE FROM audit_text WHERE rowid IN (
        SELECT rowid FROM audit_text
        WHERE audit_text MATCH '"' || replace(lower(old.action || char(31) ||
              coalesce(old.resource_name, '') || char(31) || coalesce(old.actor_email, '')),
              '"', '""') || '"'
          AND entry_account = old.account_id AND entry_id = old.id);
END;
