//! `spog-agent run`: connect, and after each lost connection wait a jittered back-off and
//! connect again, while metrics are sampled on their own schedule into a bounded buffer and the
//! facts are checked every ten minutes. Ends on SIGTERM/SIGINT, or when the credential is
//! refused.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use spog_protocol::{Facts, encode_samples};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, watch};
use tokio::task::spawn_blocking;
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep, timeout};

use crate::backoff::{Backoff, HEALTHY_CONNECTION};
use crate::buffer::{Batch, SampleBuffer};
use crate::config::AgentConfig;
use crate::enrollment::Enrollment;
use crate::facts::{self, FACTS_CHECK_INTERVAL};
use crate::hub_url::HubUrl;
use crate::metrics::Collector;
use crate::session::{SessionEnd, Target, run_session};
use crate::shell::ShellRelay;
use crate::status::{AgentStatus, ConnectionState, write_status};
use crate::terminal::Terminals;
use crate::tls::TrustedRoots;

/// How `run` ended.
#[derive(Debug, PartialEq, Eq)]
pub enum RunOutcome {
    Stopped,
    /// The hub refused the credential: exit status 3, which the unit does not restart.
    CredentialRevoked,
}

/// What the sampler, the facts watcher and the connection share.
pub struct Shared {
    buffer: Mutex<SampleBuffer>,
    /// A batch was added to the buffer.
    pub samples_ready: Notify,
    facts: Mutex<Facts>,
    /// The facts differ from those last sent.
    pub facts_changed: Notify,
    pub terminals: Terminals,
    /// `None` when shell sessions cannot be recorded at all.
    pub shell: Option<ShellRelay>,
}

