//! The searchable text of terminal recordings (SPEC 8.3 "Text search"): chunks of plain text
//! (see [`spog_core::recordings::text`]) indexed by trigrams — an FTS5 table with the trigram
//! tokenizer on SQLite, a `pg_trgm` GIN index on PostgreSQL — and how far each recording's file
//! has been read into them. The dialects differ only in [`matching`].

use std::collections::HashMap;

use spog_core::Id;
use spog_core::model::Account;
use spog_core::page::Page;
use spog_core::recordings::TerminalRecording;
use spog_core::recordings::text::{Chunk, Indexer, Strip, TextMatch, find};

use super::Filter;
use super::lifecycle::{Narrowing, list_narrowed};
use crate::identity::hosts::HostScope;
use crate::rows::id;
use crate::sql::{fts_phrase, indexed_reads};
use crate::{Conn, Sql, StoreError, StoreResult, Tx};

/// Matches given per recording.
pub const MATCHES_PER_RECORDING: usize = 20;
/// Matching chunks read per recording for its matches: each holds one at least, but one whose
/// only match lies in its lead (counted in the chunk before) holds none.
const CHUNKS_PER_RECORDING: i64 = MATCHES_PER_RECORDING as i64 + 5;

/// Where the indexing of a recording stands.
pub struct Indexed {
    /// Bytes of the recording's file read into the text; 0 before anything was.
    pub indexed_to: i64,
    /// Ready for the file's next events.
    pub indexer: Indexer,
}

/// Where the indexing of `recording` stands (nothing indexed yet: offset 0, an empty first
/// chunk).
#[tracing::instrument(name = "recordings::text::indexed", skip_all, fields(recording = %recording))]
pub async fn indexed(
    conn: &mut Conn,
    account: Id<Account>,
    recording: Id<TerminalRecording>,
) -> StoreResult<Indexed> {
    let mut sql =
        Sql::new("SELECT indexed_to, strip FROM recording_text_progress WHERE account_id = ");
    sql.bind(account.to_string())
        .push(" AND recording_id = ")
        .bind(recording.to_string());
    let Some((indexed_to, strip)) = sql.fetch_optional::<(i64, String)>(conn).await? else {
        return Ok(Indexed {
            indexed_to: 0,
            indexer: Indexer::default(),
        });
    };
    let strip: Strip = serde_json::from_str(&strip)
        .map_err(|e| StoreError::Corrupt(format!("recording text state: {e}")))?;
    let mut sql = Sql::new("SELECT seq, lead, body, marks FROM recording_text WHERE account_id = ");
    sql.bind(account.to_string())
        .push(" AND recording_id = ")
        .bind(recording.to_string())
        .push(" ORDER BY seq DESC LIMIT 1");
    let open = sql
        .fetch_optional::<ChunkRow>(conn)
        .await?
        .map(ChunkRow::into_chunk)
        .unwrap_or_default();
    Ok(Indexed {
        indexed_to,
        indexer: Indexer::resume(strip, open),
    })
}

#[derive(sqlx::FromRow)]
struct ChunkRow {
    seq: i64,
    lead: i64,
    body: String,
    marks: String,
}

impl ChunkRow {
    fn into_chunk(self) -> Chunk {
        Chunk::stored(self.seq, self.lead as usize, self.body, &self.marks)
    }
}

