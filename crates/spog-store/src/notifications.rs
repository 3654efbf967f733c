//! In-app notifications: a user sees their own and the account's broadcasts; read state is
//! per user, broadcasts included.

use spog_core::model::{Account, User};
use spog_core::notification::{Category, Notification, Severity};
use spog_core::page::{Cursor, Page, key_int, key_text};
use spog_core::{Id, Timestamp};

use crate::error::Found;
use crate::rows::{id, opt_at, opt_id};
use crate::{Conn, Sql, StoreError, StoreResult};

pub struct NewNotification {
    pub user: Option<Id<User>>,
    pub category: Category,
    pub severity: Severity,
    pub title: String,
    pub message: String,
    pub link: Option<String>,
}

#[tracing::instrument(name = "notifications::create", skip_all, fields(account = %account))]
pub async fn create(
    conn: &mut Conn,
    account: Id<Account>,
    new: NewNotification,
    now: Timestamp,
) -> StoreResult<Notification> {
    let notification: Id<Notification> = Id::new();
    sqlx::query(
        "INSERT INTO notifications (id, account_id, user_id, category, severity, title, message, link, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(notification.to_string())
    .bind(account.to_string())
    .bind(new.user.map(|u| u.to_string()))
    .bind(new.category.as_str())
    .bind(new.severity.as_str())
    .bind(&new.title)
    .bind(&new.message)
    .bind(&new.link)
    .bind(now.micros())
    .execute(conn)
    .await?;
    Ok(Notification {
        id: notification,
        category: new.category,
        severity: new.severity,
        title: new.title,
        message: new.message,
        link: new.link,
        user_id: new.user,
        broadcast: new.user.is_none(),
        created_at: now,
        read: false,
        read_at: None,
    })
}

#[derive(sqlx::FromRow)]
struct NotificationRow {
    id: String,
    user_id: Option<String>,
    category: String,
    severity: String,
    title: String,
    message: String,
    link: Option<String>,
    created_at: i64,
    read_at: Option<i64>,
}

impl TryFrom<NotificationRow> for Notification {
    type Error = StoreError;
    fn try_from(row: NotificationRow) -> StoreResult<Self> {
        let user_id = opt_id(row.user_id.as_deref())?;
        Ok(Notification {
            id: id(&row.id)?,
            category: Category::parse(&row.category)
                .ok_or_else(|| StoreError::Corrupt(format!("category {}", row.category)))?,
            severity: Severity::parse(&row.severity)
                .ok_or_else(|| StoreError::Corrupt(format!("severity {}", row.severity)))?,
            title: row.title,
            message: row.message,
            link: row.link,
            user_id,
            broadcast: user_id.is_none(),
            created_at: Timestamp::from_micros(row.created_at),
            read: row.read_at.is_some(),
            read_at: opt_at(row.read_at),
        })
    }
}

/// `FROM` and `WHERE` for what `user` may see, with their read state as `r.read_at`.
fn visible_to(sql: &mut Sql, account: Id<Account>, user: Id<User>) {
    sql.push(" FROM notifications n LEFT JOIN notification_reads r ON r.notification_id = n.id AND r.user_id = ")
        .bind(user.to_string())
        .push(" WHERE n.account_id = ")
        .bind(account.to_string())
        .push(" AND (n.user_id = ")
        .bind(user.to_string())
        .push(" OR n.user_id IS NULL)");
}

const COLUMNS: &str = "SELECT n.id, n.user_id, n.category, n.severity, n.title, n.message, n.link, n.created_at, r.read_at";

/// The user's notifications, newest first.
#[tracing::instrument(name = "notifications::list", skip_all, fields(account = %account, user = %user))]
pub async fn list(
    conn: &mut Conn,
    account: Id<Account>,
    user: Id<User>,
    read: Option<bool>,
    category: Option<Category>,
    limit: u32,
    cursor: Option<&str>,
) -> StoreResult<Page<Notification>> {
    let read_text = read.map(|r| r.to_string()).unwrap_or_default();
    let category_text = category.map(|c| c.as_str()).unwrap_or_default();
    let scope = Cursor::scope(&[
        &account.to_string(),
        &user.to_string(),
        "notifications",
        &read_text,
        category_text,
    ]);
    let after = scope.decode(cursor)?;
    let mut sql = Sql::new(COLUMNS);
    visible_to(&mut sql, account, user);
    match read {
        Some(true) => {
            sql.push(" AND r.read_at IS NOT NULL");
        }
        Some(false) => {
            sql.push(" AND r.read_at IS NULL");
        }
        None => {}
    }
    if let Some(category) = category {
        sql.push(" AND n.category = ").bind(category.as_str());
    }
    if let Some(key) = after {
        sql.push(" AND (n.created_at, n.id) < (")
            .bind(key_int(&key, 0)?)
            .push(", ")
            .bind(key_text(&key, 1)?)
            .push(")");
    }
    sql.push(" ORDER BY n.created_at DESC, n.id DESC LIMIT ")
        .bind(i64::from(limit) + 1);
    let rows = sql
        .fetch_all::<NotificationRow>(conn)
        .await?
        .into_iter()
        .map(Notification::try_from)
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Page::from_rows(rows, limit, &scope, |n| {
        vec![n.created_at.micros().into(), n.id.to_string().into()]
    }))
}

