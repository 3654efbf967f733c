use std::io::IsTerminal;

use anyhow::Context;
use spog_core::audit::Source;
use spog_core::validate::Email;
use spog_server::config::LogFormat;
use spog_server::{Config, admin, bootstrap};
use spog_store::{Store, StoreOptions};
use tokio_util::sync::CancellationToken;

use crate::cli::{
    AdminCommand, AuditCommand, Cli, Command, EnrollmentTokenCommand, RecordingsCommand,
    TokenCommand,
};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // Offline verification needs neither configuration nor database.
    if let Some(Command::Audit {
        command:
            AuditCommand::Verify {
                export,
                checkpoint,
                public_key,
            },
    }) = &cli.command
    {
        return crate::verify::run(export, checkpoint.as_deref(), public_key.as_deref());
    }
    let loaded =
        Config::read(cli.config.as_deref()).map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    init_logging(loaded.config.log_format);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let config = loaded.config.clone();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate { check: false } => {
            open_store(&config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Migrate { check: true } => check_migrations(&config).await,
        Command::Backup { dir } => {
            let store = open_store(&config).await?;
            let manifest = spog_server::backup::backup(&config, &store, &dir).await?;
            println!(
                "backed up to {}: database {}, server key {}, {} recording files",
                dir.display(),
                manifest
                    .database
                    .as_deref()
                    .unwrap_or("(PostgreSQL: run pg_dump)"),
                if manifest.server_key {
                    "copied"
                } else {
                    "from configuration (keep it yourself)"
                },
                manifest.recordings
            );
            Ok(())
        }
        Command::Restore { dir } => {
            let manifest = spog_server::backup::restore(&config, &dir)?;
            println!(
                "restored the backup of {} into {}; the next start verifies the audit chain",
                manifest.created_at,
                config.data_dir.display()
            );
            Ok(())
        }
        Command::Config => {
            let settings = loaded.settings();
            let width = settings.iter().map(|s| s.key.len()).max().unwrap_or(0);
            for setting in settings {
                println!(
                    "{:<width$} = {:<40} # {}",
                    setting.key, setting.value, setting.source
                );
            }
            Ok(())
        }
        Command::Admin { command } => admin_command(&config, command).await,
        Command::Recordings {
            command: RecordingsCommand::CopyToStorage,
        } => copy_to_storage(config).await,
        Command::Audit { .. } => unreachable!("handled before configuration is read"),
        Command::Token {
            command:
                TokenCommand::Create {
                    account,
                    name,
                    actor_type,
                    permissions,
                },
        } => {
            let store = open_store(&config).await?;
            let token =
                admin::create_token(&store, &account, &name, &actor_type, &permissions).await?;
            println!("{token}");
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // Every connection and open recording holds a descriptor; the common soft limit of 1,024
    // is far below what a busy instance needs.
    match spog_server::open_files::raise_limit() {
        Ok(limit) => tracing::info!(open_files_limit = limit, "open-files limit"),
        Err(error) => tracing::warn!(%error, open_files_limit = spog_server::open_files::limit(),
            "could not raise the open-files limit"),
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let shutdown = CancellationToken::new();
    let running = spog_server::launch(config, listener, shutdown.clone()).await?;
    if let Some(admin) = &running.first_admin {
        print_first_admin(admin, running.addr);
    }
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        shutdown.cancel();
    });
    running.wait().await
}

fn print_first_admin(admin: &bootstrap::FirstAdmin, addr: std::net::SocketAddr) {
    println!();
    println!("  spog is ready at http://{addr}/");
    println!("  First start: created the default account and its administrator.");
    println!("    email:    {}", admin.email);
    match &admin.generated_password {
        Some(password) => {
            println!("    password: {password}   (shown only now; change it after logging in)")
        }
        None => println!("    password: the configured admin_password"),
    }
    println!();
}

async fn wait_for_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// `spog recordings copy-to-storage`: a line per recording skipped or failed and per
/// hundred done, then the summary; an error when any failed.
async fn copy_to_storage(config: Config) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let keys = spog_server::keys::Keys::load(
        config.server_key.as_ref().map(|s| s.expose()),
        config.checkpoint_key.as_ref().map(|s| s.expose()),
        &config.data_dir,
    )?;
    let state = spog_server::state::AppState::new(config, store, keys)?;
    let summary =
        spog_server::recordings::copy_to_storage::run(&state, &mut |line| println!("{line}"))
            .await?;
    println!("copy-to-storage: {summary}");
    if summary.failed > 0 {
        anyhow::bail!(
            "{} recordings could not be moved (see above); they stay in the data directory",
            summary.failed
        );
    }
    Ok(())
}

/// Reports where the schema stands; exits 2 when migrations are pending.
async fn check_migrations(config: &Config) -> anyhow::Result<()> {
    let status = connect_store(config).await?.schema_status().await?;
    println!(
        "database schema at migration {}; this build knows up to {}",
        status.database, status.build
    );
    if status.is_newer_than_build() {
        anyhow::bail!("the database was migrated by a newer build of spog");
    }
    if status.pending.is_empty() {
        println!("nothing pending");
        return Ok(());
    }
    for (version, description) in &status.pending {
        println!("pending: {version:04} {description}");
    }
    std::process::exit(2);
}

/// The configured database, migrated to this build's schema.
async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = connect_store(config).await?;
    store.migrate().await?;
    Ok(store)
}

async fn connect_store(config: &Config) -> anyhow::Result<Store> {
    spog_server::private_files::prepare_data_dir(
        &config.data_dir,
        &config.database_url(),
        &config.data_dir.join(spog_server::keys::KEY_FILE),
    )?;
    let options = StoreOptions {
        max_connections: 2,
        ..Default::default()
    };
    Ok(Store::connect(&config.database_url(), &options).await?)
}

async fn admin_command(config: &Config, command: AdminCommand) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    match command {
        AdminCommand::CreateAccount {
            name,
            admin_email,
            admin_password,
        } => {
            let name = spog_core::validate::name("name", &name, 200)?;
            let email = Email::parse("admin_email", &admin_email)?;
            let account =
                bootstrap::create_account(&store, &name, &email, &admin_password, Source::Cli)
                    .await?;
            println!("{}", account.id);
        }
        AdminCommand::CreateUser {
            account,
            email,
            password,
            role,
        } => {
            let user = admin::create_user(&store, &account, &email, &password, &role).await?;
            println!("{}", user.id);
        }
        AdminCommand::EnrollmentToken {
            command:
                EnrollmentTokenCommand::Create {
                    account,
                    organization,
                    expires,
                    host,
                },
        } => {
            let expires = spog_server::config::parse_duration(&expires)
                .map_err(|e| anyhow::anyhow!("--expires: {e}"))?;
            let token = admin::create_enrollment_token(
                &store,
                &account,
                organization.as_deref(),
                expires,
                host.as_deref(),
            )
            .await?;
            println!("{token}");
        }
    }
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SPOG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}
