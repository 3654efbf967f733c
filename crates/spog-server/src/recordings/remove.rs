//! Removing a deleted recording's content: the one place that knows where a recording's bytes
//! live (today its files under the data directory), so a change of storage changes only this.

use super::kind::Recorded;
use crate::state::AppState;

/// Removes what `recording` recorded. Called once its row's deletion has committed: a failure
/// leaves content that no row refers to, which the caller logs, never a row without content.
pub async fn remove_content<K: Recorded>(state: &AppState, recording: &K) -> std::io::Result<()> {
    state.recorders.close(recording.id()).await;
    state.recorders.remove_files(recording.file_path()).await
}
