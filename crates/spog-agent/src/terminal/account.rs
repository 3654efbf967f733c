//! The local account a terminal runs as, read from the system's user database (passwd and
//! group, through NSS). These calls may read files or ask a directory service, so they run on
//! the blocking pool, never on the runtime's thread.

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// `getpwnam_r` needs a buffer for the strings; grown on ERANGE up to this size.
const MAX_PASSWD_BUFFER: usize = 1 << 20;
/// More supplementary groups than this is not a real account (Linux allows 65,536).
const MAX_GROUPS: usize = 65_536;

/// What passwd says about an account.
#[derive(Clone, Debug)]
pub struct Account {
    pub name: String,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub home: PathBuf,
    /// Empty in passwd means `/bin/sh` to login(1); `None` here.
    pub shell: Option<PathBuf>,
}

#[derive(Debug)]
pub enum LookupError {
    NoSuchUser,
    Failed(io::Error),
}

/// The account called `name`.
pub fn lookup(name: &str) -> Result<Account, LookupError> {
    let c_name = CString::new(name).map_err(|_| LookupError::NoSuchUser)?;
    let mut buffer = vec![0u8; 4096];
    loop {
        // SAFETY: `passwd` is plain data that getpwnam_r fills in; its pointers point into
        // `buffer`, which outlives every read below.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            libc::getpwnam_r(
                c_name.as_ptr(),
                &mut entry,
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && buffer.len() < MAX_PASSWD_BUFFER {
            buffer.resize(buffer.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(LookupError::Failed(io::Error::from_raw_os_error(rc)));
        }
        if found.is_null() {
            return Err(LookupError::NoSuchUser);
        }
        // SAFETY: on success the fields are NUL-terminated strings inside `buffer`.
        let text = |p: *const libc::c_char| -> Vec<u8> {
            if p.is_null() {
                Vec::new()
            } else {
                unsafe { CStr::from_ptr(p) }.to_bytes().to_vec()
            }
        };
        let home = text(entry.pw_dir);
        let shell = text(entry.pw_shell);
        return Ok(Account {
            name: name.to_owned(),
            uid: entry.pw_uid,
            gid: entry.pw_gid,
            home: PathBuf::from(std::ffi::OsStr::from_bytes(&home)),
            shell: (!shell.is_empty()).then(|| PathBuf::from(std::ffi::OsStr::from_bytes(&shell))),
        });
    }
}

/// The account's groups (its primary group included), as `initgroups` would set them. Read
/// here, before the fork: the child may only make async-signal-safe calls, and `setgroups`
/// with this list is one.
pub fn groups(account: &Account) -> io::Result<Vec<libc::gid_t>> {
    let c_name = CString::new(account.name.as_str())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "user name with NUL"))?;
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut count = groups.len() as libc::c_int;
        // SAFETY: `groups` holds `count` entries; getgrouplist writes at most that many and
        // says how many it needs when they do not fit.
        let rc = unsafe {
            libc::getgrouplist(
                c_name.as_ptr(),
                account.gid,
                groups.as_mut_ptr(),
                &mut count,
            )
        };
        let needed = usize::try_from(count).unwrap_or(0);
        if rc >= 0 {
            groups.truncate(needed);
            return Ok(groups);
        }
        if needed <= groups.len() || needed > MAX_GROUPS {
            return Err(io::Error::other(format!(
                "cannot list the groups of {}",
                account.name
            )));
        }
        groups.resize(needed, 0);
    }
}

/// The name of the account with `uid`, when passwd has one.
pub fn name_of(uid: libc::uid_t) -> Option<String> {
    let mut buffer = vec![0u8; 4096];
    loop {
        // SAFETY: as in `lookup`.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut entry,
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && buffer.len() < MAX_PASSWD_BUFFER {
            buffer.resize(buffer.len() * 2, 0);
            continue;
        }
        if rc != 0 || found.is_null() || entry.pw_name.is_null() {
            return None;
        }
        // SAFETY: a NUL-terminated string inside `buffer`.
        let name = unsafe { CStr::from_ptr(entry.pw_name) };
        return Some(name.to_string_lossy().into_owned());
    }
}

/// The effective user id of the agent.
pub fn agent_uid() -> libc::uid_t {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_found_with_its_home_and_groups() {
        let root = lookup("root").expect("root is in passwd");
        assert_eq!(root.uid, 0);
        assert_eq!(root.gid, 0);
        assert!(root.home.is_absolute());
        assert!(groups(&root).unwrap().contains(&0));
        assert_eq!(name_of(0).as_deref(), Some("root"));
    }

    #[test]
    fn an_unknown_name_is_no_such_user() {
        assert!(matches!(
            lookup("spog-no-such-user-here"),
            Err(LookupError::NoSuchUser)
        ));
        assert!(matches!(lookup("nul\0name"), Err(LookupError::NoSuchUser)));
    }
}
