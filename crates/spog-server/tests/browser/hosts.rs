//! The fleet in a real browser (SPEC 11.1 "§10 console", 12): enrollment tokens created once
//! and listed by state, hosts with their agents' state, a host's facts and metric charts, and
//! an agent revoked from its host's page.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_core::Timestamp;
use spog_server::testing::{ADMIN_EMAIL, ADMIN_PASSWORD, Client, TestServer};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::browser::Browser;
use crate::servers;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn facts(hostname: &str) -> Value {
    json!({"os": "linux", "os_name": "Debian GNU/Linux 12 (bookworm)", "kernel": "6.1.0-18-amd64",
           "arch": "x86_64", "hostname": hostname, "ips": ["10.0.0.5", "fd00::5"],
           "cpu_count": 4, "memory_bytes": 8_589_934_592u64,
           "boot_time": "2026-11-20T08:00:00Z", "agent_version": "0.3.1"})
}

/// Enrolls `hostname` through the API: (host id, its agent credential).
pub async fn enroll(server: &TestServer, admin: &Client, hostname: &str) -> (String, Client) {
    let (status, created) = admin.post("/enrollment-tokens", json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, enrolled) = server
        .anonymous()
        .post(
            "/agent/enroll",
            json!({"token": created["token"], "hostname": hostname, "facts": facts(hostname)}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{enrolled}");
    (
        enrolled["host_id"].as_str().unwrap().to_owned(),
        admin.with_token(enrolled["credential"].as_str().unwrap()),
    )
}

/// The agent's socket, past `welcome`.
async fn connect(agent: &Client, hostname: &str) -> Socket {
    let capabilities = json!({"terminal": false, "shell": false, "max_sessions": 0});
    connect_with(agent, hostname, capabilities).await
}

/// The agent's socket, past a `hello` saying it can do `capabilities`, and `welcome`.
pub async fn connect_with(agent: &Client, hostname: &str, capabilities: Value) -> Socket {
    let url = agent.url("/agent/connect").replace("http://", "ws://");
    let mut request = url.into_client_request().unwrap();
    let bearer = format!("Bearer {}", agent.token.as_deref().unwrap());
    request
        .headers_mut()
        .insert("authorization", bearer.parse().unwrap());
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "spog-agent.v1".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the agent socket");
    let hello = json!({"type": "hello", "agent_version": "0.3.1", "facts": facts(hostname),
        "capabilities": capabilities});
    socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .unwrap();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("welcome within five seconds")
            .expect("an open socket")
            .expect("a message");
        if let Message::Text(text) = message {
            let welcome: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(welcome["type"], "welcome", "{welcome}");
            return socket;
        }
    }
}

/// The close code the hub ends `socket` with.
async fn close_code(socket: &mut Socket) -> u16 {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("closed within five seconds");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code.into(),
            Some(Ok(Message::Close(None))) | None => return 1005,
            Some(Ok(_)) => continue,
            Some(Err(error)) => panic!("{error}"),
        }
    }
}

fn ago(seconds: i64) -> String {
    Timestamp::from_micros(Timestamp::now().micros() - seconds * 1_000_000).to_string()
}

