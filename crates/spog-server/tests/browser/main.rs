//! The web console against a real server: in headless Chromium through chromedriver (skipped,
//! saying so, when either is not installed) and over plain HTTP. Every test runs on SQLite
//! and, with SPOG_TEST_DATABASE_URL, on PostgreSQL too.

mod admin;
mod audit;
mod browser;
mod channels;
mod http;
mod notifications;
mod pages;
mod recordings;
mod session;

use spog_server::testing::TestServer;
use spog_store::testing::databases;

/// A fresh server per available backend.
pub async fn servers() -> Vec<TestServer> {
    let mut servers = Vec::new();
    for database in databases().await {
        servers.push(TestServer::start(database).await);
    }
    servers
}
