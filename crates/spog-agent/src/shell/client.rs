//! `spog-agent shell [-c CMD]` (SPEC 13.3): for OpenSSH (`ForceCommand`) or as a login shell. It
//! runs `shell.program` as a login shell on a new PTY on the user's terminal (raw mode, window
//! changes passed on) or, with `-c CMD` or `SSH_ORIGINAL_COMMAND`, `program -c CMD` (on a PTY
//! only when stdin is a terminal), and streams what passes to the agent's local socket. The
//! agent spools it, so the user never waits on the hub; when the agent cannot be reached,
//! `shell.on_unavailable` decides: run unrecorded after a warning, or refuse.
//!
//! A short-lived process of its own: plain blocking I/O (poll on the PTY), no runtime.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::listener::{Answer, Hello};
use super::record::{self, Ending, Record, Tag};
use crate::config::{AgentConfig, OnUnavailable};
use crate::terminal::{account, pty};

/// The agent answers the hello this soon, or is unavailable.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// A write the agent does not take this soon ends the recording (the session goes on).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Typed bytes not yet taken by the PTY, at most.
const MAX_PENDING_INPUT: usize = 64 * 1024;
const REFUSED: &str = "session recording unavailable: login refused";

pub struct ShellArgs {
    pub config: Option<PathBuf>,
    pub command: Option<String>,
}

/// `spog-agent -c CMD`, or an argv[0] of `-spog-agent`: started as a login shell.
pub fn as_login_shell(args: &[OsString]) -> Option<ShellArgs> {
    let argv0 = args.first()?;
    let name = Path::new(argv0).file_name()?.to_string_lossy();
    if args.get(1).is_some_and(|a| a == "-c") {
        let command = args.get(2).map(|c| c.to_string_lossy().into_owned());
        return Some(ShellArgs {
            config: None,
            command,
        });
    }
    name.starts_with('-').then_some(ShellArgs {
        config: None,
        command: None,
    })
}

pub fn run(args: ShellArgs) -> ExitCode {
    let config = match AgentConfig::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            // Fail closed: without its configuration the agent's policy is unknown.
            eprintln!("spog-agent shell: {e}");
            eprintln!("{REFUSED}");
            return ExitCode::FAILURE;
        }
    };
    let command = args.command.or_else(|| {
        std::env::var("SSH_ORIGINAL_COMMAND")
            .ok()
            .filter(|c| !c.is_empty())
    });
    let program = program(&config);
    let on_terminal = is_terminal(0);
    let (cols, rows) = if on_terminal {
        terminal_size(0).unwrap_or((80, 24))
    } else {
        (80, 24)
    };
    let hello = Hello {
        shell: program.display().to_string(),
        cols,
        rows,
        client_addr: std::env::var("SSH_CONNECTION")
            .ok()
            .and_then(|c| client_addr(&c)),
    };
    let recorder = match Recorder::connect(&config.socket_path, &hello) {
        Ok(recorder) => Some(recorder),
        Err(why) => match config.shell.on_unavailable {
            OnUnavailable::Open => {
                eprintln!("spog-agent: session recording unavailable ({why}); running unrecorded");
                None
            }
            OnUnavailable::Closed => {
                eprintln!("{REFUSED}");
                return ExitCode::FAILURE;
            }
        },
    };
    let recorder = Arc::new(Mutex::new(recorder));
    let mut process = Command::new(&program);
    match &command {
        Some(command) => {
            process.arg("-c").arg(command);
        }
        None => {
            process.arg0(login_argv0(&program));
        }
    }
    let status = if on_terminal {
        relay_pty(process, (cols, rows), &recorder)
    } else {
        relay_pipes(process, &recorder)
    };
    match status {
        Ok(status) => {
            let ending = match (status.code(), status.signal()) {
                (Some(code), _) => Ending::Code(code),
                (None, Some(signal)) => Ending::Signal(signal),
                (None, None) => Ending::Code(1),
            };
            record(&recorder, |r| r.exit(ending));
            let code = match ending {
                Ending::Code(code) => code,
                Ending::Signal(signal) => 128 + signal,
            };
            ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1))
        }
        Err(e) => {
            eprintln!("spog-agent shell: cannot run {}: {e}", program.display());
            ExitCode::FAILURE
        }
    }
}

/// `shell.program`, else the user's login shell, else `/bin/sh` (also when the login shell is
/// this very binary).
fn program(config: &AgentConfig) -> PathBuf {
    if let Some(program) = &config.shell.program {
        return program.clone();
    }
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let login_shell = account::name_of(uid)
        .and_then(|name| account::lookup(&name).ok())
        .and_then(|account| account.shell);
    let this = std::env::current_exe().and_then(|p| p.canonicalize()).ok();
    match login_shell {
        Some(shell) if shell.canonicalize().ok() != this => shell,
        _ => PathBuf::from("/bin/sh"),
    }
}

