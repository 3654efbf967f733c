//! `POST /notification-channels/{id}/preview` and `POST /alert-rules/{id}/preview` (SPEC 7.4):
//! what a channel would send for a sample alert, a stored alert or an event, built by the code
//! that builds a delivery and never sent, recorded or audited. Write-only parts stay hidden:
//! the target URL shows its scheme and host only, configured header values are `[redacted]`,
//! and signatures, made at send time, are `[signed at send time]`.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Map, Value, json};
use spog_core::alerts::{Alert, AlertRule, AlertState, Condition};
use spog_core::channels::{Channel, ChannelType, Notice};
use spog_core::notification::Severity;
use spog_core::{Id, Timestamp};
use spog_store::alerting::{alerts, rules};
use spog_store::channels::{self as store, StoredChannel};
use utoipa::ToSchema;

use crate::auth::Require;
use crate::auth::permissions::MonitoringView;
use crate::delivery::Outgoing;
use crate::delivery::channel::outgoing;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AppJson, AppPath};
use crate::state::AppState;

/// What a channel would send.
#[derive(Serialize, ToSchema)]
pub struct ChannelPreview {
    pub channel_id: Id<Channel>,
    #[serde(rename = "type")]
    pub channel_type: ChannelType,
    pub notice: PreviewNotice,
    /// For HTTP channels (webhook, Slack, Teams).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<PreviewHttp>,
    /// For email channels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<PreviewEmail>,
}

#[derive(Serialize, ToSchema)]
pub struct PreviewNotice {
    pub subject: String,
    pub message: String,
    pub severity: Severity,
    pub source: String,
}

#[derive(Serialize, ToSchema)]
pub struct PreviewHttp {
    pub method: &'static str,
    pub url: String,
    /// `[name, value]` pairs in the order sent.
    pub headers: Vec<(String, String)>,
    #[schema(value_type = Object)]
    pub body: Value,
}

#[derive(Serialize, ToSchema)]
pub struct PreviewEmail {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The previews of every channel a rule notifies.
#[derive(Serialize, ToSchema)]
pub struct RulePreview {
    pub channels: Vec<ChannelPreview>,
}

/// Headers whose values the service itself sets and shows.
const SHOWN_HEADERS: [&str; 5] = [
    "content-type",
    "x-webhook-event",
    "x-webhook-delivery",
    "webhook-id",
    "webhook-timestamp",
];
const PREVIEW_ID: &str = "preview";

/// Show what the channel would send for exactly one of `{"alert": {...}}` (a sample alert:
/// `rule_name`, `severity`, `state`?, `summary`?, `hostname`?, `metric`?, `value`?,
/// `threshold`?, `operator`?), `{"alert_id"}` (a stored alert) or `{"event": {"event_type",
/// "data"}}`. Nothing is sent.
#[utoipa::path(post, path = "/notification-channels/{id}/preview", tag = "channels",
    params(("id" = String, Path)), request_body(content = Object),
    responses((status = 200, body = ChannelPreview)))]
pub(super) async fn preview_channel(
    State(state): State<AppState>,
    auth: Require<MonitoringView>,
    AppPath(id): AppPath<Id<Channel>>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> ApiResult<Json<ChannelPreview>> {
    let mut conn = state.store.conn().await?;
    let stored = store::get_stored(&mut conn, auth.account(), id).await?;
    let now = Timestamp::now();
    let notice = match one_of(&body)? {
        ("alert", sample) => sample_notice(sample, now)?,
        ("alert_id", id) => {
            let id = id
                .as_str()
                .and_then(|id| id.parse::<Id<Alert>>().ok())
                .ok_or_else(|| ApiError::field("alert_id", "must be an alert id"))?;
            let alert = alerts::get(&mut conn, auth.account(), id)
                .await
                .map_err(|_| ApiError::field("alert_id", "is not an alert of this account"))?;
            let data = alert.event_data(now);
            Notice::from_event(alert.state.event_type().as_str(), &data, now)
        }
        ("event", event) => event_notice(event, now)?,
        _ => {
            return Err(ApiError::field(
                "alerts",
                "grouped notices come with alert grouping, which this server does not do yet",
            ));
        }
    };
    Ok(Json(preview(&state, &stored, &notice, now)?))
}

/// Show what every channel of the rule would send for a sample alert of it.
#[utoipa::path(post, path = "/alert-rules/{id}/preview", tag = "alerts",
    params(("id" = String, Path)), responses((status = 200, body = RulePreview)))]
pub async fn preview_rule(
    State(state): State<AppState>,
    auth: Require<MonitoringView>,
    AppPath(id): AppPath<Id<AlertRule>>,
) -> ApiResult<Json<RulePreview>> {
    let mut conn = state.store.conn().await?;
    let rule = rules::get(&mut conn, auth.account(), id).await?;
    let now = Timestamp::now();
    let mut data = json!({"rule_id": rule.id, "rule_name": rule.name,
        "severity": rule.severity, "state": AlertState::Firing});
    data["summary"] = match &rule.condition {
        Condition::Metric {
            metric,
            operator,
            threshold,
            ..
        } => json!(format!(
            "{metric} {} {threshold} (a sample)",
            operator.as_str()
        )),
        Condition::Event { .. } => json!(format!("A sample alert of {}", rule.name)),
    };
    let notice = Notice::from_event(AlertState::Firing.event_type().as_str(), &data, now);
    let mut channels = Vec::new();
    for channel in &rule.channel_ids {
        let Ok(channel) = channel.parse::<Id<Channel>>() else {
            continue;
        };
        // A channel deleted since the rule was saved sends nothing.
        if let Ok(stored) = store::get_stored(&mut conn, auth.account(), channel).await {
            channels.push(preview(&state, &stored, &notice, now)?);
        }
    }
    Ok(Json(RulePreview { channels }))
}

