//! Reading recordings for clients a chunk at a time on the bounded blocking pool: a chunk is
//! read, then handed to the client on the async side before the next is read, so a client
//! that stops reading holds neither a thread nor a descriptor (each chunk opens the file).

use std::io;
use std::path::PathBuf;

use bytes::Bytes;
use futures::Stream;

use super::cast;
use crate::blocking::Blocking;

/// Bytes read for one chunk (more only for a single longer line).
pub const CHUNK: usize = 256 * 1024;

/// The complete lines of the file at `path` from `offset` up to `end` (its length when
/// `None`), about [`CHUNK`] bytes at a time.
pub fn complete_lines(
    blocking: Blocking,
    path: PathBuf,
    offset: u64,
    end: Option<u64>,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    futures::stream::try_unfold(offset, move |at| {
        let (blocking, path) = (blocking.clone(), path.clone());
        async move {
            let (bytes, next) = blocking.run(move || next_lines(&path, at, end)).await?;
            Ok((!bytes.is_empty()).then(|| (Bytes::from(bytes), next)))
        }
    })
}

/// The complete lines of about [`CHUNK`] bytes from `offset`, and where they end. Blocking.
pub fn next_lines(
    path: &std::path::Path,
    offset: u64,
    end: Option<u64>,
) -> io::Result<(Vec<u8>, u64)> {
    let mut lines = Vec::new();
    let next = cast::read_lines(path, offset, end, CHUNK, |chunk| {
        lines.extend_from_slice(chunk);
        false
    })?;
    Ok((lines, next))
}

/// The bytes of an open `file` from `from` up to `end`, [`CHUNK`] bytes at a time, each read
/// on the bounded blocking pool once the one before was taken.
pub fn range(
    blocking: Blocking,
    file: std::sync::Arc<std::fs::File>,
    from: u64,
    end: u64,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    use std::os::unix::fs::FileExt;
    futures::stream::try_unfold(from, move |at| {
        let (blocking, file) = (blocking.clone(), file.clone());
        async move {
            if at >= end {
                return Ok(None);
            }
            let want = (end - at).min(CHUNK as u64) as usize;
            let bytes = blocking
                .run(move || {
                    let mut buf = vec![0; want];
                    file.read_exact_at(&mut buf, at)?;
                    io::Result::Ok(buf)
                })
                .await?;
            Ok(Some((Bytes::from(bytes), at + want as u64)))
        }
    })
}
