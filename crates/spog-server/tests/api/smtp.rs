//! A real SMTP server on 127.0.0.1 for email channel tests: aiosmtpd (PyPI) with its Maildir
//! handler, so tests read what arrived as files. Without Python's aiosmtpd the tests that need
//! it say loudly that they are skipped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct SmtpServer {
    pub port: u16,
    mail_dir: PathBuf,
    child: Child,
}

/// Why the SMTP tests cannot run here, if they cannot.
fn missing() -> Option<String> {
    let found = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (!found).then(|| "python3 with aiosmtpd is not installed (pip install aiosmtpd)".to_owned())
}

/// aiosmtpd with TLS: `port maildir cert key implicit|starttls`.
const TLS_SERVER: &str = r#"
import ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
port, maildir, cert, key, mode = sys.argv[1:6]
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
if mode == "implicit":
    server = Controller(Mailbox(maildir), hostname="127.0.0.1", port=int(port), ssl_context=context)
else:
    server = Controller(Mailbox(maildir), hostname="127.0.0.1", port=int(port),
                        tls_context=context, require_starttls=True)
server.start()
while True:
    time.sleep(3600)
"#;

/// One message as it arrived: its headers and its whole raw text.
#[derive(Clone, Debug)]
pub struct Mail {
    pub raw: String,
}

impl Mail {
    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        let head = self.raw.split("\n\n").next().unwrap_or_default();
        let mut lines = head.lines().peekable();
        while let Some(line) = lines.next() {
            if line.to_ascii_lowercase().starts_with(&prefix) {
                let mut value = line[prefix.len()..].trim().to_owned();
                // Folded continuation lines.
                while let Some(next) = lines.peek().filter(|l| l.starts_with([' ', '\t'])) {
                    value.push(' ');
                    value.push_str(next.trim());
                    lines.next();
                }
                return Some(value);
            }
        }
        None
    }
}

impl SmtpServer {
    /// A plain server listening on a free port; `None` (after saying so) without aiosmtpd.
    pub async fn start() -> Option<SmtpServer> {
        Self::start_with(|port, mail_dir| {
            let mut command = Command::new("python3");
            command
                .args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(mail_dir);
            command
        })
        .await
    }

    /// A server with the certificate `cert` (and its `key`, PEM files) that speaks TLS from
    /// the first byte (`implicit`) or requires STARTTLS (`starttls`).
    pub async fn start_tls(mode: &str, cert: &Path, key: &Path) -> Option<SmtpServer> {
        Self::start_with(|port, mail_dir| {
            let mut command = Command::new("python3");
            command
                .args(["-c", TLS_SERVER, &port.to_string()])
                .arg(mail_dir)
                .args([cert, key])
                .arg(mode);
            command
        })
        .await
    }

    async fn start_with(command: impl FnOnce(u16, &Path) -> Command) -> Option<SmtpServer> {
        if let Some(reason) = missing() {
            eprintln!("\n*** SMTP test SKIPPED: {reason} ***\n");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mail_dir = std::env::temp_dir().join(format!("spog-smtp-{}", uuid::Uuid::now_v7()));
        let child = command(port, &mail_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting aiosmtpd");
        let server = SmtpServer {
            port,
            mail_dir,
            child,
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(server);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("aiosmtpd did not listen on port {port} within 10 s");
    }

    pub fn messages(&self) -> Vec<Mail> {
        let mut files: Vec<PathBuf> = ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(self.mail_dir.join(sub)).ok())
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort_by_key(|path| arrival(path));
        files
            .into_iter()
            .filter_map(|path| std::fs::read_to_string(path).ok())
            .map(|raw| Mail {
                raw: raw.replace("\r\n", "\n"),
            })
            .collect()
    }

    /// Waits until at least `count` messages arrived; panics after `within`.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Mail> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "expected {count} emails within {within:?}, got {}",
                    messages.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Maildir names start `<seconds>.M<microseconds>P…`, the microseconds not zero-padded, so
/// names sort by arrival only once parsed.
fn arrival(path: &std::path::Path) -> (u64, u64, String) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut parts = name.split('.');
    let seconds = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let micros = parts
        .next()
        .and_then(|p| p.strip_prefix('M'))
        .map(|p| {
            p.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0);
    (seconds, micros, name)
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.mail_dir);
    }
}
