//! `spog recordings copy-to-storage` (SPEC 8.3, 11.1): moves the ended recordings sealed into
//! the data directory to the configured object storage. Each is hashed before it leaves and
//! again as uploaded, switched over in an audited transaction only one run can win, and
//! removed from the data directory once that commits; one that fails a check stays where it
//! is and is reported. Recordings that ended before sealing existed have no hash to check:
//! they are reported as skipped and stay readable from the data directory. Active recordings
//! are not touched (they are sealed to the configured storage when they end).

use std::fmt;

use serde_json::json;
use spog_core::Id;
use spog_core::audit::{Actor, Source};
use spog_core::model::Account;
use spog_core::recordings::{DesktopRecording, TerminalRecording};
use spog_store::StoreError;
use spog_store::identity::hosts::HostScope;
use spog_store::recordings;

use super::content::{self, Source as Content};
use super::kind::Recorded;
use super::seal;
use super::storage::Backend;
use crate::state::AppState;

/// A progress line after every this many recordings.
pub const PROGRESS_EVERY: u64 = 100;
/// Recordings listed at a time: memory stays bounded however many there are.
const PAGE: u32 = 100;

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub moved: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Bytes uploaded (compressed, as stored).
    pub bytes: u64,
}

impl Summary {
    fn checked(&self) -> u64 {
        self.moved + self.skipped + self.failed
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "moved {}, skipped {}, failed {}, {} bytes moved",
            self.moved, self.skipped, self.failed, self.bytes
        )
    }
}

/// What became of one recording.
enum Outcome {
    Moved { bytes: u64 },
    Skipped(String),
    Failed(String),
}

/// Moves every ended recording kept in the data directory to the configured object storage,
/// telling `say` about each one skipped or failed, and its progress. Refused when the
/// configured storage is the data directory, or does not answer.
pub async fn run(state: &AppState, say: &mut dyn FnMut(String)) -> anyhow::Result<Summary> {
    if state.storage.current == Backend::Local {
        anyhow::bail!(
            "recordings_storage is `local`: configure the object storage to move the recordings \
             to (recordings_storage = \"s3://bucket/prefix\" and the s3_* keys), then run this again"
        );
    }
    state.storage.probe().await.map_err(anyhow::Error::msg)?;
    let mut run = Run {
        state,
        say,
        summary: Summary::default(),
    };
    run.move_all::<TerminalRecording>().await?;
    run.move_all::<DesktopRecording>().await?;
    run.skip_unsealed::<TerminalRecording>().await?;
    run.skip_unsealed::<DesktopRecording>().await?;
    Ok(run.summary)
}

struct Run<'a> {
    state: &'a AppState,
    say: &'a mut dyn FnMut(String),
    summary: Summary,
}

impl Run<'_> {
    async fn move_all<R: Recorded>(&mut self) -> anyhow::Result<()> {
        let local = Some(Backend::Local.as_str());
        let mut after = None;
        loop {
            let page = {
                let mut conn = self.state.store.conn().await?;
                recordings::ended_in::<R>(&mut conn, local, after, PAGE).await?
            };
            let Some(&(_, last)) = page.last() else {
                return Ok(());
            };
            after = Some(last);
            for (account, id) in page {
                let outcome = move_one::<R>(self.state, account, id).await?;
                self.note::<R>(account, id, outcome);
            }
        }
    }

    async fn skip_unsealed<R: Recorded>(&mut self) -> anyhow::Result<()> {
        let mut after = None;
        loop {
            let page = {
                let mut conn = self.state.store.conn().await?;
                recordings::ended_in::<R>(&mut conn, None, after, PAGE).await?
            };
            let Some(&(_, last)) = page.last() else {
                return Ok(());
            };
            after = Some(last);
            for (account, id) in page {
                let why = "it ended before recordings were sealed and has no hash to check; \
                           it stays readable from the data directory";
                self.note::<R>(account, id, Outcome::Skipped(why.to_owned()));
            }
        }
    }

    fn note<R: Recorded>(&mut self, account: Id<Account>, id: Id<R>, outcome: Outcome) {
        let what = format!("{} recording {id} (account {account})", R::NAME);
        match outcome {
            Outcome::Moved { bytes } => {
                self.summary.moved += 1;
                self.summary.bytes += bytes;
            }
            Outcome::Skipped(why) => {
                self.summary.skipped += 1;
                (self.say)(format!("skipped {what}: {why}"));
            }
            Outcome::Failed(why) => {
                self.summary.failed += 1;
                (self.say)(format!(
                    "FAILED {what}: {why}; it stays in the data directory"
                ));
            }
        }
        if self.summary.checked().is_multiple_of(PROGRESS_EVERY) {
            (self.say)(format!(
                "{} recordings done: {}",
                self.summary.checked(),
                self.summary
            ));
        }
    }
}

