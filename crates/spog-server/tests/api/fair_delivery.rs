//! The noisy neighbour (issue 12, item 7): one tenant's backlog to an endpoint that accepts
//! connections and never answers holds at most that endpoint's in-flight limit, and another
//! tenant's delivery goes out at once.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use spog_core::Timestamp;
use spog_core::events::EventType;
use spog_server::testing::TestServer;
use spog_store::events::{self, NewEvent};

use crate::deliveries::publish;
use crate::receiver::{Answer, Receiver, black_hole};
use crate::servers_with;
use crate::webhooks::{create_webhook, default_organization};

const BACKLOG: usize = 600;

/// Publishes `count` events in `org` straight through the store, in one transaction.
async fn flood(server: &TestServer, org: &str, count: usize) {
    let store = &server.state.store;
    let account: String = sqlx::query_scalar("SELECT account_id FROM organizations WHERE id = $1")
        .bind(org)
        .fetch_one(&mut *store.conn().await.unwrap())
        .await
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    for _ in 0..count {
        let event = NewEvent {
            account: account.parse().unwrap(),
            organization: org.parse().unwrap(),
            event_type: EventType::JobCompleted,
            occurred_at: Timestamp::now(),
            data: "{}".to_owned(),
            idempotency_key: None,
        };
        events::publish(&mut tx, event, Timestamp::now())
            .await
            .unwrap();
    }
    tx.commit_unaudited().await.unwrap();
}

#[tokio::test]
async fn a_tenants_backlog_to_a_black_hole_does_not_delay_another_tenants_delivery() {
    let slots = |config: &mut spog_server::Config| {
        // Fewer slots than the backlog, so an unfair engine would give them all to it.
        config.delivery_concurrency = 64;
        config.webhook_attempt_timeout = Duration::from_secs(8);
        config.delivery_lease = Duration::from_secs(30);
    };
    for server in servers_with(slots).await {
        let acme = server.admin().await;
        let acme_org = default_organization(&acme).await;
        let (hole, accepted) = black_hole().await;
        create_webhook(&acme, &acme_org, &format!("{hole}/never"), json!({})).await;
        flood(&server, &acme_org, BACKLOG).await;
        // Acme's attempts are in flight: the black hole holds their connections.
        let deadline = Instant::now() + Duration::from_secs(10);
        while accepted.load(Ordering::Relaxed) < 16 {
            assert!(Instant::now() < deadline, "acme's attempts never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        spog_server::bootstrap::create_account(
            &server.state.store,
            "globex",
            &spog_core::validate::Email::parse("e", "root@globex.example").unwrap(),
            "globex admin password",
            spog_core::audit::Source::Cli,
        )
        .await
        .unwrap();
        let globex = server
            .login("root@globex.example", "globex admin password")
            .await;
        let globex_org = default_organization(&globex).await;
        let receiver = Receiver::start(Answer::Status(200)).await;
        create_webhook(&globex, &globex_org, &receiver.url("/globex"), json!({})).await;
        let published = Instant::now();
        publish(
            &globex,
            &globex_org,
            "job.completed",
            json!({"job_id": "j1"}),
        )
        .await;
        receiver.wait_for(1, Duration::from_secs(3)).await;
        let waited = published.elapsed();
        assert!(waited < Duration::from_secs(3), "globex waited {waited:?}");

        // The black hole never held more than its limit, whatever waits behind it.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(
            accepted.load(Ordering::Relaxed),
            16,
            "{:?}",
            server.state.store.backend()
        );
        let (_, page) = acme.get("/webhooks").await;
        let hook = page["items"][0]["id"].as_str().unwrap().to_owned();
        let (_, pending) = acme
            .get(&format!(
                "/webhooks/{hook}/deliveries?status=pending&limit=500"
            ))
            .await;
        assert_eq!(pending["items"].as_array().unwrap().len(), 500);
        server.stop().await;
    }
}
