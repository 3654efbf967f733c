//! `/audit-streams` (SPEC 3.5): streams of an account's audit chain to a SIEM or archive.
//! Reading takes `audit_logs.export` or `audit_streams.manage`; changing takes
//! `audit_streams.manage`. Sink secrets are write-only, sealed, and never in audit entries.

mod control;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use spog_core::audit::Action;
use spog_core::audit_streams::{
    self as rules, AuditStream, BatchLimits, Format, Position, StreamFilter, check_format,
    parse_sink,
};
use spog_core::page::{self, Page};
use spog_core::validate::Name;
use spog_core::{FieldError, FieldErrors, Id, Permission, Timestamp};
use spog_store::audit_streams::{self as store, StoredStream, StreamFields};
use spog_store::{Conn, audit};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::permissions::AuditStreamsManage;
use crate::auth::{Auth, Require};
use crate::error::{ApiError, ApiResult};
use crate::extract::{AppJson, AppPath, AppQuery};
use crate::secrets::{open_stream, seal_stream};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_streams, create_stream))
        .routes(routes!(get_stream, update_stream, delete_stream))
        .routes(routes!(control::pause_stream))
        .routes(routes!(control::resume_stream))
        .routes(routes!(control::backfill_stream))
        .routes(routes!(control::test_stream))
        .routes(routes!(control::list_attempts))
}

/// Streams are read with either permission.
pub(super) fn may_read(auth: &Auth) -> ApiResult<()> {
    if auth.has(Permission::AuditLogsExport) || auth.has(Permission::AuditStreamsManage) {
        return Ok(());
    }
    Err(ApiError::Forbidden(
        "this requires the audit_logs.export or audit_streams.manage permission".to_owned(),
    ))
}

/// A stream as its audit entries keep it: its settings, not its moving status.
pub(super) fn snapshot(stream: &AuditStream) -> Value {
    let mut value = serde_json::to_value(stream).expect("a stream serialises");
    if let Some(object) = value.as_object_mut() {
        object.remove("status");
    }
    value
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// 1 to 500; default 50.
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStream {
    /// Unique in the account.
    pub name: String,
    /// `{"type": "https", "url", "secret"?, "headers"?, "compression"?}`.
    #[schema(value_type = Object)]
    pub sink: Value,
    /// `native`, `ocsf` or `cef`, as the sink carries.
    pub format: String,
    #[serde(default)]
    pub filter: StreamFilter,
    /// `"now"` (default), `"beginning"`, `{"from_seq"}` or `{"from_time"}`.
    #[schema(value_type = Option<Object>)]
    pub start: Option<Value>,
    #[serde(default)]
    pub batch: BatchLimits,
    #[serde(default = "yes")]
    pub include_snapshots: bool,
    #[serde(default)]
    pub paused: bool,
}

fn yes() -> bool {
    true
}

/// Absent fields stay as they are; the cursor always does.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateStream {
    pub name: Option<String>,
    /// The whole sink; a secret left out is kept while the type stays, a header given as
    /// `[redacted]` keeps its value.
    #[schema(value_type = Option<Object>)]
    pub sink: Option<Value>,
    pub format: Option<String>,
    pub filter: Option<StreamFilter>,
    pub batch: Option<BatchLimits>,
    pub include_snapshots: Option<bool>,
    pub paused: Option<bool>,
}

/// A stream's fields as a request gives them, before checking.
struct Proposed<'a> {
    name: &'a str,
    /// `None`: the current sink, as it is.
    sink: Option<&'a Value>,
    format: &'a str,
    filter: StreamFilter,
    batch: BatchLimits,
    include_snapshots: bool,
    paused: bool,
}

