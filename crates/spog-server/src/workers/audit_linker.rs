//! Appends recorded audit entries to their account's chain soon after their change commits:
//! woken by every commit that recorded entries, and every second for entries other
//! instances left behind.

use std::time::Duration;

use serde_json::json;
use spog_core::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::hub::Dashboard;
use crate::hub::bus::BusEvent;
use crate::state::AppState;

pub const NAME: &str = "audit_chain_linker";
const GATHER: Duration = Duration::from_millis(20);

/// Links what is pending and tells the dashboards of the accounts whose trail grew.
pub async fn run_once(state: &AppState) -> anyhow::Result<u64> {
    let linked = spog_store::audit::link_pending(&state.store, Timestamp::now()).await?;
    state.metrics.audit_entries_linked.inc_by(linked.entries);
    for (account, head_seq) in linked.heads {
        let Ok(account) = account.parse() else {
            continue;
        };
        let dashboard = Dashboard {
            topic: "audit".to_owned(),
            data: json!({"head_seq": head_seq}),
        };
        state
            .bus
            .publish(BusEvent::Dashboard { account, dashboard })
            .await;
    }
    Ok(linked.entries)
}

pub fn spawn(state: &AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    super::spawn_loop(
        state,
        NAME,
        Duration::from_secs(1),
        Some(|state| state.store.audit_appended()),
        shutdown,
        |state| async move {
            // Lets the commits of a burst gather, so a round links many and costs its fixed
            // statements once.
            tokio::time::sleep(GATHER).await;
            run_once(&state).await.map(|_| ())
        },
    )
}
