//! The webhook target: turns a claimed delivery into the signed request of SPEC 5.2, with the
//! subscription as it is at the moment of the attempt.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use spog_core::Timestamp;
use spog_core::webhooks::{signature_header, standard_signature};
use spog_store::deliveries::Claimed;
use spog_store::{Conn, StoreResult, events, webhooks};

use super::Outgoing;
use super::http::HttpRequest;
use crate::keys::Keys;
use crate::secrets::open_webhook;

/// The request of one attempt. `id` is the delivery id (the same on every retry); `secret`
/// is the subscription's secret in clear, if it has one.
pub fn signed_request(
    url: &str,
    secret: Option<&str>,
    extra_headers: &BTreeMap<String, String>,
    id: &str,
    event_type: &str,
    body: Bytes,
    now: Timestamp,
) -> HttpRequest {
    let timestamp = now.unix_seconds();
    let mut headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("x-webhook-event".to_owned(), event_type.to_owned()),
        ("x-webhook-delivery".to_owned(), id.to_owned()),
        ("webhook-id".to_owned(), id.to_owned()),
        ("webhook-timestamp".to_owned(), timestamp.to_string()),
    ];
    if let Some(secret) = secret {
        headers.push((
            "x-webhook-signature".to_owned(),
            signature_header(secret, &body),
        ));
        headers.push((
            "webhook-signature".to_owned(),
            standard_signature(secret, id, timestamp, &body),
        ));
    }
    headers.extend(extra_headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    HttpRequest {
        url: url.to_owned(),
        headers,
        body,
        expect_body: None,
    }
}

/// The requests for a batch of claimed webhook deliveries, in order.
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
    let targets: HashMap<String, webhooks::WebhookTarget> = webhooks::targets(conn, &target_ids)
        .await?
        .into_iter()
        .map(|t| (t.id.to_string(), t))
        .collect();
    let payloads: HashMap<String, Bytes> = events::payloads(conn, &event_ids)
        .await?
        .into_iter()
        .map(|(id, payload)| (id.to_string(), Bytes::from(payload)))
        .collect();
    Ok(batch
        .iter()
        .map(|claimed| {
            let Some(target) = targets
                .get(&claimed.target_id)
                .filter(|t| t.account == claimed.account)
            else {
                return Outgoing::Unsendable("the webhook no longer exists".to_owned());
            };
            if !target.active {
                return Outgoing::Unsendable("the webhook is inactive".to_owned());
            }
            let Some(body) = payloads.get(&claimed.event_id.to_string()) else {
                return Outgoing::Unsendable("the event no longer exists".to_owned());
            };
            let Some(secrets) = open_webhook(keys, target.id, &target.secrets) else {
                return Outgoing::Unsendable(
                    "the webhook's secret or header values cannot be decrypted with this server key"
                        .to_owned(),
                );
            };
            Outgoing::Http(signed_request(
                &target.url,
                secrets.secret.as_deref(),
                &secrets.headers,
                &claimed.id.to_string(),
                claimed.event_type.as_str(),
                body.clone(),
                now,
            ))
        })
        .collect())
}
