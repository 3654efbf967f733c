//! Charts of the statistics page as plain SVG drawn on the server: the geometry is computed
//! here and the template only places shapes, so no chart library or script runs in the
//! browser (and the Content-Security-Policy stays strict: SVG attributes are not styles).

use spog_store::audit::DayCount;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;
/// Day labels along the axis, at most.
const LABELS: usize = 12;

fn number(value: f64) -> String {
    format!("{value:.1}")
}

/// One day's bar: all entries, with the failures stacked at its foot.
pub struct DayBar {
    pub day: String,
    pub count: i64,
    pub failures: i64,
    pub x: String,
    pub width: String,
    pub y: String,
    pub height: String,
    pub failure_y: String,
    pub failure_height: String,
    pub label: Option<String>,
    pub label_x: String,
    /// The day's entries in the search.
    pub href: String,
}

pub struct Tick {
    pub y: String,
    pub label: String,
}

pub struct DayChart {
    pub view_box: String,
    pub bars: Vec<DayBar>,
    pub ticks: Vec<Tick>,
    pub axis_left: String,
    pub axis_right: String,
    pub axis_y: String,
    pub label_y: String,
}

/// A step of 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let raw = raw.max(1.0);
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * power)
}

/// The per-day chart; `href` gives the search link of a day (`YYYY-MM-DD`).
pub fn day_chart(days: &[DayCount], href: impl Fn(&str) -> String) -> DayChart {
    let max = days.iter().map(|d| d.count).max().unwrap_or(0).max(1) as f64;
    let step = nice_step(max / 4.0);
    let top_value = (max / step).ceil() * step;
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let base = TOP + plot_height;
    let scale = |value: f64| value / top_value * plot_height;
    let slot = plot_width / days.len().max(1) as f64;
    let bar_width = (slot * 0.72).max(1.0);
    let label_every = days.len().div_ceil(LABELS).max(1);
    let bars = days
        .iter()
        .enumerate()
        .map(|(i, day)| {
            let x = LEFT + i as f64 * slot + (slot - bar_width) / 2.0;
            let height = scale(day.count as f64);
            let failure_height = scale(day.failures as f64);
            DayBar {
                day: day.day.clone(),
                count: day.count,
                failures: day.failures,
                x: number(x),
                width: number(bar_width),
                y: number(base - height),
                height: number(height),
                failure_y: number(base - failure_height),
                failure_height: number(failure_height),
                label: (i % label_every == 0).then(|| day.day.get(5..).unwrap_or("").to_owned()),
                label_x: number(x + bar_width / 2.0),
                href: href(&day.day),
            }
        })
        .collect();
    let ticks = (0..)
        .map(|n| n as f64 * step)
        .take_while(|value| *value <= top_value)
        .map(|value| Tick {
            y: number(base - scale(value)),
            label: format!("{value}"),
        })
        .collect();
    DayChart {
        view_box: format!("0 0 {WIDTH} {HEIGHT}"),
        bars,
        ticks,
        axis_left: number(LEFT),
        axis_right: number(WIDTH - RIGHT),
        axis_y: number(base),
        label_y: number(HEIGHT - 8.0),
    }
}

/// A row of a ranked list: a label, its count, and a bar as long as its share of the top
/// row's count.
pub struct RankRow {
    pub label: String,
    pub detail: Option<String>,
    /// The search listing the row's entries, where a filter can name them.
    pub href: Option<String>,
    pub count: i64,
    /// Of the longest bar, 0–100.
    pub width: String,
}

pub struct Ranking {
    pub rows: Vec<RankRow>,
    /// Rows beyond those shown.
    pub more: usize,
}

/// The `limit` first of `rows` (already sorted, largest first): `(label, detail, href, count)`.
pub fn ranking(rows: Vec<(String, Option<String>, Option<String>, i64)>, limit: usize) -> Ranking {
    let max = rows.iter().map(|r| r.3).max().unwrap_or(0).max(1) as f64;
    let more = rows.len().saturating_sub(limit);
    Ranking {
        rows: rows
            .into_iter()
            .take(limit)
            .map(|(label, detail, href, count)| RankRow {
                label,
                detail,
                href,
                count,
                width: number(count as f64 / max * 100.0),
            })
            .collect(),
        more,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(day: &str, count: i64, failures: i64) -> DayCount {
        DayCount {
            day: day.to_owned(),
            count,
            failures,
        }
    }

    #[test]
    fn steps_are_round_numbers() {
        assert_eq!(nice_step(0.25), 1.0);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(12.0), 20.0);
        assert_eq!(nice_step(250.0), 500.0);
        assert_eq!(nice_step(1000.0), 1000.0);
    }

    #[test]
    fn bars_rise_with_their_counts_and_failures_sit_at_their_foot() {
        let days = [
            day("2026-11-24", 0, 0),
            day("2026-11-25", 40, 10),
            day("2026-11-26", 20, 0),
        ];
        let chart = day_chart(&days, |d| format!("/audit-logs?day={d}"));
        let heights: Vec<f64> = chart
            .bars
            .iter()
            .map(|b| b.height.parse().unwrap())
            .collect();
        assert_eq!(heights[0], 0.0);
        assert_eq!(heights[1], 200.0, "the busiest day reaches the top tick");
        assert_eq!(heights[2], 100.0);
        let busy = &chart.bars[1];
        assert_eq!(busy.failure_height, "50.0");
        assert_eq!(busy.failure_y, "162.0", "failures stand on the axis");
        assert_eq!(busy.label.as_deref(), Some("11-25"));
        assert_eq!(busy.href, "/audit-logs?day=2026-11-25");
        let ticks: Vec<&str> = chart.ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(ticks, ["0", "10", "20", "30", "40"]);
    }

    #[test]
    fn long_ranges_label_only_some_days_and_empty_ones_still_draw() {
        let days: Vec<DayCount> = (1..=30)
            .map(|n| day(&format!("2026-11-{n:02}"), 0, 0))
            .collect();
        let chart = day_chart(&days, |_| String::new());
        let labelled = chart.bars.iter().filter(|b| b.label.is_some()).count();
        assert!(labelled <= LABELS, "{labelled}");
        assert_eq!(chart.ticks.len(), 2, "0 and 1 on an empty range");
    }

    #[test]
    fn rankings_scale_to_their_top_row_and_count_the_rest() {
        let rows = (0..12)
            .map(|n| (format!("a{n}"), None, None, 12 - n))
            .collect();
        let ranked = ranking(rows, 10);
        assert_eq!(ranked.rows.len(), 10);
        assert_eq!(ranked.more, 2);
        assert_eq!(ranked.rows[0].width, "100.0");
        assert_eq!(ranked.rows[6].width, "50.0");
    }
}
