//! Online copies of an embedded database (issue 20).

use std::path::Path;

use crate::StoreResult;
use crate::store::{Backend, Store};

impl Store {
    /// Writes a consistent copy of a SQLite database to `path` (which must not exist) with
    /// `VACUUM INTO`, through a reader: writers go on meanwhile. False on PostgreSQL, whose
    /// backups are `pg_dump`'s.
    pub async fn copy_sqlite_to(&self, path: &Path) -> StoreResult<bool> {
        if self.backend() != Backend::Sqlite {
            return Ok(false);
        }
        let quoted = path.to_string_lossy().replace('\'', "''");
        sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM INTO '{quoted}'")))
            .execute(self.reader())
            .await?;
        Ok(true)
    }
}
