//! `/notification-channels` (SPEC 10): the channels of the account (monitoring.view), and
//! with monitoring.manage a form per type to create or edit one, its Test and delete, all
//! through `/api/v1/notification-channels`. Secrets, URLs and header values are never shown
//! (a URL's host is): a blank field keeps the stored value, a header left `[redacted]` too.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use spog_core::channels::{
    Channel, ChannelConfig, ChannelType, SlackConfig, SmtpTls, TeamsConfig, TeamsFormat,
};
use spog_core::{Permission, page};
use spog_store::channels;
use spog_store::identity::organizations;

use super::error::{PageError, PageResult};
use super::layout::{Chrome, render, when};
use super::lists::{ListQuery, Pager, parse_id};
use super::session::{RequirePage, Viewer};
use crate::auth::permissions::{MonitoringManage, MonitoringView};
use crate::state::AppState;

const PATH: &str = "/notification-channels";
pub const TITLE: &str = "Notification channels";

pub struct ChannelRow {
    pub id: String,
    pub name: String,
    pub type_label: &'static str,
    pub destination: String,
    pub organization: String,
    pub enabled: bool,
    pub updated: String,
}

pub struct ChannelsTable {
    pub rows: Vec<ChannelRow>,
    pub pager: Pager,
    pub can_manage: bool,
}

pub struct TypeOption {
    pub value: &'static str,
    pub label: &'static str,
}

#[derive(Template)]
#[template(path = "channels/list.html")]
struct ChannelsPage {
    chrome: Chrome,
    types: Vec<TypeOption>,
    table: ChannelsTable,
}

#[derive(Template)]
#[template(path = "channels/table.html")]
struct ChannelsTablePartial {
    table: ChannelsTable,
}

pub struct OrganizationOption {
    pub id: String,
    pub name: String,
    pub selected: bool,
}

/// The fields of one channel's form; only those of its type are shown.
#[derive(Default)]
pub struct ChannelForm {
    /// `None` while creating.
    pub id: Option<String>,
    pub type_name: &'static str,
    pub type_label: &'static str,
    pub name: String,
    pub enabled: bool,
    pub organizations: Vec<OrganizationOption>,
    pub organization: String,
    pub smtp_host: String,
    pub smtp_port: String,
    pub smtp_username: String,
    pub from_address: String,
    pub to_addresses: String,
    /// `starttls`, `implicit` or `none`.
    pub tls: &'static str,
    pub tls_ca_cert: String,
    pub has_smtp_password: bool,
    /// The host of the stored URL (the URL itself is write-only); empty while creating.
    pub url_host: String,
    pub headers: String,
    pub has_secret: bool,
    pub slack_channel: String,
    /// `auto` (new channels), `message_card` or `adaptive_card`.
    pub teams_format: &'static str,
}

#[derive(Template)]
#[template(path = "channels/edit.html")]
struct ChannelPage {
    chrome: Chrome,
    form: ChannelForm,
    can_manage: bool,
    created: String,
}

fn type_label(channel_type: ChannelType) -> &'static str {
    match channel_type {
        ChannelType::Smtp => "Email (SMTP)",
        ChannelType::Webhook => "Webhook",
        ChannelType::Slack => "Slack",
        ChannelType::Teams => "Microsoft Teams",
    }
}

fn destination(config: &serde_json::Value) -> String {
    let text = |key: &str| config.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    if let Some(to) = config.get("to_addresses").and_then(|v| v.as_array()) {
        let to: Vec<&str> = to.iter().filter_map(|v| v.as_str()).collect();
        return to.join(", ");
    }
    // URLs are write-only (they carry credentials): reads name only their host.
    text("url_host")
        .or_else(|| text("webhook_url_host"))
        .unwrap_or_default()
}

async fn table(
    state: &AppState,
    viewer: &Viewer,
    query: &ListQuery,
) -> Result<ChannelsTable, PageError> {
    let mut conn = state.store.conn().await?;
    let names: HashMap<String, String> = organizations::list(&mut conn, viewer.auth.account())
        .await?
        .into_iter()
        .map(|o| (o.id.to_string(), o.name))
        .collect();
    let page = channels::list(
        &mut conn,
        viewer.auth.account(),
        None,
        page::DEFAULT_LIMIT,
        query.cursor.as_deref(),
    )
    .await?;
    let pager = Pager::of(PATH, query, &page);
    let rows = page
        .items
        .into_iter()
        .map(|channel: Channel| ChannelRow {
            id: channel.id.to_string(),
            type_label: type_label(channel.channel_type),
            destination: destination(&channel.config),
            organization: names
                .get(&channel.organization_id.to_string())
                .cloned()
                .unwrap_or_default(),
            enabled: channel.enabled,
            updated: when(channel.updated_at),
            name: channel.name,
        })
        .collect();
    Ok(ChannelsTable {
        rows,
        pager,
        can_manage: viewer.has(Permission::MonitoringManage),
    })
}