#[tokio::test]
async fn an_enrollment_token_is_shown_once_with_its_command_listed_by_state_and_revoked() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        let admin = server.admin().await;
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser
            .goto(&format!("{}/admin/enrollment-tokens", server.base))
            .await;
        assert_eq!(
            browser.text("#enrollment-tokens-table").await,
            "No enrollment tokens."
        );
        browser.fill("#new-enrollment-description", "rack 4").await;
        browser.click("#create-enrollment-token-submit").await;
        browser
            .wait_for_text("#enrollment-token-created", "spog_enroll_")
            .await;
        let token = browser.text("#enrollment-token-value").await;
        assert!(token.starts_with("spog_enroll_"), "{token}");
        assert_eq!(
            browser.text("#enroll-command").await,
            format!("spog-agent enroll --server {} --token {token}", server.base)
        );
        browser
            .wait_for_text("#enrollment-tokens-table", "rack 4")
            .await;
        let (_, listed) = admin.get("/enrollment-tokens").await;
        let created = listed["items"][0].clone();
        assert_eq!(created["description"], "rack 4");
        assert_eq!(created["state"], "active");

        // Shown once: nowhere on the page when it is loaded again.
        browser
            .goto(&format!("{}/admin/enrollment-tokens", server.base))
            .await;
        let source = browser.client.source().await.unwrap();
        assert!(!source.contains(&token), "the token is shown only once");
        assert!(!browser.is_displayed("#enrollment-token-created").await);

        // The shown token is the real one: it enrolls a host.
        let (status, enrolled) = server
            .anonymous()
            .post(
                "/agent/enroll",
                json!({"token": token, "hostname": "rack4-1"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{enrolled}");
        let (_, to_revoke) = admin
            .post("/enrollment-tokens", json!({"description": "spare"}))
            .await;
        let (_, revoked) = admin
            .post("/enrollment-tokens", json!({"description": "withdrawn"}))
            .await;
        let path = format!("/enrollment-tokens/{}", revoked["id"].as_str().unwrap());
        assert_eq!(admin.delete(&path).await.0, StatusCode::NO_CONTENT);
        let soon = Timestamp::from_micros(Timestamp::now().micros() + 1_000_000).to_string();
        let (status, _) = admin
            .post(
                "/enrollment-tokens",
                json!({"description": "lapsed", "expires_at": soon}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        tokio::time::sleep(Duration::from_millis(1_200)).await;

        browser
            .goto(&format!("{}/admin/enrollment-tokens", server.base))
            .await;
        let state_of = |description: &str| {
            format!("#enrollment-tokens-list tr[data-description='{description}']")
        };
        for (description, state) in [
            ("rack 4", "used"),
            ("spare", "active"),
            ("withdrawn", "revoked"),
            ("lapsed", "expired"),
        ] {
            let row = browser.find(&state_of(description)).await;
            assert_eq!(
                row.attr("data-state").await.unwrap().as_deref(),
                Some(state),
                "{description}"
            );
        }
        assert!(
            browser.text(&state_of("rack 4")).await.contains("rack4-1"),
            "a used token names the host that enrolled with it"
        );
        // Only an active token can be revoked.
        assert!(
            browser
                .is_present(&format!("{} button.danger", state_of("spare")))
                .await
        );
        for done in ["rack 4", "withdrawn", "lapsed"] {
            assert!(
                !browser
                    .is_present(&format!("{} button.danger", state_of(done)))
                    .await,
                "{done}"
            );
        }

        browser
            .find("#filter-state")
            .await
            .select_by_value("used")
            .await
            .unwrap();
        browser.click("#filter-submit").await;
        browser
            .wait_for_path("/admin/enrollment-tokens?state=used")
            .await;
        let rows = browser
            .client
            .find_all(fantoccini::Locator::Css("#enrollment-tokens-list tbody tr"))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0].attr("data-state").await.unwrap().as_deref(),
            Some("used")
        );

        browser
            .goto(&format!("{}/admin/enrollment-tokens", server.base))
            .await;
        browser
            .click(&format!("{} button.danger", state_of("spare")))
            .await;
        browser.confirm().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let row = browser.find(&state_of("spare")).await;
            if row.attr("data-state").await.ok().flatten().as_deref() == Some("revoked") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "never revoked");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let path = format!("/enrollment-tokens/{}", to_revoke["id"].as_str().unwrap());
        assert_eq!(admin.get(&path).await.1["state"], "revoked");
        server.link_audit().await;
        let (_, trail) = admin
            .get("/audit-logs?action=enrollment_token.revoke")
            .await;
        assert_eq!(trail["items"].as_array().unwrap().len(), 2, "{trail}");

        let (status, page) = browser.fetch("/admin/enrollment-tokens?state=lost").await;
        assert_eq!(status, 422);
        assert!(
            page.contains("must be active, used, expired or revoked"),
            "{page}"
        );
        browser
            .client
            .delete_all_cookies()
            .await
            .expect("clearing cookies");
        server.stop().await;
    }
    browser.close().await;
}

