use spog_core::model::{Account, Organization};
use spog_core::validate::Name;
use spog_core::{BuiltinRole, Id, Timestamp};

use crate::error::Found;
use crate::identity::{organizations, roles};
use crate::rows::{at, id};
use crate::{Conn, StoreError, StoreResult};

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: String,
    name: String,
    created_at: i64,
}

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;
    fn try_from(row: AccountRow) -> StoreResult<Self> {
        Ok(Account {
            id: id(&row.id)?,
            name: row.name,
            created_at: at(row.created_at),
        })
    }
}

/// A new tenant with its built-in roles, its default organization and an empty chain.
#[tracing::instrument(name = "identity::accounts::create", skip_all, fields(name = name))]
pub async fn create(
    conn: &mut Conn,
    name: &str,
    now: Timestamp,
) -> StoreResult<(Account, Organization)> {
    let account = Account {
        id: Id::new(),
        name: name.to_owned(),
        created_at: now,
    };
    sqlx::query("INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(account.id.to_string())
        .bind(name)
        .bind(now.micros())
        .execute(&mut *conn)
        .await
        .map_err(|e| StoreError::on_unique(e, "an account with this name already exists"))?;
    for role in BuiltinRole::ALL {
        roles::insert_builtin(conn, account.id, role, now).await?;
    }
    let default = Name::parse("name", "default", 200).expect("a valid name");
    let organization = organizations::create(conn, account.id, &default, now).await?;
    Ok((account, organization))
}

#[tracing::instrument(name = "identity::accounts::get", skip_all, fields(account = %account))]
pub async fn get(conn: &mut Conn, account: Id<Account>) -> StoreResult<Account> {
    sqlx::query_as::<_, AccountRow>("SELECT id, name, created_at FROM accounts WHERE id = $1")
        .bind(account.to_string())
        .fetch_optional(conn)
        .await
        .found()?
        .try_into()
}

#[tracing::instrument(name = "identity::accounts::by_name", skip_all, fields(name = name))]
pub async fn by_name(conn: &mut Conn, name: &str) -> StoreResult<Account> {
    sqlx::query_as::<_, AccountRow>("SELECT id, name, created_at FROM accounts WHERE name = $1")
        .bind(name)
        .fetch_optional(conn)
        .await
        .found()?
        .try_into()
}

#[tracing::instrument(name = "identity::accounts::list", skip_all)]
pub async fn list(conn: &mut Conn) -> StoreResult<Vec<Account>> {
    sqlx::query_as::<_, AccountRow>("SELECT id, name, created_at FROM accounts ORDER BY id")
        .fetch_all(conn)
        .await?
        .into_iter()
        .map(Account::try_from)
        .collect()
}

#[tracing::instrument(name = "identity::accounts::count", skip_all)]
pub async fn count(conn: &mut Conn) -> StoreResult<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
        .fetch_one(conn)
        .await?)
}