/// Stores what `indexer` made of the file from `was` up to `indexed_to`. False, with nothing
/// written, when the recording's indexing no longer stood at `was` (another indexer got there
/// first): the caller reads where it stands now and starts again.
#[tracing::instrument(name = "recordings::text::save", skip_all, fields(recording = %recording))]
pub async fn save(
    tx: &mut Tx,
    account: Id<Account>,
    recording: Id<TerminalRecording>,
    was: i64,
    indexed_to: i64,
    indexer: &Indexer,
) -> StoreResult<bool> {
    let strip = serde_json::to_string(&indexer.strip).expect("a plain enum serializes");
    let moved = if was == 0 {
        let mut sql = Sql::new(
            "INSERT INTO recording_text_progress (recording_id, account_id, indexed_to, strip) \
             VALUES (",
        );
        sql.bind(recording.to_string())
            .push(", ")
            .bind(account.to_string())
            .push(", ")
            .bind(indexed_to)
            .push(", ")
            .bind(strip)
            .push(") ON CONFLICT (recording_id) DO NOTHING");
        sql.execute(tx).await?.rows_affected()
    } else {
        let mut sql = Sql::new("UPDATE recording_text_progress SET indexed_to = ");
        sql.bind(indexed_to)
            .push(", strip = ")
            .bind(strip)
            .push(" WHERE account_id = ")
            .bind(account.to_string())
            .push(" AND recording_id = ")
            .bind(recording.to_string())
            .push(" AND indexed_to = ")
            .bind(was);
        sql.execute(tx).await?.rows_affected()
    };
    if moved == 0 {
        return Ok(false);
    }
    for chunk in indexer.changed().filter(|c| !c.text.is_empty()) {
        let mut sql = Sql::new(
            "INSERT INTO recording_text (account_id, recording_id, seq, lead, body, marks) \
             VALUES (",
        );
        sql.bind(account.to_string())
            .push(", ")
            .bind(recording.to_string())
            .push(", ")
            .bind(chunk.seq)
            .push(", ")
            .bind(chunk.lead as i64)
            .push(", ")
            .bind(chunk.text.clone())
            .push(", ")
            .bind(chunk.encode_marks())
            .push(
                ") ON CONFLICT (recording_id, seq) DO UPDATE SET body = excluded.body, \
                 marks = excluded.marks",
            );
        sql.execute(tx).await?;
    }
    Ok(true)
}

/// The account a recording belongs to, for the indexing worker, which serves every account
/// with recordings written on its instance.
#[tracing::instrument(name = "recordings::text::account_of", skip_all, fields(recording = %recording))]
pub async fn account_of(
    conn: &mut Conn,
    recording: Id<TerminalRecording>,
) -> StoreResult<Option<Id<Account>>> {
    let mut sql = Sql::new("SELECT account_id FROM terminal_recordings WHERE id = ");
    sql.bind(recording.to_string());
    let account = sql.fetch_optional::<(String,)>(conn).await?;
    account.map(|(account,)| id(&account)).transpose()
}

/// Deletes the text of a recording (with the recording itself, whose deletion would also
/// take it).
#[tracing::instrument(name = "recordings::text::delete", skip_all, fields(recording = %recording))]
pub async fn delete(
    tx: &mut Tx,
    account: Id<Account>,
    recording: Id<TerminalRecording>,
) -> StoreResult<()> {
    for table in ["recording_text", "recording_text_progress"] {
        let mut sql = Sql::new(&format!("DELETE FROM {table} WHERE account_id = "));
        sql.bind(account.to_string())
            .push(" AND recording_id = ")
            .bind(recording.to_string());
        sql.execute(tx).await?;
    }
    Ok(())
}

/// Pushes a read of the recording of each chunk of the account that contains `query`, through
/// the trigram index. On SQLite the FTS5 table drives it, so matches stream and a `LIMIT`
/// stops reading them (`t.id IN (SELECT rowid …)` collects every match before the first row).
fn matching_recordings(sql: &mut Sql, account: Id<Account>, sqlite: bool, query: &str) {
    if sqlite {
        sql.push(
            "SELECT t.recording_id FROM recording_text_fts CROSS JOIN recording_text t \
             ON t.id = recording_text_fts.rowid WHERE recording_text_fts MATCH ",
        )
        .bind(fts_phrase(query))
        .push(" AND t.account_id = ")
        .bind(account.to_string());
    } else {
        sql.push("SELECT t.recording_id FROM recording_text t WHERE t.account_id = ")
            .bind(account.to_string());
        matching(sql, sqlite, query);
    }
}

