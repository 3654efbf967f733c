use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Any, AnyPool, ConnectOptions, Executor, PgPool, Postgres};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::{StoreError, StoreResult, Tx};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// Write transactions take SQLite's write lock up front, so two writers never deadlock
    /// upgrading read locks; PostgreSQL locks rows as it goes.
    fn begin_statement(self) -> &'static str {
        match self {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }

    /// Appended to a `SELECT` that claims rows for this instance alone.
    pub fn skip_locked(self) -> &'static str {
        match self {
            // One writer at a time already: the transaction holds SQLite's write lock.
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// Appended to a `SELECT` of a row the transaction will update.
    pub fn for_update(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }

    /// Taken first by every delivery claim, so claims on several instances take turns and
    /// see each other's leases when they count a target's attempts in flight.
    pub fn claim_lock(self) -> Option<&'static str> {
        match self {
            // One writer at a time already.
            Backend::Sqlite => None,
            // Transaction-scoped: released at commit or rollback. The key spells "spogclam".
            Backend::Postgres => Some("SELECT pg_advisory_xact_lock(8318271001593667949)"),
        }
    }

    /// Run first in a transaction whose loss in a database crash is harmless (it is redone
    /// from what did reach the disk): its commit does not wait for the log flush. SQLite in
    /// WAL mode with `synchronous = NORMAL` already commits without one.
    pub fn without_flush_wait(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some("SET LOCAL synchronous_commit = off"),
        }
    }
}

/// A connection of [`Store::sqlite_reader`], kept as the spare when dropped if there is none.
pub(crate) struct SqliteReader {
    conn: Option<rusqlite::Connection>,
    store: Store,
}

impl std::ops::Deref for SqliteReader {
    type Target = rusqlite::Connection;
    fn deref(&self) -> &rusqlite::Connection {
        self.conn.as_ref().expect("held until dropped")
    }
}

impl Drop for SqliteReader {
    fn drop(&mut self) {
        let mut spare = self.store.inner.sqlite_spare.lock().expect("not poisoned");
        if spare.len() < BULK_CONNECTIONS as usize {
            spare.extend(self.conn.take());
        }
    }
}

#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Connections to PostgreSQL, or SQLite readers (SQLite always has one writer).
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// The database. Cheap to clone; every clone shares the pools.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    url: String,
    /// Reads. On PostgreSQL also writes.
    read: AnyPool,
    /// Writes. On SQLite a single connection, which serialises writers inside the process
    /// without busy-waiting; other processes wait on the busy timeout.
    write: AnyPool,
    /// On PostgreSQL, connections through its own driver for reads of many rows (walks along
    /// an audit chain): the Any driver copies every value of every row once more.
    bulk: Option<PgPool>,
    /// On SQLite, the database file, which walks and the linker read through connections of
    /// their own (see [`Store::sqlite_reader`]), and those connections between uses.
    sqlite_file: Option<PathBuf>,
    sqlite_spare: std::sync::Mutex<Vec<rusqlite::Connection>>,
    /// Reads of walks at once, all walks together: the linker's reads never wait for them.
    walk_reads: Arc<Semaphore>,
    audit_appended: Notify,
    deliveries_enqueued: Notify,
    linker: LinkerPace,
}

/// Back-pressure from the chain linker: while it is behind, writers wait for its next round
/// before they answer, so under overload the chain's lag stays bounded instead of growing.
#[derive(Default)]
struct LinkerPace {
    behind: AtomicBool,
    round_done: Notify,
}

