use thiserror::Error;

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Error)]
pub enum StoreError {
    /// Absent, or belonging to another account: the two are indistinguishable on purpose.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated; the text says which, for the client.
    #[error("{0}")]
    Conflict(String),
    /// The request named something that does not fit (an unknown role, a foreign cursor).
    #[error("{0}")]
    Invalid(#[from] spog_core::FieldError),
    /// A mutation tried to commit without recording its audit entry.
    #[error("a mutation must record an audit entry before it commits")]
    Unaudited,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// From the SQLite connections of walks (see [`crate::audit::walk`]).
    #[error("database error: {0}")]
    SqliteRead(#[from] rusqlite::Error),
    #[error(
        "the database's schema is at migration {database}, newer than this build of spog knows \
         (up to {build}): run the spog release that migrated it, or a newer one (migrations only go forward)"
    )]
    SchemaNewer { database: i64, build: i64 },
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Reading or writing what a row describes outside the database (a recording's content).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// Maps a unique-constraint violation to `Conflict(message)`; other errors pass through.
    pub fn on_unique(error: sqlx::Error, message: &str) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(message.to_owned())
            }
            _ => StoreError::Database(error),
        }
    }

    /// Maps a foreign-key violation (something still refers to the row) to `Conflict`.
    pub fn on_foreign_key(error: sqlx::Error, message: &str) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                StoreError::Conflict(message.to_owned())
            }
            _ => StoreError::Database(error),
        }
    }

    /// True for errors a retry of the whole transaction may cure (serialisation, busy).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => {
                let code = db.code();
                let code = code.as_deref().unwrap_or("");
                // PostgreSQL serialization_failure / deadlock_detected; SQLite BUSY / LOCKED.
                matches!(code, "40001" | "40P01" | "5" | "6" | "517" | "262")
            }
            StoreError::Database(sqlx::Error::PoolTimedOut) => true,
            _ => false,
        }
    }
}

/// `Ok(None)` → `NotFound`.
pub trait Found<T> {
    fn found(self) -> StoreResult<T>;
}

impl<T> Found<T> for Result<Option<T>, sqlx::Error> {
    fn found(self) -> StoreResult<T> {
        self?.ok_or(StoreError::NotFound)
    }
}

impl<T> Found<T> for StoreResult<Option<T>> {
    fn found(self) -> StoreResult<T> {
        self?.ok_or(StoreError::NotFound)
    }
}
