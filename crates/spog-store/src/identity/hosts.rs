use spog_core::model::{Account, Host, HostAccess, Organization, User};
use spog_core::page::{Cursor, Page, key_text};
use spog_core::{Id, Timestamp};

use crate::error::Found;
use crate::rows::{at, flag, from_json, id, opt_at};
use crate::{Conn, Sql, StoreError, StoreResult};

pub(crate) const COLUMNS: &str = "id, organization_id, hostname, name, online, last_heartbeat_at, \
    facts, agent_connected, agent_version, enrolled_at, created_at, updated_at";
const DUPLICATE: &str = "a host with this hostname already exists in the organization";

#[derive(sqlx::FromRow)]
pub(crate) struct HostRow {
    id: String,
    organization_id: String,
    hostname: String,
    name: String,
    online: i64,
    last_heartbeat_at: Option<i64>,
    facts: Option<String>,
    agent_connected: i64,
    agent_version: Option<String>,
    enrolled_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<HostRow> for Host {
    type Error = StoreError;
    fn try_from(row: HostRow) -> StoreResult<Self> {
        Ok(Host {
            id: id(&row.id)?,
            organization_id: id(&row.organization_id)?,
            hostname: row.hostname,
            name: row.name,
            online: flag(row.online),
            last_heartbeat_at: opt_at(row.last_heartbeat_at),
            facts: row.facts.as_deref().map(from_json).transpose()?,
            agent_connected: flag(row.agent_connected),
            agent_version: row.agent_version,
            enrolled_at: opt_at(row.enrolled_at),
            created_at: at(row.created_at),
            updated_at: at(row.updated_at),
        })
    }
}

#[tracing::instrument(name = "identity::hosts::create", skip_all, fields(account = %account, organization = %organization, name = name))]
pub async fn create(
    conn: &mut Conn,
    account: Id<Account>,
    organization: Id<Organization>,
    hostname: &str,
    name: &str,
    now: Timestamp,
) -> StoreResult<Host> {
    let host: Id<Host> = Id::new();
    sqlx::query(
        "INSERT INTO hosts (id, account_id, organization_id, hostname, name, online, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 0, $6, $6)",
    )
    .bind(host.to_string())
    .bind(account.to_string())
    .bind(organization.to_string())
    .bind(hostname)
    .bind(name)
    .bind(now.micros())
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::on_unique(e, DUPLICATE))?;
    get(conn, account, host).await
}

#[tracing::instrument(name = "identity::hosts::get", skip_all, fields(account = %account, host = %host))]
pub async fn get(conn: &mut Conn, account: Id<Account>, host: Id<Host>) -> StoreResult<Host> {
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM hosts WHERE account_id = "));
    sql.bind(account.to_string())
        .push(" AND id = ")
        .bind(host.to_string());
    sql.fetch_optional::<HostRow>(conn)
        .await
        .found()?
        .try_into()
}

/// Which of `ids` are hosts of the organization, in one query (a list is bounded by its
/// request type, so the statement's parameters are too).
#[tracing::instrument(name = "identity::hosts::of_organization", skip_all, fields(account = %account, organization = %organization))]
pub async fn of_organization(
    conn: &mut Conn,
    account: Id<Account>,
    organization: Id<Organization>,
    ids: &[Id<Host>],
) -> StoreResult<Vec<Id<Host>>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new("SELECT id FROM hosts WHERE account_id = ");
    sql.bind(account.to_string())
        .push(" AND organization_id = ")
        .bind(organization.to_string())
        .push(" AND id IN ");
    sql.bind_list(ids.iter().map(|id| id.to_string()));
    let rows: Vec<(String,)> = sql.fetch_all(conn).await?;
    rows.iter().map(|(found,)| id(found)).collect()
}

/// Which hosts a listing may show.
pub enum HostScope {
    All,
    GrantedTo(Id<User>),
}

