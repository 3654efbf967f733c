//! Silences end on their own: each round, the organizations with alerts held by a silence
//! release those no active silence matches any more (SPEC 7.4).

use std::time::Duration;

use spog_core::Timestamp;
use spog_store::alerting::alerts;
use tokio_util::sync::CancellationToken;

use crate::alerting::silenced;
use crate::events::Announcements;
use crate::state::AppState;

pub const NAME: &str = "silence_release";
/// Organizations looked at in one round.
const ORGANIZATIONS_PER_ROUND: u32 = 100;
pub const EVERY: Duration = Duration::from_secs(2);

/// One round; returns how many held alerts notified.
pub async fn run_once(state: &AppState, now: Timestamp) -> anyhow::Result<usize> {
    let holding = {
        let mut conn = state.store.conn().await?;
        alerts::organizations_holding(&mut conn, ORGANIZATIONS_PER_ROUND).await?
    };
    let mut notified = 0;
    for (account, organization) in holding {
        let mut announcements = Announcements::default();
        let mut tx = state.store.begin().await?;
        let released =
            silenced::release(&mut tx, account, organization, now, &mut announcements).await?;
        // Letting go of alerts no longer firing changes nothing anyone hears of.
        tx.commit_unaudited().await?;
        announcements.send(&state.bus).await;
        notified += released;
    }
    Ok(notified)
}

pub fn spawn(state: &AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    super::spawn_loop(state, NAME, EVERY, None, shutdown, |state| async move {
        run_once(&state, Timestamp::now()).await.map(|_| ())
    })
}
