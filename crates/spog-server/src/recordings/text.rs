//! Indexing a terminal recording's text for search (SPEC 8.3 "Text search"): its file is read
//! from where the index stands, a step of complete lines at a time, and the plain text of its
//! events is stored in the database with the new offset. The `recording_text` worker runs it for
//! the recordings written here as they grow; [`catch_up`] finishes one as it ends. Indexing is
//! bookkeeping derived from the recording, not a change of record: it is not audited.

use std::io;
use std::path::PathBuf;

use spog_core::Id;
use spog_core::model::Account;
use spog_core::recordings::text::Indexer;
use spog_core::recordings::{EventCode, RawEvent, TerminalRecording};
use spog_store::recordings::{self, text};

use super::{cast, read};
use crate::state::AppState;

/// What one step did.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Bytes of the file read into the index (0: it was up to date).
    Read(u64),
    /// Another indexer moved the index meanwhile: nothing stored, try again.
    Raced,
}

/// Reads the next complete lines (about [`read::CHUNK`] bytes) of the recording's file at
/// `path`, up to `end` (its length when `None`), into its index.
pub async fn step(
    state: &AppState,
    account: Id<Account>,
    recording: Id<TerminalRecording>,
    path: PathBuf,
    end: Option<u64>,
) -> anyhow::Result<Step> {
    let indexed = {
        let mut conn = state.store.conn().await?;
        text::indexed(&mut conn, account, recording).await?
    };
    let was = indexed.indexed_to;
    let mut indexer = indexed.indexer;
    let read = state
        .blocking
        .run(move || -> io::Result<_> {
            let from = match was {
                0 => cast::read_header(&path)?.1,
                at => at as u64,
            };
            let (lines, to) = read::next_lines(&path, from, end)?;
            add_lines(&mut indexer, &lines);
            Ok((indexer, from, to))
        })
        .await;
    let (indexer, from, to) = match read {
        Ok(read) => read,
        // Not written yet, or no header line yet: nothing to index.
        Err(error)
            if matches!(
                error.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::InvalidData
            ) =>
        {
            return Ok(Step::Read(0));
        }
        Err(error) => return Err(error.into()),
    };
    if to as i64 == was {
        return Ok(Step::Read(0));
    }
    let mut tx = state.store.begin().await?;
    if !text::save(&mut tx, account, recording, was, to as i64, &indexer).await? {
        return Ok(Step::Raced);
    }
    tx.commit_unaudited().await?;
    Ok(Step::Read(to - from))
}

/// Adds the events of complete asciicast lines; a line that does not read as an event is
/// skipped (the recorder writes only checked events).
fn add_lines(indexer: &mut Indexer, lines: &[u8]) {
    for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        if let Ok((time, code, data)) = serde_json::from_slice::<RawEvent>(line)
            && let Some(code) = EventCode::parse(&code)
        {
            indexer.event(time, code, &data);
        }
    }
}

/// What an ending recording's index may take at once: a session's last seconds are indexed
/// as it ends; after a burst of output the rest is indexed by the upload worker, which keeps
/// its spool file until then, so that ends never wait on indexing a burst.
pub const AT_END: u64 = 1024 * 1024;

/// Indexes the recording's spool file towards its end, at most `budget` bytes (all of it
/// when `None`); true when the index reached the end. A failure is logged (and reads as not
/// complete): the end of a recording does not wait on its search index.
pub async fn catch_up(
    state: &AppState,
    account: Id<Account>,
    recording: Id<TerminalRecording>,
    budget: Option<u64>,
) -> bool {
    match index_to_end(state, account, recording, budget).await {
        Ok(complete) => complete,
        Err(error) => {
            tracing::warn!(%recording, error = format!("{error:#}"), "indexing the text of an ended recording");
            false
        }
    }
}

async fn index_to_end(
    state: &AppState,
    account: Id<Account>,
    recording: Id<TerminalRecording>,
    budget: Option<u64>,
) -> anyhow::Result<bool> {
    let path = state
        .recorders
        .path(&recordings::file_path(account, recording));
    let mut read = 0;
    loop {
        match step(state, account, recording, path.clone(), None).await? {
            Step::Read(0) => return Ok(true),
            Step::Read(n) => read += n,
            Step::Raced => {}
        }
        if budget.is_some_and(|budget| read >= budget) {
            return Ok(false);
        }
    }
}

/// The account of a recording, as the worker learns it for a recorder open here.
pub async fn account_of(
    state: &AppState,
    recording: Id<TerminalRecording>,
) -> anyhow::Result<Option<Id<Account>>> {
    let mut conn = state.store.conn().await?;
    Ok(text::account_of(&mut conn, recording).await?)
}
