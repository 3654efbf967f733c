//! Metric series on both backends: recording (once per sample), rollups, queries, latest
//! values, pruning and host deletion.

use spog_core::Timestamp;
use spog_core::metrics::Labels;
use spog_core::model::{Account, Host};
use spog_core::{FieldError, Id};
use spog_store::identity::{accounts, hosts};
use spog_store::metrics::{self, Bucket, Query, Sample, Source};
use spog_store::testing::databases;
use spog_store::{Store, StoreError};

const MINUTE: i64 = 60_000_000;
/// A whole hour, so that minutes and hours line up with it.
const T0: i64 = 1_796_000_400_000_000;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn sample(metric: &str, pairs: &[(&str, &str)], value: f64, at: i64) -> Sample {
    Sample {
        metric: metric.to_owned(),
        labels: labels(pairs),
        value,
        at: Timestamp::from_micros(at),
    }
}

async fn host(store: &Store, name: &str) -> (Id<Account>, Id<Host>) {
    let now = Timestamp::now();
    let mut tx = store.begin().await.unwrap();
    let (account, organization) = accounts::create(&mut tx, name, now).await.unwrap();
    let host = hosts::create(&mut tx, account.id, organization.id, name, name, now)
        .await
        .unwrap();
    tx.commit_unaudited().await.unwrap();
    (account.id, host.id)
}

async fn record(store: &Store, account: Id<Account>, host: Id<Host>, samples: &[Sample]) -> usize {
    let mut tx = store.begin().await.unwrap();
    let n = metrics::record(&mut tx, account, host, samples)
        .await
        .unwrap();
    tx.commit_unaudited().await.unwrap();
    n
}