/// `ip:port` of the client from `SSH_CONNECTION` (`client_ip client_port server_ip
/// server_port`); an IPv6 address in brackets.
fn client_addr(ssh_connection: &str) -> Option<String> {
    let mut fields = ssh_connection.split_whitespace();
    let ip = fields.next()?;
    let port: u16 = fields.next()?.parse().ok()?;
    Some(if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    })
}

fn login_argv0(program: &Path) -> OsString {
    let mut argv0 = OsString::from("-");
    argv0.push(program.file_name().unwrap_or(program.as_os_str()));
    argv0
}

/// The session's stream to the agent. Once a write fails or times out, recording stops and
/// the session goes on.
struct Recorder {
    stream: UnixStream,
    started: Instant,
}

impl Recorder {
    fn connect(path: &Path, hello: &Hello) -> Result<Self, String> {
        let mut stream = UnixStream::connect(path).map_err(|e| e.to_string())?;
        let failed = |e: io::Error| format!("the agent did not answer: {e}");
        stream
            .set_read_timeout(Some(ANSWER_TIMEOUT))
            .map_err(failed)?;
        stream
            .set_write_timeout(Some(WRITE_TIMEOUT))
            .map_err(failed)?;
        let mut line = serde_json::to_vec(hello).map_err(|e| e.to_string())?;
        line.push(b'\n');
        stream.write_all(&line).map_err(failed)?;
        let mut answer = String::new();
        BufReader::new(&stream)
            .take(4096)
            .read_line(&mut answer)
            .map_err(failed)?;
        let answer: Answer =
            serde_json::from_str(&answer).map_err(|_| "the agent did not answer".to_owned())?;
        if !answer.ok {
            return Err(answer.message.unwrap_or_else(|| "the agent refused".into()));
        }
        Ok(Self {
            stream,
            started: Instant::now(),
        })
    }

