//! Each host's agent: its credential (one per host, replaced when the host enrolls again,
//! kept revoked after a revocation) and the connection that counts, if any. The host row
//! carries what lists show (`agent_connected`, `agent_version`, `enrolled_at`, `facts`).

use std::collections::HashSet;

use spog_core::model::{Account, Host, HostAgent, Organization};
use spog_core::{Id, Timestamp};

use crate::error::Found;
use crate::identity::hosts::{COLUMNS as HOST_COLUMNS, HostRow};
use crate::rows::{at, flag, id, opt_at};
use crate::{Conn, Sql, StoreError, StoreResult};

/// A host of the organization with this hostname and no live agent credential: the host an
/// enrollment without a host of its own claims.
pub async fn unclaimed_host(
    conn: &mut Conn,
    account: Id<Account>,
    organization: Id<Organization>,
    hostname: &str,
) -> StoreResult<Option<Host>> {
    let mut sql = Sql::new(&format!(
        "SELECT {HOST_COLUMNS} FROM hosts WHERE account_id = "
    ));
    sql.bind(account.to_string())
        .push(" AND organization_id = ")
        .bind(organization.to_string())
        .push(" AND hostname = ")
        .bind(hostname.to_owned())
        .push(
            " AND NOT EXISTS (SELECT 1 FROM host_agents a WHERE a.host_id = hosts.id \
             AND a.revoked_at IS NULL)",
        );
    sql.fetch_optional::<HostRow>(conn)
        .await?
        .map(Host::try_from)
        .transpose()
}

/// Gives the host a new credential (replacing any it had) and notes the enrollment (and the
/// facts, when given); returns the id of the live credential it replaced, if any.
pub async fn enroll(
    conn: &mut Conn,
    account: Id<Account>,
    host: Id<Host>,
    credential: Id<HostAgent>,
    credential_hash: &str,
    facts: Option<&serde_json::Value>,
    now: Timestamp,
) -> StoreResult<Option<Id<HostAgent>>> {
    let replaced: Option<String> = sqlx::query_scalar(
        "SELECT credential_id FROM host_agents WHERE host_id = $1 AND revoked_at IS NULL",
    )
    .bind(host.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO host_agents (host_id, account_id, credential_id, credential_hash, enrolled_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (host_id) DO UPDATE SET credential_id = excluded.credential_id, \
         credential_hash = excluded.credential_hash, enrolled_at = excluded.enrolled_at, \
         revoked_at = NULL, connection_id = NULL, connected_at = NULL, protocol = NULL, \
         instance_id = NULL, remote_addr = NULL, terminal_enabled = 0",
    )
    .bind(host.to_string())
    .bind(account.to_string())
    .bind(credential.to_string())
    .bind(credential_hash)
    .bind(now.micros())
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE hosts SET enrolled_at = $2, agent_connected = 0, \
         facts = COALESCE($3, facts), agent_version = COALESCE($4, agent_version), updated_at = $2 \
         WHERE id = $1",
    )
    .bind(host.to_string())
    .bind(now.micros())
    .bind(facts.map(|f| f.to_string()))
    .bind(facts.and_then(agent_version))
    .execute(conn)
    .await?;
    replaced.as_deref().map(id).transpose()
}