/// Pushes ` AND` a condition that chunk `t` contains `query`, case-insensitively, for a read
/// of every matching chunk: served by the trigram index.
fn matching(sql: &mut Sql, sqlite: bool, query: &str) {
    if sqlite {
        sql.push(
            " AND t.id IN (SELECT rowid FROM recording_text_fts WHERE recording_text_fts MATCH ",
        )
        .bind(fts_phrase(query))
        .push(")");
    } else {
        sql.push(" AND t.body ILIKE ")
            .bind(format!("%{}%", crate::audit::like_literal(query)))
            .push(" ESCAPE '\\'");
        // The pattern decides whether the trigram index pays (see `planned_per_run`).
        sql.planned_per_run();
    }
}

/// [`matching`] for chunks already narrowed to a few recordings, checked one by one (a check
/// that stops at a recording's first matching chunk needs no global read of every match).
/// PostgreSQL: a test no index serves, so the planner reads those recordings' chunks rather
/// than every chunk the text occurs in. SQLite: `lower` folds ASCII letters only, so only an
/// ASCII query is checked chunk by chunk (see [`checkable`]); any other takes the index's set
/// of matching chunks, made once per query (an FTS5 lookup per chunk, `MATCH … AND rowid =
/// t.id`, measured far slower).
fn matching_here(sql: &mut Sql, sqlite: bool, query: &str) {
    if !checkable(sqlite, query) {
        matching(sql, sqlite, query);
    } else if sqlite {
        sql.push(" AND instr(lower(t.body), ")
            .bind(query.to_ascii_lowercase())
            .push(") > 0");
    } else {
        // A case-insensitive regular expression of the literal text: measured five times
        // cheaper than `strpos(lower(…))`, which lowercases every chunk first. `|| ''` keeps
        // the trigram index, which serves `~*` too, from being used for it.
        sql.push(" AND (t.body || '') ~* ")
            .bind(regex_literal(query));
    }
}

/// `text` as a PostgreSQL regular expression matching it literally: every ASCII character
/// that is not a letter or digit escaped (a backslash before a letter or digit, or before a
/// character beyond ASCII, which is never special, would make it an escape sequence).
fn regex_literal(text: &str) -> String {
    let mut literal = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if c.is_ascii() && !c.is_ascii_alphanumeric() {
            literal.push('\\');
        }
        literal.push(c);
    }
    literal
}

/// Whether [`matching_here`] checks chunks one by one for `query`, finding what the trigram
/// index finds: always on PostgreSQL, for ASCII text on SQLite (its FTS5 index folds case
/// beyond ASCII).
fn checkable(sqlite: bool, query: &str) -> bool {
    !sqlite || query.is_ascii()
}

/// Matching chunks beyond which a text counts as common (see [`probe`]). Each one read costs a
/// recheck of its text (on PostgreSQL about 40 µs for a 4 KiB chunk, detoasted and matched),
/// so a probe that reads many delays every common search: text in more chunks is no longer
/// rare, and checking the newest recordings finds it sooner.
pub const PROBE_CHUNKS: i64 = 500;

/// Newest recordings checked one by one for common text, per recording of the page: text in
/// at least half of them fills the page there.
const WALKED_PER_LISTED: u32 = 2;

/// The recordings with chunks matching `query`, through the trigram index alone, when there
/// are at most [`PROBE_CHUNKS`] such chunks; None for text more common than that.
async fn probe(
    conn: &mut Conn,
    account: Id<Account>,
    query: &str,
    sqlite: bool,
    probe_chunks: i64,
) -> StoreResult<Option<Vec<String>>> {
    let mut sql = Sql::new("");
    matching_recordings(&mut sql, account, sqlite, query);
    sql.push(" LIMIT ").bind(probe_chunks + 1);
    let rows: Vec<(String,)> = sql.fetch_all(conn).await?;
    if rows.len() as i64 > probe_chunks {
        return Ok(None);
    }
    let mut recordings: Vec<String> = rows.into_iter().map(|(id,)| id).collect();
    recordings.sort_unstable();
    recordings.dedup();
    Ok(Some(recordings))
}

/// How a search narrows the listing to recordings with matching text.
enum Narrowed {
    /// Among these, found by [`probe`] (rare text).
    Among(Vec<String>),
    /// Checked one by one, each up to its first matching chunk, from the newest down to this
    /// one (common text, within a bounded window).
    CheckedDownTo(String),
    /// Any recording with a chunk the trigram index finds: text in more chunks than a probe
    /// reads but in too few of the newest recordings to fill a page there (the bad middle
    /// case: many chunks in few recordings, or common text in old ones only). Its cost is
    /// that of reading every matching chunk once, never that of checking every recording.
    Indexed,
}

