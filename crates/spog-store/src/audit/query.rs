//! Searching the trail (SPEC 3.3): filters shared by listing and export, newest-first keyset
//! pages for people, and seq-ordered batches for export and verification.

use spog_core::audit::{ActorType, AuditEntry, Outcome};
use spog_core::model::Account;
use spog_core::page::{Cursor, Page, key_int, key_text};
use spog_core::{Id, Timestamp};

use super::row::{COLUMNS, EntryRow};
use crate::sql::{QueryText, fts_phrase, indexed_reads};
use crate::{Conn, Sql, StoreResult};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActionFilter {
    Exact(String),
    /// `webhook.*`: every action starting with `webhook.`.
    Prefix(String),
}

/// Filters of `GET /audit-logs` and its export. `from` is inclusive, `to` exclusive.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub actor_type: Option<ActorType>,
    pub actor_id: Option<String>,
    pub actor_email: Option<String>,
    pub action: Option<ActionFilter>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub organization_id: Option<String>,
    pub outcome: Option<Outcome>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// Text contained in the action, resource name or actor email (case-insensitive).
    pub q: Option<String>,
}

/// The text `q=` looks in: the action, resource name and actor email, lower-cased, apart by
/// U+001F so that text matches within one of them (only a `q` holding that control character
/// could match across). On PostgreSQL the trigram index `audit_entries_text` is on exactly
/// this expression, and on SQLite the FTS5 table `audit_text` holds it (migrations 0030).
const SEARCHED_TEXT: &str = "lower(action || '\u{1f}' || coalesce(resource_name, '') || '\u{1f}' || \
     coalesce(actor_email, ''))";

/// `q` as a LIKE pattern for [`SEARCHED_TEXT`].
fn q_pattern(q: &str) -> String {
    format!("%{}%", like_literal(&q.to_lowercase()))
}

