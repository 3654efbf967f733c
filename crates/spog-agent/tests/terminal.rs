//! Console terminals (SPEC 12.3, 13.1): the real binary, real PTYs and shells, against a test
//! hub that opens channels, types, acknowledges (or withholds) windows and reads the frames.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{FromAgent, Peer, TestAgent, TestHub, WAIT};
use serde_json::{Value, json};

/// The agent's window per channel and direction.
const WINDOW: u64 = 1 << 20;

/// A terminal-enabled agent running bash as root (the tests run as root).
fn root_terminals(extra: &str) -> String {
    format!(
        "metrics_interval = \"1h\"\n[terminal]\nenabled = true\nuser = \"root\"\n\
         shell = \"/bin/bash\"\n{extra}"
    )
}

/// The hub's view of the agent's terminals: every frame and message, sorted by channel.
struct Console {
    peer: Peer,
    output: HashMap<u32, Vec<u8>>,
    /// Output bytes received and not acknowledged with `window`.
    unacked: HashMap<u32, u64>,
    /// Input bytes the agent acknowledged.
    input_acked: HashMap<u32, u64>,
    exits: HashMap<u32, Value>,
    /// `open_ok` and `open_error` answers.
    answers: HashMap<u32, Value>,
    last_elapsed: HashMap<u32, u64>,
    /// Acknowledge output as it arrives.
    acknowledging: bool,
}

impl Console {
    /// Accepts the agent and welcomes it; returns the console and the hello.
    async fn connect(hub: &TestHub) -> (Self, Value) {
        let mut peer = hub.accept().await;
        let hello = peer.handshake().await;
        let console = Self {
            peer,
            output: HashMap::new(),
            unacked: HashMap::new(),
            input_acked: HashMap::new(),
            exits: HashMap::new(),
            answers: HashMap::new(),
            last_elapsed: HashMap::new(),
            acknowledging: true,
        };
        (console, hello)
    }

    /// Reads one message within `wait`; false if none came (or the socket closed).
    async fn pump(&mut self, wait: Duration) -> bool {
        let Some(message) = self.peer.next_from_agent_within(wait).await else {
            return false;
        };
        match message {
            FromAgent::Frame(frame) => {
                assert_eq!(frame.kind, 0, "the agent sends output frames only");
                assert!(!frame.data.is_empty() && frame.data.len() <= 65_536);
                assert!(
                    !self.exits.contains_key(&frame.channel),
                    "output after exit on {}",
                    frame.channel
                );
                let last = self.last_elapsed.insert(frame.channel, frame.elapsed_us);
                assert!(last.unwrap_or(0) <= frame.elapsed_us, "time goes forward");
                let len = frame.data.len() as u64;
                self.output
                    .entry(frame.channel)
                    .or_default()
                    .extend_from_slice(&frame.data);
                let unacked = self.unacked.entry(frame.channel).or_default();
                *unacked += len;
                assert!(
                    *unacked <= WINDOW,
                    "the agent overran the window: {unacked}"
                );
                if self.acknowledging {
                    self.acknowledge(frame.channel).await;
                }
            }
            FromAgent::Json(message) => {
                let channel = message["channel"].as_u64().unwrap_or(0) as u32;
                match message["type"].as_str().unwrap() {
                    "exit" => {
                        let earlier = self.exits.insert(channel, message.clone());
                        assert!(earlier.is_none(), "a second exit: {message}");
                    }
                    "window" => {
                        *self.input_acked.entry(channel).or_default() +=
                            message["bytes"].as_u64().unwrap();
                    }
                    "open_ok" | "open_error" => {
                        let earlier = self.answers.insert(channel, message.clone());
                        assert!(earlier.is_none(), "a second answer: {message}");
                    }
                    "metrics" | "facts" => {}
                    other => panic!("unexpected {other}: {message}"),
                }
            }
        }
        true
    }

