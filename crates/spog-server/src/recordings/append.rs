//! An append-only file with its own write buffer. Bytes reach the file only in whole flushes
//! at the end of what is known to be on disk; a flush that fails (a full disk) is cut back,
//! so the file always ends at a complete record and stays playable. The descriptor comes
//! from the shared [`FileHandles`] at each write, so an idle recording need not hold one.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::handles::FileHandles;

pub struct AppendFile {
    path: PathBuf,
    handles: Arc<FileHandles>,
    buf: Vec<u8>,
    /// Length of the file up to the end of the last successful flush.
    flushed: u64,
    /// Bytes flushed since the last sync to the disk.
    unsynced: bool,
}

impl AppendFile {
    /// Opens (creating it and its directory, private) `path`, to append at `len` (the end of
    /// its last complete record); anything after `len` is cut off.
    pub fn open(path: &Path, len: Option<u64>, handles: Arc<FileHandles>) -> io::Result<Self> {
        let file = handles.get(path)?;
        let on_disk = file.metadata()?.len();
        let flushed = len.unwrap_or(on_disk).min(on_disk);
        if flushed < on_disk {
            file.set_len(flushed)?;
        }
        Ok(Self {
            path: path.to_owned(),
            handles,
            buf: Vec::new(),
            flushed,
            unsynced: false,
        })
    }

    fn file(&self) -> io::Result<Arc<File>> {
        self.handles.get(&self.path)
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
        let written =
            self.file()
                .and_then(|file| match file.write_all_at(&self.buf, self.flushed) {
                    Ok(()) => Ok(()),
                    Err(error) => {
                        let _ = file.set_len(self.flushed);
                        Err(error)
                    }
                });
        match written {
            Ok(()) => {
                self.flushed += self.buf.len() as u64;
                self.buf.clear();
                // An idle recording keeps no large buffer (thousands may be active).
                if self.buf.capacity() > 256 * 1024 {
                    self.buf = Vec::new();
                }
                self.unsynced = true;
                Ok(())
            }
            Err(error) => {
                self.buf.clear();
                Err(error)
            }
        }
    }

    /// Flushes and asks the disk to keep what was written.
    pub fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        if let Some(file) = self.take_unsynced()? {
            file.sync_data()?;
        }
        Ok(())
    }

    /// The file to sync if anything was written since the last sync, marked synced: the
    /// caller syncs it without holding the recorder (a sync may take long).
    pub fn take_unsynced(&mut self) -> io::Result<Option<Arc<File>>> {
        if !self.unsynced {
            return Ok(None);
        }
        let file = self.file()?;
        self.unsynced = false;
        Ok(Some(file))
    }

    /// Replaces the whole contents (rebuilding an index).
    pub fn rewrite(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.buf.clear();
        self.file()?.set_len(0)?;
        self.flushed = 0;
        self.buf.extend_from_slice(bytes);
        self.flush()
    }

    /// Closes the descriptor, if open (the recording ended).
    pub fn release(&self) {
        self.handles.forget(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_flush_leaves_the_file_as_it_was() {
        let handles = Arc::new(FileHandles::new(4));
        let mut full = AppendFile::open(Path::new("/dev/full"), Some(0), handles).unwrap();
        full.buffer().extend_from_slice(b"line\n");
        let error = full.flush().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
        assert_eq!(full.end(), 0);
    }

    #[test]
    fn appends_continue_after_the_last_complete_record() {
        let dir = std::env::temp_dir().join(format!("spog-append-{}", uuid::Uuid::now_v7()));
        let path = dir.join("a/b.log");
        let handles = Arc::new(FileHandles::new(1));
        let mut file = AppendFile::open(&path, None, handles.clone()).unwrap();
        file.buffer().extend_from_slice(b"one\ntw");
        file.flush().unwrap();
        drop(file);
        let mut file = AppendFile::open(&path, Some(4), handles.clone()).unwrap();
        file.buffer().extend_from_slice(b"two\n");
        file.sync().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one\ntwo\n");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_whose_descriptor_was_closed_for_another_is_reopened_where_it_was() {
        let dir = std::env::temp_dir().join(format!("spog-append-{}", uuid::Uuid::now_v7()));
        let handles = Arc::new(FileHandles::new(1));
        let mut first = AppendFile::open(&dir.join("first"), None, handles.clone()).unwrap();
        let mut second = AppendFile::open(&dir.join("second"), None, handles.clone()).unwrap();
        for round in 0..3 {
            first
                .buffer()
                .extend_from_slice(format!("first {round}\n").as_bytes());
            first.flush().unwrap();
            second
                .buffer()
                .extend_from_slice(format!("second {round}\n").as_bytes());
            second.sync().unwrap();
            assert_eq!(handles.len(), 1);
        }
        first.sync().unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("first")).unwrap(),
            "first 0\nfirst 1\nfirst 2\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("second")).unwrap(),
            "second 0\nsecond 1\nsecond 2\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("first"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
