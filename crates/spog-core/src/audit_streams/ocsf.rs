//! OCSF 1.3.0 events of audit entries (SPEC 3.5 "Formats"): Authentication (3002) for logins
//! and logouts, Account Change (3001) for users and API tokens, API Activity (6003) for the
//! rest.

use serde_json::{Map, Value, json};

use crate::audit::EntryFields;

const IAM: (u32, &str) = (3, "Identity & Access Management");
const APPLICATION: (u32, &str) = (6, "Application Activity");

/// `(class_uid, class_name, category, activity_id, activity_name)` of an entry.
fn classify(
    entry: &EntryFields<'_>,
) -> (u32, &'static str, (u32, &'static str), u32, &'static str) {
    let authentication = |id, name| (3002, "Authentication", IAM, id, name);
    let account_change = |id, name| (3001, "Account Change", IAM, id, name);
    match entry.action {
        "auth.login" => authentication(1, "Logon"),
        "auth.logout" => authentication(2, "Logoff"),
        "user.create" | "api_token.create" => account_change(1, "Create"),
        "user.delete" | "api_token.revoke" => account_change(6, "Delete"),
        "user.update" => {
            let (id, name) = user_update(entry);
            account_change(id, name)
        }
        action => {
            let (id, name) = match action.rsplit(['.', '_']).next().unwrap_or("") {
                "create" => (1, "Create"),
                "export" | "verify" | "checkpoint" => (2, "Read"),
                "update" => (3, "Update"),
                "delete" => (4, "Delete"),
                _ => (99, "Other"),
            };
            (6003, "API Activity", APPLICATION, id, name)
        }
    }
}

fn parsed(text: Option<&str>) -> Option<Value> {
    text.map(|t| serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_owned())))
}

/// What a `user.update` changed: enabled, disabled, roles attached or detached, or (with
/// the credentials it ended and nothing else) the password.
fn user_update(entry: &EntryFields<'_>) -> (u32, &'static str) {
    let (before, after) = (parsed(entry.before), parsed(entry.after));
    let field = |v: &Option<Value>, k: &str| v.as_ref().and_then(|v| v.get(k)).cloned();
    let (was, is) = (field(&before, "active"), field(&after, "active"));
    if was != is {
        return match is {
            Some(Value::Bool(true)) => (2, "Enable"),
            _ => (5, "Disable"),
        };
    }
    let roles = |v: &Option<Value>| -> Vec<Value> {
        field(v, "roles")
            .and_then(|r| r.as_array().cloned())
            .unwrap_or_default()
    };
    let (had, has) = (roles(&before), roles(&after));
    if has.iter().any(|r| !had.contains(r)) {
        return (7, "Attach Policy");
    }
    if had.iter().any(|r| !has.contains(r)) {
        return (8, "Detach Policy");
    }
    if entry.metadata.is_some() {
        return (3, "Password Change");
    }
    (99, "Other")
}

/// Inserts `value` under `key` when it is present.
fn put(object: &mut Map<String, Value>, key: &str, value: Option<impl Into<Value>>) {
    if let Some(value) = value {
        object.insert(key.to_owned(), value.into());
    }
}

fn object(pairs: &[(&str, Option<Value>)]) -> Option<Value> {
    let mut map = Map::new();
    for (key, value) in pairs {
        put(&mut map, key, value.clone());
    }
    (!map.is_empty()).then_some(Value::Object(map))
}

fn text(value: Option<&str>) -> Option<Value> {
    value.map(|v| Value::String(v.to_owned()))
}

