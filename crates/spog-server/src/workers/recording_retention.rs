//! `recording_retention` (SPEC 8.3): deletes terminal and desktop recordings that ended longer
//! ago than their account keeps them (its `retention_days`, else `recording_retention`) and
//! are not on legal hold, each deletion audited as the scheduler's. Instances sharing a
//! database may run it together: a recording's row goes to one of them, which alone audits it.

use std::time::Duration;

use spog_core::audit::{Actor, Source};
use spog_core::model::Account;
use spog_core::recordings::{DesktopRecording, TerminalRecording};
use spog_core::{Id, Timestamp};
use spog_store::StoreError;
use spog_store::recordings;
use tokio_util::sync::CancellationToken;

use crate::recordings::deletion::{self, Deletion, Why};
use crate::recordings::kind::Recorded;
use crate::state::AppState;

pub const NAME: &str = "recording_retention";

/// Recordings deleted per account and kind in one run, and accounts read at once: a run
/// catching up on a large backlog leaves the rest to the next.
const BATCH: u32 = 500;
const DAY: Duration = Duration::from_secs(86_400);

/// Deletes what is past retention as of `now`. Returns the recordings deleted.
pub async fn run_once(state: &AppState, now: Timestamp) -> anyhow::Result<usize> {
    let mut deleted = 0;
    let mut after = None;
    loop {
        let accounts = {
            let mut conn = state.store.conn().await?;
            recordings::retention_by_account(&mut conn, after, BATCH).await?
        };
        for &(account, days) in &accounts {
            let kept = match days {
                Some(days) => Some(DAY * u32::try_from(days).unwrap_or(u32::MAX)),
                None => state.config.recording_retention,
            };
            if let Some(kept) = kept {
                let cutoff = now.minus(kept);
                deleted += expire::<TerminalRecording>(state, account, cutoff).await?;
                deleted += expire::<DesktopRecording>(state, account, cutoff).await?;
            }
        }
        match accounts.last() {
            Some(&(last, _)) if accounts.len() == BATCH as usize => after = Some(last),
            _ => return Ok(deleted),
        }
    }
}

async fn expire<R: Recorded>(
    state: &AppState,
    account: Id<Account>,
    cutoff: Timestamp,
) -> anyhow::Result<usize> {
    let expired = {
        let mut conn = state.store.conn().await?;
        recordings::expired::<R>(&mut conn, account, cutoff, BATCH).await?
    };
    let job = Actor::system(account, "recording retention", Source::Scheduler);
    let mut deleted = 0;
    for id in expired {
        match deletion::delete::<R>(state, &job, id, Why::Retention).await {
            Ok(Deletion::Deleted(_)) => deleted += 1,
            // Held meanwhile, or deleted by another instance.
            Ok(Deletion::Held | Deletion::Active) | Err(StoreError::NotFound) => {}
            Err(other) => return Err(other.into()),
        }
    }
    Ok(deleted)
}

/// Every `min(1h, recording_retention / 2)`: an account's retention is at least a day.
pub fn spawn(state: &AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    let hour = Duration::from_secs(3600);
    let every = state
        .config
        .recording_retention
        .map_or(hour, |kept| (kept / 2).clamp(Duration::from_secs(1), hour));
    super::spawn_loop(state, NAME, every, None, shutdown, |state| async move {
        run_once(&state, Timestamp::now()).await.map(|_| ())
    })
}
