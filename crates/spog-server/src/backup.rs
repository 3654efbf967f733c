//! `spog backup DIR` and `spog restore DIR` (issue 20): a consistent copy of a running
//! service — the SQLite database taken online (`VACUUM INTO`), the server key, the recordings —
//! and its return into an empty data directory. On PostgreSQL the database is `pg_dump`'s
//! (README, "Backups and upgrades"); the key and recordings are copied all the same. A
//! restored service verifies every account's audit chain and latest signed checkpoint at its
//! first start and says so in its log.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use spog_core::Timestamp;
use spog_core::audit::checkpoint;
use spog_store::Store;
use spog_store::audit::checkpoints;
use spog_store::identity::accounts;

use crate::config::Config;
use crate::keys::KEY_FILE;
use crate::private_files::{FILE_MODE, create_dir, file_options, sqlite_file};
use crate::state::AppState;

/// What a backup holds, written last: a directory without it is not a backup.
pub const MANIFEST: &str = "backup.json";
const DATABASE: &str = "spog.db";
/// Recordings kept in the data directory, and those being written (SPEC 8.3); recordings in
/// object storage are the storage's to back up.
const RECORDINGS: &str = "recordings";
const SPOOL: &str = "spool";
/// Left in a restored data directory until the first start has verified it.
const RESTORED: &str = "restored-from.json";

#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub created_at: Timestamp,
    pub spog_version: String,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// The newest migration applied to the database copied.
    pub schema: i64,
    /// The database file inside the backup; none on PostgreSQL.
    pub database: Option<String>,
    /// Whether the server key file was copied (a key given by configuration is not a file).
    pub server_key: bool,
    /// Recording files copied (kept in the data directory, or being written).
    pub recordings: u64,
}

/// Takes a backup of the service configured by `config` into `dir`, which must be absent or
/// empty. Safe while the service runs.
pub async fn backup(config: &Config, store: &Store, dir: &Path) -> anyhow::Result<Manifest> {
    refuse_non_empty(dir, "the backup directory")?;
    create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    let schema = store.schema_status().await?.database;
    let database = store
        .copy_sqlite_to(&dir.join(DATABASE))
        .await?
        .then(|| DATABASE.to_owned());
    let (data_dir, target) = (config.data_dir.clone(), dir.to_owned());
    let (server_key, recordings) = tokio::task::spawn_blocking(move || {
        let key = data_dir.join(KEY_FILE);
        let server_key = key.exists();
        if server_key {
            copy_file(&key, &target.join(KEY_FILE))?;
        }
        let mut recordings = 0;
        // The spool first: a recording sealed meanwhile then has its object copied after.
        for tree in [SPOOL, RECORDINGS] {
            recordings += copy_tree(&data_dir.join(tree), &target.join(tree))?;
        }
        anyhow::Ok((server_key, recordings))
    })
    .await??;
    let manifest = Manifest {
        format: 1,
        created_at: Timestamp::now(),
        spog_version: env!("CARGO_PKG_VERSION").to_owned(),
        backend: store.backend().name().to_owned(),
        schema,
        database,
        server_key,
        recordings,
    };
    write_json(&dir.join(MANIFEST), &manifest)?;
    Ok(manifest)
}

/// Puts the backup in `dir` into the data directory of `config`, which must be absent or
/// empty; the first start afterwards verifies what it restored.
pub fn restore(config: &Config, dir: &Path) -> anyhow::Result<Manifest> {
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(dir.join(MANIFEST))
            .with_context(|| format!("{} is not a spog backup", dir.display()))?,
    )
    .context("the backup's manifest is unreadable")?;
    anyhow::ensure!(
        manifest.format == 1,
        "backup format {} is newer than this build of spog reads",
        manifest.format
    );
    refuse_non_empty(&config.data_dir, "the data directory")?;
    let database_file = sqlite_file(&config.database_url());
    match (&manifest.database, &database_file) {
        (Some(_), None) => anyhow::bail!(
            "the backup holds a SQLite database but database_url names PostgreSQL: \
             restore into a SQLite configuration"
        ),
        (None, Some(_)) => anyhow::bail!(
            "the backup was taken on PostgreSQL: restore its database with pg_restore and \
             point database_url at it, then restore this directory again"
        ),
        _ => {}
    }
    create_dir(&config.data_dir)?;
    if let (Some(name), Some(target)) = (&manifest.database, &database_file) {
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_dir(parent)?;
        }
        copy_file(&dir.join(name), target)?;
    }
    if manifest.server_key {
        copy_file(&dir.join(KEY_FILE), &config.data_dir.join(KEY_FILE))?;
    }
    for tree in [RECORDINGS, SPOOL] {
        copy_tree(&dir.join(tree), &config.data_dir.join(tree))?;
    }
    write_json(&config.data_dir.join(RESTORED), &manifest)?;
    Ok(manifest)
}

