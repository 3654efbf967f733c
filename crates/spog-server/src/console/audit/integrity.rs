//! `GET /audit-logs/integrity`: verify the chain on demand (`POST …/report` with the page's
//! CSRF token: the same walk, and the same `audit_log.verify` entry, as
//! `GET /api/v1/audit-logs/integrity`), the signed checkpoints with a button to sign one now,
//! and what an auditor needs to verify offline.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::IntoResponse;
use spog_core::Permission;
use spog_core::audit::{BrokenLink, BrokenReason};
use spog_store::audit::checkpoints::{self, Checkpoint};

use crate::auth::permissions::AuditLogsView;
use crate::chain::{self, IntegrityReport, PublicKey};
use crate::console::error::{PageError, PageResult};
use crate::console::layout::{Chrome, render, when};
use crate::console::session::{RequirePage, Viewer};
use crate::http::audit::integrity::verify_and_record;
use crate::state::AppState;

/// Checkpoints listed on the page, newest first.
const CHECKPOINTS: u32 = 20;

pub struct CheckpointRow {
    pub seq: i64,
    pub head_hash: String,
    pub signed_at: String,
    pub key_id: String,
}

impl From<Checkpoint> for CheckpointRow {
    fn from(checkpoint: Checkpoint) -> Self {
        CheckpointRow {
            seq: checkpoint.seq,
            head_hash: checkpoint.head_hash,
            signed_at: when(checkpoint.signed_at),
            key_id: checkpoint.key_id,
        }
    }
}

#[derive(Template)]
#[template(path = "audit/checkpoints.html")]
struct CheckpointsPartial {
    checkpoints: Vec<CheckpointRow>,
}

#[derive(Template)]
#[template(path = "audit/integrity.html")]
struct IntegrityPage {
    chrome: Chrome,
    tab: &'static str,
    checkpoints: Vec<CheckpointRow>,
    key: PublicKey,
    can_export: bool,
}

pub struct BrokenRow {
    pub seq: i64,
    pub id: String,
    pub reason: &'static str,
    pub explanation: &'static str,
    pub expected: String,
    pub found: String,
}

impl From<BrokenLink> for BrokenRow {
    fn from(link: BrokenLink) -> Self {
        let (reason, explanation) = match link.reason {
            BrokenReason::HashMismatch => (
                "hash_mismatch",
                "the entry's content no longer matches its hash: it was altered",
            ),
            BrokenReason::PrevMismatch => (
                "prev_mismatch",
                "the entry does not point at its predecessor: a link was altered, or entries removed or reordered",
            ),
            BrokenReason::SeqGap => (
                "seq_gap",
                "seq does not follow its predecessor's: entries are missing",
            ),
        };
        BrokenRow {
            seq: link.seq,
            id: link.id,
            reason,
            explanation,
            expected: link.expected,
            found: link.found,
        }
    }
}

#[derive(Template)]
#[template(path = "audit/integrity_report.html")]
struct ReportPartial {
    valid: bool,
    entries_checked: u64,
    head_seq: i64,
    head_hash: String,
    checked_at: String,
    checkpoint_seq: Option<i64>,
    broken: Vec<BrokenRow>,
    omitted: u64,
}

impl From<IntegrityReport> for ReportPartial {
    fn from(report: IntegrityReport) -> Self {
        let IntegrityReport {
            report,
            checked_at,
            checkpoint_seq,
        } = report;
        ReportPartial {
            valid: report.valid,
            entries_checked: report.entries_checked,
            head_seq: report.head_seq,
            head_hash: report.head_hash,
            checked_at: when(checked_at),
            checkpoint_seq,
            broken: report.broken_links.into_iter().map(Into::into).collect(),
            omitted: report.broken_links_omitted,
        }
    }
}

async fn checkpoint_rows(
    state: &AppState,
    viewer: &Viewer,
) -> Result<Vec<CheckpointRow>, PageError> {
    let mut conn = state.store.conn().await?;
    let list = checkpoints::list(&mut conn, viewer.auth.account(), CHECKPOINTS).await?;
    Ok(list.into_iter().map(Into::into).collect())
}

pub async fn integrity_page(
    State(state): State<AppState>,
    viewer: RequirePage<AuditLogsView>,
) -> PageResult {
    let chrome = Chrome::new(&viewer, "Audit integrity");
    render(&IntegrityPage {
        chrome,
        tab: "integrity",
        checkpoints: checkpoint_rows(&state, &viewer).await?,
        key: chain::public_key(&state.keys),
        can_export: viewer.has(Permission::AuditLogsExport),
    })
}

/// `POST /audit-logs/integrity/report`: runs the verification (recorded as
/// `audit_log.verify`) and shows its result. A POST, since it changes the trail; the
/// [`Viewer`] extractor holds it to the page's CSRF token.
pub async fn report_partial(
    State(state): State<AppState>,
    viewer: RequirePage<AuditLogsView>,
) -> PageResult {
    let report = verify_and_record(&state, &viewer.auth).await?;
    render(&ReportPartial::from(report))
}

/// `GET /audit-logs/integrity/checkpoints`: the checkpoint list, refreshed after signing.
pub async fn checkpoints_partial(
    State(state): State<AppState>,
    viewer: RequirePage<AuditLogsView>,
) -> PageResult {
    render(&CheckpointsPartial {
        checkpoints: checkpoint_rows(&state, &viewer).await?,
    })
}

/// `GET /audit-logs/checkpoints/{seq}/download`: one checkpoint as the JSON that
/// `GET /api/v1/audit-logs/checkpoints` lists and `spog audit verify --checkpoint` reads.
pub async fn checkpoint_download(
    State(state): State<AppState>,
    viewer: RequirePage<AuditLogsView>,
    Path(seq): Path<String>,
) -> PageResult {
    let seq: i64 = seq.parse().map_err(|_| PageError::NotFound)?;
    let mut conn = state.store.conn().await?;
    let checkpoint = checkpoints::by_seq(&mut conn, viewer.auth.account(), seq)
        .await?
        .ok_or(PageError::NotFound)?;
    let body =
        serde_json::to_string_pretty(&checkpoint).map_err(|e| PageError::Internal(e.into()))?;
    Ok((
        [
            (CONTENT_TYPE, "application/json".to_owned()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"checkpoint-{seq}.json\""),
            ),
        ],
        body,
    )
        .into_response())
}
