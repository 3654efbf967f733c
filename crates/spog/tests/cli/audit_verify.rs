use serde_json::{Value, json};
use spog_server::testing::TestServer;

use crate::{run, temp_dir};

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn an_export_verifies_offline_and_a_cut_tail_is_caught_by_the_checkpoint() {
    let server = TestServer::start(spog_store::testing::sqlite()).await;
    let admin = server.admin().await;
    let agent = admin.token_client("agent", &["audit_logs.write"]).await;
    let entries: Vec<Value> = (0..30)
        .map(|n| json!({"action": "job.run", "resource_type": "job", "resource_name": format!("j{n}"), "outcome": "success"}))
        .collect();
    agent
        .post("/audit-logs/batch", json!({"entries": entries}))
        .await;
    let (_, checkpoint) = admin.post("/audit-logs/checkpoints", json!({})).await;
    let (_, key) = admin.get("/audit-logs/checkpoints/public-key").await;
    let export = admin
        .request(reqwest::Method::GET, "/audit-logs/export?format=jsonl")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dir = temp_dir("verify");
    let (export_path, checkpoint_path, key_path) = (
        dir.join("export.jsonl"),
        dir.join("checkpoint.json"),
        dir.join("key.json"),
    );
    std::fs::write(&export_path, &export).unwrap();
    std::fs::write(&checkpoint_path, checkpoint.to_string()).unwrap();
    std::fs::write(&key_path, key.to_string()).unwrap();
    let args = |export: &std::path::Path| {
        vec![
            "audit".to_owned(),
            "verify".to_owned(),
            "--export".to_owned(),
            export.display().to_string(),
            "--checkpoint".to_owned(),
            checkpoint_path.display().to_string(),
            "--public-key".to_owned(),
            key_path.display().to_string(),
        ]
    };
    let whole = run(&args(&export_path)
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(whole.status.success(), "{}", text(&whole));
    assert!(text(&whole).contains("signature valid"), "{}", text(&whole));

    let head = checkpoint["seq"].as_i64().unwrap() as usize;
    let truncated: String = export
        .lines()
        .take(head - 5)
        .map(|l| format!("{l}\n"))
        .collect();
    let cut_path = dir.join("cut.jsonl");
    std::fs::write(&cut_path, truncated).unwrap();
    let cut = run(&args(&cut_path)
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(!cut.status.success());
    assert!(text(&cut).contains("seq_gap"), "{}", text(&cut));

    // An edited value, and one no entry can hold (a broken link too, not an unreadable
    // file), are each a hash mismatch.
    for (name, from, to) in [
        ("edited", "\"j3\"", "\"j33\""),
        (
            "unknown",
            "\"actor_type\":\"agent\"",
            "\"actor_type\":\"intruder\"",
        ),
        (
            "credential",
            "\"credential_name\":\"agent token\"",
            "\"credential_name\":\"someone else\"",
        ),
    ] {
        let altered = export.replacen(from, to, 1);
        assert_ne!(altered, export, "{name}");
        let path = dir.join(format!("{name}.jsonl"));
        std::fs::write(&path, altered).unwrap();
        let verified = run(&["audit", "verify", "--export", &path.display().to_string()]);
        assert!(!verified.status.success(), "{name}");
        assert!(
            text(&verified).contains("hash_mismatch"),
            "{name}: {}",
            text(&verified)
        );
    }

    let mut forged = checkpoint.clone();
    forged["seq"] = json!(head - 5);
    std::fs::write(&checkpoint_path, forged.to_string()).unwrap();
    let refused = run(&args(&cut_path)
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("signature does not verify"),
        "{}",
        text(&refused)
    );
    std::fs::remove_dir_all(dir).unwrap();
    server.stop().await;
}

/// An export made before entries named their credential and `recorded_at` (written by the
/// release before them; its entries have neither field) verifies as it did, and those fields
/// cannot be slipped into it afterwards.
#[test]
fn an_export_written_before_credentials_were_kept_still_verifies() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cli/fixtures/export-before-credentials.jsonl");
    let old = std::fs::read_to_string(&fixture).unwrap();
    assert!(!old.contains("credential") && !old.contains("recorded_at"));
    let verified = run(&[
        "audit",
        "verify",
        "--export",
        &fixture.display().to_string(),
    ]);
    assert!(verified.status.success(), "{}", text(&verified));
    assert!(
        text(&verified).contains("entries checked: 3"),
        "{}",
        text(&verified)
    );

    let dir = temp_dir("verify-old");
    for (name, altered) in [
        (
            "edited",
            old.replacen("\"user.create\"", "\"user.delete\"", 1),
        ),
        (
            "credential added",
            old.replacen(
                "{\"account_id\"",
                "{\"credential_id\":\"x\",\"account_id\"",
                1,
            ),
        ),
        (
            "recorded_at added",
            old.replacen(
                "{\"account_id\"",
                "{\"recorded_at\":\"2026-01-01T10:00:00.000000Z\",\"account_id\"",
                1,
            ),
        ),
    ] {
        assert_ne!(altered, old, "{name}");
        let path = dir.join("altered.jsonl");
        std::fs::write(&path, altered).unwrap();
        let verified = run(&["audit", "verify", "--export", &path.display().to_string()]);
        assert!(!verified.status.success(), "{name}");
        assert!(
            text(&verified).contains("hash_mismatch"),
            "{name}: {}",
            text(&verified)
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}
