//! A real server for tests: `launch` on port 0 with a fresh data directory and database,
//! and a small JSON client that speaks to it over HTTP.

pub mod oidc;
pub mod s3;

use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use spog_store::testing::TestDatabase;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Secret};
use crate::state::AppState;

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";
/// 32 bytes, hex: what `openssl rand -hex 32` gives.
pub const TEST_SERVER_KEY: &str =
    "7465737420736572766572206b65792073686172656420627920696e7374616e";

pub struct TestServer {
    pub base: String,
    /// Where `/metrics` is served apart, with `metrics_listen`.
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub state: AppState,
    pub data_dir: PathBuf,
    pub database: std::sync::Arc<TestDatabase>,
    shutdown: CancellationToken,
    running: Option<crate::Running>,
}

/// Configuration for a test server on `database`, with a known admin and fast schedules.
pub fn test_config(database: &TestDatabase, data_dir: PathBuf) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("an address"),
        data_dir,
        database_url: database.url.clone(),
        database_max_connections: 8,
        admin_email: ADMIN_EMAIL.to_owned(),
        admin_password: Some(Secret::new(ADMIN_PASSWORD)),
        // Shared by every instance of a test.
        server_key: Some(Secret::new(TEST_SERVER_KEY)),
        allow_insecure_targets: true,
        // Tests' receivers listen on this machine's loopback.
        outbound_allow_cidrs: vec!["127.0.0.0/8".parse().expect("a CIDR")],
        ..Config::default()
    }
}

impl TestServer {
    /// A server on a fresh database of `database`'s backend.
    pub async fn start(database: TestDatabase) -> Self {
        let database = std::sync::Arc::new(database);
        let data_dir =
            std::env::temp_dir().join(format!("spog-server-test-{}", uuid::Uuid::now_v7()));
        let config = test_config(&database, data_dir);
        Self::start_with(database, config).await
    }

    /// Another server (instance) on the same database, with `config`.
    pub async fn start_with(database: std::sync::Arc<TestDatabase>, config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding port 0");
        Self::start_on(database, config, listener).await
    }

    /// Another server on the same database, serving on `listener` (the address of a server
    /// that stopped, for clients that come back to it).
    pub async fn start_on(
        database: std::sync::Arc<TestDatabase>,
        config: Config,
        listener: tokio::net::TcpListener,
    ) -> Self {
        let shutdown = CancellationToken::new();
        let data_dir = config.data_dir.clone();
        let running = crate::launch(config, listener, shutdown.clone())
            .await
            .expect("launching the server");
        Self {
            base: format!("http://{}", running.addr),
            metrics_addr: running.metrics_addr,
            state: running.state.clone(),
            data_dir,
            database,
            shutdown,
            running: Some(running),
        }
    }

    /// A client logged in as the first admin.
    pub async fn admin(&self) -> Client {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Client {
        let anonymous = self.anonymous();
        let (status, body) = anonymous
            .post("/auth/login", json!({"email": email, "password": password}))
            .await;
        assert_eq!(status, StatusCode::OK, "login as {email}: {body}");
        anonymous.with_token(body["token"].as_str().expect("a token"))
    }

    pub fn anonymous(&self) -> Client {
        Client {
            base: self.base.clone(),
            token: None,
            http: reqwest::Client::new(),
        }
    }

    /// Stops the server, waiting for requests and workers to finish.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            running.wait().await.expect("a clean shutdown");
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }

    /// Stops the server as a crash would (see [`crate::Running::abort`]).
    pub fn kill(mut self) {
        if let Some(running) = self.running.take() {
            running.abort();
        }
        self.shutdown.cancel();
    }

    /// Links pending audit entries now, as the linker worker would shortly.
    pub async fn link_audit(&self) {
        crate::workers::audit_linker::run_once(&self.state)
            .await
            .expect("linking");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A JSON client for the API under `/api/v1`.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub token: Option<String>,
    pub http: reqwest::Client,
}

impl Client {
    pub fn with_token(&self, token: &str) -> Client {
        Client {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{}", self.base, path)
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, self.url(path));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let text = response.text().await.expect("a body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::PATCH, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::DELETE, path, None).await
    }

    /// Creates a user with `roles` on the server at `base` and returns a client logged in as
    /// them.
    pub async fn user_with_roles_on(&self, base: &str, email: &str, roles: &[&str]) -> Client {
        let password = "a long enough password";
        let (status, body) = self
            .post(
                "/users",
                json!({"email": email, "password": password, "roles": roles}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "creating {email}: {body}");
        let anonymous = Client {
            base: base.to_owned(),
            token: None,
            http: self.http.clone(),
        };
        let (status, body) = anonymous
            .post("/auth/login", json!({"email": email, "password": password}))
            .await;
        assert_eq!(status, StatusCode::OK, "login as {email}: {body}");
        anonymous.with_token(body["token"].as_str().expect("a token"))
    }

    /// Creates a user with `roles` and returns a client logged in as them.
    pub async fn user_with_roles(
        &self,
        server: &TestServer,
        email: &str,
        roles: &[&str],
    ) -> Client {
        self.user_with_roles_on(&server.base, email, roles).await
    }

    /// Creates an API token and returns a client using it.
    pub async fn token_client(&self, actor_type: &str, permissions: &[&str]) -> Client {
        let (status, body) = self
            .post(
                "/api-tokens",
                json!({"name": format!("{actor_type} token"), "actor_type": actor_type, "permissions": permissions}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "creating a token: {body}");
        self.with_token(body["token"].as_str().expect("the token"))
    }
}
