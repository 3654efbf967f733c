//! The `https` sink: `POST url` with the batch as one JSON object, signed like a webhook
//! (SPEC 5.2) when the sink has a secret; `webhook-id` names the stream and range.

use std::time::Duration;

use bytes::Bytes;
use spog_core::Timestamp;
use spog_core::audit_streams::{HttpsSink, SinkSecrets, headers_of};

use super::{Batch, Outcome};
use crate::delivery::webhook::signed_request;
use crate::state::AppState;

/// The JSON body: `{"stream_id", "account_id", "format", "from_seq", "to_seq", "entries",
/// "checkpoints"}`, the entries spliced in as they were formatted.
pub fn body(batch: &Batch) -> Vec<u8> {
    let mut out = Vec::with_capacity(batch.entry_bytes() + batch.entries.len() + 512);
    let (from, to) = match batch.range {
        Some((from, to)) => (from.to_string(), to.to_string()),
        None => ("null".to_owned(), "null".to_owned()),
    };
    out.extend_from_slice(
        format!(
            "{{\"stream_id\":\"{}\",\"account_id\":\"{}\",\"format\":\"{}\",\"from_seq\":{from},\"to_seq\":{to},\"entries\":[",
            batch.stream_id,
            batch.account_id,
            batch.format.as_str()
        )
        .as_bytes(),
    );
    for (i, entry) in batch.entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(entry);
    }
    out.extend_from_slice(b"],\"checkpoints\":");
    serde_json::to_writer(&mut out, &batch.checkpoints).expect("checkpoints serialise");
    out.push(b'}');
    out
}

pub async fn send(
    state: &AppState,
    sink: &HttpsSink,
    secrets: &SinkSecrets,
    batch: &Batch,
    timeout: Duration,
) -> Outcome {
    let body = Bytes::from(body(batch));
    let bytes = body.len();
    let id = match batch.range {
        Some((from, to)) => format!("{}:{from}-{to}", batch.stream_id),
        None => format!("{}:test", batch.stream_id),
    };
    let mut request = signed_request(
        &sink.url,
        secrets.get("secret").map(String::as_str),
        &headers_of(secrets),
        &id,
        "audit_stream.batch",
        body,
        Timestamp::now(),
    );
    request
        .headers
        .push(("x-spog-stream".to_owned(), batch.stream_id.to_string()));
    let report = state.engine.http.post(&request, timeout).await;
    Outcome {
        success: report.success,
        status_code: report.status_code,
        too_large: report.status_code == Some(413),
        error: report.error,
        bytes,
        duration: report.duration,
        retry_after: report.retry_after,
    }
}
