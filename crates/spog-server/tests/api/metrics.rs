//! Metrics as stored series (SPEC 12.4): what `POST /metrics` keeps, range queries and their
//! every refusal, latest values, who may read them, and what host deletion and pruning leave.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_core::Timestamp;
use spog_server::testing::{Client, TestServer};

use crate::servers;

const HOUR: i64 = 3_600_000_000;
const SECOND: i64 = 1_000_000;

struct Setup {
    admin: Client,
    agent: Client,
    host: String,
    /// A whole hour two hours ago: within the raw retention, minutes and steps line up.
    t0: i64,
}

async fn setup(server: &TestServer) -> Setup {
    let admin = server.admin().await;
    let agent = admin.token_client("agent", &["events.publish"]).await;
    let (_, organizations) = admin.get("/organizations").await;
    let organization = organizations[0]["id"].as_str().unwrap().to_owned();
    let (_, host) = admin
        .post(
            "/hosts",
            json!({"organization_id": organization, "hostname": "web-1"}),
        )
        .await;
    let now = Timestamp::now().micros();
    Setup {
        admin,
        agent,
        host: host["id"].as_str().unwrap().to_owned(),
        t0: now.div_euclid(HOUR) * HOUR - 2 * HOUR,
    }
}

fn at(micros: i64) -> String {
    Timestamp::from_micros(micros).to_string()
}

fn field_error(body: &Value, field: &str) -> bool {
    body["error"]["details"]["fields"][field].is_string()
}

impl Setup {
    async fn send(&self, samples: Value) -> (StatusCode, Value) {
        self.agent
            .post(
                "/metrics",
                json!({"host_id": self.host, "samples": samples}),
            )
            .await
    }

    async fn query(&self, client: &Client, query: &str) -> (StatusCode, Value) {
        client
            .get(&format!("/hosts/{}/metrics?{query}", self.host))
            .await
    }

    fn range(&self, from: i64, to: i64) -> String {
        format!("from={}&to={}", at(self.t0 + from), at(self.t0 + to))
    }
}