/// The one key of `alert`, `alerts`, `alert_id` and `event` the body gives, and its value.
fn one_of(body: &Map<String, Value>) -> ApiResult<(&'static str, &Value)> {
    let given: Vec<(&'static str, &Value)> = ["alert", "alerts", "alert_id", "event"]
        .into_iter()
        .filter_map(|key| body.get(key).map(|value| (key, value)))
        .collect();
    if let Some(unknown) = body
        .keys()
        .find(|key| !["alert", "alerts", "alert_id", "event"].contains(&key.as_str()))
    {
        return Err(ApiError::field(unknown, "is not a field of a preview"));
    }
    match given.as_slice() {
        [one] => Ok(*one),
        _ => Err(ApiError::field(
            "alert",
            "give exactly one of alert, alerts, alert_id or event",
        )),
    }
}

fn sample_notice(sample: &Value, now: Timestamp) -> ApiResult<Notice> {
    let sample = sample
        .as_object()
        .ok_or_else(|| ApiError::field("alert", "must be an object"))?;
    let text = |key: &str| -> ApiResult<Option<&str>> {
        match sample.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) if text.len() <= 1000 => Ok(Some(text)),
            Some(_) => Err(ApiError::field(
                &format!("alert.{key}"),
                "must be a string of at most 1000 characters",
            )),
        }
    };
    let number = |key: &str| -> ApiResult<Option<f64>> {
        match sample.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value
                .as_f64()
                .map(Some)
                .ok_or_else(|| ApiError::field(&format!("alert.{key}"), "must be a number")),
        }
    };
    let rule_name = text("rule_name")?
        .filter(|name| !name.trim().is_empty())
        .ok_or_else(|| ApiError::field("alert.rule_name", "is required"))?;
    let severity = text("severity")?.and_then(Severity::parse).ok_or_else(|| {
        ApiError::field(
            "alert.severity",
            "must be critical, high, medium, low or info",
        )
    })?;
    let state = match text("state")? {
        None => AlertState::Firing,
        Some(state) => AlertState::parse(state).ok_or_else(|| {
            ApiError::field("alert.state", "must be firing, acknowledged or resolved")
        })?,
    };
    let data = json!({"rule_name": rule_name, "severity": severity, "state": state,
        "summary": text("summary")?, "hostname": text("hostname")?, "metric": text("metric")?,
        "value": number("value")?, "threshold": number("threshold")?,
        "operator": text("operator")?});
    Ok(Notice::from_event(state.event_type().as_str(), &data, now))
}

fn event_notice(event: &Value, now: Timestamp) -> ApiResult<Notice> {
    let event_type = event
        .get("event_type")
        .and_then(Value::as_str)
        .filter(|name| !name.is_empty() && name.len() <= 200)
        .ok_or_else(|| ApiError::field("event.event_type", "is required"))?;
    let data = match event.get("data") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(data @ Value::Object(_)) => data.clone(),
        Some(_) => return Err(ApiError::field("event.data", "must be an object")),
    };
    Ok(Notice::from_event(event_type, &data, now))
}

/// The channel's message for `notice`, as it would leave, its secrets hidden.
fn preview(
    state: &AppState,
    stored: &StoredChannel,
    notice: &Notice,
    now: Timestamp,
) -> ApiResult<ChannelPreview> {
    let (request, email) = match outgoing(&state.keys, stored, notice, PREVIEW_ID, now) {
        Outgoing::Http(request) => {
            let headers = request
                .headers
                .into_iter()
                .map(|(name, value)| {
                    let value = match name.as_str() {
                        shown if SHOWN_HEADERS.contains(&shown) => value,
                        signature if signature.contains("signature") => {
                            "[signed at send time]".to_owned()
                        }
                        _ => "[redacted]".to_owned(),
                    };
                    (name, value)
                })
                .collect();
            let body = serde_json::from_slice(&request.body).map_err(ApiError::internal)?;
            let request = PreviewHttp {
                method: "POST",
                url: shown_url(&request.url),
                headers,
                body,
            };
            (Some(request), None)
        }
        Outgoing::Email(email) => {
            let email = PreviewEmail {
                from: email.from,
                to: email.to,
                subject: email.subject,
                text: email.text,
                html: email.html,
            };
            (None, Some(email))
        }
        Outgoing::Unsendable(reason) => return Err(ApiError::Conflict(reason)),
    };
    Ok(ChannelPreview {
        channel_id: stored.channel.id,
        channel_type: stored.channel.channel_type,
        notice: PreviewNotice {
            subject: notice.subject.clone(),
            message: notice.message.clone(),
            severity: notice.severity,
            source: notice.source.clone(),
        },
        request,
        email,
    })
}

/// A target URL as a preview shows it: scheme, host and port; its path, query and
/// credentials are the write-only part (a Slack or Teams URL's path is its key).
fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(url) => {
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            let hidden = url.path() != "/" || url.query().is_some();
            format!(
                "{}://{}{port}/{}",
                url.scheme(),
                url.host_str().unwrap_or_default(),
                if hidden { "[redacted]" } else { "" }
            )
        }
        Err(_) => "[redacted]".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_previewed_url_shows_its_scheme_host_and_port_only() {
        assert_eq!(
            shown_url("https://user:pw@hooks.slack.com/services/T0/B0/key?x=1"),
            "https://hooks.slack.com/[redacted]"
        );
        assert_eq!(
            shown_url("http://127.0.0.1:8080/"),
            "http://127.0.0.1:8080/"
        );
    }
}