    /// Reads until `condition` holds, within `within`.
    async fn until(&mut self, what: &str, within: Duration, condition: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + within;
        while !condition(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero() && self.pump(left).await,
                "no {what} within {within:?}; output so far: {:?}",
                self.output
                    .iter()
                    .map(|(c, o)| (c, String::from_utf8_lossy(o).into_owned()))
                    .collect::<Vec<_>>()
            );
        }
    }

    async fn acknowledge(&mut self, channel: u32) {
        let bytes = self.unacked.insert(channel, 0).unwrap_or(0);
        if bytes > 0 {
            self.peer
                .send_json(json!({"type": "window", "channel": channel, "bytes": bytes}))
                .await;
        }
    }

    async fn open(&mut self, channel: u32, cols: u16, rows: u16) -> Value {
        self.peer
            .send_json(
                json!({"type": "open", "channel": channel, "session_id": "s-1",
                              "cols": cols, "rows": rows, "term": "xterm-256color"}),
            )
            .await;
        self.until("answer to open", WAIT, |c| c.answers.contains_key(&channel))
            .await;
        self.answers[&channel].clone()
    }

    /// Opens a terminal and returns its shell's pid.
    async fn open_shell(&mut self, channel: u32) -> u32 {
        let answer = self.open(channel, 80, 24).await;
        assert_eq!(answer["type"], "open_ok", "{answer}");
        let pid = answer["pid"].as_u64().unwrap() as u32;
        assert!(pid > 1);
        pid
    }

    async fn type_in(&mut self, channel: u32, text: &str) {
        self.peer.send_frame(channel, 1, text.as_bytes()).await;
    }

    fn output_text(&self, channel: u32) -> String {
        String::from_utf8_lossy(self.output.get(&channel).map_or(&[][..], |o| o)).into_owned()
    }

    fn shows(&self, channel: u32, text: &str) -> bool {
        self.output_text(channel).contains(text)
    }

    async fn until_shows(&mut self, channel: u32, text: &str) {
        let what = format!("{text:?} on channel {channel}");
        self.until(&what, WAIT, |c| c.shows(channel, text)).await;
    }

    async fn until_exit(&mut self, channel: u32, within: Duration) -> Value {
        self.until("exit", within, |c| c.exits.contains_key(&channel))
            .await;
        self.exits[&channel].clone()
    }
}

/// Whether `pid` is a live process (a zombie is not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat[stat.rfind(')').unwrap() + 2..].chars().next();
            state != Some('Z')
        }
        Err(_) => false,
    }
}

