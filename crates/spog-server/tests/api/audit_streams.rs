//! Audit streams (SPEC 3.5): the API (validation with the field at fault, write-only sealed
//! secrets, limits, permissions, tenancy) and the sender against a real HTTP receiver: every
//! entry once, in seq order, with contiguous ranges, retried after failures, filtered,
//! paused, backfilled.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_core::audit::ChainVerifier;
use spog_server::testing::{Client, TestServer};

use crate::receiver::{Answer, Receiver};
use crate::{servers, servers_with};

const SECRET: &str = "stream-signing-secret";

fn field_errors(body: &Value) -> Vec<String> {
    let mut fields: Vec<String> = body["error"]["details"]["fields"]
        .as_object()
        .map(|f| f.keys().cloned().collect())
        .unwrap_or_default();
    fields.sort();
    fields
}

/// Creates a stream to `url`; `overrides` replace fields of a valid body.
async fn create_stream(admin: &Client, url: &str, overrides: Value) -> Value {
    let mut body = json!({
        "name": format!("siem {}", uuid::Uuid::now_v7()),
        "sink": {"type": "https", "url": url, "secret": SECRET},
        "format": "native",
        "batch": {"max_entries": 50, "max_bytes": 1 << 20, "max_wait_ms": 0},
    });
    for (key, value) in overrides.as_object().unwrap() {
        body[key] = value.clone();
    }
    let (status, stream) = admin.post("/audit-streams", body).await;
    assert_eq!(status, StatusCode::CREATED, "{stream}");
    stream
}