/// Moves one recording kept in the data directory to the current storage. Store errors end
/// the run; anything wrong with this recording's content fails it alone, unless it was moved
/// (or deleted) meanwhile: another run that moved it first removes the local object this one
/// may still be reading.
async fn move_one<R: Recorded>(
    state: &AppState,
    account: Id<Account>,
    id: Id<R>,
) -> anyhow::Result<Outcome> {
    let outcome = try_move::<R>(state, account, id).await?;
    if matches!(outcome, Outcome::Failed(_))
        && still_local::<R>(state, account, id).await?.is_none()
    {
        return Ok(Outcome::Skipped("moved or deleted meanwhile".into()));
    }
    Ok(outcome)
}

/// The recording, if it is still kept in the data directory.
async fn still_local<R: Recorded>(
    state: &AppState,
    account: Id<Account>,
    id: Id<R>,
) -> anyhow::Result<Option<R>> {
    let mut conn = state.store.conn().await?;
    match recordings::get::<R>(&mut conn, account, id, &HostScope::All).await {
        Ok(recording) => Ok((recording.stored().storage.as_deref()
            == Some(Backend::Local.as_str()))
        .then_some(recording)),
        Err(StoreError::NotFound) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

async fn try_move<R: Recorded>(
    state: &AppState,
    account: Id<Account>,
    id: Id<R>,
) -> anyhow::Result<Outcome> {
    let Some(recording) = still_local::<R>(state, account, id).await? else {
        return Ok(Outcome::Skipped("moved or deleted meanwhile".into()));
    };
    let (from, to) = (Backend::Local, state.storage.current);
    let Some(expected) = recording.stored().sha256.clone() else {
        return Ok(Outcome::Failed("its row has no sha256".into()));
    };
    let Content::Sealed(local) = content::source(state, account, &recording).await? else {
        return Ok(Outcome::Failed("it is not sealed".into()));
    };
    if let Err(why) = hashes_to(state, &local, &expected).await {
        return Ok(Outcome::Failed(format!("in the data directory: {why}")));
    }
    let key = seal::key(account, id);
    let bytes = match state
        .storage
        .objects(from)?
        .copy_to(&key, state.storage.current())
        .await
    {
        Ok(bytes) => bytes,
        Err(error) => return Ok(Outcome::Failed(format!("uploading: {error}"))),
    };
    // What the storage now holds, read back. Left there on a mismatch: the row still names
    // the data directory, and another run may have uploaded the same object.
    let mut uploaded = local.clone();
    uploaded.backend = to;
    if let Err(why) = hashes_to(state, &uploaded, &expected).await {
        return Ok(Outcome::Failed(format!("read back after uploading: {why}")));
    }
    let location = state.storage.current().shown(&key);
    let mut tx = state.store.begin().await?;
    if !recordings::move_storage::<R>(&mut tx, account, id, from.as_str(), to.as_str(), &location)
        .await?
    {
        return Ok(Outcome::Skipped("moved or deleted meanwhile".into()));
    }
    let moved: R = recordings::get(&mut tx, account, id, &HostScope::All).await?;
    let mover = Actor::system(account, "recording storage", Source::Cli);
    let entry = mover
        .did(R::MOVED, &recording.kept())
        .before(&recording)
        .after(&moved)
        .metadata(json!({"sha256": expected, "stored_bytes": bytes,
            "from": from.as_str(), "to": to.as_str()}));
    tx.record(entry).await?;
    tx.commit().await?;
    if let Err(error) = state.storage.objects(from)?.delete(&key).await {
        tracing::warn!(%error, recording = %id, kind = R::NAME,
            "moved; removing the copy left in the data directory failed");
    }
    Ok(Outcome::Moved { bytes })
}

/// Whether `sealed` hashes to `expected`; why not otherwise.
async fn hashes_to(
    state: &AppState,
    sealed: &content::Sealed,
    expected: &str,
) -> Result<(), String> {
    match sealed.sha256(state).await {
        Ok(actual) if actual == expected => Ok(()),
        Ok(actual) => Err(format!(
            "content_mismatch (sha256 {actual}, sealed as {expected})"
        )),
        Err(reason) => Err(reason.to_owned()),
    }
}
