//! Sending audit streams (SPEC 3.5): a batch of the chain formatted for its stream, handed to
//! the stream's sink through the guarded outbound transports. [`sender`] drives each stream's
//! cursor; the API's test uses [`send`] directly.

pub mod alerts;
pub mod https;
pub mod sender;
pub mod splunk;
pub mod syslog;

use std::time::Duration;

use spog_core::Id;
use spog_core::audit::{EntryFields, write_entry_json};
use spog_core::audit_streams::{AuditStream, Format, Sink, SinkSecrets, ocsf_event, write_cef};
use spog_core::model::Account;
use spog_store::audit::checkpoints::Checkpoint;

use crate::state::AppState;

/// A batch ready for a sink: a range of the chain and its matching entries, formatted.
pub struct Batch {
    pub stream_id: Id<AuditStream>,
    pub account_id: Id<Account>,
    pub format: Format,
    /// The chain range covered; `None` for the test's synthetic entry.
    pub range: Option<(i64, i64)>,
    /// One formatted entry each.
    pub entries: Vec<Vec<u8>>,
    /// Signed checkpoints inside the range.
    pub checkpoints: Vec<Checkpoint>,
}

impl Batch {
    pub fn entry_bytes(&self) -> usize {
        self.entries.iter().map(Vec::len).sum()
    }
}

/// What a sink said about a batch.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub success: bool,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    /// Bytes sent.
    pub bytes: usize,
    pub duration: Duration,
    /// The sink asked for a pause this long.
    pub retry_after: Option<Duration>,
    /// The sink refused the batch as too large: a smaller one may pass.
    pub too_large: bool,
}

/// spog's version, as formats name the product.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Formats one entry for the stream's format (JSON for `native` and `ocsf`, a line for
/// `cef`).
pub fn format_entry(format: Format, entry: &EntryFields<'_>, out: &mut Vec<u8>) {
    match format {
        Format::Native => write_entry_json(entry, out),
        Format::Ocsf => serde_json::to_writer(&mut *out, &ocsf_event(entry, VERSION, true))
            .expect("writing to a Vec"),
        Format::Cef => write_cef(entry, VERSION, out),
    }
}

/// One entry as the sink carries it in a batch: formatted, and framed where the sink frames
/// each entry (Splunk's event envelope).
pub fn frame_entry(
    sink: &Sink,
    format: Format,
    account: &str,
    entry: &EntryFields<'_>,
    out: &mut Vec<u8>,
) {
    match sink {
        Sink::Https(_) => format_entry(format, entry, out),
        Sink::SplunkHec(hec) => splunk::frame(hec, format, account, entry, out),
        Sink::Syslog(syslog) => syslog::frame(syslog, format, account, entry, out),
    }
}

/// Sends `batch` to the stream's sink, within `audit_stream_attempt_timeout`.
pub async fn send(state: &AppState, sink: &Sink, secrets: &SinkSecrets, batch: &Batch) -> Outcome {
    let timeout = state.config.audit_stream_attempt_timeout;
    match sink {
        Sink::Https(https) => https::send(state, https, secrets, batch, timeout).await,
        Sink::SplunkHec(hec) => splunk::send(state, hec, secrets, batch, timeout).await,
        Sink::Syslog(syslog) => syslog::send(state, syslog, batch, timeout).await,
    }
}
