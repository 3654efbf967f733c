//! Silences (SPEC 7.4): a silenced alert fires and is recorded but reaches no channel and no
//! one in-app; expiring the silence notifies it then, once.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_core::Timestamp;

use crate::alerts::{alerts, setup};
use crate::receiver::{Answer, Receiver};
use crate::servers;

const WAIT: Duration = Duration::from_secs(10);

fn in_an_hour() -> String {
    Timestamp::from_micros(Timestamp::now().micros() + 3_600_000_000).to_string()
}

#[tokio::test]
async fn bad_silences_are_refused_naming_the_field() {
    for server in servers().await {
        let s = setup(&server).await;
        let org = s.organization.clone();
        let good = json!({"organization_id": org, "ends_at": in_an_hour(), "comment": "deploy",
            "matchers": [{"name": "severity", "op": "=", "value": "high"}]});
        let with = |key: &str, value: Value| {
            let mut body = good.clone();
            body[key] = value;
            body
        };
        let past = Timestamp::from_micros(Timestamp::now().micros() - 1_000_000).to_string();
        let far =
            Timestamp::from_micros(Timestamp::now().micros() + 400 * 86_400_000_000).to_string();
        for (body, field) in [
            (with("matchers", json!([])), "matchers"),
            (
                with(
                    "matchers",
                    json!([{"name": "colour", "op": "=", "value": "x"}]),
                ),
                "matchers[0].name",
            ),
            (
                with(
                    "matchers",
                    json!([{"name": "kind", "op": "=", "value": "event"},
                                     {"name": "kind", "op": "~", "value": "x"}]),
                ),
                "matchers[1].op",
            ),
            (
                with(
                    "matchers",
                    json!([{"name": "hostname", "op": "=~", "value": "web-("}]),
                ),
                "matchers[0].value",
            ),
            (with("ends_at", json!(past)), "ends_at"),
            (with("ends_at", json!(far)), "ends_at"),
            (with("comment", json!("  ")), "comment"),
        ] {
            let (status, answer) = s.admin.post("/silences", body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
            assert!(
                answer.to_string().contains(&format!("\"{field}\"")),
                "{field}: {answer}"
            );
        }
        let mut elsewhere = good.clone();
        elsewhere["organization_id"] = json!(spog_core::Id::<()>::new());
        let (status, answer) = s.admin.post("/silences", elsewhere).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert!(answer.to_string().contains("organization_id"), "{answer}");
        let (_, listed) = s.admin.get("/silences").await;
        assert!(
            listed["items"].as_array().unwrap().is_empty(),
            "nothing half-written"
        );

        let (status, created) = s.admin.post("/silences", good.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["state"], "active");
        assert_eq!(created["created_by"]["email"], "admin@example.com");
        let id = created["id"].as_str().unwrap();
        let (status, _) = s
            .admin
            .patch(&format!("/silences/{id}"), json!({"ends_at": past}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let viewer = s
            .admin
            .user_with_roles(&server, "v@example.com", &["viewer"])
            .await;
        assert_eq!(
            viewer.get(&format!("/silences/{id}")).await.0,
            StatusCode::OK
        );
        assert_eq!(
            viewer.post("/silences", good).await.0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            viewer
                .post(&format!("/silences/{id}/expire"), json!({}))
                .await
                .0,
            StatusCode::FORBIDDEN
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn a_silenced_alert_is_recorded_without_notifying_until_the_silence_is_expired() {
    for server in servers().await {
        let s = setup(&server).await;
        let org = s.organization.clone();
        let receiver = Receiver::start(Answer::Status(200)).await;
        let (status, channel) = s
            .admin
            .post(
                "/notification-channels",
                json!({"organization_id": org, "name": "ops hook", "type": "webhook",
                   "config": {"url": receiver.url("/alerts")}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{channel}");
        for (name, job) in [("backups failing", "backup"), ("reports failing", "report")] {
            let rule = json!({"kind": "event", "organization_id": org, "name": name,
                "event_types": ["job.failed"], "match": {"job.name": job}, "severity": "high",
                "cooldown_seconds": 0, "channel_ids": [channel["id"]]});
            let (status, rule) = s.admin.post("/alert-rules", rule).await;
            assert_eq!(status, StatusCode::CREATED, "{rule}");
        }
        let (status, silence) = s
            .admin
            .post(
                "/silences",
                json!({"organization_id": org,
            "ends_at": in_an_hour(), "comment": "backup maintenance",
            "matchers": [{"name": "rule_name", "op": "=~", "value": "backups.*"},
                         {"name": "severity", "op": "!=", "value": "low"}]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{silence}");
        let silence_id = silence["id"].as_str().unwrap().to_owned();

        let publish = |job: &str| {
            json!({"event_type": "job.failed", "organization_id": org,
            "data": {"job": {"name": job}, "error": "disk full"}})
        };
        s.agent.post("/events", publish("backup")).await;
        s.agent.post("/events", publish("report")).await;

        let firing = alerts(&s.admin, "state=firing").await;
        assert_eq!(firing.len(), 2, "both alerts are recorded");
        let silenced = firing
            .iter()
            .find(|a| a["rule_name"] == "backups failing")
            .unwrap();
        assert_eq!(
            silenced["suppressed_by"],
            json!([{"type": "silence", "id": silence_id}])
        );
        assert_eq!(silenced["notified_at"], Value::Null);
        let loud = firing
            .iter()
            .find(|a| a["rule_name"] == "reports failing")
            .unwrap();
        assert_eq!(loud["suppressed_by"], json!([]));
        assert!(loud["notified_at"].is_string());

        let delivered = receiver.wait_for(1, WAIT).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let delivered_now = receiver.received();
        assert_eq!(
            delivered_now.len(),
            1,
            "only the alert no silence matches reaches the channel"
        );
        assert!(String::from_utf8_lossy(&delivered[0].body).contains("reports failing"));
        let (_, notifications) = s.admin.get("/notifications").await;
        let titles = notifications.to_string();
        assert!(titles.contains("reports failing"), "{titles}");
        assert!(
            !titles.contains("backups failing"),
            "no in-app notification: {titles}"
        );
        let fired: Vec<String> = {
            let mut conn = server.state.store.conn().await.unwrap();
            sqlx::query_scalar("SELECT data FROM events WHERE event_type = 'alert.fired'")
                .fetch_all(&mut *conn)
                .await
                .unwrap()
        };
        let suppressed = fired
            .iter()
            .filter(|d| d.contains("\"suppressed\":true"))
            .count();
        assert_eq!(
            (fired.len(), suppressed),
            (2, 1),
            "the event is still published: {fired:?}"
        );
        let (_, audit) = s.admin.get("/audit-logs?action=alert.fire").await;
        assert!(
            audit.to_string().contains(&silence_id),
            "alert.fire lists suppressed_by: {audit}"
        );

        let (status, expired) = s
            .admin
            .post(&format!("/silences/{silence_id}/expire"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{expired}");
        assert_eq!(expired["state"], "expired");
        let delivered = receiver.wait_for(2, WAIT).await;
        assert!(String::from_utf8_lossy(&delivered[1].body).contains("backups failing"));
        assert_eq!(
            s.admin
                .post(&format!("/silences/{silence_id}/expire"), json!({}))
                .await
                .0,
            StatusCode::CONFLICT
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(receiver.received().len(), 2, "it notifies once");
        let (_, listed) = s
            .admin
            .get(&format!("/silences?state=expired&organization_id={org}"))
            .await;
        assert_eq!(listed["items"].as_array().unwrap().len(), 1);
        let (_, listed) = s.admin.get("/silences?state=active").await;
        assert!(listed["items"].as_array().unwrap().is_empty());

        let unknown = spog_core::Id::<()>::new();
        assert_eq!(
            s.admin.get(&format!("/silences/{unknown}")).await.0,
            StatusCode::NOT_FOUND
        );
        server.stop().await;
    }
}
