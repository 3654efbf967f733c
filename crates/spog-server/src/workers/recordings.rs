//! The recordings' two jobs. `recording_flush` writes what streams buffered at least every
//! quarter second, syncs it to the disk and records progress (size, duration, last activity)
//! every second, and closes recorders whose recording ended elsewhere. `recording_idle` ends
//! sessions and desktop recordings whose source went silent for `recording_idle_timeout`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use spog_core::Timestamp;
use spog_store::recordings::{EndReason, desktop, terminal};
use tokio_util::sync::CancellationToken;

use crate::auth::system_entry;
use crate::state::AppState;

pub const FLUSH: &str = "recording_flush";
pub const IDLE: &str = "recording_idle";

/// Who the idle job's ends are on record as.
const IDLE_TIMEOUT: &str = "recording idle timeout";
const FLUSH_EVERY: Duration = Duration::from_millis(250);
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// Flushes every open recorder; with `sync`, also syncs them and records their progress.
pub async fn flush_once(state: &AppState, sync: bool) -> anyhow::Result<()> {
    let casts = state.recorders.casts();
    let frames = state.recorders.all_frames();
    let (casts, frames) = state.blocking.run(move || {
        for recorder in &casts {
            let done = if sync {
                recorder.sync()
            } else {
                recorder.flush()
            };
            if let Err(error) = done {
                tracing::warn!(recording = %recorder.id, %error, "flushing a terminal recording");
            }
        }
        for recorder in &frames {
            let done = if sync {
                recorder.sync()
            } else {
                recorder.flush()
            };
            if let Err(error) = done {
                tracing::warn!(recording = %recorder.id, %error, "flushing a desktop recording");
            }
        }
        (casts, frames)
    })
    .await;
    if !sync {
        return Ok(());
    }
    let mut ended_cast = Vec::new();
    let mut ended_frames = Vec::new();
    if casts.is_empty() && frames.is_empty() {
        return Ok(());
    }
    {
        // Bookkeeping, not a change of record: the recordings' starts and ends are audited.
        let mut conn = state.store.begin().await?;
        for recorder in &casts {
            if recorder.streams.load(Ordering::Acquire) > 0 {
                recorder.touch();
            }
            if let Some(progress) = recorder.take_progress()
                && !terminal::record_progress(&mut conn, recorder.id, &progress).await?
            {
                ended_cast.push(recorder.id);
            }
        }
        for recorder in &frames {
            if recorder.streams.load(Ordering::Acquire) > 0 {
                recorder.touch();
            }
            if let Some(progress) = recorder.take_progress()
                && !desktop::record_progress(&mut conn, recorder.id, &progress).await?
            {
                ended_frames.push(recorder.id);
            }
        }
        conn.commit_unaudited().await?;
    }
    // Ended meanwhile (by another instance or the idle job): stop writing.
    for id in ended_cast {
        state.recorders.close_cast(id).await;
    }
    for id in ended_frames {
        state.recorders.close_frames(id).await;
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
    let timeout = state.config.recording_idle_timeout;
    let cutoff = now.minus(timeout);
    let mut ended = 0;
    let silent = {
        let mut conn = state.store.conn().await?;
        terminal::silent(&mut conn, cutoff, 100).await?
    };
    for (account, id) in silent {
        let progress = state.recorders.close_cast(id).await;
        let mut tx = state.store.begin().await?;
        let recording = match terminal::end(
            &mut tx,
            account,
            id,
            progress.as_ref(),
            EndReason::Idle,
            now,
        )
        .await
        {
            Ok(recording) => recording,
            // Ended meanwhile by its source or another instance.
            Err(spog_store::StoreError::Conflict(_) | spog_store::StoreError::NotFound) => {
                continue;
            }
            Err(other) => return Err(other.into()),
        };
        let entry = system_entry(
            account,
            IDLE_TIMEOUT,
            "terminal_session.end",
            "terminal_session",
        )
        .resource(
            recording.session_id,
            format!("{}@{}", recording.user_email, recording.hostname),
        )
        .in_organization(recording.organization_id)
        .after(&recording)
        .metadata(json!({"reason": "idle", "silent_for_seconds": timeout.as_secs()}));
        spog_store::audit::record(&mut tx, entry).await?;
        tx.commit().await?;
        ended += 1;
    }
    let silent = {
        let mut conn = state.store.conn().await?;
        desktop::silent(&mut conn, cutoff, 100).await?
    };
    for (account, id) in silent {
        let progress = state.recorders.close_frames(id).await;
        let mut tx = state.store.begin().await?;
        let recording = match desktop::end(
            &mut tx,
            account,
            id,
            progress.as_ref(),
            EndReason::Idle,
            now,
        )
        .await
        {
            Ok(recording) => recording,
            Err(spog_store::StoreError::Conflict(_) | spog_store::StoreError::NotFound) => {
                continue;
            }
            Err(other) => return Err(other.into()),
        };
        let entry = system_entry(
            account,
            IDLE_TIMEOUT,
            "desktop_recording.end",
            "desktop_recording",
        )
        .resource(
            recording.id,
            format!("{}@{}", recording.user_email, recording.hostname),
        )
        .in_organization(recording.organization_id)
        .after(&recording)
        .metadata(json!({"reason": "idle", "silent_for_seconds": timeout.as_secs()}));
        spog_store::audit::record(&mut tx, entry).await?;
        tx.commit().await?;
        ended += 1;
    }
    Ok(ended)
}

pub fn spawn_idle(state: &AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    let every = (state.config.recording_idle_timeout / 6)
        .clamp(Duration::from_millis(100), Duration::from_secs(10));
    super::spawn_loop(state, IDLE, every, None, shutdown, |state| async move {
        idle_once(&state, Timestamp::now()).await.map(|_| ())
    })
}