/// At start: when the data directory was just restored, verifies every account's chain and
/// latest checkpoint, logs the outcome, and forgets that it was restored.
pub async fn verify_if_restored(state: &AppState) -> anyhow::Result<()> {
    let marker = state.config.data_dir.join(RESTORED);
    let Ok(text) = std::fs::read(&marker) else {
        return Ok(());
    };
    let manifest: Manifest = serde_json::from_slice(&text)?;
    let mut all_valid = true;
    let list = {
        let mut conn = state.store.conn().await?;
        accounts::list(&mut conn).await?
    };
    for account in list {
        let report = crate::chain::verify(&state.store, &state.blocking, account.id).await?;
        let checkpoint_ok = {
            let mut conn = state.store.conn().await?;
            match checkpoints::latest(&mut conn, account.id).await? {
                Some(c) => {
                    let message =
                        checkpoint::statement(&c.account_id, c.seq, &c.head_hash, c.signed_at);
                    checkpoint::verify(
                        &state.keys.checkpoint.verifying_key(),
                        &message,
                        &c.signature,
                    )
                }
                None => true,
            }
        };
        if report.report.valid && checkpoint_ok {
            tracing::info!(
                account = %account.name,
                entries = report.report.entries_checked,
                checkpoint_seq = report.checkpoint_seq,
                "restored from the backup of {}: the audit chain and its checkpoint verify",
                manifest.created_at
            );
        } else {
            all_valid = false;
            tracing::error!(
                account = %account.name,
                chain_valid = report.report.valid,
                checkpoint_signature_valid = checkpoint_ok,
                broken_links = report.report.broken_links.len(),
                "restored from the backup of {}: the audit chain does NOT verify",
                manifest.created_at
            );
        }
    }
    if all_valid {
        std::fs::remove_file(&marker)?;
    }
    Ok(())
}

fn refuse_non_empty(dir: &Path, what: &str) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => anyhow::ensure!(
            entries.next().is_none(),
            "{what} {} is not empty",
            dir.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    }
    Ok(())
}

fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = file_options().write(true).create_new(true).open(path)?;
    file.write_all(&serde_json::to_vec_pretty(value)?)?;
    file.sync_all()?;
    Ok(())
}

/// Copies one file, created 0600 and synced.
fn copy_file(from: &Path, to: &Path) -> anyhow::Result<()> {
    let mut source =
        std::fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let mut target = file_options()
        .write(true)
        .create_new(true)
        .open(to)
        .with_context(|| format!("creating {}", to.display()))?;
    std::io::copy(&mut source, &mut target)?;
    target.sync_all()?;
    debug_assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&target.metadata()?.permissions()) & 0o777,
        FILE_MODE
    );
    Ok(())
}

/// Copies a directory tree of regular files (directories 0700, files 0600); returns how many
/// files it copied. A missing source copies nothing.
fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<u64> {
    let mut copied = 0;
    let mut pending: Vec<(PathBuf, PathBuf)> = vec![(from.to_owned(), to.to_owned())];
    while let Some((source, target)) = pending.pop() {
        let entries = match std::fs::read_dir(&source) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", source.display())),
        };
        create_dir(&target)?;
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push((entry.path(), target.join(entry.file_name())));
            } else if kind.is_file() {
                match copy_file(&entry.path(), &target.join(entry.file_name())) {
                    Ok(()) => copied += 1,
                    // A spool file sealed away while the backup ran.
                    Err(e) if not_found(&e) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(copied)
}

fn not_found(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound)
}
