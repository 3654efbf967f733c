//! "The host is alive" (SPEC 12.2), one entry point for every caller: a heartbeat through the
//! API, an agent connecting, and a connected agent's periodic refresh. The host's
//! `last_heartbeat_at` moves on; a host that was offline comes online, publishing
//! `host.online` with an entry on record, once whichever instance or caller sees it first.

use spog_core::Timestamp;
use spog_core::audit::Action;
use spog_core::events::EventType;
use spog_core::model::Host;
use spog_store::Tx;
use spog_store::identity::hosts;

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::events::{self, Announcements, NewEvent};

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
        let event = NewEvent::about_host(auth.account(), EventType::HostOnline, &host, now);
        events::publish(tx, event, now, announcements).await?;
        tx.record(auth.did(Action::HostOnline, &host).after(&host))
            .await?;
    }
    Ok(came_online)
}
