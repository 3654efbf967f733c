use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_core::audit::{AuditEntry, ChainVerifier};
use spog_server::testing::{Client, TestServer};

use crate::servers;

async fn writer(admin: &Client) -> Client {
    admin.token_client("agent", &["audit_logs.write"]).await
}

fn ingest(action: &str, name: &str) -> Value {
    json!({"action": action, "resource_type": "job", "resource_id": name, "resource_name": name, "outcome": "success"})
}

async fn search(admin: &Client, query: &str) -> Vec<Value> {
    let (status, body) = admin.get(&format!("/audit-logs?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body["items"].as_array().unwrap().clone()
}

async fn sql(server: &TestServer, statement: &str) {
    let mut conn = server.state.store.conn().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(&mut *conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_auditor_finds_changes_by_who_what_and_when() {
    for server in servers().await {
        let admin = server.admin().await;
        let agent = writer(&admin).await;
        for (action, name) in [
            ("job.run", "nightly"),
            ("job.cancel", "nightly"),
            ("deploy.start", "=cmd|' /C calc'!A0"),
        ] {
            assert_eq!(
                agent.post("/audit-logs", ingest(action, name)).await.0,
                StatusCode::CREATED
            );
        }
        let failed = json!({"action": "job.run", "resource_type": "job", "outcome": "failure", "resource_name": "weekly"});
        assert_eq!(
            agent.post("/audit-logs", failed).await.0,
            StatusCode::CREATED
        );
        let auditor = admin
            .user_with_roles(&server, "audrey@example.com", &["auditor"])
            .await;
        assert_eq!(search(&auditor, "action=job.run").await.len(), 2);
        assert_eq!(search(&auditor, "action=job.*").await.len(), 3);
        assert_eq!(
            search(&auditor, "outcome=failure&action=job.*").await.len(),
            1
        );
        assert_eq!(search(&auditor, "actor_type=agent").await.len(), 4);
        assert_eq!(search(&auditor, "q=WEEK").await.len(), 1);
        assert_eq!(
            search(
                &auditor,
                "actor_email=admin%40example.com&action=api_token.create"
            )
            .await
            .len(),
            1
        );
        let newest = search(&auditor, "limit=1").await;
        assert_eq!(
            (
                newest[0]["action"].as_str(),
                newest[0]["actor_email"].as_str()
            ),
            (Some("auth.login"), Some("audrey@example.com"))
        );
        let far_future = "from=2999-01-01T00:00:00Z";
        assert!(search(&auditor, far_future).await.is_empty());
        server.stop().await;
    }
}

/// Every page of `query`, following the cursor.
async fn search_all(admin: &Client, query: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = admin.get(&format!("/audit-logs?{query}{cursor}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {page}");
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return items,
        }
    }
}

/// A text search checks the newest 2,000 entries one by one and asks the trigram index below
/// them (on PostgreSQL): either way, and across the edge, it finds every match once, newest
/// first.
#[tokio::test]
async fn text_search_finds_matches_among_the_newest_and_far_below_them() {
    for server in servers().await {
        let admin = server.admin().await;
        let agent = writer(&admin).await;
        let name = |n: usize| match n {
            0 => "ancient 50%_off".to_owned(),
            n if n % 200 == 0 => format!("mixed {n}"),
            n => format!("plain {n}"),
        };
        for start in (0..2_500).step_by(1_000) {
            let batch: Vec<Value> = (start..(start + 1_000).min(2_500))
                .map(|n| ingest("job.run", &name(n)))
                .collect();
            let (status, body) = agent
                .post("/audit-logs/batch", json!({"entries": batch}))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        let names = |items: &[Value]| -> Vec<String> {
            let mut names: Vec<String> = items
                .iter()
                .map(|i| i["resource_name"].as_str().unwrap().to_owned())
                .collect();
            names.sort();
            names
        };
        let newest_first = |items: &[Value]| {
            items.windows(2).all(|w| {
                (w[0]["occurred_at"].as_str(), w[0]["id"].as_str())
                    > (w[1]["occurred_at"].as_str(), w[1]["id"].as_str())
            })
        };
        let ancient = search(&admin, "q=50%25_OFF").await;
        assert_eq!(names(&ancient), ["ancient 50%_off"]);
        assert!(search(&admin, "q=50%25%25off").await.is_empty());
        let mixed = search_all(&admin, "q=MIXED&limit=5").await;
        let mut expected: Vec<String> = (200..2_500).step_by(200).map(name).collect();
        expected.sort();
        assert_eq!(names(&mixed), expected);
        assert!(newest_first(&mixed), "{mixed:?}");
        let common = search_all(&admin, "q=plain 1&resource_type=job&limit=100").await;
        assert_eq!(common.len(), 1 + 10 + 100 + 1_000 - 5);
        assert!(newest_first(&common));
        assert_eq!(search(&admin, "q=d 1&limit=500").await.len(), 5);
        server.stop().await;
    }
}

#[tokio::test]
async fn pages_follow_the_cursor_without_overlap() {
    for server in servers().await {
        let admin = server.admin().await;
        let agent = writer(&admin).await;
        let batch: Vec<Value> = (0..25)
            .map(|n| ingest("job.run", &format!("j{n}")))
            .collect();
        assert_eq!(
            agent
                .post("/audit-logs/batch", json!({"entries": batch}))
                .await
                .0,
            StatusCode::CREATED
        );
        let mut seen = HashSet::new();
        let mut cursor: Option<String> = None;
        loop {
            let query = match &cursor {
                Some(c) => format!("/audit-logs?action=job.run&limit=10&cursor={c}"),
                None => "/audit-logs?action=job.run&limit=10".to_owned(),
            };
            let (status, page) = admin.get(&query).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            for item in page["items"].as_array().unwrap() {
                assert!(seen.insert(item["id"].as_str().unwrap().to_owned()));
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen.len(), 25);
        let c = cursor.unwrap_or_default();
        let (status, body) = admin
            .get(&format!("/audit-logs?action=job.cancel&cursor={c}"))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "a cursor of another query: {body}"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn bad_filters_are_422_naming_the_parameter() {
    for server in servers().await {
        let admin = server.admin().await;
        for (query, field) in [
            ("colour=blue", "colour"),
            ("actor_type=robot", "actor_type"),
            ("outcome=maybe", "outcome"),
            ("from=yesterday", "from"),
            ("from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
            ("limit=0", "limit"),
            ("limit=501", "limit"),
            ("action=DROP%20TABLE", "action"),
            ("cursor=bm9wZQ", "cursor"),
        ] {
            let (status, body) = admin.get(&format!("/audit-logs?{query}")).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
            assert!(
                body["error"]["details"]["fields"][field].is_string(),
                "{query}: {body}"
            );
        }
        let (status, _) = admin.get("/audit-logs/recent?limit=51").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        server.stop().await;
    }
}

#[tokio::test]
async fn details_show_redacted_snapshots() {
    for server in servers().await {
        let admin = server.admin().await;
        let agent = writer(&admin).await;
        let body = json!({"action": "vault.rotate", "resource_type": "vault", "outcome": "success",
            "before": {"password": "old-secret", "size": 1}, "after": {"password": "new-secret", "size": 2}});
        let (status, created) = agent.post("/audit-logs", body).await;
        assert_eq!(status, StatusCode::CREATED);
        let id = created["id"].as_str().unwrap();
        let (status, entry) = admin.get(&format!("/audit-logs/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            entry["before"],
            json!({"password": "[redacted]", "size": 1})
        );
        assert_eq!(entry["after"], json!({"password": "[redacted]", "size": 2}));
        assert_eq!(entry["actor_type"], "agent");
        assert_eq!(entry["source"], "agent");
        assert_eq!(
            admin
                .get("/audit-logs/00000000-0000-7000-8000-000000000000")
                .await
                .0,
            StatusCode::NOT_FOUND
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn an_ingest_batch_is_all_or_nothing() {
    for server in servers().await {
        let admin = server.admin().await;
        let agent = writer(&admin).await;
        let before = search(&admin, "actor_type=agent").await.len();
        let entries = json!({"entries": [ingest("job.run", "a"), ingest("Not An Action", "b"), {"action": "job.run", "resource_type": "job", "outcome": "success", "actor_type": "system"}]});
        let (status, body) = agent.post("/audit-logs/batch", entries).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let fields = &body["error"]["details"]["fields"];
        assert!(
            fields["entries[1].action"].is_string() && fields["entries[2].actor_type"].is_string(),
            "{body}"
        );
        assert_eq!(search(&admin, "actor_type=agent").await.len(), before);
        let too_many: Vec<Value> = (0..1001)
            .map(|n| ingest("job.run", &n.to_string()))
            .collect();
        assert_eq!(
            agent
                .post("/audit-logs/batch", json!({"entries": too_many}))
                .await
                .0,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let missing = json!({"action": "job.run", "outcome": "success"});
        let (status, body) = agent.post("/audit-logs", missing).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body["error"]["details"]["fields"]["resource_type"].is_string(),
            "{body}"
        );
        let foreign_org = json!({"action": "job.run", "resource_type": "job", "outcome": "success", "organization_id": "00000000-0000-7000-8000-000000000000"});
        let (status, body) = agent.post("/audit-logs", foreign_org).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(
            admin.post("/audit-logs", ingest("job.run", "x")).await.0,
            StatusCode::CREATED,
            "admins may record too"
        );
        let viewer = admin.token_client("system", &["audit_logs.view"]).await;
        assert_eq!(
            viewer.post("/audit-logs", ingest("job.run", "x")).await.0,
            StatusCode::FORBIDDEN
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn statistics_count_the_week() {
    for server in servers().await {
        let admin = server.admin().await;
        let agent = writer(&admin).await;
        let entries: Vec<Value> = (0..5).map(|n| ingest("job.run", &n.to_string())).collect();
        agent
            .post("/audit-logs/batch", json!({"entries": entries}))
            .await;
        server.link_audit().await;
        let (status, stats) = admin.get("/audit-logs/stats").await;
        assert_eq!(status, StatusCode::OK, "{stats}");
        assert_eq!(stats["per_day"].as_array().unwrap().len(), 7);
        let job_runs = stats["by_action"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["key"] == "job.run")
            .unwrap();
        assert_eq!(job_runs["count"], 5);
        let total = stats["total"].as_i64().unwrap();
        let today = stats["per_day"].as_array().unwrap().last().unwrap()["count"]
            .as_i64()
            .unwrap();
        assert_eq!(total, today);
        assert_eq!(stats["top_actors"][0]["label"], "agent token");
        assert_eq!(
            admin.get("/audit-logs/stats?days=0").await.0,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            admin
                .get("/audit-logs/stats?days=3&from=2026-01-01T00:00:00Z")
                .await
                .0,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn exports_are_complete_neutralised_verifiable_and_audited() {
    for server in servers().await {
        let admin = server.admin().await;
        let agent = writer(&admin).await;
        agent
            .post("/audit-logs", ingest("deploy.start", "=cmd|' /C calc'!A0"))
            .await;
        let response = admin
            .request(reqwest::Method::GET, "/audit-logs/export?format=csv")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("attachment;")
        );
        let csv = response.text().await.unwrap();
        let mut lines = csv.lines();
        assert_eq!(
            lines.next().unwrap(),
            "id,seq,occurred_at,actor_type,actor_id,actor_email,actor_name,source,ip,action,resource_type,resource_id,resource_name,organization_id,outcome,request_id,prev_hash,hash,credential_id,credential_name,recorded_at"
        );
        assert!(csv.contains("'=cmd|"), "formula neutralised: {csv}");
        assert!(!csv.contains(",=cmd"));
        let jsonl = admin
            .request(reqwest::Method::GET, "/audit-logs/export?format=jsonl")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut verifier = ChainVerifier::new();
        let mut count = 0;
        for line in jsonl.lines() {
            let entry: AuditEntry = serde_json::from_str(line).unwrap();
            verifier.push(&entry);
            count += 1;
        }
        let report = verifier.finish();
        assert!(report.valid, "{:?}", report.broken_links);
        assert_eq!(report.entries_checked, count);
        let exports = search(&admin, "action=audit_log.export").await;
        assert_eq!(exports.len(), 2);
        assert_eq!(
            admin.get("/audit-logs/export?format=xml").await.0,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let auditor = admin
            .user_with_roles(&server, "a@example.com", &["auditor"])
            .await;
        let viewer = admin
            .user_with_roles(&server, "v@example.com", &["viewer"])
            .await;
        assert_eq!(
            auditor
                .request(reqwest::Method::GET, "/audit-logs/export?format=jsonl")
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
        assert_eq!(
            viewer.get("/audit-logs/export?format=jsonl").await.0,
            StatusCode::FORBIDDEN
        );
        server.stop().await;
    }
}

async fn integrity(admin: &Client) -> Value {
    let (status, report) = admin.get("/audit-logs/integrity").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    report
}

fn reasons(report: &Value) -> Vec<(i64, String)> {
    report["broken_links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["seq"].as_i64().unwrap(),
                b["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A server whose chain holds twenty ingested entries beyond its own.
async fn chain_of_twenty(server: &TestServer) -> Client {
    let admin = server.admin().await;
    let agent = writer(&admin).await;
    let entries: Vec<Value> = (0..20)
        .map(|n| ingest("job.run", &format!("j{n}")))
        .collect();
    agent
        .post("/audit-logs/batch", json!({"entries": entries}))
        .await;
    server.link_audit().await;
    admin
}

/// SQL naming the entry with this resource name.
fn id_of(name: &str) -> String {
    format!("(SELECT id FROM audit_entries WHERE resource_name = '{name}')")
}

/// Deletes every entry after `seq`, with its link, as an attacker with the database would.
async fn truncate_after(server: &TestServer, seq: i64) {
    sql(
        server,
        &format!("DELETE FROM audit_entries WHERE id IN (SELECT entry_id FROM audit_links WHERE seq > {seq})"),
    )
    .await;
    sql(
        server,
        &format!("DELETE FROM audit_links WHERE seq > {seq}"),
    )
    .await;
}

async fn seq_of(server: &TestServer, name: &str) -> i64 {
    let mut conn = server.state.store.conn().await.unwrap();
    sqlx::query_scalar("SELECT seq FROM audit_logs WHERE resource_name = $1")
        .bind(name)
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_intact_chain_verifies_and_the_check_is_on_record() {
    for server in servers().await {
        let admin = chain_of_twenty(&server).await;
        let report = integrity(&admin).await;
        assert_eq!(report["valid"], true, "{report}");
        assert!(report["entries_checked"].as_i64().unwrap() >= 20);
        assert_eq!(report["head_seq"], report["entries_checked"]);
        assert!(report["checked_at"].is_string());
        assert_eq!(search(&admin, "action=audit_log.verify").await.len(), 1);
        server.stop().await;
    }
}

#[tokio::test]
async fn an_edited_entry_is_reported_as_a_hash_mismatch() {
    for server in servers().await {
        let admin = chain_of_twenty(&server).await;
        let seq = seq_of(&server, "j5").await;
        sql(
            &server,
            "UPDATE audit_entries SET action = 'job.cancel' WHERE resource_name = 'j5'",
        )
        .await;
        let report = integrity(&admin).await;
        assert_eq!(report["valid"], false);
        assert_eq!(reasons(&report), [(seq, "hash_mismatch".to_owned())]);
        assert!(report["broken_links"][0]["id"].as_str().unwrap().len() == 36);
        server.stop().await;
    }
}

#[tokio::test]
async fn a_deleted_entry_is_reported_as_a_gap() {
    for server in servers().await {
        let admin = chain_of_twenty(&server).await;
        let seq = seq_of(&server, "j7").await;
        sql(
            &server,
            "DELETE FROM audit_entries WHERE resource_name = 'j7'",
        )
        .await;
        let report = integrity(&admin).await;
        assert_eq!(
            reasons(&report),
            [
                (seq + 1, "seq_gap".to_owned()),
                (seq + 1, "prev_mismatch".to_owned())
            ]
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn swapped_entries_are_reported_at_both_positions() {
    for server in servers().await {
        let admin = chain_of_twenty(&server).await;
        let (a, b) = (seq_of(&server, "j3").await, seq_of(&server, "j9").await);
        sql(
            &server,
            &format!(
                "UPDATE audit_links SET seq = -1 WHERE seq = {a} AND entry_id = {}",
                id_of("j3")
            ),
        )
        .await;
        sql(
            &server,
            &format!(
                "UPDATE audit_links SET seq = {a} WHERE seq = {b} AND entry_id = {}",
                id_of("j9")
            ),
        )
        .await;
        sql(
            &server,
            &format!("UPDATE audit_links SET seq = {b} WHERE seq = -1"),
        )
        .await;
        let found = reasons(&integrity(&admin).await);
        for expected in [
            (a, "hash_mismatch"),
            (a, "prev_mismatch"),
            (b, "hash_mismatch"),
            (b, "prev_mismatch"),
        ] {
            assert!(
                found.contains(&(expected.0, expected.1.to_owned())),
                "{expected:?} in {found:?}"
            );
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn a_truncated_tail_is_caught_by_the_head_and_by_a_signed_checkpoint() {
    for server in servers().await {
        let admin = chain_of_twenty(&server).await;
        let (status, checkpoint) = admin.post("/audit-logs/checkpoints", json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "{checkpoint}");
        let head = checkpoint["seq"].as_i64().unwrap();
        let (_, key) = admin.get("/audit-logs/checkpoints/public-key").await;
        let public_key =
            spog_core::audit::checkpoint::parse_public_key(key["public_key"].as_str().unwrap())
                .unwrap();
        let statement = spog_core::audit::checkpoint::statement(
            checkpoint["account_id"].as_str().unwrap(),
            head,
            checkpoint["head_hash"].as_str().unwrap(),
            spog_core::Timestamp::parse(checkpoint["signed_at"].as_str().unwrap()).unwrap(),
        );
        assert!(spog_core::audit::checkpoint::verify(
            &public_key,
            &statement,
            checkpoint["signature"].as_str().unwrap()
        ));
        // Delete the tail, then also rewind the stored head as a careful attacker would.
        truncate_after(&server, head - 3).await;
        let report = integrity(&admin).await;
        assert_eq!(report["valid"], false);
        assert!(
            reasons(&report).contains(&(head - 2, "seq_gap".to_owned())),
            "{report}"
        );
        let (last_hash,): (String,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT hash FROM audit_logs WHERE seq = {}",
            head - 3
        )))
        .fetch_one(&mut *server.state.store.conn().await.unwrap())
        .await
        .unwrap();
        truncate_after(&server, head - 3).await;
        sql(
            &server,
            &format!(
                "UPDATE audit_heads SET seq = {}, hash = '{last_hash}'",
                head - 3
            ),
        )
        .await;
        let report = integrity(&admin).await;
        assert_eq!(
            report["valid"], false,
            "the checkpoint still knows the real head: {report}"
        );
        assert_eq!(report["checkpoint_seq"], head);
        let (_, list) = admin.get("/audit-logs/checkpoints").await;
        assert_eq!(list[0]["seq"], head);
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_writers_leave_one_linear_chain() {
    for server in servers().await {
        let admin = server.admin().await;
        let agent = writer(&admin).await;
        let mut writers = Vec::new();
        for w in 0..64 {
            let agent = agent.clone();
            writers.push(tokio::spawn(async move {
                for n in 0..5 {
                    let (status, body) = agent
                        .post("/audit-logs", ingest("job.run", &format!("w{w}-{n}")))
                        .await;
                    assert_eq!(status, StatusCode::CREATED, "{body}");
                }
            }));
        }
        for w in writers {
            w.await.unwrap();
        }
        let report = integrity(&admin).await;
        assert_eq!(report["valid"], true, "{report}");
        assert!(report["entries_checked"].as_i64().unwrap() >= 320);
        assert_eq!(report["head_seq"], report["entries_checked"]);
        server.stop().await;
    }
}