impl Shared {
    pub fn buffer(&self) -> MutexGuard<'_, SampleBuffer> {
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn facts(&self) -> Facts {
        self.facts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// What `hello` says the agent can do.
    pub fn capabilities(&self) -> spog_protocol::Capabilities {
        let mut capabilities = self.terminals.capabilities();
        capabilities.shell = self.shell.as_ref().is_some_and(|shell| shell.listening);
        capabilities
    }
}

pub async fn run(config: AgentConfig, enrollment: Enrollment) -> Result<RunOutcome, String> {
    let (stop, mut shutdown) = watch::channel(false);
    tokio::spawn(stop_on_signal(stop)?);

    let initial_facts = spawn_blocking(facts::collect)
        .await
        .map_err(|e| format!("reading the host's facts: {e}"))?;
    let shell = crate::shell::start(&config).await;
    let shared = Arc::new(Shared {
        buffer: Mutex::new(SampleBuffer::new(config.metrics_buffer)),
        samples_ready: Notify::new(),
        facts: Mutex::new(initial_facts),
        facts_changed: Notify::new(),
        terminals: Terminals::new(&config.terminal),
        shell,
    });
    let (status, status_writer) = StatusBoard::start(&config, &enrollment, shared.clone());
    let sampler = tokio::spawn(sample_metrics(shared.clone(), config.metrics_interval));
    let watcher = tokio::spawn(watch_facts(shared.clone()));
    tracing::info!(
        version = facts::AGENT_VERSION,
        server = %enrollment.server,
        host_id = %enrollment.host_id,
        interval = ?config.metrics_interval,
        "spog-agent running"
    );
    if config.terminal.enabled {
        tracing::info!(
            user = config.terminal.user.as_deref().unwrap_or_default(),
            max_sessions = config.terminal.max_sessions,
            "web terminals enabled"
        );
    }

    let outcome = connect_until_stopped(&config, enrollment, &shared, &status, &mut shutdown).await;
    // The shells of the last connection were sent SIGHUP as it ended (SIGKILL 5 s later): wait
    // for them, so that none outlives the agent.
    if !shared
        .terminals
        .wait_until_all_ended(SHELLS_END_WITHIN)
        .await
    {
        tracing::warn!("some terminals had not ended when the agent stopped");
    }
    sampler.abort();
    watcher.abort();
    status.update(|s| {
        s.state = match outcome {
            Ok(RunOutcome::CredentialRevoked) => ConnectionState::Revoked,
            _ => ConnectionState::Stopped,
        };
        s.instance_id = None;
        s.next_attempt_at = None;
    });
    drop(status);
    let _ = timeout(Duration::from_secs(3), status_writer).await;
    outcome
}

async fn connect_until_stopped(
    config: &AgentConfig,
    mut enrollment: Enrollment,
    shared: &Shared,
    status: &StatusBoard,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<RunOutcome, String> {
    let mut backoff = Backoff::new(config.reconnect_max_backoff);
    let mut tls: Option<Arc<rustls::ClientConfig>> = None;
    loop {
        let hub = HubUrl::parse(&enrollment.server)?;
        if hub.is_secure() && tls.is_none() {
            let ca_file = config.ca_file.clone();
            let roots = spawn_blocking(move || TrustedRoots::load(ca_file.as_deref()))
                .await
                .map_err(|e| e.to_string())??;
            tls = Some(roots.client_config()?);
        }
        status.update(|s| s.state = ConnectionState::Connecting);
        let target = Target {
            url: &hub.connect_url(),
            credential: &enrollment.credential,
            tls: if hub.is_secure() { tls.clone() } else { None },
        };
        match run_session(target, shared, status, shutdown).await {
            SessionEnd::Shutdown => return Ok(RunOutcome::Stopped),
            SessionEnd::CredentialRefused => {
                // Enrolled again while running? Then carry on with the new credential.
                match reread_enrollment(config.enrollment_path()).await {
                    Some(fresh) if fresh.credential != enrollment.credential => {
                        tracing::info!(host_id = %fresh.host_id, "enrolled again: using the new credential");
                        enrollment = fresh;
                        backoff.reset();
                        status.update(|s| {
                            s.server = enrollment.server.clone();
                            s.host_id = enrollment.host_id.clone();
                        });
                        continue;
                    }
                    _ => return Ok(RunOutcome::CredentialRevoked),
                }
            }
            SessionEnd::Lost {
                reason,
                connected_for,
                prompt,
            } => {
                if prompt || connected_for.is_some_and(|lived| lived >= HEALTHY_CONNECTION) {
                    backoff.reset();
                }
                let delay = backoff.next_delay();
                match connected_for {
                    Some(lived) => {
                        tracing::warn!(%reason, after = ?lived, retry_in = ?delay, "disconnected")
                    }
                    None => tracing::warn!(%reason, retry_in = ?delay, "connection failed"),
                }
                status.update(|s| {
                    s.state = ConnectionState::Disconnected;
                    s.instance_id = None;
                    s.last_error = Some(reason);
                    s.next_attempt_at = Some(facts::rfc3339(SystemTime::now() + delay));
                });
                tokio::select! {
                    _ = sleep(delay) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return Ok(RunOutcome::Stopped),
                }
            }
        }
    }
}

async fn reread_enrollment(path: PathBuf) -> Option<Enrollment> {
    spawn_blocking(move || Enrollment::read(&path))
        .await
        .ok()?
        .ok()
        .flatten()
}

fn stop_on_signal(
    stop: watch::Sender<bool>,
) -> Result<impl Future<Output = ()> + Send + 'static, String> {
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| format!("installing SIGTERM: {e}"))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| format!("installing SIGINT: {e}"))?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
            _ = interrupt.recv() => tracing::info!("SIGINT: stopping"),
        }
        let _ = stop.send(true);
    })
}

