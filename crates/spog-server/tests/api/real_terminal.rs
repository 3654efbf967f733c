//! The web terminal end to end with the real `spog-agent` and a real PTY (SPEC 13), on each
//! backend: what the shell wrote reaches the browser, and the recording's `.cast` holds exactly
//! those bytes.

use std::time::{Duration, Instant};

use futures::SinkExt;
use serde_json::Value;
use spog_server::testing::{Client, TestServer};
use tokio_tungstenite::tungstenite::Message;

use crate::agent_binary::{Agent, Child, running_agent_with};
use crate::agents::eventually;
use crate::servers;
use crate::terminal::{Socket, closed};
use crate::web_terminal::{Received, next, open};

const TERMINALS: &str = "[terminal]\nenabled = true\nuser = \"root\"\nshell = \"/bin/sh\"";

/// Reads the browser's socket until the bytes received contain `needle`; every byte
/// received so far is appended to `all`.
async fn until(browser: &mut Socket, all: &mut Vec<u8>, needle: &[u8]) {
    let started = Instant::now();
    while !all.windows(needle.len()).any(|w| w == needle) {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no {:?} in {:?}",
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(all)
        );
        match next(browser).await {
            Received::Bytes(bytes) => all.extend_from_slice(&bytes),
            Received::Json(value) => panic!("unexpected {value}"),
        }
    }
}

async fn type_in(browser: &mut Socket, text: &str) {
    browser
        .send(Message::Binary(text.as_bytes().to_vec().into()))
        .await
        .unwrap();
}

/// A real agent configured with `extra`, enrolled, running and connected: (agent, its
/// process, host id).
async fn connected_agent(
    server: &TestServer,
    admin: &Client,
    extra: &str,
) -> (Agent, Child, String) {
    let running = running_agent_with(server, admin, extra).await;
    let agent = format!("/hosts/{}/agent", running.2);
    eventually(admin, &agent, Duration::from_secs(20), |a| {
        a["connected"] == true
    })
    .await;
    running
}

/// `spog-agent shell -c CMD` as sshd runs it (`ssh`: its `SSH_CONNECTION`), stdin not a
/// terminal.
async fn spog_agent_shell(agent: &Agent, cmd: &str, ssh: Option<&str>) -> std::process::Output {
    let mut command = std::process::Command::new(crate::agent_binary::agent_binary());
    command
        .args(["shell", "--config"])
        .arg(agent.config())
        .args(["-c", cmd])
        .env_remove("SSH_CONNECTION")
        .env_remove("SSH_ORIGINAL_COMMAND")
        .stdin(std::process::Stdio::null());
    if let Some(connection) = ssh {
        command.env("SSH_CONNECTION", connection);
    }
    tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap()
}

