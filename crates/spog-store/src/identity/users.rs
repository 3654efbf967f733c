use std::collections::HashMap;

use spog_core::model::{Account, ExternalIdentity, Role, User};
use spog_core::page::{Cursor, Page, key_text};
use spog_core::validate::Email;
use spog_core::{Id, Timestamp};
use sqlx::AssertSqlSafe;

use crate::error::Found;
use crate::identity::roles;
use crate::rows::{at, flag, id, opt_at};
use crate::{Conn, Sql, StoreError, StoreResult};

const DUPLICATE_EMAIL: &str = "a user with this email already exists";
const DUPLICATE_IDENTITY: &str = "this external identity is already linked to a user";
const COLUMNS: &str = "id, email, display_name, active, created_at, updated_at, last_login_at";

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    email: String,
    display_name: String,
    active: i64,
    created_at: i64,
    updated_at: i64,
    last_login_at: Option<i64>,
}

impl UserRow {
    fn into_user(self, roles: Vec<String>, identities: Vec<ExternalIdentity>) -> StoreResult<User> {
        Ok(User {
            id: id(&self.id)?,
            email: self.email,
            display_name: self.display_name,
            active: flag(self.active),
            roles,
            identities,
            created_at: at(self.created_at),
            updated_at: at(self.updated_at),
            last_login_at: opt_at(self.last_login_at),
        })
    }
}

pub struct NewUser {
    pub email: Email,
    pub display_name: String,
    pub password_hash: Option<String>,
    pub roles: Vec<Role>,
    pub identities: Vec<ExternalIdentity>,
}

#[tracing::instrument(name = "identity::users::create", skip_all, fields(account = %account))]
pub async fn create(
    conn: &mut Conn,
    account: Id<Account>,
    new: NewUser,
    now: Timestamp,
) -> StoreResult<User> {
    let user: Id<User> = Id::new();
    sqlx::query(
        "INSERT INTO users (id, account_id, email, display_name, password_hash, active, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 1, $6, $6)",
    )
    .bind(user.to_string())
    .bind(account.to_string())
    .bind(new.email.as_str())
    .bind(&new.display_name)
    .bind(new.password_hash)
    .bind(now.micros())
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::on_unique(e, DUPLICATE_EMAIL))?;
    set_roles(conn, user, &new.roles).await?;
    set_identities(conn, account, user, &new.identities, now).await?;
    get(conn, account, user).await
}

#[tracing::instrument(name = "identity::users::get", skip_all, fields(account = %account, user = %user))]
pub async fn get(conn: &mut Conn, account: Id<Account>, user: Id<User>) -> StoreResult<User> {
    let row = sqlx::query_as::<_, UserRow>(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users WHERE account_id = $1 AND id = $2"
    )))
    .bind(account.to_string())
    .bind(user.to_string())
    .fetch_optional(&mut *conn)
    .await
    .found()?;
    let mut users = complete(conn, account, vec![row]).await?;
    Ok(users.remove(0))
}

/// The user of the account with this email, if any.
#[tracing::instrument(name = "identity::users::by_email", skip_all, fields(account = %account))]
pub async fn by_email(conn: &mut Conn, account: Id<Account>, email: &Email) -> StoreResult<User> {
    let user: String =
        sqlx::query_scalar("SELECT id FROM users WHERE account_id = $1 AND email = $2")
            .bind(account.to_string())
            .bind(email.as_str())
            .fetch_optional(&mut *conn)
            .await
            .found()?;
    get(conn, account, id(&user)?).await
}

/// The user of the account that an external identity is linked to, if any.
#[tracing::instrument(name = "identity::users::by_identity", skip_all, fields(account = %account))]
pub async fn by_identity(
    conn: &mut Conn,
    account: Id<Account>,
    identity: &ExternalIdentity,
) -> StoreResult<User> {
    let user: String = sqlx::query_scalar(
        "SELECT user_id FROM user_identities WHERE account_id = $1 AND provider = $2 AND subject = $3",
    )
    .bind(account.to_string())
    .bind(&identity.provider)
    .bind(&identity.subject)
    .fetch_optional(&mut *conn)
    .await
    .found()?;
    get(conn, account, id(&user)?).await
}

