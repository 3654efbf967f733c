//! TLS to the hub: a hub whose certificate a private CA signed is trusted through `ca_file`,
//! for enrollment and for the agent socket, and refused without it.
#![allow(clippy::result_large_err)] // tungstenite's handshake callback decides its error type.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{TestAgent, WAIT, run_binary};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};

/// A private CA (its PEM written to `ca_file`) and a hub certificate for 127.0.0.1 it signed.
fn private_ca(ca_file: &Path) -> TlsAcceptor {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "spog test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(ca_file, ca.pem()).unwrap();

    let hub_key = KeyPair::generate().unwrap();
    let hub = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&hub_key, &ca)
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(hub_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![hub.der().clone()], key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

#[tokio::test]
async fn the_agent_socket_trusts_a_hub_signed_by_the_configured_ca() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    let acceptor = private_ca(&ca_file);
    let agent = TestAgent::enrolled(
        &format!("https://{addr}"),
        &format!(
            "ca_file = \"{}\"\nmetrics_interval = \"1s\"",
            ca_file.display()
        ),
    );
    let _child = agent.spawn_run();

    let (tcp, _) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
    let tls = acceptor.accept(tcp).await.expect("the agent completes TLS");
    let callback = |request: &Request, mut response: Response| {
        assert_eq!(request.uri().path(), "/api/v1/agent/connect");
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("spog-agent.v1"),
        );
        Ok(response)
    };
    let ws = tokio_tungstenite::accept_hdr_async(tls, callback)
        .await
        .unwrap();
    let mut ws = ws;
    use futures_util::StreamExt;
    let hello = timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
    let hello: serde_json::Value = serde_json::from_str(hello.to_text().unwrap()).unwrap();
    assert_eq!(hello["type"], "hello");
}

#[tokio::test]
async fn without_the_ca_the_agent_refuses_the_hubs_certificate() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let acceptor = private_ca(&dir.path().join("ca.pem"));
    let agent = TestAgent::enrolled(&format!("https://{addr}"), "metrics_interval = \"1s\"");
    let _child = agent.spawn_run();

    let (tcp, _) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
    assert!(acceptor.accept(tcp).await.is_err(), "the agent aborts TLS");
    // The agent says why, and tries again.
    let (tcp, _) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
    drop(tcp);
    let log = agent.log();
    assert!(
        log.contains("TLS") && log.contains("UnknownIssuer"),
        "{log}"
    );
}

#[tokio::test]
async fn enrollment_trusts_a_hub_signed_by_the_configured_ca() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    let acceptor = private_ca(&ca_file);
    let agent = TestAgent::unenrolled(&format!("ca_file = \"{}\"", ca_file.display()));
    let hub = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        let mut request = Vec::new();
        let mut chunk = [0u8; 4096];
        // Headers and the small JSON body arrive together or soon after; read until the body's
        // closing brace.
        while !request.ends_with(b"}") {
            let n = tls.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            request.extend_from_slice(&chunk[..n]);
        }
        let body =
            r#"{"host_id":"h-tls","organization_id":"o","credential":"spog_agent_tls","host":{}}"#;
        let response = format!(
            "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        tls.write_all(response.as_bytes()).await.unwrap();
        let _ = tls.shutdown().await;
    });
    let (code, stdout, stderr) = run_binary(&[
        "enroll",
        "--server",
        &format!("https://{addr}"),
        "--token",
        "spog_enroll_tls",
        "--config",
        agent.config.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("h-tls"), "{stdout}");
    timeout(WAIT, hub).await.unwrap().unwrap();
}
