//! Which certificates the agent trusts for the hub: the system's roots, plus the CA of
//! `ca_file`. One set for enrollment (ureq) and for the agent socket (tokio-tungstenite).

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The trusted roots, DER-encoded.
pub struct TrustedRoots {
    certs: Vec<CertificateDer<'static>>,
}

impl TrustedRoots {
    /// The system's roots and the certificates of `ca_file`; an error when `ca_file` is
    /// unreadable or holds no certificate, or when nothing at all is trusted.
    pub fn load(ca_file: Option<&Path>) -> Result<Self, String> {
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::debug!(%error, "skipped a system root certificate");
        }
        let mut certs = native.certs;
        if let Some(ca_file) = ca_file {
            let extra = CertificateDer::pem_file_iter(ca_file)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read ca_file {}: {e}", ca_file.display()))?;
            if extra.is_empty() {
                return Err(format!(
                    "ca_file {} holds no PEM certificate",
                    ca_file.display()
                ));
            }
            certs.extend(extra);
        }
        if certs.is_empty() {
            return Err(
                "no trusted root certificates: install the system's CA bundle or set ca_file"
                    .into(),
            );
        }
        Ok(Self { certs })
    }

    /// A rustls client configuration for the agent socket.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        let mut store = RootCertStore::empty();
        let (added, ignored) = store.add_parsable_certificates(self.certs.iter().cloned());
        if added == 0 {
            return Err("none of the trusted root certificates could be parsed".into());
        }
        if ignored > 0 {
            tracing::debug!(ignored, "ignored unparsable root certificates");
        }
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?
            .with_root_certificates(store)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }

    /// The same roots, for ureq.
    pub fn ureq_config(&self) -> ureq::tls::TlsConfig {
        let certs = self
            .certs
            .iter()
            .map(|der| ureq::tls::Certificate::from_der(der.as_ref()).to_owned())
            .collect();
        ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)))
            .unversioned_rustls_crypto_provider(provider())
            .build()
    }
}

/// ring: lighter to build and run than aws-lc, and enough for a TLS client.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
