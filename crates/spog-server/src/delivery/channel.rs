//! The notification-channel target (SPEC 7.2): turns a claimed delivery (an `alert.*` event
//! addressed to a channel) into the channel's format — a Slack attachment, a Teams card, a
//! signed webhook body, or an email — with the channel as it is at the moment of the attempt.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::Value;
use spog_core::Timestamp;
use spog_core::channels::{ChannelConfig, Notice, SlackConfig, TeamsConfig, WebhookConfig};
use spog_core::webhooks::{signature_header, standard_signature};
use spog_store::channels::{self, StoredChannel};
use spog_store::deliveries::Claimed;
use spog_store::{Conn, StoreResult, events};

use super::Outgoing;
use super::email::EmailRequest;
use super::http::HttpRequest;
use crate::keys::Keys;
use crate::secrets::open_channel;

/// What sending to `channel` takes for `notice`. `id` names the message (the delivery id,
/// the same on every retry; a fresh one for tests).
pub fn outgoing(
    keys: &Keys,
    channel: &StoredChannel,
    notice: &Notice,
    id: &str,
    now: Timestamp,
) -> Outgoing {
    let Some((config, secrets)) = open_channel(keys, channel) else {
        return Outgoing::Unsendable(
            "the channel's secrets cannot be decrypted with this server key".to_owned(),
        );
    };
    match &config {
        ChannelConfig::Slack(SlackConfig {
            webhook_url,
            channel,
        }) => Outgoing::Http(json_request(
            webhook_url,
            &notice.slack_payload(channel.as_deref()),
            Vec::new(),
            Some("ok"),
        )),
        ChannelConfig::Teams(TeamsConfig {
            webhook_url,
            format,
        }) => Outgoing::Http(json_request(
            webhook_url,
            &notice.teams_payload(format.resolved(webhook_url)),
            Vec::new(),
            None,
        )),
        ChannelConfig::Webhook(WebhookConfig { url, headers }) => {
            let body = Bytes::from(notice.webhook_payload().to_string());
            let timestamp = now.unix_seconds();
            let mut extra = vec![
                ("x-webhook-event".to_owned(), "notification".to_owned()),
                ("x-webhook-delivery".to_owned(), id.to_owned()),
                ("webhook-id".to_owned(), id.to_owned()),
                ("webhook-timestamp".to_owned(), timestamp.to_string()),
            ];
            if let Some(secret) = secrets.get("secret") {
                extra.push((
                    "x-webhook-signature".to_owned(),
                    signature_header(secret, &body),
                ));
                extra.push((
                    "webhook-signature".to_owned(),
                    standard_signature(secret, id, timestamp, &body),
                ));
            }
            extra.extend(headers.iter().map(|(k, v)| (k.clone(), v.clone())));
            Outgoing::Http(HttpRequest {
                url: url.clone(),
                headers: with_content_type(extra),
                body,
                expect_body: None,
            })
        }
        ChannelConfig::Smtp(smtp) => Outgoing::Email(Box::new(EmailRequest {
            host: smtp.smtp_host.clone(),
            port: smtp.smtp_port,
            username: smtp.smtp_username.clone(),
            password: secrets.get("smtp_password").cloned(),
            tls: smtp.security(),
            ca_cert: smtp.tls_ca_cert.clone(),
            from: smtp.from_address.clone(),
            to: smtp.to_addresses.clone(),
            subject: notice.subject.clone(),
            text: notice.email_text(),
            html: notice.email_html(),
        })),
    }
}

fn with_content_type(mut headers: Vec<(String, String)>) -> Vec<(String, String)> {
    headers.insert(
        0,
        ("content-type".to_owned(), "application/json".to_owned()),
    );
    headers
}

fn json_request(
    url: &str,
    body: &Value,
    headers: Vec<(String, String)>,
    expect_body: Option<&'static str>,
) -> HttpRequest {
    HttpRequest {
        url: url.to_owned(),
        headers: with_content_type(headers),
        body: Bytes::from(body.to_string()),
        expect_body,
    }
}

/// What to send for a batch of claimed channel deliveries, in order.
pub async fn prepare(
    conn: &mut Conn,
    keys: &Keys,
    batch: &[Claimed],
    now: Timestamp,
) -> StoreResult<Vec<Outgoing>> {
    let mut target_ids: Vec<String> = batch.iter().map(|c| c.target_id.clone()).collect();
    target_ids.sort_unstable();
    target_ids.dedup();
    let mut event_ids: Vec<String> = batch.iter().map(|c| c.event_id.to_string()).collect();
    event_ids.sort_unstable();
    event_ids.dedup();
    let targets: HashMap<String, StoredChannel> = channels::targets(conn, &target_ids)
        .await?
        .into_iter()
        .map(|t| (t.channel.id.to_string(), t))
        .collect();
    let payloads: HashMap<String, Value> = events::payloads(conn, &event_ids)
        .await?
        .into_iter()
        .map(|(id, payload)| {
            let value = serde_json::from_str(&payload).unwrap_or(Value::Null);
            (id.to_string(), value)
        })
        .collect();
    Ok(batch
        .iter()
        .map(|claimed| {
            let Some(target) = targets
                .get(&claimed.target_id)
                .filter(|t| t.account == claimed.account)
            else {
                return Outgoing::Unsendable("the channel no longer exists".to_owned());
            };
            if !target.channel.enabled {
                return Outgoing::Unsendable("the channel is disabled".to_owned());
            }
            let Some(payload) = payloads.get(&claimed.event_id.to_string()) else {
                return Outgoing::Unsendable("the event no longer exists".to_owned());
            };
            let timestamp = payload
                .get("timestamp")
                .and_then(Value::as_str)
                .and_then(Timestamp::parse)
                .unwrap_or(now);
            let notice = Notice::from_event(
                claimed.event_type.as_str(),
                payload.get("data").unwrap_or(&Value::Null),
                timestamp,
            );
            outgoing(keys, target, &notice, &claimed.id.to_string(), now)
        })
        .collect())
}
