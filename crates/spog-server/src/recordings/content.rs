//! Reading a recording's content wherever it is (SPEC 8.3): the spool file of an active
//! recording on this instance (or the file of one that ended before sealing existed), the
//! spool of one another instance writes (relayed, see [`super::remote`]), or its sealed
//! object, decompressed as it streams. Readers that need a file (desktop playback seeks, the
//! terminal's follower reads lines from offsets) get a private copy of a sealed recording, or
//! of a relayed one that they pull up to date as they follow it, removed when they drop it.

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
use super::remote::{self, Remote};
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
    /// The spool of an active recording another instance writes.
    Remote(Remote),
}

/// A sealed recording's object, and where its compressed content waits until it is stored.
#[derive(Clone)]
pub struct Sealed {
    pub backend: Backend,
    pub key: String,
    waiting: PathBuf,
}

pub async fn source<R: Recorded>(
    state: &AppState,
    account: Id<Account>,
    recording: &R,
) -> io::Result<Source> {
    Ok(match remote::writer(state, account, recording).await? {
        Some(remote) => Source::Remote(remote),
        None => kept(state, account, recording),
    })
}

/// Where a recording's content is kept on this instance or in the storage.
fn kept<R: Recorded>(state: &AppState, account: Id<Account>, recording: &R) -> Source {
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
        let content = self.read(state).await?;
        let copy = Copy::create(state).await?;
        copy.append(content).await?;
        Ok(copy)
    }
}

/// A private copy of a recording's content, removed when dropped.
pub struct Copy {
    path: PathBuf,
}

impl Copy {
    /// A new, empty copy.
    async fn create(state: &AppState) -> io::Result<Copy> {
        let dir = state.config.data_dir.join("spool").join("reading");
        let path = dir.join(uuid::Uuid::now_v7().to_string());
        tokio::task::spawn_blocking(move || private_files::create_dir(&dir)).await??;
        let mut options = tokio::fs::OpenOptions::from(private_files::file_options());
        options.write(true).create_new(true).open(&path).await?;
        Ok(Copy { path })
    }

    /// Appends `content`; the bytes appended.
    async fn append(
        &self,
        mut content: impl Stream<Item = io::Result<Bytes>> + Unpin,
    ) -> io::Result<u64> {
        let mut file = tokio::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .await?;
        let mut appended = 0;
        while let Some(chunk) = content.next().await {
            let chunk = chunk?;
            file.write_all(&chunk).await?;
            appended += chunk.len() as u64;
        }
        file.flush().await?;
        Ok(appended)
    }

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

/// A file holding a recording's content: its own, a copy of its sealed object, or a copy of
/// what another instance has written of it so far.
pub enum Readable {
    InPlace(PathBuf),
    Copied(Copy),
    Relayed(Relayed),
}

impl Readable {
    pub fn path(&self) -> &Path {
        match self {
            Readable::InPlace(path) => path,
            Readable::Copied(copy) => copy.path(),
            Readable::Relayed(relayed) => relayed.copy.path(),
        }
    }

    /// Brings a relayed copy up to what its writer has now (others are up to date).
    pub async fn pull(&mut self, state: &AppState) -> io::Result<()> {
        match self {
            Readable::Relayed(relayed) => relayed.pull(state).await,
            _ => Ok(()),
        }
    }

    /// Completes a relayed copy once `ended`, its recording, has ended: the writer sealed it,
    /// so the rest comes from its sealed object.
    pub async fn complete<R: Recorded>(
        &mut self,
        state: &AppState,
        account: Id<Account>,
        ended: &R,
    ) -> io::Result<()> {
        match self {
            Readable::Relayed(relayed) => relayed.complete(state, account, ended).await,
            _ => Ok(()),
        }
    }
}

/// A file to read `recording`'s content from.
pub async fn readable<R: Recorded>(
    state: &AppState,
    account: Id<Account>,
    recording: &R,
) -> io::Result<Readable> {
    match source(state, account, recording).await? {
        Source::File(path) => Ok(Readable::InPlace(path)),
        Source::Sealed(sealed) => Ok(Readable::Copied(sealed.copy(state).await?)),
        Source::Remote(remote) => {
            let mut relayed = Relayed {
                copy: Copy::create(state).await?,
                remote,
                len: 0,
                header: None,
                complete: false,
            };
            relayed.pull(state).await?;
            Ok(Readable::Relayed(relayed))
        }
    }
}

/// A copy of an active recording that another instance writes, as far as it was pulled.
pub struct Relayed {
    copy: Copy,
    remote: Remote,
    /// Bytes of the writer's spool copied.
    len: u64,
    /// Where the spool's header line ends (terminal recordings), once copied.
    header: Option<u64>,
    /// Completed from the sealed object: nothing more will come.
    complete: bool,
}

/// Attempts to read the sealed object of a recording that just ended elsewhere: its writer
/// moves it to the storage right after the end commits.
const SEALED_ATTEMPTS: u32 = 10;

impl Relayed {
    async fn pull(&mut self, state: &AppState) -> io::Result<()> {
        if self.complete {
            return Ok(());
        }
        match self.remote.read(state, self.len).await {
            Ok(content) => self.append(content).await,
            // No longer written there: it has ended, and `complete` takes the rest.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn append(&mut self, content: BoxStream<'static, io::Result<Bytes>>) -> io::Result<()> {
        let mut header = self.header;
        let content = content.inspect(|chunk| {
            if let (None, Ok(chunk)) = (header, chunk) {
                header = chunk
                    .iter()
                    .position(|&b| b == b'\n')
                    .map(|at| self.len + at as u64 + 1);
            }
            if let Ok(chunk) = chunk {
                self.len += chunk.len() as u64;
            }
        });
        let appended = self.copy.append(content).await;
        self.header = header;
        appended.map(|_| ())
    }

    async fn complete<R: Recorded>(
        &mut self,
        state: &AppState,
        account: Id<Account>,
        ended: &R,
    ) -> io::Result<()> {
        if self.complete {
            return Ok(());
        }
        let Source::Sealed(sealed) = kept(state, account, ended) else {
            // Ended unsealed: the instance writing it still has it until it seals it.
            return self.pull(state).await;
        };
        let mut attempts = 0;
        let content = loop {
            match sealed.read(state).await {
                Ok(content) => break content,
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < SEALED_ATTEMPTS => {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        };
        // What is copied already: a terminal's sealed content has a header of its own, then
        // the spool's events byte for byte; a desktop's is the spool as it is.
        let (content, skip) = match (R::HEADER_LINE, self.header) {
            _ if self.len == 0 => (content, 0),
            (true, Some(header)) => (lines_after_header(content).boxed(), self.len - header),
            _ => (content, self.len),
        };
        self.append(skipped(content, skip)).await?;
        self.complete = true;
        Ok(())
    }
}

/// `content` without its first `skip` bytes.
fn skipped(
    content: BoxStream<'static, io::Result<Bytes>>,
    mut skip: u64,
) -> BoxStream<'static, io::Result<Bytes>> {
    content
        .filter_map(move |chunk| {
            let out = match chunk {
                Ok(mut chunk) if skip > 0 => {
                    let cut = skip.min(chunk.len() as u64);
                    skip -= cut;
                    let rest = chunk.split_off(cut as usize);
                    (!rest.is_empty()).then_some(Ok(rest))
                }
                other => Some(other),
            };
            std::future::ready(out)
        })
        .boxed()
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