    fn elapsed_us(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn bytes(&mut self, tag: Tag, data: &[u8]) -> io::Result<()> {
        let elapsed_us = self.elapsed_us();
        for chunk in data.chunks(record::MAX_RECORD_PAYLOAD) {
            self.stream
                .write_all(&record::encode(tag, elapsed_us, chunk))?;
        }
        Ok(())
    }

    fn resize(&mut self, cols: u16, rows: u16) -> io::Result<()> {
        let record = Record::resize(self.elapsed_us(), cols, rows);
        self.stream.write_all(&record.encode())
    }

    fn exit(&mut self, ending: Ending) -> io::Result<()> {
        let record = Record::exit(self.elapsed_us(), ending);
        self.stream.write_all(&record.encode())
    }
}

/// Runs `write` on the recorder, if recording; a failure stops the recording.
fn record(recorder: &Mutex<Option<Recorder>>, write: impl FnOnce(&mut Recorder) -> io::Result<()>) {
    let mut recorder = recorder.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(active) = recorder.as_mut()
        && write(active).is_err()
    {
        *recorder = None;
    }
}

/// The program on a new PTY, relayed to and from the user's terminal (in raw mode meanwhile).
fn relay_pty(
    mut process: Command,
    (cols, rows): (u16, u16),
    recorder: &Mutex<Option<Recorder>>,
) -> io::Result<ExitStatus> {
    let (master, slave) = pty::open_pty(cols, rows)?;
    process
        .stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave.try_clone()?));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        process.pre_exec(|| {
            pty::close_inherited_on_exec();
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = process.spawn()?;
    drop(process);
    drop(slave);
    let winch = WindowChanges::watch()?;
    let raw = RawMode::enter(0)?;
    let relayed = pump_pty(&master, &winch, recorder);
    drop(raw);
    if let Err(e) = relayed {
        // The user's side is gone: hang up the program.
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    child.wait()
}

fn pump_pty(
    master: &OwnedFd,
    winch: &WindowChanges,
    recorder: &Mutex<Option<Recorder>>,
) -> io::Result<()> {
    let master_fd = master.as_raw_fd();
    let mut stdin_open = true;
    let mut pending: Vec<u8> = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let mut fds = [
            poll_fd(
                0,
                if stdin_open && pending.len() < MAX_PENDING_INPUT {
                    libc::POLLIN
                } else {
                    0
                },
            ),
            poll_fd(
                master_fd,
                libc::POLLIN | if pending.is_empty() { 0 } else { libc::POLLOUT },
            ),
            poll_fd(winch.read_fd(), libc::POLLIN),
        ];
        // SAFETY: `fds` is a valid array of pollfd.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if fds[2].revents & libc::POLLIN != 0 {
            winch.drain();
            if let Some((cols, rows)) = terminal_size(0) {
                let _ = pty::set_size(master_fd, cols, rows);
                record(recorder, |r| r.resize(cols, rows));
            }
        }
        if fds[0].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            match pty::read(0, &mut buffer) {
                Ok(0) => stdin_open = false,
                Ok(n) => {
                    pending.extend_from_slice(&buffer[..n]);
                    record(recorder, |r| r.bytes(Tag::Input, &buffer[..n]));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => stdin_open = false,
            }
        }
        if fds[1].revents & libc::POLLOUT != 0 && !pending.is_empty() {
            match pty::write(master_fd, &pending) {
                Ok(n) => {
                    pending.drain(..n);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => pending.clear(),
            }
        }
        if fds[1].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            match pty::read(master_fd, &mut buffer) {
                // Every slave end is closed: the program and all it started are done.
                Ok(0) => return Ok(()),
                Ok(n) => {
                    write_all_fd(1, &buffer[..n])?;
                    record(recorder, |r| r.bytes(Tag::Output, &buffer[..n]));
                }
                Err(e) if e.raw_os_error() == Some(libc::EIO) => return Ok(()),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// The program with stdin passed through and stdout and stderr relayed (and recorded).
fn relay_pipes(
    mut process: Command,
    recorder: &Arc<Mutex<Option<Recorder>>>,
) -> io::Result<ExitStatus> {
    let mut child = process
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().map(OwnedFd::from);
    let stderr = child.stderr.take().map(OwnedFd::from);
    let relays: Vec<_> = [(stdout, 1), (stderr, 2)]
        .into_iter()
        .filter_map(|(source, target)| source.map(|s| (s, target)))
        .map(|(source, target)| {
            let recorder = recorder.clone();
            std::thread::spawn(move || {
                let mut buffer = vec![0u8; 64 * 1024];
                loop {
                    match pty::read(source.as_raw_fd(), &mut buffer) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            let _ = write_all_fd(target, &buffer[..n]);
                            record(&recorder, |r| r.bytes(Tag::Output, &buffer[..n]));
                        }
                    }
                }
            })
        })
        .collect();
    for relay in relays {
        let _ = relay.join();
    }
    child.wait()
}

fn poll_fd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

fn write_all_fd(fd: RawFd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match pty::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let mut fds = [poll_fd(fd, libc::POLLOUT)];
                // SAFETY: a valid pollfd array.
                unsafe { libc::poll(fds.as_mut_ptr(), 1, 1000) };
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn is_terminal(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

fn terminal_size(fd: RawFd) -> Option<(u16, u16)> {
    // SAFETY: TIOCGWINSZ writes one winsize.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ as _, &mut size) };
    (rc == 0 && size.ws_col > 0 && size.ws_row > 0).then_some((size.ws_col, size.ws_row))
}

/// The user's terminal in raw mode until dropped.
struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    fn enter(fd: RawFd) -> io::Result<Self> {
        // SAFETY: termios is plain data; tcgetattr fills it.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(fd, &mut saved) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut raw = saved;
        // SAFETY: cfmakeraw edits the struct given.
        unsafe { libc::cfmakeraw(&mut raw) };
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores what tcgetattr read.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

/// SIGWINCH, turned into a readable pipe for the poll loop.
struct WindowChanges {
    read: OwnedFd,
    _write: OwnedFd,
}

/// The write end the signal handler writes to (-1: none).
static WINCH_WRITE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_winch(_: libc::c_int) {
    let fd = WINCH_WRITE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: write is async-signal-safe; a full pipe already says "changed".
        unsafe { libc::write(fd, [1u8].as_ptr().cast(), 1) };
    }
}

impl WindowChanges {
    fn watch() -> io::Result<Self> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 fills two descriptors, which OwnedFd then owns.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let (read, write) = unsafe {
            use std::os::fd::FromRawFd;
            (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
        };
        WINCH_WRITE_FD.store(write.as_raw_fd(), Ordering::Relaxed);
        // SAFETY: installs a handler that only calls write.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_winch as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            if libc::sigaction(libc::SIGWINCH, &action, std::ptr::null_mut()) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(Self {
            read,
            _write: write,
        })
    }

    fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    fn drain(&self) {
        let mut buffer = [0u8; 64];
        while matches!(pty::read(self.read_fd(), &mut buffer), Ok(n) if n > 0) {}
    }
}

impl Drop for WindowChanges {
    fn drop(&mut self) {
        WINCH_WRITE_FD.store(-1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_address_comes_from_ssh_connection() {
        assert_eq!(
            client_addr("192.0.2.7 50022 192.0.2.1 22").as_deref(),
            Some("192.0.2.7:50022")
        );
        assert_eq!(
            client_addr("2001:db8::7 50022 2001:db8::1 22").as_deref(),
            Some("[2001:db8::7]:50022")
        );
        assert_eq!(client_addr("garbage"), None);
    }

    #[test]
    fn a_login_shell_invocation_is_recognised() {
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        let login = as_login_shell(&args(&["-spog-agent"])).unwrap();
        assert!(login.command.is_none());
        let command = as_login_shell(&args(&["spog-agent", "-c", "uptime"])).unwrap();
        assert_eq!(command.command.as_deref(), Some("uptime"));
        assert!(as_login_shell(&args(&["spog-agent", "run"])).is_none());
    }
}