fn agent_version(facts: &serde_json::Value) -> Option<String> {
    facts["agent_version"]
        .as_str()
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// A live agent credential, as authenticating with it needs.
#[derive(Clone, Debug)]
pub struct AgentCredential {
    pub account: Id<Account>,
    pub organization: Id<Organization>,
    pub host: Id<Host>,
    pub hostname: String,
    pub credential: Id<HostAgent>,
}

#[derive(sqlx::FromRow)]
struct CredentialRow {
    account_id: String,
    organization_id: String,
    host_id: String,
    hostname: String,
    credential_id: String,
}

impl TryFrom<CredentialRow> for AgentCredential {
    type Error = StoreError;
    fn try_from(row: CredentialRow) -> StoreResult<Self> {
        Ok(AgentCredential {
            account: id(&row.account_id)?,
            organization: id(&row.organization_id)?,
            host: id(&row.host_id)?,
            hostname: row.hostname,
            credential: id(&row.credential_id)?,
        })
    }
}

const CREDENTIAL_SELECT: &str = "SELECT h.account_id, h.organization_id, a.host_id, h.hostname, \
    a.credential_id FROM host_agents a JOIN hosts h ON h.id = a.host_id \
    WHERE a.revoked_at IS NULL AND ";

/// The live credential with this hash; `NotFound` when unknown or revoked.
pub async fn by_hash(conn: &mut Conn, credential_hash: &str) -> StoreResult<AgentCredential> {
    let mut sql = Sql::new(CREDENTIAL_SELECT);
    sql.push("a.credential_hash = ")
        .bind(credential_hash.to_owned());
    sql.fetch_optional::<CredentialRow>(conn)
        .await
        .found()?
        .try_into()
}

/// The live credential with this id in the account; `NotFound` when unknown or revoked.
pub async fn by_id(
    conn: &mut Conn,
    account: Id<Account>,
    credential: Id<HostAgent>,
) -> StoreResult<AgentCredential> {
    let mut sql = Sql::new(CREDENTIAL_SELECT);
    sql.push("a.credential_id = ")
        .bind(credential.to_string())
        .push(" AND a.account_id = ")
        .bind(account.to_string());
    sql.fetch_optional::<CredentialRow>(conn)
        .await
        .found()?
        .try_into()
}

#[derive(sqlx::FromRow)]
struct AgentRow {
    host_id: String,
    enrolled_at: i64,
    revoked_at: Option<i64>,
    connection_id: Option<String>,
    connected_at: Option<i64>,
    last_seen_at: Option<i64>,
    agent_version: Option<String>,
    protocol: Option<String>,
    instance_id: Option<String>,
    remote_addr: Option<String>,
    terminal_enabled: i64,
}

/// The host's agent; `NotFound` when the host never enrolled (or is another account's).
pub async fn get(conn: &mut Conn, account: Id<Account>, host: Id<Host>) -> StoreResult<HostAgent> {
    let row: AgentRow = sqlx::query_as(
        "SELECT a.host_id, a.enrolled_at, a.revoked_at, a.connection_id, a.connected_at, \
         a.last_seen_at, h.agent_version, a.protocol, a.instance_id, a.remote_addr, \
         a.terminal_enabled FROM host_agents a JOIN hosts h ON h.id = a.host_id \
         WHERE a.account_id = $1 AND a.host_id = $2",
    )
    .bind(account.to_string())
    .bind(host.to_string())
    .fetch_optional(conn)
    .await
    .found()?;
    let connected = row.connection_id.is_some();
    Ok(HostAgent {
        host_id: id(&row.host_id)?,
        enrolled_at: at(row.enrolled_at),
        revoked_at: opt_at(row.revoked_at),
        connected,
        connected_at: if connected {
            opt_at(row.connected_at)
        } else {
            None
        },
        last_seen_at: opt_at(row.last_seen_at),
        agent_version: row.agent_version,
        protocol: if connected { row.protocol } else { None },
        instance_id: if connected { row.instance_id } else { None },
        remote_addr: if connected { row.remote_addr } else { None },
        terminal_enabled: flag(row.terminal_enabled),
    })
}

/// Of `hosts` (a page of a list, at most [`page::MAX_LIMIT`](spog_core::page::MAX_LIMIT)),
/// those whose agent credential was revoked and not replaced since: what lists show as a
/// revoked agent.
pub async fn revoked_among(
    conn: &mut Conn,
    account: Id<Account>,
    hosts: &[Id<Host>],
) -> StoreResult<HashSet<Id<Host>>> {
    let hosts = &hosts[..hosts.len().min(spog_core::page::MAX_LIMIT as usize)];
    let mut sql = Sql::new("SELECT host_id FROM host_agents WHERE account_id = ");
    sql.bind(account.to_string())
        .push(" AND revoked_at IS NOT NULL AND host_id IN ")
        .bind_list(hosts.iter().map(|h| h.to_string()));
    sql.fetch_all::<(String,)>(conn)
        .await?
        .iter()
        .map(|(host,)| id(host))
        .collect()
}

/// Revokes the host's live credential; returns it, or `None` when there was none
/// (`NotFound` when the host never enrolled).
pub async fn revoke(
    conn: &mut Conn,
    account: Id<Account>,
    host: Id<Host>,
    now: Timestamp,
) -> StoreResult<Option<Id<HostAgent>>> {
    let current: Option<(String, Option<i64>)> = sqlx::query_as(
        "SELECT credential_id, revoked_at FROM host_agents WHERE account_id = $1 AND host_id = $2",
    )
    .bind(account.to_string())
    .bind(host.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let Some((credential, revoked_at)) = current else {
        return Err(StoreError::NotFound);
    };
    if revoked_at.is_some() {
        return Ok(None);
    }
    sqlx::query("UPDATE host_agents SET revoked_at = $2, connection_id = NULL WHERE host_id = $1")
        .bind(host.to_string())
        .bind(now.micros())
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE hosts SET agent_connected = 0, updated_at = $2 WHERE id = $1")
        .bind(host.to_string())
        .bind(now.micros())
        .execute(conn)
        .await?;
    Ok(Some(id(&credential)?))
}

/// A connection the agent opened, after its `hello`.
pub struct Connection<'a> {
    pub connection_id: &'a str,
    pub protocol: &'a str,
    pub instance_id: &'a str,
    pub remote_addr: Option<&'a str>,
    pub terminal_enabled: bool,
    pub agent_version: &'a str,
    pub facts: &'a serde_json::Value,
}

/// Makes `connection` the agent's connection (the one that counts from now on), with its
/// facts; `NotFound` when the credential was revoked or replaced meanwhile.
pub async fn connected(
    conn: &mut Conn,
    host: Id<Host>,
    credential: Id<HostAgent>,
    connection: &Connection<'_>,
    now: Timestamp,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE host_agents SET connection_id = $3, connected_at = $4, last_seen_at = $4, \
         protocol = $5, instance_id = $6, remote_addr = $7, terminal_enabled = $8 \
         WHERE host_id = $1 AND credential_id = $2 AND revoked_at IS NULL",
    )
    .bind(host.to_string())
    .bind(credential.to_string())
    .bind(connection.connection_id)
    .bind(now.micros())
    .bind(connection.protocol)
    .bind(connection.instance_id)
    .bind(connection.remote_addr)
    .bind(i64::from(connection.terminal_enabled))
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    sqlx::query(
        "UPDATE hosts SET agent_connected = 1, agent_version = $2, facts = $3, updated_at = $4 \
         WHERE id = $1",
    )
    .bind(host.to_string())
    .bind(connection.agent_version)
    .bind(connection.facts.to_string())
    .bind(now.micros())
    .execute(conn)
    .await?;
    Ok(())
}

