//! A host's metric charts as plain SVG drawn on the server, like the audit statistics
//! ([`super::audit::charts`]): the geometry is computed here from plain series (points of
//! `at`, mean `value`, `min`, `max`) and the template only places shapes. Each series is a
//! line of its means over a band of its minima and maxima; more than one bucket missing from a
//! series (one may be jitter of the agent's interval) breaks its line rather than drawing
//! across the gap, and a bucket standing alone is a dot.

use spog_core::Timestamp;

// Two charts stand side by side: half the statistics chart's width keeps the text the same
// size on the page.
const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;
/// Lines of one chart, at most (more are counted, not drawn): the colours run out and the
/// chart stops being readable.
pub const MAX_LINES: usize = 8;

fn number(value: f64) -> String {
    format!("{value:.1}")
}

/// One bucket of a series: its mean, minimum and maximum.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub at: Timestamp,
    pub value: f64,
    pub min: f64,
    pub max: f64,
}

/// The points of one series, oldest first; `label` tells it from the chart's other series
/// (`/`, `eth0`; empty for the only one).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<Point>,
}

/// What a chart's values are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// 0 to 100, always drawn on that scale.
    Percent,
    /// A plain number (load), from 0 to a round maximum.
    Number,
    /// Bytes per second, labelled in KB/s, MB/s…
    BytesPerSecond,
}

impl Unit {
    fn format(self, value: f64) -> String {
        match self {
            Unit::Percent => format!("{}%", trim(value)),
            Unit::Number => trim(value),
            Unit::BytesPerSecond => {
                let units = ["B/s", "KB/s", "MB/s", "GB/s", "TB/s"];
                let mut value = value;
                let mut unit = 0;
                while value.abs() >= 1000.0 && unit < units.len() - 1 {
                    value /= 1000.0;
                    unit += 1;
                }
                format!("{} {}", trim_to(value, 1), units[unit])
            }
        }
    }
}

/// `12`, `12.5`, `0.25`: as many decimals as a reading needs, at most two.
fn trim(value: f64) -> String {
    trim_to(value, 2)
}

/// `value` with at most `decimals` decimals, trailing zeros dropped.
fn trim_to(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    match text {
        "-0" => "0".to_owned(),
        other => other.to_owned(),
    }
}

pub struct Tick {
    pub y: String,
    pub label: String,
}

pub struct TimeLabel {
    pub x: String,
    pub label: String,
}

/// One series as drawn.
pub struct Dot {
    pub x: String,
    pub y: String,
}

pub struct Line {
    pub label: String,
    /// The colour: `series-0` to `series-7`.
    pub class: String,
    /// The means, one subpath per run of consecutive buckets.
    pub path: String,
    /// The band between minima and maxima, one closed subpath per run.
    pub band: String,
    /// Buckets with no neighbour to join.
    pub dots: Vec<Dot>,
    /// Its newest mean, formatted.
    pub last: String,
    pub points: usize,
}

pub struct Chart {
    pub view_box: String,
    pub lines: Vec<Line>,
    /// Series beyond those drawn.
    pub more: usize,
    pub ticks: Vec<Tick>,
    pub times: Vec<TimeLabel>,
    pub axis_left: String,
    pub axis_right: String,
    pub axis_y: String,
    pub label_y: String,
    /// No series has a point in the range.
    pub empty: bool,
}

/// A step of 1, 2 or 5 times a power of ten, at least `raw` (which is positive).
fn nice_step(raw: f64) -> f64 {
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|step| *step >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * power)
}

/// Where the time axis is labelled: every `every` seconds, formatted by `label`.
fn time_marks(from: Timestamp, to: Timestamp) -> (i64, fn(&str) -> String) {
    let span = (to.micros() - from.micros()) / 1_000_000;
    let hh_mm: fn(&str) -> String = |text| text[11..16].to_owned();
    let day_hh_mm: fn(&str) -> String = |text| format!("{} {}", &text[5..10], &text[11..16]);
    let day: fn(&str) -> String = |text| text[5..10].to_owned();
    if span <= 7_200 {
        (600, hh_mm)
    } else if span <= 21_600 {
        (3_600, hh_mm)
    } else if span <= 86_400 {
        (14_400, hh_mm)
    } else if span <= 172_800 {
        (43_200, day_hh_mm)
    } else {
        (86_400, day)
    }
}

