//! An append-only file with its own write buffer. Bytes reach the file only in whole flushes
//! at the end of what is known to be on disk; a flush that fails (a full disk) is cut back,
//! so the file always ends at a complete record and stays playable.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub struct AppendFile {
    file: File,
    buf: Vec<u8>,
    /// Length of the file up to the end of the last successful flush.
    flushed: u64,
    /// Bytes flushed since the last sync to the disk.
    unsynced: bool,
}

impl AppendFile {
    /// Opens (creating it and its directory) `path`, to append at `len` (the end of its last
    /// complete record); anything after `len` is cut off.
    pub fn open(path: &Path, len: Option<u64>) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let on_disk = file.metadata()?.len();
        let flushed = len.unwrap_or(on_disk).min(on_disk);
        if flushed < on_disk {
            file.set_len(flushed)?;
        }
        Ok(Self {
            file,
            buf: Vec::with_capacity(64 * 1024),
            flushed,
            unsynced: false,
        })
    }

    /// Where the next byte appended will be in the file.
    pub fn end(&self) -> u64 {
        self.flushed + self.buf.len() as u64
    }

    pub fn flushed(&self) -> u64 {
        self.flushed
    }

    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Writes what is buffered. On failure the file is cut back to its last complete
    /// record and the buffered bytes are dropped.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        match self.file.write_all_at(&self.buf, self.flushed) {
            Ok(()) => {
                self.flushed += self.buf.len() as u64;
                self.buf.clear();
                if self.buf.capacity() > 4 * 1024 * 1024 {
                    self.buf.shrink_to(64 * 1024);
                }
                self.unsynced = true;
                Ok(())
            }
            Err(error) => {
                self.buf.clear();
                let _ = self.file.set_len(self.flushed);
                Err(error)
            }
        }
    }

    /// Flushes and asks the disk to keep what was written.
    pub fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        if self.unsynced {
            self.file.sync_data()?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Replaces the whole contents (rebuilding an index).
    pub fn rewrite(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.buf.clear();
        self.file.set_len(0)?;
        self.flushed = 0;
        self.buf.extend_from_slice(bytes);
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_flush_leaves_the_file_as_it_was() {
        let mut full = AppendFile::open(Path::new("/dev/full"), Some(0)).unwrap();
        full.buffer().extend_from_slice(b"line\n");
        let error = full.flush().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
        assert_eq!(full.end(), 0);
    }

    #[test]
    fn appends_continue_after_the_last_complete_record() {
        let dir = std::env::temp_dir().join(format!("spog-append-{}", uuid::Uuid::now_v7()));
        let path = dir.join("a/b.log");
        let mut file = AppendFile::open(&path, None).unwrap();
        file.buffer().extend_from_slice(b"one\ntw");
        file.flush().unwrap();
        drop(file);
        let mut file = AppendFile::open(&path, Some(4)).unwrap();
        file.buffer().extend_from_slice(b"two\n");
        file.sync().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one\ntwo\n");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