impl Narrowed {
    fn push(&self, sql: &mut Sql, account: Id<Account>, sqlite: bool, query: &str) {
        match self {
            Narrowed::Among(recordings) => {
                sql.push(" AND r.id IN ")
                    .bind_list(recordings.iter().cloned());
            }
            // A subquery per row, never made a join, so it stops at the page's last row.
            Narrowed::CheckedDownTo(last) => {
                sql.push(" AND r.id >= ").bind(last.clone()).push(
                    " AND (SELECT 1 FROM recording_text t WHERE t.recording_id = r.id \
                     AND t.account_id = r.account_id",
                );
                matching_here(sql, sqlite, query);
                sql.push(" LIMIT 1) IS NOT NULL");
            }
            Narrowed::Indexed => {
                // Read once through the index into a set each recording is looked up in. `IS
                // TRUE` keeps PostgreSQL from pulling the subquery up into a join, which it
                // plans (estimating one matching chunk) as a nested loop over every match for
                // every recording.
                sql.push(" AND (r.id IN (");
                matching_recordings(sql, account, sqlite, query);
                sql.push(")) IS TRUE");
            }
        }
    }
}

/// Terminal recordings whose text contains `query` (case-insensitively), newest first, each
/// with its first matches in time order.
#[tracing::instrument(name = "recordings::text::search", skip_all, fields(account = %account))]
pub async fn search(
    conn: &mut Conn,
    account: Id<Account>,
    scope: &HostScope,
    filter: &Filter,
    query: &str,
    limit: u32,
    cursor: Option<&str>,
) -> StoreResult<Page<(TerminalRecording, Vec<TextMatch>)>> {
    search_probing(
        conn,
        account,
        scope,
        filter,
        query,
        (limit, cursor),
        PROBE_CHUNKS,
    )
    .await
}

/// [`search`] with text counted as common beyond `probe_chunks` matching chunks (tests take
/// every way with a small corpus). Rare text is listed from its few recordings; common text
/// by checking the newest recordings one by one, a bounded number of them; text that fills no
/// page there, from every recording the index finds it in.
pub async fn search_probing(
    conn: &mut Conn,
    account: Id<Account>,
    scope: &HostScope,
    filter: &Filter,
    query: &str,
    (limit, cursor): (u32, Option<&str>),
    probe_chunks: i64,
) -> StoreResult<Page<(TerminalRecording, Vec<TextMatch>)>> {
    let sqlite = conn.backend_name() == "SQLite";
    let mut tx = indexed_reads(conn).await?;
    let conn = &mut *tx;
    let listing = Listing {
        account,
        scope,
        filter,
        query,
        cursor,
        sqlite,
    };
    let page = match probe(conn, account, query, sqlite, probe_chunks).await? {
        Some(recordings) => {
            listing
                .page(conn, Some(&Narrowed::Among(recordings)), limit)
                .await?
        }
        None => match walk(conn, &listing, limit).await? {
            Some(page) => page,
            None => listing.page(conn, Some(&Narrowed::Indexed), limit).await?,
        },
    };
    let mut found = matches(conn, account, &page.items, query, sqlite).await?;
    tx.rollback().await?;
    Ok(page.map(|recording| {
        let matches = found.remove(&recording.id).unwrap_or_default();
        (recording, matches)
    }))
}

/// A page of a search's listing, whatever narrows it.
struct Listing<'a> {
    account: Id<Account>,
    scope: &'a HostScope,
    filter: &'a Filter,
    query: &'a str,
    cursor: Option<&'a str>,
    sqlite: bool,
}