/// New facts from the connected agent.
pub async fn facts(
    conn: &mut Conn,
    host: Id<Host>,
    facts: &serde_json::Value,
    now: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE hosts SET facts = $2, agent_version = COALESCE($3, agent_version), updated_at = $4 \
         WHERE id = $1",
    )
    .bind(host.to_string())
    .bind(facts.to_string())
    .bind(agent_version(facts))
    .bind(now.micros())
    .execute(conn)
    .await?;
    Ok(())
}

/// The connection is still there; false when it no longer counts (revoked or replaced).
pub async fn seen(
    conn: &mut Conn,
    host: Id<Host>,
    connection_id: &str,
    now: Timestamp,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE host_agents SET last_seen_at = $3 WHERE host_id = $1 AND connection_id = $2",
    )
    .bind(host.to_string())
    .bind(connection_id)
    .bind(now.micros())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The connection ended; unless another replaced it already, the agent is disconnected.
pub async fn disconnected(
    conn: &mut Conn,
    host: Id<Host>,
    connection_id: &str,
    now: Timestamp,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE host_agents SET connection_id = NULL, last_seen_at = $3 \
         WHERE host_id = $1 AND connection_id = $2",
    )
    .bind(host.to_string())
    .bind(connection_id)
    .bind(now.micros())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() > 0 {
        sqlx::query("UPDATE hosts SET agent_connected = 0, updated_at = $2 WHERE id = $1")
            .bind(host.to_string())
            .bind(now.micros())
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Forgets connections not seen since `cutoff` (their instance stopped without saying so);
/// returns how many.
pub async fn forget_stale(conn: &mut Conn, cutoff: Timestamp, now: Timestamp) -> StoreResult<u64> {
    let mut sql = Sql::new("UPDATE hosts SET agent_connected = 0, updated_at = ");
    sql.bind(now.micros())
        .push(
            " WHERE agent_connected = 1 AND id IN (SELECT host_id FROM host_agents \
             WHERE connection_id IS NULL OR last_seen_at < ",
        )
        .bind(cutoff.micros())
        .push(")");
    let done = sql.execute(&mut *conn).await?;
    let mut sql = Sql::new(
        "UPDATE host_agents SET connection_id = NULL WHERE connection_id IS NOT NULL AND last_seen_at < ",
    );
    sql.bind(cutoff.micros());
    sql.execute(conn).await?;
    Ok(done.rows_affected())
}