#[tracing::instrument(name = "identity::hosts::list", skip_all, fields(account = %account, organization = ?organization))]
pub async fn list(
    conn: &mut Conn,
    account: Id<Account>,
    organization: Option<Id<Organization>>,
    scope: &HostScope,
    limit: u32,
    cursor: Option<&str>,
) -> StoreResult<Page<Host>> {
    let organization_text = organization.map(|o| o.to_string()).unwrap_or_default();
    let granted = match scope {
        HostScope::All => String::new(),
        HostScope::GrantedTo(user) => user.to_string(),
    };
    let scope_cursor =
        Cursor::scope(&[&account.to_string(), "hosts", &organization_text, &granted]);
    let after = scope_cursor.decode(cursor)?;
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM hosts WHERE account_id = "));
    sql.bind(account.to_string());
    if let Some(organization) = organization {
        sql.push(" AND organization_id = ")
            .bind(organization.to_string());
    }
    if let HostScope::GrantedTo(user) = scope {
        sql.push(" AND id IN (SELECT host_id FROM host_access WHERE user_id = ")
            .bind(user.to_string())
            .push(")");
    }
    if let Some(key) = after {
        sql.push(" AND id > ").bind(key_text(&key, 0)?);
    }
    sql.push(" ORDER BY id LIMIT ").bind(i64::from(limit) + 1);
    let hosts = sql
        .fetch_all::<HostRow>(conn)
        .await?
        .into_iter()
        .map(Host::try_from)
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Page::from_rows(hosts, limit, &scope_cursor, |h| {
        vec![h.id.to_string().into()]
    }))
}

/// How many hosts a scope sees, and how many of them are online.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostCounts {
    pub total: i64,
    pub online: i64,
}

#[tracing::instrument(name = "identity::hosts::counts", skip_all, fields(account = %account))]
pub async fn counts(
    conn: &mut Conn,
    account: Id<Account>,
    scope: &HostScope,
) -> StoreResult<HostCounts> {
    // COUNT, not SUM: PostgreSQL sums BIGINT into NUMERIC, which the Any driver cannot read.
    let mut sql = Sql::new(
        "SELECT COUNT(*), COUNT(CASE WHEN online = 1 THEN 1 END) FROM hosts WHERE account_id = ",
    );
    sql.bind(account.to_string());
    if let HostScope::GrantedTo(user) = scope {
        sql.push(" AND id IN (SELECT host_id FROM host_access WHERE user_id = ")
            .bind(user.to_string())
            .push(")");
    }
    let (total, online) = sql.fetch_one::<(i64, i64)>(conn).await?;
    Ok(HostCounts { total, online })
}

#[tracing::instrument(name = "identity::hosts::rename", skip_all, fields(account = %account, host = %host, name = name))]
pub async fn rename(
    conn: &mut Conn,
    account: Id<Account>,
    host: Id<Host>,
    name: &str,
    now: Timestamp,
) -> StoreResult<Host> {
    let done = sqlx::query(
        "UPDATE hosts SET name = $3, updated_at = $4 WHERE account_id = $1 AND id = $2",
    )
    .bind(account.to_string())
    .bind(host.to_string())
    .bind(name)
    .bind(now.micros())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    get(conn, account, host).await
}

