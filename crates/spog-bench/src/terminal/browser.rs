//! The browser's side of a terminal: its socket, what it received, and terminals that print.

use super::*;

/// How a terminal's session ended, seen from its browser: every byte it received.
pub(super) struct Ended {
    pub(super) session_id: String,
    pub(super) received: u64,
    pub(super) reason: String,
    /// When the browser saw the PTY's echo of each `^C`: behind any output still on its way.
    pub(super) interrupts_seen: Vec<Instant>,
}

/// The browser socket of one terminal (SPEC 13.1).
pub(super) struct Terminal {
    pub(super) socket: Socket,
    pub(super) session_id: String,
    pub(super) received: u64,
}

/// The browser's socket to the host's terminal, after the hub's `session` message: (socket,
/// session id).
pub(super) async fn open_socket(client: &Client, host: &str) -> anyhow::Result<(Socket, String)> {
    let url = client
        .url(&format!("/hosts/{host}/terminal?cols=120&rows=40"))
        .replace("http://", "ws://");
    let mut request = url.into_client_request()?;
    let bearer = format!("Bearer {}", client.token.as_deref().unwrap_or_default());
    request
        .headers_mut()
        .insert("authorization", bearer.parse()?);
    // Output messages carry what the agent read at once, up to 64 KiB; leave room.
    let config = WebSocketConfig::default()
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20));
    let connecting = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    let (mut socket, _) = tokio::time::timeout(WAIT, connecting)
        .await
        .map_err(|_| anyhow::anyhow!("opening a terminal timed out"))??;
    let first = next_message(&mut socket).await?;
    let Message::Text(text) = first else {
        anyhow::bail!("output before the session message: {first:?}");
    };
    let message: Value = serde_json::from_str(&text)?;
    anyhow::ensure!(
        message["type"] == "session",
        "instead of the session: {message}"
    );
    let id = message["session_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Ok((socket, id))
}

/// The next message other than a ping or pong; an error after `WAIT` or on a closed socket.
pub(super) async fn next_message<S>(socket: &mut S) -> anyhow::Result<Message>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .map_err(|_| anyhow::anyhow!("nothing from the hub for {} s", WAIT.as_secs()))?
            .ok_or_else(|| anyhow::anyhow!("the terminal's socket ended"))??;
        match message {
            Message::Ping(_) | Message::Pong(_) => continue,
            message => return Ok(message),
        }
    }
}

impl Terminal {
    pub(super) async fn open(client: &Client, host: &str) -> anyhow::Result<Self> {
        let (socket, session_id) = open_socket(client, host).await?;
        Ok(Self {
            socket,
            session_id,
            received: 0,
        })
    }

    pub(super) async fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let sending = self.socket.send(Message::Binary(bytes.to_vec().into()));
        tokio::time::timeout(WAIT, sending)
            .await
            .map_err(|_| anyhow::anyhow!("typing timed out"))??;
        Ok(())
    }

    /// Output until none came for `QUIET`; an error when the session ends.
    pub(super) async fn drain(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < WAIT {
            match tokio::time::timeout(QUIET, self.socket.next()).await {
                Err(_) => return Ok(()),
                Ok(Some(Ok(Message::Binary(bytes)))) => self.received += bytes.len() as u64,
                Ok(Some(Ok(Message::Text(text)))) => {
                    anyhow::bail!("while draining the terminal: {text}")
                }
                Ok(Some(Ok(_))) => continue,
                Ok(other) => anyhow::bail!("the terminal's socket ended: {other:?}"),
            }
        }
        anyhow::bail!("the terminal kept printing for {} s", WAIT.as_secs())
    }

    /// The shell's first prompt drained, then no prompt at all.
    pub(super) async fn quiet_prompt(&mut self) -> anyhow::Result<()> {
        self.drain().await?;
        self.send(QUIET_PROMPT).await?;
        self.drain().await
    }

    /// Types `count` printable bytes one at a time (stopping at `until`), each timed until the
    /// PTY's echo of it reaches the browser.
    pub(super) async fn echo(
        &mut self,
        count: usize,
        until: Option<Instant>,
    ) -> anyhow::Result<Echo> {
        let mut samples = Vec::with_capacity(count);
        for i in 0..count {
            if until.is_some_and(|until| Instant::now() >= until) {
                break;
            }
            if i > 0 && i % KILL_LINE_EVERY == 0 {
                self.send(KILL_LINE).await?;
                self.drain().await?;
            }
            let key = b'a' + (i % 26) as u8;
            let sent = Instant::now();
            self.send(&[key]).await?;
            self.echoed(key).await?;
            samples.push(sent.elapsed());
        }
        self.send(KILL_LINE).await?;
        self.drain().await?;
        Ok(Echo::of(&mut samples))
    }

    /// Reads output until `key` is in it.
    pub(super) async fn echoed(&mut self, key: u8) -> anyhow::Result<()> {
        loop {
            match next_message(&mut self.socket).await? {
                Message::Binary(bytes) => {
                    self.received += bytes.len() as u64;
                    if bytes.contains(&key) {
                        return Ok(());
                    }
                }
                other => anyhow::bail!("waiting for an echo: {other:?}"),
            }
        }
    }

    /// `exit`, then the hub's `exit` message and the close.
    pub(super) async fn exit(mut self) -> anyhow::Result<Ended> {
        self.send(EXIT).await?;
        let (stream, session_id) = (self.socket, self.session_id);
        let (_, stream) = stream.split();
        read_to_end(stream, session_id, self.received, None).await
    }
}

