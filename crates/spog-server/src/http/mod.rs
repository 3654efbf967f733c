//! The JSON API under `/api/v1`, one module per feature.

pub mod agents;
pub mod alerts;
pub mod audit;
pub mod audit_streams;
pub mod auth;
pub mod auth_settings;
pub mod channels;
pub mod delivery_history;
pub mod downloads;
pub mod enrollment_tokens;
pub mod events;
pub mod hosts;
pub mod identity_providers;
pub mod me;
pub mod metrics;
pub mod notifications;
pub mod organizations;
pub mod recordings;
pub mod roles;
pub mod silences;
pub mod system;
pub mod telemetry;
pub mod tokens;
pub mod users;
pub mod webhooks;
pub mod ws;

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(me::router())
        .merge(audit::router())
        .merge(audit_streams::router())
        .merge(users::router())
        .merge(roles::router())
        .merge(identity_providers::router())
        .merge(auth_settings::router())
        .merge(organizations::router())
        .merge(tokens::router())
        .merge(hosts::router())
        .merge(enrollment_tokens::router())
        .merge(agents::router())
        .merge(metrics::router())
        .merge(events::router())
        .merge(webhooks::router())
        .merge(notifications::router())
        .merge(channels::router())
        .merge(alerts::router())
        .merge(silences::router())
        .merge(recordings::router())
        .merge(crate::terminal::open::router())
        .merge(telemetry::router())
        .merge(system::router())
}