/// Records `count` entries through the ingest API, linked at once.
async fn ingest(server: &TestServer, admin: &Client, count: usize, action: &str) {
    let agent = admin.token_client("agent", &["audit_logs.write"]).await;
    let entries: Vec<Value> = (0..count)
        .map(|n| json!({"action": action, "resource_type": "job", "resource_id": format!("j{n}"), "outcome": "success"}))
        .collect();
    for chunk in entries.chunks(100) {
        let (status, body) = agent
            .post("/audit-logs/batch", json!({"entries": chunk}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    server.link_audit().await;
}

/// The chain's head once what is recorded is linked.
async fn head_seq(server: &TestServer, admin: &Client) -> i64 {
    server.link_audit().await;
    let (_, body) = admin.get("/audit-logs?limit=1").await;
    body["items"][0]["seq"].as_i64().unwrap_or(0)
}

/// Entries the receiver got, in arrival order, with the batches' ranges.
fn delivered(receiver: &Receiver) -> (Vec<Value>, Vec<(i64, i64)>) {
    let mut entries = Vec::new();
    let mut ranges = Vec::new();
    for request in receiver.received() {
        let batch = request.json();
        if batch["from_seq"].is_null() {
            continue;
        }
        ranges.push((
            batch["from_seq"].as_i64().unwrap(),
            batch["to_seq"].as_i64().unwrap(),
        ));
        entries.extend(batch["entries"].as_array().unwrap().iter().cloned());
    }
    (entries, ranges)
}

/// Waits until the stream's cursor reaches `seq`.
async fn wait_delivered(admin: &Client, id: &str, seq: i64) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, stream) = admin.get(&format!("/audit-streams/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{stream}");
        if stream["status"]["delivered_seq"].as_i64().unwrap() >= seq {
            return stream;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream stayed at {}",
            stream["status"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn invalid_streams_are_refused_naming_each_field() {
    let strict = |config: &mut spog_server::Config| {
        config.allow_insecure_targets = false;
        config.outbound_allow_cidrs.clear();
    };
    for server in servers_with(strict).await {
        let admin = server.admin().await;
        let (status, body) = admin
            .post(
                "/audit-streams",
                json!({
                    "name": "",
                    "sink": {"type": "https", "url": "http://siem.example/in", "colour": "red"},
                    "format": "cef",
                    "filter": {"outcomes": ["success", "maybe"], "actions": ["Not An Action"]},
                    "batch": {"max_entries": 0, "max_bytes": 10, "max_wait_ms": 20000},
                }),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(
            field_errors(&body),
            [
                "batch.max_bytes",
                "batch.max_entries",
                "batch.max_wait_ms",
                "filter.actions[0]",
                "filter.outcomes[1]",
                "name",
                "sink.colour",
                "sink.url",
            ]
        );
        // A format the sink lacks names `format`; native keeps its snapshots.
        let valid_sink = json!({"type": "https", "url": "https://siem.example/in"});
        for (body, field) in [
            (
                json!({"name": "a", "sink": valid_sink, "format": "cef"}),
                "format",
            ),
            (
                json!({"name": "a", "sink": valid_sink, "format": "native", "include_snapshots": false}),
                "include_snapshots",
            ),
            (
                json!({"name": "a", "sink": {"type": "pigeon"}, "format": "native"}),
                "sink.type",
            ),
            (
                json!({"name": "a", "sink": valid_sink, "format": "native",
                       "filter": {"organization_ids": [uuid::Uuid::now_v7().to_string()]}}),
                "filter.organization_ids[0]",
            ),
            (
                json!({"name": "a", "sink": {"type": "https"}, "format": "native"}),
                "sink.url",
            ),
            (
                json!({"name": "a", "sink": valid_sink, "format": "native", "start": "tomorrow"}),
                "start",
            ),
            (
                json!({"name": "a", "sink": {"type": "https", "url": "https://127.0.0.1/x"}, "format": "native"}),
                "sink.url",
            ),
        ] {
            let (status, refused) = admin.post("/audit-streams", body.clone()).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{body}: {refused}"
            );
            assert_eq!(field_errors(&refused), [field], "{body}");
        }
        let (_, list) = admin.get("/audit-streams").await;
        assert_eq!(list["items"], json!([]), "nothing half-written");
        server.stop().await;
    }
}

#[tokio::test]
async fn secrets_are_write_only_and_redacted_in_the_trail() {
    for server in servers().await {
        let admin = server.admin().await;
        let stream = create_stream(
            &admin,
            "https://siem.example/in",
            json!({"sink": {"type": "https", "url": "https://siem.example/in", "secret": SECRET,
                            "headers": {"X-Api-Key": "header-key-value"}}}),
        )
        .await;
        assert_eq!(stream["sink"]["has_secret"], true);
        assert_eq!(stream["sink"]["headers"]["X-Api-Key"], "[redacted]");
        let id = stream["id"].as_str().unwrap();
        // A PATCH without the secret keeps it; the header kept as `[redacted]` keeps its value.
        let (status, changed) = admin
            .patch(
                &format!("/audit-streams/{id}"),
                json!({"name": "renamed", "sink": {"type": "https", "url": "https://siem.example/v2",
                       "headers": {"X-Api-Key": "[redacted]"}}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{changed}");
        assert_eq!(changed["sink"]["has_secret"], true);
        assert_eq!(changed["name"], "renamed");
        server.link_audit().await;
        let (_, entries) = admin.get("/audit-logs?action=audit_stream.*").await;
        let text = entries.to_string();
        assert!(text.contains("audit_stream.create") && text.contains("audit_stream.update"));
        assert!(
            !text.contains(SECRET) && !text.contains("header-key-value"),
            "{text}"
        );
        let mut conn = server.state.store.conn().await.unwrap();
        let stored: String =
            sqlx::query_scalar("SELECT sink_secrets FROM audit_streams WHERE id = $1")
                .bind(id.to_owned())
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        assert!(!stored.contains(SECRET) && !stored.contains("header-key-value"));
        drop(conn);
        server.stop().await;
    }
}

#[tokio::test]
async fn names_are_unique_and_streams_per_account_are_limited() {
    for server in servers_with(|config| config.audit_streams_max_per_account = 2).await {
        let admin = server.admin().await;
        create_stream(&admin, "https://siem.example/a", json!({"name": "one"})).await;
        let (status, body) = admin
            .post(
                "/audit-streams",
                json!({"name": "one", "sink": {"type": "https", "url": "https://siem.example/b"}, "format": "native"}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        create_stream(&admin, "https://siem.example/b", json!({"name": "two"})).await;
        let (status, body) = admin
            .post(
                "/audit-streams",
                json!({"name": "three", "sink": {"type": "https", "url": "https://siem.example/c"}, "format": "native"}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"]["code"], "limit_reached");
        server.stop().await;
    }
}

#[tokio::test]
async fn auditors_read_streams_and_only_managers_change_them() {
    for server in servers().await {
        let admin = server.admin().await;
        let stream = create_stream(&admin, "https://siem.example/in", json!({})).await;
        let id = stream["id"].as_str().unwrap();
        let auditor = admin
            .user_with_roles(&server, "auditor@example.com", &["auditor"])
            .await;
        assert_eq!(auditor.get("/audit-streams").await.0, StatusCode::OK);
        assert_eq!(
            auditor.get(&format!("/audit-streams/{id}")).await.0,
            StatusCode::OK
        );
        assert_eq!(
            auditor
                .get(&format!("/audit-streams/{id}/attempts"))
                .await
                .0,
            StatusCode::OK
        );
        for (status, _) in [
            auditor
                .post(&format!("/audit-streams/{id}/pause"), json!({}))
                .await,
            auditor
                .patch(&format!("/audit-streams/{id}"), json!({"name": "x"}))
                .await,
            auditor.delete(&format!("/audit-streams/{id}")).await,
        ] {
            assert_eq!(status, StatusCode::FORBIDDEN);
        }
        let viewer = admin
            .user_with_roles(&server, "viewer@example.com", &["viewer"])
            .await;
        assert_eq!(viewer.get("/audit-streams").await.0, StatusCode::FORBIDDEN);
        server.stop().await;
    }
}

#[tokio::test]
async fn another_accounts_streams_are_not_found() {
    for server in servers().await {
        let admin = server.admin().await;
        let stream = create_stream(&admin, "https://siem.example/in", json!({})).await;
        let id = stream["id"].as_str().unwrap();
        spog_server::bootstrap::create_account(
            &server.state.store,
            "globex",
            &spog_core::validate::Email::parse("e", "root@globex.example").unwrap(),
            "globex admin password",
            spog_core::audit::Source::Cli,
        )
        .await
        .unwrap();
        let globex = server
            .login("root@globex.example", "globex admin password")
            .await;
        for (status, _) in [
            globex.get(&format!("/audit-streams/{id}")).await,
            globex
                .patch(&format!("/audit-streams/{id}"), json!({"name": "mine"}))
                .await,
            globex
                .post(&format!("/audit-streams/{id}/pause"), json!({}))
                .await,
            globex
                .post(&format!("/audit-streams/{id}/resume"), json!({}))
                .await,
            globex
                .post(
                    &format!("/audit-streams/{id}/backfill"),
                    json!({"from_seq": 1}),
                )
                .await,
            globex
                .post(&format!("/audit-streams/{id}/test"), json!({}))
                .await,
            globex.get(&format!("/audit-streams/{id}/attempts")).await,
            globex.delete(&format!("/audit-streams/{id}")).await,
        ] {
            assert_eq!(status, StatusCode::NOT_FOUND);
        }
        let (_, list) = globex.get("/audit-streams").await;
        assert_eq!(list["items"], json!([]));
        server.stop().await;
    }
}

#[tokio::test]
async fn every_entry_arrives_once_in_order_signed_and_verifiable() {
    for server in servers().await {
        let receiver = Receiver::start(Answer::Status(200)).await;
        let admin = server.admin().await;
        ingest(&server, &admin, 120, "job.run").await;
        let stream =
            create_stream(&admin, &receiver.url("/in"), json!({"start": "beginning"})).await;
        let id = stream["id"].as_str().unwrap();
        ingest(&server, &admin, 80, "job.run").await;
        let head = head_seq(&server, &admin).await;
        let read = wait_delivered(&admin, id, head).await;
        let (entries, ranges) = delivered(&receiver);
        let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        assert_eq!(
            seqs,
            (1..=head).collect::<Vec<_>>(),
            "every entry once, in order"
        );
        assert_eq!(ranges[0].0, 1);
        for pair in ranges.windows(2) {
            assert_eq!(pair[1].0, pair[0].1 + 1, "contiguous ranges: {ranges:?}");
        }
        assert!(
            ranges.iter().all(|(from, to)| to - from < 50),
            "batches of 50 at most"
        );
        // The native entries re-hash into the chain.
        let mut verifier = ChainVerifier::new();
        for entry in &entries {
            let entry: spog_core::audit::AuditEntry =
                serde_json::from_value(entry.clone()).unwrap();
            verifier.push(&entry);
        }
        assert!(
            verifier.finish().valid,
            "the streamed entries verify as a chain"
        );
        let first = &receiver.received()[0];
        assert!(first.header("webhook-signature").is_some());
        assert_eq!(first.header("x-spog-stream"), Some(id));
        let (from, to) = ranges[0];
        assert_eq!(
            first.header("webhook-id"),
            Some(format!("{id}:{from}-{to}").as_str())
        );
        let status = &read["status"];
        assert_eq!(status["state"], "active");
        assert_eq!(status["lag_entries"], 0);
        assert_eq!(status["entries_sent"], head);
        let (_, attempts) = admin.get(&format!("/audit-streams/{id}/attempts")).await;
        assert!(
            attempts["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["success"] == true)
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn a_failing_sink_is_retried_with_the_same_range_and_nothing_is_lost() {
    for server in servers().await {
        let receiver = Receiver::start(Answer::Status(503)).await;
        let admin = server.admin().await;
        let stream = create_stream(&admin, &receiver.url("/in"), json!({})).await;
        let id = stream["id"].as_str().unwrap();
        ingest(&server, &admin, 30, "job.run").await;
        receiver.wait_for(2, Duration::from_secs(10)).await;
        let (_, failing) = admin.get(&format!("/audit-streams/{id}")).await;
        assert_eq!(failing["status"]["state"], "failing", "{failing}");
        assert_eq!(
            failing["status"]["last_error"],
            "HTTP 503 Service Unavailable"
        );
        assert!(failing["status"]["failing_since"].is_string());
        assert!(failing["status"]["next_attempt_at"].is_string());
        let ranges: Vec<(i64, i64)> = receiver
            .received()
            .iter()
            .map(|r| {
                (
                    r.json()["from_seq"].as_i64().unwrap(),
                    r.json()["to_seq"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(ranges[0], ranges[1], "a failed batch is retried as it was");
        receiver.answer(Answer::Status(200));
        let head = head_seq(&server, &admin).await;
        let read = wait_delivered(&admin, id, head).await;
        assert_eq!(read["status"]["state"], "active");
        assert_eq!(read["status"]["consecutive_failures"], 0);
        let (_, attempts) = admin.get(&format!("/audit-streams/{id}/attempts")).await;
        let attempts = attempts["items"].as_array().unwrap();
        assert_eq!(attempts.last().unwrap()["success"], false);
        assert_eq!(attempts.last().unwrap()["status_code"], 503);
        assert_eq!(attempts[0]["success"], true);
        server.stop().await;
    }
}

#[tokio::test]
async fn a_filtered_stream_sends_matching_entries_in_contiguous_ranges() {
    for server in servers().await {
        let receiver = Receiver::start(Answer::Status(200)).await;
        let admin = server.admin().await;
        let stream = create_stream(
            &admin,
            &receiver.url("/in"),
            json!({"filter": {"actions": ["deploy.*"]}}),
        )
        .await;
        let id = stream["id"].as_str().unwrap();
        ingest(&server, &admin, 20, "job.run").await;
        ingest(&server, &admin, 5, "deploy.start").await;
        ingest(&server, &admin, 20, "job.run").await;
        let head = head_seq(&server, &admin).await;
        wait_delivered(&admin, id, head).await;
        let (entries, ranges) = delivered(&receiver);
        assert_eq!(entries.len(), 5);
        assert!(entries.iter().all(|e| e["action"] == "deploy.start"));
        for pair in ranges.windows(2) {
            assert_eq!(pair[1].0, pair[0].1 + 1, "{ranges:?}");
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn paused_streams_wait_and_backfill_only_goes_backwards() {
    for server in servers().await {
        let receiver = Receiver::start(Answer::Status(200)).await;
        let admin = server.admin().await;
        let stream = create_stream(&admin, &receiver.url("/in"), json!({"paused": true})).await;
        let id = stream["id"].as_str().unwrap();
        assert_eq!(stream["status"]["state"], "paused");
        ingest(&server, &admin, 10, "job.run").await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            receiver.received().is_empty(),
            "a paused stream sends nothing"
        );
        for _ in 0..2 {
            let (status, resumed) = admin
                .post(&format!("/audit-streams/{id}/resume"), json!({}))
                .await;
            assert_eq!(status, StatusCode::OK, "{resumed}");
        }
        let head = head_seq(&server, &admin).await;
        wait_delivered(&admin, id, head).await;
        // Paused, the cursor stays while the pause's own entry waits behind it.
        admin
            .post(&format!("/audit-streams/{id}/pause"), json!({}))
            .await;
        server.link_audit().await;
        let (_, read) = admin.get(&format!("/audit-streams/{id}")).await;
        let delivered_seq = read["status"]["delivered_seq"].as_i64().unwrap();
        let forward = head_seq(&server, &admin).await + 1;
        assert!(forward > delivered_seq + 1);
        for (body, field) in [
            (json!({"from_seq": forward}), "from_seq"),
            (
                json!({"from_seq": 1, "from_time": "2026-01-01T00:00:00Z"}),
                "from_seq",
            ),
            (json!({}), "from_seq"),
        ] {
            let (status, refused) = admin
                .post(&format!("/audit-streams/{id}/backfill"), body.clone())
                .await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{body}: {refused}"
            );
            assert_eq!(field_errors(&refused), [field], "{body}");
        }
        let before = delivered(&receiver).0.len();
        let (status, body) = admin
            .post(
                &format!("/audit-streams/{id}/backfill"),
                json!({"from_seq": 1}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["status"]["delivered_seq"], 0);
        admin
            .post(&format!("/audit-streams/{id}/resume"), json!({}))
            .await;
        server.link_audit().await;
        let head = head_seq(&server, &admin).await;
        wait_delivered(&admin, id, head).await;
        let (entries, _) = delivered(&receiver);
        let again: Vec<i64> = entries[before..]
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect();
        assert_eq!(
            again,
            (1..=head).collect::<Vec<_>>(),
            "sent again from seq 1"
        );
        let (_, trail) = admin.get("/audit-logs?action=audit_stream.backfill").await;
        assert_eq!(
            trail["items"][0]["metadata"]["old_delivered_seq"],
            delivered_seq
        );
        assert_eq!(trail["items"][0]["metadata"]["new_delivered_seq"], 0);
        server.stop().await;
    }
}

#[tokio::test]
async fn the_test_sends_one_synthetic_entry_outside_the_chain() {
    for server in servers().await {
        let receiver = Receiver::start(Answer::Status(200)).await;
        let admin = server.admin().await;
        let stream = create_stream(&admin, &receiver.url("/in"), json!({"paused": true})).await;
        let id = stream["id"].as_str().unwrap();
        let (status, result) = admin
            .post(&format!("/audit-streams/{id}/test"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{result}");
        assert_eq!(result["success"], true);
        assert_eq!(result["status_code"], 200);
        let batch = receiver.received()[0].json();
        assert_eq!(batch["entries"][0]["action"], "audit_stream.test");
        assert!(batch["entries"][0]["seq"].is_null());
        receiver.answer(Answer::Status(500));
        let (_, result) = admin
            .post(&format!("/audit-streams/{id}/test"), json!({}))
            .await;
        assert_eq!(result["success"], false);
        assert_eq!(result["status_code"], 500);
        server.stop().await;
    }
}

#[tokio::test]
async fn a_stream_failing_too_long_tells_its_managers_and_again_when_it_recovers() {
    let quick = |config: &mut spog_server::Config| {
        config.audit_stream_alert_after = Duration::from_secs(1);
    };
    for server in servers_with(quick).await {
        let receiver = Receiver::start(Answer::Status(500)).await;
        let admin = server.admin().await;
        let stream = create_stream(&admin, &receiver.url("/in"), json!({"name": "splunk"})).await;
        let id = stream["id"].as_str().unwrap();
        let notifications = |admin: Client| async move {
            let (_, body) = admin.get("/notifications").await;
            body["items"].as_array().unwrap().clone()
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let failing = loop {
            let items = notifications(admin.clone()).await;
            if let Some(found) = items
                .iter()
                .find(|n| n["title"] == "Audit stream failing: splunk")
            {
                break found.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no notification: {items:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(failing["category"], "security");
        assert_eq!(failing["severity"], "high");
        receiver.answer(Answer::Status(200));
        let head = head_seq(&server, &admin).await;
        wait_delivered(&admin, id, head).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let items = notifications(admin.clone()).await;
            if items
                .iter()
                .any(|n| n["title"] == "Audit stream recovered: splunk")
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no recovery notice: {items:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let items = notifications(admin.clone()).await;
        let told = items
            .iter()
            .filter(|n| n["title"] == "Audit stream failing: splunk")
            .count();
        assert_eq!(told, 1, "told once");
        server.stop().await;
    }
}

/// Every entry arrives across a crash and a restart: the batch in flight when the instance
/// died may come again, nothing is lost, and the order holds.
#[tokio::test]
async fn every_entry_arrives_across_a_crash_and_a_restart() {
    let short_lease = |config: &mut spog_server::Config| {
        config.audit_stream_attempt_timeout = Duration::from_secs(1);
        config.audit_stream_lease = Duration::from_secs(2);
    };
    for first in servers_with(short_lease).await {
        let receiver = Receiver::start(Answer::Status(200)).await;
        let admin = first.admin().await;
        ingest(&first, &admin, 1_500, "job.run").await;
        let stream = create_stream(
            &admin,
            &receiver.url("/in"),
            json!({"start": "beginning", "batch": {"max_entries": 20, "max_wait_ms": 0}}),
        )
        .await;
        let id = stream["id"].as_str().unwrap().to_owned();
        receiver.wait_for(5, Duration::from_secs(20)).await;
        let database = first.database.clone();
        first.kill();
        let mut config = spog_server::testing::test_config(&database, crate::temp_dir());
        short_lease(&mut config);
        let second = TestServer::start_with(database, config).await;
        let admin = second.admin().await;
        ingest(&second, &admin, 50, "job.run").await;
        let head = head_seq(&second, &admin).await;
        wait_delivered(&admin, &id, head).await;
        let (entries, _) = delivered(&receiver);
        let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        let unique: std::collections::BTreeSet<i64> = seqs.iter().copied().collect();
        assert_eq!(unique, (1..=head).collect(), "none lost");
        let backwards = seqs.windows(2).filter(|pair| pair[1] <= pair[0]).count();
        assert!(
            backwards <= 1,
            "in order but for the batch in flight at the crash"
        );
        assert!(
            seqs.len() as i64 - head <= 20,
            "duplicates only of one batch"
        );
        second.stop().await;
    }
}

#[tokio::test]
async fn ocsf_streams_map_entries_to_their_classes() {
    for server in servers().await {
        let receiver = Receiver::start(Answer::Status(200)).await;
        let admin = server.admin().await;
        let stream = create_stream(
            &admin,
            &receiver.url("/in"),
            json!({"format": "ocsf", "include_snapshots": false, "start": "beginning"}),
        )
        .await;
        let id = stream["id"].as_str().unwrap();
        let head = head_seq(&server, &admin).await;
        wait_delivered(&admin, id, head).await;
        let (events, _) = delivered(&receiver);
        let login = events
            .iter()
            .find(|e| e["metadata"]["event_code"] == "auth.login")
            .unwrap_or_else(|| panic!("the admin's login: {events:?}"));
        assert_eq!(login["class_uid"], 3002);
        assert_eq!(login["activity_id"], 1);
        assert_eq!(login["type_uid"], 300201);
        assert_eq!(login["metadata"]["version"], "1.3.0");
        assert_eq!(login["metadata"]["product"]["vendor_name"], "SPOG");
        assert_eq!(login["user"]["email_addr"], "admin@example.com");
        let created = events
            .iter()
            .find(|e| e["metadata"]["event_code"] == "audit_stream.create")
            .expect("the stream's own creation");
        assert_eq!(created["class_uid"], 6003);
        assert_eq!(created["activity_id"], 1);
        assert!(
            created["unmapped"]["spog"].get("after").is_none(),
            "snapshots dropped"
        );
        assert!(created["unmapped"]["spog"]["hash"].is_string());
        server.stop().await;
    }
}

#[tokio::test]
async fn splunk_gets_events_with_its_token_and_channel_and_waits_for_the_indexer() {
    for server in servers().await {
        let answer = r#"{"text":"Success","code":0,"ackId":7,"acks":{"7":true}}"#;
        let receiver = Receiver::start(Answer::Text(200, answer)).await;
        let admin = server.admin().await;
        let sink = json!({"type": "splunk_hec", "url": receiver.base, "token": "hec-token-1",
                          "index": "security", "indexer_ack": true});
        let stream = create_stream(
            &admin,
            &receiver.base,
            json!({"sink": sink, "format": "cef", "start": "beginning"}),
        )
        .await;
        assert_eq!(stream["sink"]["has_token"], true);
        assert!(stream["sink"].get("token").is_none());
        let id = stream["id"].as_str().unwrap();
        let head = head_seq(&server, &admin).await;
        wait_delivered(&admin, id, head).await;
        let received = receiver.received();
        let batch = received
            .iter()
            .find(|r| r.path == "/services/collector/event")
            .unwrap_or_else(|| {
                panic!(
                    "a batch: {:?}",
                    received
                        .iter()
                        .map(|r| (
                            r.path.clone(),
                            String::from_utf8_lossy(&r.body).into_owned()
                        ))
                        .collect::<Vec<_>>()
                )
            });
        assert_eq!(batch.header("authorization"), Some("Splunk hec-token-1"));
        assert_eq!(batch.header("x-splunk-request-channel"), Some(id));
        assert!(received.iter().any(|r| r.path == "/services/collector/ack"));
        let text = String::from_utf8(batch.body.to_vec()).unwrap();
        let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["sourcetype"], "spog:audit:cef");
        assert_eq!(first["source"], "spog");
        assert_eq!(first["index"], "security");
        assert_eq!(first["fields"]["spog_seq"], 1);
        assert!(first["time"].is_f64());
        assert!(
            first["event"]
                .as_str()
                .unwrap()
                .starts_with("CEF:0|SPOG|spog|")
        );
        // A sink that answers with a non-zero code fails the batch.
        receiver.answer(Answer::Text(200, r#"{"text":"Invalid token","code":4}"#));
        ingest(&server, &admin, 3, "job.run").await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (_, read) = admin.get(&format!("/audit-streams/{id}")).await;
            if read["status"]["state"] == "failing" {
                assert!(
                    read["status"]["last_error"]
                        .as_str()
                        .unwrap()
                        .contains("Invalid token")
                );
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{read}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server.stop().await;
    }
}

/// A syslog collector on 127.0.0.1: reads octet-counted frames (`LEN SP MSG`) from every
/// connection and keeps each message.
async fn syslog_collector() -> (u16, std::sync::Arc<parking_lot::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let messages = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let kept = messages.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(socket);
                loop {
                    let mut length = Vec::new();
                    if reader.read_until(b' ', &mut length).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let length: usize = std::str::from_utf8(&length[..length.len() - 1])
                        .unwrap()
                        .parse()
                        .expect("an octet count");
                    let mut message = vec![0; length];
                    reader.read_exact(&mut message).await.unwrap();
                    kept.lock().push(String::from_utf8(message).unwrap());
                }
            });
        }
    });
    (port, messages)
}

#[tokio::test]
async fn syslog_gets_octet_counted_rfc5424_messages() {
    for server in servers().await {
        let (port, messages) = syslog_collector().await;
        let admin = server.admin().await;
        let sink = json!({"type": "syslog", "host": "127.0.0.1", "port": port,
                          "facility": "local1", "app_name": "spog-audit", "hostname": "hub-1",
                          "max_message_bytes": 1024});
        let stream = create_stream(
            &admin,
            "unused",
            json!({"sink": sink, "format": "native", "start": "beginning"}),
        )
        .await;
        let id = stream["id"].as_str().unwrap();
        let agent = admin.token_client("agent", &["audit_logs.write"]).await;
        let big = json!({"action": "job.run", "resource_type": "job", "outcome": "failure",
                         "metadata": {"output": "x".repeat(2000)}});
        assert_eq!(agent.post("/audit-logs", big).await.0, StatusCode::CREATED);
        let head = head_seq(&server, &admin).await;
        wait_delivered(&admin, id, head).await;
        let messages = messages.lock().clone();
        assert_eq!(messages.len() as i64, head, "one message per entry");
        // local1 = 17: success 17 * 8 + 5, failure 17 * 8 + 4.
        assert!(messages[0].starts_with("<141>1 "), "{}", messages[0]);
        let first: Vec<&str> = messages[0].splitn(7, ' ').collect();
        assert_eq!(first[2], "hub-1");
        assert_eq!(first[3], "spog-audit");
        assert_eq!(first[4], "-");
        assert_eq!(first[5], "account.create");
        assert!(
            first[6].starts_with("[spog@32473 seq=\"1\" id=\""),
            "{}",
            first[6]
        );
        let entry: Value = serde_json::from_str(first[6].split_once("] ").unwrap().1).unwrap();
        assert_eq!(entry["seq"], 1);
        let failed = messages.iter().find(|m| m.contains(" job.run ")).unwrap();
        assert!(failed.starts_with("<140>1 "));
        assert!(
            failed.contains("truncated=\"true\""),
            "over max_message_bytes"
        );
        assert!(failed.len() <= 1024 + 200 && !failed.contains("xxxx"));
        server.stop().await;
    }
}

#[tokio::test]
async fn health_and_metrics_show_the_streams() {
    let token = "a metrics token for the scraper";
    let with_token = |c: &mut spog_server::Config| {
        c.metrics_token = Some(spog_server::config::Secret::new(token))
    };
    for server in servers_with(with_token).await {
        let receiver = Receiver::start(Answer::Status(200)).await;
        let admin = server.admin().await;
        let stream =
            create_stream(&admin, &receiver.url("/in"), json!({"start": "beginning"})).await;
        let id = stream["id"].as_str().unwrap();
        let head = head_seq(&server, &admin).await;
        wait_delivered(&admin, id, head).await;
        let (_, health) = admin.get("/system/health").await;
        assert_eq!(
            health["workers"]["audit_streams"]["running"], true,
            "{health}"
        );
        let metrics = reqwest::Client::new()
            .get(format!("{}/metrics", server.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for series in [
            format!("spog_audit_stream_entries_total{{stream_id=\"{id}\",sink=\"https\"}}"),
            format!(
                "spog_audit_stream_batches_total{{stream_id=\"{id}\",sink=\"https\",outcome=\"success\"}}"
            ),
            format!("spog_audit_stream_lag_entries{{stream_id=\"{id}\"}}"),
            "spog_audit_stream_batch_duration_seconds_count{sink=\"https\"}".to_owned(),
        ] {
            assert!(metrics.contains(&series), "{series} in {metrics}");
        }
        server.stop().await;
    }
}

/// Two instances on one PostgreSQL database: the lease lets one send the stream, so every
/// entry arrives exactly once and in order.
#[tokio::test]
async fn two_instances_send_a_stream_once() {
    let Ok(admin_url) = std::env::var(spog_store::testing::POSTGRES_ENV) else {
        eprintln!("skipped: the PostgreSQL URL is not set");
        return;
    };
    let database = std::sync::Arc::new(spog_store::testing::postgres(&admin_url).await);
    let mut instances = Vec::new();
    for _ in 0..2 {
        let config = spog_server::testing::test_config(&database, crate::temp_dir());
        instances.push(TestServer::start_with(database.clone(), config).await);
    }
    let receiver = Receiver::start(Answer::Status(200)).await;
    let admin = instances[0].admin().await;
    let stream = create_stream(&admin, &receiver.url("/in"), json!({"start": "beginning"})).await;
    let id = stream["id"].as_str().unwrap();
    for instance in &instances {
        let client = instance.admin().await;
        ingest(instance, &client, 300, "job.run").await;
    }
    let head = head_seq(&instances[1], &admin).await;
    let read = wait_delivered(&admin, id, head).await;
    let (entries, _) = delivered(&receiver);
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=head).collect::<Vec<_>>(),
        "each entry once, in order"
    );
    let holder = read["status"]["instance_id"].as_str().unwrap();
    assert!(instances.iter().any(|i| i.state.instance_id == holder));
    for instance in instances {
        instance.stop().await;
    }
}
