//! `spog-agent install` / `uninstall`: the systemd unit of SPEC 12.2. Installing twice
//! changes nothing; exit status 3 (credential revoked) is not restarted.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const UNIT_NAME: &str = "spog-agent.service";
pub const DEFAULT_UNIT_DIR: &str = "/etc/systemd/system";
const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(60);

/// The unit that runs `binary run --config config`.
pub fn unit_text(binary: &Path, config: &Path) -> Result<String, String> {
    Ok(format!(
        "[Unit]\n\
         Description=spog host agent\n\
         Documentation=spog-agent status\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={} run --config {}\n\
         Restart=always\n\
         RestartSec=5\n\
         # 3: the hub refused the credential; enroll again, then start the unit.\n\
         RestartPreventExitStatus=3\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        unit_argument(binary)?,
        unit_argument(config)?,
    ))
}

/// A path as one ExecStart argument: quoted when it has spaces; refused when systemd would
/// read it differently.
fn unit_argument(path: &Path) -> Result<String, String> {
    let text = path
        .to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))?;
    if text
        .chars()
        .any(|c| c.is_control() || matches!(c, '"' | '\'' | '\\' | '%' | '$'))
    {
        return Err(format!("{text}: unsupported character in a unit path"));
    }
    Ok(if text.contains(' ') {
        format!("\"{text}\"")
    } else {
        text.to_owned()
    })
}

pub struct InstallArgs {
    pub config: PathBuf,
    pub unit_dir: PathBuf,
    pub no_start: bool,
}

/// Writes the unit (if it differs) and, unless told not to, enables and starts it.
pub fn install(args: InstallArgs) -> Result<String, String> {
    let binary = std::env::current_exe()
        .and_then(|exe| exe.canonicalize())
        .map_err(|e| format!("cannot tell where this binary is: {e}"))?;
    let config = absolute(&args.config)?;
    let text = unit_text(&binary, &config)?;
    let path = args.unit_dir.join(UNIT_NAME);
    let unchanged = fs::read_to_string(&path).is_ok_and(|current| current == text);
    let mut report = Vec::new();
    if unchanged {
        report.push(format!("{} is up to date", path.display()));
    } else {
        write_unit(&path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        report.push(format!("wrote {}", path.display()));
    }
    if args.no_start {
        report.push(format!(
            "start it with: systemctl daemon-reload && systemctl enable --now {UNIT_NAME}"
        ));
    } else {
        systemctl(&["daemon-reload"])?;
        systemctl(&["enable", "--now", UNIT_NAME])?;
        report.push(format!("enabled and started {UNIT_NAME}"));
        if !unchanged {
            report.push(format!(
                "if it was already running, restart it: systemctl restart {UNIT_NAME}"
            ));
        }
    }
    Ok(report.join("\n"))
}

/// Stops and disables the unit (unless `no_stop`) and removes it; the state directory and its
/// credential stay.
pub fn uninstall(unit_dir: &Path, no_stop: bool) -> Result<String, String> {
    let path = unit_dir.join(UNIT_NAME);
    if !path.exists() {
        return Ok(format!("{} is not installed", path.display()));
    }
    if !no_stop {
        systemctl(&["disable", "--now", UNIT_NAME])?;
    }
    fs::remove_file(&path).map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
    if !no_stop {
        systemctl(&["daemon-reload"])?;
    }
    Ok(format!(
        "removed {} (the state directory and its credential are kept)",
        path.display()
    ))
}

fn absolute(path: &Path) -> Result<PathBuf, String> {
    if path.is_absolute() {
        return Ok(path.to_owned());
    }
    std::env::current_dir()
        .map(|dir| dir.join(path))
        .map_err(|e| format!("cannot resolve {}: {e}", path.display()))
}

fn write_unit(path: &Path, text: &str) -> std::io::Result<()> {
    let temporary = path.with_extension("service.tmp");
    let _ = fs::remove_file(&temporary);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    fs::rename(&temporary, path)
}

/// Runs `systemctl ARGS`, waiting at most a minute.
fn systemctl(args: &[&str]) -> Result<(), String> {
    let shown = format!("systemctl {}", args.join(" "));
    let mut child = Command::new("systemctl")
        .args(args)
        .spawn()
        .map_err(|e| format!("{shown}: {e}"))?;
    let deadline = Instant::now() + SYSTEMCTL_TIMEOUT;
    loop {
        match child.try_wait().map_err(|e| format!("{shown}: {e}"))? {
            Some(status) if status.success() => return Ok(()),
            Some(status) => return Err(format!("{shown} failed ({status})")),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{shown} did not finish within a minute"));
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_runs_this_binary_restarts_it_and_leaves_status_3_alone() {
        let text = unit_text(
            Path::new("/usr/local/bin/spog-agent"),
            Path::new("/etc/spog-agent/agent.toml"),
        )
        .unwrap();
        assert!(text.contains(
            "\nExecStart=/usr/local/bin/spog-agent run --config /etc/spog-agent/agent.toml\n"
        ));
        for line in [
            "Restart=always",
            "RestartSec=5",
            "RestartPreventExitStatus=3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}");
        }
        let spaced = unit_text(
            Path::new("/opt/my agent/spog-agent"),
            Path::new("/etc/a.toml"),
        );
        assert!(
            spaced
                .unwrap()
                .contains("ExecStart=\"/opt/my agent/spog-agent\" run")
        );
        assert!(unit_text(Path::new("/opt/$HOME/x"), Path::new("/etc/a.toml")).is_err());
    }
}
