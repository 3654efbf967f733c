//! Deleting recordings, legal holds, retention and hosts with recordings (SPEC 8.3).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_core::Timestamp;
use spog_server::testing::{Client, TestServer};
use spog_server::workers::recording_retention;

use crate::desktop::{frame, jpeg};
use crate::terminal::{Setup, setup};
use crate::{servers, servers_with};

/// A terminal session on `setup.host` with one output event; ended unless `active`.
/// Returns the recording.
async fn terminal_recording(setup: &Setup, active: bool) -> Value {
    let (status, session) = setup
        .gateway
        .post(
            "/terminal/sessions",
            json!({"host_id": setup.host, "user_id": setup.user, "shell": "/bin/bash",
                "width": 40, "height": 10}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let session_id = session["id"].as_str().unwrap();
    let (status, body) = setup
        .gateway
        .post(
            &format!("/terminal/sessions/{session_id}/events"),
            json!([[0.1, "o", "hello\r\n"]]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    if !active {
        let (status, body) = setup
            .gateway
            .post(&format!("/terminal/sessions/{session_id}/end"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let recording = session["recording_id"].as_str().unwrap();
    setup
        .admin
        .get(&format!("/terminal/recordings/{recording}"))
        .await
        .1
}

/// An ended desktop recording of one frame.
async fn desktop_recording(setup: &Setup) -> Value {
    let (status, recording) = setup
        .gateway
        .post(
            "/desktop/recordings",
            json!({"host_id": setup.host, "user_id": setup.user, "width": 800, "height": 600}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{recording}");
    let id = recording["id"].as_str().unwrap();
    assert_eq!(
        frame(&setup.gateway, id, "0", jpeg(1, 1000)).await.0,
        StatusCode::OK
    );
    let (status, ended) = setup
        .gateway
        .post(&format!("/desktop/recordings/{id}/end"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    ended
}

async fn put(client: &Client, path: &str, body: Value) -> (StatusCode, Value) {
    client.send(reqwest::Method::PUT, path, Some(body)).await
}

async fn audit(server: &TestServer, admin: &Client, action: &str) -> Vec<Value> {
    server.link_audit().await;
    let (_, entries) = admin.get(&format!("/audit-logs?action={action}")).await;
    entries["items"].as_array().unwrap().clone()
}

/// A user allowed to manage recordings, on hosts granted to them only.
async fn curator(setup: &Setup, server: &TestServer) -> Client {
    let permissions = ["session_recordings.view", "session_recordings.manage"];
    let (status, body) = setup
        .admin
        .post(
            "/roles",
            json!({"name": "curator", "permissions": permissions}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    setup
        .admin
        .user_with_roles(server, "curator@example.com", &["curator"])
        .await
}

#[tokio::test]
async fn a_terminal_recording_is_deleted_by_hand_unless_active_or_held() {
    for server in servers().await {
        let setup = setup(&server).await;
        let recording = terminal_recording(&setup, false).await;
        let id = recording["id"].as_str().unwrap();
        assert_eq!(recording["legal_hold"], false, "{recording}");
        assert_eq!(recording["legal_hold_reason"], Value::Null);
        let file = std::path::PathBuf::from(recording["file_path"].as_str().unwrap());
        assert!(file.exists(), "{}", file.display());
        let path = format!("/terminal/recordings/{id}");
        let hold = format!("{path}/legal-hold");

        // Who may: 401 without a credential, 403 with only `view`, 404 off one's hosts.
        assert_eq!(
            server.anonymous().delete(&path).await.0,
            StatusCode::UNAUTHORIZED
        );
        let auditor = setup
            .admin
            .user_with_roles(&server, "auditor@example.com", &["auditor"])
            .await;
        assert_eq!(auditor.delete(&path).await.0, StatusCode::FORBIDDEN);
        let (status, _) = put(&auditor, &hold, json!({"hold": true, "reason": "x"})).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let curator = curator(&setup, &server).await;
        assert_eq!(curator.delete(&path).await.0, StatusCode::NOT_FOUND);
        let (status, _) = put(&curator, &hold, json!({"hold": true, "reason": "x"})).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let missing = format!("/terminal/recordings/{}", uuid::Uuid::now_v7());
        assert_eq!(setup.admin.delete(&missing).await.0, StatusCode::NOT_FOUND);

        // An active session cannot be deleted.
        let active = terminal_recording(&setup, true).await;
        let (status, body) = setup
            .admin
            .delete(&format!(
                "/terminal/recordings/{}",
                active["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");

        // A hold needs a reason of at most 500 characters.
        for (body, field) in [
            (json!({"hold": true}), "reason"),
            (json!({"hold": true, "reason": "  "}), "reason"),
            (json!({"hold": true, "reason": "x".repeat(501)}), "reason"),
        ] {
            let (status, response) = put(&setup.admin, &hold, body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{response}");
            assert!(
                response["error"]["details"]["fields"][field].is_string(),
                "{response}"
            );
        }
        let (status, _) = put(&setup.admin, &hold, json!({"hold": "yes"})).await;
        assert!(status.is_client_error(), "{status}");
        let (status, held) = put(
            &setup.admin,
            &hold,
            json!({"hold": true, "reason": "case 42"}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{held}");
        assert_eq!(
            (&held["legal_hold"], &held["legal_hold_reason"]),
            (&json!(true), &json!("case 42"))
        );
        let (_, list) = setup.admin.get("/terminal/recordings").await;
        let listed = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap();
        assert_eq!(listed["legal_hold"], true);

        // Held: not deleted, with a code saying why.
        let (status, body) = setup.admin.delete(&path).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"]["code"], "legal_hold");
        assert!(file.exists());

        let (status, released) = put(&setup.admin, &hold, json!({"hold": false})).await;
        assert_eq!(status, StatusCode::OK, "{released}");
        assert_eq!(
            (&released["legal_hold"], &released["legal_hold_reason"]),
            (&json!(false), &Value::Null)
        );

        assert_eq!(setup.admin.delete(&path).await.0, StatusCode::NO_CONTENT);
        assert_eq!(setup.admin.get(&path).await.0, StatusCode::NOT_FOUND);
        assert_eq!(setup.admin.delete(&path).await.0, StatusCode::NOT_FOUND);
        assert!(!file.exists(), "the recording's file is gone");

        let deleted = audit(&server, &setup.admin, "terminal_recording.delete").await;
        assert_eq!(deleted.len(), 1, "{deleted:?}");
        let entry = &deleted[0];
        assert_eq!(entry["resource_type"], "terminal_recording");
        assert_eq!(entry["resource_id"], id);
        assert_eq!(entry["actor_type"], "user");
        assert_eq!(entry["metadata"]["reason"], "manual");
        assert_eq!(entry["before"]["id"], id);
        assert_eq!(entry["before"]["hostname"], "web-1");
        let held = audit(&server, &setup.admin, "terminal_recording.legal_hold").await;
        assert_eq!(held.len(), 1, "{held:?}");
        assert_eq!(held[0]["after"]["legal_hold_reason"], "case 42");
        let released = audit(
            &server,
            &setup.admin,
            "terminal_recording.legal_hold_release",
        )
        .await;
        assert_eq!(released.len(), 1, "{released:?}");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_desktop_recording_is_deleted_with_its_frames_unless_held() {
    for server in servers().await {
        let setup = setup(&server).await;
        let recording = desktop_recording(&setup).await;
        let id = recording["id"].as_str().unwrap();
        let file = std::path::PathBuf::from(recording["file_path"].as_str().unwrap());
        assert!(file.exists(), "{}", file.display());
        let path = format!("/desktop/recordings/{id}");
        let (status, held) = put(
            &setup.admin,
            &format!("{path}/legal-hold"),
            json!({"hold": true, "reason": "audit"}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{held}");
        assert_eq!(held["legal_hold"], true);
        let (status, body) = setup.admin.delete(&path).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (StatusCode::CONFLICT, &json!("legal_hold"))
        );
        put(
            &setup.admin,
            &format!("{path}/legal-hold"),
            json!({"hold": false}),
        )
        .await;
        assert_eq!(setup.admin.delete(&path).await.0, StatusCode::NO_CONTENT);
        assert_eq!(setup.admin.get(&path).await.0, StatusCode::NOT_FOUND);
        assert!(!file.exists(), "the frames are gone");
        assert!(!file.with_extension("index").exists(), "the index is gone");
        let deleted = audit(&server, &setup.admin, "desktop_recording.delete").await;
        assert_eq!(deleted.len(), 1, "{deleted:?}");
        assert_eq!(deleted[0]["metadata"]["reason"], "manual");
        assert_eq!(deleted[0]["before"]["id"], id);
        assert_eq!(
            audit(&server, &setup.admin, "desktop_recording.legal_hold")
                .await
                .len(),
            1
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn recording_settings_are_read_with_view_and_changed_with_manage() {
    for server in servers().await {
        let setup = setup(&server).await;
        assert_eq!(
            server.anonymous().get("/recording-settings").await.0,
            StatusCode::UNAUTHORIZED
        );
        let auditor = setup
            .admin
            .user_with_roles(&server, "auditor@example.com", &["auditor"])
            .await;
        let (status, settings) = auditor.get("/recording-settings").await;
        assert_eq!(status, StatusCode::OK, "{settings}");
        assert_eq!(
            settings,
            json!({"retention_days": null, "default_retention": "forever"})
        );
        let (status, _) = auditor
            .patch("/recording-settings", json!({"retention_days": 30}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        for days in [json!(0), json!(36_501), json!(-1)] {
            let (status, body) = setup
                .admin
                .patch("/recording-settings", json!({"retention_days": days}))
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert!(
                body["error"]["details"]["fields"]["retention_days"].is_string(),
                "{body}"
            );
        }
        let (status, _) = setup
            .admin
            .patch("/recording-settings", json!({"retention_days": "30d"}))
            .await;
        assert!(status.is_client_error(), "{status}");

        let (status, settings) = setup
            .admin
            .patch("/recording-settings", json!({"retention_days": 30}))
            .await;
        assert_eq!(status, StatusCode::OK, "{settings}");
        assert_eq!(settings["retention_days"], 30);
        // A field left out keeps its value; null returns to the service's default.
        let (_, settings) = setup.admin.patch("/recording-settings", json!({})).await;
        assert_eq!(settings["retention_days"], 30);
        assert_eq!(
            auditor.get("/recording-settings").await.1["retention_days"],
            30
        );
        let (_, settings) = setup
            .admin
            .patch("/recording-settings", json!({"retention_days": null}))
            .await;
        assert_eq!(settings["retention_days"], Value::Null);

        let entries = audit(&server, &setup.admin, "recording_settings.update").await;
        assert_eq!(entries.len(), 3, "{entries:?}");
        // Newest first: back to the default, from 30 days.
        assert_eq!(entries[0]["before"]["retention_days"], 30);
        assert_eq!(entries[0]["after"]["retention_days"], Value::Null);
        server.stop().await;
    }
}

#[tokio::test]
async fn the_retention_job_deletes_old_recordings_but_not_held_young_or_active_ones() {
    let hour = Duration::from_secs(3600);
    for server in servers_with(|config| config.recording_retention = Some(hour)).await {
        let setup = setup(&server).await;
        let old = terminal_recording(&setup, false).await;
        let held = terminal_recording(&setup, false).await;
        let active = terminal_recording(&setup, true).await;
        let desktop = desktop_recording(&setup).await;
        let (status, body) = put(
            &setup.admin,
            &format!(
                "/terminal/recordings/{}/legal-hold",
                held["id"].as_str().unwrap()
            ),
            json!({"hold": true, "reason": "litigation"}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");

        // Young: kept.
        let now = Timestamp::now();
        assert_eq!(
            recording_retention::run_once(&server.state, now)
                .await
                .unwrap(),
            0
        );
        // Past the service's retention (the account sets none); instances racing delete each
        // once.
        let later = now.plus(2 * hour);
        let (one, other) = tokio::join!(
            recording_retention::run_once(&server.state, later),
            recording_retention::run_once(&server.state, later)
        );
        assert_eq!(one.unwrap() + other.unwrap(), 2);
        let ids = |list: Value| -> Vec<String> {
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned())
                .collect()
        };
        let terminal = ids(setup.admin.get("/terminal/recordings").await.1);
        assert!(!terminal.contains(&old["id"].as_str().unwrap().to_owned()));
        assert!(terminal.contains(&held["id"].as_str().unwrap().to_owned()));
        assert!(terminal.contains(&active["id"].as_str().unwrap().to_owned()));
        assert_eq!(
            ids(setup.admin.get("/desktop/recordings").await.1),
            Vec::<String>::new()
        );
        let file = old["file_path"].as_str().unwrap();
        assert!(!std::path::Path::new(file).exists(), "{file}");
        let _ = desktop;

        let entries = audit(&server, &setup.admin, "terminal_recording.delete").await;
        assert_eq!(entries.len(), 1, "{entries:?}");
        let entry = &entries[0];
        assert_eq!(entry["resource_id"], old["id"]);
        assert_eq!(entry["actor_type"], "system");
        assert_eq!(entry["source"], "scheduler");
        assert_eq!(entry["metadata"]["reason"], "retention");
        assert_eq!(entry["before"]["id"], old["id"]);
        assert_eq!(
            audit(&server, &setup.admin, "desktop_recording.delete")
                .await
                .len(),
            1
        );

        // The account's own retention replaces the service's.
        setup
            .admin
            .patch("/recording-settings", json!({"retention_days": 30}))
            .await;
        let recent = terminal_recording(&setup, false).await;
        let day = 24 * hour;
        assert_eq!(
            recording_retention::run_once(&server.state, now.plus(2 * day))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            recording_retention::run_once(&server.state, now.plus(31 * day))
                .await
                .unwrap(),
            1
        );
        let terminal = ids(setup.admin.get("/terminal/recordings").await.1);
        assert!(!terminal.contains(&recent["id"].as_str().unwrap().to_owned()));
        assert!(terminal.contains(&held["id"].as_str().unwrap().to_owned()));

        let (_, health) = setup.admin.get("/system/health").await;
        assert_eq!(
            health["workers"][recording_retention::NAME]["running"],
            true,
            "{health}"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn by_default_recordings_are_kept_forever() {
    for server in servers().await {
        let setup = setup(&server).await;
        let recording = terminal_recording(&setup, false).await;
        let far = Timestamp::now().plus(Duration::from_secs(100 * 365 * 86_400));
        assert_eq!(
            recording_retention::run_once(&server.state, far)
                .await
                .unwrap(),
            0
        );
        let path = format!("/terminal/recordings/{}", recording["id"].as_str().unwrap());
        assert_eq!(setup.admin.get(&path).await.0, StatusCode::OK);
        server.stop().await;
    }
}

#[tokio::test]
async fn a_host_with_recordings_is_deleted_and_its_recordings_stay() {
    for server in servers().await {
        let setup = setup(&server).await;
        let ended = terminal_recording(&setup, false).await;
        let active = terminal_recording(&setup, true).await;
        let desktop = desktop_recording(&setup).await;
        let granted = setup
            .admin
            .user_with_roles(&server, "auditor@example.com", &["auditor"])
            .await;
        let (_, me) = granted.get("/auth/me").await;
        let grant = format!(
            "/hosts/{}/access/{}",
            setup.host,
            me["user_id"].as_str().unwrap()
        );
        assert_eq!(
            setup.admin.post(&grant, json!({})).await.0,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            granted.get("/terminal/recordings").await.1["items"]
                .as_array()
                .unwrap()
                .len(),
            2
        );

        let (status, body) = setup.admin.delete(&format!("/hosts/{}", setup.host)).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        assert_eq!(
            setup.admin.get(&format!("/hosts/{}", setup.host)).await.0,
            StatusCode::NOT_FOUND
        );

        // Its session ended as the host went; its recordings keep its id and hostname.
        let (status, list) = setup
            .admin
            .get(&format!("/terminal/recordings?host_id={}", setup.host))
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let items = list["items"].as_array().unwrap();
        assert_eq!(items.len(), 2, "{list}");
        for item in items {
            assert_eq!(item["hostname"], "web-1");
            assert_eq!(item["host_id"], setup.host.as_str());
        }
        let (status, session) = setup
            .admin
            .get(&format!(
                "/terminal/recordings/{}",
                active["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{session}");
        assert_eq!(session["end_reason"], "host_deleted");
        assert_eq!(
            setup.admin.get("/terminal/sessions").await.1["items"],
            json!([])
        );
        let path = format!(
            "/terminal/recordings/{}/cast",
            ended["id"].as_str().unwrap()
        );
        assert_eq!(setup.admin.get(&path).await.0, StatusCode::OK);
        let (status, shown) = setup
            .admin
            .get(&format!(
                "/desktop/recordings/{}",
                desktop["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(
            (status, &shown["hostname"]),
            (StatusCode::OK, &json!("web-1"))
        );

        // Its grants went with it: a user who saw it through one sees its recordings no more.
        assert_eq!(
            granted.get("/terminal/recordings").await.1["items"],
            json!([])
        );
        let path = format!("/terminal/recordings/{}", ended["id"].as_str().unwrap());
        assert_eq!(granted.get(&path).await.0, StatusCode::NOT_FOUND);

        // Recording for the deleted host is refused, naming the host.
        let (status, body) = setup
            .gateway
            .post(
                "/terminal/sessions",
                json!({"host_id": setup.host, "user_id": setup.user, "shell": "sh",
                    "width": 40, "height": 10}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        server.stop().await;
    }
}

#[tokio::test]
async fn notifications_and_resolved_alerts_are_deleted_past_their_retention_on_record() {
    use spog_server::workers::retention;
    for server in servers().await {
        let s = crate::alerts::setup(&server).await;
        for event_type in ["drift.detected", "job.failed"] {
            let rule = json!({"kind": "event", "organization_id": s.organization,
                "name": event_type, "event_types": [event_type], "severity": "medium"});
            assert_eq!(
                s.admin.post("/alert-rules", rule).await.0,
                StatusCode::CREATED
            );
            let event = json!({"event_type": event_type,
                "organization_id": s.organization, "data": {}});
            assert_eq!(s.agent.post("/events", event).await.0, StatusCode::ACCEPTED);
        }
        let alerts = crate::alerts::alerts(&s.admin, "").await;
        assert_eq!(alerts.len(), 2);
        let resolved = alerts[0]["id"].as_str().unwrap();
        s.admin
            .post(&format!("/alerts/{resolved}/resolve"), json!({}))
            .await;
        let note = json!({"category": "job", "severity": "high", "title": "backup failed",
            "message": "it failed", "broadcast": true});
        assert_eq!(
            s.admin.post("/notifications", note).await.0,
            StatusCode::CREATED
        );
        let sent = s.admin.get("/notifications").await.1["items"]
            .as_array()
            .unwrap()
            .len();
        assert!(sent >= 1);

        let now = Timestamp::now();
        let config = &server.state.config;
        assert_eq!(
            retention::run_once(&server.state, now).await.unwrap(),
            (0, 0)
        );
        let later = now.plus(config.notification_retention + Duration::from_secs(1));
        let (notifications, alerts) = retention::run_once(&server.state, later).await.unwrap();
        assert_eq!((notifications, alerts), (sent, 0));
        assert_eq!(s.admin.get("/notifications").await.1["items"], json!([]));
        let later = now.plus(config.alert_retention + Duration::from_secs(1));
        assert_eq!(
            retention::run_once(&server.state, later).await.unwrap(),
            (0, 1)
        );
        let left = crate::alerts::alerts(&s.admin, "").await;
        assert_eq!(left.len(), 1);
        assert_ne!(left[0]["id"], resolved);

        let entries = audit(&server, &s.admin, "alert.delete").await;
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(entries[0]["resource_id"], resolved);
        assert_eq!(entries[0]["actor_type"], "system");
        assert_eq!(entries[0]["source"], "scheduler");
        assert_eq!(entries[0]["metadata"]["reason"], "retention");
        assert_eq!(entries[0]["before"]["state"], "resolved");
        let entries = audit(&server, &s.admin, "notification.delete").await;
        assert_eq!(entries.len(), sent, "{entries:?}");
        let (_, health) = s.admin.get("/system/health").await;
        assert_eq!(
            health["workers"][retention::NAME]["running"],
            true,
            "{health}"
        );
        server.stop().await;
    }
}
