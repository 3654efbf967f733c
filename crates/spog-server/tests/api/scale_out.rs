//! Several instances on one database, and instances that die mid-delivery (SPEC 5.3): each
//! attempt is made once, and no delivery is ever lost.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use spog_server::testing::{TestServer, test_config};
use spog_store::testing::{POSTGRES_ENV, databases};

use crate::deliveries::wait_for_status;
use crate::receiver::{Answer, Receiver};
use crate::temp_dir;
use crate::webhooks::{create_webhook, default_organization};

#[tokio::test]
async fn three_instances_on_postgres_deliver_each_delivery_exactly_once() {
    let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
        eprintln!("skipped: {POSTGRES_ENV} is not set");
        return;
    };
    let database = Arc::new(spog_store::testing::postgres(&admin_url).await);
    let mut instances = Vec::new();
    for _ in 0..3 {
        let mut config = test_config(&database, temp_dir());
        // Small claims, so that the instances really compete for the same rows.
        config.delivery_concurrency = 8;
        instances.push(TestServer::start_with(Arc::clone(&database), config).await);
    }
    let admin = instances[0].admin().await;
    let org = default_organization(&admin).await;
    let receiver = Receiver::start(Answer::Status(200)).await;
    for name in ["a", "b"] {
        create_webhook(&admin, &org, &receiver.url(&format!("/{name}")), json!({})).await;
    }
    let events = 150;
    let mut publishers = Vec::new();
    for instance in &instances {
        let client = instance.admin().await;
        publishers.push(client.token_client("system", &["events.publish"]).await);
    }
    let mut publishing = Vec::new();
    for n in 0..events {
        let publisher = publishers[n % 3].clone();
        let org = org.clone();
        publishing.push(tokio::spawn(async move {
            crate::deliveries::publish(&publisher, &org, "job.completed", json!({"n": n})).await
        }));
    }
    for task in publishing {
        task.await.unwrap();
    }
    let received = receiver.wait_for(events * 2, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let received = receiver.received().len().max(received.len());
    let mut per_delivery: HashMap<String, usize> = HashMap::new();
    for request in receiver.received() {
        *per_delivery
            .entry(request.header("x-webhook-delivery").unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(received, events * 2);
    assert_eq!(per_delivery.len(), events * 2);
    assert!(per_delivery.values().all(|&count| count == 1));
    let attempts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM delivery_attempts")
        .fetch_one(&mut *instances[0].state.store.conn().await.unwrap())
        .await
        .unwrap();
    assert_eq!(attempts, (events * 2) as i64);
    for instance in instances {
        instance.stop().await;
    }
}

#[tokio::test]
async fn a_delivery_in_flight_on_a_killed_instance_is_delivered_by_the_next() {
    for database in databases().await {
        let database = Arc::new(database);
        let configure = || {
            let mut config = test_config(&database, temp_dir());
            config.webhook_attempt_timeout = Duration::from_secs(2);
            config.delivery_lease = Duration::from_secs(3);
            config.webhook_retry_schedule = vec![Duration::from_secs(1)];
            config
        };
        let first = TestServer::start_with(Arc::clone(&database), configure()).await;
        let admin = first.admin().await;
        let org = default_organization(&admin).await;
        let receiver = Receiver::start(Answer::HangOnce).await;
        let webhook = create_webhook(&admin, &org, &receiver.url("/"), json!({})).await;
        let webhook = webhook["id"].as_str().unwrap().to_owned();
        crate::deliveries::publish(&admin, &org, "job.completed", json!({})).await;
        // The first instance is mid-attempt, its receiver hanging, when it dies.
        receiver.wait_for(1, Duration::from_secs(10)).await;
        first.kill();

        let second = TestServer::start_with(Arc::clone(&database), configure()).await;
        let admin = second.admin().await;
        let done = wait_for_status(&admin, &webhook, "succeeded").await;
        let received = receiver.received();
        assert_eq!(received.len(), 2);
        assert_eq!(
            received[0].header("x-webhook-delivery"),
            received[1].header("x-webhook-delivery")
        );
        assert_eq!(done["attempt_count"], 2);
        let (_, detail) = admin
            .get(&format!(
                "/webhooks/{webhook}/deliveries/{}",
                done["id"].as_str().unwrap()
            ))
            .await;
        let attempts = detail["attempts"].as_array().unwrap();
        assert!(
            attempts[0]["error"]
                .as_str()
                .unwrap()
                .contains("lease expired")
        );
        assert_eq!(attempts[1]["status_code"], 200);
        second.stop().await;
    }
}
