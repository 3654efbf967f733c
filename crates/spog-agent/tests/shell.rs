//! `spog-agent shell` sessions (SPEC 13.3): the real client streaming to the real agent's local
//! socket, the agent spooling and uploading to a test hub on even channels, also after the hub
//! was away.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{FromAgent, Peer, TestAgent, TestHub, WAIT, binary};
use serde_json::{Value, json};

/// Shell sessions run /bin/sh; no terminals unless a test asks.
const SHELL: &str = "metrics_interval = \"1h\"\n[shell]\nprogram = \"/bin/sh\"";

/// The hub's view: every channel's bytes and messages.
struct Hub {
    peer: Peer,
    hello: Value,
    output: HashMap<u32, Vec<u8>>,
    input: HashMap<u32, Vec<u8>>,
    /// (elapsed_us, kind) of every frame, per channel.
    times: HashMap<u32, Vec<(u64, u8)>>,
    messages: Vec<Value>,
    /// What the first `shell_ack` of a channel says the hub already has.
    resume_at: u64,
    /// Answer shell_end with the final shell_ack.
    acknowledging_ends: bool,
}

impl Hub {
    async fn connect(hub: &TestHub) -> Self {
        let mut peer = hub.accept().await;
        let hello = peer.handshake().await;
        Self {
            peer,
            hello,
            output: HashMap::new(),
            input: HashMap::new(),
            times: HashMap::new(),
            messages: Vec::new(),
            resume_at: 0,
            acknowledging_ends: true,
        }
    }

    fn received(&self, channel: u32) -> u64 {
        let len = |map: &HashMap<u32, Vec<u8>>| map.get(&channel).map_or(0, Vec::len) as u64;
        len(&self.output) + len(&self.input)
    }

    async fn pump(&mut self, wait: Duration) -> bool {
        let Some(message) = self.peer.next_from_agent_within(wait).await else {
            return false;
        };
        match message {
            FromAgent::Frame(frame) => {
                let target = if frame.kind == 0 {
                    &mut self.output
                } else {
                    &mut self.input
                };
                target
                    .entry(frame.channel)
                    .or_default()
                    .extend_from_slice(&frame.data);
                self.times
                    .entry(frame.channel)
                    .or_default()
                    .push((frame.elapsed_us, frame.kind));
                self.peer
                    .send_json(json!({"type": "window", "channel": frame.channel,
                                      "bytes": frame.data.len()}))
                    .await;
            }
            FromAgent::Json(message) => {
                let channel = message["channel"].as_u64().unwrap_or(0) as u32;
                match message["type"].as_str().unwrap() {
                    "shell_start" => {
                        assert_eq!(channel % 2, 0, "the agent's channels are even");
                        self.shell_ack(channel, self.resume_at).await;
                    }
                    "shell_end" if self.acknowledging_ends => {
                        let total = self.received(channel) + self.resume_at;
                        self.shell_ack(channel, total).await;
                    }
                    _ => {}
                }
                if message["type"] != "metrics" {
                    self.messages.push(message);
                }
            }
        }
        true
    }

    async fn shell_ack(&mut self, channel: u32, acked_bytes: u64) {
        self.peer
            .send_json(json!({"type": "shell_ack", "channel": channel,
                              "session_id": format!("session-{channel}"),
                              "acked_bytes": acked_bytes}))
            .await;
    }

    async fn until(&mut self, what: &str, within: Duration, condition: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + within;
        while !condition(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero() && self.pump(left).await,
                "no {what} within {within:?}; messages: {:?}; output: {:?}",
                self.messages,
                self.output
                    .iter()
                    .map(|(c, o)| (c, String::from_utf8_lossy(o).into_owned()))
                    .collect::<Vec<_>>()
            );
        }
    }

    fn message(&self, kind: &str, channel: u32) -> Option<&Value> {
        self.messages
            .iter()
            .find(|m| m["type"] == kind && m["channel"] == channel)
    }

    /// The channel of the first `shell_start`.
    async fn shell_started(&mut self) -> (u32, Value) {
        self.until("shell_start", WAIT, |h| {
            h.messages.iter().any(|m| m["type"] == "shell_start")
        })
        .await;
        let start = self
            .messages
            .iter()
            .find(|m| m["type"] == "shell_start")
            .unwrap()
            .clone();
        (start["channel"].as_u64().unwrap() as u32, start)
    }

    fn text(&self, map: &HashMap<u32, Vec<u8>>, channel: u32) -> String {
        String::from_utf8_lossy(map.get(&channel).map_or(&[][..], |o| o)).into_owned()
    }
}

