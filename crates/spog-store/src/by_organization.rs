//! The reads every organization-scoped kind shares (notification channels, webhooks, alert
//! rules): one of an account's rows by id, and its rows of one organization or all, a page
//! at a time.

use spog_core::Id;
use spog_core::model::{Account, Organization};
use spog_core::page::{Cursor, Page, key_text};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, FromRow};

use crate::error::Found;
use crate::{Conn, Sql, StoreResult};

/// Where a kind is kept.
pub(crate) struct Table {
    pub name: &'static str,
    pub columns: &'static str,
    /// Names the kind in its cursors, so that one list's cursor is no other's.
    pub cursor_scope: &'static str,
}

/// The row of `account` whose id is `id`.
pub(crate) async fn one<R>(
    conn: &mut Conn,
    table: &Table,
    account: Id<Account>,
    id: String,
) -> StoreResult<R>
where
    R: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
{
    sqlx::query_as::<_, R>(AssertSqlSafe(format!(
        "SELECT {} FROM {} WHERE account_id = $1 AND id = $2",
        table.columns, table.name
    )))
    .bind(account.to_string())
    .bind(id)
    .fetch_optional(conn)
    .await
    .found()
}

/// One page of `table`'s rows, each made an item by `item`; `id` is an item's id.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn page<R, T>(
    conn: &mut Conn,
    table: &Table,
    account: Id<Account>,
    organization: Option<Id<Organization>>,
    limit: u32,
    cursor: Option<&str>,
    item: impl Fn(R) -> StoreResult<T>,
    id: impl Fn(&T) -> String,
) -> StoreResult<Page<T>>
where
    R: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
{
    let organization_text = organization.map(|o| o.to_string()).unwrap_or_default();
    let scope = Cursor::scope(&[&account.to_string(), table.cursor_scope, &organization_text]);
    let after = scope.decode(cursor)?;
    let mut sql = Sql::new(&format!(
        "SELECT {} FROM {} WHERE account_id = ",
        table.columns, table.name
    ));
    sql.bind(account.to_string());
    if let Some(organization) = organization {
        sql.push(" AND organization_id = ")
            .bind(organization.to_string());
    }
    if let Some(key) = after {
        sql.push(" AND id > ").bind(key_text(&key, 0)?);
    }
    sql.push(" ORDER BY id LIMIT ").bind(i64::from(limit) + 1);
    let items = sql
        .fetch_all::<R>(conn)
        .await?
        .into_iter()
        .map(item)
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Page::from_rows(items, limit, &scope, |item| {
        vec![id(item).into()]
    }))
}
