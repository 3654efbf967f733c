//! Alert rules on both backends.

use serde_json::Map;
use spog_core::alerts::{AlertRule, Condition, Operator};
use spog_core::events::EventType;
use spog_core::notification::Severity;
use spog_core::{Id, Timestamp};
use spog_store::alerting::rules;
use spog_store::identity::accounts;
use spog_store::testing::databases;

fn rule(
    organization: Id<spog_core::model::Organization>,
    name: &str,
    condition: Condition,
) -> AlertRule {
    let now = Timestamp::now();
    AlertRule {
        id: Id::new(),
        organization_id: organization,
        name: name.to_owned(),
        condition,
        severity: Severity::High,
        channel_ids: Vec::new(),
        enabled: true,
        cooldown_seconds: 300,
        created_at: now,
        updated_at: now,
    }
}

/// An event rule has no threshold; a metric rule written after it on the same connection
/// (its cached statement) keeps its double intact.
#[tokio::test]
async fn rules_without_and_with_a_threshold_share_a_connection() {
    for db in databases().await {
        let store = db.store().await;
        let mut tx = store.begin().await.unwrap();
        let (account, organization) = accounts::create(&mut tx, "acme", Timestamp::now())
            .await
            .unwrap();
        let event = rule(
            organization.id,
            "failed jobs",
            Condition::Event {
                event_types: vec![EventType::JobFailed],
                matches: Map::new(),
            },
        );
        let metric = rule(
            organization.id,
            "hot cpu",
            Condition::Metric {
                metric: "cpu.usage".to_owned(),
                operator: Operator::Above,
                threshold: 90.5,
                for_seconds: 60,
                host_ids: Vec::new(),
            },
        );
        rules::create(&mut tx, account.id, &event).await.unwrap();
        rules::create(&mut tx, account.id, &metric).await.unwrap();
        let stored = rules::get(&mut tx, account.id, metric.id).await.unwrap();
        assert!(
            matches!(stored.condition, Condition::Metric { threshold, .. } if threshold == 90.5)
        );
        tx.commit_unaudited().await.unwrap();
    }
}
