//! Secrets at rest (SPEC 5.4, issue 12): every webhook secret and header value, and every
//! channel secret, URL and header value, is sealed with the server key and bound to its row
//! and field (AEAD associated data), so a sealed value copied elsewhere fails to open. Writes
//! always seal bound; rows written before (headers and URLs in clear, secrets sealed unbound)
//! are re-sealed by [`bind_existing`] when the server starts, before it serves or delivers.

use std::collections::BTreeMap;

use spog_core::Id;
use spog_core::audit_streams::{AuditStream, SinkSecrets};
use spog_core::channels::{Channel, ChannelConfig, Secrets};
use spog_core::webhooks::{Headers, SealedHeaders, Webhook};
use spog_store::Store;
use spog_store::audit_streams::SealedSinkSecrets;
use spog_store::channels::{self, SealedSecrets, StoredChannel};
use spog_store::webhooks::{self, StoredSecrets};

use crate::keys::{Binding, Keys};

/// Rows re-sealed per transaction by the start-up pass.
const BATCH: u32 = 200;

fn webhook_binding(webhook: Id<Webhook>, field: &str) -> Binding {
    Binding::new("webhooks", &webhook.to_string(), field)
}

fn channel_binding(channel: Id<Channel>, field: &str) -> Binding {
    Binding::new("notification_channels", &channel.to_string(), field)
}

/// A webhook subscription's secret values in clear.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WebhookSecrets {
    pub secret: Option<String>,
    pub headers: BTreeMap<String, String>,
}

/// The subscription's values in clear; `None` when one cannot be opened (another server key,
/// or a value moved from elsewhere).
pub fn open_webhook(
    keys: &Keys,
    webhook: Id<Webhook>,
    stored: &StoredSecrets,
) -> Option<WebhookSecrets> {
    if !stored.bound {
        return Some(WebhookSecrets {
            secret: match &stored.secret_ciphertext {
                Some(sealed) => Some(keys.open_unbound(sealed)?),
                None => None,
            },
            headers: stored.headers.clone(),
        });
    }
    let secret = match &stored.secret_ciphertext {
        Some(sealed) => Some(keys.open(sealed, &webhook_binding(webhook, "secret"))?),
        None => None,
    };
    let headers = stored
        .headers
        .iter()
        .map(|(name, sealed)| {
            let binding = webhook_binding(webhook, &spog_core::channels::header_key(name));
            Some((name.clone(), keys.open(sealed, &binding)?))
        })
        .collect::<Option<_>>()?;
    Some(WebhookSecrets { secret, headers })
}

/// The secret and header values sealed for the subscription `webhook`.
pub fn seal_webhook(
    keys: &Keys,
    webhook: Id<Webhook>,
    secret: Option<&str>,
    headers: &Headers,
) -> (Option<String>, SealedHeaders) {
    (
        seal_webhook_secret(keys, webhook, secret),
        headers.sealed(|name, value| seal_webhook_header(keys, webhook, name, value)),
    )
}

fn seal_webhook_secret(keys: &Keys, webhook: Id<Webhook>, secret: Option<&str>) -> Option<String> {
    secret.map(|s| keys.seal(s, &webhook_binding(webhook, "secret")))
}

fn seal_webhook_header(keys: &Keys, webhook: Id<Webhook>, name: &str, value: &str) -> String {
    let binding = webhook_binding(webhook, &spog_core::channels::header_key(name));
    keys.seal(value, &binding)
}

/// The channel's whole configuration and its secrets in clear; `None` when a value cannot be
/// opened.
pub fn open_channel(keys: &Keys, stored: &StoredChannel) -> Option<(ChannelConfig, Secrets)> {
    let id = stored.channel.id;
    if !stored.bound {
        let secrets = stored
            .sealed
            .iter()
            .map(|(field, sealed)| Some((field.clone(), keys.open_unbound(sealed)?)))
            .collect::<Option<_>>()?;
        return Some((stored.config.clone(), secrets));
    }
    let mut opened: BTreeMap<String, String> = stored
        .sealed
        .iter()
        .map(|(field, sealed)| {
            Some((
                field.clone(),
                keys.open(sealed, &channel_binding(id, field))?,
            ))
        })
        .collect::<Option<_>>()?;
    let write_only = stored.config.write_only();
    let values: BTreeMap<String, String> = write_only
        .keys()
        .filter_map(|key| opened.remove_entry(key))
        .collect();
    let config = stored.config.clone().with_write_only(&values)?;
    Some((config, opened))
}

