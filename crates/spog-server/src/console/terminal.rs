//! The web terminal's page, `/hosts/{id}/terminal` (SPEC 11.1 "§10 console", 13.1): xterm.js
//! (from `web/package.json`) fitted to the window, speaking to
//! `GET /api/v1/hosts/{id}/terminal` over a WebSocket (`assets/js/terminal.js`), with the
//! notice that the session is recorded and, when it ends, why and where its recording is.
//! Who may open one is what the API allows: `terminal.connect` and a host they can see.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderValue;
use axum::http::header::CONTENT_SECURITY_POLICY;
use spog_core::model::{Account, Host, HostAgent};
use spog_core::{Id, Permission};
use spog_store::StoreError;
use spog_store::agents::credentials;

use super::error::PageResult;
use super::layout::{Chrome, render};
use super::lists::parse_id;
use super::session::RequirePage;
use crate::auth::permissions::TerminalConnect;
use crate::http::hosts::visible_host;
use crate::state::AppState;

/// The console's policy (see `console/mod.rs`) with inline styles allowed: xterm.js sizes and
/// colours its rows through `<style>` elements and `style` attributes it writes at run time.
/// Scripts stay limited to our own files.
const TERMINAL_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Whether the host's agent can open a terminal now, and if not, why, in words.
pub fn unavailable(agent: Option<&HostAgent>) -> Option<&'static str> {
    match agent {
        None => Some("No agent has enrolled this host."),
        Some(agent) if agent.revoked_at.is_some() => Some("The host's agent was revoked."),
        Some(agent) if !agent.connected => Some("The host's agent is not connected."),
        Some(agent) if !agent.terminal_enabled => Some(
            "The host's agent does not allow terminals (terminal.enabled is false in its configuration).",
        ),
        Some(_) => None,
    }
}

/// The host's agent, if one ever enrolled it.
pub async fn agent_of(
    conn: &mut spog_store::Conn,
    account: Id<Account>,
    host: Id<Host>,
) -> Result<Option<HostAgent>, StoreError> {
    match credentials::get(conn, account, host).await {
        Ok(agent) => Ok(Some(agent)),
        Err(StoreError::NotFound) => Ok(None),
        Err(error) => Err(error),
    }
}

#[derive(Template)]
#[template(path = "terminal.html")]
struct TerminalPage {
    chrome: Chrome,
    host_id: String,
    hostname: String,
    name: String,
    /// Why no terminal can be opened now (the page then opens none).
    unavailable: Option<&'static str>,
    /// The ended banner links the recording for viewers who may play it.
    can_view_recordings: bool,
    /// The notice says whether keystrokes are kept too (`record_input`).
    record_input: bool,
}

/// `GET /hosts/{id}/terminal`: 403 without `terminal.connect`, 404 for a host the viewer
/// cannot see, else the terminal (or why the host cannot open one now).
pub async fn terminal_page(
    State(state): State<AppState>,
    viewer: RequirePage<TerminalConnect>,
    Path(id): Path<String>,
) -> PageResult {
    let id = parse_id::<Host>(&id)?;
    let mut conn = state.store.conn().await?;
    let host = visible_host(&mut conn, &viewer.auth, id).await?;
    let agent = agent_of(&mut conn, viewer.auth.account(), host.id).await?;
    drop(conn);
    let mut response = render(&TerminalPage {
        chrome: Chrome::new(&viewer, &format!("Terminal: {}", host.name)),
        host_id: host.id.to_string(),
        hostname: host.hostname.clone(),
        name: host.name.clone(),
        unavailable: unavailable(agent.as_ref()),
        can_view_recordings: viewer.has(Permission::SessionRecordingsView),
        record_input: state.config.record_input,
    })?;
    response.headers_mut().insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(TERMINAL_CSP),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use spog_core::Timestamp;

    fn agent() -> HostAgent {
        HostAgent {
            host_id: Id::new(),
            enrolled_at: Timestamp::now(),
            revoked_at: None,
            connected: true,
            connected_at: Some(Timestamp::now()),
            last_seen_at: Some(Timestamp::now()),
            agent_version: None,
            protocol: None,
            instance_id: None,
            remote_addr: None,
            terminal_enabled: true,
        }
    }

    #[test]
    fn a_terminal_opens_only_on_a_connected_agent_that_allows_it() {
        assert_eq!(unavailable(Some(&agent())), None);
        assert!(unavailable(None).unwrap().contains("No agent"));
        let offline = HostAgent {
            connected: false,
            ..agent()
        };
        assert!(
            unavailable(Some(&offline))
                .unwrap()
                .contains("not connected")
        );
        let disabled = HostAgent {
            terminal_enabled: false,
            ..agent()
        };
        assert!(
            unavailable(Some(&disabled))
                .unwrap()
                .contains("terminal.enabled")
        );
        let revoked = HostAgent {
            revoked_at: Some(Timestamp::now()),
            ..agent()
        };
        assert!(unavailable(Some(&revoked)).unwrap().contains("revoked"));
    }
}
