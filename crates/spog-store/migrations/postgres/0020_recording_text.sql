-- The plain text of terminal recordings, for search (SPEC 8.3 "Text search"): chunks of about
-- 4 KiB of text, each starting with the last 200 characters of the one before so a match across
-- a boundary lies whole in one chunk; `marks` says where each event's text starts
-- (`offset:time:code …`). A trigram GIN index serves `ILIKE '%text%'`. A recording's text goes
-- with it.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE recording_text (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id    TEXT COLLATE "C" NOT NULL,
    recording_id  TEXT COLLATE "C" NOT NULL REFERENCES terminal_recordings (id) ON DELETE CASCADE,
    seq           BIGINT NOT NULL,
    lead          BIGINT NOT NULL,
    body          TEXT NOT NULL,
    marks         TEXT NOT NULL,
    UNIQUE (recording_id, seq)
);
CREATE INDEX recording_text_body ON recording_text USING gin (body gin_trgm_ops);

-- How far each recording's file is indexed (bytes), and the stripper's state there, so the
-- indexing resumes after a restart.
CREATE TABLE recording_text_progress (
    recording_id  TEXT COLLATE "C" PRIMARY KEY REFERENCES terminal_recordings (id) ON DELETE CASCADE,
    account_id    TEXT COLLATE "C" NOT NULL,
    indexed_to    BIGINT NOT NULL,
    strip         TEXT NOT NULL
);
