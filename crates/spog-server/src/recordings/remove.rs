//! Removing a deleted recording's content, wherever it lives: its sealed object in the
//! storage its row names, anything left in this instance's spool (the spool file of one that
//! ended unsealed, a sealed copy not yet stored), and the parts uploaded while it was active.

use spog_core::Id;
use spog_core::model::Account;

use super::kind::Recorded;
use super::storage::Backend;
use super::{parts, seal};
use crate::state::AppState;

/// Removes what `recording` recorded. Called once its row's deletion has committed: a failure
/// leaves content that no row refers to, which the caller logs, never a row without content.
pub async fn remove_content<K: Recorded>(
    state: &AppState,
    account: Id<Account>,
    recording: &K,
) -> std::io::Result<()> {
    let id = recording.id();
    state.recorders.close(id).await;
    let spool = spog_store::recordings::file_path(account, id);
    match recording
        .stored()
        .storage
        .as_deref()
        .and_then(Backend::parse)
    {
        Some(backend) => {
            let waiting = seal::compressed_path(&state.recorders.path(&spool));
            state
                .storage
                .objects(backend)?
                .delete(&seal::key(account, id))
                .await?;
            match tokio::fs::remove_file(waiting).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        // Ended before sealing existed: its file is where the row says.
        None => state.recorders.remove_files(recording.file_path()).await?,
    }
    state.recorders.remove_files(&spool).await?;
    parts::clear(state, account, id).await;
    Ok(())
}
