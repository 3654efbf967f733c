//! Password guessing against the login (issue 12): hashing is bounded and throttled before
//! it starts, nobody can lock a user out from everywhere, and the client address comes from
//! forwarded headers only through trusted proxies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_server::testing::{ADMIN_EMAIL, ADMIN_PASSWORD, Client, TestServer, test_config};
use spog_store::testing::{POSTGRES_ENV, databases};

use crate::{servers, servers_with, temp_dir};

const WRONG: &str = "not the password at all";

/// A login attempt as if from `from` (through a proxy when the server trusts this one).
async fn login_from(
    client: &Client,
    from: Option<&str>,
    email: &str,
    password: &str,
) -> (StatusCode, Option<u64>, Value) {
    let mut request = client
        .request(reqwest::Method::POST, "/auth/login")
        .json(&json!({"email": email, "password": password}));
    if let Some(from) = from {
        request = request.header("x-forwarded-for", from);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let body = response.json().await.unwrap_or(Value::Null);
    (status, retry_after, body)
}

fn behind_a_proxy(config: &mut spog_server::Config) {
    config.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
}

#[tokio::test]
async fn a_hundred_parallel_guesses_are_mostly_refused_before_any_hashing() {
    for server in servers().await {
        let anonymous = server.anonymous();
        let hashed_before = server.state.hashing.performed();
        let mut guesses = Vec::new();
        for _ in 0..100 {
            let anonymous = anonymous.clone();
            guesses.push(tokio::spawn(async move {
                login_from(&anonymous, None, ADMIN_EMAIL, WRONG).await
            }));
        }
        let (mut refused, mut checked) = (0, 0);
        for guess in guesses {
            match guess.await.unwrap() {
                (StatusCode::UNAUTHORIZED, _, _) => checked += 1,
                (StatusCode::TOO_MANY_REQUESTS, Some(wait), _) => {
                    assert!(wait >= 1);
                    refused += 1;
                }
                other => panic!("unexpected answer {other:?}"),
            }
        }
        let hashed = server.state.hashing.performed() - hashed_before;
        // Five free failures and the sixth that starts the delay; the rest wait unhashed.
        assert!(checked <= 6, "{checked} guesses were checked");
        assert!(refused >= 94, "{refused} refused");
        assert!(hashed <= 6, "{hashed} hashes for 100 guesses");
        server.stop().await;
    }
}

#[tokio::test]
async fn an_overlong_password_is_refused_unhashed() {
    for server in servers().await {
        let hashed_before = server.state.hashing.performed();
        let long = "x".repeat(1025);
        let (status, _, body) = login_from(&server.anonymous(), None, ADMIN_EMAIL, &long).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body["error"]["details"]["fields"]["password"].is_string(),
            "{body}"
        );
        assert_eq!(server.state.hashing.performed(), hashed_before);
        let admin = server.admin().await;
        let (status, body) = admin
            .post(
                "/users",
                json!({"email": "long@example.com", "password": long}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body["error"]["details"]["fields"]["password"].is_string(),
            "{body}"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn a_good_login_gets_through_a_flood_of_guesses_from_other_addresses() {
    for server in servers_with(behind_a_proxy).await {
        let anonymous = server.anonymous();
        let home = Some("203.0.113.10");
        let (status, _, _) = login_from(&anonymous, home, ADMIN_EMAIL, ADMIN_PASSWORD).await;
        assert_eq!(status, StatusCode::OK);
        let mut flood = Vec::new();
        for n in 0..200 {
            let anonymous = anonymous.clone();
            flood.push(tokio::spawn(async move {
                let from = format!("198.51.{}.{}", n / 100, n % 100);
                // Half at the admin, half sprayed at made-up accounts.
                let email = if n % 2 == 0 {
                    ADMIN_EMAIL.to_owned()
                } else {
                    format!("user{n}@example.com")
                };
                login_from(&anonymous, Some(&from), &email, WRONG).await.0
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let (status, _, body) = login_from(&anonymous, home, ADMIN_EMAIL, ADMIN_PASSWORD).await;
        let took = started.elapsed();
        assert_eq!(status, StatusCode::OK, "{body}");
        // The target (3 s on two cores) is measured against a release build; here,
        // a debug build beside other tests, it must not starve (it took 25 s before).
        assert!(
            took < Duration::from_secs(10),
            "the good login took {took:?}"
        );
        for guess in flood {
            let status = guess.await.unwrap();
            assert!(
                matches!(
                    status,
                    StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS
                ),
                "{status}"
            );
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn a_guesser_cannot_lock_a_user_out_from_everywhere() {
    for server in servers_with(behind_a_proxy).await {
        let anonymous = server.anonymous();
        // One address guessing hard is slowed down at that address only.
        for _ in 0..30 {
            login_from(&anonymous, Some("198.51.100.1"), ADMIN_EMAIL, WRONG).await;
        }
        let (status, _, _) = login_from(&anonymous, Some("198.51.100.1"), ADMIN_EMAIL, WRONG).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        let (status, _, body) = login_from(
            &anonymous,
            Some("203.0.113.10"),
            ADMIN_EMAIL,
            ADMIN_PASSWORD,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "from another address: {body}");
        // Guesses spread over many addresses slow the email down for new places only: the
        // user still gets in from where they logged in before.
        for n in 0..30 {
            let from = format!("198.51.101.{n}");
            login_from(&anonymous, Some(&from), ADMIN_EMAIL, WRONG).await;
        }
        let (status, wait, _) =
            login_from(&anonymous, Some("192.0.2.99"), ADMIN_EMAIL, WRONG).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "a new place waits");
        assert!(wait.is_some());
        let (status, _, body) = login_from(
            &anonymous,
            Some("203.0.113.10"),
            ADMIN_EMAIL,
            ADMIN_PASSWORD,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "from a familiar place: {body}");
        server.stop().await;
    }
}

/// The `ip` of the newest failed login on record.
async fn last_failed_login_ip(admin: &Client) -> Value {
    let (status, page) = admin
        .get("/audit-logs?action=auth.login&outcome=failure&limit=1")
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"][0]["ip"].clone()
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    for server in servers().await {
        let anonymous = server.anonymous();
        let admin = server.admin().await;
        // Not trusted: every claimed address is this client's own, and counts as one.
        for n in 0..6 {
            let from = format!("198.51.100.{n}");
            let (status, _, _) = login_from(&anonymous, Some(&from), ADMIN_EMAIL, WRONG).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(last_failed_login_ip(&admin).await, "127.0.0.1");
        let (status, _, _) =
            login_from(&anonymous, Some("198.51.100.99"), ADMIN_EMAIL, WRONG).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        server.stop().await;
    }
    for server in servers_with(behind_a_proxy).await {
        let anonymous = server.anonymous();
        let admin = server.admin().await;
        // Trusted: the rightmost address the proxy did not vouch for is the client.
        for n in 0..10 {
            let from = format!("6.6.6.6, 198.51.100.{n}");
            let (status, _, _) = login_from(&anonymous, Some(&from), ADMIN_EMAIL, WRONG).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(last_failed_login_ip(&admin).await, "198.51.100.9");
        server.stop().await;
    }
}

/// Wrong passwords, waiting out each delay, until the next attempt must wait four seconds.
async fn guess_until_a_long_wait(client: &Client) {
    loop {
        match login_from(client, None, ADMIN_EMAIL, WRONG).await {
            (StatusCode::UNAUTHORIZED, _, _) => {}
            (StatusCode::TOO_MANY_REQUESTS, Some(wait), _) if wait >= 4 => return,
            (StatusCode::TOO_MANY_REQUESTS, Some(wait), _) => {
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_throttle_remembers_across_a_restart() {
    for database in databases().await {
        let database = Arc::new(database);
        let first =
            TestServer::start_with(database.clone(), test_config(&database, temp_dir())).await;
        guess_until_a_long_wait(&first.anonymous()).await;
        first.stop().await;
        let second =
            TestServer::start_with(database.clone(), test_config(&database, temp_dir())).await;
        let (status, wait, _) =
            login_from(&second.anonymous(), None, ADMIN_EMAIL, ADMIN_PASSWORD).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(wait.is_some());
        second.stop().await;
    }
}

#[tokio::test]
async fn two_instances_on_postgres_share_one_throttle() {
    let Ok(url) = std::env::var(POSTGRES_ENV) else {
        eprintln!("skipped: {POSTGRES_ENV} is not set");
        return;
    };
    let database = Arc::new(spog_store::testing::postgres(&url).await);
    let first = TestServer::start_with(database.clone(), test_config(&database, temp_dir())).await;
    let second = TestServer::start_with(database.clone(), test_config(&database, temp_dir())).await;
    // Parallel guesses split over both instances are counted once each, together.
    let mut guesses = Vec::new();
    for n in 0..60 {
        let client = if n % 2 == 0 {
            first.anonymous()
        } else {
            second.anonymous()
        };
        guesses.push(tokio::spawn(async move {
            login_from(&client, None, ADMIN_EMAIL, WRONG).await.0
        }));
    }
    let mut checked = 0;
    for guess in guesses {
        if guess.await.unwrap() == StatusCode::UNAUTHORIZED {
            checked += 1;
        }
    }
    assert!(checked <= 6, "{checked} of 60 guesses were checked");
    // What one instance counted, the other enforces.
    guess_until_a_long_wait(&first.anonymous()).await;
    let (status, wait, _) =
        login_from(&second.anonymous(), None, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(wait.is_some());
    second.stop().await;
    first.stop().await;
}

#[tokio::test]
async fn expired_throttle_counters_are_swept() {
    for server in servers().await {
        let anonymous = server.anonymous();
        for n in 0..5 {
            login_from(&anonymous, None, &format!("nobody{n}@example.com"), WRONG).await;
        }
        let store = &server.state.store;
        let count = || async {
            let mut conn = store.conn().await.unwrap();
            spog_store::identity::login_throttle::count(&mut conn)
                .await
                .unwrap()
        };
        assert!(
            count().await >= 6,
            "a source, and a pair and an email per guess"
        );
        let later = spog_core::Timestamp::now().plus(Duration::from_secs(16 * 60));
        let mut tx = store.begin().await.unwrap();
        let swept = spog_store::identity::login_throttle::sweep(&mut tx, later)
            .await
            .unwrap();
        tx.commit_unaudited().await.unwrap();
        assert!(swept >= 6);
        assert_eq!(count().await, 0, "nothing outlives its window");
        server.stop().await;
    }
}

#[tokio::test]
async fn an_admin_cannot_tell_whether_another_account_has_an_email() {
    for server in servers().await {
        spog_server::bootstrap::create_account(
            &server.state.store,
            "globex",
            &spog_core::validate::Email::parse("email", "root@globex.example").unwrap(),
            "globex admin password",
            spog_core::audit::Source::Cli,
        )
        .await
        .unwrap();
        let globex = server
            .login("root@globex.example", "globex admin password")
            .await;
        let (status, _) = globex
            .post(
                "/users",
                json!({"email": "shared@example.com", "password": "globex user password"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        // Another account's user with this email changes nothing for this account's admin.
        let admin = server.admin().await;
        let (status, created) = admin
            .post(
                "/users",
                json!({"email": "shared@example.com", "password": "acme user password"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let (status, body) = admin
            .post(
                "/users",
                json!({"email": "shared@example.com", "password": "acme user password"}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "within one account: {body}");
        // Each logs in with their own password, into their own account.
        let acme_user = server
            .login("shared@example.com", "acme user password")
            .await;
        let globex_user = server
            .login("shared@example.com", "globex user password")
            .await;
        let (_, acme_me) = acme_user.get("/auth/me").await;
        let (_, globex_me) = globex_user.get("/auth/me").await;
        assert_eq!(acme_me["user_id"], created["id"]);
        assert_ne!(acme_me["account_id"], globex_me["account_id"]);
        server.stop().await;
    }
}