impl Listing<'_> {
    /// The page, narrowed by `narrowed` (with None, every recording the filters keep). Its
    /// cursor is the search's whichever way the page was found.
    async fn page(
        &self,
        conn: &mut Conn,
        narrowed: Option<&Narrowed>,
        limit: u32,
    ) -> StoreResult<Page<TerminalRecording>> {
        let push = |sql: &mut Sql| {
            if let Some(narrowed) = narrowed {
                narrowed.push(sql, self.account, self.sqlite, self.query);
            }
        };
        let narrowing = Narrowing {
            key: self.query,
            push: &push,
        };
        let (account, scope, filter) = (self.account, self.scope, self.filter);
        list_narrowed(
            conn,
            account,
            scope,
            filter,
            Some(narrowing),
            limit,
            self.cursor,
        )
        .await
    }
}

/// The page for common text from the newest recordings the page may hold, checked one by one
/// ([`WALKED_PER_LISTED`] per recording listed); None when they hold too few to fill it and
/// older ones remain. On SQLite a query beyond ASCII is not checked this way (see
/// [`checkable`]).
async fn walk(
    conn: &mut Conn,
    listing: &Listing<'_>,
    limit: u32,
) -> StoreResult<Option<Page<TerminalRecording>>> {
    if !checkable(listing.sqlite, listing.query) {
        return Ok(None);
    }
    let window = listing
        .page(conn, None, (limit + 1).saturating_mul(WALKED_PER_LISTED))
        .await?;
    let Some(last) = window.items.last() else {
        return Ok(Some(window));
    };
    let narrowed = Narrowed::CheckedDownTo(last.id.to_string());
    let page = listing.page(conn, Some(&narrowed), limit).await?;
    // A full page, or all there is: past the window no recording remains.
    let complete = page.next_cursor.is_some() || window.next_cursor.is_none();
    Ok(complete.then_some(page))
}

/// The first matches of `query` in one recording (the player's markers).
#[tracing::instrument(name = "recordings::text::matches_in", skip_all, fields(recording = %recording.id))]
pub async fn matches_in(
    conn: &mut Conn,
    account: Id<Account>,
    recording: &TerminalRecording,
    query: &str,
) -> StoreResult<Vec<TextMatch>> {
    let sqlite = conn.backend_name() == "SQLite";
    let mut tx = indexed_reads(conn).await?;
    let mut found = matches(
        &mut tx,
        account,
        std::slice::from_ref(recording),
        query,
        sqlite,
    )
    .await?;
    tx.rollback().await?;
    Ok(found.remove(&recording.id).unwrap_or_default())
}

/// The first matches of `query` in each of `recordings`.
async fn matches(
    conn: &mut Conn,
    account: Id<Account>,
    recordings: &[TerminalRecording],
    query: &str,
    sqlite: bool,
) -> StoreResult<HashMap<Id<TerminalRecording>, Vec<TextMatch>>> {
    let mut found: HashMap<Id<TerminalRecording>, Vec<TextMatch>> = HashMap::new();
    if recordings.is_empty() {
        return Ok(found);
    }
    let mut sql = Sql::new(
        "SELECT recording_id, seq, lead, body, marks FROM (SELECT t.recording_id, t.seq, t.lead, \
         t.body, t.marks, ROW_NUMBER() OVER (PARTITION BY t.recording_id ORDER BY t.seq) AS n \
         FROM recording_text t WHERE t.account_id = ",
    );
    sql.bind(account.to_string())
        .push(" AND t.recording_id IN ")
        .bind_list(recordings.iter().map(|r| r.id.to_string()));
    matching_here(&mut sql, sqlite, query);
    sql.push(") m WHERE n <= ")
        .bind(CHUNKS_PER_RECORDING)
        .push(" ORDER BY recording_id, seq");
    for row in sql.fetch_all::<MatchRow>(conn).await? {
        let recording = id(&row.recording_id)?;
        let chunk = Chunk::stored(row.seq, row.lead as usize, row.body, &row.marks);
        let list = found.entry(recording).or_default();
        let room = MATCHES_PER_RECORDING - list.len();
        if room > 0 {
            list.extend(find(&chunk, query, room));
        }
    }
    Ok(found)
}

#[derive(sqlx::FromRow)]
struct MatchRow {
    recording_id: String,
    seq: i64,
    lead: i64,
    body: String,
    marks: String,
}