impl Store {
    pub async fn connect(url: &str, options: &StoreOptions) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url).ok_or_else(|| {
            StoreError::Database(sqlx::Error::Configuration(
                "the database URL must start with sqlite: or postgres:".into(),
            ))
        })?;
        let (read, write, bulk, sqlite_file) = match backend {
            Backend::Sqlite => {
                let connect =
                    AnyConnectOptions::from_str(&sqlite_url(url))?.disable_statement_logging();
                let pool = |size: u32, pragmas: &'static str| {
                    AnyPoolOptions::new()
                        .max_connections(size)
                        .min_connections(1)
                        .acquire_timeout(options.acquire_timeout)
                        .after_connect(move |conn, _| {
                            Box::pin(async move {
                                conn.execute(sqlx::raw_sql(pragmas)).await.map(|_| ())
                            })
                        })
                };
                let write = pool(1, SQLITE_WRITER_PRAGMAS)
                    .connect_with(connect.clone())
                    .await?;
                let read = pool(options.max_connections.clamp(1, 8), SQLITE_READER_PRAGMAS)
                    .connect_with(connect)
                    .await?;
                let file = SqliteConnectOptions::from_str(&sqlite_url(url))?
                    .get_filename()
                    .to_owned();
                (read, write, None, Some(file))
            }
            Backend::Postgres => {
                let connect = AnyConnectOptions::from_str(url)?.disable_statement_logging();
                let pool = AnyPoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(connect)
                    .await?;
                // Connected on first use and closed when idle.
                let bulk = PgPoolOptions::new()
                    .max_connections(BULK_CONNECTIONS)
                    .min_connections(0)
                    .idle_timeout(Duration::from_secs(60))
                    .acquire_timeout(options.acquire_timeout)
                    .connect_lazy_with(
                        PgConnectOptions::from_str(url)?.disable_statement_logging(),
                    );
                (pool.clone(), pool, Some(bulk), None)
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                backend,
                url: url.to_owned(),
                read,
                write,
                bulk,
                sqlite_file,
                sqlite_spare: std::sync::Mutex::new(Vec::new()),
                walk_reads: Arc::new(Semaphore::new(WALK_READS)),
                audit_appended: Notify::new(),
                deliveries_enqueued: Notify::new(),
                linker: LinkerPace::default(),
            }),
        })
    }

    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    pub(crate) fn reader(&self) -> &AnyPool {
        &self.inner.read
    }

    pub(crate) fn writer(&self) -> &AnyPool {
        &self.inner.write
    }

    /// The URL this store was opened with (PostgreSQL listeners open their own connection).
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// A connection for reads.
    pub async fn conn(&self) -> StoreResult<PoolConnection<Any>> {
        Ok(self.inner.read.acquire().await?)
    }

    /// On PostgreSQL, a read connection through its own driver, for reads of many rows.
    pub(crate) async fn bulk_conn(&self) -> StoreResult<PoolConnection<Postgres>> {
        match &self.inner.bulk {
            Some(pool) => Ok(pool.acquire().await?),
            None => Err(not_this_backend()),
        }
    }

    /// Waited for by each read of a walk, so that walks at once share [`WALK_READS`].
    pub(crate) async fn walk_permit(&self) -> OwnedSemaphorePermit {
        self.inner
            .walk_reads
            .clone()
            .acquire_owned()
            .await
            .expect("never closed")
    }

    /// On SQLite, a read-only connection of its own through SQLite's library (rusqlite) for
    /// reads of many rows, which borrow each value where sqlx copies it; blocking, so used
    /// off the async workers. A few are kept when returned, with what their caches hold.
    pub(crate) fn sqlite_reader(&self) -> StoreResult<SqliteReader> {
        let Some(file) = &self.inner.sqlite_file else {
            return Err(not_this_backend());
        };
        let spare = self.inner.sqlite_spare.lock().expect("not poisoned").pop();
        let conn = match spare {
            Some(conn) => conn,
            None => {
                let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn = rusqlite::Connection::open_with_flags(file, flags)?;
                conn.execute_batch(
                    "PRAGMA query_only = ON; PRAGMA busy_timeout = 10000; \
                     PRAGMA cache_size = -8192;",
                )?;
                conn
            }
        };
        Ok(SqliteReader {
            conn: Some(conn),
            store: self.clone(),
        })
    }

    /// Starts the one transaction a mutation runs in.
    pub async fn begin(&self) -> StoreResult<Tx> {
        let tx = self
            .inner
            .write
            .begin_with(self.inner.backend.begin_statement())
            .await?;
        Ok(Tx::new(tx, self.clone()))
    }

    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.inner.read).await?;
        Ok(())
    }

    /// Woken whenever a transaction that recorded audit entries commits.
    pub fn audit_appended(&self) -> &Notify {
        &self.inner.audit_appended
    }

    /// Called by the linker after each round: whether it left the chain behind.
    pub(crate) fn linker_round_done(&self, behind: bool) {
        self.inner.linker.behind.store(behind, Ordering::Relaxed);
        self.inner.linker.round_done.notify_waiters();
    }

    /// Returns at once unless this instance's linker is behind; then after its next round
    /// (or a second, should the round be slow).
    pub(crate) async fn keep_pace_with_linker(&self) {
        let round_done = self.inner.linker.round_done.notified();
        let mut round_done = std::pin::pin!(round_done);
        round_done.as_mut().enable();
        if self.inner.linker.behind.load(Ordering::Relaxed) {
            let _ = tokio::time::timeout(Duration::from_secs(1), round_done).await;
        }
    }

    /// Woken whenever a transaction that created deliveries commits (a wake-up only: the
    /// rows are the truth, and the delivery engine also polls).
    pub fn deliveries_enqueued(&self) -> &Notify {
        &self.inner.deliveries_enqueued
    }

    pub async fn close(&self) {
        self.inner.read.close().await;
        self.inner.write.close().await;
        if let Some(bulk) = &self.inner.bulk {
            bulk.close().await;
        }
    }
}

