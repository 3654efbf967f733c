//! A pseudo-terminal and the login shell started on it (SPEC 13.1): a new session whose
//! controlling terminal is the PTY, the account's credentials, a clean login environment.

use std::ffi::{CString, OsString};
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use spog_protocol::OpenErrorCode;
use tokio::process::{Child, Command};

use super::account::{self, Account, LookupError};

/// When neither `terminal.shell` nor passwd names one.
pub const FALLBACK_SHELL: &str = "/bin/sh";
const ROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const USER_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Longer than any terminfo name; a longer `term` is not one.
const MAX_TERM_LEN: usize = 64;

/// What one `open` asks for, with the agent's settings.
#[derive(Clone, Debug)]
pub struct ShellRequest {
    /// `terminal.user`.
    pub user: String,
    /// `terminal.shell`.
    pub shell: Option<PathBuf>,
    pub term: String,
    pub cols: u16,
    pub rows: u16,
    /// The agent's own `LANG`, passed on when it has one.
    pub lang: Option<OsString>,
}

/// A shell running on a PTY whose master end is `master` (non-blocking, close-on-exec).
pub struct Spawned {
    pub child: Child,
    pub pid: u32,
    pub master: OwnedFd,
    pub shell: PathBuf,
}

/// Why a shell could not be started, as `open_error` says it.
#[derive(Debug)]
pub struct SpawnError {
    pub code: OpenErrorCode,
    pub message: String,
}

impl SpawnError {
    fn failed(message: impl Into<String>) -> Self {
        Self {
            code: OpenErrorCode::SpawnFailed,
            message: message.into(),
        }
    }
}

/// The ids the child takes before `exec` when it runs as another account than the agent.
struct Credentials {
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
}

/// Looks the account up, opens a PTY and starts the login shell on it. Blocking (NSS, fork):
/// call it on the blocking pool.
pub fn spawn_shell(request: &ShellRequest) -> Result<Spawned, SpawnError> {
    if !is_terminal_name(&request.term) {
        return Err(SpawnError::failed(format!(
            "term {:?} is not a terminal type name",
            request.term
        )));
    }
    let account = match account::lookup(&request.user) {
        Ok(account) => account,
        Err(LookupError::NoSuchUser) => {
            return Err(SpawnError {
                code: OpenErrorCode::NoSuchUser,
                message: format!(
                    "terminal.user {} is not an account on this host",
                    request.user
                ),
            });
        }
        Err(LookupError::Failed(e)) => {
            return Err(SpawnError::failed(format!(
                "cannot look up terminal.user {}: {e}",
                request.user
            )));
        }
    };
    let credentials = credentials_for(&account)?;
    let shell = request
        .shell
        .clone()
        .or_else(|| account.shell.clone())
        .unwrap_or_else(|| PathBuf::from(FALLBACK_SHELL));
    let (master, slave) = open_pty(request.cols, request.rows)
        .map_err(|e| SpawnError::failed(format!("cannot open a PTY: {e}")))?;

    let mut command = Command::new(&shell);
    command
        .arg0(login_argv0(&shell))
        .env_clear()
        .env("HOME", &account.home)
        .env("USER", &account.name)
        .env("LOGNAME", &account.name)
        .env("SHELL", &shell)
        .env(
            "PATH",
            if account.uid == 0 {
                ROOT_PATH
            } else {
                USER_PATH
            },
        )
        .env("TERM", &request.term)
        .kill_on_drop(true);
    if let Some(lang) = &request.lang {
        command.env("LANG", lang);
    }
    let stdio = |fd: &OwnedFd| {
        fd.try_clone()
            .map(Stdio::from)
            .map_err(|e| SpawnError::failed(format!("cannot share the PTY: {e}")))
    };
    command
        .stdin(stdio(&slave)?)
        .stdout(stdio(&slave)?)
        .stderr(stdio(&slave)?);
    let home = CString::new(account.home.as_os_str().as_bytes()).unwrap_or_else(|_| c"/".into());
    // SAFETY: the closure runs in the forked child before exec and makes only
    // async-signal-safe system calls on data prepared before the fork (no allocation, no lock).
    unsafe {
        command.pre_exec(move || become_login_session(credentials.as_ref(), &home));
    }
    let child = command
        .spawn()
        .map_err(|e| SpawnError::failed(format!("cannot start {}: {e}", shell.display())))?;
    // The command holds copies of the slave: dropped with it, so that only the shell (and what
    // it starts) keeps the slave open and the master reads EIO once they are all gone.
    drop(command);
    drop(slave);
    let pid = child
        .id()
        .ok_or_else(|| SpawnError::failed("the shell exited at once"))?;
    Ok(Spawned {
        child,
        pid,
        master,
        shell,
    })
}

