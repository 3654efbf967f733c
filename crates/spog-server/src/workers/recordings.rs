//! The recordings' two jobs. `recording_flush` writes what streams buffered at least every
//! quarter second, syncs it to the disk and records progress (size, duration, last activity)
//! every second, and closes recorders whose recording ended elsewhere. `recording_idle` ends
//! sessions and desktop recordings whose source went silent for `recording_idle_timeout`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use spog_core::audit::{Actor, Source};
use spog_core::model::Account;
use spog_core::recordings::{DesktopRecording, TerminalRecording};
use spog_core::{Id, Timestamp};
use spog_store::StoreError;
use spog_store::recordings::{self, EndReason};
use tokio_util::sync::CancellationToken;

use crate::recordings::kind::{Recorded, Recorder};
use crate::recordings::{ending, seal};
use crate::state::AppState;

pub const FLUSH: &str = "recording_flush";
pub const IDLE: &str = "recording_idle";

const FLUSH_EVERY: Duration = Duration::from_millis(250);
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// Flushes every open recorder; with `sync`, also syncs them and records their progress.
pub async fn flush_once(state: &AppState, sync: bool) -> anyhow::Result<()> {
    flush_kind::<TerminalRecording>(state, sync).await?;
    flush_kind::<DesktopRecording>(state, sync).await
}

async fn flush_kind<K: Recorded>(state: &AppState, sync: bool) -> anyhow::Result<()> {
    let recorders = state.recorders.all::<K>();
    let recorders = state
        .blocking
        .run(move || {
            for recorder in &recorders {
                let done = if sync {
                    recorder.sync()
                } else {
                    recorder.flush()
                };
                if let Err(error) = done {
                    tracing::warn!(recording = %recorder.id(), %error, "flushing a {} recording", K::NAME);
                }
            }
            recorders
        })
        .await;
    if !sync || recorders.is_empty() {
        return Ok(());
    }
    let mut ended = Vec::new();
    {
        // Bookkeeping, not a change of record: the recordings' starts and ends are audited.
        let mut conn = state.store.begin().await?;
        for recorder in &recorders {
            if recorder.streams().load(Ordering::Acquire) > 0 {
                recorder.touch();
            }
            if let Some(progress) = recorder.take_progress()
                && !recordings::record_progress(&mut conn, recorder.id(), &progress).await?
            {
                ended.push((recorder.account(), recorder.id()));
            }
        }
        conn.commit_unaudited().await?;
    }
    // Ended meanwhile (by another instance or the idle job): stop writing, and seal what
    // was written here.
    for (account, id) in ended {
        let Some(account) = account else {
            state.recorders.close(id).await;
            continue;
        };
        if let Err(error) = seal::after_end::<K>(state, account, id).await {
            tracing::warn!(recording = %id, %error, "sealing a {} recording that ended elsewhere", K::NAME);
        }
    }
    Ok(())
}

pub fn spawn_flush(state: &AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    let last_sync = std::sync::Arc::new(parking_lot::Mutex::new(std::time::Instant::now()));
    super::spawn_loop(state, FLUSH, FLUSH_EVERY, None, shutdown, move |state| {
        let last_sync = last_sync.clone();
        async move {
            let sync = {
                let mut last = last_sync.lock();
                let due = last.elapsed() >= SYNC_EVERY;
                if due {
                    *last = std::time::Instant::now();
                }
                due
            };
            flush_once(&state, sync).await
        }
    })
}

/// Ends what went silent before `now - recording_idle_timeout`; returns how many.
pub async fn idle_once(state: &AppState, now: Timestamp) -> anyhow::Result<usize> {
    let cutoff = now.minus(state.config.recording_idle_timeout);
    Ok(idle_kind::<TerminalRecording>(state, cutoff, now).await?
        + idle_kind::<DesktopRecording>(state, cutoff, now).await?)
}

async fn idle_kind<K: Recorded>(
    state: &AppState,
    cutoff: Timestamp,
    now: Timestamp,
) -> anyhow::Result<usize> {
    // A recording written on another instance is that instance's to end; once silent for
    // twice the timeout, that instance is taken for lost and this one ends it from what it
    // uploaded (SPEC 8.3).
    let lost_cutoff = now.minus(state.config.recording_idle_timeout * 2);
    let (silent, lost) = {
        let mut conn = state.store.conn().await?;
        (
            recordings::silent::<K>(&mut conn, cutoff, 100).await?,
            recordings::silent::<K>(&mut conn, lost_cutoff, 100).await?,
        )
    };
    let mut ended = 0;
    for (account, id) in silent {
        let reason = if written_here(state, account, id).await {
            EndReason::Idle
        } else if lost.contains(&(account, id)) {
            EndReason::InstanceLost
        } else {
            continue;
        };
        ended += usize::from(end_idle(state, account, id, reason, now).await?);
    }
    Ok(ended)
}

/// Whether this instance writes the recording now, or holds its spool file.
async fn written_here<K: Recorded>(state: &AppState, account: Id<Account>, id: Id<K>) -> bool {
    if state.recorders.open(id).is_some() {
        return true;
    }
    let spool = state
        .recorders
        .path(&spog_store::recordings::file_path(account, id));
    state.blocking.run(move || spool.exists()).await
}

/// Ends a silent recording; false if it ended meanwhile (by its source or another instance).
async fn end_idle<K: Recorded>(
    state: &AppState,
    account: Id<Account>,
    id: Id<K>,
    reason: EndReason,
    now: Timestamp,
) -> anyhow::Result<bool> {
    let idle_job = Actor::system(account, "recording idle timeout", Source::Scheduler);
    match ending::end(state, &idle_job, id, None, reason.into(), now).await {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict(_) | StoreError::NotFound) => Ok(false),
        Err(other) => Err(other.into()),
    }
}

pub fn spawn_idle(state: &AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    let every = (state.config.recording_idle_timeout / 6)
        .clamp(Duration::from_millis(100), Duration::from_secs(10));
    super::spawn_loop(state, IDLE, every, None, shutdown, |state| async move {
        idle_once(&state, Timestamp::now()).await.map(|_| ())
    })
}
