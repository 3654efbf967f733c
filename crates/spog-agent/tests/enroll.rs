//! `spog-agent enroll` (and the commands around it), the real binary, against a one-shot HTTP
//! responder standing in for the hub's `POST /api/v1/agent/enroll`.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{TestAgent, answer_once, run_binary};
use serde_json::Value;

const ENROLLED: &str = r#"{"host_id":"0190aaaa-0000-7000-8000-000000000007","organization_id":"0190bbbb-0000-7000-8000-000000000001","credential":"spog_agent_fresh","host":{"hostname":"web-7"}}"#;

#[tokio::test]
async fn enroll_keeps_the_credential_0600_in_a_0700_directory() {
    let (addr, request) = answer_once(201, ENROLLED).await;
    let agent = TestAgent::unenrolled("");
    let server = format!("http://{addr}/");
    let (code, stdout, stderr) = run_binary(&[
        "enroll",
        "--server",
        &server,
        "--token",
        "spog_enroll_abc",
        "--hostname",
        "web-7",
        "--name",
        "Web 7",
        "--config",
        agent.config.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("0190aaaa-0000-7000-8000-000000000007"),
        "{stdout}"
    );

    let (request_line, body) = request.await.unwrap();
    assert_eq!(request_line, "POST /api/v1/agent/enroll HTTP/1.1");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["token"], "spog_enroll_abc");
    assert_eq!(body["hostname"], "web-7");
    assert_eq!(body["name"], "Web 7");
    assert_eq!(body["facts"]["os"], "linux");
    assert_eq!(body["facts"]["agent_version"], env!("CARGO_PKG_VERSION"));

    let path = agent.state_dir().join("agent.json");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        saved,
        serde_json::json!({"server": format!("http://{addr}"),
                           "host_id": "0190aaaa-0000-7000-8000-000000000007",
                           "credential": "spog_agent_fresh"})
    );
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&agent.state_dir()), 0o700);
}

#[tokio::test]
async fn a_refused_enrollment_exits_non_zero_with_the_hubs_message_and_writes_nothing() {
    let (addr, _request) = answer_once(
        401,
        r#"{"error":{"code":"invalid_enrollment_token","message":"the enrollment token is unknown, used, expired or revoked"}}"#,
    )
    .await;
    let agent = TestAgent::unenrolled("");
    let (code, _, stderr) = run_binary(&[
        "enroll",
        "--server",
        &format!("http://{addr}"),
        "--token",
        "spog_enroll_used",
        "--config",
        agent.config.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("invalid_enrollment_token"), "{stderr}");
    assert!(
        stderr.contains("unknown, used, expired or revoked"),
        "{stderr}"
    );
    assert!(!agent.state_dir().join("agent.json").exists());
}

#[tokio::test]
async fn enroll_refuses_plain_http_to_another_machine_before_sending_anything() {
    let agent = TestAgent::unenrolled("");
    let (code, _, stderr) = run_binary(&[
        "enroll",
        "--server",
        "http://spog.example.com",
        "--token",
        "spog_enroll_abc",
        "--config",
        agent.config.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("refusing plain http://"), "{stderr}");
    assert!(stderr.contains("--insecure-http"), "{stderr}");
    assert!(!agent.state_dir().join("agent.json").exists());
}

#[tokio::test]
async fn run_without_an_enrollment_says_how_to_enroll() {
    let agent = TestAgent::unenrolled("");
    let config = agent.config.to_str().unwrap();
    let (code, _, stderr) = run_binary(&["run", "--config", config]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("not enrolled"), "{stderr}");
    assert!(stderr.contains("spog-agent enroll"), "{stderr}");
    let (code, stdout, _) = run_binary(&["status", "--config", config]).await;
    assert_eq!(code, 1);
    assert!(stdout.contains("not enrolled"), "{stdout}");
}

#[tokio::test]
async fn a_configuration_with_an_unknown_key_is_refused_naming_it() {
    let agent = TestAgent::enrolled("http://127.0.0.1:9", "metric_interval = \"5s\"");
    let (code, _, stderr) = run_binary(&["run", "--config", agent.config.to_str().unwrap()]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("metric_interval"), "{stderr}");
}
