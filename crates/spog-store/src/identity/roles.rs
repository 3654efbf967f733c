use spog_core::model::{Account, Role, User};
use spog_core::{BuiltinRole, FieldError, Id, PermissionSet, Timestamp};

use sqlx::AssertSqlSafe;

use crate::error::Found;
use crate::rows::{at, flag, id};
use crate::{Conn, Sql, StoreError, StoreResult};

const DUPLICATE: &str = "a role with this name already exists";
const COLUMNS: &str = "id, name, description, permissions, builtin, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct RoleRow {
    id: String,
    name: String,
    description: String,
    permissions: String,
    builtin: i64,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<RoleRow> for Role {
    type Error = StoreError;
    fn try_from(row: RoleRow) -> StoreResult<Self> {
        Ok(Role {
            id: id(&row.id)?,
            name: row.name,
            description: row.description,
            permissions: parse_permissions(&row.permissions)?,
            builtin: flag(row.builtin),
            created_at: at(row.created_at),
            updated_at: at(row.updated_at),
        })
    }
}

/// Permissions are stored as a comma-separated list of names.
pub(crate) fn parse_permissions(text: &str) -> StoreResult<PermissionSet> {
    PermissionSet::parse(text.split(',').filter(|p| !p.is_empty()))
        .map_err(|name| StoreError::Corrupt(format!("unknown permission `{name}`")))
}

pub(crate) fn permissions_text(set: PermissionSet) -> String {
    set.names().join(",")
}

pub(crate) async fn insert_builtin(
    conn: &mut Conn,
    account: Id<Account>,
    role: BuiltinRole,
    now: Timestamp,
) -> StoreResult<()> {
    insert(
        conn,
        account,
        role.name(),
        role.description(),
        role.permissions(),
        true,
        now,
    )
    .await?;
    Ok(())
}

async fn insert(
    conn: &mut Conn,
    account: Id<Account>,
    name: &str,
    description: &str,
    permissions: PermissionSet,
    builtin: bool,
    now: Timestamp,
) -> StoreResult<Role> {
    let role = Role {
        id: Id::new(),
        name: name.to_owned(),
        description: description.to_owned(),
        permissions,
        builtin,
        created_at: now,
        updated_at: now,
    };
    sqlx::query(
        "INSERT INTO roles (id, account_id, name, description, permissions, builtin, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(role.id.to_string())
    .bind(account.to_string())
    .bind(name)
    .bind(description)
    .bind(permissions_text(permissions))
    .bind(i64::from(builtin))
    .bind(now.micros())
    .execute(conn)
    .await
    .map_err(|e| StoreError::on_unique(e, DUPLICATE))?;
    Ok(role)
}

#[tracing::instrument(name = "identity::roles::create", skip_all, fields(account = %account, name = name))]
pub async fn create(
    conn: &mut Conn,
    account: Id<Account>,
    name: &str,
    description: &str,
    permissions: PermissionSet,
    now: Timestamp,
) -> StoreResult<Role> {
    insert(conn, account, name, description, permissions, false, now).await
}

#[tracing::instrument(name = "identity::roles::get", skip_all, fields(account = %account, role = %role))]
pub async fn get(conn: &mut Conn, account: Id<Account>, role: Id<Role>) -> StoreResult<Role> {
    sqlx::query_as::<_, RoleRow>(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM roles WHERE account_id = $1 AND id = $2"
    )))
    .bind(account.to_string())
    .bind(role.to_string())
    .fetch_optional(conn)
    .await
    .found()?
    .try_into()
}

#[tracing::instrument(name = "identity::roles::list", skip_all, fields(account = %account))]
pub async fn list(conn: &mut Conn, account: Id<Account>) -> StoreResult<Vec<Role>> {
    sqlx::query_as::<_, RoleRow>(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM roles WHERE account_id = $1 ORDER BY id"
    )))
    .bind(account.to_string())
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(Role::try_from)
    .collect()
}

/// Resolves role names of the account; an unknown name is a field error on `field`.
#[tracing::instrument(name = "identity::roles::resolve", skip_all, fields(account = %account))]
pub async fn resolve(
    conn: &mut Conn,
    account: Id<Account>,
    names: &[String],
    field: &str,
) -> StoreResult<Vec<Role>> {
    let all = list(conn, account).await?;
    let mut found = Vec::with_capacity(names.len());
    for name in names {
        match all.iter().find(|r| &r.name == name) {
            Some(role) if !found.iter().any(|f: &Role| f.id == role.id) => found.push(role.clone()),
            Some(_) => {}
            None => return Err(FieldError::new(field, format!("unknown role `{name}`")).into()),
        }
    }
    Ok(found)
}

#[tracing::instrument(name = "identity::roles::update", skip_all, fields(account = %account, role = %role.id))]
pub async fn update(
    conn: &mut Conn,
    account: Id<Account>,
    role: &Role,
    now: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE roles SET name = $3, description = $4, permissions = $5, updated_at = $6 \
         WHERE account_id = $1 AND id = $2 AND builtin = 0",
    )
    .bind(account.to_string())
    .bind(role.id.to_string())
    .bind(&role.name)
    .bind(&role.description)
    .bind(permissions_text(role.permissions))
    .bind(now.micros())
    .execute(conn)
    .await
    .map_err(|e| StoreError::on_unique(e, DUPLICATE))?;
    Ok(())
}

#[tracing::instrument(name = "identity::roles::delete", skip_all, fields(account = %account, role = %role))]
pub async fn delete(conn: &mut Conn, account: Id<Account>, role: Id<Role>) -> StoreResult<()> {
    let done = sqlx::query("DELETE FROM roles WHERE account_id = $1 AND id = $2 AND builtin = 0")
        .bind(account.to_string())
        .bind(role.to_string())
        .execute(conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// The union of the permissions of a user's roles.
#[tracing::instrument(name = "identity::roles::permissions_of", skip_all, fields(user = %user))]
pub async fn permissions_of(conn: &mut Conn, user: Id<User>) -> StoreResult<PermissionSet> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT r.permissions FROM user_roles ur JOIN roles r ON r.id = ur.role_id WHERE ur.user_id = $1",
    )
    .bind(user.to_string())
    .fetch_all(conn)
    .await?;
    rows.iter().try_fold(PermissionSet::EMPTY, |set, text| {
        Ok(set.union(parse_permissions(text)?))
    })
}

/// Role names per user, for a page of users.
#[tracing::instrument(name = "identity::roles::names_of", skip_all)]
pub async fn names_of(conn: &mut Conn, users: &[Id<User>]) -> StoreResult<Vec<(String, String)>> {
    let mut sql = Sql::new(
        "SELECT ur.user_id, r.name FROM user_roles ur JOIN roles r ON r.id = ur.role_id WHERE ur.user_id IN ",
    );
    sql.bind_list(users.iter().map(|u| u.to_string()))
        .push(" ORDER BY r.name");
    sql.fetch_all::<(String, String)>(conn).await
}
