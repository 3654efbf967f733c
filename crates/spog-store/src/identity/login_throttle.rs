//! The login throttle's counters (the policy is the server's): one row per key, locked for
//! the transaction that decides an attempt, so that instances sharing a database count every
//! attempt once and parallel attempts are decided one after another.

use spog_core::Timestamp;

use crate::rows::at;
use crate::{Conn, Sql, StoreResult, Tx};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counter {
    pub key: String,
    /// Failed (or not yet decided) attempts since the counter last started over.
    pub failures: i64,
    pub last_failure_at: Timestamp,
    pub blocked_until: Timestamp,
    pub familiar_until: Timestamp,
    /// When the row may be swept.
    pub expires_at: Timestamp,
}

type Row = (String, i64, i64, i64, i64, i64);

/// The counters of `keys`, created empty where absent and locked until `tx` ends. Keys are
/// locked in one order, so two attempts never wait for each other's locks.
#[tracing::instrument(name = "identity::login_throttle::lock", skip_all)]
pub async fn lock(tx: &mut Tx, keys: &[String]) -> StoreResult<Vec<Counter>> {
    let mut keys = keys.to_vec();
    keys.sort();
    keys.dedup();
    let mut insert = Sql::new(
        "INSERT INTO login_throttle \
         (key, failures, last_failure_at, blocked_until, familiar_until, expires_at) VALUES ",
    );
    for (n, key) in keys.iter().enumerate() {
        insert.push(if n == 0 { "(" } else { ", (" });
        insert.bind(key.clone()).push(", 0, 0, 0, 0, 0)");
    }
    insert.push(" ON CONFLICT (key) DO NOTHING");
    insert.execute(tx).await?;
    let for_update = tx.store().backend().for_update();
    let mut select = Sql::new(
        "SELECT key, failures, last_failure_at, blocked_until, familiar_until, expires_at \
         FROM login_throttle WHERE key IN ",
    );
    select
        .bind_list(keys)
        .push(" ORDER BY key")
        .push(for_update);
    let rows: Vec<Row> = select.fetch_all(tx).await?;
    Ok(rows.into_iter().map(counter).collect())
}

/// The counters of `keys` that exist, read without locking: a first look that lets an
/// attempt already refused go without a write.
#[tracing::instrument(name = "identity::login_throttle::peek", skip_all)]
pub async fn peek(conn: &mut Conn, keys: &[String]) -> StoreResult<Vec<Counter>> {
    let mut select = Sql::new(
        "SELECT key, failures, last_failure_at, blocked_until, familiar_until, expires_at \
         FROM login_throttle WHERE key IN ",
    );
    select.bind_list(keys.to_vec());
    let rows: Vec<Row> = select.fetch_all(conn).await?;
    Ok(rows.into_iter().map(counter).collect())
}

fn counter(
    (key, failures, last_failure_at, blocked_until, familiar_until, expires_at): Row,
) -> Counter {
    Counter {
        key,
        failures,
        last_failure_at: at(last_failure_at),
        blocked_until: at(blocked_until),
        familiar_until: at(familiar_until),
        expires_at: at(expires_at),
    }
}

#[tracing::instrument(name = "identity::login_throttle::save", skip_all)]
pub async fn save(conn: &mut Conn, counter: &Counter) -> StoreResult<()> {
    sqlx::query(
        "UPDATE login_throttle SET failures = $2, last_failure_at = $3, blocked_until = $4, \
         familiar_until = $5, expires_at = $6 WHERE key = $1",
    )
    .bind(&counter.key)
    .bind(counter.failures)
    .bind(counter.last_failure_at.micros())
    .bind(counter.blocked_until.micros())
    .bind(counter.familiar_until.micros())
    .bind(counter.expires_at.micros())
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes counters that have expired; returns how many.
#[tracing::instrument(name = "identity::login_throttle::sweep", skip_all)]
pub async fn sweep(conn: &mut Conn, now: Timestamp) -> StoreResult<u64> {
    Ok(
        sqlx::query("DELETE FROM login_throttle WHERE expires_at < $1")
            .bind(now.micros())
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

/// How many counters are kept (tests and health).
#[tracing::instrument(name = "identity::login_throttle::count", skip_all)]
pub async fn count(conn: &mut Conn) -> StoreResult<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM login_throttle")
        .fetch_one(conn)
        .await?)
}