/// `%` and `_` are wildcards in LIKE; a user's text must match literally.
pub(crate) fn like_literal(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

impl AuditFilter {
    pub(crate) fn push_conditions(&self, sql: &mut impl QueryText) {
        let mut eq = |column: &str, value: Option<String>| {
            if let Some(value) = value {
                sql.push_text(&format!(" AND {column} = "));
                sql.bind_text(value);
            }
        };
        eq("actor_id", self.actor_id.clone());
        eq(
            "actor_email",
            self.actor_email.as_ref().map(|e| e.to_lowercase()),
        );
        eq("resource_type", self.resource_type.clone());
        eq("resource_id", self.resource_id.clone());
        eq("organization_id", self.organization_id.clone());
        eq("actor_type", self.actor_type.map(|a| a.as_str().to_owned()));
        eq("outcome", self.outcome.map(|o| o.as_str().to_owned()));
        match &self.action {
            Some(ActionFilter::Exact(action)) => {
                sql.push_text(" AND action = ");
                sql.bind_text(action.clone());
            }
            Some(ActionFilter::Prefix(prefix)) => {
                sql.push_text(" AND action LIKE ");
                sql.bind_text(format!("{}%", like_literal(prefix)));
                sql.push_text(" ESCAPE '\\'");
            }
            None => {}
        }
        if let Some(from) = self.from {
            sql.push_text(" AND occurred_at >= ");
            sql.bind_int(from.micros());
        }
        if let Some(to) = self.to {
            sql.push_text(" AND occurred_at < ");
            sql.bind_int(to.micros());
        }
        if let Some(q) = &self.q {
            sql.push_text(&format!(" AND {SEARCHED_TEXT} LIKE "));
            sql.bind_text(q_pattern(q));
            sql.push_text(" ESCAPE '\\'");
        }
    }

    /// The filter without its text, for the window a text search checks one by one.
    fn without_q(&self) -> Self {
        Self {
            q: None,
            ..self.clone()
        }
    }

    /// The filter's identity, so a cursor only resumes the query that made it.
    fn scope(&self, account: Id<Account>) -> Cursor {
        let action = match &self.action {
            Some(ActionFilter::Exact(a)) => format!("={a}"),
            Some(ActionFilter::Prefix(p)) => format!("^{p}"),
            None => String::new(),
        };
        let parts = [
            account.to_string(),
            "audit_logs".to_owned(),
            self.actor_type
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default(),
            self.actor_id.clone().unwrap_or_default(),
            self.actor_email.clone().unwrap_or_default(),
            action,
            self.resource_type.clone().unwrap_or_default(),
            self.resource_id.clone().unwrap_or_default(),
            self.organization_id.clone().unwrap_or_default(),
            self.outcome
                .map(|o| o.as_str().to_owned())
                .unwrap_or_default(),
            self.from
                .map(|t| t.micros().to_string())
                .unwrap_or_default(),
            self.to.map(|t| t.micros().to_string()).unwrap_or_default(),
            self.q.clone().unwrap_or_default(),
        ];
        Cursor::scope(&parts.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

fn entries(rows: Vec<EntryRow>) -> StoreResult<Vec<AuditEntry>> {
    rows.into_iter().map(AuditEntry::try_from).collect()
}

/// Entries matching `filter`, newest first.
#[tracing::instrument(name = "audit::list", skip_all, fields(account = %account))]
pub async fn list(
    conn: &mut Conn,
    account: Id<Account>,
    filter: &AuditFilter,
    limit: u32,
    cursor: Option<&str>,
) -> StoreResult<Page<AuditEntry>> {
    let scope = filter.scope(account);
    let after = match scope.decode(cursor)? {
        Some(key) => Some((key_int(&key, 0)?, key_text(&key, 1)?)),
        None => None,
    };
    let rows = match &filter.q {
        Some(q) if q.chars().count() >= MIN_INDEXED => {
            let mut tx = indexed_reads(conn).await?;
            let rows = search(&mut tx, account, filter, after, limit).await?;
            tx.rollback().await?;
            rows
        }
        _ => {
            newest_first(account, filter, after.as_ref(), i64::from(limit) + 1)
                .fetch_all::<EntryRow>(conn)
                .await?
        }
    };
    // A search reads its page's entries by key, in no order.
    let mut entries = entries(rows)?;
    entries.sort_unstable_by(|a, b| (b.occurred_at, &b.id).cmp(&(a.occurred_at, &a.id)));
    Ok(Page::from_rows(entries, limit, &scope, |e| {
        vec![e.occurred_at.micros().into(), e.id.clone().into()]
    }))
}

/// A listing key: `(occurred_at, id)`, newest first.
type Key = (i64, String);

/// Up to `limit` entries `filter` keeps, older than `after`, newest first.
fn newest_first(
    account: Id<Account>,
    filter: &AuditFilter,
    after: Option<&Key>,
    limit: i64,
) -> Sql {
    let mut sql = Sql::new(&format!(
        "SELECT {COLUMNS} FROM audit_logs WHERE account_id = "
    ));
    sql.bind(account.to_string());
    filter.push_conditions(&mut sql);
    push_older_than(&mut sql, "occurred_at", after);
    sql.push(" ORDER BY occurred_at DESC, id DESC LIMIT ")
        .bind(limit)
        .planned_per_run();
    sql
}

fn push_older_than(sql: &mut Sql, time: &str, key: Option<&Key>) {
    if let Some((at, id)) = key {
        sql.push(&format!(" AND ({time}, id) < ("))
            .bind(*at)
            .push(", ")
            .bind(id.clone())
            .push(")");
    }
}

/// The shortest text a trigram index finds (shorter text is looked for entry by entry).
const MIN_INDEXED: usize = 3;

/// Pushes the ids of up to `wanted` entries matching `filter` older than `edge`, newest first,
/// found through PostgreSQL's trigram index. `occurred_at + 0` orders by a value no B-tree
/// gives, so no plan walks down the time index checking every entry instead.
fn below_through_trigrams(
    sql: &mut Sql,
    account: Id<Account>,
    filter: &AuditFilter,
    edge: &Key,
    wanted: i64,
) {
    sql.push("SELECT id FROM audit_entries WHERE account_id = ")
        .bind(account.to_string());
    filter.push_conditions(sql);
    push_older_than(sql, "occurred_at + 0", Some(edge));
    sql.push(" ORDER BY occurred_at + 0 DESC, id DESC LIMIT ")
        .bind(wanted);
}

/// [`below_through_trigrams`] on SQLite: the FTS5 trigram table `audit_text` (migration 0030)
/// finds the candidates, whose entries are then checked as anywhere else (its folding of case
/// goes beyond ASCII, SQLite's `lower` does not).
fn below_through_fts(
    sql: &mut Sql,
    account: Id<Account>,
    filter: &AuditFilter,
    edge: &Key,
    wanted: i64,
) {
    let q = filter.q.as_deref().unwrap_or_default();
    sql.push(
        "SELECT id FROM audit_text CROSS JOIN audit_entries \
         ON account_id = audit_text.entry_account AND id = audit_text.entry_id \
         WHERE audit_text MATCH ",
    )
    .bind(fts_phrase(q))
    .push(" AND audit_text.entry_account = ")
    .bind(account.to_string());
    filter.push_conditions(sql);
    push_older_than(sql, "occurred_at", Some(edge));
    sql.push(" ORDER BY occurred_at DESC, id DESC LIMIT ")
        .bind(wanted);
}

/// Newest entries a text search checks one by one before it asks the trigram index: text in
/// one entry of [`WINDOW`] / page size of the newest fills a page there.
const WINDOW: i64 = 2_000;

/// A page of a text search, with only one sensible plan for each of its reads whatever the
/// statistics say. Text common among the newest entries fills the page from a
/// window of them, read in time order and checked one by one (the trigram index would read
/// every match in the trail); rarer text is looked up in the index, below the window, and
/// only its matches are sorted (a walk down the time index would read the whole trail).
async fn search(
    conn: &mut Conn,
    account: Id<Account>,
    filter: &AuditFilter,
    after: Option<Key>,
    limit: u32,
) -> StoreResult<Vec<EntryRow>> {
    let wanted = i64::from(limit) + 1;
    let q = filter.q.as_deref().unwrap_or_default();
    let window = |sql: &mut Sql, columns: &str| {
        sql.push(&format!(
            "SELECT {columns} FROM audit_entries WHERE account_id = "
        ))
        .bind(account.to_string());
        filter.without_q().push_conditions(sql);
        push_older_than(sql, "occurred_at", after.as_ref());
        sql.push(" ORDER BY occurred_at DESC, id DESC");
    };
    // The window's entries are a fenced subquery (its LIMIT), so the text is checked on them
    // alone and never through the index. Each step reads ids, and the page's entries are then
    // read by key: a `WHERE id IN (subquery)` may be planned as a walk of the whole trail
    // testing each entry against the subquery's result.
    let mut sql = Sql::new("SELECT w.id FROM (");
    window(
        &mut sql,
        &format!("id, occurred_at, {SEARCHED_TEXT} AS searched"),
    );
    sql.push(" LIMIT ")
        .bind(WINDOW)
        .push(") w WHERE w.searched LIKE ")
        .bind(q_pattern(q))
        .push(" ESCAPE '\\' ORDER BY w.occurred_at DESC, w.id DESC LIMIT ")
        .bind(wanted)
        .planned_per_run();
    let mut ids: Vec<(String,)> = sql.fetch_all(&mut *conn).await?;
    if (ids.len() as i64) < wanted {
        let mut sql = Sql::new("");
        window(&mut sql, "occurred_at, id");
        sql.push(" LIMIT 1 OFFSET ").bind(WINDOW - 1);
        if let Some(edge) = sql.fetch_optional::<Key>(&mut *conn).await? {
            let mut sql = Sql::new("");
            let wanted = wanted - ids.len() as i64;
            if conn.backend_name() == "SQLite" {
                below_through_fts(&mut sql, account, filter, &edge, wanted);
            } else {
                below_through_trigrams(&mut sql, account, filter, &edge, wanted);
            }
            sql.planned_per_run();
            ids.extend(sql.fetch_all::<(String,)>(&mut *conn).await?);
        }
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // Unordered: an `ORDER BY` could be served by walking the time index down to the oldest
    // of them. The caller puts the page in order.
    let mut sql = Sql::new(&format!(
        "SELECT {COLUMNS} FROM audit_logs WHERE account_id = "
    ));
    sql.bind(account.to_string())
        .push(" AND id IN ")
        .bind_list(ids.into_iter().map(|(id,)| id))
        .planned_per_run();
    sql.fetch_all::<EntryRow>(conn).await
}

/// The account's chain head as the linker last wrote it: `(seq, hash)`.
#[tracing::instrument(name = "audit::head", skip_all, fields(account = %account))]
pub async fn head(conn: &mut Conn, account: Id<Account>) -> StoreResult<Option<(i64, String)>> {
    Ok(
        sqlx::query_as("SELECT seq, hash FROM audit_heads WHERE account_id = $1")
            .bind(account.to_string())
            .fetch_optional(conn)
            .await?,
    )
}
