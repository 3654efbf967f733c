//! The HTTP API against a real server, on SQLite and (with SPOG_TEST_DATABASE_URL) PostgreSQL.

mod agent_binary;
mod agents;
mod alerts;
mod audit;
mod audit_streams;
mod audited;
mod auth;
mod channels;
mod deliveries;
mod delivery_faults;
mod desktop;
mod fair_delivery;
mod identity;
mod limits;
mod login_abuse;
mod metric_rules;
mod metrics;
mod notifications;
mod provenance;
mod real_terminal;
mod receiver;
mod recording_copy;
mod recording_limits;
mod recording_relay;
mod recording_search;
mod recording_storage;
mod retention;
mod scale_out;
mod secrets_at_rest;
mod self_service;
mod silences;
mod smtp;
mod socket_credentials;
mod sso;
mod terminal;
mod transport;
mod web_terminal;
mod webhooks;

use std::sync::Arc;

use spog_server::Config;
use spog_server::testing::{TestServer, test_config};
use spog_store::testing::databases;

/// A fresh server per available backend.
pub async fn servers() -> Vec<TestServer> {
    // A 500's cause shows in the failing test's output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("error")
        .with_test_writer()
        .try_init();
    let mut servers = Vec::new();
    for database in databases().await {
        servers.push(TestServer::start(database).await);
    }
    servers
}

/// A fresh server per available backend, its configuration changed by `change`.
pub async fn servers_with(change: impl Fn(&mut Config)) -> Vec<TestServer> {
    let mut servers = Vec::new();
    for database in databases().await {
        let database = Arc::new(database);
        let mut config = test_config(&database, temp_dir());
        change(&mut config);
        servers.push(TestServer::start_with(database, config).await);
    }
    servers
}

pub fn temp_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("spog-server-test-{}", uuid::Uuid::now_v7()))
}
