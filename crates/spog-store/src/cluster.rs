//! The instances of a cluster (SPEC 13.4): each says where its peers reach it, every 10 s, so
//! that an instance asked for a terminal on a host whose agent another holds can reach that one.

use spog_core::Timestamp;

use crate::{Conn, StoreResult};

/// Notes that `instance` is alive and reachable at `url`.
#[tracing::instrument(name = "cluster::register", skip_all, fields(instance = instance))]
pub async fn register(
    conn: &mut Conn,
    instance: &str,
    url: &str,
    now: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO cluster_instances (instance_id, cluster_url, seen_at) VALUES ($1, $2, $3) \
         ON CONFLICT (instance_id) DO UPDATE SET cluster_url = excluded.cluster_url, \
         seen_at = excluded.seen_at",
    )
    .bind(instance)
    .bind(url)
    .bind(now.micros())
    .execute(conn)
    .await?;
    Ok(())
}

/// Where `instance` is reached, if it said so since `seen_after`.
#[tracing::instrument(name = "cluster::url_of", skip_all, fields(instance = instance))]
pub async fn url_of(
    conn: &mut Conn,
    instance: &str,
    seen_after: Timestamp,
) -> StoreResult<Option<String>> {
    let url: Option<(String,)> = sqlx::query_as(
        "SELECT cluster_url FROM cluster_instances WHERE instance_id = $1 AND seen_at > $2",
    )
    .bind(instance)
    .bind(seen_after.micros())
    .fetch_optional(conn)
    .await?;
    Ok(url.map(|(url,)| url))
}

/// An instance that stops leaves (its row would otherwise read as alive for 30 s).
pub async fn leave(conn: &mut Conn, instance: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM cluster_instances WHERE instance_id = $1")
        .bind(instance)
        .execute(conn)
        .await?;
    Ok(())
}