/// Checks every field, naming each one at fault; the sink's secrets are sealed for `id`.
/// Organization ids in the filter must be the account's.
async fn check(
    state: &AppState,
    conn: &mut Conn,
    auth: &Auth,
    id: Id<AuditStream>,
    proposed: Proposed<'_>,
    current: Option<&StoredStream>,
) -> ApiResult<StreamFields> {
    let mut errors = FieldErrors::new();
    let name = errors.check(Name::parse("name", proposed.name, rules::MAX_NAME));
    let current_secrets = match current {
        Some(stored) => Some(
            open_stream(&state.keys, stored.stream.id, &stored.secrets).ok_or_else(|| {
                ApiError::Conflict(
                    "the stream's sink secrets cannot be decrypted with this server key; give \
                     them again"
                        .to_owned(),
                )
            })?,
        ),
        None => None,
    };
    let current_sink = current
        .zip(current_secrets)
        .map(|(s, k)| (s.stream.sink.clone(), k));
    let sink = match (proposed.sink, current_sink) {
        (None, Some(kept)) => Some(kept),
        (given, kept) => {
            let given = given.unwrap_or(&Value::Null);
            let kept = kept.as_ref().map(|(sink, secrets)| (sink, secrets));
            match parse_sink(given, state.config.allow_insecure_targets, kept) {
                Ok(sink) => Some(sink),
                Err(sink_errors) => {
                    for (field, message) in sink_errors.iter() {
                        errors.add(FieldError::new(field, message));
                    }
                    None
                }
            }
        }
    };
    if let Some((sink, _)) = &sink
        && let Some(Ok(url)) = sink.url().map(url::Url::parse)
        && let Err(refused) = state.engine.http.guard().check_url(&url)
    {
        errors.add(FieldError::new("sink.url", refused.to_string()));
    }
    if let Some((spog_core::audit_streams::Sink::Syslog(syslog), _)) = &sink
        && let Ok(ip) = syslog.host.parse::<std::net::IpAddr>()
        && let Err(reason) = state.engine.http.guard().check(ip)
    {
        errors.add(FieldError::new(
            "sink.host",
            format!("is refused: {reason}"),
        ));
    }
    let format = errors.check(Format::parse("format", proposed.format));
    if let (Some((sink, _)), Some(format)) = (&sink, format) {
        errors.check(check_format(sink, format, proposed.include_snapshots));
    }
    let filter = match proposed.filter.check() {
        Ok(filter) => Some(filter),
        Err(filter_errors) => {
            for (field, message) in filter_errors.iter() {
                errors.add(FieldError::new(field, message));
            }
            None
        }
    };
    if let Some(filter) = &filter {
        for (i, organization) in filter.organization_ids.iter().enumerate() {
            let Ok(organization) = organization.parse() else {
                continue;
            };
            let known =
                spog_store::identity::organizations::get(conn, auth.account(), organization).await;
            if let Err(spog_store::StoreError::NotFound) = known {
                errors.add(FieldError::new(
                    format!("filter.organization_ids[{i}]"),
                    "is not an organization of this account",
                ));
            }
        }
    }
    let batch = match proposed.batch.check() {
        Ok(batch) => Some(batch),
        Err(batch_errors) => {
            for (field, message) in batch_errors.iter() {
                errors.add(FieldError::new(field, message));
            }
            None
        }
    };
    let (name, sink, format, filter, batch) = errors.finish((name, sink, format, filter, batch))?;
    let (sink, secrets) = sink;
    Ok(StreamFields {
        name: name.as_str().to_owned(),
        sink,
        secrets: seal_stream(&state.keys, id, &secrets),
        format,
        filter,
        batch,
        include_snapshots: proposed.include_snapshots,
        paused: proposed.paused,
    })
}

/// The seq a position resolves to: sending starts there. `Now` is after the head.
pub(super) async fn resolve(
    conn: &mut Conn,
    auth: &Auth,
    field: &str,
    position: Position,
) -> ApiResult<i64> {
    let account = auth.account();
    let head = store::head_seq(conn, account).await?;
    let first = store::first_seq(conn, account).await?.unwrap_or(head + 1);
    match position {
        Position::Now => Ok(head + 1),
        Position::Beginning => Ok(first),
        Position::FromSeq(seq) if seq < first => Err(ApiError::field(
            &format!("{field}.from_seq"),
            format!(
                "entries before seq {first} were removed by retention; the earliest is {first}"
            ),
        )),
        Position::FromSeq(seq) if seq > head + 1 => Err(ApiError::field(
            &format!("{field}.from_seq"),
            format!("must be at most {} (after the chain's head)", head + 1),
        )),
        Position::FromSeq(seq) => Ok(seq),
        Position::FromTime(at) => Ok(store::first_seq_from(conn, account, at)
            .await?
            .unwrap_or(head + 1)),
    }
}

/// List the account's audit streams with their status.
#[utoipa::path(get, path = "/audit-streams", tag = "audit-streams", params(StreamParams),
    responses((status = 200, body = Page<AuditStream>)))]
async fn list_streams(
    State(state): State<AppState>,
    auth: Auth,
    AppQuery(params): AppQuery<StreamParams>,
) -> ApiResult<Json<Page<AuditStream>>> {
    may_read(&auth)?;
    let limit = page::limit(params.limit, page::DEFAULT_LIMIT, page::MAX_LIMIT)?;
    let mut conn = state.store.conn().await?;
    let page = store::list(
        &mut conn,
        auth.account(),
        limit,
        params.cursor.as_deref(),
        Timestamp::now(),
    )
    .await?;
    Ok(Json(page))
}

/// Create an audit stream; sending starts at `start`.
#[utoipa::path(post, path = "/audit-streams", tag = "audit-streams", request_body = CreateStream,
    responses((status = 201, body = AuditStream)))]
