//! The metric charts of a host's page (SPEC 11.1 "§10 console", 12.2, 12.4): CPU, memory,
//! disk per mount, load and network per interface, over 1 h, 6 h, 24 h or 7 d, read from the
//! stored series as `GET /hosts/{id}/metrics` reads them and drawn by [`metric_charts`].

use std::collections::{BTreeMap, HashMap};

use spog_core::Timestamp;

use super::metric_charts::{self, Chart, Point, Series, Unit};

/// A range the charts show, ending now.
pub struct ChartRange {
    /// As `?range=` names it.
    pub name: &'static str,
    pub label: &'static str,
    pub seconds: i64,
    /// The buckets' width: the API's default step for the range (≤ 500 buckets).
    pub step_seconds: i64,
    /// How often the open page redraws the charts.
    pub refresh_seconds: u32,
}

pub const RANGES: [ChartRange; 4] = [
    ChartRange {
        name: "1h",
        label: "1 h",
        seconds: 3_600,
        step_seconds: 15,
        refresh_seconds: 15,
    },
    ChartRange {
        name: "6h",
        label: "6 h",
        seconds: 21_600,
        step_seconds: 60,
        refresh_seconds: 60,
    },
    ChartRange {
        name: "24h",
        label: "24 h",
        seconds: 86_400,
        step_seconds: 300,
        refresh_seconds: 60,
    },
    ChartRange {
        name: "7d",
        label: "7 d",
        seconds: 604_800,
        step_seconds: 3_600,
        refresh_seconds: 300,
    },
];

/// One chart: the metrics it draws (each with the prefix of its series' names) and the label
/// that tells a metric's series apart.
struct Spec {
    id: &'static str,
    title: &'static str,
    unit: Unit,
    metrics: &'static [(&'static str, &'static str)],
    /// The label whose value names a series (`mount`, `interface`).
    label: Option<&'static str>,
}

const SPECS: [Spec; 6] = [
    Spec {
        id: "chart-cpu",
        title: "CPU",
        unit: Unit::Percent,
        metrics: &[("cpu.percent", "")],
        label: None,
    },
    Spec {
        id: "chart-memory",
        title: "Memory used",
        unit: Unit::Percent,
        metrics: &[("memory.used_percent", "")],
        label: None,
    },
    Spec {
        id: "chart-disk",
        title: "Disk used, per mount",
        unit: Unit::Percent,
        metrics: &[("disk.used_percent", "")],
        label: Some("mount"),
    },
    Spec {
        id: "chart-load",
        title: "Load",
        unit: Unit::Number,
        metrics: &[("load1", "1 min"), ("load5", "5 min"), ("load15", "15 min")],
        label: None,
    },
    Spec {
        id: "chart-net-rx",
        title: "Network received, per interface",
        unit: Unit::BytesPerSecond,
        metrics: &[("net.rx_bytes_per_second", "")],
        label: Some("interface"),
    },
    Spec {
        id: "chart-net-tx",
        title: "Network sent, per interface",
        unit: Unit::BytesPerSecond,
        metrics: &[("net.tx_bytes_per_second", "")],
        label: Some("interface"),
    },
];

pub struct HostChart {
    pub id: &'static str,
    pub title: &'static str,
    pub chart: Chart,
    /// A metric had more series than one query reads: it is not drawn.
    pub too_many: bool,
}

pub struct HostCharts {
    pub range: &'static ChartRange,
    pub charts: Vec<HostChart>,
}

/// One stored series of a metric: its labels and its buckets.
pub struct StoredSeries {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<Point>,
}

/// A series' name on its chart: the metric's prefix and the distinguishing label's value (or
/// every label, when the series carries others).
fn series_label(prefix: &str, label: Option<&str>, labels: &BTreeMap<String, String>) -> String {
    let named = match label.and_then(|key| labels.get(key).filter(|_| labels.len() == 1)) {
        Some(value) => value.clone(),
        None => labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", "),
    };
    match (prefix.is_empty(), named.is_empty()) {
        (_, true) => prefix.to_owned(),
        (true, false) => named,
        (false, false) => format!("{prefix} {named}"),
    }
}

/// The range's window ending at `now`: `[from, to)`.
pub fn window(range: &ChartRange, now: Timestamp) -> (Timestamp, Timestamp) {
    (
        Timestamp::from_micros(now.micros() - range.seconds * 1_000_000),
        now,
    )
}

