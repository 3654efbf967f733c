//! Headless Chromium driven through chromedriver (WebDriver), one browser per test with a
//! fresh profile, stopped when the test ends.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a page may take to show what a test waits for.
const PATIENCE: Duration = Duration::from_secs(20);

pub struct Browser {
    pub client: Client,
    /// Until stopped.
    driver: Option<Child>,
    profile: PathBuf,
}

/// Why the browser suite cannot run here, if it cannot.
fn missing() -> Option<String> {
    [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .find(|path| !Path::new(path).exists())
        .map(|path| format!("{path} is not installed (apt-get install chromium chromium-driver)"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Browser {
    /// A new headless browser; `None` (after saying so on stderr) when Chromium or
    /// chromedriver is not installed.
    pub async fn open() -> Option<Browser> {
        if let Some(reason) = missing() {
            eprintln!("browser suite skipped: {reason}");
            return None;
        }
        let port = free_port();
        // Its own process group, with the browsers it starts: a failed test still stops them.
        let driver = Command::new(CHROMEDRIVER)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let profile = std::env::temp_dir().join(format!("spog-chromium-{}", uuid::Uuid::now_v7()));
        let browser = Browser {
            client: connect(port, &profile).await,
            driver: Some(driver),
            profile,
        };
        browser
            .client
            .set_window_size(1280, 900)
            .await
            .expect("sizing the window");
        Some(browser)
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigating");
    }

    /// The current URL's path and query.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("the current URL");
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Waits until the current path is `path`.
    pub async fn wait_for_path(&self, path: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let now = self.path().await;
            if now == path {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "expected to be at {path}, still at {now}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    pub async fn is_present(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .expect("searching the page")
            .is_empty()
    }

    /// Whether an element matching `css` is on the page and visible.
    pub async fn is_displayed(&self, css: &str) -> bool {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element.is_displayed().await.expect("checking visibility"),
            Err(_) => false,
        }
    }

    /// The text of the element matching `css`; one that a live refresh replaced between
    /// finding and reading is found again.
    pub async fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.find(css).await.text().await {
                Ok(text) => return text,
                Err(error) if is_stale(&error) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("the text of {css}: {error}"),
            }
        }
    }

    /// Waits until the element matching `css` shows text containing `needle`.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
                && text.contains(needle)
            {
                return text;
            }
            assert!(Instant::now() < deadline, "{css} never showed {needle:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until no element matching `css` is visible.
    pub async fn wait_until_hidden(&self, css: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            // An element replaced while it is checked counts as still there: check again.
            let visible = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.is_displayed().await.unwrap_or(true),
                Err(_) => false,
            };
            if !visible {
                return;
            }
            assert!(Instant::now() < deadline, "{css} stayed visible");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the page's WebSocket is connected (live.js marks the document).
    pub async fn wait_until_live(&self) {
        self.find("html[data-live=on]").await;
    }

    /// `GET path` from inside the page, with its cookies; the response's status and text.
    pub async fn fetch(&self, path: &str) -> (u16, String) {
        let answer = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 fetch(arguments[0], {credentials: 'same-origin'})
                   .then(async r => done([r.status, await r.text()]))
                   .catch(e => done([0, String(e)]));",
                vec![json!(path)],
            )
            .await
            .expect("fetching from the page");
        (
            answer[0].as_u64().expect("a status") as u16,
            answer[1].as_str().expect("a body").to_owned(),
        )
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clearing a field");
        field.send_keys(value).await.expect("typing");
    }

    /// Clicks the element matching `css`; one that a live refresh replaced between finding
    /// and clicking is found again.
    pub async fn click(&self, css: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.find(css).await.click().await {
                Ok(_) => return,
                Err(error) if is_stale(&error) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("clicking {css}: {error}"),
            }
        }
    }

    /// Accepts the confirmation dialog a click opened.
    pub async fn confirm(&self) {
        let deadline = Instant::now() + PATIENCE;
        while self.client.accept_alert().await.is_err() {
            assert!(Instant::now() < deadline, "no confirmation dialog appeared");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Logs in through the login page at `base` and waits for the dashboard.
    pub async fn log_in(&self, base: &str, email: &str, password: &str) {
        self.goto(&format!("{base}/login")).await;
        self.submit_login(email, password).await;
        self.wait_for_path("/").await;
    }

    pub async fn submit_login(&self, email: &str, password: &str) {
        self.fill("#email", email).await;
        self.fill("#password", password).await;
        self.click("#log-in").await;
    }

    /// The value of a cookie the page's site set.
    pub async fn cookie(&self, name: &str) -> Option<String> {
        self.client
            .get_named_cookie(name)
            .await
            .ok()
            .map(|c| c.value().to_owned())
    }

    pub async fn close(mut self) {
        let client = self.client.clone();
        let _ = client.close().await;
        self.stop();
    }

    fn stop(&mut self) {
        let Some(mut driver) = self.driver.take() else {
            return;
        };
        let group = format!("-{}", driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = driver.kill();
        let _ = driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a command failed because its element left the page (an htmx swap replaced it).
fn is_stale(error: &fantoccini::error::CmdError) -> bool {
    matches!(error, fantoccini::error::CmdError::Standard(error)
        if error.error == fantoccini::error::ErrorStatus::StaleElementReference)
}

/// Connects to chromedriver on `port` as soon as it listens, opening a headless Chromium.
async fn connect(port: u16, profile: &Path) -> Client {
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-breakpad",
                "--disable-crash-reporter",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!("an object literal");
    };
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities.clone())
            .connect(&url)
            .await;
        match attempt {
            Ok(client) => return client,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("chromedriver on port {port} did not start a browser: {error}"),
        }
    }
}
