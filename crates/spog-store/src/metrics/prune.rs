//! Forgetting old data in bounded batches: raw samples past the raw retention, rollups past
//! the metrics retention, and series silent for as long (with whatever they still hold).

use spog_core::Timestamp;

use crate::{Conn, Sql, StoreResult};

/// How many rows one [`prune`] deleted of each kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub samples: u64,
    pub rollups: u64,
    pub series: u64,
}

impl Pruned {
    /// Whether a kind filled its batch, so that more may be waiting.
    pub fn more(&self, limit: i64) -> bool {
        let limit = limit.max(0) as u64;
        self.samples >= limit || self.rollups >= limit || self.series >= limit
    }
}

/// Deletes at most `limit` raw samples older than `raw_before`, `limit` rollups of minutes
/// before `rollups_before` and `limit` series whose newest sample is older than that.
#[tracing::instrument(name = "metrics::prune", skip_all)]
pub async fn prune(
    conn: &mut Conn,
    raw_before: Timestamp,
    rollups_before: Timestamp,
    limit: i64,
) -> StoreResult<Pruned> {
    let mut sql = Sql::new(
        "DELETE FROM metric_samples WHERE (series_id, at) IN \
         (SELECT series_id, at FROM metric_samples WHERE at < ",
    );
    sql.bind(raw_before.micros())
        .push(" LIMIT ")
        .bind(limit)
        .push(")");
    let samples = sql.execute(conn).await?.rows_affected();

    let mut sql = Sql::new(
        "DELETE FROM metric_rollups WHERE (series_id, minute) IN \
         (SELECT series_id, minute FROM metric_rollups WHERE minute < ",
    );
    sql.bind(rollups_before.micros())
        .push(" LIMIT ")
        .bind(limit)
        .push(")");
    let rollups = sql.execute(conn).await?.rows_affected();

    let mut sql = Sql::new(
        "DELETE FROM metric_series WHERE id IN (SELECT id FROM metric_series WHERE last_at < ",
    );
    sql.bind(rollups_before.micros())
        .push(" LIMIT ")
        .bind(limit)
        .push(")");
    let series = sql.execute(conn).await?.rows_affected();
    Ok(Pruned {
        samples,
        rollups,
        series,
    })
}
