//! Searching the trail (SPEC 3.3): filters shared by listing and export, newest-first keyset
//! pages for people, and seq-ordered batches for export and verification.

use spog_core::audit::{ActorType, AuditEntry, Outcome};
use spog_core::model::Account;
use spog_core::page::{Cursor, Page, key_int, key_text};
use spog_core::{Id, Timestamp};

use super::row::{COLUMNS, EntryRow};
use crate::sql::QueryText;
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
            let pattern = format!("%{}%", like_literal(&q.to_lowercase()));
            for (i, column) in ["action", "resource_name", "actor_email"]
                .iter()
                .enumerate()
            {
                sql.push_text(if i == 0 { " AND (" } else { " OR " });
                sql.push_text(&format!("LOWER({column}) LIKE "));
                sql.bind_text(pattern.clone());
                sql.push_text(" ESCAPE '\\'");
            }
            sql.push_text(")");
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
    let after = scope.decode(cursor)?;
    let mut sql = Sql::new(&format!(
        "SELECT {COLUMNS} FROM audit_logs WHERE account_id = "
    ));
    sql.bind(account.to_string());
    filter.push_conditions(&mut sql);
    if let Some(key) = after {
        sql.push(" AND (occurred_at, id) < (")
            .bind(key_int(&key, 0)?)
            .push(", ")
            .bind(key_text(&key, 1)?)
            .push(")");
    }
    sql.push(" ORDER BY occurred_at DESC, id DESC LIMIT ")
        .bind(i64::from(limit) + 1)
        .planned_per_run();
    let rows = entries(sql.fetch_all::<EntryRow>(conn).await?)?;
    Ok(Page::from_rows(rows, limit, &scope, |e| {
        vec![e.occurred_at.micros().into(), e.id.clone().into()]
    }))
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