async fn cast_of(admin: &Client, host: &str) -> (Value, String) {
    let (_, recordings) = admin
        .get(&format!("/terminal/recordings?host_id={host}"))
        .await;
    let recording = recordings["items"][0].clone();
    let id = recording["id"].as_str().unwrap();
    let cast = admin
        .request(
            reqwest::Method::GET,
            &format!("/terminal/recordings/{id}/cast"),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (recording, cast)
}

#[tokio::test]
async fn a_real_shell_in_the_browser_is_recorded_byte_for_byte() {
    for server in servers().await {
        let admin = server.admin().await;
        let (agent, _child, host) = connected_agent(&server, &admin, TERMINALS).await;
        let mut browser = open(&admin, &host, "?cols=90&rows=20")
            .await
            .unwrap_or_else(|(status, body)| panic!("{status} {body}\n{}", agent.log()));
        let session = match next(&mut browser).await {
            Received::Json(session) => session,
            other => panic!("expected the session, got {other:?}"),
        };
        assert_eq!(session["type"], "session");
        assert_eq!(session["os_user"], "root");

        let mut received = Vec::new();
        type_in(&mut browser, "echo hello\r").await;
        until(&mut browser, &mut received, b"hello\r\n").await;
        // UTF-8 and a byte that is not, written by the shell itself.
        type_in(
            &mut browser,
            "printf 'caf\\303\\251 \\342\\202\\254 \\377 end\\n'\r",
        )
        .await;
        until(&mut browser, &mut received, b" end\r\n").await;
        browser
            .send(Message::Text(
                r#"{"type":"resize","cols":100,"rows":30}"#.into(),
            ))
            .await
            .unwrap();
        type_in(&mut browser, "stty size\r").await;
        until(&mut browser, &mut received, b"30 100\r\n").await;
        type_in(&mut browser, "exit 5\r").await;
        let exit = loop {
            match next(&mut browser).await {
                Received::Bytes(bytes) => received.extend_from_slice(&bytes),
                Received::Json(value) => break value,
            }
        };
        assert_eq!(exit["type"], "exit", "{exit}");
        assert_eq!(exit["reason"], "exited");
        assert_eq!(exit["exit_code"], 5);
        assert_eq!(closed(&mut browser).await.0, 1000);

        let (recording, cast) = cast_of(&admin, &host).await;
        assert_eq!(recording["end_reason"], "exited");
        assert_eq!(recording["exit_code"], 5);
        assert_eq!(recording["os_user"], "root");
        assert_eq!(recording["shell"], "/bin/sh");
        let output: String = cast
            .lines()
            .skip(1)
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .filter(|event| event[1] == "o")
            .map(|event| event[2].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            output,
            String::from_utf8_lossy(&received),
            "the recording holds what the browser received"
        );
        assert!(output.contains("café € \u{fffd} end"), "{output}");
        assert!(cast.contains(r#""r", "100x30""#), "{cast}");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_command_run_through_spog_agent_shell_over_ssh_is_recorded_without_a_spog_user() {
    for server in servers().await {
        let admin = server.admin().await;
        let shells = "[shell]\nprogram = \"/bin/sh\"";
        let (agent, _child, host) = connected_agent(&server, &admin, shells).await;
        let ssh = Some("203.0.113.9 52144 10.0.0.5 22");
        let output = spog_agent_shell(&agent, "echo from-ssh; exit 4", ssh).await;
        assert_eq!(output.status.code(), Some(4), "{}", agent.log());
        assert_eq!(String::from_utf8_lossy(&output.stdout), "from-ssh\n");

        let recordings = eventually(
            &admin,
            &format!("/terminal/recordings?host_id={host}"),
            Duration::from_secs(20),
            |r| r["items"][0]["end_reason"] == "exited",
        )
        .await;
        let recording = &recordings["items"][0];
        assert_eq!(recording["origin"], "ssh", "{recording}");
        assert_eq!(recording["os_user"], "root");
        assert_eq!(recording["client_addr"], "203.0.113.9:52144");
        assert_eq!(recording["user_id"], Value::Null);
        assert_eq!(recording["exit_code"], 4);
        let (_, cast) = cast_of(&admin, &host).await;
        assert!(cast.contains("from-ssh"), "{cast}");
        let session = recording["session_id"].as_str().unwrap();
        let (_, entries) = admin
            .get(&format!("/audit-logs?resource_id={session}"))
            .await;
        let start = entries["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == "terminal_session.start")
            .expect("the start on record")
            .clone();
        assert_eq!(start["actor_type"], "agent", "{start}");
        assert_eq!(start["metadata"]["origin"], "ssh");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_shell_run_while_spog_is_down_is_uploaded_once_it_is_back() {
    for server in servers().await {
        let admin = server.admin().await;
        let shells = "[shell]\nprogram = \"/bin/sh\"";
        let (agent, _child, host) = connected_agent(&server, &admin, shells).await;
        let addr: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
        let database = server.database.clone();
        server.stop().await;

        // The user's shell never waits on the hub: the agent spools it.
        let output = spog_agent_shell(&agent, "echo while-spog-was-away", None).await;
        assert_eq!(output.status.code(), Some(0), "{}", agent.log());

        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("the port again");
        let config = spog_server::testing::test_config(&database, crate::temp_dir());
        let restarted =
            spog_server::testing::TestServer::start_on(database, config, listener).await;
        let admin = restarted.admin().await;
        let recordings = eventually(
            &admin,
            &format!("/terminal/recordings?host_id={host}"),
            Duration::from_secs(30),
            |r| r["items"][0]["end_reason"] == "exited",
        )
        .await;
        assert_eq!(recordings["items"][0]["origin"], "local");
        assert_eq!(recordings["items"].as_array().unwrap().len(), 1);
        let (_, cast) = cast_of(&admin, &host).await;
        assert!(cast.contains("while-spog-was-away"), "{cast}");
        restarted.stop().await;
    }
}
