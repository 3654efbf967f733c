//! What each session's recording holds against what its browser received.

use super::*;

/// `bytes_out` of the host's ended recordings by session id, once those of `sessions` have
/// all ended (or after `WAIT`: the missing ones count as lost).
pub(super) async fn recorded_bytes(
    admin: &Client,
    host: &str,
    sessions: &[Ended],
) -> anyhow::Result<HashMap<String, u64>> {
    let started = Instant::now();
    loop {
        let recordings = host_recordings(admin, host).await?;
        let ended: HashMap<String, u64> = recordings
            .iter()
            .filter(|r| !r["end_reason"].is_null())
            .map(|r| {
                let session = r["session_id"].as_str().unwrap_or_default().to_owned();
                (session, r["bytes_out"].as_u64().unwrap_or(0))
            })
            .collect();
        let all_ended = sessions.iter().all(|s| ended.contains_key(&s.session_id));
        if all_ended || started.elapsed() >= WAIT {
            return Ok(ended);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every recording of the host, page by page.
pub(super) async fn host_recordings(admin: &Client, host: &str) -> anyhow::Result<Vec<Value>> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/terminal/recordings?host_id={host}&limit=500&cursor={c}"),
            None => format!("/terminal/recordings?host_id={host}&limit=500"),
        };
        let (status, body) = admin.get(&path).await;
        anyhow::ensure!(status == StatusCode::OK, "{path}: {status} {body}");
        all.extend(body["items"].as_array().cloned().unwrap_or_default());
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(all),
        }
    }
}

/// Sessions whose recording differs from what the browser received, or is missing.
pub(super) struct Check {
    pub(super) sessions: usize,
    pub(super) lossy: usize,
    /// The first few differences, to print.
    pub(super) examples: Vec<String>,
    pub(super) received: u64,
    pub(super) recorded: u64,
}

pub(super) fn compare(ended: &[Ended], recorded: &HashMap<String, u64>) -> Check {
    let mut check = Check {
        sessions: ended.len(),
        lossy: 0,
        examples: Vec::new(),
        received: 0,
        recorded: 0,
    };
    for session in ended {
        let bytes_out = recorded.get(&session.session_id).copied();
        check.received += session.received;
        check.recorded += bytes_out.unwrap_or(0);
        if bytes_out != Some(session.received) {
            check.lossy += 1;
            if check.examples.len() < 5 {
                check.examples.push(format!(
                    "session {} ({}): browser {} bytes, recording {:?}",
                    session.session_id, session.reason, session.received, bytes_out
                ));
            }
        }
    }
    check
}
