//! "The host is alive" (SPEC 12.2), one entry point for every caller: a heartbeat through the
//! API, an agent connecting, and a connected agent's periodic refresh. The host's
//! `last_heartbeat_at` moves on; a host that was offline comes online, publishing
//! `host.online` with an entry on record, once whichever instance or caller sees it first.

use serde_json::json;
use spog_core::Timestamp;
use spog_core::events::EventType;
use spog_core::model::Host;
use spog_store::events::NewEvent;
use spog_store::identity::hosts;
use spog_store::{Tx, audit};

use crate::alerting::{Announcements, publish_event};
use crate::auth::Auth;
use crate::error::ApiResult;

/// Records that `host` is alive in `tx`; returns whether it came online.
pub async fn alive(
    tx: &mut Tx,
    auth: &Auth,
    host: spog_core::Id<Host>,
    now: Timestamp,
    announcements: &mut Announcements,
) -> ApiResult<bool> {
    let came_online = hosts::heartbeat(tx, auth.account(), host, now).await?;
    if came_online {
        let host = hosts::get(tx, auth.account(), host).await?;
        let event = NewEvent {
            account: auth.account(),
            organization: host.organization_id,
            event_type: EventType::HostOnline,
            occurred_at: now,
            data: json!({"host_id": host.id, "hostname": host.hostname, "name": host.name})
                .to_string(),
            idempotency_key: None,
        };
        publish_event(tx, event, now, announcements).await?;
        let entry = auth
            .entry("host.online", "host")
            .resource(host.id, &host.hostname)
            .in_organization(host.organization_id)
            .after(&host);
        audit::record(tx, entry).await?;
    }
    Ok(came_online)
}