/// Users of the account ordered by email.
#[tracing::instrument(name = "identity::users::list", skip_all, fields(account = %account))]
pub async fn list(
    conn: &mut Conn,
    account: Id<Account>,
    limit: u32,
    cursor: Option<&str>,
) -> StoreResult<Page<User>> {
    let scope = Cursor::scope(&[&account.to_string(), "users"]);
    let after = scope.decode(cursor)?;
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM users WHERE account_id = "));
    sql.bind(account.to_string());
    if let Some(key) = after {
        sql.push(" AND email > ").bind(key_text(&key, 0)?);
    }
    sql.push(" ORDER BY email LIMIT ")
        .bind(i64::from(limit) + 1);
    let rows = sql.fetch_all::<UserRow>(&mut *conn).await?;
    let users = complete(conn, account, rows).await?;
    Ok(Page::from_rows(users, limit, &scope, |u| {
        vec![u.email.clone().into()]
    }))
}

/// How many users the account has.
#[tracing::instrument(name = "identity::users::count", skip_all, fields(account = %account))]
pub async fn count(conn: &mut Conn, account: Id<Account>) -> StoreResult<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE account_id = $1")
            .bind(account.to_string())
            .fetch_one(conn)
            .await?,
    )
}

/// Users of the account holding `permission` through any role, for fan-out.
#[tracing::instrument(name = "identity::users::ids_with_permission", skip_all, fields(account = %account))]
pub async fn ids_with_permission(
    conn: &mut Conn,
    account: Id<Account>,
    permission: spog_core::Permission,
) -> StoreResult<Vec<Id<User>>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT u.id, r.permissions FROM users u JOIN user_roles ur ON ur.user_id = u.id \
         JOIN roles r ON r.id = ur.role_id WHERE u.account_id = $1 AND u.active = 1",
    )
    .bind(account.to_string())
    .fetch_all(conn)
    .await?;
    let mut users = Vec::new();
    for (user, permissions) in rows {
        if roles::parse_permissions(&permissions)?.contains(permission) {
            let user = id(&user)?;
            if !users.contains(&user) {
                users.push(user);
            }
        }
    }
    Ok(users)
}

/// Adds role names and linked identities to user rows.
async fn complete(
    conn: &mut Conn,
    account: Id<Account>,
    rows: Vec<UserRow>,
) -> StoreResult<Vec<User>> {
    let ids = rows
        .iter()
        .map(|r| id(&r.id))
        .collect::<StoreResult<Vec<Id<User>>>>()?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut role_names: HashMap<String, Vec<String>> = HashMap::new();
    for (user, role) in roles::names_of(conn, &ids).await? {
        role_names.entry(user).or_default().push(role);
    }
    let mut sql =
        Sql::new("SELECT user_id, provider, subject FROM user_identities WHERE account_id = ");
    sql.bind(account.to_string())
        .push(" AND user_id IN ")
        .bind_list(ids.iter().map(|u| u.to_string()))
        .push(" ORDER BY provider, subject");
    let mut identities: HashMap<String, Vec<ExternalIdentity>> = HashMap::new();
    for (user, provider, subject) in sql.fetch_all::<(String, String, String)>(conn).await? {
        identities
            .entry(user)
            .or_default()
            .push(ExternalIdentity { provider, subject });
    }
    rows.into_iter()
        .map(|row| {
            let roles = role_names.remove(&row.id).unwrap_or_default();
            let identities = identities.remove(&row.id).unwrap_or_default();
            row.into_user(roles, identities)
        })
        .collect()
}

/// What an update may change; `None` leaves a field as it is.
#[derive(Default)]
pub struct UserChanges {
    pub display_name: Option<String>,
    pub password_hash: Option<String>,
    pub active: Option<bool>,
    pub roles: Option<Vec<Role>>,
    pub identities: Option<Vec<ExternalIdentity>>,
}

#[tracing::instrument(name = "identity::users::update", skip_all, fields(account = %account, user = %user))]
pub async fn update(
    conn: &mut Conn,
    account: Id<Account>,
    user: Id<User>,
    changes: UserChanges,
    now: Timestamp,
) -> StoreResult<User> {
    let done = sqlx::query(
        "UPDATE users SET display_name = COALESCE($3, display_name), password_hash = COALESCE($4, password_hash), \
         active = COALESCE($5, active), updated_at = $6 WHERE account_id = $1 AND id = $2",
    )
    .bind(account.to_string())
    .bind(user.to_string())
    .bind(changes.display_name)
    .bind(changes.password_hash)
    .bind(changes.active.map(i64::from))
    .bind(now.micros())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    if let Some(roles) = changes.roles {
        set_roles(conn, user, &roles).await?;
    }
    if let Some(identities) = changes.identities {
        set_identities(conn, account, user, &identities, now).await?;
    }
    get(conn, account, user).await
}

