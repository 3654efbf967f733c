//! Sealing a recording that ended (SPEC 8.3). Its content (for a terminal, exactly what
//! `GET …/cast` serves from then on) is hashed and compressed with zstd beside its spool file,
//! on this instance's disk, so that the hash goes into the transaction that ends it whether or
//! not the storage answers. After that commits, the compressed file moves to the storage and
//! the spool is cleared; one that could not move yet is moved later by the upload worker.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest, Sha256};
use spog_core::Id;
use spog_core::audit::{Actor, Source};
use spog_core::model::Account;
use spog_store::StoreResult;
use spog_store::identity::hosts::HostScope;
use spog_store::recordings;

use super::kind::Recorded;
use super::storage::Backend;
use crate::private_files;
use crate::state::AppState;

/// zstd's default level: terminal output shrinks to a tenth or less, at hundreds of MB/s.
const LEVEL: i32 = 3;

/// A recording's content, hashed and compressed.
#[derive(Clone, Debug)]
pub struct Sealed {
    /// SHA-256 (hex) of the content before compression.
    pub sha256: String,
    /// Bytes of content before compression.
    pub size: u64,
    /// Bytes of the compressed object.
    pub stored_bytes: u64,
}

/// The object holding a sealed recording: `{account}/{kind}/{id}.{ext}.zst`.
pub fn key<R: Recorded>(account: Id<Account>, id: Id<R>) -> String {
    format!("{account}/{}/{id}.{}.zst", R::NAME, R::EXTENSION)
}

/// Where the compressed content waits beside the spool file until the storage has it.
pub fn compressed_path(spool: &Path) -> PathBuf {
    let mut path = spool.as_os_str().to_owned();
    path.push(".zst");
    PathBuf::from(path)
}

impl Sealed {
    /// What the recording's row records of it.
    pub fn row<'a>(&'a self, backend: Backend, location: &'a str) -> recordings::Sealed<'a> {
        recordings::Sealed {
            sha256: &self.sha256,
            stored_bytes: self.stored_bytes as i64,
            storage: backend.as_str(),
            file_path: location,
        }
    }
}

/// Closes `recording`'s recorder on this instance (opened first if it is not, which recovers
/// what its spool file holds), takes its final progress into `recording`, and seals its
/// content: the progress and what was sealed.
pub async fn prepare<R: Recorded>(
    state: &AppState,
    recording: &mut R,
    spool: &Path,
) -> StoreResult<(Option<R::Progress>, Sealed)> {
    let id = recording.id();
    let opened = state.recorders.recorder(&*recording).await;
    let progress = state.recorders.close(id).await;
    opened.map_err(io::Error::from)?;
    if let Some(progress) = &progress {
        recording.progressed(progress);
    }
    let (sealing, spool) = (recording.clone(), spool.to_owned());
    let sealed = state
        .blocking
        .run(move || compress(&sealing, &spool))
        .await?;
    Ok((progress, sealed))
}

