//! Three `spog serve` processes on one PostgreSQL database behave as one: their audit
//! entries form one linear chain.

use serde_json::json;
use spog_store::testing::{POSTGRES_ENV, postgres};

use crate::instance::{login, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_processes_on_one_postgresql_write_one_linear_chain() {
    let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
        eprintln!("PostgreSQL suite skipped: {POSTGRES_ENV} is not set (cluster test)");
        return;
    };
    let database = postgres(&admin_url).await;
    let mut instances = Vec::new();
    for n in 0..3 {
        instances.push(start(&database.url, &format!("node{n}")).await);
    }
    let mut writers = Vec::new();
    for instance in &instances {
        let admin = login(&instance.base).await;
        let agent = admin.token_client("agent", &["audit_logs.write"]).await;
        for writer in 0..21 {
            let agent = agent.clone();
            writers.push(tokio::spawn(async move {
                for n in 0..10 {
                    let entry = json!({"action": "job.run", "resource_type": "job", "resource_name": format!("w{writer}-{n}"), "outcome": "success"});
                    let (status, body) = agent.post("/audit-logs", entry).await;
                    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
                }
            }));
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let admin = login(&instances[1].base).await;
    let (_, report) = admin.get("/audit-logs/integrity").await;
    assert_eq!(report["valid"], true, "{report}");
    let checked = report["entries_checked"].as_i64().unwrap();
    assert_eq!(report["head_seq"].as_i64().unwrap(), checked);
    // 630 ingested entries, plus logins and token creations of the three instances.
    assert!(checked >= 630 + 6, "{report}");
    drop(instances);
    drop(database);
}