async fn create_stream(
    State(state): State<AppState>,
    auth: Require<AuditStreamsManage>,
    AppJson(body): AppJson<CreateStream>,
) -> ApiResult<(StatusCode, Json<AuditStream>)> {
    let start = match &body.start {
        None => Position::Now,
        Some(value) => Position::parse("start", value, true)?,
    };
    // The head as linked at creation: entries recorded before this request are in it.
    audit::link_pending(&state.store, Timestamp::now()).await?;
    let id = Id::new();
    let mut tx = state.store.begin().await?;
    let proposed = Proposed {
        name: &body.name,
        sink: Some(&body.sink),
        format: &body.format,
        filter: body.filter.clone(),
        batch: body.batch,
        include_snapshots: body.include_snapshots,
        paused: body.paused,
    };
    let fields = check(&state, &mut tx, &auth, id, proposed, None).await?;
    let from_seq = resolve(&mut tx, &auth, "start", start).await?;
    let max = state.config.audit_streams_max_per_account;
    if store::count(&mut tx, auth.account()).await? >= max {
        return Err(ApiError::Coded {
            status: StatusCode::CONFLICT,
            code: "limit_reached",
            message: format!("an account may have at most {max} audit streams"),
            details: None,
        });
    }
    let now = Timestamp::now();
    let stored = store::create(&mut tx, auth.account(), id, &fields, from_seq - 1, now).await?;
    let stream = stored.stream;
    tx.record(
        auth.did(Action::AuditStreamCreate, &stream)
            .after(&snapshot(&stream))
            .metadata(
                json!({"start": body.start.clone().unwrap_or(json!("now")), "from_seq": from_seq}),
            ),
    )
    .await?;
    tx.commit().await?;
    state.bus.audit_linked.notify_one();
    Ok((StatusCode::CREATED, Json(stream)))
}

/// Get an audit stream with its status.
#[utoipa::path(get, path = "/audit-streams/{id}", tag = "audit-streams",
    params(("id" = String, Path)), responses((status = 200, body = AuditStream)))]
async fn get_stream(
    State(state): State<AppState>,
    auth: Auth,
    AppPath(id): AppPath<Id<AuditStream>>,
) -> ApiResult<Json<AuditStream>> {
    may_read(&auth)?;
    let mut conn = state.store.conn().await?;
    Ok(Json(
        store::get(&mut conn, auth.account(), id, Timestamp::now()).await?,
    ))
}

/// Change an audit stream; absent fields stay as they are, and so does the cursor.
#[utoipa::path(patch, path = "/audit-streams/{id}", tag = "audit-streams",
    params(("id" = String, Path)), request_body = UpdateStream,
    responses((status = 200, body = AuditStream)))]
async fn update_stream(
    State(state): State<AppState>,
    auth: Require<AuditStreamsManage>,
    AppPath(id): AppPath<Id<AuditStream>>,
    AppJson(body): AppJson<UpdateStream>,
) -> ApiResult<Json<AuditStream>> {
    let mut tx = state.store.begin().await?;
    let now = Timestamp::now();
    let current = store::get_stored(&mut tx, auth.account(), id, now).await?;
    let before = current.stream.clone();
    let proposed = Proposed {
        name: body.name.as_deref().unwrap_or(&before.name),
        sink: body.sink.as_ref(),
        format: body.format.as_deref().unwrap_or(before.format.as_str()),
        filter: body.filter.clone().unwrap_or_else(|| before.filter.clone()),
        batch: body.batch.unwrap_or(before.batch),
        include_snapshots: body.include_snapshots.unwrap_or(before.include_snapshots),
        paused: body.paused.unwrap_or(before.paused),
    };
    let fields = check(&state, &mut tx, &auth, id, proposed, Some(&current)).await?;
    let stream = store::update(&mut tx, auth.account(), id, &fields, now)
        .await?
        .stream;
    let secrets_changed = fields.secrets.len() != current.secrets.len()
        || body.sink.as_ref().is_some_and(|sink| {
            sink.as_object()
                .is_some_and(|o| o.get("secret").is_some_and(|s| !s.is_null()))
        });
    tx.record(
        auth.did(Action::AuditStreamUpdate, &stream)
            .before(&snapshot(&before))
            .after(&snapshot(&stream))
            .metadata(json!({"secrets_changed": secrets_changed})),
    )
    .await?;
    tx.commit().await?;
    state.bus.audit_linked.notify_one();
    Ok(Json(stream))
}

/// Delete an audit stream and its attempts.
#[utoipa::path(delete, path = "/audit-streams/{id}", tag = "audit-streams",
    params(("id" = String, Path)), responses((status = 204)))]
async fn delete_stream(
    State(state): State<AppState>,
    auth: Require<AuditStreamsManage>,
    AppPath(id): AppPath<Id<AuditStream>>,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    let before = store::get(&mut tx, auth.account(), id, Timestamp::now()).await?;
    store::delete(&mut tx, auth.account(), id).await?;
    tx.record(
        auth.did(Action::AuditStreamDelete, &before)
            .before(&snapshot(&before))
            .metadata(json!({"delivered_seq": before.status.delivered_seq})),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