/// `spog-agent shell --config … -c CMD`, stdin not a terminal: (status, stdout, stderr).
async fn shell_command(
    config: &Path,
    command: &str,
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut process = tokio::process::Command::new(binary());
    process
        .args(["shell", "--config"])
        .arg(config)
        .args(["-c", command])
        .env_remove("SSH_CONNECTION")
        .env_remove("SSH_ORIGINAL_COMMAND")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (key, value) in env {
        process.env(key, value);
    }
    let output = tokio::time::timeout(WAIT, process.output())
        .await
        .expect("the shell command finishes")
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn spool_files(agent: &TestAgent) -> usize {
    std::fs::read_dir(agent.state_dir().join("spool"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

async fn until_spool_empty(agent: &TestAgent) {
    let deadline = Instant::now() + WAIT;
    while spool_files(agent) > 0 {
        assert!(Instant::now() < deadline, "the spool was not cleared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_command_over_ssh_is_recorded_on_an_even_channel_and_the_spool_cleared_once_acknowledged()
{
    let hub = TestHub::start().await;
    let agent = TestAgent::enrolled(&hub.url(), SHELL);
    let _child = agent.spawn_run();
    let mut hub_side = Hub::connect(&hub).await;
    assert_eq!(hub_side.hello["capabilities"]["shell"], true);
    let socket = agent.dir.path().join("agent.sock");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o666);

    let (status, stdout, stderr) = shell_command(
        &agent.config,
        "echo out; echo err >&2; exit 4",
        &[("SSH_CONNECTION", "192.0.2.7 50022 192.0.2.1 22")],
    )
    .await;
    assert_eq!(
        (status, stdout.as_str(), stderr.as_str()),
        (4, "out\n", "err\n")
    );

    let (channel, start) = hub_side.shell_started().await;
    assert_eq!(start["os_user"], "root");
    assert_eq!(start["client_addr"], "192.0.2.7:50022");
    assert_eq!(start["shell"], "/bin/sh");
    assert_eq!(
        (start["cols"].as_u64(), start["rows"].as_u64()),
        (Some(80), Some(24))
    );
    assert!(start["started_at"].as_str().unwrap().ends_with('Z'));
    hub_side
        .until("shell_end", WAIT, |h| {
            h.message("shell_end", channel).is_some()
        })
        .await;
    let output = hub_side.text(&hub_side.output, channel);
    assert!(
        output == "out\nerr\n" || output == "err\nout\n",
        "stdout and stderr: {output:?}"
    );
    assert_eq!(
        hub_side.message("exit", channel),
        Some(&json!({"type": "exit", "channel": channel, "exit_code": 4}))
    );
    let end = hub_side.message("shell_end", channel).unwrap();
    assert!(end["ended_at"].as_str().unwrap() >= start["started_at"].as_str().unwrap());
    assert!(end.get("truncated").is_none(), "{end}");
    // Exit and end come after every byte.
    let position = |kind: &str| hub_side.messages.iter().position(|m| m["type"] == kind);
    assert!(position("exit") < position("shell_end"));
    until_spool_empty(&agent).await;

    // Without SSH_CONNECTION the session is local: no client address.
    shell_command(&agent.config, "true", &[]).await;
    hub_side.messages.clear();
    let (_, start) = hub_side.shell_started().await;
    assert!(start.get("client_addr").is_none(), "{start}");
}

#[tokio::test]
async fn an_interactive_session_runs_on_a_pty_in_raw_mode_and_follows_window_changes() {
    let hub = TestHub::start().await;
    let config =
        format!("{SHELL}\n[terminal]\nenabled = true\nuser = \"root\"\nshell = \"/bin/bash\"");
    let agent = TestAgent::enrolled(&hub.url(), &config);
    let _child = agent.spawn_run();
    let mut hub_side = Hub::connect(&hub).await;

    // A console terminal gives the client a real terminal to run on.
    hub_side
        .peer
        .send_json(
            json!({"type": "open", "channel": 1, "session_id": "c", "cols": 100,
                          "rows": 30, "term": "xterm"}),
        )
        .await;
    hub_side
        .until("open_ok", WAIT, |h| h.message("open_ok", 1).is_some())
        .await;
    let login = format!(
        "{} shell --config {}\r",
        binary().display(),
        agent.config.display()
    );
    hub_side.peer.send_frame(1, 1, login.as_bytes()).await;
    let (channel, start) = hub_side.shell_started().await;
    assert_eq!(
        (start["cols"].as_u64(), start["rows"].as_u64()),
        (Some(100), Some(30))
    );

    hub_side
        .peer
        .send_frame(1, 1, b"echo in''ner $((2+3)); stty size\r")
        .await;
    hub_side
        .until("the inner output", WAIT, |h| {
            h.text(&h.output, channel).contains("inner 5\r\n30 100\r\n")
        })
        .await;
    // What the user typed is recorded as input, and shows on the console too.
    assert!(
        hub_side
            .text(&hub_side.input, channel)
            .contains("echo in''ner")
    );
    assert!(hub_side.text(&hub_side.output, 1).contains("inner 5"));

    hub_side
        .peer
        .send_json(json!({"type": "resize", "channel": 1, "cols": 120, "rows": 40}))
        .await;
    hub_side.peer.send_frame(1, 1, b"stty size\r").await;
    hub_side
        .until("the new size", WAIT, |h| {
            h.text(&h.output, channel).contains("40 120\r\n")
        })
        .await;

    hub_side.peer.send_frame(1, 1, b"exit 7\r").await;
    hub_side
        .until("shell_end", WAIT, |h| {
            h.message("shell_end", channel).is_some()
        })
        .await;
    assert_eq!(
        hub_side.message("exit", channel),
        Some(&json!({"type": "exit", "channel": channel, "exit_code": 7}))
    );
    // The client passed the status on, and left the console's terminal as it found it.
    hub_side
        .peer
        .send_frame(
            1,
            1,
            b"s=$?; echo status=$s raw=$(stty -a | grep -c -- -icanon)\r",
        )
        .await;
    hub_side
        .until("the status", WAIT, |h| {
            h.text(&h.output, 1).contains("status=7 raw=0")
        })
        .await;
    let times: Vec<u64> = hub_side.times[&channel].iter().map(|t| t.0).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

#[tokio::test]
async fn sessions_spooled_while_the_hub_is_away_upload_later_from_where_the_hub_left_off() {
    let mut hub = TestHub::start().await;
    let agent = TestAgent::enrolled(
        &hub.url(),
        &format!("reconnect_max_backoff = \"1s\"\n{SHELL}"),
    );
    let _child = agent.spawn_run();
    let hub_side = Hub::connect(&hub).await;
    hub.go_away();
    drop(hub_side);

    // The user's command does not wait for the hub.
    let started = Instant::now();
    let (status, stdout, _) = shell_command(
        &agent.config,
        "printf 'first line\\n'; sleep 0.2; printf 'second line\\n'",
        &[],
    )
    .await;
    assert_eq!((status, stdout.as_str()), (0, "first line\nsecond line\n"));
    assert!(started.elapsed() < Duration::from_secs(5));

    hub.listen_again().await;
    let mut hub_side = Hub::connect(&hub).await;
    // The hub says it already has the first 6 bytes ("first ").
    hub_side.resume_at = 6;
    let (channel, _) = hub_side.shell_started().await;
    hub_side
        .until("shell_end", WAIT, |h| {
            h.message("shell_end", channel).is_some()
        })
        .await;
    assert_eq!(
        hub_side.text(&hub_side.output, channel),
        "line\nsecond line\n"
    );
    // The original times: the second line 0.2 s after the first.
    let times = &hub_side.times[&channel];
    let gap = times.last().unwrap().0 - times[0].0;
    assert!(gap >= 200_000, "{times:?}");
    until_spool_empty(&agent).await;
}

#[tokio::test]
async fn a_session_not_acknowledged_to_its_end_is_uploaded_again_after_a_reconnect() {
    let hub = TestHub::start().await;
    let agent = TestAgent::enrolled(
        &hub.url(),
        &format!("reconnect_max_backoff = \"1s\"\n{SHELL}"),
    );
    let _child = agent.spawn_run();
    let mut hub_side = Hub::connect(&hub).await;
    hub_side.acknowledging_ends = false;

    shell_command(&agent.config, "echo kept", &[]).await;
    let (channel, _) = hub_side.shell_started().await;
    hub_side
        .until("shell_end", WAIT, |h| {
            h.message("shell_end", channel).is_some()
        })
        .await;
    drop(hub_side);
    assert!(spool_files(&agent) > 0, "kept until acknowledged");

    let mut hub_side = Hub::connect(&hub).await;
    hub_side.resume_at = 4;
    let (again, _) = hub_side.shell_started().await;
    assert_eq!(
        again, channel,
        "the same channel, for the hub to find its session"
    );
    hub_side
        .until("shell_end", WAIT, |h| {
            h.message("shell_end", channel).is_some()
        })
        .await;
    assert_eq!(hub_side.text(&hub_side.output, channel), "\n");
    until_spool_empty(&agent).await;
}

#[tokio::test]
async fn without_an_agent_open_runs_unrecorded_with_a_warning_and_closed_refuses() {
    let agent = TestAgent::enrolled("http://127.0.0.1:9", SHELL);
    let (status, stdout, stderr) = shell_command(&agent.config, "echo ran", &[]).await;
    assert_eq!((status, stdout.as_str()), (0, "ran\n"));
    assert!(stderr.contains("session recording unavailable"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let closed = TestAgent::enrolled(
        "http://127.0.0.1:9",
        "[shell]\nprogram = \"/bin/sh\"\non_unavailable = \"closed\"",
    );
    let marker = closed.dir.path().join("ran");
    let (status, stdout, stderr) =
        shell_command(&closed.config, &format!("touch {}", marker.display()), &[]).await;
    assert_eq!(status, 1);
    assert_eq!(stdout, "");
    assert_eq!(stderr, "session recording unavailable: login refused\n");
    assert!(!marker.exists(), "nothing ran");
}

#[tokio::test]
async fn a_full_spool_drops_the_newer_bytes_and_marks_the_session_truncated() {
    let mut hub = TestHub::start().await;
    let agent = TestAgent::enrolled(
        &hub.url(),
        &format!("reconnect_max_backoff = \"1s\"\n{SHELL}\nbuffer_limit = \"1MiB\""),
    );
    let _child = agent.spawn_run();
    let hub_side = Hub::connect(&hub).await;
    hub.go_away();
    drop(hub_side);

    let (status, _, _) = shell_command(
        &agent.config,
        "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo done",
        &[],
    )
    .await;
    assert_eq!(status, 0);

    hub.listen_again().await;
    let mut hub_side = Hub::connect(&hub).await;
    let (channel, _) = hub_side.shell_started().await;
    hub_side
        .until("shell_end", Duration::from_secs(30), |h| {
            h.message("shell_end", channel).is_some()
        })
        .await;
    let end = hub_side.message("shell_end", channel).unwrap();
    assert_eq!(end["truncated"], true, "{end}");
    let kept = hub_side.received(channel);
    assert!(kept > 900_000 && kept <= 1 << 20, "{kept} bytes kept");
    assert!(!hub_side.text(&hub_side.output, channel).contains("done"));
    assert_eq!(
        hub_side.message("exit", channel),
        Some(&json!({"type": "exit", "channel": channel, "exit_code": 0}))
    );
}
