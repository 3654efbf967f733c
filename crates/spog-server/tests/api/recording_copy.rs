//! `spog recordings copy-to-storage` (SPEC 8.3, 11.1): recordings sealed into the data
//! directory move to object storage (moto) once the configuration names it, each hash
//! checked; a changed one is reported and left; they play, download and verify from the
//! bucket afterwards; a second run moves nothing.

use std::path::Path;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_server::recordings::copy_to_storage::{self, Summary};
use spog_server::testing::s3::S3Server;
use spog_server::testing::{TestServer, test_config};
use spog_store::testing::databases;

use crate::desktop::start_desktop;
use crate::recording_storage::{BUCKET, record, sha256, shell_output, verify, zstd};
use crate::temp_dir;
use crate::terminal::{Setup, download, next_json, setup, socket};

/// The run's summary and what it said.
async fn copy(server: &TestServer) -> (Summary, Vec<String>) {
    let mut lines = Vec::new();
    let summary = copy_to_storage::run(&server.state, &mut |line| lines.push(line))
        .await
        .expect("a run");
    (summary, lines)
}

async fn desktop_recording(setup: &Setup) -> Value {
    let id = &start_desktop(setup).await;
    for n in 0..3u8 {
        let elapsed = (u64::from(n) * 10).to_string();
        let (status, _) =
            crate::desktop::frame(&setup.gateway, id, &elapsed, crate::desktop::jpeg(n, 2000))
                .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (_, ended) = setup
        .gateway
        .post(&format!("/desktop/recordings/{id}/end"), json!({}))
        .await;
    assert_eq!(ended["storage"], "local", "{ended}");
    ended
}

fn local_file(ended: &Value) -> &Path {
    Path::new(ended["file_path"].as_str().unwrap())
}

#[tokio::test]
async fn recordings_in_the_data_directory_move_to_object_storage_with_their_hashes_checked() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    for database in databases().await {
        let database = Arc::new(database);
        let data_dir = temp_dir();
        let local = TestServer::start_with(
            Arc::clone(&database),
            test_config(&database, data_dir.clone()),
        )
        .await;
        let refused = copy_to_storage::run(&local.state, &mut |_| {}).await;
        let error = refused.expect_err("refused on local storage").to_string();
        assert!(error.contains("recordings_storage is `local`"), "{error}");

        let setup = setup(&local).await;
        let (_, me) = setup.admin.get("/auth/me").await;
        let account = me["account_id"].as_str().unwrap().to_owned();
        let terminal = record(&setup, shell_output()).await;
        let tampered = record(&setup, shell_output()).await;
        let desktop = desktop_recording(&setup).await;
        let active = crate::terminal::start(&setup, &setup.host).await;
        for ended in [&terminal, &tampered, &desktop] {
            assert_eq!(ended["storage"], "local", "{ended}");
            assert!(local_file(ended).is_file(), "{ended}");
        }
        let (_, _, cast) = download(&setup.admin, tampered["id"].as_str().unwrap()).await;
        std::fs::write(
            local_file(&tampered),
            zstd(cast.replace("app-7", "app-8").as_bytes()),
        )
        .unwrap();
        // As a recording that ended before sealing existed: no hash, a plain file.
        let legacy = record(&setup, shell_output()).await;
        let mut conn = local.state.store.conn().await.unwrap();
        sqlx::query(
            "UPDATE terminal_recordings SET sha256 = NULL, stored_bytes = NULL, storage = NULL \
             WHERE id = $1",
        )
        .bind(legacy["id"].as_str().unwrap())
        .execute(&mut *conn)
        .await
        .unwrap();
        drop(conn);
        local.kill();

        // The operator switches the configuration to the bucket and runs the command.
        let prefix = format!("copied-{}", uuid::Uuid::now_v7());
        let mut config = test_config(&database, data_dir.clone());
        s3.configure(&mut config, BUCKET, &prefix).await;
        let server = TestServer::start_with(Arc::clone(&database), config).await;
        // Two runs at once (say, a second started by mistake): each recording moves, and is
        // audited, once.
        let ((first, first_lines), (second, second_lines)) =
            tokio::join!(copy(&server), copy(&server));
        let stored =
            terminal["stored_bytes"].as_u64().unwrap() + desktop["stored_bytes"].as_u64().unwrap();
        assert_eq!(
            first.moved + second.moved,
            2,
            "{first_lines:?} {second_lines:?}"
        );
        assert_eq!(first.bytes + second.bytes, stored);
        let tampered_id = tampered["id"].as_str().unwrap();
        let legacy_id = legacy["id"].as_str().unwrap();
        for (summary, lines) in [(&first, &first_lines), (&second, &second_lines)] {
            assert_eq!(summary.failed, 1, "{lines:?}");
            assert!(summary.skipped >= 1, "{lines:?}");
            assert!(
                lines.iter().any(|line| line
                    .starts_with(&format!("FAILED terminal recording {tampered_id}"))
                    && line.contains("content_mismatch")),
                "{lines:?}"
            );
            assert!(
                lines.iter().any(|line| line
                    .starts_with(&format!("skipped terminal recording {legacy_id}"))
                    && line.contains("ended before recordings were sealed")),
                "{lines:?}"
            );
        }

        let admin = server.admin().await;
        for (kind, ended, extension) in [
            ("terminal", &terminal, "cast"),
            ("desktop", &desktop, "frames"),
        ] {
            let id = ended["id"].as_str().unwrap();
            let (_, now) = admin.get(&format!("/{kind}/recordings/{id}")).await;
            let key = format!("{prefix}/{account}/{kind}/{id}.{extension}.zst");
            assert_eq!(now["storage"], "s3", "{now}");
            assert_eq!(now["file_path"], format!("s3://{BUCKET}/{key}"));
            assert_eq!(now["sha256"], ended["sha256"]);
            assert!(s3.object(BUCKET, &key).await.is_some(), "{key}");
            assert!(!local_file(ended).exists(), "the local object is removed");
            let verified = verify(&admin, kind, id).await;
            assert_eq!(verified["valid"], true, "{verified}");
        }
        let (status, _, cast) = download(&admin, terminal["id"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(terminal["sha256"], sha256(cast.as_bytes()));
        assert!(cast.contains("ls -la /var/log/app-399"));
        let mut player = socket(
            &admin,
            &format!(
                "/desktop/recordings/{}/stream",
                desktop["id"].as_str().unwrap()
            ),
        )
        .await;
        assert_eq!(next_json(&mut player).await["frame_count"], 3);
        for n in 0..3u8 {
            let (_, image) = crate::desktop::next_frame(&mut player).await;
            assert_eq!(image, crate::desktop::jpeg(n, 2000));
        }
        drop(player);

        // The changed and the unsealed ones stayed where they were; the active one was not
        // touched.
        let (_, left) = admin
            .get(&format!("/terminal/recordings/{tampered_id}"))
            .await;
        assert_eq!(left["storage"], "local", "{left}");
        assert!(local_file(&tampered).is_file());
        assert!(local_file(&legacy).is_file());
        let (_, running) = admin
            .get(&format!(
                "/terminal/recordings/{}",
                active["recording_id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(running["storage"], Value::Null, "{running}");

        // Each move is on record, by the system, with the storage before and after.
        for (action, ended) in [
            ("terminal_recording.move", &terminal),
            ("desktop_recording.move", &desktop),
        ] {
            let (_, entries) = admin.get(&format!("/audit-logs?action={action}")).await;
            let items = entries["items"].as_array().unwrap();
            assert_eq!(items.len(), 1, "{entries}");
            let entry = &items[0];
            assert_eq!(entry["resource_id"], ended["id"], "{entry}");
            assert_eq!(entry["actor_type"], "system", "{entry}");
            assert_eq!(entry["before"]["storage"], "local", "{entry}");
            assert_eq!(entry["after"]["storage"], "s3", "{entry}");
            assert_eq!(entry["metadata"]["sha256"], ended["sha256"], "{entry}");
        }

        // A second run moves nothing: the changed one fails again, nothing more is audited.
        let (again, lines) = copy(&server).await;
        assert_eq!(
            again,
            Summary {
                moved: 0,
                skipped: 1,
                failed: 1,
                bytes: 0
            },
            "{lines:?}"
        );
        let (_, entries) = admin
            .get("/audit-logs?action=terminal_recording.move")
            .await;
        assert_eq!(entries["items"].as_array().unwrap().len(), 1);
        server.stop().await;
    }
}
