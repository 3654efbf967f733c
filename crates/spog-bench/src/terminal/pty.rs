//! The baseline: PTYs of this process, without spog.

use super::*;

/// `/bin/sh` on a PTY of this process, echo on and no prompt: each of `count` bytes timed from
/// writing it to the master to reading its echo back. Blocking.
pub(super) fn direct_pty_echo(count: usize) -> anyhow::Result<Vec<Duration>> {
    let mut pty = DirectPty::spawn()?;
    pty.drain()?;
    pty.master.write_all(QUIET_PROMPT)?;
    pty.drain()?;
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        if i > 0 && i % KILL_LINE_EVERY == 0 {
            pty.master.write_all(KILL_LINE)?;
            pty.drain()?;
        }
        let key = b'a' + (i % 26) as u8;
        let sent = Instant::now();
        pty.master.write_all(&[key])?;
        pty.echoed(key)?;
        samples.push(sent.elapsed());
    }
    pty.master.write_all(KILL_LINE)?;
    pty.drain()?;
    pty.master.write_all(EXIT)?;
    Ok(samples)
}

/// `terminals` shells on PTYs of this process printing flat out, every master read by this
/// thread: MB/s over `seconds` (after one to get going). Blocking.
pub(super) fn direct_pty_flat_out(terminals: usize, seconds: u64) -> anyhow::Result<f64> {
    let mut ptys = (0..terminals)
        .map(|_| DirectPty::spawn())
        .collect::<anyhow::Result<Vec<_>>>()?;
    for pty in &mut ptys {
        pty.master.write_all(FLAT_OUT)?;
    }
    read_all(&mut ptys, Duration::from_secs(1))?;
    let started = Instant::now();
    let bytes = read_all(&mut ptys, Duration::from_secs(seconds))?;
    let rate = bytes as f64 / 1e6 / started.elapsed().as_secs_f64();
    for pty in &mut ptys {
        // Dropping kills the shells; the hangup then ends their pipelines.
        let _ = pty.master.write_all(INTERRUPT);
    }
    Ok(rate)
}

/// Reads whatever the masters of `ptys` have for `duration`: how many bytes.
pub(super) fn read_all(ptys: &mut [DirectPty], duration: Duration) -> anyhow::Result<u64> {
    let mut polls: Vec<libc::pollfd> = ptys
        .iter()
        .map(|pty| libc::pollfd {
            fd: pty.master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let mut buf = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    let started = Instant::now();
    while started.elapsed() < duration {
        // SAFETY: `polls` is a valid array of its length.
        let ready = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, 100) };
        anyhow::ensure!(ready >= 0, "poll: {}", std::io::Error::last_os_error());
        for (poll, pty) in polls.iter().zip(ptys.iter_mut()) {
            if poll.revents & libc::POLLIN != 0 {
                bytes += pty.master.read(&mut buf)? as u64;
            }
        }
    }
    Ok(bytes)
}

/// A shell on a PTY whose master this process holds; killed when dropped.
pub(super) struct DirectPty {
    pub(super) master: File,
    pub(super) child: Child,
}

impl Drop for DirectPty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DirectPty {
    pub(super) fn spawn() -> anyhow::Result<Self> {
        let (mut master, mut slave) = (-1, -1);
        let size = libc::winsize {
            ws_row: 40,
            ws_col: 120,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two descriptors; no name buffer, default termios.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        anyhow::ensure!(rc == 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: openpty returned two open descriptors that nothing else owns.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let mut command = Command::new("/bin/sh");
        command
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("TERM", "xterm-256color")
            .stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave.try_clone()?));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn()?;
        drop(command);
        drop(slave);
        Ok(Self {
            master: File::from(master),
            child,
        })
    }

    /// What the master has within `timeout`; `None` when nothing came.
    pub(super) fn read_within(&mut self, timeout: Duration) -> anyhow::Result<Option<Vec<u8>>> {
        let mut poll = libc::pollfd {
            fd: self.master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut poll, 1, timeout.as_millis() as libc::c_int) };
        anyhow::ensure!(ready >= 0, "poll: {}", std::io::Error::last_os_error());
        if ready == 0 {
            return Ok(None);
        }
        let mut buf = [0u8; 4096];
        let n = self.master.read(&mut buf)?;
        anyhow::ensure!(n > 0, "the direct shell's PTY closed");
        Ok(Some(buf[..n].to_vec()))
    }

    pub(super) fn drain(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < WAIT {
            if self.read_within(QUIET)?.is_none() {
                return Ok(());
            }
        }
        anyhow::bail!("the direct shell kept printing for {} s", WAIT.as_secs())
    }

    pub(super) fn echoed(&mut self, key: u8) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < WAIT {
            if let Some(bytes) = self.read_within(WAIT)?
                && bytes.contains(&key)
            {
                return Ok(());
            }
        }
        anyhow::bail!("no echo from the direct shell within {} s", WAIT.as_secs())
    }
}
