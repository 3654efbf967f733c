//! The command line (SPEC 11.1, 12, 13.3):
//! `enroll | run | install | uninstall | status | shell | version`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "spog-agent",
    version,
    about = "The spog host agent: enrolls this host, keeps it online and reports its facts and metrics"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Exchange a one-time enrollment token for this host's credential.
    Enroll {
        /// The hub's address, e.g. https://spog.example.com.
        #[arg(long)]
        server: String,
        /// The enrollment token (spog_enroll_…).
        #[arg(long)]
        token: String,
        /// The host's display name in spog.
        #[arg(long)]
        name: Option<String>,
        /// The hostname to enroll as (default: this machine's).
        #[arg(long)]
        hostname: Option<String>,
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Allow plain http:// to another machine than this one.
        #[arg(long)]
        insecure_http: bool,
    },
    /// Connect to the hub and report until stopped.
    Run {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Install the systemd unit, then enable and start it.
    Install {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[arg(long, value_name = "DIR", default_value = crate::install::DEFAULT_UNIT_DIR)]
        unit_dir: PathBuf,
        /// Only write the unit.
        #[arg(long)]
        no_start: bool,
    },
    /// Stop, disable and remove the systemd unit (the credential is kept).
    Uninstall {
        #[arg(long, value_name = "DIR", default_value = crate::install::DEFAULT_UNIT_DIR)]
        unit_dir: PathBuf,
        /// Only remove the unit file.
        #[arg(long)]
        no_stop: bool,
    },
    /// Show the enrollment and the connection; exit status 0 when connected.
    Status {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Run a recorded shell: for OpenSSH's ForceCommand, or as a login shell.
    Shell {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Run this command with the shell instead of an interactive session.
        #[arg(short = 'c', value_name = "CMD")]
        command: Option<String>,
    },
    /// Print the version.
    Version,
}