pub async fn list_page(
    State(state): State<AppState>,
    viewer: RequirePage<MonitoringView>,
    Query(query): Query<ListQuery>,
) -> PageResult {
    let chrome = Chrome::new(&viewer, TITLE);
    let types = ChannelType::ALL
        .into_iter()
        .map(|t| TypeOption {
            value: t.as_str(),
            label: type_label(t),
        })
        .collect();
    render(&ChannelsPage {
        chrome,
        types,
        table: table(&state, &viewer, &query).await?,
    })
}

pub async fn table_partial(
    State(state): State<AppState>,
    viewer: RequirePage<MonitoringView>,
    Query(query): Query<ListQuery>,
) -> PageResult {
    render(&ChannelsTablePartial {
        table: table(&state, &viewer, &query).await?,
    })
}

#[derive(Deserialize)]
pub struct NewQuery {
    #[serde(rename = "type")]
    pub channel_type: Option<String>,
}

pub async fn new_page(
    State(state): State<AppState>,
    viewer: RequirePage<MonitoringManage>,
    Query(query): Query<NewQuery>,
) -> PageResult {
    let chrome = Chrome::new(&viewer, TITLE);
    let channel_type = ChannelType::parse("type", query.channel_type.as_deref().unwrap_or(""))
        .map_err(|_| PageError::NotFound)?;
    let mut conn = state.store.conn().await?;
    let organizations = organizations::list(&mut conn, viewer.auth.account()).await?;
    let form = ChannelForm {
        type_name: channel_type.as_str(),
        type_label: type_label(channel_type),
        enabled: true,
        tls: "starttls",
        teams_format: "auto",
        headers: "{}".to_owned(),
        organizations: organizations
            .into_iter()
            .enumerate()
            .map(|(i, o)| OrganizationOption {
                id: o.id.to_string(),
                name: o.name,
                selected: i == 0,
            })
            .collect(),
        ..ChannelForm::default()
    };
    render(&ChannelPage {
        chrome,
        form,
        can_manage: true,
        created: String::new(),
    })
}

pub async fn channel_page(
    State(state): State<AppState>,
    viewer: RequirePage<MonitoringView>,
    Path(id): Path<String>,
) -> PageResult {
    let chrome = Chrome::new(&viewer, TITLE);
    let id = parse_id::<Channel>(&id)?;
    let mut conn = state.store.conn().await?;
    let stored = channels::get_stored(&mut conn, viewer.auth.account(), id).await?;
    let organization = organizations::get(
        &mut conn,
        viewer.auth.account(),
        stored.channel.organization_id,
    )
    .await
    .map(|o| o.name)
    .unwrap_or_default();
    let channel = &stored.channel;
    let mut form = ChannelForm {
        id: Some(channel.id.to_string()),
        type_name: channel.channel_type.as_str(),
        type_label: type_label(channel.channel_type),
        name: channel.name.clone(),
        enabled: channel.enabled,
        organization,
        headers: "{}".to_owned(),
        has_smtp_password: stored.sealed.contains_key("smtp_password"),
        has_secret: stored.sealed.contains_key("secret"),
        ..ChannelForm::default()
    };
    match &stored.config {
        ChannelConfig::Smtp(smtp) => {
            form.smtp_host = smtp.smtp_host.clone();
            form.smtp_port = smtp.smtp_port.to_string();
            form.smtp_username = smtp.smtp_username.clone().unwrap_or_default();
            form.from_address = smtp.from_address.clone();
            form.to_addresses = smtp.to_addresses.join("\n");
            form.tls = match smtp.security() {
                SmtpTls::Starttls => "starttls",
                SmtpTls::Implicit => "implicit",
                SmtpTls::None => "none",
            };
            form.tls_ca_cert = smtp.tls_ca_cert.clone().unwrap_or_default();
        }
        ChannelConfig::Webhook(_) => {}
        ChannelConfig::Slack(SlackConfig { channel, .. }) => {
            form.slack_channel = channel.clone().unwrap_or_default();
        }
        ChannelConfig::Teams(TeamsConfig { format, .. }) => {
            form.teams_format = match format {
                TeamsFormat::AdaptiveCard => "adaptive_card",
                TeamsFormat::MessageCard | TeamsFormat::Auto => "message_card",
            };
        }
    }
    // What reads show: the URL's host, header names with their values `[redacted]`.
    let public = &channel.config;
    form.url_host = destination(public);
    if let Some(headers) = public.get("headers") {
        form.headers = serde_json::to_string_pretty(headers).unwrap_or_default();
    }
    render(&ChannelPage {
        chrome,
        form,
        can_manage: viewer.has(Permission::MonitoringManage),
        created: when(channel.created_at),
    })
}
