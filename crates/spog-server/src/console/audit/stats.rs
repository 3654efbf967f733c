//! `GET /audit-logs/stats`: what `GET /api/v1/audit-logs/stats` counts, drawn: entries and
//! failures per day, and the busiest actions, actors and resource types, each linking to the
//! search that lists them.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use spog_core::{FieldError, FieldErrors, Timestamp};
use spog_store::audit::{self, AuditStats};

use super::charts::{DayChart, Ranking, day_chart, ranking};
use super::{encode, field_errors, non_empty_pairs};
use crate::auth::permissions::AuditLogsView;
use crate::console::error::PageResult;
use crate::console::layout::Chrome;
use crate::console::session::RequirePage;
use crate::http::audit::search::stats_range;
use crate::state::AppState;

const DAY_CHOICES: [i64; 6] = [1, 7, 14, 30, 90, 365];
/// Rows of each ranked list.
const TOP: usize = 10;

struct Charts {
    total: i64,
    failures: i64,
    failure_rate: String,
    busiest: Option<(String, i64)>,
    days: DayChart,
    actions: Ranking,
    actors: Ranking,
    resource_types: Ranking,
    actor_types: Ranking,
    outcomes: Ranking,
    first_day: String,
    last_day: String,
}

#[derive(Template)]
#[template(path = "audit/stats.html")]
struct StatsPage {
    chrome: Chrome,
    tab: &'static str,
    values: HashMap<String, String>,
    errors: FieldErrors,
    day_choices: [i64; 6],
    charts: Option<Charts>,
}

impl StatsPage {
    fn value(&self, name: &str) -> &str {
        self.values.get(name).map_or("", String::as_str)
    }

    fn error(&self, name: &str) -> Option<&str> {
        self.errors.get(name)
    }

    /// A `from`/`to` as a date field shows it.
    fn date_value(&self, name: &str) -> String {
        let text = self.value(name);
        Timestamp::parse(&day_start(text)).map_or_else(|| text.to_owned(), Timestamp::day)
    }

    fn days_selected(&self, days: &i64) -> bool {
        match self.values.get("days") {
            Some(chosen) => chosen.parse() == Ok(*days),
            None => {
                !self.values.contains_key("from") && !self.values.contains_key("to") && *days == 7
            }
        }
    }

    fn other_errors(&self) -> Vec<String> {
        self.errors
            .iter()
            .filter(|(field, _)| !["days", "from", "to"].contains(field))
            .map(|(field, message)| format!("{field} {message}"))
            .collect()
    }
}

/// A date field's `2026-11-25` as the API's RFC 3339 (midnight UTC).
fn day_start(text: &str) -> String {
    match text.len() {
        10 => format!("{text}T00:00:00Z"),
        _ => text.to_owned(),
    }
}

/// A search link for `pairs` within `[from, to)`.
fn search_link(from: Timestamp, to: Timestamp, pairs: &[(&str, &str)]) -> String {
    let mut all: Vec<(String, String)> = pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    all.push(("from".to_owned(), from.to_string()));
    all.push(("to".to_owned(), to.to_string()));
    format!("/audit-logs?{}", encode(&all))
}

const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);

fn charts(stats: AuditStats) -> Charts {
    let from = stats.from;
    let to = stats.to.start_of_day().plus(DAY);
    let link = |name: &str, value: &str| search_link(from, to, &[(name, value)]);
    let counts = |counts: &[audit::Count], name: &str| {
        counts
            .iter()
            .map(|c| (c.key.clone(), None, Some(link(name, &c.key)), c.count))
            .collect()
    };
    let failures = stats
        .by_outcome
        .iter()
        .find(|c| c.key == "failure")
        .map_or(0, |c| c.count);
    let failure_rate = match stats.total {
        0 => "0".to_owned(),
        total => format!("{:.1}", failures as f64 * 100.0 / total as f64),
    };
    let busiest = stats
        .per_day
        .iter()
        .filter(|d| d.count > 0)
        .max_by_key(|d| d.count)
        .map(|d| (d.day.clone(), d.count));
    let actors = stats
        .top_actors
        .iter()
        .map(|a| {
            let label = a.label.clone().unwrap_or_else(|| a.actor.clone());
            // Statistics key an actor by id, else by email or name; only an id is a filter.
            let has_id = a.label.as_deref() != Some(&a.actor) && a.actor != "(unknown)";
            let detail = (has_id && a.label.is_some()).then(|| a.actor.clone());
            (
                label,
                detail,
                has_id.then(|| link("actor_id", &a.actor)),
                a.count,
            )
        })
        .collect();
    Charts {
        total: stats.total,
        failures,
        failure_rate,
        busiest,
        days: day_chart(&stats.per_day, |day| {
            let start = Timestamp::parse(&format!("{day}T00:00:00Z")).unwrap_or(from);
            search_link(start, start.plus(DAY), &[])
        }),
        actions: ranking(counts(&stats.by_action, "action"), TOP),
        actors: ranking(actors, TOP),
        resource_types: ranking(counts(&stats.by_resource_type, "resource_type"), TOP),
        actor_types: ranking(counts(&stats.by_actor_type, "actor_type"), TOP),
        outcomes: ranking(counts(&stats.by_outcome, "outcome"), TOP),
        first_day: from.day(),
        last_day: stats.to.day(),
    }
}

pub async fn stats_page(
    State(state): State<AppState>,
    viewer: RequirePage<AuditLogsView>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let chrome = Chrome::new(&viewer, "Audit statistics");
    let pairs = non_empty_pairs(raw.as_deref());
    let values: HashMap<String, String> = pairs.iter().cloned().collect();
    let mut errors = FieldErrors::new();
    for (name, _) in &pairs {
        if !["days", "from", "to"].contains(&name.as_str()) {
            errors.add(FieldError::new(name, "is not a parameter of this page"));
        }
    }
    let days = values
        .get("days")
        .map(|d| {
            d.parse::<i64>()
                .map_err(|_| FieldError::new("days", "must be a whole number of days"))
        })
        .transpose();
    let days = errors.check(days).flatten();
    let from = values.get("from").map(|t| day_start(t));
    let to = values.get("to").map(|t| day_start(t));
    let mut charts_shown = None;
    if errors.is_empty() {
        match stats_range(days, from.as_deref(), to.as_deref(), Timestamp::now()) {
            Ok((from, to)) => {
                let mut conn = state.store.conn().await?;
                let stats = audit::stats(&mut conn, viewer.auth.account(), from, to).await?;
                charts_shown = Some(charts(stats));
            }
            Err(error) => errors = field_errors(error)?,
        }
    }
    let page = StatsPage {
        chrome,
        tab: "stats",
        values,
        day_choices: DAY_CHOICES,
        charts: charts_shown,
        errors,
    };
    let status = match page.errors.is_empty() {
        true => StatusCode::OK,
        false => StatusCode::UNPROCESSABLE_ENTITY,
    };
    Ok((status, Html(page.render()?)).into_response())
}
