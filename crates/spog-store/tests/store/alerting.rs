//! Alert rules on both backends.

use serde_json::Map;
use spog_core::alerts::{AlertReason, AlertRule, AlertState, Condition, Operator, ResolvedReason};
use spog_core::events::EventType;
use spog_core::metrics::Labels;
use spog_core::notification::Severity;
use spog_core::{Id, Timestamp};
use spog_store::alerting::metric_states::{self, MetricState};
use spog_store::alerting::{alerts, rules};
use spog_store::identity::{accounts, hosts};
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
        enabled_since: Some(now),
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
                labels: labels(&[("mount", "/data")]),
                no_data_seconds: 30,
            },
        );
        rules::create(&mut tx, account.id, &event).await.unwrap();
        rules::create(&mut tx, account.id, &metric).await.unwrap();
        let stored = rules::get(&mut tx, account.id, metric.id).await.unwrap();
        assert!(
            matches!(stored.condition, Condition::Metric { threshold, .. } if threshold == 90.5)
        );
        let Condition::Metric {
            labels: stored_labels,
            no_data_seconds,
            ..
        } = &stored.condition
        else {
            panic!("a metric rule")
        };
        assert_eq!(stored_labels, &labels(&[("mount", "/data")]));
        assert_eq!(*no_data_seconds, 30);
        assert_eq!(stored.enabled_since, metric.enabled_since);
        let watching = rules::watching_silence(&mut tx, None, 10).await.unwrap();
        assert!(
            watching
                .iter()
                .any(|(a, r)| *a == account.id && r.id == metric.id),
            "the metric rule watches for silence"
        );
        assert!(
            !watching.iter().any(|(_, r)| r.id == event.id),
            "event rules do not"
        );
        tx.commit_unaudited().await.unwrap();
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Each series of a rule keeps its own state and its own open alert; the silence mark is set
/// once (of several checkers one wins), survives evaluation saves, and is cleared once.
#[tokio::test]
async fn series_of_a_rule_keep_their_own_state_alert_and_silence() {
    for db in databases().await {
        let store = db.store().await;
        let mut tx = store.begin().await.unwrap();
        let now = Timestamp::now();
        let (account, organization) = accounts::create(&mut tx, "acme", now).await.unwrap();
        let host = hosts::create(&mut tx, account.id, organization.id, "web-1", "web-1", now)
            .await
            .unwrap();
        let metric = rule(
            organization.id,
            "disk full",
            Condition::Metric {
                metric: "disk.used".to_owned(),
                operator: Operator::Above,
                threshold: 90.0,
                for_seconds: 0,
                host_ids: Vec::new(),
                labels: Labels::new(),
                no_data_seconds: 30,
            },
        );
        rules::create(&mut tx, account.id, &metric).await.unwrap();
        let (root, data) = (labels(&[("mount", "/")]), labels(&[("mount", "/data")]));
        let state = |labels: &Labels, since: Option<Timestamp>| MetricState {
            rule: metric.id,
            host: host.id,
            labels: labels.clone(),
            breaching_since: since,
            last_value: 95.0,
            last_at: now,
            no_data_since: None,
        };
        metric_states::save(
            &mut tx,
            account.id,
            &[state(&root, Some(now)), state(&data, None)],
        )
        .await
        .unwrap();
        let stored = metric_states::for_host(&mut tx, host.id, &[metric.id])
            .await
            .unwrap();
        assert_eq!(stored.len(), 2, "one state per series");

        for labels in [&root, &data] {
            let mut alert = alerts::firing(&metric, "hot".into(), now);
            alert.host_id = Some(host.id);
            alert.labels = labels.clone();
            alerts::insert(&mut tx, account.id, &alert).await.unwrap();
        }
        tx.commit_unaudited().await.unwrap();
        let mut again = alerts::firing(&metric, "hot".into(), now);
        again.host_id = Some(host.id);
        again.labels = root.clone();
        let mut failing = store.begin().await.unwrap();
        assert!(
            alerts::insert(&mut failing, account.id, &again)
                .await
                .is_err(),
            "one open alert per series"
        );
        drop(failing);
        let mut tx = store.begin().await.unwrap();
        let open = alerts::open_for(&mut tx, metric.id, host.id, &data)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(open.labels, data);
        assert_eq!(open.reason, AlertReason::Threshold);

        assert!(
            metric_states::claim_no_data(
                &mut tx, account.id, metric.id, host.id, &root, 95.0, now, now
            )
            .await
            .unwrap()
        );
        assert!(
            !metric_states::claim_no_data(
                &mut tx, account.id, metric.id, host.id, &root, 95.0, now, now
            )
            .await
            .unwrap(),
            "a second checker finds it marked"
        );
        let never = labels(&[("mount", "/never")]);
        assert!(
            metric_states::claim_no_data(
                &mut tx,
                account.id,
                metric.id,
                host.id,
                &never,
                0.0,
                Timestamp::from_micros(0),
                now
            )
            .await
            .unwrap(),
            "a series without a state gets one"
        );
        metric_states::save(&mut tx, account.id, &[state(&root, Some(now))])
            .await
            .unwrap();
        let marked: Vec<MetricState> = metric_states::for_host(&mut tx, host.id, &[metric.id])
            .await
            .unwrap()
            .into_iter()
            .filter(|s| s.no_data_since.is_some())
            .collect();
        assert_eq!(marked.len(), 2, "saving the evaluation keeps the mark");
        let silent = metric_states::silent_hosts(&mut tx, metric.id, &never, &[host.id])
            .await
            .unwrap();
        assert!(silent.contains(&host.id));
        assert!(
            metric_states::clear_no_data(&mut tx, metric.id, host.id, &root)
                .await
                .unwrap()
        );
        assert!(
            !metric_states::clear_no_data(&mut tx, metric.id, host.id, &root)
                .await
                .unwrap()
        );

        assert!(
            alerts::transition(
                &mut tx,
                account.id,
                open.id,
                &[AlertState::Firing],
                AlertState::Resolved,
                None,
                Some(ResolvedReason::NoData),
                now,
            )
            .await
            .unwrap()
        );
        let resolved = alerts::get(&mut tx, account.id, open.id).await.unwrap();
        assert_eq!(resolved.resolved_reason, Some(ResolvedReason::NoData));
        let filter = |reason, host| alerts::Filter {
            rule: Some(metric.id),
            host,
            reason,
            ..Default::default()
        };
        let page = alerts::list(
            &mut tx,
            account.id,
            filter(Some(AlertReason::Threshold), Some(host.id)),
            10,
            None,
        )
        .await
        .unwrap();
        assert_eq!(page.items.len(), 2);
        let page = alerts::list(
            &mut tx,
            account.id,
            filter(Some(AlertReason::NoData), None),
            10,
            None,
        )
        .await
        .unwrap();
        assert!(page.items.is_empty());
        tx.commit_unaudited().await.unwrap();
    }
}
