//! What operators meet before any feature (issue 20): variables of other programs beside the
//! hub's, a typo in a file, the effective configuration, a database newer than the build, and
//! instances that start together on an empty PostgreSQL database.

use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;

use spog_store::Backend;
use spog_store::testing::{POSTGRES_ENV, TestDatabase, postgres, sqlite};
use sqlx::Connection;

use crate::instance::{SERVER_KEY, login, start, start_in, start_with};
use crate::{spog, temp_dir};

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `spog ARGS` on `database_url` with a data directory of its own.
fn command(database_url: &str, args: &[&str]) -> Output {
    spog()
        .args(args)
        .env("SPOG_DATA_DIR", temp_dir("command"))
        .env("SPOG_DATABASE_URL", database_url)
        .env("SPOG_SERVER_KEY", SERVER_KEY)
        .env_remove(POSTGRES_ENV)
        .output()
        .expect("running spog")
}

async fn databases() -> Vec<TestDatabase> {
    let mut databases = vec![sqlite()];
    match std::env::var(POSTGRES_ENV) {
        Ok(url) => databases.push(postgres(&url).await),
        Err(_) => eprintln!("PostgreSQL runs skipped: {POSTGRES_ENV} is not set"),
    }
    databases
}

#[tokio::test]
async fn the_hub_starts_beside_kubernetes_service_links_and_warns_about_unknown_variables() {
    let database = sqlite();
    let instance = start_with(
        &database.url,
        "links",
        &[
            ("SPOG_PORT", "tcp://10.0.0.1:8080"),
            ("SPOG_PORT_8080_TCP", "tcp://10.0.0.1:8080"),
            ("SPOG_PORT_8080_TCP_ADDR", "10.0.0.1"),
            ("SPOG_SERVICE_HOST", "10.0.0.1"),
            ("SPOG_SERVICE_PORT", "8080"),
            ("SPOG_FOO", "1"),
            ("SPOG_BODY_LIMT", "1024"),
        ],
    )
    .await;
    let log = instance.log_text();
    assert!(log.contains("SPOG_FOO is not a configuration key"), "{log}");
    assert!(log.contains("did you mean SPOG_BODY_LIMIT?"), "{log}");
    assert!(
        !log.contains("SPOG_PORT") && !log.contains("SPOG_SERVICE"),
        "{log}"
    );
}

#[test]
fn a_file_with_an_unknown_key_is_refused_and_spog_config_shows_every_source() {
    let dir = temp_dir("config");
    let file = dir.join("spog.toml");
    std::fs::write(&file, "listn = \"0.0.0.0:8080\"\n").unwrap();
    let refused = command("", &["--config", file.to_str().unwrap(), "config"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(text(&refused).contains("listn"), "{}", text(&refused));

    std::fs::write(&file, "record_input = false\n").unwrap();
    let shown = spog()
        .args(["--config", file.to_str().unwrap(), "config"])
        .env("SPOG_DATA_DIR", &dir)
        .env("SPOG_SERVER_KEY", SERVER_KEY)
        .env(
            "SPOG_DATABASE_URL",
            "postgres://spog:hunter2@db.internal/spog",
        )
        .env_remove(POSTGRES_ENV)
        .output()
        .unwrap();
    assert!(shown.status.success(), "{}", text(&shown));
    let out = String::from_utf8_lossy(&shown.stdout);
    let line = |key: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("{key} missing from {out}"))
            .to_owned()
    };
    assert!(line("record_input").contains("# file "), "{out}");
    assert!(line("server_key").contains("[set]"), "{out}");
    assert!(
        line("server_key").contains("# environment SPOG_SERVER_KEY"),
        "{out}"
    );
    assert!(
        line("database_url").contains("spog:[masked]@db.internal"),
        "{out}"
    );
    assert!(line("listen").ends_with("# default"), "{out}");
    assert!(
        !out.contains("hunter2") && !out.contains(SERVER_KEY),
        "{out}"
    );
}

