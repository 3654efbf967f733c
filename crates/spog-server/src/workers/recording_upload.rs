//! `recording_upload`: every `recording_upload_interval` it walks the spool directory. With
//! object storage, what each active recording written here holds so far goes up as parts
//! (SPEC 8.3: losing the machine loses at most that much); a sealed recording whose content
//! could not be moved to the storage when it ended is moved now, and one whose text was not
//! all indexed when it ended (a burst of output) is indexed to its end and its spool cleared.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use spog_core::Id;
use spog_core::model::Account;
use spog_core::recordings::{DesktopRecording, TerminalRecording};
use spog_store::identity::hosts::HostScope;
use spog_store::recordings::{self, RecordingKind};
use tokio_util::sync::CancellationToken;

use crate::recordings::kind::{Recorded, Recorder};
use crate::recordings::storage::Backend;
use crate::recordings::{parts, seal};
use crate::state::AppState;

pub const UPLOAD: &str = "recording_upload";

/// A sealed file younger than this may still be moved by the end that wrote it.
const SETTLED: Duration = Duration::from_secs(60);

/// How far each active recording's spool file has been uploaded, by file name.
pub type Uploaded = HashMap<String, u64>;

/// A file in the spool: `{account}/{id}.{ext}`, or `….zst` once sealed.
struct Spooled {
    account: Id<Account>,
    name: String,
    len: u64,
    modified: SystemTime,
}

pub async fn upload_once(state: &AppState, uploaded: &mut Uploaded) -> anyhow::Result<()> {
    let root = state.config.data_dir.join("spool");
    let files = state.blocking.run(move || list(root)).await?;
    let mut seen = HashMap::new();
    for file in files {
        let mut pieces = file.name.split('.');
        let (Some(id), Some(extension), sealed) =
            (pieces.next(), pieces.next(), pieces.next() == Some("zst"))
        else {
            continue;
        };
        let step = match extension {
            TerminalRecording::EXTENSION => {
                one::<TerminalRecording>(state, &file, id, sealed, uploaded).await
            }
            DesktopRecording::EXTENSION => {
                one::<DesktopRecording>(state, &file, id, sealed, uploaded).await
            }
            _ => continue,
        };
        if let Some(offset) = step? {
            seen.insert(file.name, offset);
        }
    }
    // Recordings that ended are forgotten.
    *uploaded = seen;
    Ok(())
}

/// Uploads an active recording's new content, or stores a sealed one; the active one's
/// uploaded offset.
async fn one<R: Recorded>(
    state: &AppState,
    file: &Spooled,
    id: &str,
    sealed: bool,
    uploaded: &Uploaded,
) -> anyhow::Result<Option<u64>> {
    let Ok(id) = id.parse::<Id<R>>() else {
        return Ok(None);
    };
    let spool = spog_store::recordings::file_path(file.account, id);
    if sealed {
        let settled = file.modified.elapsed().is_ok_and(|age| age >= SETTLED);
        if settled {
            store_sealed(state, file.account, id, &spool).await?;
        }
        return Ok(None);
    }
    let Some(recorder) = state.recorders.open(id) else {
        // Not written now: active (its next write or end takes it up), or ended by another
        // instance while this one was down: sealed now.
        seal::after_end::<R>(state, file.account, id).await?;
        return Ok(None);
    };
    if state.storage.current != Backend::S3 {
        return Ok(None);
    }
    let path = state.recorders.path(&spool);
    let flushed = path.clone();
    let len = state
        .blocking
        .run(move || -> std::io::Result<u64> {
            recorder.flush()?;
            Ok(std::fs::metadata(flushed)?.len())
        })
        .await
        .unwrap_or(file.len);
    let from = uploaded.get(&file.name).copied().unwrap_or(0);
    if len <= from {
        return Ok(Some(from));
    }
    Ok(Some(
        parts::upload(state, file.account, id, path, from, len).await?,
    ))
}

/// Moves a recording's sealed content to the storage its row names, once it has ended.
async fn store_sealed<R: Recorded>(
    state: &AppState,
    account: Id<Account>,
    id: Id<R>,
    spool: &str,
) -> anyhow::Result<()> {
    let recording: R = {
        let mut conn = state.store.conn().await?;
        match recordings::get(&mut conn, account, id, &HostScope::All).await {
            Ok(recording) => recording,
            Err(spog_store::StoreError::NotFound) => return Ok(()),
            Err(error) => return Err(error.into()),
        }
    };
    // Not ended: its end was interrupted before it committed, and seals again.
    if let Some(backend) = recording
        .stored()
        .storage
        .as_deref()
        .and_then(Backend::parse)
    {
        seal::store(state, account, id, spool, backend).await;
    }
    Ok(())
}

/// The files under `spool/{account}/`. Blocking.
fn list(root: PathBuf) -> std::io::Result<Vec<Spooled>> {
    let mut files = Vec::new();
    let accounts = match std::fs::read_dir(&root) {
        Ok(accounts) => accounts,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(e),
    };
    for account in accounts.flatten() {
        let Some(Ok(id)) = account.file_name().to_str().map(str::parse) else {
            continue;
        };
        for file in std::fs::read_dir(account.path())?.flatten() {
            let name = file.file_name();
            let (Ok(metadata), Some(name)) = (file.metadata(), name.to_str()) else {
                continue;
            };
            if metadata.is_file() {
                files.push(Spooled {
                    account: id,
                    name: name.to_owned(),
                    len: metadata.len(),
                    modified: metadata.modified()?,
                });
            }
        }
    }
    Ok(files)
}

pub fn spawn(state: &AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    let uploaded = Arc::new(Mutex::new(Uploaded::new()));
    let every = state.config.recording_upload_interval;
    super::spawn_loop(state, UPLOAD, every, None, shutdown, move |state| {
        let uploaded = uploaded.clone();
        async move {
            let mut offsets = std::mem::take(&mut *uploaded.lock());
            let result = upload_once(&state, &mut offsets).await;
            *uploaded.lock() = offsets;
            result
        }
    })
}