async fn until_gone(pids: &[u32], within: Duration) {
    let deadline = Instant::now() + within;
    while pids.iter().any(|pid| alive(*pid)) {
        assert!(
            Instant::now() < deadline,
            "still alive after {within:?}: {:?}",
            pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The number after `label` in `text` (`SLEEP=1234`).
fn number_after(text: &str, label: &str) -> Option<u32> {
    text.match_indices(label).find_map(|(at, _)| {
        let digits: String = text[at + label.len()..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits.parse().ok()
    })
}

#[tokio::test]
async fn hello_says_what_the_configuration_allows_and_a_disabled_terminal_is_refused() {
    let hub = TestHub::start().await;
    let agent = TestAgent::enrolled(&hub.url(), "metrics_interval = \"1h\"");
    let mut child = agent.spawn_run();
    let (mut console, hello) = Console::connect(&hub).await;
    assert_eq!(
        hello["capabilities"],
        json!({"terminal": false, "shell": true, "max_sessions": 256})
    );
    let answer = console.open(1, 80, 24).await;
    assert_eq!(
        answer,
        json!({"type": "open_error", "channel": 1, "code": "terminal_disabled",
               "message": "web terminals are not enabled on this host"})
    );
    child.kill().await.unwrap();

    let hub = TestHub::start().await;
    let agent = TestAgent::enrolled(&hub.url(), &root_terminals("max_sessions = 8"));
    let _child = agent.spawn_run();
    let (_console, hello) = Console::connect(&hub).await;
    assert_eq!(
        hello["capabilities"],
        json!({"terminal": true, "shell": true, "max_sessions": 8,
               "terminal_user": "root", "terminal_shell": "/bin/bash"}),
        "the hub records as whom and what the terminals run from each session's start"
    );
}

#[tokio::test]
async fn a_shell_answers_typed_commands_and_its_exit_status_ends_the_channel() {
    let hub = TestHub::start().await;
    let agent = TestAgent::enrolled(&hub.url(), &root_terminals(""));
    let _child = agent.spawn_run();
    let (mut console, _) = Console::connect(&hub).await;

    let pid = console.open_shell(1).await;
    // Quotes split the word, so only the command's output shows it whole, not the echo.
    let command = "echo hel''lo $((6*7))\r";
    console.type_in(1, command).await;
    console.until_shows(1, "hello 42\r\n").await;
    console
        .until("input acknowledged", WAIT, |c| {
            c.input_acked.get(&1) == Some(&(command.len() as u64))
        })
        .await;

    console.type_in(1, "echo by''e; exit 3\r").await;
    let exit = console.until_exit(1, WAIT).await;
    assert_eq!(exit, json!({"type": "exit", "channel": 1, "exit_code": 3}));
    assert!(
        console.shows(1, "bye\r\n"),
        "the output came before the exit"
    );
    until_gone(&[pid], Duration::from_secs(2)).await;

    // Another channel, a plain `exit`: status 0. Nothing more comes for the first.
    console.open_shell(3).await;
    console.type_in(3, "exit\r").await;
    let exit = console.until_exit(3, WAIT).await;
    assert_eq!(exit, json!({"type": "exit", "channel": 3, "exit_code": 0}));
    // Input for a channel that has ended is ignored.
    console.type_in(1, "echo too late\r").await;
    while console.pump(Duration::from_millis(500)).await {}
}

#[tokio::test]
async fn the_shell_is_a_login_shell_of_the_configured_user_in_a_clean_environment() {
    let hub = TestHub::start().await;
    // nobody's own shell is nologin; its home does not exist: the shell starts in `/`.
    let config = "metrics_interval = \"1h\"\n[terminal]\nenabled = true\nuser = \"nobody\"\n\
                  shell = \"/bin/sh\"";
    let agent = TestAgent::enrolled(&hub.url(), config);
    let _child = agent.spawn_run();
    let (mut console, _) = Console::connect(&hub).await;

    let shell = console.open_shell(1).await;
    console
        .type_in(
            1,
            "echo U=$(id -un) G=$(id -gn) H=$HOME T=$TERM D=$(pwd) A=$0 R=${RUST_LOG:-none}\r",
        )
        .await;
    console
        .until_shows(
            1,
            "U=nobody G=nogroup H=/nonexistent T=xterm-256color D=/ A=-sh R=none",
        )
        .await;
    // A session of its own with the PTY as controlling terminal: job control works.
    console
        .type_in(1, "echo SID=$(cut -d' ' -f6 /proc/$$/stat) PID=$$; tty\r")
        .await;
    console.until_shows(1, "/dev/pts/").await;
    let output = console.output_text(1);
    let pid = number_after(&output, "PID=").unwrap();
    assert_eq!(number_after(&output, "SID="), Some(pid), "{output}");
    // Nothing of the agent's leaks into the shell: no socket, pipe, event descriptor or file
    // (what is there is the terminal, and what the shell opened itself for job control).
    let open: Vec<String> = std::fs::read_dir(format!("/proc/{shell}/fd"))
        .unwrap()
        .map(|fd| {
            let target = std::fs::read_link(fd.unwrap().path()).unwrap();
            target.display().to_string()
        })
        .collect();
    assert!(
        open.iter().filter(|fd| fd.starts_with("/dev/pts/")).count() >= 3,
        "{open:?}"
    );
    for fd in &open {
        assert!(
            ["/dev/pts/", "/dev/tty", "/dev/null"]
                .iter()
                .any(|allowed| fd.starts_with(allowed)),
            "{fd} is open in the shell: {open:?}"
        );
    }
}

#[tokio::test]
async fn output_arrives_byte_exact_and_stops_at_the_window_until_the_hub_acknowledges() {
    let hub = TestHub::start().await;
    let agent = TestAgent::enrolled(&hub.url(), &root_terminals(""));
    let _child = agent.spawn_run();
    let (mut console, _) = Console::connect(&hub).await;

    // 3 MiB of UTF-8 text and raw bytes; `stty -opost` passes them through unchanged.
    let mut payload = Vec::with_capacity(3 << 20);
    let mut seed: u32 = 0x2545_f491;
    while payload.len() < 3 << 20 {
        payload.extend_from_slice("héllo wörld ✓ 日本語 — ".as_bytes());
        for _ in 0..200 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            payload.push(seed as u8);
        }
    }
    let file = agent.dir.path().join("payload.bin");
    std::fs::write(&file, &payload).unwrap();

    console.open_shell(1).await;
    console.until_shows(1, "# ").await;
    console.acknowledging = false;
    console
        .type_in(
            1,
            &format!(
                "stty -opost; printf 'MARK%s\\n' START; cat {}; printf 'MARK%s\\n' STOP; stty opost\r",
                file.display()
            ),
        )
        .await;
    // The agent stops at exactly one window of unacknowledged output...
    console
        .until("a full window", WAIT, |c| {
            c.unacked.get(&1) == Some(&WINDOW)
        })
        .await;
    // ...and sends nothing more while the hub withholds `window`.
    assert!(
        !console.pump(Duration::from_secs(2)).await,
        "the agent sent past its window"
    );
    console.acknowledging = true;
    console.acknowledge(1).await;
    console
        .until("the end marker", Duration::from_secs(60), |c| {
            c.shows(1, "MARKSTOP\n")
        })
        .await;

    let output = &console.output[&1];
    let start = output
        .windows(10)
        .position(|w| w == b"MARKSTART\n")
        .expect("the start marker")
        + 10;
    assert!(output.len() >= start + payload.len() + 9);
    assert!(
        output[start..start + payload.len()] == payload[..],
        "the payload arrived changed"
    );
    assert_eq!(
        &output[start + payload.len()..start + payload.len() + 9],
        b"MARKSTOP\n"
    );
}

#[tokio::test]
async fn resize_changes_the_size_the_shell_sees() {
    let hub = TestHub::start().await;
    let agent = TestAgent::enrolled(&hub.url(), &root_terminals(""));
    let _child = agent.spawn_run();
    let (mut console, _) = Console::connect(&hub).await;

    let answer = console.open(1, 100, 30).await;
    assert_eq!(answer["type"], "open_ok");
    console.type_in(1, "stty size\r").await;
    console.until_shows(1, "30 100\r\n").await;
    console
        .peer
        .send_json(json!({"type": "resize", "channel": 1, "cols": 132, "rows": 43}))
        .await;
    console.type_in(1, "stty size\r").await;
    console.until_shows(1, "43 132\r\n").await;
}

#[tokio::test]
async fn close_hangs_up_and_kills_what_ignores_the_hang_up_within_six_seconds() {
    let hub = TestHub::start().await;
    let agent = TestAgent::enrolled(&hub.url(), &root_terminals(""));
    let _child = agent.spawn_run();
    let (mut console, _) = Console::connect(&hub).await;

    // A plain shell: SIGHUP ends it.
    let pid = console.open_shell(1).await;
    console.until_shows(1, "# ").await;
    console
        .peer
        .send_json(json!({"type": "close", "channel": 1, "reason": "closed"}))
        .await;
    let exit = console.until_exit(1, Duration::from_secs(3)).await;
    assert_eq!(exit, json!({"type": "exit", "channel": 1, "signal": 1}));
    until_gone(&[pid], Duration::from_secs(1)).await;

    // A shell that ignores SIGHUP, a background job and a foreground one that do too.
    let pid = console.open_shell(3).await;
    console
        .type_in(3, "trap '' HUP; sleep 1001 & echo BG=$!; sleep 1002\r")
        .await;
    console.until_shows(3, "BG=").await;
    console
        .until("the background pid", WAIT, |c| {
            number_after(&c.output_text(3), "BG=").is_some()
        })
        .await;
    let background = number_after(&console.output_text(3), "BG=").unwrap();
    assert!(alive(background));
    let closed_at = Instant::now();
    console
        .peer
        .send_json(json!({"type": "close", "channel": 3, "reason": "closed"}))
        .await;
    let exit = console.until_exit(3, Duration::from_secs(8)).await;
    assert_eq!(exit, json!({"type": "exit", "channel": 3, "signal": 9}));
    let waited = closed_at.elapsed();
    assert!(
        waited >= Duration::from_millis(4900) && waited <= Duration::from_secs(6),
        "SIGKILL came {waited:?} after close"
    );
    until_gone(&[pid, background], Duration::from_secs(1)).await;
    // Exactly one exit per channel.
    while console.pump(Duration::from_millis(500)).await {}
}

#[tokio::test]
async fn past_max_sessions_an_open_is_refused_until_a_terminal_ends() {
    let hub = TestHub::start().await;
    let agent = TestAgent::enrolled(&hub.url(), &root_terminals("max_sessions = 1"));
    let _child = agent.spawn_run();
    let (mut console, _) = Console::connect(&hub).await;

    console.open_shell(1).await;
    let answer = console.open(3, 80, 24).await;
    assert_eq!(answer["type"], "open_error");
    assert_eq!(answer["code"], "too_many_sessions");
    console.type_in(1, "exit\r").await;
    console.until_exit(1, WAIT).await;
    console.open_shell(5).await;
}

#[tokio::test]
async fn an_unknown_user_is_no_such_user() {
    let hub = TestHub::start().await;
    let config = "metrics_interval = \"1h\"\n[terminal]\nenabled = true\n\
                  user = \"spog-no-such-user\"";
    let agent = TestAgent::enrolled(&hub.url(), config);
    let _child = agent.spawn_run();
    let (mut console, _) = Console::connect(&hub).await;

    let answer = console.open(1, 80, 24).await;
    assert_eq!(answer["code"], "no_such_user", "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("spog-no-such-user"),
        "{answer}"
    );
    // A shell that cannot start is spawn_failed, saying why.
    let hub = TestHub::start().await;
    let agent = TestAgent::enrolled(
        &hub.url(),
        &root_terminals("").replace("/bin/bash", "/nonexistent/shell"),
    );
    let _child = agent.spawn_run();
    let (mut console, _) = Console::connect(&hub).await;
    let answer = console.open(1, 80, 24).await;
    assert_eq!(answer["code"], "spawn_failed", "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/shell"),
        "{answer}"
    );
}

#[tokio::test]
async fn an_even_or_reused_channel_is_a_protocol_violation() {
    let hub = TestHub::start().await;
    let agent = TestAgent::enrolled(&hub.url(), &root_terminals(""));
    let _child = agent.spawn_run();

    let (mut console, _) = Console::connect(&hub).await;
    let pid = console.open_shell(1).await;
    console
        .peer
        .send_json(json!({"type": "open", "channel": 1, "session_id": "s-2",
                          "cols": 80, "rows": 24, "term": "xterm"}))
        .await;
    let frame = console.peer.close_frame().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1008);
    // The connection ended: its shell is hung up.
    until_gone(&[pid], Duration::from_secs(6)).await;

    let (mut console, _) = Console::connect(&hub).await;
    console
        .peer
        .send_json(json!({"type": "open", "channel": 2, "session_id": "s-3",
                          "cols": 80, "rows": 24, "term": "xterm"}))
        .await;
    let frame = console.peer.close_frame().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1008);
}

