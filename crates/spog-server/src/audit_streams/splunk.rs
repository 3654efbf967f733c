//! The `splunk_hec` sink: a batch is Splunk events concatenated, posted to
//! `{url}/services/collector/event` with `Authorization: Splunk {token}`; success is a 200
//! with `"code": 0`, and with `indexer_ack` only once `/services/collector/ack` reports the
//! batch's `ackId` indexed.

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};
use spog_core::audit::EntryFields;
use spog_core::audit_streams::{Format, SinkSecrets, SplunkHecSink};

use super::{Batch, Outcome, format_entry};
use crate::delivery::http::HttpRequest;
use crate::state::AppState;

/// How often an unacknowledged batch is asked about.
const ACK_POLL: Duration = Duration::from_millis(200);

/// One event envelope, a line of its own.
pub fn frame(
    sink: &SplunkHecSink,
    format: Format,
    account: &str,
    entry: &EntryFields<'_>,
    out: &mut Vec<u8>,
) {
    let mut formatted = Vec::with_capacity(768);
    format_entry(format, entry, &mut formatted);
    let event: Value = match format {
        Format::Cef => Value::String(String::from_utf8_lossy(&formatted).into_owned()),
        Format::Native | Format::Ocsf => {
            serde_json::from_slice(&formatted).expect("a formatted entry is JSON")
        }
    };
    let sourcetype = sink.sourcetype.clone().unwrap_or_else(|| match format {
        Format::Native => "spog:audit".to_owned(),
        Format::Ocsf => "spog:audit:ocsf".to_owned(),
        Format::Cef => "spog:audit:cef".to_owned(),
    });
    let mut envelope = json!({
        "time": entry.occurred_at.micros() as f64 / 1e6,
        "source": sink.source,
        "sourcetype": sourcetype,
        "event": event,
        "fields": {"spog_seq": entry.seq, "spog_account_id": account},
    });
    if let Some(host) = &sink.host {
        envelope["host"] = json!(host);
    }
    if let Some(index) = &sink.index {
        envelope["index"] = json!(index);
    }
    serde_json::to_writer(&mut *out, &envelope).expect("writing to a Vec");
    out.push(b'\n');
}

fn request(
    sink: &SplunkHecSink,
    token: &str,
    batch: &Batch,
    path: &str,
    body: Bytes,
) -> HttpRequest {
    HttpRequest {
        url: format!("{}{path}", sink.url),
        headers: vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("authorization".to_owned(), format!("Splunk {token}")),
            (
                "x-splunk-request-channel".to_owned(),
                batch.stream_id.to_string(),
            ),
        ],
        body,
        expect_body: None,
    }
}

pub async fn send(
    state: &AppState,
    sink: &SplunkHecSink,
    secrets: &SinkSecrets,
    batch: &Batch,
    timeout: Duration,
) -> Outcome {
    let started = Instant::now();
    let token = secrets.get("token").map(String::as_str).unwrap_or_default();
    let body = Bytes::from(batch.entries.concat());
    let bytes = body.len();
    let sent = request(sink, token, batch, "/services/collector/event", body);
    let report = state.engine.http.post(&sent, timeout).await;
    let mut outcome = Outcome {
        success: report.success,
        status_code: report.status_code,
        too_large: report.status_code == Some(413),
        error: report.error,
        bytes,
        duration: report.duration,
        retry_after: report.retry_after,
    };
    if !outcome.success {
        return outcome;
    }
    let answer: Value = report
        .response_body
        .as_deref()
        .and_then(|body| serde_json::from_str(body).ok())
        .unwrap_or(Value::Null);
    if answer["code"] != json!(0) {
        outcome.success = false;
        outcome.error = Some(format!(
            "Splunk answered code {} ({})",
            answer["code"],
            answer["text"].as_str().unwrap_or("no text")
        ));
        return outcome;
    }
    if sink.indexer_ack {
        let Some(ack) = answer["ackId"].as_i64() else {
            outcome.success = false;
            outcome.error = Some("indexer_ack is on but Splunk gave no ackId".to_owned());
            return outcome;
        };
        if let Err(error) = acknowledged(state, sink, token, batch, ack, started, timeout).await {
            outcome.success = false;
            outcome.error = Some(error);
        }
    }
    outcome.duration = started.elapsed();
    outcome
}

/// Asks `/services/collector/ack` until the batch is indexed, within the attempt's time.
async fn acknowledged(
    state: &AppState,
    sink: &SplunkHecSink,
    token: &str,
    batch: &Batch,
    ack: i64,
    started: Instant,
    timeout: Duration,
) -> Result<(), String> {
    let body = Bytes::from(json!({"acks": [ack]}).to_string());
    let asked = request(sink, token, batch, "/services/collector/ack", body);
    loop {
        let left = timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(format!("Splunk did not acknowledge ackId {ack} in time"));
        }
        let report = state.engine.http.post(&asked, left).await;
        if !report.success {
            return Err(report
                .error
                .unwrap_or_else(|| "the ack request failed".to_owned()));
        }
        let answer: Value = report
            .response_body
            .as_deref()
            .and_then(|body| serde_json::from_str(body).ok())
            .unwrap_or(Value::Null);
        if answer["acks"][ack.to_string()] == json!(true) {
            return Ok(());
        }
        tokio::time::sleep(ACK_POLL.min(left)).await;
    }
}