/// The entry as an OCSF event. `version` is spog's; `snapshots`: whether before, after and
/// metadata go into `unmapped.spog`.
pub fn ocsf_event(entry: &EntryFields<'_>, version: &str, snapshots: bool) -> Value {
    let (class_uid, class_name, (category_uid, category_name), activity_id, activity_name) =
        classify(entry);
    let failed = entry.outcome == "failure";
    let time = entry.occurred_at.micros() / 1000;
    let mut event = Map::new();
    event.insert("class_uid".into(), json!(class_uid));
    event.insert("class_name".into(), json!(class_name));
    event.insert("category_uid".into(), json!(category_uid));
    event.insert("category_name".into(), json!(category_name));
    event.insert("activity_id".into(), json!(activity_id));
    event.insert("activity_name".into(), json!(activity_name));
    event.insert("type_uid".into(), json!(class_uid * 100 + activity_id));
    event.insert("time".into(), json!(time));
    event.insert("severity_id".into(), json!(if failed { 3 } else { 1 }));
    event.insert("status_id".into(), json!(if failed { 2 } else { 1 }));
    event.insert(
        "status".into(),
        json!(if failed { "Failure" } else { "Success" }),
    );
    let metadata = object(&[
        ("version", Some(json!("1.3.0"))),
        (
            "product",
            Some(json!({"name": "spog", "vendor_name": "SPOG", "version": version})),
        ),
        ("uid", text(Some(entry.id))),
        ("sequence", entry.seq.map(Value::from)),
        ("event_code", text(Some(entry.action))),
        ("tenant_uid", text(Some(entry.account_id))),
        ("correlation_uid", text(entry.request_id)),
        ("original_time", Some(json!(entry.occurred_at))),
        ("log_name", Some(json!("audit"))),
    ]);
    put(&mut event, "metadata", metadata);
    let (type_id, type_name) = match entry.actor_type {
        "user" => (1, "User"),
        "system" => (3, "System"),
        _ => (99, "Other"),
    };
    let actor_user = object(&[
        ("uid", text(entry.actor_id)),
        ("email_addr", text(entry.actor_email)),
        ("name", text(entry.actor_name)),
        ("type_id", Some(json!(type_id))),
        ("type", Some(json!(type_name))),
    ]);
    put(
        &mut event,
        "actor",
        actor_user.clone().map(|user| json!({"user": user})),
    );
    put(
        &mut event,
        "src_endpoint",
        object(&[("ip", text(entry.ip))]),
    );
    put(
        &mut event,
        "http_request",
        object(&[("user_agent", text(entry.user_agent))]),
    );
    let request = object(&[("uid", text(entry.request_id))]);
    put(
        &mut event,
        "api",
        object(&[
            ("operation", text(Some(entry.action))),
            ("service", Some(json!({"name": "spog"}))),
            ("request", request),
        ]),
    );
    let resource = object(&[
        ("uid", text(entry.resource_id)),
        ("name", text(entry.resource_name)),
        ("type", text(Some(entry.resource_type))),
    ]);
    put(&mut event, "resources", resource.map(|r| json!([r])));
    match class_uid {
        3001 => put(
            &mut event,
            "user",
            object(&[
                ("uid", text(entry.resource_id)),
                ("name", text(entry.resource_name)),
            ]),
        ),
        3002 => put(&mut event, "user", actor_user),
        _ => {}
    }
    let (before, after, metadata) = if snapshots {
        (
            parsed(entry.before),
            parsed(entry.after),
            parsed(entry.metadata),
        )
    } else {
        (None, None, None)
    };
    let spog = object(&[
        ("organization_id", text(entry.organization_id)),
        ("source", text(Some(entry.source))),
        ("before", before),
        ("after", after),
        ("metadata", metadata),
        ("prev_hash", text(entry.prev_hash)),
        ("hash", text(entry.hash)),
    ]);
    put(
        &mut event,
        "unmapped",
        spog.map(|spog| json!({"spog": spog})),
    );
    Value::Object(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit_streams::cef::tests::entry;

    #[test]
    fn other_actions_are_api_activity_by_their_last_word() {
        let event = ocsf_event(&entry(), "1.2.3", true);
        assert_eq!(event["class_uid"], 6003);
        assert_eq!(event["category_uid"], 6);
        assert_eq!(event["activity_id"], 3);
        assert_eq!(event["type_uid"], 600303);
        assert_eq!(event["time"], 1_764_064_800_123i64);
        assert_eq!(event["severity_id"], 3);
        assert_eq!(event["status_id"], 2);
        assert_eq!(event["metadata"]["sequence"], 7);
        assert_eq!(event["metadata"]["product"]["version"], "1.2.3");
        assert_eq!(event["actor"]["user"]["type_id"], 1);
        assert_eq!(event["resources"][0]["type"], "webhook");
        assert_eq!(event["unmapped"]["spog"]["before"]["name"], "old");
        assert!(
            event.get("http_request").is_none(),
            "absent values are left out"
        );
        let bare = ocsf_event(&entry(), "1.2.3", false);
        assert!(bare["unmapped"]["spog"].get("before").is_none());
    }

    #[test]
    fn logins_and_account_changes_have_their_classes() {
        let mut login = entry();
        login.action = "auth.login";
        let event = ocsf_event(&login, "1", true);
        assert_eq!(
            (event["class_uid"].clone(), event["activity_id"].clone()),
            (json!(3002), json!(1))
        );
        assert_eq!(event["user"]["email_addr"], "a@example.com");
        let mut disable = entry();
        disable.action = "user.update";
        disable.before = Some("{\"active\":true,\"roles\":[\"viewer\"]}");
        disable.after = Some("{\"active\":false,\"roles\":[\"viewer\"]}");
        let event = ocsf_event(&disable, "1", true);
        assert_eq!(
            (event["class_uid"].clone(), event["activity_id"].clone()),
            (json!(3001), json!(5))
        );
        assert_eq!(event["user"]["uid"], "w1");
        disable.after = Some("{\"active\":true,\"roles\":[\"viewer\",\"admin\"]}");
        assert_eq!(ocsf_event(&disable, "1", true)["activity_id"], 7);
        let mut checkpoint = entry();
        checkpoint.action = "audit_log.checkpoint";
        assert_eq!(ocsf_event(&checkpoint, "1", true)["activity_id"], 2);
    }
}