#[tokio::test]
async fn hosts_show_their_agents_and_a_host_page_its_facts_charts_and_revoke() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        let admin = server.admin().await;
        let (_, organizations) = admin.get("/organizations").await;
        let organization = organizations[0]["id"].as_str().unwrap().to_owned();
        let (status, _) = admin
            .post(
                "/hosts",
                json!({"organization_id": organization, "hostname": "bare-1"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (host, agent) = enroll(&server, &admin, "web-1").await;
        let mut socket = connect(&agent, "web-1").await;

        let mut samples = Vec::new();
        for minutes in [30, 20, 10] {
            let at = ago(minutes * 60);
            samples.extend([
                json!({"metric": "cpu.percent", "value": 40.0, "at": at}),
                json!({"metric": "memory.used_percent", "value": 61.5, "at": at}),
                json!({"metric": "disk.used_percent", "value": 70.0, "at": at, "labels": {"mount": "/"}}),
                json!({"metric": "disk.used_percent", "value": 12.0, "at": at, "labels": {"mount": "/var"}}),
                json!({"metric": "load1", "value": 0.5, "at": at}),
                json!({"metric": "load5", "value": 0.4, "at": at}),
                json!({"metric": "load15", "value": 0.3, "at": at}),
                json!({"metric": "net.rx_bytes_per_second", "value": 125_000.0, "at": at, "labels": {"interface": "eth0"}}),
                json!({"metric": "net.tx_bytes_per_second", "value": 2_000.0, "at": at, "labels": {"interface": "eth0"}}),
            ]);
        }
        let (status, body) = admin
            .post("/metrics", json!({"host_id": host, "samples": samples}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");

        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser.goto(&format!("{}/admin/hosts", server.base)).await;
        let web = "tr[data-hostname='web-1']";
        assert_eq!(
            browser.text(&format!("{web} td.agent")).await,
            "connected 0.3.1"
        );
        assert_eq!(
            browser.text(&format!("{web} td.os")).await,
            "Debian GNU/Linux 12 (bookworm)"
        );
        assert!(
            browser.text(&format!("{web} td:nth-child(4)")).await == "online",
            "a connected agent keeps its host online"
        );
        assert_eq!(
            browser.text("tr[data-hostname='bare-1'] td.agent").await,
            "no agent"
        );

        browser.click(&format!("{web} td:first-child a")).await;
        browser.wait_for_path(&format!("/admin/hosts/{host}")).await;
        let shown = browser.text("#host-facts").await;
        for fact in [
            "Debian GNU/Linux 12 (bookworm)",
            "6.1.0-18-amd64",
            "x86_64",
            "10.0.0.5, fd00::5",
            "4",
            "8.0 GiB",
            "2026-11-20 08:00:00 UTC",
            "0.3.1",
        ] {
            assert!(shown.contains(fact), "{fact}: {shown}");
        }
        assert_eq!(browser.text("#agent-state").await, "connected");
        assert!(browser.text("#agent-enrolled").await.ends_with(" UTC"));

        let points = |chart: &str| format!("#{chart} g.series");
        for (chart, lines) in [
            ("chart-cpu", 1),
            ("chart-memory", 1),
            ("chart-disk", 2),
            ("chart-load", 3),
            ("chart-net-rx", 1),
            ("chart-net-tx", 1),
        ] {
            // Read in one script: the live page may redraw the charts between two reads.
            let drawn = browser
                .client
                .execute(
                    "return Array.from(document.querySelectorAll(arguments[0]))
                        .map((line) => line.getAttribute('data-points'));",
                    vec![json!(points(chart))],
                )
                .await
                .unwrap();
            let drawn = drawn.as_array().unwrap();
            assert_eq!(drawn.len(), lines, "{chart}");
            for line in drawn {
                assert_eq!(line, "3", "{chart}");
            }
        }
        let disk = browser.text("#chart-disk .legend").await;
        assert!(
            disk.contains("/ 70%") && disk.contains("/var 12%"),
            "{disk}"
        );
        assert!(
            browser
                .text("#chart-net-rx .legend")
                .await
                .contains("eth0 125 KB/s")
        );
        assert!(
            browser
                .text("#chart-load .legend")
                .await
                .contains("15 min 0.3")
        );

        browser.click("#range-7d").await;
        browser.find("#range-7d[aria-current=page]").await;
        assert!(browser.text("#chart-cpu .legend").await.contains("40%"));
        let (status, _) = browser
            .fetch(&format!("/admin/hosts/{host}/charts?range=2w"))
            .await;
        assert_eq!(status, 400);

        // Live: the agent's socket dropping shows without a reload.
        browser.wait_until_live().await;
        socket.close(None).await.unwrap();
        browser.wait_for_text("#agent-state", "disconnected").await;
        let mut socket = connect(&agent, "web-1").await;
        browser.wait_for_text("#agent-state", "connected").await;

        browser.click("#revoke-agent button").await;
        browser.confirm().await;
        browser.wait_for_text("#agent-state", "revoked").await;
        assert_eq!(close_code(&mut socket).await, 4401);
        let (_, revoked) = admin.get(&format!("/hosts/{host}/agent")).await;
        assert!(revoked["revoked_at"].is_string(), "{revoked}");
        server.link_audit().await;
        let (_, trail) = admin.get("/audit-logs?action=host.agent_revoke").await;
        assert_eq!(trail["items"][0]["resource_id"], host.as_str(), "{trail}");
        assert!(!browser.is_present("#revoke-agent").await);
        browser.goto(&format!("{}/admin/hosts", server.base)).await;
        assert_eq!(
            browser.text(&format!("{web} td.agent")).await,
            "revoked 0.3.1"
        );
        browser
            .client
            .delete_all_cookies()
            .await
            .expect("clearing cookies");
        server.stop().await;
    }
    browser.close().await;
}

#[tokio::test]
async fn a_host_page_without_monitoring_view_has_no_charts_and_no_revoke() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        let admin = server.admin().await;
        let (host, _agent) = enroll(&server, &admin, "db-1").await;
        admin
            .user_with_roles(&server, "auditor@example.com", &["auditor"])
            .await;
        let (_, users) = admin.get("/users").await;
        let auditor_id = users["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == "auditor@example.com")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let grant = format!("/hosts/{host}/access/{auditor_id}");
        assert_eq!(
            admin.post(&grant, json!({})).await.0,
            StatusCode::NO_CONTENT
        );

        browser
            .log_in(
                &server.base,
                "auditor@example.com",
                "a long enough password",
            )
            .await;
        browser
            .goto(&format!("{}/admin/hosts/{host}", server.base))
            .await;
        assert!(browser.text("#host-facts").await.contains("6.1.0-18-amd64"));
        assert_eq!(browser.text("#agent-state").await, "disconnected");
        assert!(!browser.is_present("#host-metrics").await);
        assert!(!browser.is_present("#revoke-agent").await);
        let (status, page) = browser.fetch(&format!("/admin/hosts/{host}/charts")).await;
        assert_eq!(status, 403);
        assert!(page.contains("monitoring.view"), "{page}");
        let (status, _) = browser.fetch("/admin/enrollment-tokens").await;
        assert_eq!(status, 403);
        browser
            .client
            .delete_all_cookies()
            .await
            .expect("clearing cookies");
        server.stop().await;
    }
    browser.close().await;
}
