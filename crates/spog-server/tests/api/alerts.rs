use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_core::Timestamp;
use spog_server::testing::{Client, TestServer};

use crate::servers;

/// An admin, an agent token that publishes, the first organization and a host `web-1` in it.
pub struct Setup {
    pub admin: Client,
    pub agent: Client,
    pub organization: String,
    pub host: String,
}

pub async fn setup(server: &TestServer) -> Setup {
    let admin = server.admin().await;
    let agent = admin.token_client("agent", &["events.publish"]).await;
    let (_, organizations) = admin.get("/organizations").await;
    let organization = organizations[0]["id"].as_str().unwrap().to_owned();
    let (_, host) = admin
        .post(
            "/hosts",
            json!({"organization_id": organization, "hostname": "web-1"}),
        )
        .await;
    Setup {
        admin,
        agent,
        organization,
        host: host["id"].as_str().unwrap().to_owned(),
    }
}

pub async fn alerts(client: &Client, query: &str) -> Vec<Value> {
    let (status, body) = client.get(&format!("/alerts?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().unwrap().clone()
}

async fn titles(client: &Client) -> Vec<String> {
    let (_, body) = client.get("/notifications").await;
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_matching_event_fires_an_alert_that_notifies_monitors_once_per_cooldown() {
    for server in servers().await {
        let s = setup(&server).await;
        let viewer = s
            .admin
            .user_with_roles(&server, "val@example.com", &["viewer"])
            .await;
        let auditor = s
            .admin
            .user_with_roles(&server, "aud@example.com", &["auditor"])
            .await;
        let rule = json!({"kind": "event", "organization_id": s.organization, "name": "backups failing",
            "event_types": ["job.failed"], "match": {"job.name": "backup"}, "severity": "high", "cooldown_seconds": 3600});
        let (status, created) = s.admin.post("/alert-rules", rule).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let publish = |name: &str| json!({"event_type": "job.failed", "organization_id": s.organization, "data": {"job": {"name": name}, "error": "disk full"}});
        assert_eq!(
            s.agent.post("/events", publish("report")).await.0,
            StatusCode::ACCEPTED
        );
        assert!(
            alerts(&s.admin, "state=firing").await.is_empty(),
            "another job does not match"
        );
        s.agent.post("/events", publish("backup")).await;
        let firing = alerts(&s.admin, "state=firing").await;
        assert_eq!(firing.len(), 1);
        assert_eq!(firing[0]["rule_name"], "backups failing");
        assert_eq!(firing[0]["severity"], "high");
        let alert_titles: Vec<String> = titles(&viewer)
            .await
            .into_iter()
            .filter(|t| t.contains("backups failing"))
            .collect();
        assert_eq!(alert_titles, ["[HIGH] backups failing — firing"]);
        assert!(
            titles(&auditor).await.is_empty(),
            "auditors do not watch monitoring"
        );
        s.agent.post("/events", publish("backup")).await;
        assert_eq!(
            alerts(&s.admin, "state=firing").await.len(),
            2,
            "the alert is kept"
        );
        let again: Vec<String> = titles(&viewer)
            .await
            .into_iter()
            .filter(|t| t.contains("backups failing"))
            .collect();
        assert_eq!(
            again.len(),
            1,
            "but the cooldown holds back its notifications"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn failed_jobs_and_deployments_notify_in_app() {
    for server in servers().await {
        let s = setup(&server).await;
        let event = json!({"event_type": "deployment.failed", "organization_id": s.organization, "data": {"name": "api v2", "error": "health check failed"}});
        s.agent.post("/events", event).await;
        let (_, list) = s.admin.get("/notifications?category=deployment").await;
        assert_eq!(list["items"][0]["title"], "Deployment failed: api v2");
        assert_eq!(list["items"][0]["message"], "health check failed");
        server.stop().await;
    }
}

#[tokio::test]
async fn acknowledging_and_resolving_follow_the_states() {
    for server in servers().await {
        let s = setup(&server).await;
        let rule = json!({"kind": "event", "organization_id": s.organization, "name": "drift", "event_types": ["drift.detected"], "severity": "medium"});
        s.admin.post("/alert-rules", rule).await;
        s.agent.post("/events", json!({"event_type": "drift.detected", "organization_id": s.organization, "data": {}})).await;
        let id = alerts(&s.admin, "").await[0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let viewer = s
            .admin
            .user_with_roles(&server, "val@example.com", &["viewer"])
            .await;
        assert_eq!(
            viewer
                .post(&format!("/alerts/{id}/acknowledge"), json!({}))
                .await
                .0,
            StatusCode::FORBIDDEN
        );
        let (status, acknowledged) = s
            .admin
            .post(&format!("/alerts/{id}/acknowledge"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{acknowledged}");
        assert_eq!(acknowledged["state"], "acknowledged");
        assert!(acknowledged["acknowledged_by"].is_string());
        assert_eq!(
            s.admin
                .post(&format!("/alerts/{id}/acknowledge"), json!({}))
                .await
                .0,
            StatusCode::CONFLICT
        );
        let (_, resolved) = s
            .admin
            .post(&format!("/alerts/{id}/resolve"), json!({}))
            .await;
        assert_eq!(resolved["state"], "resolved");
        assert_eq!(alerts(&s.admin, "state=resolved").await.len(), 1);
        let (_, notes) = s.admin.get("/notifications?category=alert").await;
        let states: Vec<&str> = notes["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["title"].as_str().unwrap())
            .collect();
        assert_eq!(
            states,
            [
                "[MEDIUM] drift — resolved",
                "[MEDIUM] drift — acknowledged",
                "[MEDIUM] drift — firing"
            ]
        );
        server.stop().await;
    }
}

fn sample(host: &str, value: f64, at: Timestamp) -> Value {
    reading(host, "cpu.usage", value, at)
}

fn reading(host: &str, metric: &str, value: f64, at: Timestamp) -> Value {
    json!({"host_id": host, "samples": [{"metric": metric, "value": value, "at": at}]})
}

#[tokio::test]
async fn a_metric_rule_fires_after_holding_for_its_duration_and_resolves_when_it_stops() {
    for server in servers().await {
        let s = setup(&server).await;
        let rule = json!({"kind": "metric", "organization_id": s.organization, "name": "cpu hot", "metric": "cpu.usage",
            "operator": ">", "threshold": 90, "for_seconds": 60, "severity": "critical"});
        let (status, created) = s.admin.post("/alert-rules", rule).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let now = Timestamp::now();
        let ago = |seconds: u64| now.minus(std::time::Duration::from_secs(seconds));
        assert_eq!(
            s.agent
                .post("/metrics", sample(&s.host, 95.0, ago(100)))
                .await
                .0,
            StatusCode::ACCEPTED
        );
        assert!(
            alerts(&s.admin, "state=firing").await.is_empty(),
            "one hot reading is not enough"
        );
        s.agent
            .post("/metrics", sample(&s.host, 97.5, ago(30)))
            .await;
        let firing = alerts(&s.admin, "state=firing").await;
        assert_eq!(firing.len(), 1, "held for 70 s");
        assert_eq!(
            firing[0]["summary"],
            "cpu.usage 97.5 > 90 on web-1 for 60 s"
        );
        s.agent
            .post("/metrics", sample(&s.host, 98.0, ago(20)))
            .await;
        assert_eq!(
            alerts(&s.admin, "").await.len(),
            1,
            "one open alert per rule and host"
        );
        s.agent
            .post("/metrics", sample(&s.host, 40.0, ago(10)))
            .await;
        assert!(alerts(&s.admin, "state=firing").await.is_empty());
        assert_eq!(alerts(&s.admin, "state=resolved").await.len(), 1);
        server.stop().await;
    }
}

#[tokio::test]
async fn the_evaluation_job_fires_a_rule_whose_condition_outlasts_the_samples() {
    for server in servers().await {
        let s = setup(&server).await;
        let rule = json!({"kind": "metric", "organization_id": s.organization, "name": "disk", "metric": "disk.free",
            "operator": "<", "threshold": 5, "for_seconds": 300, "severity": "high", "host_ids": [s.host]});
        s.admin.post("/alert-rules", rule).await;
        let (status, body) = s
            .agent
            .post(
                "/metrics",
                reading(&s.host, "disk.free", 2.0, Timestamp::now()),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let states: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM alert_metric_states WHERE breaching_since IS NOT NULL",
        )
        .fetch_one(&mut *server.state.store.conn().await.unwrap())
        .await
        .unwrap();
        assert_eq!(states, 1, "the condition holds since the sample");
        spog_server::workers::alert_evaluation::run_once(&server.state, Timestamp::now())
            .await
            .unwrap();
        assert!(alerts(&s.admin, "").await.is_empty());
        let later = Timestamp::now().plus(std::time::Duration::from_secs(301));
        spog_server::workers::alert_evaluation::run_once(&server.state, later)
            .await
            .unwrap();
        assert_eq!(alerts(&s.admin, "state=firing").await.len(), 1);
        server.stop().await;
    }
}

#[tokio::test]
async fn bad_rules_and_samples_are_refused_naming_the_field() {
    for server in servers().await {
        let s = setup(&server).await;
        let base = json!({"organization_id": s.organization, "name": "r", "severity": "low"});
        let with = |extra: Value| {
            let mut body = base.clone();
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            body
        };
        for (body, field) in [
            (with(json!({"kind": "weather"})), "kind"),
            (
                with(json!({"kind": "event", "event_types": ["alert.fired"]})),
                "event_types",
            ),
            (
                with(json!({"kind": "event", "event_types": ["job.failed"], "metric": "cpu"})),
                "metric",
            ),
            (
                with(json!({"kind": "metric", "metric": "cpu", "operator": "~", "threshold": 1})),
                "operator",
            ),
            (
                with(json!({"kind": "metric", "metric": "cpu", "operator": ">"})),
                "threshold",
            ),
            (
                with(
                    json!({"kind": "event", "event_types": ["job.failed"], "severity": "apocalyptic"}),
                ),
                "severity",
            ),
            (
                with(
                    json!({"kind": "event", "event_types": ["job.failed"], "cooldown_seconds": -1}),
                ),
                "cooldown_seconds",
            ),
        ] {
            let (status, error) = s.admin.post("/alert-rules", body.clone()).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {error}");
            assert!(
                error["error"]["details"]["fields"][field].is_string(),
                "{field}: {error}"
            );
        }
        let channel = with(
            json!({"kind": "event", "event_types": ["job.failed"], "channel_ids": ["01a21066-0000-7000-8000-000000000001"]}),
        );
        assert_eq!(
            s.admin.post("/alert-rules", channel).await.0,
            StatusCode::NOT_FOUND
        );
        let good = with(json!({"kind": "event", "event_types": ["job.failed"]}));
        assert_eq!(
            s.admin.post("/alert-rules", good.clone()).await.0,
            StatusCode::CREATED
        );
        assert_eq!(
            s.admin.post("/alert-rules", good).await.0,
            StatusCode::CONFLICT
        );
        let bad_sample = json!({"host_id": s.host, "samples": [{"metric": "cpu", "value": 1}, {"metric": "bad metric!", "value": 2}]});
        let (status, error) = s.agent.post("/metrics", bad_sample).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            error["error"]["details"]["fields"]["samples[1].metric"].is_string(),
            "{error}"
        );
        let foreign_host = json!({"host_id": "01a21066-0000-7000-8000-000000000001", "samples": [{"metric": "cpu", "value": 1}]});
        let (status, error) = s.agent.post("/metrics", foreign_host).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
        server.stop().await;
    }
}

#[tokio::test]
async fn heartbeats_bring_hosts_online_and_silence_takes_them_offline_on_record() {
    for server in servers().await {
        let s = setup(&server).await;
        let (_, host) = s.admin.get(&format!("/hosts/{}", s.host)).await;
        assert_eq!(host["online"], false);
        let (status, beat) = s
            .agent
            .post(&format!("/hosts/{}/heartbeat", s.host), json!({}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{beat}");
        assert_eq!(beat["came_online"], true);
        let (_, again) = s
            .agent
            .post(&format!("/hosts/{}/heartbeat", s.host), json!({}))
            .await;
        assert_eq!(again["came_online"], false);
        let (_, host) = s.admin.get(&format!("/hosts/{}", s.host)).await;
        assert_eq!(host["online"], true);
        assert_eq!(
            spog_server::workers::liveness::run_once(&server.state, Timestamp::now())
                .await
                .unwrap(),
            0
        );
        let later = Timestamp::now().plus(std::time::Duration::from_secs(91));
        assert_eq!(
            spog_server::workers::liveness::run_once(&server.state, later)
                .await
                .unwrap(),
            1
        );
        let (_, host) = s.admin.get(&format!("/hosts/{}", s.host)).await;
        assert_eq!(host["online"], false);
        server.link_audit().await;
        let (_, online) = s.admin.get("/audit-logs?action=host.online").await;
        assert_eq!(online["items"][0]["actor_type"], "agent");
        let (_, offline) = s.admin.get("/audit-logs?action=host.offline").await;
        assert_eq!(offline["items"][0]["actor_type"], "system");
        assert_eq!(offline["items"][0]["source"], "scheduler");
        let (status, _) = s
            .agent
            .post(
                "/hosts/01a21066-0000-7000-8000-000000000001/heartbeat",
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        server.stop().await;
    }
}

#[tokio::test]
async fn one_batch_may_cross_a_threshold_back_and_forth() {
    for server in servers().await {
        let s = setup(&server).await;
        let rule = json!({"kind": "metric", "organization_id": s.organization, "name": "cpu hot", "metric": "cpu.usage",
            "operator": ">", "threshold": 90, "for_seconds": 0, "severity": "high"});
        assert_eq!(
            s.admin.post("/alert-rules", rule).await.0,
            StatusCode::CREATED
        );
        let start = Timestamp::now().minus(std::time::Duration::from_secs(60));
        let samples: Vec<Value> = [95.0, 10.0, 96.0, 11.0, 97.0]
            .iter()
            .enumerate()
            .map(|(i, v)| json!({"metric": "cpu.usage", "value": v, "at": start.plus(std::time::Duration::from_secs(i as u64))}))
            .collect();
        let (status, body) = s
            .agent
            .post("/metrics", json!({"host_id": s.host, "samples": samples}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(alerts(&s.admin, "state=resolved").await.len(), 2);
        assert_eq!(alerts(&s.admin, "state=firing").await.len(), 1);
        server.stop().await;
    }
}
