//! What operators meet before any feature (issue 20): variables of other programs beside the
//! hub's, a typo in a file, the effective configuration, a database newer than the build, and
//! instances that start together on an empty PostgreSQL database.

use std::process::Output;

use spog_store::Backend;
use spog_store::testing::{POSTGRES_ENV, TestDatabase, postgres, sqlite};
use sqlx::Connection;

use crate::instance::{SERVER_KEY, start, start_with};
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