fn points(series: &Value) -> Vec<(String, f64, f64, f64, i64)> {
    series["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["at"].as_str().unwrap().to_owned(),
                p["value"].as_f64().unwrap(),
                p["min"].as_f64().unwrap(),
                p["max"].as_f64().unwrap(),
                p["count"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn samples_are_kept_as_series_and_bucketed_by_step() {
    for server in servers().await {
        let s = setup(&server).await;
        let t = s.t0;
        let (status, body) = s
            .send(json!([
                {"metric": "cpu.percent", "value": 10.0, "at": at(t)},
                {"metric": "cpu.percent", "value": 20.0, "at": at(t + 15 * SECOND)},
                {"metric": "cpu.percent", "value": 30.0, "at": at(t + 30 * SECOND)},
                {"metric": "cpu.percent", "value": 60.0, "at": at(t + 60 * SECOND)},
                {"metric": "disk.used_percent", "labels": {"mount": "/"}, "value": 40.0, "at": at(t)},
                {"metric": "disk.used_percent", "labels": {"mount": "/home"}, "value": 70.0, "at": at(t)},
                {"metric": "disk.used_percent", "labels": {"mount": "/home"}, "value": 90.0, "at": at(t + 90 * SECOND)},
            ]))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        // Sent again: each sample counts once.
        s.send(json!([{"metric": "cpu.percent", "value": 10.0, "at": at(t)}]))
            .await;

        // Whole minutes (from the rollups).
        let (status, body) = s
            .query(
                &s.admin,
                &format!("name=cpu.percent&{}&step=1m", s.range(0, 10 * 60 * SECOND)),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["host_id"], s.host.as_str());
        assert_eq!(body["name"], "cpu.percent");
        assert_eq!(body["step_seconds"], 60);
        assert_eq!(body["from"], at(t));
        assert_eq!(body["series"].as_array().unwrap().len(), 1);
        assert_eq!(body["series"][0]["labels"], json!({}));
        assert_eq!(
            points(&body["series"][0]),
            vec![
                (at(t), 20.0, 10.0, 30.0, 3),
                (at(t + 60 * SECOND), 60.0, 60.0, 60.0, 1)
            ],
            "{:?}",
            server.database.backend
        );
        // Seconds (from the raw samples), with `from` inside a bucket: the bucket is whole.
        let (_, body) = s
            .query(
                &s.admin,
                &format!(
                    "name=cpu.percent&{}&step=30",
                    s.range(5 * SECOND, 2 * 60 * SECOND)
                ),
            )
            .await;
        assert_eq!(body["step_seconds"], 30);
        assert_eq!(
            points(&body["series"][0]),
            vec![
                (at(t), 15.0, 10.0, 20.0, 2),
                (at(t + 30 * SECOND), 30.0, 30.0, 30.0, 1),
                (at(t + 60 * SECOND), 60.0, 60.0, 60.0, 1)
            ]
        );
        // A step that is not whole minutes, over a recent range: raw samples.
        let (_, body) = s
            .query(
                &s.admin,
                &format!("name=cpu.percent&{}&step=90s", s.range(0, HOUR)),
            )
            .await;
        assert_eq!(
            points(&body["series"][0]),
            vec![(at(t), 30.0, 10.0, 60.0, 4)]
        );

        // One series per label set, by labels; a label filter picks one.
        let disk = format!("name=disk.used_percent&{}&step=1h", s.range(0, HOUR));
        let (_, body) = s.query(&s.admin, &disk).await;
        let series = body["series"].as_array().unwrap();
        assert_eq!(series.len(), 2, "{body}");
        assert_eq!(series[0]["labels"], json!({"mount": "/"}));
        assert_eq!(series[1]["labels"], json!({"mount": "/home"}));
        assert_eq!(points(&series[1]), vec![(at(t), 80.0, 70.0, 90.0, 2)]);
        let (status, body) = s
            .query(&s.admin, &format!("{disk}&label=mount:%2Fhome"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["series"].as_array().unwrap().len(), 1);
        assert_eq!(body["series"][0]["labels"], json!({"mount": "/home"}));
        let (_, body) = s
            .query(&s.admin, &format!("{disk}&label=mount:%2Fvar"))
            .await;
        assert_eq!(body["series"], json!([]));
        // No such metric: no series.
        let (status, body) = s.query(&s.admin, "name=nothing.here").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["series"], json!([]));

        // Latest: the newest sample of each series.
        let (status, body) = s
            .admin
            .get(&format!("/hosts/{}/metrics/latest", s.host))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let latest: Vec<(String, Value, f64, String)> = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["metric"].as_str().unwrap().to_owned(),
                    i["labels"].clone(),
                    i["value"].as_f64().unwrap(),
                    i["at"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            latest,
            vec![
                ("cpu.percent".into(), json!({}), 60.0, at(t + 60 * SECOND)),
                (
                    "disk.used_percent".into(),
                    json!({"mount": "/"}),
                    40.0,
                    at(t)
                ),
                (
                    "disk.used_percent".into(),
                    json!({"mount": "/home"}),
                    90.0,
                    at(t + 90 * SECOND)
                ),
            ]
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn the_default_step_is_the_smallest_giving_at_most_500_buckets() {
    for server in servers().await {
        let s = setup(&server).await;
        let now = Timestamp::now().micros();
        let step = |query: String| {
            let s = &s;
            async move {
                let (status, body) = s.query(&s.admin, &query).await;
                assert_eq!(status, StatusCode::OK, "{query}: {body}");
                body["step_seconds"].as_i64().unwrap()
            }
        };
        let span = |from: i64, to: i64| format!("name=load1&from={}&to={}", at(from), at(to));
        assert_eq!(step("name=load1".into()).await, 15);
        assert_eq!(step(span(now - 24 * HOUR + HOUR, now)).await, 300);
        assert_eq!(step(span(now - 6 * 24 * HOUR, now)).await, 3_600);
        // Older than the raw samples are kept: not below a minute.
        assert_eq!(step(span(now - 30 * HOUR, now - 29 * HOUR)).await, 60);
        // `from` defaults to an hour before `to`.
        let (_, body) = s
            .query(&s.admin, &format!("name=load1&to={}", at(s.t0)))
            .await;
        assert_eq!(body["from"], at(s.t0 - HOUR));
        assert_eq!(body["to"], at(s.t0));
        server.stop().await;
    }
}

#[tokio::test]
async fn every_bad_query_and_sample_is_422_naming_its_field() {
    for server in servers().await {
        let s = setup(&server).await;
        let now = Timestamp::now().micros();
        let old = format!("from={}&to={}", at(now - 30 * HOUR), at(now - 29 * HOUR));
        let week = format!("from={}&to={}", at(now - 7 * 24 * HOUR + HOUR), at(now));
        let cases = [
            ("from=2026-01-01T00:00:00Z".to_owned(), "name"),
            ("name=bad%20metric".to_owned(), "name"),
            ("name=load1&step=500ms".to_owned(), "step"),
            ("name=load1&step=0".to_owned(), "step"),
            ("name=load1&step=1500ms".to_owned(), "step"),
            ("name=load1&step=soon".to_owned(), "step"),
            ("name=load1&step=-5".to_owned(), "step"),
            ("name=load1&step=99999999999999999999".to_owned(), "step"),
            (format!("name=load1&{week}&step=1s"), "step"),
            (format!("name=load1&{week}&step=30s"), "step"),
            (format!("name=load1&{old}&step=30s"), "step"),
            (
                format!("name=load1&from={}&to={}", at(now), at(now)),
                "from",
            ),
            (
                format!("name=load1&from={}&to={}", at(now), at(now - HOUR)),
                "from",
            ),
            ("name=load1&from=yesterday".to_owned(), "from"),
            ("name=load1&to=1".to_owned(), "to"),
            ("name=load1&label=mount".to_owned(), "label"),
            ("name=load1&label=Mount:%2F".to_owned(), "label"),
            ("name=load1&name=load5".to_owned(), "name"),
            ("name=load1&limit=5".to_owned(), "limit"),
        ];
        for (query, field) in cases {
            let (status, body) = s.query(&s.admin, &query).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
            assert!(field_error(&body, field), "{query} names {field}: {body}");
        }
        // 11,000 buckets are fine; a minute step over an old range is too.
        let (status, body) = s
            .query(&s.admin, &format!("name=load1&{week}&step=1m"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _) = s
            .query(&s.admin, &format!("name=load1&{old}&step=1m"))
            .await;
        assert_eq!(status, StatusCode::OK);

        // Samples: labels and times.
        let nine: serde_json::Map<String, Value> =
            (0..9).map(|i| (format!("k{i}"), json!("v"))).collect();
        let (status, body) = s
            .send(json!([
                {"metric": "load1", "value": 1.0},
                {"metric": "load1", "value": 1.0, "labels": nine},
                {"metric": "load1", "value": 1.0, "labels": {"Bad": "x"}},
                {"metric": "load1", "value": 1.0, "at": at(now - 8 * 24 * HOUR)},
                {"metric": "load1", "value": 1.0, "at": at(now + HOUR)},
                {"metric": "load1", "value": -1e201},
            ]))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        for field in [
            "samples[1].labels",
            "samples[2].labels",
            "samples[3].at",
            "samples[4].at",
            "samples[5].value",
        ] {
            assert!(field_error(&body, field), "{field}: {body}");
        }
        assert!(!field_error(&body, "samples[0].at"), "{body}");
        // Nothing of a refused batch is kept.
        let (_, latest) = s
            .admin
            .get(&format!("/hosts/{}/metrics/latest", s.host))
            .await;
        assert_eq!(latest["items"], json!([]));
        // Six days back is within the retention.
        let (status, body) = s
            .send(json!([{"metric": "load1", "value": 1.0, "at": at(now - 6 * 24 * HOUR)}]))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        server.stop().await;
    }
}

#[tokio::test]
async fn only_callers_who_may_see_the_host_read_its_metrics() {
    for server in servers().await {
        let s = setup(&server).await;
        s.send(json!([{"metric": "load1", "value": 1.5}])).await;
        let series = format!("/hosts/{}/metrics?name=load1", s.host);
        let latest = format!("/hosts/{}/metrics/latest", s.host);

        let viewer = s
            .admin
            .user_with_roles(&server, "val@example.com", &["viewer"])
            .await;
        assert_eq!(viewer.get(&series).await.0, StatusCode::NOT_FOUND);
        assert_eq!(viewer.get(&latest).await.0, StatusCode::NOT_FOUND);
        let (_, me) = viewer.get("/auth/me").await;
        let (status, body) = s
            .admin
            .post(
                &format!(
                    "/hosts/{}/access/{}",
                    s.host,
                    me["user_id"].as_str().unwrap()
                ),
                json!({}),
            )
            .await;
        assert!(status.is_success(), "{body}");
        let (status, body) = viewer.get(&series).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["series"][0]["points"][0]["value"], 1.5);
        let (_, body) = viewer.get(&latest).await;
        assert_eq!(body["items"][0]["value"], 1.5);

        // An agent's token publishes, it does not read.
        assert_eq!(s.agent.get(&series).await.0, StatusCode::FORBIDDEN);

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
        assert_eq!(globex.get(&series).await.0, StatusCode::NOT_FOUND);
        assert_eq!(globex.get(&latest).await.0, StatusCode::NOT_FOUND);
        assert_eq!(
            s.admin
                .get("/hosts/01a21066-0000-7000-8000-000000000001/metrics/latest")
                .await
                .0,
            StatusCode::NOT_FOUND
        );
        server.stop().await;
    }
}

async fn rows(server: &TestServer, table: &str) -> i64 {
    let mut conn = server.state.store.conn().await.unwrap();
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn deleting_a_host_deletes_its_series() {
    for server in servers().await {
        let s = setup(&server).await;
        s.send(json!([
            {"metric": "load1", "value": 1.0},
            {"metric": "disk.used_percent", "labels": {"mount": "/"}, "value": 3.0},
        ]))
        .await;
        for table in ["metric_series", "metric_samples", "metric_rollups"] {
            assert_eq!(rows(&server, table).await, 2, "{table}");
        }
        let (status, body) = s.admin.delete(&format!("/hosts/{}", s.host)).await;
        assert!(status.is_success(), "{body}");
        for table in ["metric_series", "metric_samples", "metric_rollups"] {
            assert_eq!(rows(&server, table).await, 0, "{table}");
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn pruning_drops_raw_samples_first_and_rollups_after_the_retention() {
    for server in servers().await {
        let s = setup(&server).await;
        let now = Timestamp::now();
        let two_days = now.micros() - 48 * HOUR;
        s.send(json!([
            {"metric": "load1", "value": 4.0, "at": at(two_days)},
            {"metric": "load1", "value": 1.0, "at": at(s.t0)},
        ]))
        .await;
        assert_eq!(rows(&server, "metric_samples").await, 2);
        spog_server::workers::metrics_pruning::run_once(&server.state, now)
            .await
            .unwrap();
        assert_eq!(rows(&server, "metric_samples").await, 1);
        assert_eq!(rows(&server, "metric_rollups").await, 2);
        let old = format!(
            "name=load1&from={}&to={}&step=1h",
            at(two_days - HOUR),
            at(two_days + HOUR)
        );
        let (_, body) = s.query(&s.admin, &old).await;
        assert_eq!(body["series"][0]["points"][0]["value"], 4.0, "{body}");
        // Past the retention the rollups go too.
        let later = now.plus(Duration::from_secs(6 * 86_400));
        spog_server::workers::metrics_pruning::run_once(&server.state, later)
            .await
            .unwrap();
        assert_eq!(rows(&server, "metric_rollups").await, 1);
        assert_eq!(rows(&server, "metric_samples").await, 0);
        server.stop().await;
    }
}
