//! Metric rules on the series (SPEC 12.5): labels, per-series alerts, no data, alert reasons
//! and the `GET /alerts` filters, on both backends.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_core::Timestamp;
use spog_server::testing::TestServer;
use spog_server::workers::no_data;

use crate::alerts::{Setup, alerts, setup};
use crate::{servers, servers_with};

async fn create_rule(s: &Setup, extra: Value) -> Value {
    let mut body = json!({"kind": "metric", "organization_id": s.organization, "name": "disk full",
        "metric": "disk.used", "operator": ">", "threshold": 90, "for_seconds": 0, "severity": "high"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, rule) = s.admin.post("/alert-rules", body).await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    rule
}

async fn send(s: &Setup, host: &str, samples: Value) {
    let (status, body) = s
        .agent
        .post("/metrics", json!({"host_id": host, "samples": samples}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

fn ago(seconds: u64) -> Timestamp {
    Timestamp::now().minus(Duration::from_secs(seconds))
}

/// The data of the stored `alert.*` events of an alert, oldest first.
async fn event_data(server: &TestServer, alert: &str) -> Vec<(String, Value)> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT event_type, data FROM events WHERE event_type LIKE 'alert.%' ORDER BY occurred_at, id",
    )
    .fetch_all(&mut *server.state.store.conn().await.unwrap())
    .await
    .unwrap();
    rows.into_iter()
        .map(|(t, d)| (t, serde_json::from_str::<Value>(&d).unwrap()))
        .filter(|(_, d)| d["alert_id"] == alert)
        .collect()
}

#[tokio::test]
async fn labels_and_no_data_seconds_are_checked_and_read_back() {
    for server in servers_with(|c| c.metric_no_data_after = Duration::from_secs(30)).await {
        let s = setup(&server).await;
        let base = json!({"kind": "metric", "organization_id": s.organization, "name": "r",
            "metric": "disk.used", "operator": ">", "threshold": 90, "severity": "low"});
        let with = |extra: Value| {
            let mut body = base.clone();
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            body
        };
        let nine: serde_json::Map<String, Value> =
            (0..9).map(|i| (format!("k{i}"), json!("v"))).collect();
        for (body, field) in [
            (with(json!({"labels": {"Mount": "/"}})), "labels"),
            (with(json!({"labels": nine})), "labels"),
            (
                with(json!({"labels": {"mount": "x".repeat(201)}})),
                "labels",
            ),
            (with(json!({"labels": ["mount"]})), "labels"),
            (with(json!({"no_data_seconds": 4})), "no_data_seconds"),
            (with(json!({"no_data_seconds": -1})), "no_data_seconds"),
            (with(json!({"no_data_seconds": 604_801})), "no_data_seconds"),
            (
                json!({"kind": "event", "organization_id": s.organization, "name": "e", "severity": "low",
                    "event_types": ["job.failed"], "labels": {"mount": "/"}}),
                "metric",
            ),
        ] {
            let (status, error) = s.admin.post("/alert-rules", body.clone()).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {error}");
            assert!(
                error["error"]["details"]["fields"][field].is_string(),
                "{field}: {error}"
            );
        }
        let (status, rule) = s.admin.post("/alert-rules", base.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{rule}");
        assert_eq!(rule["labels"], json!({}));
        assert_eq!(
            rule["no_data_seconds"], 30,
            "the default is metric_no_data_after"
        );
        let id = rule["id"].as_str().unwrap();
        let (status, changed) = s
            .admin
            .patch(
                &format!("/alert-rules/{id}"),
                json!({"labels": {"mount": "/data"}, "no_data_seconds": 0}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{changed}");
        let (_, read) = s.admin.get(&format!("/alert-rules/{id}")).await;
        assert_eq!(read["labels"], json!({"mount": "/data"}));
        assert_eq!(read["no_data_seconds"], 0);
        let (status, error) = s
            .admin
            .patch(
                &format!("/alert-rules/{id}"),
                json!({"no_data_seconds": 700_000}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(error["error"]["details"]["fields"]["no_data_seconds"].is_string());
        for (query, field) in [
            ("reason=weather", "reason"),
            ("rule_id=nope", "rule_id"),
            ("host_id=nope", "host_id"),
        ] {
            let (status, error) = s.admin.get(&format!("/alerts?{query}")).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {error}");
            assert!(
                error["error"]["details"]["fields"][field].is_string(),
                "{query}: {error}"
            );
        }
        let (_, openapi) = s.admin.get("/openapi.json").await;
        let schema = &openapi["components"]["schemas"]["RuleBody"]["properties"];
        assert!(schema["labels"].is_object() && schema["no_data_seconds"].is_object());
        server.stop().await;
    }
}

#[tokio::test]
async fn each_series_of_a_host_fires_and_resolves_on_its_own_with_its_labels() {
    for server in servers().await {
        let s = setup(&server).await;
        let every = create_rule(&s, json!({})).await;
        let only_data = create_rule(
            &s,
            json!({"name": "data disk full", "labels": {"mount": "/data"}}),
        )
        .await;
        let sample = |mount: &str, value: f64, at: Timestamp| json!({"metric": "disk.used", "value": value, "at": at, "labels": {"mount": mount, "fs": "ext4"}});
        send(
            &s,
            &s.host,
            json!([sample("/", 95.0, ago(50)), sample("/data", 50.0, ago(50))]),
        )
        .await;
        let firing = alerts(&s.admin, "state=firing").await;
        assert_eq!(firing.len(), 1, "{firing:?}");
        assert_eq!(firing[0]["labels"], json!({"mount": "/", "fs": "ext4"}));
        assert_eq!(firing[0]["reason"], "threshold");
        assert_eq!(
            firing[0]["summary"],
            "disk.used{fs=\"ext4\",mount=\"/\"} 95 > 90 on web-1 for 0 s"
        );
        send(&s, &s.host, json!([sample("/data", 97.0, ago(40))])).await;
        let firing = alerts(&s.admin, "state=firing").await;
        assert_eq!(
            firing.len(),
            3,
            "both series of the first rule, and the second"
        );
        let data_alerts: Vec<&Value> = firing
            .iter()
            .filter(|a| a["labels"]["mount"] == "/data")
            .collect();
        assert_eq!(data_alerts.len(), 2);
        send(&s, &s.host, json!([sample("/", 10.0, ago(30))])).await;
        let resolved = alerts(&s.admin, "state=resolved").await;
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0]["labels"]["mount"], "/");
        assert_eq!(resolved[0]["resolved_reason"], "cleared");
        assert_eq!(alerts(&s.admin, "state=firing").await.len(), 2);

        // Filters.
        let rule_id = every["id"].as_str().unwrap();
        assert_eq!(
            alerts(&s.admin, &format!("rule_id={rule_id}")).await.len(),
            2
        );
        let only = only_data["id"].as_str().unwrap();
        let of_second = alerts(&s.admin, &format!("rule_id={only}&state=firing")).await;
        assert_eq!(of_second.len(), 1);
        assert_eq!(of_second[0]["rule_name"], "data disk full");
        assert_eq!(
            alerts(&s.admin, &format!("host_id={}", s.host)).await.len(),
            3
        );
        assert_eq!(alerts(&s.admin, "reason=threshold").await.len(), 3);
        assert!(alerts(&s.admin, "reason=no_data").await.is_empty());
        assert!(alerts(&s.admin, "reason=event").await.is_empty());
        let (_, other) = s
            .admin
            .post(
                "/hosts",
                json!({"organization_id": s.organization, "hostname": "web-2"}),
            )
            .await;
        assert!(
            alerts(
                &s.admin,
                &format!("host_id={}", other["id"].as_str().unwrap())
            )
            .await
            .is_empty()
        );

        // The events carry the series' labels and the reasons.
        let events = event_data(&server, resolved[0]["id"].as_str().unwrap()).await;
        let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(types, ["alert.fired", "alert.resolved"]);
        assert_eq!(events[0].1["labels"]["mount"], "/");
        assert_eq!(events[0].1["reason"], "threshold");
        assert_eq!(events[1].1["resolved_reason"], "cleared");

        // A resolution by hand says so.
        let id = of_second[0]["id"].as_str().unwrap();
        let (_, manual) = s
            .admin
            .post(&format!("/alerts/{id}/resolve"), json!({}))
            .await;
        assert_eq!(manual["resolved_reason"], "manual");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_silent_series_resolves_its_threshold_alert_and_fires_no_data_until_a_sample_comes() {
    for server in servers().await {
        let s = setup(&server).await;
        let rule = create_rule(
            &s,
            json!({"no_data_seconds": 5, "labels": {"mount": "/"}, "cooldown_seconds": 0}),
        )
        .await;
        send(
            &s,
            &s.host,
            json!([{"metric": "disk.used", "value": 95.0, "at": ago(60), "labels": {"mount": "/"}},
                   {"metric": "disk.used", "value": 95.0, "at": ago(60), "labels": {"mount": "/boot"}}]),
        )
        .await;
        let threshold = alerts(&s.admin, "state=firing").await;
        assert_eq!(threshold.len(), 1, "{threshold:?}");
        let later = Timestamp::now().plus(Duration::from_secs(10));
        // Checkers running at once (as several instances would) fire it once.
        let (first, second) = tokio::join!(
            no_data::run_once(&server.state, later),
            no_data::run_once(&server.state, later)
        );
        assert!(first.unwrap() + second.unwrap() <= 1);
        no_data::run_once(&server.state, later).await.unwrap();
        let silent = alerts(&s.admin, "reason=no_data").await;
        assert_eq!(
            silent.len(),
            1,
            "one no-data alert, however often checked: {silent:?}"
        );
        assert_eq!(silent[0]["state"], "firing");
        assert_eq!(silent[0]["labels"], json!({"mount": "/"}));
        assert_eq!(silent[0]["rule_id"], rule["id"]);
        assert_eq!(silent[0]["host_id"], s.host.as_str());
        let (_, before) = s
            .admin
            .get(&format!("/alerts/{}", threshold[0]["id"].as_str().unwrap()))
            .await;
        assert_eq!(before["state"], "resolved");
        assert_eq!(before["resolved_reason"], "no_data");
        let events = event_data(&server, silent[0]["id"].as_str().unwrap()).await;
        assert_eq!(events[0].0, "alert.fired");
        assert_eq!(events[0].1["reason"], "no_data");
        let (_, notes) = s.admin.get("/notifications?category=alert").await;
        assert!(
            notes["items"][0]["title"]
                .as_str()
                .unwrap()
                .contains("disk full — firing"),
            "{notes}"
        );
        server.link_audit().await;
        let (_, fired) = s.admin.get("/audit-logs?action=alert.fire").await;
        assert_eq!(fired["items"].as_array().unwrap().len(), 2);

        // The next sample ends the silence; evaluation starts afresh.
        send(
            &s,
            &s.host,
            json!([{"metric": "disk.used", "value": 20.0, "labels": {"mount": "/"}}]),
        )
        .await;
        let (_, resumed) = s
            .admin
            .get(&format!("/alerts/{}", silent[0]["id"].as_str().unwrap()))
            .await;
        assert_eq!(resumed["state"], "resolved");
        assert_eq!(resumed["resolved_reason"], "data_resumed");
        assert!(alerts(&s.admin, "state=firing").await.is_empty());
        no_data::run_once(&server.state, Timestamp::now())
            .await
            .unwrap();
        assert!(
            alerts(&s.admin, "state=firing").await.is_empty(),
            "the series speaks again"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn a_listed_host_that_never_reported_has_no_data() {
    for server in servers().await {
        let s = setup(&server).await;
        let (_, quiet) = s
            .admin
            .post(
                "/hosts",
                json!({"organization_id": s.organization, "hostname": "quiet-1"}),
            )
            .await;
        let quiet = quiet["id"].as_str().unwrap().to_owned();
        create_rule(
            &s,
            json!({"no_data_seconds": 5, "host_ids": [s.host, quiet], "labels": {"mount": "/"}}),
        )
        .await;
        // The reporting host's sample is recent still when the check looks ahead.
        let soon = Timestamp::now().plus(Duration::from_secs(30));
        send(
            &s,
            &s.host,
            json!([{"metric": "disk.used", "value": 10.0, "at": soon, "labels": {"mount": "/"}}]),
        )
        .await;
        no_data::run_once(&server.state, Timestamp::now())
            .await
            .unwrap();
        assert!(
            alerts(&s.admin, "reason=no_data").await.is_empty(),
            "silence counts from when the rule was enabled"
        );
        let later = Timestamp::now().plus(Duration::from_secs(6));
        no_data::run_once(&server.state, later).await.unwrap();
        let silent = alerts(&s.admin, "reason=no_data").await;
        assert_eq!(silent.len(), 1, "{silent:?}");
        assert_eq!(silent[0]["host_id"], quiet.as_str());
        assert_eq!(silent[0]["hostname"], "quiet-1");
        assert_eq!(silent[0]["labels"], json!({"mount": "/"}));
        send(
            &s,
            &quiet,
            json!([{"metric": "disk.used", "value": 10.0, "labels": {"mount": "/", "fs": "xfs"}}]),
        )
        .await;
        let (_, resumed) = s
            .admin
            .get(&format!("/alerts/{}", silent[0]["id"].as_str().unwrap()))
            .await;
        assert_eq!(resumed["resolved_reason"], "data_resumed");
        server.stop().await;
    }
}
