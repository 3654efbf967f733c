//! The one outbound delivery engine (SPEC 5.3, DESIGN "one outbound delivery engine"):
//! durable deliveries claimed under a lease, attempted outside any transaction through the
//! guarded transports, recorded and rescheduled by the configured schedule.
//!
//! A target kind is only a formatter plus a transport: [`webhook::prepare`] turns claimed
//! webhook deliveries into signed HTTP requests; [`channel::prepare`] turns notification
//! channel deliveries into Slack, Teams or webhook requests or emails (sent through
//! [`email`]). The queue, state machine, schedule and history are the same for all.

pub mod channel;
pub mod email;
pub mod engine;
pub mod guard;
pub mod http;
pub mod webhook;

use std::time::Duration;

use spog_core::delivery::RetrySchedule;
use spog_store::deliveries::ClaimPolicy;

use crate::config::Config;
use email::{EmailRequest, EmailTransport};
use http::{HttpRequest, HttpTransport, Report};

/// What one attempt of a delivery sends.
#[derive(Clone, Debug)]
pub enum Outgoing {
    Http(HttpRequest),
    /// An email channel's message.
    Email(Box<EmailRequest>),
    /// The delivery cannot be sent as it stands (its target is gone or inactive, its secret
    /// unreadable); the attempt fails with this reason and the schedule goes on.
    Unsendable(String),
}

/// The engine's settings and transports, shared by the worker and synchronous tests.
pub struct Engine {
    pub http: HttpTransport,
    pub email: EmailTransport,
    pub schedule: RetrySchedule,
    pub attempt_timeout: Duration,
    /// The lease of a claim, the per-target in-flight limit and the back-off of targets
    /// that keep timing out.
    pub policy: ClaimPolicy,
    /// Attempts in flight at once on this instance.
    pub concurrency: u32,
}

impl Engine {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let guard = std::sync::Arc::new(guard::Guard::new(config.outbound_allow_cidrs.clone()));
        Ok(Self {
            http: HttpTransport::new(std::sync::Arc::clone(&guard))?,
            email: EmailTransport::new(guard),
            schedule: RetrySchedule::new(config.webhook_retry_schedule.clone()),
            attempt_timeout: config.webhook_attempt_timeout,
            policy: ClaimPolicy {
                lease: config.delivery_lease,
                max_in_flight: config.webhook_max_in_flight,
                timeouts_before_backoff: config.delivery_target_timeouts,
                backoff: config.delivery_target_backoff,
            },
            concurrency: config.delivery_concurrency,
        })
    }

    /// Makes one attempt.
    pub async fn send(&self, outgoing: &Outgoing) -> Report {
        match outgoing {
            Outgoing::Http(request) => self.http.post(request, self.attempt_timeout).await,
            Outgoing::Email(request) => self.email.send(request, self.attempt_timeout).await,
            Outgoing::Unsendable(reason) => Report::failed(reason.clone(), Duration::ZERO),
        }
    }
}
