//! The recording files held open, least recently used first out. Every active recording has
//! a recorder, but only this many of their files have a descriptor at once; a file is
//! (re)opened when next written. Writes go through `pwrite` at offsets the recorder keeps
//! and nothing is buffered in the `File`, so closing a descriptor loses nothing; a sync
//! after a reopen still reaches what was written through the closed one (it syncs the file).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

pub struct FileHandles {
    capacity: usize,
    inner: Mutex<Lru>,
}

#[derive(Default)]
struct Lru {
    tick: u64,
    files: HashMap<PathBuf, (Arc<File>, u64)>,
    /// Last use → path, oldest first.
    order: BTreeMap<u64, PathBuf>,
}

impl FileHandles {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::default(),
        }
    }

    /// The open file at `path`, opened (read and write, created 0600 with its directories
    /// 0700) if it is not; the least recently used is closed when the cache is full. A handle
    /// still in use elsewhere stays open until that use ends.
    pub fn get(&self, path: &Path) -> io::Result<Arc<File>> {
        {
            let mut lru = self.inner.lock();
            let tick = lru.next_tick();
            let lru = &mut *lru;
            if let Some((file, used)) = lru.files.get_mut(path) {
                lru.order.remove(used);
                *used = tick;
                lru.order.insert(tick, path.to_owned());
                return Ok(file.clone());
            }
        }
        // Opened outside the lock: opening may touch the disk.
        let file = Arc::new(open(path)?);
        let mut lru = self.inner.lock();
        if let Some((existing, _)) = lru.files.get(path) {
            return Ok(existing.clone());
        }
        while lru.files.len() >= self.capacity {
            let Some((_, oldest)) = lru.order.pop_first() else {
                break;
            };
            lru.files.remove(&oldest);
        }
        let tick = lru.next_tick();
        lru.files.insert(path.to_owned(), (file.clone(), tick));
        lru.order.insert(tick, path.to_owned());
        Ok(file)
    }

    /// Closes the file at `path` if it is open here (its recording ended).
    pub fn forget(&self, path: &Path) {
        let mut lru = self.inner.lock();
        if let Some((_, used)) = lru.files.remove(path) {
            lru.order.remove(&used);
        }
    }

    /// Files open now.
    pub fn len(&self) -> usize {
        self.inner.lock().files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Lru {
    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }
}

fn open(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        crate::private_files::create_dir(dir)?;
    }
    crate::private_files::file_options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_file_is_closed_first() {
        let dir = std::env::temp_dir().join(format!("spog-handles-{}", uuid::Uuid::now_v7()));
        let handles = FileHandles::new(2);
        let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
        let first_a = handles.get(&a).unwrap();
        handles.get(&b).unwrap();
        // `a` is used again, so `b` is the oldest when `c` needs a place.
        assert!(Arc::ptr_eq(&first_a, &handles.get(&a).unwrap()));
        handles.get(&c).unwrap();
        assert_eq!(handles.len(), 2);
        assert!(Arc::ptr_eq(&first_a, &handles.get(&a).unwrap()));
        handles.forget(&a);
        assert_eq!(handles.len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
