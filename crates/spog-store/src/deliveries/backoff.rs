//! Back-off of targets that keep timing out (issue 12): an attempt that uses its whole
//! timeout holds a slot all along, so a target that never answers is given fewer: after
//! `timeouts_before_backoff` timed-out attempts in a row its deliveries wait (no attempt
//! counted) for a back-off that grows with the timeouts, and it is probed one attempt at a
//! time until one answers. The state is a row per such target, so every instance sees it
//! and a restart keeps it.

use spog_core::Timestamp;

use super::ClaimPolicy;
use super::queue::TargetOutcomes;
use crate::{Conn, Sql, StoreResult};

/// Applies a recorded batch's outcomes: a target that answered leaves back-off; timeouts
/// add up (atomically, whichever instance records them) and set the back-off.
pub(super) async fn note_outcomes(
    conn: &mut Conn,
    policy: &ClaimPolicy,
    outcomes: &TargetOutcomes,
    now: Timestamp,
) -> StoreResult<()> {
    let answered: Vec<String> = outcomes
        .iter()
        .filter(|(_, (_, answered))| *answered)
        .map(|(target, _)| target.clone())
        .collect();
    if !answered.is_empty() {
        let mut sql = Sql::new("DELETE FROM delivery_targets WHERE target_id IN ");
        sql.bind_list(answered);
        sql.execute(&mut *conn).await?;
    }
    for (target, (timeouts, answered)) in outcomes {
        if *answered || *timeouts == 0 {
            continue;
        }
        let total: i64 = sqlx::query_scalar(
            "INSERT INTO delivery_targets (target_id, timeouts, backoff_until) VALUES ($1, $2, NULL) \
             ON CONFLICT (target_id) DO UPDATE SET timeouts = delivery_targets.timeouts + excluded.timeouts \
             RETURNING timeouts",
        )
        .bind(target)
        .bind(i64::from(*timeouts))
        .fetch_one(&mut *conn)
        .await?;
        let total = total.clamp(0, i64::from(u32::MAX)) as u32;
        if let Some(wait) = policy.backoff_after(total) {
            sqlx::query("UPDATE delivery_targets SET backoff_until = $2 WHERE target_id = $1")
                .bind(target)
                .bind(now.plus(wait).micros())
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// Forgets a target's back-off (it is gone, or its owner changed it).
pub async fn forget_target(conn: &mut Conn, target: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM delivery_targets WHERE target_id = $1")
        .bind(target)
        .execute(conn)
        .await?;
    Ok(())
}