#[tracing::instrument(name = "identity::hosts::delete", skip_all, fields(account = %account, host = %host))]
pub async fn delete(conn: &mut Conn, account: Id<Account>, host: Id<Host>) -> StoreResult<()> {
    let done = sqlx::query("DELETE FROM hosts WHERE account_id = $1 AND id = $2")
        .bind(account.to_string())
        .bind(host.to_string())
        .execute(conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Grants access; granting twice is harmless. Returns whether a grant was added.
#[tracing::instrument(name = "identity::hosts::grant", skip_all, fields(account = %account, host = %host, user = %user))]
pub async fn grant(
    conn: &mut Conn,
    account: Id<Account>,
    host: Id<Host>,
    user: Id<User>,
    now: Timestamp,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO host_access (host_id, user_id, account_id, granted_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (host_id, user_id) DO NOTHING",
    )
    .bind(host.to_string())
    .bind(user.to_string())
    .bind(account.to_string())
    .bind(now.micros())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Revokes access. Returns whether a grant existed.
#[tracing::instrument(name = "identity::hosts::revoke", skip_all, fields(account = %account, host = %host, user = %user))]
pub async fn revoke(
    conn: &mut Conn,
    account: Id<Account>,
    host: Id<Host>,
    user: Id<User>,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "DELETE FROM host_access WHERE account_id = $1 AND host_id = $2 AND user_id = $3",
    )
    .bind(account.to_string())
    .bind(host.to_string())
    .bind(user.to_string())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

#[tracing::instrument(name = "identity::hosts::access_list", skip_all, fields(account = %account, host = %host))]
pub async fn access_list(
    conn: &mut Conn,
    account: Id<Account>,
    host: Id<Host>,
) -> StoreResult<Vec<HostAccess>> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT host_id, user_id, granted_at FROM host_access WHERE account_id = $1 AND host_id = $2 ORDER BY user_id",
    )
    .bind(account.to_string())
    .bind(host.to_string())
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(host, user, granted)| {
            Ok(HostAccess {
                host_id: id(&host)?,
                user_id: id(&user)?,
                granted_at: at(granted),
            })
        })
        .collect()
}

#[tracing::instrument(name = "identity::hosts::has_access", skip_all, fields(account = %account, host = %host, user = %user))]
pub async fn has_access(
    conn: &mut Conn,
    account: Id<Account>,
    host: Id<Host>,
    user: Id<User>,
) -> StoreResult<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM host_access WHERE account_id = $1 AND host_id = $2 AND user_id = $3",
    )
    .bind(account.to_string())
    .bind(host.to_string())
    .bind(user.to_string())
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
}

/// Records a heartbeat; returns whether it brought the host online. Of concurrent
/// heartbeats of an offline host, exactly one does.
#[tracing::instrument(name = "identity::hosts::heartbeat", skip_all, fields(account = %account, host = %host))]
pub async fn heartbeat(
    conn: &mut Conn,
    account: Id<Account>,
    host: Id<Host>,
    now: Timestamp,
) -> StoreResult<bool> {
    let came_online = sqlx::query(
        "UPDATE hosts SET online = 1, last_heartbeat_at = $3, updated_at = $3 \
         WHERE account_id = $1 AND id = $2 AND online = 0",
    )
    .bind(account.to_string())
    .bind(host.to_string())
    .bind(now.micros())
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !came_online {
        let done = sqlx::query(
            "UPDATE hosts SET last_heartbeat_at = $3 WHERE account_id = $1 AND id = $2",
        )
        .bind(account.to_string())
        .bind(host.to_string())
        .bind(now.micros())
        .execute(conn)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
    }
    Ok(came_online)
}

/// Marks offline every online host silent since before `cutoff`, in any account; returns
/// them with their accounts. Of instances doing this at once, each host goes to one.
#[tracing::instrument(name = "identity::hosts::mark_silent_offline", skip_all)]
pub async fn mark_silent_offline(
    conn: &mut Conn,
    cutoff: Timestamp,
    now: Timestamp,
) -> StoreResult<Vec<(Id<Account>, Host)>> {
    let mut sql = Sql::new("UPDATE hosts SET online = 0, updated_at = ");
    sql.bind(now.micros())
        .push(" WHERE online = 1 AND last_heartbeat_at < ")
        .bind(cutoff.micros())
        .push(&format!(" RETURNING account_id, {COLUMNS}"));
    let rows: Vec<SilencedRow> = sql.fetch_all(conn).await?;
    rows.into_iter()
        .map(|row| Ok((id(&row.account_id)?, Host::try_from(row.host)?)))
        .collect()
}

#[derive(sqlx::FromRow)]
struct SilencedRow {
    account_id: String,
    #[sqlx(flatten)]
    host: HostRow,
}
