//! `spog admin enrollment-token create` (SPEC 11.1): a token printed once that enrolls a host.

use reqwest::StatusCode;
use serde_json::json;
use spog_server::testing::{TEST_SERVER_KEY, TestServer};

use crate::{spog, temp_dir};

/// Runs the command off the runtime's thread: the server shares this test's runtime, and a
/// transaction it holds must be able to finish while the command waits for the database.
async fn create(server: &TestServer, extra: &[&str]) -> std::process::Output {
    let mut command = spog();
    command
        .args([
            "admin",
            "enrollment-token",
            "create",
            "--account",
            "default",
        ])
        .args(extra)
        .env("SPOG_DATA_DIR", temp_dir("enroll"))
        .env("SPOG_DATABASE_URL", &server.database.url)
        .env("SPOG_SERVER_KEY", TEST_SERVER_KEY);
    tokio::task::spawn_blocking(move || command.output().expect("running spog"))
        .await
        .expect("the command's thread")
}

#[tokio::test]
async fn the_cli_prints_an_enrollment_token_once_that_enrolls_a_host() {
    let server = TestServer::start(spog_store::testing::sqlite()).await;
    let output = create(&server, &["--expires", "30m"]).await;
    let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(token.starts_with("spog_enroll_"), "{token}");
    let (status, enrolled) = server
        .anonymous()
        .post(
            "/agent/enroll",
            json!({"token": token, "hostname": "cli-host"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{enrolled}");

    let too_long = create(&server, &["--expires", "8d"]).await;
    let refusal = String::from_utf8_lossy(&too_long.stderr);
    assert!(!too_long.status.success(), "{refusal}");
    assert!(refusal.contains("expires_at"), "{refusal}");
    server.link_audit().await;
    let (_, entries) = server
        .admin()
        .await
        .get("/audit-logs?action=enrollment_token.create")
        .await;
    assert_eq!(entries["items"][0]["source"], "cli", "{entries}");
    server.stop().await;
}
