//! Reading a recording's content wherever it is (SPEC 8.3): the spool file of an active
//! recording on this instance (or the file of one that ended before sealing existed), or its
//! sealed object, decompressed as it streams. Readers that need a file (desktop playback
//! seeks, the terminal's follower reads lines from offsets) get a private copy of a sealed
//! recording, removed when they drop it.

use std::io;
use std::path::{Path, PathBuf};

use async_compression::tokio::bufread::ZstdDecoder;
use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use spog_core::Id;
use spog_core::model::Account;
use tokio::io::AsyncWriteExt;
use tokio_util::io::{ReaderStream, StreamReader};

use super::kind::Recorded;
use super::seal;
use super::storage::Backend;
use crate::private_files;
use crate::state::AppState;

/// Bytes read at a time from a decompressing stream.
const CHUNK: usize = 64 * 1024;

/// Where a recording's content is read from.
pub enum Source {
    /// A file on this instance's disk, read in place.
    File(PathBuf),
    /// A sealed object.
    Sealed(Sealed),
}

/// A sealed recording's object, and where its compressed content waits until it is stored.
#[derive(Clone)]
pub struct Sealed {
    pub backend: Backend,
    pub key: String,
    waiting: PathBuf,
}

pub fn source<R: Recorded>(state: &AppState, account: Id<Account>, recording: &R) -> Source {
    match recording
        .stored()
        .storage
        .as_deref()
        .and_then(Backend::parse)
    {
        Some(backend) => {
            let spool = spog_store::recordings::file_path(account, recording.id());
            Source::Sealed(Sealed {
                backend,
                key: seal::key(account, recording.id()),
                waiting: seal::compressed_path(&state.recorders.path(&spool)),
            })
        }
        None => Source::File(state.recorders.path(recording.file_path())),
    }
}

impl Sealed {
    /// The content, decompressed as it streams: a chunk at a time, whatever its size.
    pub async fn read(
        &self,
        state: &AppState,
    ) -> io::Result<BoxStream<'static, io::Result<Bytes>>> {
        let compressed = match state.storage.objects(self.backend)?.get(&self.key).await {
            Ok(stream) => stream.boxed(),
            // Sealed on this instance, not yet moved to the storage.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match tokio::fs::File::open(&self.waiting).await {
                    Ok(file) => ReaderStream::with_capacity(file, CHUNK).boxed(),
                    Err(_) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        let decoder = ZstdDecoder::new(StreamReader::new(compressed));
        Ok(ReaderStream::with_capacity(decoder, CHUNK).boxed())
    }

    /// The SHA-256 (hex) of the content as stored now, or why it cannot be had: `missing`
    /// or `unreadable` (verify's reasons).
    pub async fn sha256(&self, state: &AppState) -> Result<String, &'static str> {
        let mut content = self.read(state).await.map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => "missing",
            _ => "unreadable",
        })?;
        let mut hasher = Sha256::new();
        while let Some(chunk) = content.next().await {
            hasher.update(&chunk.map_err(|_| "unreadable")?);
        }
        Ok(hex::encode(hasher.finalize()))
    }

    /// A private copy of the content on this instance's disk.
    pub async fn copy(&self, state: &AppState) -> io::Result<Copy> {
        let dir = state.config.data_dir.join("spool").join("reading");
        let path = dir.join(uuid::Uuid::now_v7().to_string());
        let copy = Copy { path: path.clone() };
        let mut content = self.read(state).await?;
        tokio::task::spawn_blocking(move || private_files::create_dir(&dir)).await??;
        let mut options = tokio::fs::OpenOptions::from(private_files::file_options());
        let mut file = options.write(true).create_new(true).open(&path).await?;
        while let Some(chunk) = content.next().await {
            file.write_all(&chunk?).await?;
        }
        file.flush().await?;
        Ok(copy)
    }
}

/// A private copy of a sealed recording's content, removed when dropped.
pub struct Copy {
    path: PathBuf,
}

impl Copy {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        let path = std::mem::take(&mut self.path);
        let remove = move || {
            if let Err(error) = std::fs::remove_file(&path)
                && error.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(%error, file = %path.display(), "removing a recording's copy");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }
}

/// A file holding a recording's content: its own, or a copy of its sealed object.
pub enum Readable {
    InPlace(PathBuf),
    Copied(Copy),
}

impl Readable {
    pub fn path(&self) -> &Path {
        match self {
            Readable::InPlace(path) => path,
            Readable::Copied(copy) => copy.path(),
        }
    }
}

/// A file to read `recording`'s content from.
pub async fn readable<R: Recorded>(
    state: &AppState,
    account: Id<Account>,
    recording: &R,
) -> io::Result<Readable> {
    match source(state, account, recording) {
        Source::File(path) => Ok(Readable::InPlace(path)),
        Source::Sealed(sealed) => Ok(Readable::Copied(sealed.copy(state).await?)),
    }
}

/// The lines of `content` after its first (a cast's header), in chunks of whole lines, each
/// chunk ending with a line break.
pub fn lines_after_header(
    content: impl Stream<Item = io::Result<Bytes>> + Send + 'static,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let mut carry = BytesMut::new();
    let mut in_header = true;
    content.filter_map(move |chunk| {
        let out = chunk.map(|chunk| {
            carry.extend_from_slice(&chunk);
            if in_header {
                let end = carry.iter().position(|&b| b == b'\n')?;
                let _ = carry.split_to(end + 1);
                in_header = false;
            }
            let last = carry.iter().rposition(|&b| b == b'\n')?;
            Some(carry.split_to(last + 1).freeze())
        });
        std::future::ready(out.transpose())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn whole_lines_after_the_header_however_the_chunks_fall() {
        let content = b"{\"version\":2}\n[0.1,\"o\",\"a\"]\n[0.2,\"o\",\"b\"]\n".to_vec();
        for size in [1, 3, 7, 14, 15, 100] {
            let chunks: Vec<io::Result<Bytes>> = content
                .chunks(size)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            let out: Vec<Bytes> = lines_after_header(futures::stream::iter(chunks))
                .map(|c| c.unwrap())
                .collect()
                .await;
            assert!(out.iter().all(|c| c.ends_with(b"\n")), "size {size}");
            assert_eq!(
                out.concat(),
                b"[0.1,\"o\",\"a\"]\n[0.2,\"o\",\"b\"]\n".to_vec(),
                "size {size}"
            );
        }
    }
}
