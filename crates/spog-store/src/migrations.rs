//! The schema's version against this build's (issue 20): migrations are forward-only, so a
//! build older than its database refuses to run against a schema it does not know, and
//! `spog migrate --check` tells what would be applied. Several instances starting together on
//! one PostgreSQL database migrate once: sqlx's migrator holds an advisory lock meanwhile.

use sqlx::migrate::Migrator;

use crate::store::{Backend, Store};
use crate::{StoreError, StoreResult};

static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");

/// Where the database's schema stands against this build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaStatus {
    /// The newest migration applied to the database (0: none).
    pub database: i64,
    /// The newest migration this build knows.
    pub build: i64,
    /// Migrations this build would apply: (version, description).
    pub pending: Vec<(i64, String)>,
}

impl SchemaStatus {
    /// The database was migrated by a newer build.
    pub fn is_newer_than_build(&self) -> bool {
        self.database > self.build
    }
}

fn migrator(backend: Backend) -> &'static Migrator {
    match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    }
}

impl Store {
    /// The schema's status, without changing anything.
    pub async fn schema_status(&self) -> StoreResult<SchemaStatus> {
        let migrator = migrator(self.backend());
        // A database never migrated has no bookkeeping table yet.
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_all(self.reader())
                .await
                .unwrap_or_default();
        let build = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        Ok(SchemaStatus {
            database: applied.iter().copied().max().unwrap_or(0),
            build,
            pending: migrator
                .iter()
                .filter(|m| !applied.contains(&m.version))
                .map(|m| (m.version, m.description.to_string()))
                .collect(),
        })
    }

    /// Applies what is pending; refuses a database whose schema is newer than this build.
    pub async fn migrate(&self) -> StoreResult<()> {
        let status = self.schema_status().await?;
        if status.is_newer_than_build() {
            return Err(StoreError::SchemaNewer {
                database: status.database,
                build: status.build,
            });
        }
        migrator(self.backend()).run(self.writer()).await?;
        Ok(())
    }

    /// True when every migration this build knows is applied.
    pub async fn migrations_applied(&self) -> StoreResult<bool> {
        Ok(self.schema_status().await?.pending.is_empty())
    }
}
