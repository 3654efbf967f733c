//! Text search in terminal recordings (SPEC 8.3 "Text search"): `GET /terminal/recordings?q=`
//! finds what was typed and shown, escape sequences removed and across event boundaries, with
//! the time of each match; within the caller's account and filters; an active session within
//! five seconds.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_server::testing::Client;

use crate::servers;
use crate::terminal::{Setup, setup};

async fn search(client: &Client, params: &[(&str, &str)]) -> (StatusCode, Value) {
    let query = serde_urlencoded::to_string(params).unwrap();
    client.get(&format!("/terminal/recordings?{query}")).await
}

/// Starts a session on `host`, records `events` and, with `end`, ends it. Its session.
async fn record(setup: &Setup, host: &str, events: Value, end: bool) -> Value {
    let (status, session) = setup
        .gateway
        .post(
            "/terminal/sessions",
            json!({"host_id": host, "user_id": setup.user, "shell": "/bin/bash", "width": 80, "height": 24}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let id = session["id"].as_str().unwrap();
    let (status, body) = setup
        .gateway
        .post(&format!("/terminal/sessions/{id}/events"), events)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    if end {
        let (status, body) = setup
            .gateway
            .post(&format!("/terminal/sessions/{id}/end"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    session
}

fn ids(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_typed_command_and_coloured_output_split_across_events_are_found_at_their_times() {
    for server in servers().await {
        let setup = setup(&server).await;
        let events = json!([
            [0.1, "o", "$ "],
            [0.5, "i", "gre"],
            [0.6, "i", "p needle notes.txt\r"],
            [1.0, "o", "\u{1b}[3"],
            [1.2, "o", "1mFOUND-"],
            [1.5, "o", "it\u{1b}[0m in notes\r\n"],
            [2.0, "o", "\u{1b}]0;title found-it\u{7}$ "]
        ]);
        let hit = record(&setup, &setup.host, events, true).await;
        let hit_id = hit["recording_id"].as_str().unwrap();
        let miss = record(
            &setup,
            &setup.host,
            json!([[0.1, "o", "nothing here"]]),
            true,
        )
        .await;

        let (status, page) = search(&setup.admin, &[("q", "grep needle")]).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(ids(&page), [hit_id]);
        let matches = &page["items"][0]["matches"];
        assert_eq!(matches[0]["time"], 0.5, "{page}");
        assert_eq!(matches[0]["code"], "i");
        assert!(
            matches[0]["snippet"]
                .as_str()
                .unwrap()
                .contains("grep needle notes.txt"),
            "{page}"
        );

        // Colour codes split over events are gone; the match starts in the event whose text
        // it starts in, and the title set by an escape sequence is not text.
        let (_, page) = search(&setup.admin, &[("q", "found-it IN")]).await;
        assert_eq!(ids(&page), [hit_id]);
        let matches = page["items"][0]["matches"].as_array().unwrap();
        assert_eq!(matches.len(), 1, "{page}");
        assert_eq!(matches[0]["time"], 1.2);
        assert_eq!(matches[0]["code"], "o");
        assert!(matches[0]["snippet"].as_str().unwrap().chars().count() <= 120);

        // Every match of the recording, in time order.
        let (_, page) = search(&setup.admin, &[("q", "notes")]).await;
        let times: Vec<&Value> = page["items"][0]["matches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| &m["time"])
            .collect();
        assert_eq!(times, [&json!(0.6), &json!(1.5)]);

        // Filters and pages combine with the search.
        let (_, page) = search(&setup.admin, &[("q", "here"), ("host_id", &setup.host)]).await;
        assert_eq!(ids(&page), [miss["recording_id"].as_str().unwrap()]);
        let (_, page) = search(&setup.admin, &[("q", "needle"), ("user_id", &setup.user)]).await;
        assert_eq!(ids(&page), [hit_id]);
        let (_, other) = setup
            .admin
            .post(
                "/hosts",
                json!({"organization_id": setup.organization, "hostname": "db-1"}),
            )
            .await;
        let other = other["id"].as_str().unwrap();
        let (_, page) = search(&setup.admin, &[("q", "needle"), ("host_id", other)]).await;
        assert_eq!(ids(&page), Vec::<&str>::new());
        let (_, first) = search(&setup.admin, &[("q", "NOT"), ("limit", "1")]).await;
        assert_eq!(ids(&first).len(), 1, "{first}");
        let cursor = first["next_cursor"].as_str().expect("a second page");
        let (_, second) = search(
            &setup.admin,
            &[("q", "NOT"), ("limit", "1"), ("cursor", cursor)],
        )
        .await;
        assert_eq!(ids(&second), [hit_id], "{second}");
        // A cursor belongs to its search.
        let (status, _) = search(
            &setup.admin,
            &[("q", "notes"), ("limit", "1"), ("cursor", cursor)],
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

        // Without a search, the listing is as it was.
        let (_, page) = setup.admin.get("/terminal/recordings").await;
        assert_eq!(page["items"].as_array().unwrap().len(), 2);
        assert!(page["items"][0].get("matches").is_none(), "{page}");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_search_is_three_to_two_hundred_characters() {
    for server in servers().await {
        let setup = setup(&server).await;
        let long = "x".repeat(201);
        for q in ["ab", "  ", long.as_str(), "nul\u{0}"] {
            let (status, body) = search(&setup.admin, &[("q", q)]).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{q}: {body}");
            assert!(
                body["error"]["details"]["fields"]["q"].is_string(),
                "{body}"
            );
        }
        for q in ["abc", &"ü".repeat(200), "100%_\"quoted\" \\ * OR AND"] {
            let (status, body) = search(&setup.admin, &[("q", q)]).await;
            assert_eq!(status, StatusCode::OK, "{q}: {body}");
            assert_eq!(body["items"], json!([]));
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn another_accounts_recordings_never_match() {
    for server in servers().await {
        let setup = setup(&server).await;
        let ours = record(
            &setup,
            &setup.host,
            json!([[0.1, "o", "secret-plan"]]),
            true,
        )
        .await;
        spog_server::bootstrap::create_account(
            &server.state.store,
            "globex",
            &spog_core::validate::Email::parse("e", "root@globex.example").unwrap(),
            "globex admin password",
            spog_core::audit::Source::Cli,
        )
        .await
        .unwrap();
        let globex_admin = server
            .login("root@globex.example", "globex admin password")
            .await;
        let globex = crate::terminal::setup_for(globex_admin).await;
        let theirs = record(
            &globex,
            &globex.host,
            json!([[0.1, "o", "secret-plan"]]),
            true,
        )
        .await;

        let (_, page) = search(&setup.admin, &[("q", "secret-plan")]).await;
        assert_eq!(ids(&page), [ours["recording_id"].as_str().unwrap()]);
        let (_, page) = search(&globex.admin, &[("q", "secret-plan")]).await;
        assert_eq!(ids(&page), [theirs["recording_id"].as_str().unwrap()]);
        server.stop().await;
    }
}

#[tokio::test]
async fn an_active_session_is_found_within_five_seconds() {
    for server in servers().await {
        let setup = setup(&server).await;
        let session = record(&setup, &setup.host, json!([[0.1, "o", "$ "]]), false).await;
        let id = session["id"].as_str().unwrap();
        let typed = Instant::now();
        setup
            .gateway
            .post(
                &format!("/terminal/sessions/{id}/events"),
                json!([[0.4, "i", "tail -f /var/log/"], [0.5, "i", "syslog\r"]]),
            )
            .await;
        loop {
            let (_, page) = search(&setup.admin, &[("q", "/var/log/syslog")]).await;
            if ids(&page) == [session["recording_id"].as_str().unwrap()] {
                assert_eq!(page["items"][0]["matches"][0]["time"], 0.4);
                break;
            }
            assert!(
                typed.elapsed() < Duration::from_secs(5),
                "not found within 5 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn input_is_not_searchable_when_it_is_not_recorded() {
    for server in crate::servers_with(|config| config.record_input = false).await {
        let setup = setup(&server).await;
        record(
            &setup,
            &setup.host,
            json!([[0.1, "i", "password123"], [0.2, "o", "shown"]]),
            true,
        )
        .await;
        let (_, page) = search(&setup.admin, &[("q", "password123")]).await;
        assert_eq!(page["items"], json!([]));
        let (_, page) = search(&setup.admin, &[("q", "shown")]).await;
        assert_eq!(ids(&page).len(), 1);
        server.stop().await;
    }
}

#[tokio::test]
async fn a_recordings_deleted_text_no_longer_matches() {
    for server in servers().await {
        let setup = setup(&server).await;
        let session = record(&setup, &setup.host, json!([[0.1, "o", "to forget"]]), true).await;
        let recording = session["recording_id"].as_str().unwrap();
        let (_, me) = setup.admin.get("/auth/me").await;
        let account = me["account_id"].as_str().unwrap().parse().unwrap();
        let mut tx = server.state.store.begin().await.unwrap();
        spog_store::recordings::text::delete(&mut tx, account, recording.parse().unwrap())
            .await
            .unwrap();
        tx.commit_unaudited().await.unwrap();
        let (_, page) = search(&setup.admin, &[("q", "forget")]).await;
        assert_eq!(page["items"], json!([]));
        server.stop().await;
    }
}

#[tokio::test]
async fn common_text_is_found_by_checking_the_newest_recordings_alike() {
    for server in servers().await {
        let setup = setup(&server).await;
        for n in 0..3 {
            let events = json!([[0.1, "o", format!("\u{1b}[1mready\u{1b}[0m {n}\r\n")]]);
            record(&setup, &setup.host, events, true).await;
        }
        record(&setup, &setup.host, json!([[0.1, "o", "other"]]), true).await;
        let (_, me) = setup.admin.get("/auth/me").await;
        let account = me["account_id"].as_str().unwrap().parse().unwrap();
        let mut conn = server.state.store.conn().await.unwrap();
        let mut pages = Vec::new();
        // 0: "ready" is common; the default bound: it is rare.
        for probe_chunks in [0, spog_store::recordings::text::PROBE_CHUNKS] {
            let page = spog_store::recordings::text::search_probing(
                &mut conn,
                account,
                &spog_store::identity::hosts::HostScope::All,
                &Default::default(),
                "READY",
                (2, None),
                probe_chunks,
            )
            .await
            .unwrap();
            let found: Vec<_> = page
                .items
                .iter()
                .map(|(r, m)| (r.id, m[0].snippet.clone(), m[0].time))
                .collect();
            assert_eq!(found.len(), 2);
            assert!(page.next_cursor.is_some());
            pages.push(found);
        }
        assert_eq!(pages[0], pages[1]);
        assert_eq!(pages[0][0].1, "ready 2 ");
        // The server's pools close only once every connection is back.
        drop(conn);
        server.stop().await;
    }
}

/// Text in more chunks than a probe reads but in too few of the newest recordings to fill a
/// page there (many chunks of one old recording) is found in every recording the index
/// finds it in, page by page, as a probe that read every chunk would list it. On SQLite a
/// query beyond ASCII takes that way at once.
#[tokio::test]
async fn text_in_many_chunks_of_few_recordings_is_found_past_the_newest() {
    for server in servers().await {
        let setup = setup(&server).await;
        // About 16 KiB of text: the needle in several chunks of the oldest recording.
        let filler = "lorem ipsum dolor ".repeat(50);
        let events: Vec<Value> = (0..16)
            .map(|n| json!([n as f64, "o", format!("{filler} Nadel-Über {n}\r\n")]))
            .collect();
        let oldest = record(&setup, &setup.host, json!(events), true).await;
        for _ in 0..5 {
            record(&setup, &setup.host, json!([[0.1, "o", "nothing"]]), true).await;
        }
        let newest = record(
            &setup,
            &setup.host,
            json!([[0.1, "o", "one nadel-über here"]]),
            true,
        )
        .await;
        let (_, me) = setup.admin.get("/auth/me").await;
        let account = me["account_id"].as_str().unwrap().parse().unwrap();
        let mut conn = server.state.store.conn().await.unwrap();
        for q in ["NADEL-", "NADEL-ÜBER"] {
            let mut found = Vec::new();
            // 1: the text is common, and the four newest recordings (two per recording
            // listed) hold too few; the default bound: it is rare.
            for probe_chunks in [1, spog_store::recordings::text::PROBE_CHUNKS] {
                let mut pages = Vec::new();
                let mut cursor = None;
                loop {
                    let page = spog_store::recordings::text::search_probing(
                        &mut conn,
                        account,
                        &spog_store::identity::hosts::HostScope::All,
                        &Default::default(),
                        q,
                        (1, cursor.as_deref()),
                        probe_chunks,
                    )
                    .await
                    .unwrap();
                    pages.extend(page.items.iter().map(|(r, m)| (r.id.to_string(), m.len())));
                    match page.next_cursor {
                        Some(next) => cursor = Some(next),
                        None => break,
                    }
                }
                found.push(pages);
            }
            let expected = vec![
                (newest["recording_id"].as_str().unwrap().to_owned(), 1),
                (oldest["recording_id"].as_str().unwrap().to_owned(), 16),
            ];
            assert_eq!(found[0], expected, "{q}");
            assert_eq!(found[1], expected, "{q}");
        }
        drop(conn);
        server.stop().await;
    }
}

/// Checked recording by recording (common text), characters that mean something to a pattern
/// are matched as themselves.
#[tokio::test]
async fn common_text_with_pattern_characters_is_matched_literally() {
    for server in servers().await {
        let setup = setup(&server).await;
        let hit = record(
            &setup,
            &setup.host,
            json!([[
                0.1,
                "o",
                "cost: $5 (approx.) [sic] a+b*c? x|y ^z\\w {2} 100%_ \"q\"\r\n"
            ]]),
            true,
        )
        .await;
        record(
            &setup,
            &setup.host,
            json!([[0.1, "o", "cost: 35 xapprox. sic ab c w2 100"]]),
            true,
        )
        .await;
        let (_, me) = setup.admin.get("/auth/me").await;
        let account = me["account_id"].as_str().unwrap().parse().unwrap();
        let mut conn = server.state.store.conn().await.unwrap();
        for (q, found) in [
            ("$5 (APPROX.) [SIC] A+B*C? X|Y ^Z\\W {2} 100%_ \"Q\"", true),
            ("(approx.)", true),
            ("$5 .approx", false),
            ("a.b", false),
            ("\\w {2}", true),
            ("w {2}", true),
            ("w 2", false),
        ] {
            let page = spog_store::recordings::text::search_probing(
                &mut conn,
                account,
                &spog_store::identity::hosts::HostScope::All,
                &Default::default(),
                q,
                (10, None),
                0,
            )
            .await
            .unwrap();
            let ids: Vec<String> = page.items.iter().map(|(r, _)| r.id.to_string()).collect();
            let expected = if found {
                vec![hit["recording_id"].as_str().unwrap().to_owned()]
            } else {
                vec![]
            };
            assert_eq!(ids, expected, "{q}");
        }
        drop(conn);
        server.stop().await;
    }
}
