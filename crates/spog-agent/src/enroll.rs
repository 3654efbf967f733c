//! `spog-agent enroll`: exchanges a one-time enrollment token for the host's credential
//! (`POST /api/v1/agent/enroll`, SPEC 12.1) and keeps it in `{state_dir}/agent.json`.

use std::time::Duration;

use spog_protocol::{EnrollRequest, EnrollResponse};

use crate::config::AgentConfig;
use crate::enrollment::Enrollment;
use crate::facts;
use crate::hub_url::HubUrl;
use crate::tls::TrustedRoots;

const ENROLL_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_RESPONSE_BYTES: u64 = 1 << 20;

pub struct EnrollArgs {
    pub server: String,
    pub token: String,
    pub name: Option<String>,
    pub hostname: Option<String>,
    pub insecure_http: bool,
}

/// Enrolls the host; the message to print on success, the reason on failure.
pub fn enroll(config: &AgentConfig, args: EnrollArgs) -> Result<String, String> {
    let server = args.server.trim().trim_end_matches('/').to_owned();
    let hub = HubUrl::parse(&server)?;
    hub.check_transport(args.insecure_http)?;
    let token = args.token.trim().to_owned();
    if token.is_empty() {
        return Err("--token is empty".into());
    }

    let facts = facts::collect();
    let hostname = args.hostname.unwrap_or_else(|| facts.hostname.clone());
    if hostname.is_empty() {
        return Err("this machine has no hostname: pass --hostname".into());
    }
    let request = EnrollRequest {
        token,
        hostname,
        name: args.name,
        facts: Some(facts),
    };
    let mut builder = ureq::Agent::config_builder()
        .timeout_global(Some(ENROLL_TIMEOUT))
        .http_status_as_error(false)
        .user_agent(concat!("spog-agent/", env!("CARGO_PKG_VERSION")));
    if hub.is_secure() {
        let roots = TrustedRoots::load(config.ca_file.as_deref())?;
        builder = builder.tls_config(roots.ureq_config());
    }
    let agent = ureq::Agent::new_with_config(builder.build());
    let body = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
    let mut response = agent
        .post(&hub.enroll_url())
        .header("content-type", "application/json")
        .send(&body[..])
        .map_err(|e| format!("cannot reach {server}: {e}"))?;
    let status = response.status();
    let text = response
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE_BYTES)
        .read_to_string()
        .map_err(|e| format!("reading the hub's answer: {e}"))?;
    if status.as_u16() != 201 {
        return Err(refusal(status.as_u16(), &text));
    }
    let enrolled: EnrollResponse = serde_json::from_str(&text)
        .map_err(|e| format!("the hub's answer is not an enrollment: {e}"))?;
    let enrollment = Enrollment {
        server,
        host_id: enrolled.host_id.clone(),
        credential: enrolled.credential,
    };
    let path = config.enrollment_path();
    enrollment.write(&path)?;
    Ok(format!(
        "enrolled: host {} (organization {}); credential kept in {}\n\
         start the agent with `spog-agent run` or install it as a service with `spog-agent install`",
        enrolled.host_id,
        enrolled.organization_id,
        path.display()
    ))
}

/// The hub's error (`{"error": {"code", "message"}}`) in one line.
fn refusal(status: u16, body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let error = parsed.as_ref().map(|v| &v["error"]);
    let code = error.and_then(|e| e["code"].as_str());
    let message = error.and_then(|e| e["message"].as_str());
    match (code, message) {
        (Some(code), Some(message)) => format!("enrollment refused ({status} {code}): {message}"),
        _ => {
            let excerpt: String = body.chars().take(200).collect();
            format!("enrollment refused ({status}): {}", excerpt.trim())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hubs_error_is_reported_in_one_line() {
        let body = r#"{"error":{"code":"invalid_enrollment_token","message":"the enrollment token is unknown, used, expired or revoked"}}"#;
        assert_eq!(
            refusal(401, body),
            "enrollment refused (401 invalid_enrollment_token): the enrollment token is unknown, used, expired or revoked"
        );
        assert_eq!(
            refusal(502, "Bad Gateway\n"),
            "enrollment refused (502): Bad Gateway"
        );
    }
}
