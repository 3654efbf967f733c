//! The web console against a real server: in headless Chromium through chromedriver (skipped,
//! saying so, when either is not installed) and over plain HTTP. Every test runs on SQLite
//! and, with SPOG_TEST_DATABASE_URL, on PostgreSQL too.

mod account;
mod admin;
mod alerts;
mod audit;
mod browser;
mod channels;
mod dashboard;
mod hosts;
mod http;
mod monitoring;
mod notifications;
mod pages;
mod receiver;
mod recordings;
mod session;
mod sidebar;
mod sso;
mod terminal;
mod webhooks;

use std::sync::Arc;

use spog_server::config::Config;
use spog_server::testing::{TestServer, test_config};
use spog_store::testing::databases;

/// A fresh server per available backend.
pub async fn servers() -> Vec<TestServer> {
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
        let data_dir =
            std::env::temp_dir().join(format!("spog-browser-test-{}", uuid::Uuid::now_v7()));
        let mut config = test_config(&database, data_dir);
        change(&mut config);
        servers.push(TestServer::start_with(database, config).await);
    }
    servers
}