/// The configuration as stored (without its write-only values) and the secrets and
/// write-only values sealed for the channel `channel`.
pub fn seal_channel(
    keys: &Keys,
    channel: Id<Channel>,
    config: &ChannelConfig,
    secrets: &Secrets,
) -> (ChannelConfig, SealedSecrets) {
    let sealed = secrets
        .iter()
        .chain(config.write_only().iter())
        .map(|(field, value)| {
            (
                field.clone(),
                keys.seal(value, &channel_binding(channel, field)),
            )
        })
        .collect();
    (config.without_write_only(), sealed)
}

fn stream_binding(stream: Id<AuditStream>, field: &str) -> Binding {
    Binding::new("audit_streams", &stream.to_string(), field)
}

/// An audit stream's sink secrets sealed for the stream `stream`, each bound to its field.
pub fn seal_stream(
    keys: &Keys,
    stream: Id<AuditStream>,
    secrets: &SinkSecrets,
) -> SealedSinkSecrets {
    secrets
        .iter()
        .map(|(field, value)| {
            let sealed = keys.seal(value, &stream_binding(stream, field));
            (field.clone(), sealed)
        })
        .collect()
}

/// The stream's sink secrets in clear; `None` when one cannot be opened.
pub fn open_stream(
    keys: &Keys,
    stream: Id<AuditStream>,
    sealed: &SealedSinkSecrets,
) -> Option<SinkSecrets> {
    sealed
        .iter()
        .map(|(field, sealed)| {
            Some((
                field.clone(),
                keys.open(sealed, &stream_binding(stream, field))?,
            ))
        })
        .collect()
}

/// What the start-up pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bound {
    pub webhooks: usize,
    pub channels: usize,
    /// Rows whose values this server key cannot open; left as they are.
    pub unreadable: usize,
}

/// Seals and binds every value of rows written before values were bound to their rows, a
/// batch per transaction. Several instances may run it at once: a row is re-sealed once.
pub async fn bind_existing(store: &Store, keys: &Keys) -> anyhow::Result<Bound> {
    let mut bound = Bound::default();
    let mut after = String::new();
    loop {
        let mut tx = store.begin().await?;
        let rows = webhooks::unbound(&mut tx, &after, BATCH).await?;
        let Some((last, _)) = rows.last() else { break };
        after = last.to_string();
        for (webhook, stored) in &rows {
            let Some(open) = open_webhook(keys, *webhook, stored) else {
                tracing::error!(%webhook, "a webhook's secret cannot be opened with this server key; left as it is");
                bound.unreadable += 1;
                continue;
            };
            // Stored values, as they are: only requests are checked.
            let secret = seal_webhook_secret(keys, *webhook, open.secret.as_deref());
            let headers: BTreeMap<String, String> = (open.headers.iter())
                .map(|(name, value)| {
                    let sealed = seal_webhook_header(keys, *webhook, name, value);
                    (name.clone(), sealed)
                })
                .collect();
            if webhooks::bind_secrets(&mut tx, *webhook, secret.as_deref(), &headers).await? {
                bound.webhooks += 1;
            }
        }
        tx.commit_unaudited().await?;
    }
    let mut after = String::new();
    loop {
        let mut tx = store.begin().await?;
        let rows = channels::unbound(&mut tx, &after, BATCH).await?;
        let Some(last) = rows.last() else { break };
        after = last.channel.id.to_string();
        for stored in &rows {
            let id = stored.channel.id;
            let Some((config, secrets)) = open_channel(keys, stored) else {
                tracing::error!(channel = %id, "a channel's secrets cannot be opened with this server key; left as they are");
                bound.unreadable += 1;
                continue;
            };
            let (config, sealed) = seal_channel(keys, id, &config, &secrets);
            if channels::bind_secrets(&mut tx, id, &config, &sealed).await? {
                bound.channels += 1;
            }
        }
        tx.commit_unaudited().await?;
    }
    Ok(bound)
}

fn provider_binding(provider: Id<spog_core::sso::IdentityProvider>) -> Binding {
    Binding::new("identity_providers", &provider.to_string(), "client_secret")
}

/// An identity provider's client secret, sealed for its row.
pub fn seal_provider_secret(
    keys: &Keys,
    provider: Id<spog_core::sso::IdentityProvider>,
    secret: &str,
) -> String {
    keys.seal(secret, &provider_binding(provider))
}

/// The provider's client secret in clear; `None` when it cannot be opened.
pub fn open_provider_secret(
    keys: &Keys,
    provider: Id<spog_core::sso::IdentityProvider>,
    sealed: &str,
) -> Option<String> {
    keys.open(sealed, &provider_binding(provider))
}
