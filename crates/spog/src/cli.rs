use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "spog",
    version,
    about = "SPOG audit, session-recording and notification hub"
)]
pub struct Cli {
    /// TOML configuration file (also SPOG_CONFIG).
    #[arg(long, global = true, env = "SPOG_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the API, console and workers (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate {
        /// Only report the schema's version and the pending migrations; exit 2 when some
        /// are pending.
        #[arg(long)]
        check: bool,
    },
    /// Copy the running service's data into DIR (absent or empty): the SQLite database taken
    /// online, the server key and the recordings. On PostgreSQL, also run pg_dump.
    Backup { dir: PathBuf },
    /// Put a backup into the configured data directory, which must be absent or empty; the
    /// next start verifies the audit chain and says so.
    Restore { dir: PathBuf },
    /// Print every configuration key, its effective value (secrets masked) and where it came
    /// from (default, file, environment); exit 1 when the configuration is invalid.
    Config,
    /// Accounts and users.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Session recordings.
    Recordings {
        #[command(subcommand)]
        command: RecordingsCommand,
    },
    /// API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create an account (tenant) with its default organization and admin; prints its id.
    CreateAccount {
        #[arg(long)]
        name: String,
        #[arg(long)]
        admin_email: String,
        #[arg(long)]
        admin_password: String,
    },
    /// Create a user in an account.
    CreateUser {
        /// Account name.
        #[arg(long)]
        account: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        password: String,
        /// Role name: admin, auditor, operator, viewer or a custom role.
        #[arg(long)]
        role: String,
    },
    /// Enrollment tokens for host agents.
    EnrollmentToken {
        #[command(subcommand)]
        command: EnrollmentTokenCommand,
    },
}

#[derive(Subcommand)]
pub enum EnrollmentTokenCommand {
    /// Create a one-time enrollment token; prints it once.
    Create {
        /// Account name.
        #[arg(long)]
        account: String,
        /// Organization id (default: the account's first organization, or the host's).
        #[arg(long)]
        organization: Option<String>,
        /// How long the token stays usable, e.g. 1h, 30m, 7d (at most 7 days).
        #[arg(long, default_value = "1h")]
        expires: String,
        /// An existing host the enrolling agent claims.
        #[arg(long)]
        host: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum RecordingsCommand {
    /// Move the ended recordings kept in the data directory to the configured object storage
    /// (recordings_storage = s3://…), checking each one's hash before and after; exits 1 when
    /// any could not be moved (they stay where they were).
    CopyToStorage,
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an API token; prints it once.
    Create {
        /// Account name.
        #[arg(long)]
        account: String,
        #[arg(long)]
        name: String,
        /// system, agent, workflow or user.
        #[arg(long)]
        actor_type: String,
        /// Comma-separated permissions, e.g. audit_logs.write,events.publish.
        #[arg(long, value_delimiter = ',')]
        permissions: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Verify a JSON Lines export offline, without the server: every hash and link, and the
    /// chain's end against a signed checkpoint. Exits 1 when anything is broken.
    Verify {
        /// The export (`GET /api/v1/audit-logs/export?format=jsonl` without filters).
        #[arg(long)]
        export: PathBuf,
        /// A checkpoint as `GET /api/v1/audit-logs/checkpoints` returns one (JSON).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// The public key (`GET /api/v1/audit-logs/checkpoints/public-key`, JSON or hex).
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
}