/// Every metric the charts draw, each once.
pub fn metrics() -> impl Iterator<Item = &'static str> {
    SPECS
        .iter()
        .flat_map(|spec| spec.metrics.iter().map(|(m, _)| *m))
}

/// The charts over `[from, to)` in buckets of `step_seconds` from the series `stored` holds
/// for each metric (a metric it lacks has none; `None`: more than could be read).
pub fn charts_of(
    range: &'static ChartRange,
    (from, to): (Timestamp, Timestamp),
    step_seconds: i64,
    mut stored: HashMap<&'static str, Option<Vec<StoredSeries>>>,
) -> HostCharts {
    let charts = SPECS
        .iter()
        .map(|spec| {
            let mut series = Vec::new();
            let mut too_many = false;
            for (metric, prefix) in spec.metrics {
                let found = stored.remove(metric).unwrap_or(Some(Vec::new()));
                too_many |= found.is_none();
                for found in found.unwrap_or_default() {
                    series.push(Series {
                        label: series_label(prefix, spec.label, &found.labels),
                        points: found.points,
                    });
                }
            }
            // Lines keep their colours from one refresh to the next.
            if spec.metrics.len() == 1 {
                series.sort_by(|a, b| a.label.cmp(&b.label));
            }
            HostChart {
                id: spec.id,
                title: spec.title,
                chart: metric_charts::chart(&series, spec.unit, from, to, step_seconds),
                too_many,
            }
        })
        .collect();
    HostCharts { range, charts }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_named_by_their_distinguishing_label() {
        let one = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert_eq!(series_label("", Some("mount"), &one("mount", "/")), "/");
        assert_eq!(series_label("1 min", None, &BTreeMap::new()), "1 min");
        assert_eq!(series_label("", None, &BTreeMap::new()), "");
        let two = BTreeMap::from([
            ("interface".to_owned(), "eth0".to_owned()),
            ("vlan".to_owned(), "7".to_owned()),
        ]);
        assert_eq!(
            series_label("", Some("interface"), &two),
            "interface=eth0, vlan=7"
        );
    }

    #[test]
    fn every_chart_draws_its_metrics_over_the_window() {
        let now = Timestamp::from_micros(1_795_600_800_000_000);
        let names: Vec<&str> = metrics().collect();
        assert_eq!(
            names,
            [
                "cpu.percent",
                "memory.used_percent",
                "disk.used_percent",
                "load1",
                "load5",
                "load15",
                "net.rx_bytes_per_second",
                "net.tx_bytes_per_second"
            ]
        );
        let window = window(&RANGES[3], now);
        assert_eq!(window.0.micros(), now.micros() - 604_800_000_000);
        let point = |value| Point {
            at: window.0,
            value,
            min: value,
            max: value,
        };
        let stored = HashMap::from([
            (
                "load5",
                Some(vec![StoredSeries {
                    labels: BTreeMap::new(),
                    points: vec![point(1.0)],
                }]),
            ),
            (
                "disk.used_percent",
                Some(
                    ["/var", "/"]
                        .map(|mount| StoredSeries {
                            labels: BTreeMap::from([("mount".to_owned(), mount.to_owned())]),
                            points: vec![point(50.0)],
                        })
                        .into(),
                ),
            ),
            ("net.rx_bytes_per_second", None),
        ]);
        let charts = charts_of(&RANGES[3], window, 3_600, stored);
        let ids: Vec<&str> = charts.charts.iter().map(|c| c.id).collect();
        assert_eq!(
            ids,
            [
                "chart-cpu",
                "chart-memory",
                "chart-disk",
                "chart-load",
                "chart-net-rx",
                "chart-net-tx"
            ]
        );
        let load = &charts.charts[3].chart;
        assert_eq!(load.lines.len(), 1);
        assert_eq!(load.lines[0].label, "5 min");
        let disk: Vec<&str> = charts.charts[2]
            .chart
            .lines
            .iter()
            .map(|l| l.label.as_str())
            .collect();
        assert_eq!(disk, ["/", "/var"]);
        assert!(charts.charts[0].chart.empty);
        assert!(!charts.charts[0].too_many);
        assert!(
            charts.charts[4].too_many,
            "net rx had more series than one query reads"
        );
    }
}
