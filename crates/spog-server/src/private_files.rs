//! Files the service writes are readable by its own user only (SPEC 9): directories 0700,
//! files 0600, whatever the umask. At start, what an earlier version left with wider modes is
//! narrowed: the data directory, the SQLite database and its `-wal`/`-shm`, the server key and
//! the recordings directory with its per-account directories. A recording file inside them
//! is unreachable to other users once its directories are 0700, so the files themselves are
//! not walked (there may be millions); new ones are created 0600.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// Creates `path` and any missing parents as private directories (existing ones are left
/// as they are).
pub fn create_dir(path: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
}

/// Options that create a file 0600.
pub fn file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(FILE_MODE);
    options
}

/// Sets `path`'s mode to `mode` unless it already is; a missing path is left alone.
fn narrow(path: &Path, mode: u32) -> io::Result<()> {
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.permissions().mode() & 0o777 != mode => {
            std::fs::set_permissions(path, Permissions::from_mode(mode))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Prepares the data directory at start: created private, and what is in it narrowed. The
/// SQLite database file is created 0600 before SQLite opens it, so the `-wal` and `-shm`
/// files SQLite creates beside it take the same mode.
pub fn prepare_data_dir(data_dir: &Path, database_url: &str, key_file: &Path) -> io::Result<()> {
    create_dir(data_dir)?;
    narrow(data_dir, DIR_MODE)?;
    narrow(key_file, FILE_MODE)?;
    let recordings = data_dir.join("recordings");
    narrow(&recordings, DIR_MODE)?;
    if let Ok(accounts) = std::fs::read_dir(&recordings) {
        for account in accounts.flatten() {
            if account.file_type().is_ok_and(|t| t.is_dir()) {
                narrow(&account.path(), DIR_MODE)?;
            }
        }
    }
    if let Some(database) = sqlite_file(database_url) {
        if let Some(dir) = database.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_dir(dir)?;
        }
        file_options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&database)?;
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = database.clone().into_os_string();
            name.push(suffix);
            narrow(Path::new(&name), FILE_MODE)?;
        }
    }
    Ok(())
}

/// The file of a `sqlite:` URL (not an in-memory database).
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_file("sqlite:///var/lib/spog/spog.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/spog/spog.db"))
        );
        assert_eq!(
            sqlite_file("sqlite://data/spog.db"),
            Some(PathBuf::from("data/spog.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://localhost/spog"), None);
    }
}
