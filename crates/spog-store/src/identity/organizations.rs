use spog_core::model::{Account, Organization};
use spog_core::validate::Name;
use spog_core::{Id, Timestamp};

use crate::error::Found;
use crate::rows::{at, id};
use crate::{Conn, StoreError, StoreResult};

const DUPLICATE: &str = "an organization with this name already exists";

#[derive(sqlx::FromRow)]
struct OrganizationRow {
    id: String,
    name: String,
    created_at: i64,
}

impl TryFrom<OrganizationRow> for Organization {
    type Error = StoreError;
    fn try_from(row: OrganizationRow) -> StoreResult<Self> {
        Ok(Organization {
            id: id(&row.id)?,
            name: row.name,
            created_at: at(row.created_at),
        })
    }
}

#[tracing::instrument(name = "identity::organizations::create", skip_all, fields(account = %account, name = name.as_str()))]
pub async fn create(
    conn: &mut Conn,
    account: Id<Account>,
    name: &Name,
    now: Timestamp,
) -> StoreResult<Organization> {
    let organization = Organization {
        id: Id::new(),
        name: name.as_str().to_owned(),
        created_at: now,
    };
    sqlx::query(
        "INSERT INTO organizations (id, account_id, name, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(organization.id.to_string())
    .bind(account.to_string())
    .bind(name.as_str())
    .bind(now.micros())
    .execute(conn)
    .await
    .map_err(|e| StoreError::on_unique(e, DUPLICATE))?;
    Ok(organization)
}

#[tracing::instrument(name = "identity::organizations::get", skip_all, fields(account = %account, organization = %organization))]
pub async fn get(
    conn: &mut Conn,
    account: Id<Account>,
    organization: Id<Organization>,
) -> StoreResult<Organization> {
    sqlx::query_as::<_, OrganizationRow>(
        "SELECT id, name, created_at FROM organizations WHERE account_id = $1 AND id = $2",
    )
    .bind(account.to_string())
    .bind(organization.to_string())
    .fetch_optional(conn)
    .await
    .found()?
    .try_into()
}

/// All organizations of the account, oldest first (an account has few).
#[tracing::instrument(name = "identity::organizations::list", skip_all, fields(account = %account))]
pub async fn list(conn: &mut Conn, account: Id<Account>) -> StoreResult<Vec<Organization>> {
    sqlx::query_as::<_, OrganizationRow>(
        "SELECT id, name, created_at FROM organizations WHERE account_id = $1 ORDER BY id",
    )
    .bind(account.to_string())
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(Organization::try_from)
    .collect()
}

#[tracing::instrument(name = "identity::organizations::rename", skip_all, fields(account = %account, organization = %organization, name = name.as_str()))]
pub async fn rename(
    conn: &mut Conn,
    account: Id<Account>,
    organization: Id<Organization>,
    name: &Name,
) -> StoreResult<()> {
    let done = sqlx::query("UPDATE organizations SET name = $3 WHERE account_id = $1 AND id = $2")
        .bind(account.to_string())
        .bind(organization.to_string())
        .bind(name.as_str())
        .execute(conn)
        .await
        .map_err(|e| StoreError::on_unique(e, DUPLICATE))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

#[tracing::instrument(name = "identity::organizations::delete", skip_all, fields(account = %account, organization = %organization))]
pub async fn delete(
    conn: &mut Conn,
    account: Id<Account>,
    organization: Id<Organization>,
) -> StoreResult<()> {
    let done = sqlx::query("DELETE FROM organizations WHERE account_id = $1 AND id = $2")
        .bind(account.to_string())
        .bind(organization.to_string())
        .execute(conn)
        .await
        .map_err(|e| {
            StoreError::on_foreign_key(
                e,
                "the organization still has hosts or other objects; delete them first",
            )
        })?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