#[tracing::instrument(name = "notifications::get", skip_all, fields(account = %account, user = %user, notification = %notification))]
pub async fn get(
    conn: &mut Conn,
    account: Id<Account>,
    user: Id<User>,
    notification: Id<Notification>,
) -> StoreResult<Notification> {
    let mut sql = Sql::new(COLUMNS);
    visible_to(&mut sql, account, user);
    sql.push(" AND n.id = ").bind(notification.to_string());
    sql.fetch_optional::<NotificationRow>(conn)
        .await
        .found()?
        .try_into()
}

#[tracing::instrument(name = "notifications::unread_count", skip_all, fields(account = %account, user = %user))]
pub async fn unread_count(
    conn: &mut Conn,
    account: Id<Account>,
    user: Id<User>,
) -> StoreResult<i64> {
    let mut sql = Sql::new("SELECT COUNT(*)");
    visible_to(&mut sql, account, user);
    sql.push(" AND r.read_at IS NULL");
    sql.fetch_scalar::<i64>(conn).await
}

/// Marks one notification read for `user` (idempotent); NotFound if they cannot see it.
#[tracing::instrument(name = "notifications::mark_read", skip_all, fields(account = %account, user = %user, notification = %notification))]
pub async fn mark_read(
    conn: &mut Conn,
    account: Id<Account>,
    user: Id<User>,
    notification: Id<Notification>,
    now: Timestamp,
) -> StoreResult<()> {
    get(conn, account, user, notification).await?;
    sqlx::query(
        "INSERT INTO notification_reads (notification_id, user_id, read_at) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id, notification_id) DO NOTHING",
    )
    .bind(notification.to_string())
    .bind(user.to_string())
    .bind(now.micros())
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks everything the user can see read; returns how many became read.
#[tracing::instrument(name = "notifications::mark_all_read", skip_all, fields(account = %account, user = %user))]
pub async fn mark_all_read(
    conn: &mut Conn,
    account: Id<Account>,
    user: Id<User>,
    now: Timestamp,
) -> StoreResult<u64> {
    let mut sql = Sql::new(
        "INSERT INTO notification_reads (notification_id, user_id, read_at) SELECT n.id, ",
    );
    sql.bind(user.to_string()).push(", ").bind(now.micros());
    visible_to(&mut sql, account, user);
    sql.push(" AND r.read_at IS NULL ON CONFLICT (user_id, notification_id) DO NOTHING");
    Ok(sql.execute(conn).await?.rows_affected())
}

/// A notification as newly announced (unread), for pushing to its recipients.
#[tracing::instrument(name = "notifications::by_id", skip_all, fields(account = %account, notification = %notification))]
pub async fn by_id(
    conn: &mut Conn,
    account: Id<Account>,
    notification: Id<Notification>,
) -> StoreResult<Notification> {
    let mut sql = Sql::new(
        "SELECT n.id, n.user_id, n.category, n.severity, n.title, n.message, n.link, n.created_at, \
         CAST(NULL AS BIGINT) AS read_at FROM notifications n WHERE n.account_id = ",
    );
    sql.bind(account.to_string())
        .push(" AND n.id = ")
        .bind(notification.to_string());
    sql.fetch_optional::<NotificationRow>(conn)
        .await
        .found()?
        .try_into()
}

/// Up to `limit` notifications created before `before`, in any account, oldest first.
#[tracing::instrument(name = "notifications::older_than", skip_all)]
pub async fn older_than(
    conn: &mut Conn,
    before: Timestamp,
    limit: u32,
) -> StoreResult<Vec<(Id<Account>, Id<Notification>)>> {
    let mut sql = Sql::new("SELECT account_id, id FROM notifications WHERE created_at < ");
    sql.bind(before.micros())
        .push(" ORDER BY created_at LIMIT ")
        .bind(i64::from(limit));
    let rows: Vec<(String, String)> = sql.fetch_all(conn).await?;
    rows.iter()
        .map(|(account, notification)| Ok((id(account)?, id(notification)?)))
        .collect()
}

/// Deletes a notification (and who read it); false when it was gone already.
#[tracing::instrument(name = "notifications::delete", skip_all, fields(account = %account, notification = %notification))]
pub async fn delete(
    conn: &mut Conn,
    account: Id<Account>,
    notification: Id<Notification>,
) -> StoreResult<bool> {
    let mut sql = Sql::new("DELETE FROM notifications WHERE account_id = ");
    sql.bind(account.to_string())
        .push(" AND id = ")
        .bind(notification.to_string());
    Ok(sql.execute(conn).await?.rows_affected() == 1)
}