/// Samples every `interval`, connected or not, into the bounded buffer.
async fn sample_metrics(shared: Arc<Shared>, interval: Duration) {
    let Ok(mut collector) = spawn_blocking(Collector::new).await else {
        tracing::error!("metrics collector failed to start");
        return;
    };
    let mut ticks = interval_at(Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut overflowing = false;
    loop {
        ticks.tick().await;
        let sampled = spawn_blocking(move || {
            let samples = collector.sample(SystemTime::now());
            (collector, samples)
        })
        .await;
        let samples = match sampled {
            Ok((returned, samples)) => {
                collector = returned;
                samples
            }
            Err(e) => {
                tracing::error!(error = %e, "metrics collection failed; sampling stops");
                return;
            }
        };
        if samples.is_empty() {
            continue;
        }
        let json = match encode_samples(&samples) {
            Ok(json) => json,
            Err(e) => {
                tracing::warn!(error = %e, "a metrics batch could not be encoded");
                continue;
            }
        };
        let (dropped, buffered) = {
            let mut buffer = shared.buffer();
            let dropped = buffer.push(Batch {
                samples: samples.len(),
                json,
            });
            (dropped, buffer.buffered_samples())
        };
        if dropped > 0 && !overflowing {
            tracing::warn!(buffered, "metric buffer full: dropping the oldest samples");
        }
        overflowing = dropped > 0 || (overflowing && buffered > samples.len());
        shared.samples_ready.notify_one();
    }
}

/// Looks at the facts every ten minutes and flags a change.
async fn watch_facts(shared: Arc<Shared>) {
    let mut ticks = interval_at(Instant::now() + FACTS_CHECK_INTERVAL, FACTS_CHECK_INTERVAL);
    loop {
        ticks.tick().await;
        let Ok(fresh) = spawn_blocking(facts::collect).await else {
            continue;
        };
        let mut facts = shared.facts.lock().unwrap_or_else(PoisonError::into_inner);
        if *facts != fresh {
            tracing::info!("host facts changed");
            *facts = fresh;
            shared.facts_changed.notify_one();
        }
    }
}

/// The running agent's state, written to `{state_dir}/status.json` for `spog-agent status`
/// whenever it changes and every minute (with the buffer's counts).
pub struct StatusBoard {
    sender: watch::Sender<AgentStatus>,
}

const STATUS_REFRESH: Duration = Duration::from_secs(60);
/// Hang-up, SIGKILL 5 s later, and the reaping after it.
const SHELLS_END_WITHIN: Duration = Duration::from_secs(7);

impl StatusBoard {
    fn start(
        config: &AgentConfig,
        enrollment: &Enrollment,
        shared: Arc<Shared>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let initial = AgentStatus::starting(enrollment);
        let (sender, mut receiver) = watch::channel(initial);
        let path = config.status_path();
        let writer = tokio::spawn(async move {
            let mut refresh = interval_at(Instant::now() + STATUS_REFRESH, STATUS_REFRESH);
            loop {
                let closed = tokio::select! {
                    changed = receiver.changed() => changed.is_err(),
                    _ = refresh.tick() => false,
                };
                let mut status = receiver.borrow_and_update().clone();
                {
                    let buffer = shared.buffer();
                    status.buffered_samples = buffer.buffered_samples();
                    status.dropped_samples = buffer.dropped_total();
                }
                status.updated_at = facts::rfc3339(SystemTime::now());
                let path = path.clone();
                match spawn_blocking(move || write_status(&path, &status)).await {
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot write the status file"),
                    Err(e) => tracing::warn!(error = %e, "cannot write the status file"),
                    Ok(Ok(())) => {}
                }
                if closed {
                    return;
                }
            }
        });
        (Self { sender }, writer)
    }

    pub fn update(&self, change: impl FnOnce(&mut AgentStatus)) {
        self.sender.send_modify(|status| {
            let before = status.state;
            change(status);
            if status.state != before {
                status.since = facts::rfc3339(SystemTime::now());
            }
        });
    }

    pub fn connected(&self, instance_id: &str) {
        self.update(|s| {
            s.state = ConnectionState::Connected;
            s.instance_id = Some(instance_id.to_owned());
            s.last_error = None;
            s.next_attempt_at = None;
        });
    }
}
