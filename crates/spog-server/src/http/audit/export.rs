//! Export as CSV or JSON Lines, streamed batch by batch so memory stays constant whatever the
//! size; the export itself is on record.

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use spog_core::Timestamp;
use spog_core::audit::{Action, write_entry_json};
use spog_store::audit::{self, ChainBatch};
use utoipa::IntoParams;

use super::filter::{FILTER_NAMES, FilterParams};
use crate::auth::Require;
use crate::auth::permissions::AuditLogsExport;
use crate::error::{ApiError, ApiResult};
use crate::extract::parse_query;
use crate::state::AppState;

/// Entries per read: an export goes at the pace its client reads, and small batches keep
/// what is read ahead small.
const BATCH: i64 = 1_000;
/// Batches encoded at once.
const ENCODERS: usize = 2;

/// The CSV columns of SPEC 3.3, in order, then who made the change with which credential
/// and when the service stored it (SPEC 3.1), empty for entries recorded before those were
/// kept.
const CSV_COLUMNS: [&str; 21] = [
    "id",
    "seq",
    "occurred_at",
    "actor_type",
    "actor_id",
    "actor_email",
    "actor_name",
    "source",
    "ip",
    "action",
    "resource_type",
    "resource_id",
    "resource_name",
    "organization_id",
    "outcome",
    "request_id",
    "prev_hash",
    "hash",
    "credential_id",
    "credential_name",
    "recorded_at",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    JsonLines,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `csv` or `jsonl`.
    pub format: String,
}

/// Export entries matching the filters, in chain order.
#[utoipa::path(get, path = "/audit-logs/export", tag = "audit", params(ExportParams, FilterParams),
    responses((status = 200, description = "The export, streamed",
        content((String = "text/csv"), (String = "application/jsonl")))))]
pub async fn export_audit_logs(
    State(state): State<AppState>,
    auth: Require<AuditLogsExport>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let allowed = [FILTER_NAMES, &["format"][..]];
    let params: ExportParams = parse_query(query.as_deref(), &allowed)?;
    let filter = parse_query::<FilterParams>(query.as_deref(), &allowed)?.parse()?;
    let format = match params.format.as_str() {
        "csv" => Format::Csv,
        "jsonl" => Format::JsonLines,
        _ => return Err(ApiError::field("format", "must be csv or jsonl")),
    };
    let slot = state.downloads.start(&auth)?;
    let mut tx = state.store.begin().await?;
    tx.record(
        auth.entry(Action::AuditLogExport)
            .metadata(json!({"format": params.format, "query": query.clone().unwrap_or_default()})),
    )
    .await?;
    tx.commit().await?;
    audit::link_pending(&state.store, Timestamp::now()).await?;

    let batches = audit::walk(&state.store, auth.account(), filter, BATCH).await?;
    let header = (format == Format::Csv).then(|| Ok(csv_header()));
    // Each batch is encoded off the async workers, the next while one is sent.
    let blocking = state.blocking.clone();
    let rows = batches
        .map(move |batch| {
            blocking.run(move || {
                batch.map(|batch| match format {
                    Format::Csv => csv_rows(&batch),
                    Format::JsonLines => json_lines(&batch),
                })
            })
        })
        .buffered(ENCODERS)
        .map(|encoded| {
            encoded.map_err(|error| {
                // The response has begun: all that is left is to cut it short.
                tracing::error!(%error, "exporting audit entries");
                std::io::Error::other("export failed")
            })
        });
    let body = Body::from_stream(slot.hold(futures::stream::iter(header).chain(rows)));
    let (content_type, extension) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::JsonLines => ("application/jsonl", "jsonl"),
    };
    let filename = format!("audit-logs-{}.{extension}", Timestamp::now().day());
    Ok((
        [
            (CONTENT_TYPE, content_type.to_owned()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response())
}

fn json_lines(batch: &ChainBatch) -> Bytes {
    let mut out = Vec::with_capacity(batch.len() * 700);
    for entry in batch.fields() {
        write_entry_json(&entry, &mut out);
        out.push(b'\n');
    }
    Bytes::from(out)
}

/// The CSV header row.
fn csv_header() -> Bytes {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(CSV_COLUMNS).expect("writing to a Vec");
    Bytes::from(writer.into_inner().expect("flushing a Vec"))
}

fn csv_rows(batch: &ChainBatch) -> Bytes {
    let mut writer = csv::Writer::from_writer(Vec::with_capacity(batch.len() * 400));
    for e in batch.fields() {
        let seq = e.seq.map(|s| s.to_string());
        let occurred_at = e.occurred_at.to_string();
        let recorded_at = e.recorded_at.map(|at| at.to_string());
        let cells = [
            Some(e.id),
            seq.as_deref(),
            Some(occurred_at.as_str()),
            Some(e.actor_type),
            e.actor_id,
            e.actor_email,
            e.actor_name,
            Some(e.source),
            e.ip,
            Some(e.action),
            Some(e.resource_type),
            e.resource_id,
            e.resource_name,
            e.organization_id,
            Some(e.outcome),
            e.request_id,
            e.prev_hash,
            e.hash,
            e.credential_id,
            e.credential_name,
            recorded_at.as_deref(),
        ];
        let cells = cells.map(|cell| neutralise(cell.unwrap_or("")));
        writer
            .write_record(cells.iter().map(|cell| cell.as_bytes()))
            .expect("writing to a Vec");
    }
    Bytes::from(writer.into_inner().expect("flushing a Vec"))
}

/// A cell a spreadsheet would run as a formula is prefixed with `'` so it stays text.
fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::neutralise;

    #[test]
    fn formulas_become_text() {
        assert_eq!(neutralise("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(neutralise("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(neutralise("+1"), "'+1");
        assert_eq!(neutralise("-1"), "'-1");
        assert_eq!(neutralise("\tx"), "'\tx");
        assert_eq!(neutralise("webhook.create"), "webhook.create");
    }
}