async fn count(store: &Store, table: &str) -> i64 {
    let mut conn = store.conn().await.unwrap();
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

fn bucket(at: i64, value: f64, min: f64, max: f64, count: i64) -> Bucket {
    Bucket {
        at: Timestamp::from_micros(at),
        value,
        min,
        max,
        count,
    }
}

#[tokio::test]
async fn samples_count_once_and_roll_up_by_minute_and_series() {
    for db in databases().await {
        let store = db.store().await;
        let (account, host) = host(&store, "acme").await;
        let batch = vec![
            sample("cpu.percent", &[], 10.0, T0),
            sample("cpu.percent", &[], 20.0, T0 + 15_000_000),
            sample("cpu.percent", &[], 60.0, T0 + MINUTE + 1),
            sample("disk.used_percent", &[("mount", "/")], 50.0, T0),
            sample("disk.used_percent", &[("mount", "/home")], 70.0, T0),
            // The same sample twice in one batch.
            sample("disk.used_percent", &[("mount", "/home")], 70.0, T0),
        ];
        assert_eq!(
            record(&store, account, host, &batch).await,
            5,
            "{:?}",
            db.backend
        );
        // Re-sent: nothing new, rollups unchanged; one new sample in a known minute.
        let again = vec![
            sample("cpu.percent", &[], 10.0, T0),
            sample("cpu.percent", &[], 30.0, T0 + 30_000_000),
        ];
        assert_eq!(record(&store, account, host, &again).await, 1);
        assert_eq!(count(&store, "metric_series").await, 3);
        assert_eq!(count(&store, "metric_samples").await, 6);
        assert_eq!(count(&store, "metric_rollups").await, 4);

        let none = Labels::new();
        let mut conn = store.conn().await.unwrap();
        for source in [Source::Raw, Source::Rollups] {
            let query = Query {
                metric: "cpu.percent",
                labels: &none,
                from: Timestamp::from_micros(T0 + 5),
                to: Timestamp::from_micros(T0 + 10 * MINUTE),
                step: MINUTE,
                source,
            };
            let series = metrics::query(&mut conn, account, host, &query)
                .await
                .unwrap();
            assert_eq!(series.len(), 1, "{source:?}");
            assert_eq!(series[0].labels, none);
            assert_eq!(
                series[0].points,
                vec![
                    bucket(T0, 20.0, 10.0, 30.0, 3),
                    bucket(T0 + MINUTE, 60.0, 60.0, 60.0, 1)
                ],
                "{:?} {source:?}",
                db.backend
            );
        }
        // Raw samples at a 15 s step, one bucket each; empty buckets left out.
        let query = Query {
            metric: "cpu.percent",
            labels: &none,
            from: Timestamp::from_micros(T0),
            to: Timestamp::from_micros(T0 + MINUTE),
            step: 15_000_000,
            source: Source::Raw,
        };
        let series = metrics::query(&mut conn, account, host, &query)
            .await
            .unwrap();
        let at: Vec<i64> = series[0].points.iter().map(|p| p.at.micros()).collect();
        assert_eq!(at, [T0, T0 + 15_000_000, T0 + 30_000_000]);
        // A series per label set, by labels, and a label filter.
        let query = Query {
            metric: "disk.used_percent",
            labels: &none,
            from: Timestamp::from_micros(T0),
            to: Timestamp::from_micros(T0 + 60 * MINUTE),
            step: 60 * MINUTE,
            source: Source::Rollups,
        };
        let series = metrics::query(&mut conn, account, host, &query)
            .await
            .unwrap();
        let mounts: Vec<_> = series.iter().map(|s| s.labels["mount"].as_str()).collect();
        assert_eq!(mounts, ["/", "/home"]);
        assert_eq!(series[1].points, vec![bucket(T0, 70.0, 70.0, 70.0, 1)]);
        let home = labels(&[("mount", "/home")]);
        let filtered = metrics::query(
            &mut conn,
            account,
            host,
            &Query {
                labels: &home,
                ..query.clone()
            },
        )
        .await
        .unwrap();
        assert_eq!(filtered, vec![series[1].clone()]);
        // Another account sees nothing of the host.
        let (other, _) = self::host(&store, "globex").await;
        assert!(
            metrics::query(&mut conn, other, host, &query)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            metrics::latest(&mut conn, other, host)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn the_latest_value_never_moves_back_for_a_late_sample() {
    for db in databases().await {
        let store = db.store().await;
        let (account, host) = host(&store, "acme").await;
        record(
            &store,
            account,
            host,
            &[sample("load1", &[], 2.0, T0 + MINUTE)],
        )
        .await;
        record(&store, account, host, &[sample("load1", &[], 9.0, T0)]).await;
        record(
            &store,
            account,
            host,
            &[
                sample("net.rx_bytes_per_second", &[("interface", "eth0")], 5.0, T0),
                sample(
                    "net.rx_bytes_per_second",
                    &[("interface", "eth0")],
                    7.0,
                    T0 + 1,
                ),
            ],
        )
        .await;
        let mut conn = store.conn().await.unwrap();
        let latest = metrics::latest(&mut conn, account, host).await.unwrap();
        let got: Vec<_> = latest
            .iter()
            .map(|l| (l.metric.as_str(), l.labels.clone(), l.value, l.at.micros()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("load1", Labels::new(), 2.0, T0 + MINUTE),
                (
                    "net.rx_bytes_per_second",
                    labels(&[("interface", "eth0")]),
                    7.0,
                    T0 + 1
                ),
            ],
            "{:?}",
            db.backend
        );
        // The contract the metric rules read.
        let row: (String, String, String, String, f64, i64) = sqlx::query_as(
            "SELECT account_id, host_id, metric, labels, last_value, last_at FROM metric_series \
             WHERE metric = 'net.rx_bytes_per_second'",
        )
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        assert_eq!(
            row,
            (
                account.to_string(),
                host.to_string(),
                "net.rx_bytes_per_second".to_owned(),
                r#"{"interface":"eth0"}"#.to_owned(),
                7.0,
                T0 + 1
            )
        );
    }
}

#[tokio::test]
async fn pruning_goes_in_bounded_batches_and_keeps_rollups_longer() {
    for db in databases().await {
        let store = db.store().await;
        let (account, host) = host(&store, "acme").await;
        let old: Vec<Sample> = (0..5)
            .map(|i| sample("cpu.percent", &[], i as f64, T0 + i * MINUTE))
            .collect();
        record(&store, account, host, &old).await;
        record(&store, account, host, &[sample("load1", &[], 1.0, T0)]).await;
        record(
            &store,
            account,
            host,
            &[sample("load1", &[], 1.0, T0 + 100 * MINUTE)],
        )
        .await;
        let raw_before = Timestamp::from_micros(T0 + 100 * MINUTE);
        let rollups_before = Timestamp::from_micros(T0 + 3 * MINUTE);
        let mut conn = store.conn().await.unwrap();
        let first = metrics::prune(&mut conn, raw_before, rollups_before, 4)
            .await
            .unwrap();
        assert_eq!(
            (first.samples, first.rollups, first.series),
            (4, 4, 0),
            "{:?}",
            db.backend
        );
        assert!(first.more(4));
        let second = metrics::prune(&mut conn, raw_before, rollups_before, 4)
            .await
            .unwrap();
        assert_eq!((second.samples, second.rollups, second.series), (2, 0, 0));
        assert!(!second.more(4));
        assert_eq!(count(&store, "metric_samples").await, 1);
        assert_eq!(count(&store, "metric_rollups").await, 3);
        // Rollups still answer for the minutes whose raw samples are gone.
        let none = Labels::new();
        let query = Query {
            metric: "cpu.percent",
            labels: &none,
            from: Timestamp::from_micros(T0),
            to: Timestamp::from_micros(T0 + 10 * MINUTE),
            step: MINUTE,
            source: Source::Rollups,
        };
        let series = metrics::query(&mut conn, account, host, &query)
            .await
            .unwrap();
        let at: Vec<i64> = series[0].points.iter().map(|p| p.at.micros()).collect();
        assert_eq!(at, [T0 + 3 * MINUTE, T0 + 4 * MINUTE]);
        // A series silent past the retention goes, with what it still holds.
        let later = Timestamp::from_micros(T0 + 50 * MINUTE);
        let third = metrics::prune(&mut conn, raw_before, later, 10)
            .await
            .unwrap();
        assert_eq!((third.rollups, third.series), (2, 1));
        let left: Vec<_> = metrics::latest(&mut conn, account, host)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.metric)
            .collect();
        assert_eq!(left, ["load1"]);
    }
}

#[tokio::test]
async fn deleting_a_host_deletes_its_series_samples_and_rollups() {
    for db in databases().await {
        let store = db.store().await;
        let (account, host) = host(&store, "acme").await;
        let (other_account, other) = self::host(&store, "globex").await;
        record(
            &store,
            account,
            host,
            &[sample("load1", &[("k", "v")], 1.0, T0)],
        )
        .await;
        record(
            &store,
            other_account,
            other,
            &[sample("load1", &[], 1.0, T0)],
        )
        .await;
        let mut tx = store.begin().await.unwrap();
        hosts::delete(&mut tx, account, host).await.unwrap();
        tx.commit_unaudited().await.unwrap();
        for table in ["metric_series", "metric_samples", "metric_rollups"] {
            assert_eq!(count(&store, table).await, 1, "{table} {:?}", db.backend);
        }
    }
}

#[tokio::test]
async fn a_host_has_a_bounded_number_of_series() {
    for db in databases().await {
        let store = db.store().await;
        let (account, host) = host(&store, "acme").await;
        let many: Vec<Sample> = (0..metrics::MAX_SERIES_PER_HOST)
            .map(|i| {
                sample(
                    "disk.used_percent",
                    &[("mount", &format!("/m{i}"))],
                    1.0,
                    T0,
                )
            })
            .collect();
        assert_eq!(record(&store, account, host, &many).await, many.len());
        // Known series still take samples; a new one is refused.
        assert_eq!(
            record(
                &store,
                account,
                host,
                &[sample(
                    "disk.used_percent",
                    &[("mount", "/m0")],
                    2.0,
                    T0 + 1
                )]
            )
            .await,
            1
        );
        let mut tx = store.begin().await.unwrap();
        let refused =
            metrics::record(&mut tx, account, host, &[sample("load1", &[], 1.0, T0)]).await;
        assert!(
            matches!(&refused, Err(StoreError::Invalid(FieldError { field, .. })) if field == "samples"),
            "{refused:?}"
        );
        drop(tx);
        // A query over more series than one answer holds names `label`.
        let none = Labels::new();
        let query = Query {
            metric: "disk.used_percent",
            labels: &none,
            from: Timestamp::from_micros(T0),
            to: Timestamp::from_micros(T0 + MINUTE),
            step: MINUTE,
            source: Source::Rollups,
        };
        let mut conn = store.conn().await.unwrap();
        let wide = metrics::query(&mut conn, account, host, &query).await;
        assert!(
            matches!(&wide, Err(StoreError::Invalid(FieldError { field, .. })) if field == "label"),
            "{wide:?}"
        );
    }
}

#[tokio::test]
async fn means_stay_within_min_and_max_and_huge_values_add_up() {
    for db in databases().await {
        let store = db.store().await;
        let (account, host) = host(&store, "acme").await;
        let huge: Vec<Sample> = (0..1_000)
            .map(|i| sample("x", &[], spog_core::metrics::MAX_VALUE, T0 + i))
            .collect();
        record(&store, account, host, &huge).await;
        let tenths: Vec<Sample> = (0..3).map(|i| sample("y", &[], 0.1, T0 + i)).collect();
        record(&store, account, host, &tenths).await;
        let none = Labels::new();
        let mut conn = store.conn().await.unwrap();
        for source in [Source::Raw, Source::Rollups] {
            let query = Query {
                metric: "x",
                labels: &none,
                from: Timestamp::from_micros(T0),
                to: Timestamp::from_micros(T0 + MINUTE),
                step: MINUTE,
                source,
            };
            let series = metrics::query(&mut conn, account, host, &query)
                .await
                .unwrap();
            let max = spog_core::metrics::MAX_VALUE;
            assert_eq!(
                series[0].points,
                vec![bucket(T0, max, max, max, 1_000)],
                "{:?} {source:?}",
                db.backend
            );
            let tenths = Query {
                metric: "y",
                ..query
            };
            let series = metrics::query(&mut conn, account, host, &tenths)
                .await
                .unwrap();
            assert_eq!(series[0].points, vec![bucket(T0, 0.1, 0.1, 0.1, 3)]);
        }
    }
}