/// Reads a terminal's socket to its close, counting output into `received` (and `total`):
/// how the session ended.
pub(super) async fn read_to_end(
    mut stream: SplitStream<Socket>,
    session_id: String,
    mut received: u64,
    total: Option<Arc<AtomicU64>>,
) -> anyhow::Result<Ended> {
    let mut reason = String::new();
    let mut interrupts_seen = Vec::new();
    let mut last_byte = 0u8;
    loop {
        let message = match next_message(&mut stream).await {
            Ok(message) => message,
            // The close after `exit` may come as the end of the stream.
            Err(_) if !reason.is_empty() => break,
            Err(e) => return Err(e.context(format!("session {session_id}"))),
        };
        match message {
            Message::Binary(bytes) => {
                received += bytes.len() as u64;
                let split_echo = last_byte == b'^' && bytes.first() == Some(&b'C');
                if split_echo || bytes.windows(2).any(|pair| pair == b"^C") {
                    interrupts_seen.push(Instant::now());
                }
                last_byte = bytes.last().copied().unwrap_or(last_byte);
                if let Some(total) = &total {
                    total.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
            }
            Message::Text(text) => {
                let message: Value = serde_json::from_str(&text)?;
                if message["type"] == "exit" {
                    reason = message["reason"].as_str().unwrap_or_default().to_owned();
                } else if message["type"] != "pong" {
                    anyhow::bail!("session {session_id}: {message}");
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    Ok(Ended {
        session_id,
        received,
        reason,
        interrupts_seen,
    })
}

/// Terminals whose output is read and discarded as fast as it comes, on tasks of their own.
pub(super) struct Printers {
    pub(super) keyboards: Vec<SplitSink<Socket, Message>>,
    pub(super) readers: Vec<JoinHandle<anyhow::Result<Ended>>>,
    /// Output bytes all of them received so far.
    pub(super) received: Arc<AtomicU64>,
}

impl Printers {
    pub(super) async fn open(client: &Client, host: &str, count: usize) -> anyhow::Result<Self> {
        let started = Instant::now();
        let opened: Vec<anyhow::Result<(Socket, String)>> = futures::stream::iter(0..count)
            .map(|_| open_socket(client, host))
            .buffer_unordered(16)
            .collect()
            .await;
        let received = Arc::new(AtomicU64::new(0));
        let mut printers = Self {
            keyboards: Vec::with_capacity(count),
            readers: Vec::with_capacity(count),
            received: received.clone(),
        };
        for result in opened {
            let (socket, session_id) = result?;
            let (keyboard, stream) = socket.split();
            printers.keyboards.push(keyboard);
            let total = Some(received.clone());
            printers
                .readers
                .push(tokio::spawn(read_to_end(stream, session_id, 0, total)));
        }
        println!(
            "opened {count} terminals in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(printers)
    }

    /// Types `bytes` into every terminal: when each was sent.
    pub(super) async fn type_all(&mut self, bytes: &[u8]) -> anyhow::Result<Vec<Instant>> {
        let mut sent = Vec::with_capacity(self.keyboards.len());
        for keyboard in &mut self.keyboards {
            let sending = keyboard.send(Message::Binary(bytes.to_vec().into()));
            tokio::time::timeout(WAIT, sending)
                .await
                .map_err(|_| anyhow::anyhow!("typing timed out"))??;
            sent.push(Instant::now());
        }
        Ok(sent)
    }

    /// Waits for every session to end (after `exit` was typed).
    pub(super) async fn ended(self) -> anyhow::Result<Vec<Ended>> {
        let mut ended = Vec::with_capacity(self.readers.len());
        for reader in self.readers {
            ended.push(reader.await??);
        }
        Ok(ended)
    }
}
