//! Each test gets its own database: a fresh SQLite file, and, when `SPOG_TEST_DATABASE_URL`
//! names a PostgreSQL server, a fresh PostgreSQL database that is dropped afterwards (even
//! when the test panics).

use std::path::PathBuf;
use std::sync::Once;

use sqlx::{Connection, Executor};

use crate::{Backend, Store, StoreOptions};

pub const POSTGRES_ENV: &str = "SPOG_TEST_DATABASE_URL";

/// A database created for one test.
pub struct TestDatabase {
    pub backend: Backend,
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    SqliteDir(PathBuf),
    PostgresDatabase { admin_url: String, name: String },
}

impl TestDatabase {
    /// Opens and migrates a store on this database.
    pub async fn store(&self) -> Store {
        let store = Store::connect(&self.url, &StoreOptions::default())
            .await
            .expect("connecting to the test database");
        store.migrate().await.expect("migrating the test database");
        store
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::SqliteDir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::PostgresDatabase { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop runs outside any runtime we may block, so use a thread of our own.
                let _ = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    if let Ok(runtime) = runtime {
                        runtime.block_on(async {
                            if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                                let drop =
                                    format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                                let _ = conn.execute(sqlx::AssertSqlSafe(drop)).await;
                            }
                        });
                    }
                })
                .join();
            }
        }
    }
}

/// A fresh database on every backend available to this test run.
pub async fn databases() -> Vec<TestDatabase> {
    let mut databases = vec![sqlite()];
    match std::env::var(POSTGRES_ENV) {
        Ok(url) if !url.is_empty() => databases.push(postgres(&url).await),
        _ => {
            static SKIPPED: Once = Once::new();
            SKIPPED.call_once(|| {
                eprintln!(
                    "PostgreSQL suite skipped: {POSTGRES_ENV} is not set; running on SQLite only"
                );
            });
        }
    }
    databases
}

/// A fresh SQLite database only.
pub fn sqlite() -> TestDatabase {
    let dir = std::env::temp_dir().join(format!("spog-test-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("creating a temporary directory");
    TestDatabase {
        backend: Backend::Sqlite,
        url: format!("sqlite://{}", dir.join("spog.db").display()),
        cleanup: Cleanup::SqliteDir(dir),
    }
}

/// A fresh PostgreSQL database on the server `admin_url` points at.
pub async fn postgres(admin_url: &str) -> TestDatabase {
    let name = format!("spog_test_{}", uuid::Uuid::now_v7().simple());
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("{POSTGRES_ENV}={admin_url} is not reachable: {e}"));
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .await
        .expect("creating a test database");
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin_url, String::new()),
    };
    // Keep scheme, credentials and server; replace the database name.
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    TestDatabase {
        backend: Backend::Postgres,
        url: format!("{base}/{name}{query}"),
        cleanup: Cleanup::PostgresDatabase {
            admin_url: admin_url.to_owned(),
            name,
        },
    }
}