#[tokio::test]
async fn a_lost_connection_hangs_up_every_shell_and_the_agent_comes_back() {
    let hub = TestHub::start().await;
    let agent = TestAgent::enrolled(
        &hub.url(),
        &format!("reconnect_max_backoff = \"2s\"\n{}", root_terminals("")),
    );
    let _child = agent.spawn_run();
    let (mut console, _) = Console::connect(&hub).await;

    let first = console.open_shell(1).await;
    let second = console.open_shell(3).await;
    // A background job, and a foreground one that says its pid once it is in the foreground.
    console
        .type_in(
            3,
            "sleep 1000 & echo BG=$!; sh -c 'echo FG=$$; exec sleep 1001'\r",
        )
        .await;
    console
        .until("the pids", WAIT, |c| {
            number_after(&c.output_text(3), "FG=").is_some()
        })
        .await;
    let background = number_after(&console.output_text(3), "BG=").unwrap();
    let foreground = number_after(&console.output_text(3), "FG=").unwrap();
    drop(console);

    until_gone(
        &[first, second, background, foreground],
        Duration::from_secs(6),
    )
    .await;
    let (mut console, _) = Console::connect(&hub).await;
    // Sessions do not resume: the numbers are free again.
    console.open_shell(1).await;
}

#[tokio::test]
async fn a_stopping_agent_hangs_up_its_shells_before_it_exits() {
    let hub = TestHub::start().await;
    let agent = TestAgent::enrolled(&hub.url(), &root_terminals(""));
    let mut child = agent.spawn_run();
    let (mut console, _) = Console::connect(&hub).await;

    let pid = console.open_shell(1).await;
    console.until_shows(1, "# ").await;
    let agent_pid = child.id().unwrap().to_string();
    let stopped = tokio::process::Command::new("kill")
        .args(["-TERM", &agent_pid])
        .status()
        .await
        .unwrap();
    assert!(stopped.success());
    assert_eq!(common::exit_code(&mut child).await, 0);
    assert!(!alive(pid), "the shell outlived the agent");
}
