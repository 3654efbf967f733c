//! Issue 12 items 1–3: a flood of bad logins (each a password hash) must not blow up the
//! server's memory or starve a good login; parallel guesses for one email must not all be
//! checked before the throttle counts them.

use std::time::{Duration, Instant};

use serde_json::json;
use spog_server::testing::{ADMIN_EMAIL, ADMIN_PASSWORD};
use tokio::task::JoinSet;

use super::{
    Answer, Figure, Options, RssSampler, Tally, figure, fresh_client, mb, pooled_client, start,
    timed,
};
use crate::harness::ms;

const ATTACK: &str = "logins";
/// The server trusts the bench as its reverse proxy, so each request can say where it came
/// from; a server without `trusted_proxies` sees them all come from 127.0.0.1.
const PROXY: (&str, &str) = ("trusted_proxies", "127.0.0.1/32");
/// Where the legitimate user's login comes from: no attacker uses it.
const GOOD_ADDRESS: &str = "192.0.2.10";

pub async fn run(postgres: Option<String>, options: Options) -> anyhow::Result<Vec<Figure>> {
    let postgres = postgres.as_deref();
    let mut figures = flood(postgres, &options, false).await?;
    figures.extend(flood(postgres, &options, true).await?);
    figures.push(race(postgres, &options).await?);
    Ok(figures)
}

async fn login(
    http: &reqwest::Client,
    base: &str,
    address: Option<&str>,
    email: &str,
    password: &str,
) -> Answer {
    let mut request = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}));
    if let Some(address) = address {
        request = request.header("x-forwarded-for", address);
    }
    timed(request).await
}

/// `count` bad logins at once, each for its own email, from as many addresses (or from one),
/// and a good login while they run.
async fn flood(
    postgres: Option<&str>,
    options: &Options,
    one_address: bool,
) -> anyhow::Result<Vec<Figure>> {
    let count = options.logins;
    let target = start(postgres, options, &[PROXY]).await?;
    let base = target.base().to_owned();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = target.server().rss_bytes();
    let sampler = RssSampler::start(target.server());
    let http = pooled_client(Duration::from_secs(120));
    let started = Instant::now();
    let mut attackers = JoinSet::new();
    for n in 0..count {
        let (http, base) = (http.clone(), base.clone());
        let address = if one_address {
            "203.0.113.66".to_owned()
        } else {
            format!("10.77.{}.{}", n / 250, n % 250 + 1)
        };
        attackers.spawn(async move {
            let email = format!("flood-{n}@example.com");
            login(&http, &base, Some(&address), &email, "not the password").await
        });
    }
    // The flood is in the server's hands; now a user logs in.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (good, tries) = good_login(&base).await;
    let mut answers = Tally::default();
    while let Some(answer) = attackers.join_next().await {
        answers.add(answer.ok().and_then(|a| a.status));
    }
    let flood_took = started.elapsed();
    let peak = sampler.peak().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = target.server().rss_bytes();
    let growth = peak.saturating_sub(before);
    let sources = if one_address {
        "one address".to_owned()
    } else {
        format!("{count} addresses")
    };
    println!(
        "  {count} bad logins from {sources} answered in {}: {answers}; server RSS {:.0} MB before, {:.0} MB at peak, {:.0} MB a second after",
        ms(flood_took),
        mb(before),
        mb(peak),
        mb(after)
    );
    Ok(vec![
        figure(
            ATTACK,
            format!("server RSS growth, {count} parallel bad logins from {sources}"),
            format!("{:.0} MB", mb(growth)),
            "≤ 200 MB",
            mb(growth) <= 200.0,
        ),
        figure(
            ATTACK,
            format!("a good login during that flood (from {sources}), retried as told"),
            format!("{good} after {tries} tries"),
            "≤ 3 s, 200",
            good.ok(Duration::from_secs(3)),
        ),
    ])
}

/// The legitimate user's login, tried again as a browser would when the server says so
/// (429 or 503, after its `Retry-After`), until it succeeds or a minute has passed: how long
/// until it succeeded, and how many tries it took.
async fn good_login(base: &str) -> (Answer, usize) {
    let http = fresh_client(Duration::from_secs(60));
    let started = Instant::now();
    let mut tries = 0;
    loop {
        tries += 1;
        let response = http
            .post(format!("{base}/api/v1/auth/login"))
            .header("x-forwarded-for", GOOD_ADDRESS)
            .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
            .send()
            .await;
        let (status, retry_after) = match response {
            Ok(response) => {
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<f64>().ok());
                let status = response.status().as_u16();
                (response.bytes().await.ok().map(|_| status), retry_after)
            }
            Err(_) => (None, None),
        };
        let retry = matches!(status, Some(429 | 503));
        if !retry || started.elapsed() >= Duration::from_secs(60) {
            let answer = Answer {
                status,
                took: started.elapsed(),
            };
            return (answer, tries);
        }
        let wait = retry_after.unwrap_or(1.0).clamp(0.1, 5.0);
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    }
}

/// `count` wrong guesses at once for one user's email from one address: how many were
/// checked (401) rather than refused by the throttle (429).
async fn race(postgres: Option<&str>, options: &Options) -> anyhow::Result<Figure> {
    let count = options.guesses;
    let target = start(postgres, options, &[PROXY]).await?;
    let admin = target.admin().await;
    let victim = "victim@example.com";
    let (status, body) = admin
        .post(
            "/users",
            json!({"email": victim, "password": "a long enough password", "roles": ["viewer"]}),
        )
        .await;
    anyhow::ensure!(status.is_success(), "creating {victim}: {status} {body}");
    let http = pooled_client(Duration::from_secs(60));
    let base = target.base().to_owned();
    let started = Instant::now();
    let mut guesses = JoinSet::new();
    for n in 0..count {
        let (http, base) = (http.clone(), base.clone());
        guesses.spawn(async move {
            let guess = format!("guess number {n}");
            login(&http, &base, None, victim, &guess).await
        });
    }
    let mut answers = Tally::default();
    while let Some(answer) = guesses.join_next().await {
        answers.add(answer.ok().and_then(|a| a.status));
    }
    let checked = answers.count(401);
    println!(
        "  {count} parallel wrong guesses for one email from one address, answered in {}: {answers}",
        ms(started.elapsed())
    );
    Ok(figure(
        ATTACK,
        format!("of {count} parallel guesses for one email, checked (401 rather than 429)"),
        checked.to_string(),
        "≤ 10, what the throttle allows",
        checked <= 10,
    ))
}
