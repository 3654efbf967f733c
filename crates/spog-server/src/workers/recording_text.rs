//! `recording_text`: every two seconds, the terminal recordings written on this instance are
//! indexed for search as far as their files hold complete lines (SPEC 8.3: an active session
//! is searchable within 5 s). Where each stands is in the database, so a restart resumes;
//! what this loop remembers only spares it the database for files that did not grow.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use spog_core::Id;
use spog_core::model::Account;
use spog_core::recordings::TerminalRecording;
use tokio_util::sync::CancellationToken;

use crate::recordings::text::{self, Step};
use crate::state::AppState;

pub const NAME: &str = "recording_text";
const EVERY: Duration = Duration::from_secs(2);
/// Steps (of about 256 KiB each) one recording gets per run, so one large backlog does not
/// hold up the others; the rest waits for the next run.
const STEPS_PER_RUN: usize = 16;

/// What the loop knows of a recording it indexes.
#[derive(Clone, Copy)]
pub struct Known {
    account: Id<Account>,
    /// The file's length when it was last indexed to its end.
    indexed_len: u64,
}

pub type Seen = HashMap<Id<TerminalRecording>, Known>;

/// Indexes every terminal recorder open here whose file grew.
pub async fn index_once(state: &AppState, seen: &mut Seen) -> anyhow::Result<()> {
    let recorders = state.recorders.all::<TerminalRecording>();
    seen.retain(|id, _| recorders.iter().any(|r| r.id == *id));
    let mut failed = None;
    for recorder in recorders {
        let len = recorder.flushed_len();
        let known = seen.get(&recorder.id).copied();
        if known.is_some_and(|k| k.indexed_len == len) {
            continue;
        }
        let account = match known {
            Some(known) => known.account,
            None => match text::account_of(state, recorder.id).await? {
                Some(account) => account,
                None => continue,
            },
        };
        let mut steps = 0;
        let done = loop {
            let path = recorder.path.clone();
            match text::step(state, account, recorder.id, path, Some(len)).await {
                Ok(Step::Read(0)) => break true,
                Ok(_) if steps + 1 >= STEPS_PER_RUN => break false,
                Ok(_) => steps += 1,
                Err(error) => {
                    tracing::warn!(recording = %recorder.id, error = format!("{error:#}"), "indexing a recording's text");
                    failed = Some(error);
                    break false;
                }
            }
        };
        let indexed_len = if done { len } else { 0 };
        seen.insert(
            recorder.id,
            Known {
                account,
                indexed_len,
            },
        );
    }
    failed.map_or(Ok(()), Err)
}

pub fn spawn(state: &AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    let seen: Arc<Mutex<Seen>> = Arc::default();
    super::spawn_loop(state, NAME, EVERY, None, shutdown, move |state| {
        let seen = seen.clone();
        async move {
            // The loop runs one step at a time: the map is only borrowed here.
            let mut mine = std::mem::take(&mut *seen.lock());
            let result = index_once(&state, &mut mine).await;
            *seen.lock() = mine;
            result
        }
    })
}
