//! The process's open-files limit and how the server shares it out. Each client connection,
//! open recording file, database connection and file being read holds a descriptor; with the
//! common soft limit of 1,024 a busy instance would run out, after which `accept` fails and
//! nothing is answered at all. The binary raises the soft limit to the hard one at start, and
//! the server sizes its connection cap and its cache of open recording files to what the
//! limit allows, keeping the rest for the database, reads and the unexpected.

/// Descriptors kept for the database, files being read, DNS, logs and the unexpected.
const RESERVED: u64 = 256;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the limit now in force.
pub fn raise_limit() -> std::io::Result<u64> {
    let mut limit = current()?;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads the struct we pass; no memory is shared.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(current()?.rlim_cur)
}

/// The soft open-files limit in force (unlimited reads as `u64::MAX`).
pub fn limit() -> u64 {
    current().map(|l| l.rlim_cur).unwrap_or(1024)
}

fn current() -> std::io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(limit)
}

/// How the limit is shared out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Recording files kept open at once (the rest are reopened when written).
    pub recording_files: usize,
    /// Client connections at once.
    pub connections: usize,
}

/// A quarter of the limit for recording files (16 to 4,096), the reserve and the database's
/// connections set apart, and the rest for connections up to `max_connections`.
pub fn budget(limit: u64, max_connections: usize, database_connections: u32) -> Budget {
    let recording_files = (limit / 4).clamp(16, 4096);
    let spare = limit
        .saturating_sub(recording_files)
        .saturating_sub(RESERVED)
        .saturating_sub(u64::from(database_connections) * 3);
    Budget {
        recording_files: recording_files as usize,
        connections: (spare.max(64) as usize).min(max_connections),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_limit_is_shared_between_connections_and_recordings() {
        let common = budget(1024, 10_000, 16);
        assert_eq!(common.recording_files, 256);
        assert_eq!(common.connections, 1024 - 256 - 256 - 48);
        let roomy = budget(1 << 20, 10_000, 16);
        assert_eq!(roomy.recording_files, 4096);
        assert_eq!(roomy.connections, 10_000);
        assert_eq!(budget(u64::MAX, 10, 16).connections, 10);
    }
}