/// `None` when the shell runs as the agent's own account; an error when it would need root.
fn credentials_for(account: &Account) -> Result<Option<Credentials>, SpawnError> {
    let agent_uid = account::agent_uid();
    if account.uid == agent_uid {
        return Ok(None);
    }
    if agent_uid != 0 {
        return Err(SpawnError::failed(format!(
            "terminal.user {} is not the agent's own account (uid {agent_uid}): starting a \
             shell as another user needs an agent running as root",
            account.name
        )));
    }
    let groups = account::groups(account).map_err(|e| {
        SpawnError::failed(format!("cannot read the groups of {}: {e}", account.name))
    })?;
    Ok(Some(Credentials {
        uid: account.uid,
        gid: account.gid,
        groups,
    }))
}

/// In the child: a new session with the PTY (stdin) as controlling terminal, the account's
/// groups and ids, its home as working directory (`/` when that fails, as login(1) does).
fn become_login_session(credentials: Option<&Credentials>, home: &CString) -> io::Result<()> {
    close_inherited_on_exec();
    // SAFETY: plain system calls with valid arguments; see the caller.
    unsafe {
        if libc::setsid() < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
            return Err(io::Error::last_os_error());
        }
        if let Some(ids) = credentials
            && (libc::setgroups(ids.groups.len() as _, ids.groups.as_ptr()) < 0
                || libc::setgid(ids.gid) < 0
                || libc::setuid(ids.uid) < 0)
        {
            return Err(io::Error::last_os_error());
        }
        if libc::chdir(home.as_ptr()) < 0 && libc::chdir(c"/".as_ptr()) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// In a child before exec: every descriptor above stderr closes at exec, also those the agent
/// inherited without close-on-exec (its own are opened with it). Marked rather than closed, so
/// that the descriptor std reports a failed exec through stays open until then. Best effort:
/// kernels before 5.11 lack the flag.
pub fn close_inherited_on_exec() {
    // SAFETY: close_range takes no memory arguments and is async-signal-safe.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
    }
}

/// `-bash` for `/bin/bash`: what tells a shell it is a login shell.
fn login_argv0(shell: &Path) -> OsString {
    let name = shell.file_name().unwrap_or(shell.as_os_str());
    let mut argv0 = OsString::from("-");
    argv0.push(name);
    argv0
}

fn is_terminal_name(term: &str) -> bool {
    !term.is_empty()
        && term.len() <= MAX_TERM_LEN
        && term
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b))
}

/// A new PTY of `cols` × `rows`: (master, non-blocking; slave). Both close-on-exec, so that no
/// other shell inherits them (std opens files with `O_CLOEXEC`).
pub fn open_pty(cols: u16, rows: u16) -> io::Result<(OwnedFd, OwnedFd)> {
    let master: OwnedFd = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open("/dev/ptmx")?
        .into();
    let fd = master.as_raw_fd();
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: `fd` is the open master; `name` has the length given.
    unsafe {
        if libc::grantpt(fd) != 0 || libc::unlockpt(fd) != 0 {
            return Err(io::Error::last_os_error());
        }
        let rc = libc::ptsname_r(fd, name.as_mut_ptr(), name.len());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
    }
    // SAFETY: ptsname_r wrote a NUL-terminated path into `name`.
    let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
    let slave: OwnedFd = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(std::ffi::OsStr::from_bytes(path.to_bytes()))?
        .into();
    set_size(fd, cols, rows)?;
    set_nonblocking(fd)?;
    Ok((master, slave))
}

