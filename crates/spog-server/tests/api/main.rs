//! The HTTP API against a real server, on SQLite and (with SPOG_TEST_DATABASE_URL) PostgreSQL.

mod audit;
mod audited;
mod auth;
mod identity;
mod notifications;

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