/// Reads of walks at once per instance: the batches one walk reads ahead; walks at once share
/// them.
const WALK_READS: usize = 4;
/// Connections for reads of many rows per instance (PostgreSQL's own driver, SQLite's
/// library): the walks' reads of entries, their short reads of links, and the chain linker's.
const BULK_CONNECTIONS: u32 = WALK_READS as u32 + 2;

fn not_this_backend() -> StoreError {
    StoreError::Database(sqlx::Error::Configuration(
        "that connection belongs to the other backend".into(),
    ))
}

/// Every SQLite connection: WAL (readers never block the writer), statement journals in
/// memory rather than temporary files; then what is particular to the connection.
macro_rules! sqlite_pragmas {
    ($particular:literal) => {
        concat!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; ",
            "PRAGMA busy_timeout = 10000; PRAGMA temp_store = MEMORY; ",
            $particular
        )
    };
}
/// The one writer keeps 64 MiB of pages, so the indexes it updates stay in memory instead of
/// being spilled and re-read; checkpoints come every 16 MiB of WAL rather than every 4 MiB,
/// so pages written again and again are copied back less often.
const SQLITE_WRITER_PRAGMAS: &str =
    sqlite_pragmas!("PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 4000;");
/// Readers keep SQLite's default 2 MiB of pages each: a walk through a large trail takes a
/// pool connection per batch, and larger caches on all of them showed as server memory.
const SQLITE_READER_PRAGMAS: &str = sqlite_pragmas!("");

/// SQLite URLs create their file when missing.
fn sqlite_url(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writers_wait_for_a_linker_that_is_behind_until_its_next_round() {
        let store = Store::connect("sqlite::memory:", &StoreOptions::default())
            .await
            .unwrap();
        let prompt =
            tokio::time::timeout(Duration::from_millis(100), store.keep_pace_with_linker());
        assert!(prompt.await.is_ok(), "a linker that keeps up holds nobody");

        store.linker_round_done(true);
        let waiting = tokio::spawn({
            let store = store.clone();
            async move { store.keep_pace_with_linker().await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !waiting.is_finished(),
            "a writer waits while the linker is behind"
        );
        store.linker_round_done(false);
        tokio::time::timeout(Duration::from_millis(500), waiting)
            .await
            .expect("released by the next round")
            .unwrap();
    }
}
