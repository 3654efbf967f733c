//! With object storage, the content of an active recording so far is uploaded every
//! `recording_upload_interval`, so that losing the machine writing it loses at most that much
//! (SPEC 8.3); the instance that then ends it (`instance_lost`) restores the spool from the
//! parts. A part is named by the byte offset of the spool file it starts at, so uploading a
//! range again after a restart overwrites what it repeats, and parts are read back in order.

use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::TryStreamExt;
use spog_core::Id;
use spog_core::model::Account;

use super::kind::Recorded;
use super::storage::{Backend, Objects};
use crate::private_files;
use crate::state::AppState;

/// The most one part holds, so an upload holds at most this much in memory.
const PART: u64 = 8 * 1024 * 1024;

fn prefix<R: Recorded>(account: Id<Account>, id: Id<R>) -> String {
    format!("{account}/{}/{id}.parts/", R::NAME)
}

/// The object storage parts go to, if recordings are kept in one.
fn objects(state: &AppState) -> Option<&Objects> {
    (state.storage.current == Backend::S3).then(|| state.storage.current())
}

/// Uploads bytes `from..to` of the spool file at `spool`, at most a [`PART`] per object;
/// returns how far it got (`to` unless it failed).
pub async fn upload<R: Recorded>(
    state: &AppState,
    account: Id<Account>,
    id: Id<R>,
    spool: PathBuf,
    from: u64,
    to: u64,
) -> io::Result<u64> {
    let Some(objects) = objects(state) else {
        return Ok(to);
    };
    let mut at = from;
    while at < to {
        let len = (to - at).min(PART);
        let path = spool.clone();
        let bytes = state
            .blocking
            .run(move || {
                let mut buf = vec![0u8; len as usize];
                std::fs::File::open(path)?.read_exact_at(&mut buf, at)?;
                io::Result::Ok(buf)
            })
            .await?;
        let part = format!("{}{at:016}", prefix(account, id));
        objects.put(&part, Bytes::from(bytes)).await?;
        at += len;
    }
    Ok(at)
}

/// Rebuilds the spool file at `spool` from the parts of a recording whose writer was lost;
/// false when there are none (or no object storage). Parts are taken in order while they
/// continue the file; a gap ends it there.
pub async fn restore<R: Recorded>(
    state: &AppState,
    account: Id<Account>,
    id: Id<R>,
    spool: &Path,
) -> io::Result<bool> {
    let Some(objects) = objects(state) else {
        return Ok(false);
    };
    let parts = objects.list(&prefix(account, id)).await?;
    if parts.is_empty() {
        return Ok(false);
    }
    if let Some(dir) = spool.parent() {
        let dir = dir.to_owned();
        state
            .blocking
            .run(move || private_files::create_dir(&dir))
            .await?;
    }
    let mut restoring = private_files::file_options();
    restoring.write(true).create(true).truncate(true);
    let partial = spool.with_extension("restoring");
    let file = std::sync::Arc::new(
        state
            .blocking
            .run({
                let partial = partial.clone();
                move || restoring.open(partial)
            })
            .await?,
    );
    let mut len = 0u64;
    for part in parts {
        let Some(offset) = part.rsplit('/').next().and_then(|o| o.parse::<u64>().ok()) else {
            continue;
        };
        if offset > len {
            tracing::warn!(recording = %id, offset, len, "a part is missing; restoring up to it");
            break;
        }
        let bytes: Vec<Bytes> = objects.get(&part).await?.try_collect().await?;
        let bytes = Bytes::from(bytes.concat());
        let skip = (len - offset) as usize;
        if skip >= bytes.len() {
            continue;
        }
        let (file, at) = (file.clone(), len);
        let tail = bytes.slice(skip..);
        len += tail.len() as u64;
        state
            .blocking
            .run(move || file.write_all_at(&tail, at))
            .await?;
    }
    let spool = spool.to_owned();
    state
        .blocking
        .run(move || {
            file.sync_all()?;
            std::fs::rename(partial, spool)
        })
        .await?;
    Ok(true)
}

/// Deletes the parts of a recording that was sealed.
pub async fn clear<R: Recorded>(state: &AppState, account: Id<Account>, id: Id<R>) {
    let Some(objects) = objects(state) else {
        return;
    };
    let deleted = async {
        for part in objects.list(&prefix(account, id)).await? {
            objects.delete(&part).await?;
        }
        io::Result::Ok(())
    };
    if let Err(error) = deleted.await {
        tracing::warn!(%error, recording = %id, "deleting the parts of a sealed recording");
    }
}