/// TIOCSWINSZ: the kernel sends SIGWINCH to the terminal's foreground process group.
pub fn set_size(master: RawFd, cols: u16, rows: u16) -> io::Result<()> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize`.
    if unsafe { libc::ioctl(master, libc::TIOCSWINSZ as _, &size) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The terminal's foreground process group, when it has one.
pub fn foreground_group(master: RawFd) -> Option<libc::pid_t> {
    let mut group: libc::pid_t = 0;
    // SAFETY: TIOCGPGRP writes one `pid_t`.
    let rc = unsafe { libc::ioctl(master, libc::TIOCGPGRP as _, &mut group) };
    (rc == 0 && group > 1).then_some(group)
}

/// `signal` to every process of `group`. Never to group 0 or 1 (which would mean the agent's
/// own group, or every process).
pub fn signal_group(group: libc::pid_t, signal: libc::c_int) {
    if group > 1 {
        // SAFETY: kill has no memory arguments; ESRCH (the group is gone) is expected.
        unsafe {
            libc::kill(-group, signal);
        }
    }
}

/// SIGKILL to every process of the terminal's `session` (the shell's pid): its process groups,
/// and the background jobs in groups of their own. Blocking (reads `/proc`).
pub fn kill_session(session: libc::pid_t) {
    if session <= 1 {
        return;
    }
    signal_group(session, libc::SIGKILL);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let pid = entry.file_name().to_str().and_then(|n| n.parse().ok());
        if let Some(pid) = pid
            && session_of(pid) == Some(session)
        {
            // SAFETY: kill has no memory arguments.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// The session id of a process: field 6 of `/proc/{pid}/stat`, counted after the command
/// name, which is in parentheses and may hold spaces.
fn session_of(pid: libc::pid_t) -> Option<libc::pid_t> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.get(stat.rfind(')')? + 2..)?;
    after_name.split(' ').nth(3)?.parse().ok()
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on an open descriptor.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// One `read` of the master: `Ok(0)` or EIO means every slave is closed.
pub fn read(master: RawFd, buffer: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buffer` is valid for `len` bytes.
    let n = unsafe { libc::read(master, buffer.as_mut_ptr().cast(), buffer.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// One `write` to the master (the shell's input).
pub fn write(master: RawFd, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: `bytes` is valid for `len` bytes.
    let n = unsafe { libc::write(master, bytes.as_ptr().cast(), bytes.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_shell_is_named_with_a_dash() {
        assert_eq!(login_argv0(Path::new("/bin/bash")), "-bash");
        assert_eq!(login_argv0(Path::new("/usr/bin/zsh")), "-zsh");
    }

    #[test]
    fn term_must_look_like_a_terminfo_name() {
        for good in ["xterm-256color", "screen.xterm", "vt100", "rxvt-unicode+x"] {
            assert!(is_terminal_name(good), "{good}");
        }
        for bad in ["", "xterm\0", "a b", "$(reboot)", &"x".repeat(65)] {
            assert!(!is_terminal_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_session_of_a_process_is_read_from_proc() {
        let own = std::process::id() as libc::pid_t;
        let expected = unsafe { libc::getsid(0) };
        assert_eq!(session_of(own), Some(expected));
        assert_eq!(session_of(-5), None);
    }

    #[test]
    fn a_new_pty_has_the_size_asked_for() {
        let (master, _slave) = open_pty(132, 43).unwrap();
        let mut size: libc::winsize = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGWINSZ as _, &mut size) };
        assert_eq!(rc, 0);
        assert_eq!((size.ws_col, size.ws_row), (132, 43));
        set_size(master.as_raw_fd(), 80, 24).unwrap();
        let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGWINSZ as _, &mut size) };
        assert_eq!(rc, 0);
        assert_eq!((size.ws_col, size.ws_row), (80, 24));
    }
}