/// Finishes, on this instance, a recording that has ended. One that another instance ended
/// while this one wrote it (or that ended while this one was down) is sealed: its row gains
/// the hash, its final progress, and an audited `…recording.seal` entry with the hash and
/// size. One sealed already leaves nothing here: its recorder closes, and what its spool still
/// holds goes once its text is indexed (after a burst, see [`try_store`]). Nothing to do for
/// one that is active or not written here.
pub async fn after_end<R: Recorded>(
    state: &AppState,
    account: Id<Account>,
    id: Id<R>,
) -> StoreResult<()> {
    let mut recording: R = {
        let mut conn = state.store.conn().await?;
        match recordings::get(&mut conn, account, id, &HostScope::All).await {
            Ok(recording) => recording,
            // Deleted: nothing of it is written any more.
            Err(spog_store::StoreError::NotFound) => {
                state.recorders.close(id).await;
                return Ok(());
            }
            Err(error) => return Err(error),
        }
    };
    if !recording.has_ended() {
        return Ok(());
    }
    if recording.stored().storage.is_some() {
        state.recorders.close(id).await;
        if R::index_text(state, account, id, None).await {
            let spool = spog_store::recordings::file_path(account, id);
            state.recorders.remove_files(&spool).await?;
        }
        return Ok(());
    }
    let spool_relative = recording.file_path().to_owned();
    let spool = state.recorders.path(&spool_relative);
    if state.recorders.open(id).is_none() && !exists(state, &spool).await {
        return Ok(());
    }
    let (progress, sealed) = prepare(state, &mut recording, &spool).await?;
    let backend = state.storage.current;
    let location = state.storage.current().shown(&key(account, id));
    let mut tx = state.store.begin().await?;
    if !recordings::seal(
        &mut tx,
        account,
        id,
        progress.as_ref(),
        &sealed.row(backend, &location),
    )
    .await?
    {
        return Ok(());
    }
    let writer = Actor::system(account, "recording storage", Source::Scheduler);
    let metadata = json!({"sha256": sealed.sha256, "size": sealed.size});
    tx.record(writer.did(R::SEALED, &recording).metadata(metadata))
        .await?;
    tx.commit().await?;
    store(state, account, id, &spool_relative, backend).await;
    Ok(())
}

/// Whether a file exists, asked off the async threads.
pub async fn exists(state: &AppState, path: &Path) -> bool {
    let path = path.to_owned();
    state.blocking.run(move || path.exists()).await
}

/// Hashes and compresses `recording`'s content from its spool file (complete: its recorder
/// is closed) into [`compressed_path`]. Blocking.
pub fn compress<R: Recorded>(recording: &R, spool: &Path) -> io::Result<Sealed> {
    let target = compressed_path(spool);
    let file = private_files::file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&target)?;
    let mut out = Hashing {
        encoder: zstd::Encoder::new(BufWriter::with_capacity(256 * 1024, file), LEVEL)?,
        hasher: Sha256::new(),
        size: 0,
    };
    recording.write_content(spool, &mut out)?;
    let Hashing {
        encoder,
        hasher,
        size,
    } = out;
    let file = encoder.finish()?.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(Sealed {
        sha256: hex::encode(hasher.finalize()),
        size,
        stored_bytes: file.metadata()?.len(),
    })
}

/// SHA-256 and size of what passes through, on its way into the compressor.
struct Hashing<W: Write> {
    encoder: zstd::Encoder<'static, W>,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.encoder.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.encoder.flush()
    }
}

/// Moves the compressed content of a recording that was sealed to `backend` into it, then
/// clears its spool: the spool file, a desktop recording's seek index and the parts uploaded
/// while it was active. Failures are logged; the upload worker tries again.
pub async fn store<R: Recorded>(
    state: &AppState,
    account: Id<Account>,
    id: Id<R>,
    spool_relative: &str,
    backend: Backend,
) {
    if let Err(error) = try_store::<R>(state, account, id, spool_relative, backend).await {
        tracing::warn!(%error, recording = %id, kind = R::NAME,
            "storing a sealed recording; it waits in the spool and is tried again");
    }
}

async fn try_store<R: Recorded>(
    state: &AppState,
    account: Id<Account>,
    id: Id<R>,
    spool_relative: &str,
    backend: Backend,
) -> io::Result<()> {
    let spool = state.recorders.path(spool_relative);
    let compressed = compressed_path(&spool);
    state
        .storage
        .objects(backend)?
        .move_file(&key(account, id), &compressed)
        .await?;
    super::parts::clear(state, account, id).await;
    // The spool goes once its text is indexed: now for a session's last seconds, after a
    // burst through the upload worker (see `after_end`).
    if R::index_text(state, account, id, Some(super::text::AT_END)).await {
        state.recorders.remove_files(spool_relative).await?;
    }
    Ok(())
}
