//! PostgreSQL `NOTIFY`/`LISTEN`, so that instances sharing a database can tell each other
//! that something happened (the database stays the source of truth).

use crate::{Store, StoreResult};

#[tracing::instrument(name = "signals::notify", skip_all, fields(channel = channel))]
pub async fn notify(store: &Store, channel: &str, payload: &str) -> StoreResult<()> {
    let mut conn = store.conn().await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A dedicated connection listening on one channel.
pub struct Listener(sqlx::postgres::PgListener);

impl Listener {
    pub async fn connect(store: &Store, channel: &str) -> StoreResult<Self> {
        let mut listener = sqlx::postgres::PgListener::connect(store.url()).await?;
        listener.listen(channel).await?;
        Ok(Self(listener))
    }

    /// The next payload; an error means the connection was lost.
    pub async fn recv(&mut self) -> StoreResult<String> {
        Ok(self.0.recv().await?.payload().to_owned())
    }
}
