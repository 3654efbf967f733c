//! A stream failing for `audit_stream_alert_after` tells the account's stream managers in-app
//! (category `security`, severity `high`), once, and again when it recovers.

use spog_core::notification::{Category, Severity};
use spog_core::{Permission, Timestamp};
use spog_store::audit_streams::sending;

use crate::events::{Announcements, Notice, notify_holders};
use crate::state::AppState;

/// Tells what there is to tell; returns how many streams it told about.
pub async fn announce(state: &AppState) -> anyhow::Result<usize> {
    let now = Timestamp::now();
    let since = now.minus(state.config.audit_stream_alert_after);
    let due = {
        let mut conn = state.store.conn().await?;
        sending::to_announce(&mut conn, since).await?
    };
    let mut told = 0;
    for (account, stream, name, failing) in due {
        let mut tx = state.store.begin().await?;
        // Marked first, in the same transaction: instances racing tell once.
        if !sending::announced(&mut tx, stream, failing).await? {
            continue;
        }
        let (title, message) = if failing {
            (
                format!("Audit stream failing: {name}"),
                format!(
                    "The audit stream {name} has failed to deliver for over {}s; entries wait \
                     and nothing is lost. See its last error.",
                    state.config.audit_stream_alert_after.as_secs()
                ),
            )
        } else {
            (
                format!("Audit stream recovered: {name}"),
                format!("The audit stream {name} delivers again."),
            )
        };
        let notice = Notice {
            category: Category::Security,
            severity: Severity::High,
            title,
            message,
            link: Some(format!("/audit-logs/streams/{stream}")),
        };
        let mut announcements = Announcements::default();
        notify_holders(
            &mut tx,
            account,
            Permission::AuditStreamsManage,
            &notice,
            &mut announcements,
        )
        .await?;
        tx.commit_unaudited().await?;
        announcements.send(&state.bus).await;
        told += 1;
    }
    Ok(told)
}
