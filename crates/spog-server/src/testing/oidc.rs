//! A real OpenID Connect provider on 127.0.0.1 for tests: `tests/oidc/provider.mjs`, built on
//! npm's `oauth2-mock-server` (installed there by `npm ci`, as `.ci/run` does). One per
//! caller, stopped when dropped. Without node or the package, the tests that need it say
//! loudly that they are skipped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

pub struct OidcProvider {
    pub issuer: String,
    child: Child,
}

fn directory() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// Why the provider cannot run here, if it cannot.
pub fn missing() -> Option<String> {
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !node {
        return Some("node is not installed".to_owned());
    }
    let installed = directory().join("node_modules/oauth2-mock-server").is_dir();
    (!installed).then(|| {
        "oauth2-mock-server is not installed (cd crates/spog-server/tests/oidc && npm ci)"
            .to_owned()
    })
}

impl OidcProvider {
    /// A provider on a free port; `None` (after saying so) without node or the package.
    pub fn start() -> Option<OidcProvider> {
        if let Some(reason) = missing() {
            eprintln!("\n*** single sign-on test SKIPPED: {reason} ***\n");
            return None;
        }
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(directory())
            // The provider exits when its stdin closes: when this value is dropped, or when
            // the test process dies.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the OpenID provider");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("its stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the provider says where it listens");
        let ready: Value = serde_json::from_str(&line).expect("the provider's JSON line");
        Some(OidcProvider {
            issuer: ready["issuer"].as_str().expect("an issuer").to_owned(),
            child,
        })
    }

    /// The identity the next sign-ins are for: `sub` and the claims the tokens carry.
    pub async fn sign_in_as(&self, subject: &str, claims: Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/control/user", self.issuer))
            .json(&json!({"sub": subject, "claims": claims}))
            .send()
            .await
            .expect("the provider answers");
        assert!(response.status().is_success());
    }

    /// A new signing key; the old one is no longer published.
    pub async fn rotate_keys(&self) {
        let response = reqwest::Client::new()
            .post(format!("{}/control/rotate", self.issuer))
            .send()
            .await
            .expect("the provider answers");
        assert!(response.status().is_success());
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