/// The chart of `series` over `[from, to)`; `step_seconds` is the buckets' width, so that a
/// missing bucket breaks a line.
pub fn chart(
    series: &[Series],
    unit: Unit,
    from: Timestamp,
    to: Timestamp,
    step_seconds: i64,
) -> Chart {
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let base = TOP + plot_height;
    let span = (to.micros() - from.micros()).max(1) as f64;
    let x_of = |at: Timestamp| {
        LEFT + ((at.micros() - from.micros()) as f64 / span * plot_width).clamp(0.0, plot_width)
    };

    let drawn = &series[..series.len().min(MAX_LINES)];
    let highest = drawn
        .iter()
        .flat_map(|s| &s.points)
        .map(|p| p.max.max(p.value))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let (step, top_value) = match unit {
        Unit::Percent => (25.0, 100.0f64.max(highest)),
        Unit::Number | Unit::BytesPerSecond => {
            let step = nice_step((highest / 4.0).max(match unit {
                Unit::Number => 0.25,
                _ => 1.0,
            }));
            (step, ((highest / step).ceil() * step).max(step))
        }
    };
    let y_of = |value: f64| base - (value.max(0.0) / top_value * plot_height).min(plot_height);

    let gap = 2 * step_seconds.max(1) * 1_000_000;
    let lines = drawn
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut runs: Vec<Vec<&Point>> = Vec::new();
            let mut previous: Option<Timestamp> = None;
            for point in s.points.iter().filter(|p| p.value.is_finite()) {
                let joined = previous.is_some_and(|p| point.at.micros() - p.micros() <= gap);
                match runs.last_mut() {
                    Some(run) if joined => run.push(point),
                    _ => runs.push(vec![point]),
                }
                previous = Some(point.at);
            }
            let mut path = String::new();
            let mut band = String::new();
            let mut dots = Vec::new();
            for run in &runs {
                if let [p] = run.as_slice() {
                    dots.push(Dot {
                        x: number(x_of(p.at)),
                        y: number(y_of(p.value)),
                    });
                    continue;
                }
                for (n, p) in run.iter().enumerate() {
                    let command = if n == 0 { 'M' } else { 'L' };
                    path.push_str(&format!(
                        "{command}{} {} ",
                        number(x_of(p.at)),
                        number(y_of(p.value))
                    ));
                }
                for (n, p) in run.iter().enumerate() {
                    let command = if n == 0 { 'M' } else { 'L' };
                    band.push_str(&format!(
                        "{command}{} {} ",
                        number(x_of(p.at)),
                        number(y_of(p.max))
                    ));
                }
                for p in run.iter().rev() {
                    band.push_str(&format!("L{} {} ", number(x_of(p.at)), number(y_of(p.min))));
                }
                band.push_str("Z ");
            }
            Line {
                label: s.label.clone(),
                class: format!("series-{i}"),
                path: path.trim_end().to_owned(),
                band: band.trim_end().to_owned(),
                dots,
                last: s
                    .points
                    .last()
                    .map(|p| unit.format(p.value))
                    .unwrap_or_else(|| "—".to_owned()),
                points: s.points.len(),
            }
        })
        .collect::<Vec<_>>();

    let ticks = (0..)
        .map(|n| n as f64 * step)
        .take_while(|value| *value <= top_value + step * 1e-9)
        .map(|value| Tick {
            y: number(y_of(value)),
            label: unit.format(value),
        })
        .collect();

    let (every, label) = time_marks(from, to);
    let every_micros = every * 1_000_000;
    let first = from.micros().div_euclid(every_micros) * every_micros + every_micros;
    let times = (0..)
        .map(|n| first + n * every_micros)
        .take_while(|at| *at < to.micros())
        .map(|at| {
            let at = Timestamp::from_micros(at);
            TimeLabel {
                x: number(x_of(at)),
                label: label(&at.to_string()),
            }
        })
        .collect();

    Chart {
        view_box: format!("0 0 {WIDTH} {HEIGHT}"),
        empty: lines.iter().all(|l| l.points == 0),
        lines,
        more: series.len().saturating_sub(MAX_LINES),
        ticks,
        times,
        axis_left: number(LEFT),
        axis_right: number(WIDTH - RIGHT),
        axis_y: number(base),
        label_y: number(HEIGHT - 8.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000_000;

    fn at(minute: i64) -> Timestamp {
        // 2026-11-25T10:00:00Z
        Timestamp::from_micros(1_795_600_800_000_000 + minute * MINUTE)
    }

    fn point(minute: i64, value: f64, min: f64, max: f64) -> Point {
        Point {
            at: at(minute),
            value,
            min,
            max,
        }
    }

    #[test]
    fn percentages_span_0_to_100_and_the_line_follows_the_means() {
        let series = [Series {
            label: String::new(),
            points: vec![point(0, 50.0, 40.0, 60.0), point(1, 100.0, 100.0, 100.0)],
        }];
        let chart = chart(&series, Unit::Percent, at(0), at(60), 60);
        let ticks: Vec<&str> = chart.ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(ticks, ["0%", "25%", "50%", "75%", "100%"]);
        let line = &chart.lines[0];
        // 140 px tall plot from y=12 to y=152, 408 px wide from x=64; 50 % is half way, 100 %
        // the top, a minute of the hour a sixtieth of the width.
        assert_eq!(line.path, "M64.0 82.0 L70.8 12.0");
        assert_eq!(line.band, "M64.0 68.0 L70.8 12.0 L70.8 12.0 L64.0 96.0 Z");
        assert!(line.dots.is_empty());
        assert_eq!(line.last, "100%");
        assert!(!chart.empty);
    }

    #[test]
    fn missing_buckets_break_the_line_and_a_lone_bucket_is_a_dot() {
        let series = [Series {
            label: "eth0".to_owned(),
            points: vec![
                point(0, 1.0, 1.0, 1.0),
                point(1, 2.0, 2.0, 2.0),
                // One bucket missing: still one line.
                point(3, 3.0, 3.0, 3.0),
                // Three missing: a new run, of one bucket.
                point(7, 4.0, 4.0, 4.0),
                point(20, 1.0, 1.0, 1.0),
                point(21, 1.0, 1.0, 1.0),
            ],
        }];
        let chart = chart(&series, Unit::Number, at(0), at(60), 60);
        let line = &chart.lines[0];
        assert_eq!(line.path.matches('M').count(), 2, "{}", line.path);
        assert_eq!(line.path.matches('L').count(), 3, "{}", line.path);
        assert_eq!(line.band.matches('Z').count(), 2);
        assert_eq!(line.dots.len(), 1);
        assert_eq!(line.dots[0].x, "111.6");
        assert_eq!(line.points, 6);
        let ticks: Vec<&str> = chart.ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(ticks, ["0", "1", "2", "3", "4"]);
    }

    #[test]
    fn rates_read_in_their_unit_and_the_scale_rounds_up() {
        let series = [Series {
            label: "eth0".to_owned(),
            points: vec![
                point(0, 1_500_000.0, 1_000_000.0, 3_100_000.0),
                point(1, 199_980.0, 199_980.0, 199_980.0),
            ],
        }];
        let chart = chart(&series, Unit::BytesPerSecond, at(0), at(60), 60);
        let ticks: Vec<&str> = chart.ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(ticks, ["0 B/s", "1 MB/s", "2 MB/s", "3 MB/s", "4 MB/s"]);
        assert_eq!(chart.lines[0].last, "200 KB/s", "to one decimal");
    }

    #[test]
    fn time_labels_suit_the_range_and_no_data_is_said() {
        let hour = chart(&[], Unit::Percent, at(0), at(60), 15);
        let labels: Vec<&str> = hour.times.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["10:10", "10:20", "10:30", "10:40", "10:50"]);
        assert!(hour.empty);
        let week = chart(&[], Unit::Percent, at(0), at(7 * 24 * 60), 3600);
        let labels: Vec<&str> = week.times.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels.len(), 7, "{labels:?}");
        assert_eq!(labels[0], "11-26");
    }

    #[test]
    fn more_series_than_colours_are_counted_not_drawn() {
        let series: Vec<Series> = (0..10)
            .map(|n| Series {
                label: format!("/mnt/{n}"),
                points: vec![point(0, 1.0, 1.0, 1.0)],
            })
            .collect();
        let chart = chart(&series, Unit::Percent, at(0), at(60), 60);
        assert_eq!(chart.lines.len(), MAX_LINES);
        assert_eq!(chart.more, 2);
        assert_eq!(chart.lines[7].class, "series-7");
    }
}
