//! The SMTP transport of email channels, through lettre: STARTTLS required, TLS from the first
//! byte (SMTPS), or plain for internal relays, as the channel's `tls` says, trusting the
//! system's roots and the channel's own CA if it names one. The server's name is resolved here and
//! every address checked by the outbound guard; the connection goes to a checked address (so
//! DNS rebinding cannot slip past) while TLS still verifies the configured name.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use spog_core::channels::SmtpTls;

use super::guard::{Guard, Refused};
use super::http::Report;

/// One email ready to send.
#[derive(Clone)]
pub struct EmailRequest {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: SmtpTls,
    /// A private CA's certificates (PEM).
    pub ca_cert: Option<String>,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl std::fmt::Debug for EmailRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailRequest")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct EmailTransport {
    guard: Arc<Guard>,
}

impl EmailTransport {
    pub fn new(guard: Arc<Guard>) -> Self {
        Self { guard }
    }

    /// Sends `request` as one message to all its recipients, bounded by `timeout`.
    pub async fn send(&self, request: &EmailRequest, timeout: Duration) -> Report {
        let started = Instant::now();
        match tokio::time::timeout(timeout, self.exchange(request, timeout)).await {
            Err(_) => Report::timed_out(timeout, started.elapsed()),
            Ok(Err(error)) => Report::failed(error, started.elapsed()),
            Ok(Ok((code, text))) => Report {
                success: true,
                status_code: Some(code),
                error: None,
                response_body: Some(text),
                duration: started.elapsed(),
                timed_out: false,
                retry_after: None,
            },
        }
    }

    async fn exchange(
        &self,
        request: &EmailRequest,
        timeout: Duration,
    ) -> Result<(u16, String), String> {
        let message = message(request)?;
        let address = self.resolve(&request.host, request.port).await?;
        let tls = match request.tls {
            SmtpTls::Starttls => Tls::Required(tls_parameters(request)?),
            SmtpTls::Implicit => Tls::Wrapper(tls_parameters(request)?),
            SmtpTls::None => Tls::None,
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(address.ip().to_string())
                .port(address.port())
                .tls(tls)
                .hello_name(ClientId::Domain("spog.localdomain".to_owned()))
                .timeout(Some(timeout));
        if let Some(username) = &request.username {
            builder = builder.credentials(Credentials::new(
                username.clone(),
                request.password.clone().unwrap_or_default(),
            ));
        }
        let transport = builder.build();
        let response = transport.send(message).await.map_err(|e| describe(&e))?;
        let code: u16 = response.code().to_string().parse().unwrap_or(250);
        Ok((code, response.message().collect::<Vec<_>>().join(" ")))
    }

    /// The first address of `host` that the guard allows.
    async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, String> {
        let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect();
        let mut refusal = None;
        for address in &resolved {
            match self.guard.check(address.ip()) {
                Ok(()) => return Ok(*address),
                Err(reason) => {
                    refusal.get_or_insert(Refused {
                        target: format!("{host} ({})", address.ip()),
                        reason,
                    });
                }
            }
        }
        Err(match refusal {
            Some(refused) => refused.to_string(),
            None => format!("cannot resolve {host}: no address"),
        })
    }
}

/// TLS verifying the configured name against the system's roots and the channel's CA.
fn tls_parameters(request: &EmailRequest) -> Result<TlsParameters, String> {
    let mut parameters = TlsParameters::builder(request.host.clone());
    if let Some(pem) = &request.ca_cert {
        let ca = Certificate::from_pem(pem.as_bytes())
            .map_err(|e| format!("the channel's tls_ca_cert cannot be read: {e}"))?;
        parameters = parameters.add_root_certificate(ca);
    }
    parameters
        .build_rustls()
        .map_err(|e| format!("TLS setup failed: {e}"))
}

fn message(request: &EmailRequest) -> Result<Message, String> {
    let mailbox = |text: &str| {
        text.parse::<Mailbox>()
            .map_err(|e| format!("invalid address {text}: {e}"))
    };
    let mut builder = Message::builder()
        .from(mailbox(&request.from)?)
        .subject(request.subject.clone());
    for to in &request.to {
        builder = builder.to(mailbox(to)?);
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            request.text.clone(),
            request.html.clone(),
        ))
        .map_err(|e| format!("cannot build the message: {e}"))
}

/// An SMTP error as one line with its causes.
fn describe(error: &lettre::transport::smtp::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
