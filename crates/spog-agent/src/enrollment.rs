//! The enrollment on disk: `{state_dir}/agent.json` holds the hub's address, the host id and
//! the host's credential (mode 0600 in a 0700 directory).

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// `agent.json`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    /// The hub's base URL, as given to `enroll --server`.
    pub server: String,
    pub host_id: String,
    /// `spog_agent_…`; never logged.
    pub credential: String,
}

impl fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enrollment")
            .field("server", &self.server)
            .field("host_id", &self.host_id)
            .field("credential", &"[redacted]")
            .finish()
    }
}

/// The most `agent.json` may hold; anything longer is not ours.
const MAX_ENROLLMENT_BYTES: u64 = 64 * 1024;

impl Enrollment {
    /// `None` when the host was never enrolled.
    pub fn read(path: &Path) -> Result<Option<Self>, String> {
        let text = match read_bounded(path, MAX_ENROLLMENT_BYTES) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{} is not a valid enrollment: {e}", path.display()))
    }

    /// Writes the file atomically, 0600, after making its directory 0700.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        write_private(path, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

/// Creates `dir` (and its parents) if needed and makes it 0700.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Writes `bytes` to `path` through a 0600 temporary file renamed over it, so a reader sees
/// the old or the new content, never a part, and the content is never readable by others.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no directory"))?;
    ensure_private_dir(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let temporary = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let _ = fs::remove_file(&temporary);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temporary, path)
}

/// Reads a small text file, refusing one longer than `limit`.
pub fn read_bounded(path: &Path, limit: u64) -> io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    fs::File::open(path)?
        .take(limit + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("longer than {limit} bytes"),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_enrollment_is_written_0600_in_a_0700_directory_and_read_back() {
        let temp = tempfile::tempdir().unwrap();
        let state_dir = temp.path().join("state");
        fs::create_dir(&state_dir).unwrap();
        fs::set_permissions(&state_dir, fs::Permissions::from_mode(0o755)).unwrap();
        let path = state_dir.join("agent.json");
        let enrollment = Enrollment {
            server: "https://spog.example.com".into(),
            host_id: "0190".into(),
            credential: "spog_agent_secret".into(),
        };
        enrollment.write(&path).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(
            mode(&state_dir),
            0o700,
            "an existing directory is tightened"
        );
        assert_eq!(Enrollment::read(&path), Ok(Some(enrollment.clone())));
        assert!(!format!("{enrollment:?}").contains("secret"));
        assert_eq!(Enrollment::read(&state_dir.join("absent.json")), Ok(None));
    }
}