#[tokio::test]
async fn an_older_build_refuses_a_database_migrated_by_a_newer_one() {
    for database in databases().await {
        let check = command(&database.url, &["migrate", "--check"]);
        assert_eq!(check.status.code(), Some(2), "{}", text(&check));
        assert!(text(&check).contains("pending: 0001"), "{}", text(&check));
        let migrated = command(&database.url, &["migrate"]);
        assert!(migrated.status.success(), "{}", text(&migrated));
        let check = command(&database.url, &["migrate", "--check"]);
        assert!(check.status.success(), "{}", text(&check));
        assert!(text(&check).contains("nothing pending"), "{}", text(&check));

        // A later release applied migration 9999.
        let checksum = match database.backend {
            Backend::Sqlite => "X'00'",
            Backend::Postgres => "decode('00', 'hex')",
        };
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&database.url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from the future', TRUE, {checksum}, 1)"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
        for args in [&["migrate"][..], &["serve"], &["migrate", "--check"]] {
            let refused = command(&database.url, args);
            assert_eq!(
                refused.status.code(),
                Some(1),
                "{args:?}: {}",
                text(&refused)
            );
            assert!(
                text(&refused).contains("migrated by a newer build")
                    || text(&refused).contains("newer than this build of spog knows"),
                "{args:?}: {}",
                text(&refused)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_started_together_on_an_empty_postgresql_database_migrate_once() {
    let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
        eprintln!("PostgreSQL suite skipped: {POSTGRES_ENV} is not set (migrate once)");
        return;
    };
    let database = postgres(&admin_url).await;
    let names: Vec<String> = (0..3).map(|n| format!("together{n}")).collect();
    let starting: Vec<_> = names.iter().map(|n| start(&database.url, n)).collect();
    let instances = futures::future::join_all(starting).await;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&database.url).await.unwrap();
    let (rows, versions): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT version) FROM _sqlx_migrations")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(rows, versions, "a migration ran twice");
    let check = command(&database.url, &["migrate", "--check"]);
    assert!(text(&check).contains("nothing pending"), "{}", text(&check));
    drop(instances);
}

/// A finished terminal recording made through the API: (recording id, its `.cast`).
async fn record_a_session(admin: &spog_server::testing::Client) -> (String, String) {
    let gateway = admin
        .token_client("agent", &["session_recordings.write"])
        .await;
    let (_, organizations) = admin.get("/organizations").await;
    let (_, host) = admin
        .post(
            "/hosts",
            json!({"organization_id": organizations[0]["id"], "hostname": "db-1"}),
        )
        .await;
    let (_, me) = admin.get("/auth/me").await;
    let (status, session) = gateway
        .post(
            "/terminal/sessions",
            json!({"host_id": host["id"], "user_id": me["user_id"], "shell": "/bin/bash",
                   "width": 80, "height": 24}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{session}");
    let id = session["id"].as_str().unwrap();
    let events = json!([[0.1, "o", "$ pg_dump --help\r\n"], [0.4, "o", "usage…\r\n"]]);
    let (status, body) = gateway
        .post(&format!("/terminal/sessions/{id}/events"), events)
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let (status, body) = gateway
        .post(&format!("/terminal/sessions/{id}/end"), json!({}))
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let recording = session["recording_id"].as_str().unwrap().to_owned();
    let cast = cast_of(admin, &recording).await;
    (recording, cast)
}

async fn cast_of(client: &spog_server::testing::Client, recording: &str) -> String {
    let response = client
        .request(
            reqwest::Method::GET,
            &format!("/terminal/recordings/{recording}/cast"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    response.text().await.unwrap()
}

/// `spog ARGS` on the data directory `dir` with its own key file and SQLite database.
async fn in_data_dir(dir: &std::path::Path, args: &[&str]) -> Output {
    let mut command = spog();
    command
        .args(args)
        .env("SPOG_DATA_DIR", dir)
        .env_remove("SPOG_DATABASE_URL")
        .env_remove("SPOG_SERVER_KEY")
        .env_remove(POSTGRES_ENV);
    tokio::task::spawn_blocking(move || command.output().expect("running spog"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_under_eight_writers_restores_to_a_service_whose_chain_verifies_and_whose_recordings_play()
 {
    // As README runs it: the database and the generated key inside the data directory.
    let own_files = [("SPOG_DATABASE_URL", ""), ("SPOG_SERVER_KEY", "")];
    let original = start_in(temp_dir("original"), "", &own_files).await;
    let admin = login(&original.base).await;
    let (recording, cast) = record_a_session(&admin).await;

    let writer = admin.token_client("agent", &["audit_logs.write"]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (writer, stop, written) = (writer.clone(), stop.clone(), written.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let entry = json!({"action": "job.run", "resource_type": "job",
                        "resource_name": format!("w{w}"), "outcome": "success"});
                    let (status, body) = writer.post("/audit-logs", entry).await;
                    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
                    written.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let backup_dir = temp_dir("backup").join("b");
    let before = written.load(Ordering::Relaxed);
    let taken = in_data_dir(
        &original.data_dir,
        &["backup", backup_dir.to_str().unwrap()],
    )
    .await;
    let during = written.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(taken.status.success(), "{}", text(&taken));
    assert!(
        during > 0 && written.load(Ordering::Relaxed) > during,
        "writers ran throughout"
    );
    drop(original);

    let restored_dir = temp_dir("restored").join("data");
    let restored = in_data_dir(&restored_dir, &["restore", backup_dir.to_str().unwrap()]).await;
    assert!(restored.status.success(), "{}", text(&restored));
    let again = in_data_dir(&restored_dir, &["restore", backup_dir.to_str().unwrap()]).await;
    assert!(
        !again.status.success(),
        "a restore never overwrites a data directory"
    );

    let service = start_in(restored_dir, "", &own_files).await;
    let log = service.log_text();
    assert!(
        log.contains("the audit chain and its checkpoint verify"),
        "{log}"
    );
    let admin = login(&service.base).await;
    let (_, report) = admin.get("/audit-logs/integrity").await;
    assert_eq!(report["valid"], true, "{report}");
    assert!(
        report["entries_checked"].as_u64().unwrap() >= before as u64,
        "{report}"
    );
    assert_eq!(cast_of(&admin, &recording).await, cast);
}
