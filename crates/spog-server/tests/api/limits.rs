//! Hostile lists and text (issue 12, items 8 and 15): every list a request gives is bounded
//! and kept once per item, and no string with a NUL or a control character reaches the
//! database; each is refused with 422 naming the field, never a 500.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_server::testing::Client;

use crate::servers;

async fn organization(admin: &Client) -> String {
    let (_, orgs) = admin.get("/organizations").await;
    orgs[0]["id"].as_str().unwrap().to_owned()
}

fn uuids(n: usize) -> Vec<String> {
    (0..n).map(|_| uuid::Uuid::now_v7().to_string()).collect()
}

/// Asserts a 422 whose details name `field` with `message` (or any message when empty).
fn refused(status: StatusCode, body: &Value, field: &str, message: &str) {
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {body}");
    let said = body["error"]["details"]["fields"][field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} not named: {body}"));
    assert!(said.contains(message), "{field}: {said}");
}

#[tokio::test]
async fn a_rule_naming_forty_thousand_channels_or_200000_hosts_is_refused_at_once() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = organization(&admin).await;
        let channels = json!({"kind": "event", "organization_id": org, "name": "wide",
            "severity": "low", "event_types": ["job.failed"], "channel_ids": uuids(40_000)});
        let (status, body) = admin.post("/alert-rules", channels).await;
        refused(status, &body, "channel_ids", "at most 50 items");

        let started = Instant::now();
        let hosts = json!({"kind": "metric", "organization_id": org, "name": "wide",
            "severity": "low", "metric": "cpu", "operator": ">", "threshold": 90,
            "host_ids": uuids(200_000)});
        let (status, body) = admin.post("/alert-rules", hosts).await;
        refused(status, &body, "host_ids", "at most 1000 items");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );

        let (_, rules) = admin.get("/alert-rules").await;
        assert_eq!(rules["items"], json!([]), "nothing half-written");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_list_naming_an_item_twice_keeps_it_once() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = organization(&admin).await;
        let (_, host) = admin
            .post(
                "/hosts",
                json!({"organization_id": org, "hostname": "web-1"}),
            )
            .await;
        let host = host["id"].as_str().unwrap();
        let (status, channel) = admin
            .post(
                "/notification-channels",
                json!({"organization_id": org, "name": "Hook", "type": "webhook",
                       "config": {"url": "https://hooks.example.com/in"}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{channel}");
        let channel = channel["id"].as_str().unwrap();
        let (status, rule) = admin
            .post(
                "/alert-rules",
                json!({"kind": "metric", "organization_id": org, "name": "hot", "severity": "low",
                       "metric": "cpu", "operator": ">", "threshold": 90,
                       "host_ids": [host, host, host], "channel_ids": [channel, channel]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{rule}");
        assert_eq!(rule["channel_ids"], json!([channel]));
        assert_eq!(rule["host_ids"], json!([host]));

        // A host of no organization of the rule's is named by its place in the list.
        let stranger = uuid::Uuid::now_v7().to_string();
        let (status, body) = admin
            .patch(
                &format!("/alert-rules/{}", rule["id"].as_str().unwrap()),
                json!({"host_ids": [host, stranger]}),
            )
            .await;
        refused(status, &body, "host_ids[1]", "not a host");

        // A user's roles and identities, repeats and all, are written in one go; an identity
        // another user holds is still a conflict, and nothing of the user is written.
        let identities: Vec<Value> = (0..20)
            .map(|i| json!({"provider": "idp", "subject": format!("s{}", i % 10)}))
            .collect();
        let (status, user) = admin
            .post(
                "/users",
                json!({"email": "many@example.com", "roles": ["viewer", "operator", "viewer"],
                       "identities": identities}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{user}");
        assert_eq!(user["roles"].as_array().unwrap().len(), 2, "{user}");
        assert_eq!(user["identities"].as_array().unwrap().len(), 10, "{user}");
        let (status, body) = admin
            .post(
                "/users",
                json!({"email": "thief@example.com", "identities": [{"provider": "idp", "subject": "s3"}]}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        let (_, thief) = admin.get("/users?limit=500").await;
        assert!(!thief.to_string().contains("thief@example.com"));

        let (status, role) = admin
            .post(
                "/roles",
                json!({"name": "twice", "permissions": ["monitoring.view", "monitoring.view"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{role}");
        assert_eq!(role["permissions"], json!(["monitoring.view"]));
        server.stop().await;
    }
}

#[tokio::test]
async fn every_list_field_of_the_api_is_bounded_and_named() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = organization(&admin).await;
        let names = |n: usize| (0..n).map(|i| format!("name-{i}")).collect::<Vec<_>>();
        let headers: serde_json::Map<String, Value> =
            (0..21).map(|i| (format!("X-H{i}"), json!("v"))).collect();
        let identities: Vec<Value> = (0..21)
            .map(|i| json!({"provider": "idp", "subject": format!("s{i}")}))
            .collect();
        let entry = json!({"action": "job.run", "resource_type": "job", "outcome": "success"});
        let sample = json!({"metric": "cpu", "value": 1.0});
        let (_, host) = admin
            .post(
                "/hosts",
                json!({"organization_id": org, "hostname": "web-1"}),
            )
            .await;
        let writer = admin
            .token_client("agent", &["audit_logs.write", "events.publish"])
            .await;
        let cases = [
            (
                &admin,
                "/roles",
                json!({"name": "r", "permissions": names(51)}),
                "permissions",
            ),
            (
                &admin,
                "/api-tokens",
                json!({"name": "t", "actor_type": "agent", "permissions": names(51)}),
                "permissions",
            ),
            (
                &admin,
                "/users",
                json!({"email": "a@example.com", "roles": names(51)}),
                "roles",
            ),
            (
                &admin,
                "/users",
                json!({"email": "a@example.com", "identities": identities}),
                "identities",
            ),
            (
                &admin,
                "/webhooks",
                json!({"organization_id": org, "name": "w", "url": "https://hooks.example.com/",
                "event_types": names(51)}),
                "event_types",
            ),
            (
                &admin,
                "/webhooks",
                json!({"organization_id": org, "name": "w", "url": "https://hooks.example.com/",
                "event_types": ["job.failed"], "headers": headers}),
                "headers",
            ),
            (
                &admin,
                "/alert-rules",
                json!({"kind": "event", "organization_id": org, "name": "r", "severity": "low",
                "event_types": names(51)}),
                "event_types",
            ),
            (
                &admin,
                "/alert-rules",
                json!({"kind": "event", "organization_id": org, "name": "r", "severity": "low",
                "event_types": ["job.failed"], "match": (0..51).map(|i| (format!("k{i}"), json!(1))).collect::<serde_json::Map<_, _>>()}),
                "match",
            ),
            (
                &writer,
                "/audit-logs/batch",
                json!({"entries": vec![entry; 1001]}),
                "entries",
            ),
            (
                &writer,
                "/metrics",
                json!({"host_id": host["id"], "samples": vec![sample; 10_001]}),
                "samples",
            ),
        ];
        for (client, path, body, field) in cases {
            let (status, answer) = client.post(path, body).await;
            refused(status, &answer, field, "at most");
        }
        server.stop().await;
    }
}

#[test]
fn the_openapi_document_states_each_lists_bound() {
    {
        let (_, openapi) = spog_server::app::api();
        let document = serde_json::to_value(&openapi).unwrap();
        let schemas = &document["components"]["schemas"];
        // A field's schema, following its `$ref` (through `oneOf` with null when optional).
        let resolve = |field: &Value| {
            let reference = field["$ref"]
                .as_str()
                .or_else(|| field["oneOf"][1]["$ref"].as_str())
                .unwrap_or_else(|| panic!("a reference: {field}"));
            schemas[reference.rsplit('/').next().unwrap()].clone()
        };
        let rule = &schemas["RuleBody"]["properties"];
        assert_eq!(resolve(&rule["channel_ids"])["maxItems"], 50, "{rule}");
        assert_eq!(resolve(&rule["host_ids"])["maxItems"], 1000, "{rule}");
        assert_eq!(resolve(&rule["match"])["maxProperties"], 50, "{rule}");
        let batch = &schemas["IngestBatch"]["properties"];
        assert_eq!(resolve(&batch["entries"])["maxItems"], 1000, "{batch}");
    }
}

#[tokio::test]
async fn nul_and_control_characters_are_refused_naming_the_field() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = organization(&admin).await;
        let writer = admin
            .token_client("agent", &["audit_logs.write", "events.publish"])
            .await;
        let job = |extra: Value| {
            let mut body =
                json!({"action": "job.run", "resource_type": "job", "outcome": "success"});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            body
        };
        let cases = [
            (
                &admin,
                "/organizations",
                json!({"name": "Research\u{0}"}),
                "name",
            ),
            (
                &admin,
                "/organizations",
                json!({"name": "Bell\u{7}"}),
                "name",
            ),
            (
                &admin,
                "/roles",
                json!({"name": "r", "description": "a\u{0}b", "permissions": []}),
                "description",
            ),
            (
                &writer,
                "/audit-logs",
                job(json!({"resource_name": "nightly\u{0}"})),
                "resource_name",
            ),
            (
                &writer,
                "/audit-logs",
                job(json!({"resource_id": "line\nbreak"})),
                "resource_id",
            ),
            (
                &writer,
                "/audit-logs",
                job(json!({"metadata": {"a": {"b": ["ok", "x\u{0}"]}}})),
                "metadata.a.b[1]",
            ),
            (
                &writer,
                "/audit-logs",
                job(json!({"after": {"esc": "\u{1b}[31m"}})),
                "after.esc",
            ),
            (
                &writer,
                "/audit-logs/batch",
                json!({"entries": [job(json!({})), job(json!({"before": {"k": "\u{0}"}}))]}),
                "entries[1].before.k",
            ),
            (
                &writer,
                "/events",
                json!({"event_type": "job.failed", "organization_id": org, "data": {"job": "x\u{0}"}}),
                "data.job",
            ),
        ];
        for (client, path, body, field) in cases {
            let (status, answer) = client.post(path, body).await;
            refused(status, &answer, field, "control characters");
        }
        for query in ["q=%00", "actor_email=a%00b", "action=job.%01run"] {
            let (status, answer) = admin.get(&format!("/audit-logs?{query}")).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{query}: {answer}"
            );
        }

        // Lines and tabs are text, and arrive as they were sent.
        let (status, entry) = writer
            .post(
                "/audit-logs",
                job(json!({"metadata": {"output": "line 1\n\tline 2\r\n"}})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{entry}");
        server.link_audit().await;
        let (_, stored) = admin
            .get(&format!("/audit-logs/{}", entry["id"].as_str().unwrap()))
            .await;
        assert_eq!(stored["metadata"]["output"], "line 1\n\tline 2\r\n");
        let (_, orgs) = admin.get("/organizations").await;
        assert_eq!(orgs.as_array().unwrap().len(), 1, "nothing half-written");
        server.stop().await;
    }
}
