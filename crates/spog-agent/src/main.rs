//! `spog-agent`, the host agent of SPEC 12. `main` only parses the command line, loads the
//! configuration and maps outcomes to exit statuses: 0 done, 1 failed, 3 credential revoked.

mod backoff;
mod buffer;
mod cli;
mod config;
mod enroll;
mod enrollment;
mod facts;
mod hub_url;
mod install;
mod metrics;
mod run;
mod session;
mod shell;
mod status;
mod terminal;
mod tls;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tracing_subscriber::filter::Targets;

use crate::cli::{Cli, Command};
use crate::config::{AgentConfig, DEFAULT_CONFIG_PATH};
use crate::enrollment::Enrollment;
use crate::run::RunOutcome;

/// The unit does not restart on it (`RestartPreventExitStatus=3`).
const EXIT_CREDENTIAL_REVOKED: u8 = 3;

fn main() -> ExitCode {
    // As a login shell: `-spog-agent`, or `spog-agent -c CMD` from sshd.
    let args: Vec<_> = std::env::args_os().collect();
    if let Some(shell) = shell::client::as_login_shell(&args) {
        return shell::client::run(shell);
    }
    let cli = Cli::parse();
    init_logging();
    match execute(cli.command) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("spog-agent: {message}");
            ExitCode::FAILURE
        }
    }
}

fn execute(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Version => {
            println!(
                "spog-agent {} (protocol {})",
                facts::AGENT_VERSION,
                spog_protocol::SUBPROTOCOL_V1
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Enroll {
            server,
            token,
            name,
            hostname,
            config,
            insecure_http,
        } => {
            let config = AgentConfig::load(config.as_deref())?;
            let args = enroll::EnrollArgs {
                server,
                token,
                name,
                hostname,
                insecure_http,
            };
            println!("{}", enroll::enroll(&config, args)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { config } => run(AgentConfig::load(config.as_deref())?),
        Command::Install {
            config,
            unit_dir,
            no_start,
        } => {
            // Refuse a unit whose configuration would not start.
            AgentConfig::load(config.as_deref())?;
            let args = install::InstallArgs {
                config: config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH)),
                unit_dir,
                no_start,
            };
            println!("{}", install::install(args)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Uninstall { unit_dir, no_stop } => {
            println!("{}", install::uninstall(&unit_dir, no_stop)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Shell { config, command } => Ok(shell::client::run(shell::client::ShellArgs {
            config,
            command,
        })),
        Command::Status { config } => {
            let config = AgentConfig::load(config.as_deref())?;
            let connected = status::show(&config)?;
            Ok(if connected {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn run(config: AgentConfig) -> Result<ExitCode, String> {
    let path = config.enrollment_path();
    let enrollment = Enrollment::read(&path)?.ok_or_else(|| not_enrolled(&path))?;
    let _lock = lock_state_dir(&config)?;
    // One thread is plenty for one socket and a sample every few seconds; the blocking pool
    // (sysinfo, files) keeps one thread warm between samples instead of spawning one each time.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(2)
        .thread_keep_alive(Duration::from_secs(120))
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    let outcome = runtime.block_on(run::run(config, enrollment));
    runtime.shutdown_timeout(Duration::from_secs(2));
    match outcome? {
        RunOutcome::Stopped => {
            tracing::info!("stopped");
            Ok(ExitCode::SUCCESS)
        }
        RunOutcome::CredentialRevoked => {
            tracing::error!("credential revoked: enroll again");
            eprintln!("spog-agent: credential revoked: enroll again");
            Ok(ExitCode::from(EXIT_CREDENTIAL_REVOKED))
        }
    }
}

/// One agent per state directory: a second one would replace the first's connection (4409)
/// and be replaced in turn. The lock lasts as long as the returned file is open.
fn lock_state_dir(config: &AgentConfig) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = config.state_dir.join("agent.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "another spog-agent is already running with state_dir {}",
            config.state_dir.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

fn not_enrolled(path: &Path) -> String {
    format!(
        "not enrolled ({} is absent): run spog-agent enroll --server URL --token T first",
        path.display()
    )
}

/// Compact lines on stderr (journald adds the time when run by systemd); `RUST_LOG` takes
/// `info`, `debug` or per-target levels like `spog_agent=debug`.
fn init_logging() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|text| text.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .compact()
                .with_target(false)
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with(filter)
        .try_init();
}
