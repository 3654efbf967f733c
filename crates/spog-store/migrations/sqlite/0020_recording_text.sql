-- The plain text of terminal recordings, for search (SPEC 8.3 "Text search"): chunks of about
-- 4 KiB of text, each starting with the last 200 characters of the one before so a match across
-- a boundary lies whole in one chunk; `marks` says where each event's text starts
-- (`offset:time:code …`). An FTS5 index with the trigram tokenizer finds substrings without
-- regard to case. A recording's text goes with it.

CREATE TABLE recording_text (
    id            INTEGER PRIMARY KEY,
    account_id    TEXT NOT NULL,
    recording_id  TEXT NOT NULL REFERENCES terminal_recordings (id) ON DELETE CASCADE,
    seq           BIGINT NOT NULL,
    lead          BIGINT NOT NULL,
    body          TEXT NOT NULL,
    marks         TEXT NOT NULL,
    UNIQUE (recording_id, seq)
);

CREATE VIRTUAL TABLE recording_text_fts USING fts5(
    body, content = 'recording_text', content_rowid = 'id', tokenize = 'trigram'
);
CREATE TRIGGER recording_text_added AFTER INSERT ON recording_text BEGIN
    INSERT INTO recording_text_fts (rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER recording_text_removed AFTER DELETE ON recording_text BEGIN
    INSERT INTO recording_text_fts (recording_text_fts, rowid, body)
        VALUES ('delete', old.id, old.body);
END;
CREATE TRIGGER recording_text_changed AFTER UPDATE OF body ON recording_text BEGIN
    INSERT INTO recording_text_fts (recording_text_fts, rowid, body)
        VALUES ('delete', old.id, old.body);
    INSERT INTO recording_text_fts (rowid, body) VALUES (new.id, new.body);
END;

-- How far each recording's file is indexed (bytes), and the stripper's state there, so the
-- indexing resumes after a restart.
CREATE TABLE recording_text_progress (
    recording_id  TEXT PRIMARY KEY REFERENCES terminal_recordings (id) ON DELETE CASCADE,
    account_id    TEXT NOT NULL,
    indexed_to    BIGINT NOT NULL,
    strip         TEXT NOT NULL
);