async fn set_roles(conn: &mut Conn, user: Id<User>, roles: &[Role]) -> StoreResult<()> {
    sqlx::query("DELETE FROM user_roles WHERE user_id = $1")
        .bind(user.to_string())
        .execute(&mut *conn)
        .await?;
    if roles.is_empty() {
        return Ok(());
    }
    // One statement for the whole list (bounded by the request's type).
    let mut insert = Sql::new("INSERT INTO user_roles (user_id, role_id) VALUES ");
    for (i, role) in roles.iter().enumerate() {
        insert
            .push(if i == 0 { "(" } else { ", (" })
            .bind(user.to_string())
            .push(", ")
            .bind(role.id.to_string())
            .push(")");
    }
    insert.execute(conn).await?;
    Ok(())
}

async fn set_identities(
    conn: &mut Conn,
    account: Id<Account>,
    user: Id<User>,
    identities: &[ExternalIdentity],
    now: Timestamp,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM user_identities WHERE user_id = $1")
        .bind(user.to_string())
        .execute(&mut *conn)
        .await?;
    if identities.is_empty() {
        return Ok(());
    }
    let mut insert = Sql::new(
        "INSERT INTO user_identities (account_id, provider, subject, user_id, created_at) VALUES ",
    );
    for (i, identity) in identities.iter().enumerate() {
        insert
            .push(if i == 0 { "(" } else { ", (" })
            .bind(account.to_string())
            .push(", ")
            .bind(identity.provider.clone())
            .push(", ")
            .bind(identity.subject.clone())
            .push(", ")
            .bind(user.to_string())
            .push(", ")
            .bind(now.micros())
            .push(")");
    }
    insert.execute(conn).await.map_err(|e| match e {
        StoreError::Database(e) => StoreError::on_unique(e, DUPLICATE_IDENTITY),
        other => other,
    })?;
    Ok(())
}

#[tracing::instrument(name = "identity::users::delete", skip_all, fields(account = %account, user = %user))]
pub async fn delete(conn: &mut Conn, account: Id<Account>, user: Id<User>) -> StoreResult<()> {
    let done = sqlx::query("DELETE FROM users WHERE account_id = $1 AND id = $2")
        .bind(account.to_string())
        .bind(user.to_string())
        .execute(conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// What login needs: a user and its account, found by email. Emails are unique within an
/// account only, so an email may name users of several accounts.
pub struct LoginCandidate {
    pub account: Id<Account>,
    pub user: Id<User>,
    pub password_hash: Option<String>,
    pub active: bool,
}

/// Most users one login checks (one per account that has the email).
pub const MAX_LOGIN_CANDIDATES: i64 = 8;

/// The users with `email`, the most recently logged in first.
#[tracing::instrument(name = "identity::users::login_candidates", skip_all)]
pub async fn login_candidates(conn: &mut Conn, email: &Email) -> StoreResult<Vec<LoginCandidate>> {
    let rows: Vec<(String, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT account_id, id, password_hash, active FROM users WHERE email = $1 \
         ORDER BY COALESCE(last_login_at, 0) DESC, id LIMIT $2",
    )
    .bind(email.as_str())
    .bind(MAX_LOGIN_CANDIDATES)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(account, user, password_hash, active)| {
            Ok(LoginCandidate {
                account: id(&account)?,
                user: id(&user)?,
                password_hash,
                active: flag(active),
            })
        })
        .collect()
}

/// The user's password hash (none for users who only sign in through a provider).
#[tracing::instrument(name = "identity::users::password_hash", skip_all, fields(account = %account, user = %user))]
pub async fn password_hash(
    conn: &mut Conn,
    account: Id<Account>,
    user: Id<User>,
) -> StoreResult<Option<String>> {
    let (hash,): (Option<String>,) =
        sqlx::query_as("SELECT password_hash FROM users WHERE account_id = $1 AND id = $2")
            .bind(account.to_string())
            .bind(user.to_string())
            .fetch_optional(conn)
            .await
            .found()?;
    Ok(hash)
}

#[tracing::instrument(name = "identity::users::record_login", skip_all, fields(user = %user))]
pub async fn record_login(conn: &mut Conn, user: Id<User>, now: Timestamp) -> StoreResult<()> {
    sqlx::query("UPDATE users SET last_login_at = $2 WHERE id = $1")
        .bind(user.to_string())
        .bind(now.micros())
        .execute(conn)
        .await?;
    Ok(())
}

#[tracing::instrument(name = "identity::users::count_with_role", skip_all, fields(account = %account, role = %role))]
pub async fn count_with_role(
    conn: &mut Conn,
    account: Id<Account>,
    role: Id<Role>,
) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM user_roles ur JOIN users u ON u.id = ur.user_id \
         WHERE u.account_id = $1 AND ur.role_id = $2 AND u.active = 1",
    )
    .bind(account.to_string())
    .bind(role.to_string())
    .fetch_one(conn)
    .await?)
}
