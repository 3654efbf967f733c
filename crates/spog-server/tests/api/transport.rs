//! The transport under attack (issue 12): half-sent requests (slowloris), connections over
//! the cap, and who may read `/metrics`.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use spog_server::config::Secret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::servers_with;

/// Connections this test process can afford to open against its own server (each costs a
/// descriptor on both sides).
fn affordable(wanted: usize) -> usize {
    let limit = spog_server::open_files::raise_limit().unwrap_or(1024);
    wanted.min((limit.saturating_sub(300) / 2) as usize)
}

async fn healthz_within(base: &str) -> Duration {
    let started = Instant::now();
    let response = reqwest::Client::new()
        .get(format!("{base}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("/healthz answers");
    assert_eq!(response.status(), StatusCode::OK);
    started.elapsed()
}

/// Whether the server has closed `stream` (it reads the end, or a reset).
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A response (408 or the like) before the close.
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn half_sent_requests_neither_starve_healthz_nor_outlive_the_header_timeout() {
    let count = affordable(1_000);
    let servers = servers_with(|c| c.header_read_timeout = Duration::from_secs(2)).await;
    let server = servers.into_iter().next().unwrap();
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut attackers = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        // A request line and one header, then nothing: the headers never end.
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: spog\r\n")
            .await
            .unwrap();
        attackers.push(stream);
    }
    let took = healthz_within(&server.base).await;
    assert!(
        took < Duration::from_secs(1),
        "/healthz took {took:?} beside {count} half-sent requests"
    );
    // A connection that sends a byte now and then gains nothing: the deadline stands.
    for stream in attackers.iter_mut().take(10) {
        let _ = stream.write_all(b"X").await;
    }
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let mut open = 0;
    for stream in &mut attackers {
        if !closed_by_server(stream).await {
            open += 1;
        }
        if open > 0 {
            break;
        }
    }
    assert_eq!(open, 0, "half-sent requests outlived header_read_timeout");
    assert!(healthz_within(&server.base).await < Duration::from_secs(1));
    server.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let servers = servers_with(|c| c.header_read_timeout = Duration::from_secs(1)).await;
    let server = servers.into_iter().next().unwrap();
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: spog\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Kept alive, then silent: closed once the next request's headers are overdue.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(closed_by_server(&mut stream).await);
    server.stop().await;
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_at_once_and_served_again_when_slots_free() {
    let servers = servers_with(|c| {
        c.max_connections = 8;
        c.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let server = servers.into_iter().next().unwrap();
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut holders = Vec::new();
    for _ in 0..8 {
        holders.push(TcpStream::connect(&addr).await.unwrap());
    }
    let started = Instant::now();
    let mut over = TcpStream::connect(&addr).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(1), over.read_to_end(&mut answer)).await;
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 503"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(started.elapsed() < Duration::from_millis(500));
    // The silent holders are closed by the header timeout, and their slots serve again.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(healthz_within(&server.base).await < Duration::from_secs(1));
    drop(holders);
    server.stop().await;
}

async fn scrape(url: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn metrics_are_not_served_without_a_token_or_a_separate_address() {
    for server in servers_with(|_| {}).await {
        let (status, _) = scrape(&format!("{}/metrics", server.base), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        server.stop().await;
    }
}

#[tokio::test]
async fn metrics_on_the_main_listener_need_the_metrics_token() {
    let token = "scraper's long metrics token";
    for server in servers_with(|c| c.metrics_token = Some(Secret::new(token))).await {
        let url = format!("{}/metrics", server.base);
        let (status, body) = scrape(&url, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(!body.contains("spog_"), "{body}");
        let (status, _) = scrape(&url, Some("scraper's long metrics tokeN")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = scrape(&url, Some("scraper's long metrics token and more")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // A user's session is not the metrics token.
        let admin = server.admin().await;
        let (status, _) = scrape(&url, admin.token.as_deref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, body) = scrape(&url, Some(token)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("spog_http_requests"), "{body}");
        server.stop().await;
    }
}

#[tokio::test]
async fn metrics_listen_serves_metrics_apart_and_the_main_listener_does_not() {
    let listen = "127.0.0.1:0".parse().unwrap();
    for server in servers_with(|c| c.metrics_listen = Some(listen)).await {
        let (status, _) = scrape(&format!("{}/metrics", server.base), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let apart = server.metrics_addr.expect("metrics served apart");
        let (status, body) = scrape(&format!("http://{apart}/metrics"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("spog_http_requests"), "{body}");
        let (status, _) = scrape(&format!("http://{apart}/healthz"), None).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "only /metrics is served there"
        );
        server.stop().await;
    }
}
