//! Statistics (SPEC 3.3) from per-day counts that the linker maintains in the same
//! transaction that links the entries, so a week of a busy account reads a few hundred rows.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use spog_core::audit::EntryFields;
use spog_core::model::Account;
use spog_core::{Id, Timestamp};
use utoipa::ToSchema;

use crate::{Conn, Sql, StoreResult, Tx};

const DAY_MICROS: i64 = 86_400_000_000;
/// Rows per upsert statement (6 parameters each).
const ROWS_PER_STATEMENT: usize = 500;

/// Counts of one batch of linked entries, keyed by (day, dimension, value).
#[derive(Default)]
pub(crate) struct DailyCounts {
    counts: HashMap<(i64, &'static str, String), (Option<String>, i64)>,
}

impl DailyCounts {
    pub(crate) fn add(&mut self, entry: &EntryFields<'_>) {
        let day = entry.occurred_at.start_of_day().micros();
        let mut bump = |dimension: &'static str, value: &str, label: Option<&str>| {
            let slot = self
                .counts
                .entry((day, dimension, value.to_owned()))
                .or_insert_with(|| (label.map(str::to_owned), 0));
            slot.1 += 1;
        };
        bump("action", entry.action, None);
        bump("actor_type", entry.actor_type, None);
        bump("resource_type", entry.resource_type, None);
        bump("outcome", entry.outcome, None);
        let actor = entry
            .actor_id
            .or(entry.actor_email)
            .or(entry.actor_name)
            .unwrap_or("(unknown)");
        let label = entry.actor_email.or(entry.actor_name);
        bump("actor", actor, label);
    }

    pub(crate) async fn save(self, tx: &mut Tx, account: &str) -> StoreResult<()> {
        let rows: Vec<_> = self.counts.into_iter().collect();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut sql = Sql::new(
                "INSERT INTO audit_daily_counts (account_id, day, dimension, value, label, count) VALUES ",
            );
            for (i, ((day, dimension, value), (label, count))) in chunk.iter().enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" })
                    .bind(account.to_owned())
                    .push(", ")
                    .bind(*day)
                    .push(", ")
                    .bind(*dimension)
                    .push(", ")
                    .bind(value.clone())
                    .push(", ")
                    .bind(label.clone())
                    .push(", ")
                    .bind(*count)
                    .push(")");
            }
            sql.push(
                " ON CONFLICT (account_id, day, dimension, value) DO UPDATE SET \
                 count = audit_daily_counts.count + excluded.count, \
                 label = COALESCE(excluded.label, audit_daily_counts.label)",
            );
            sql.execute(tx).await?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Count {
    pub key: String,
    pub count: i64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ActorCount {
    /// The actor's id (or email or name when it has no id).
    pub actor: String,
    /// Email or name, for display.
    pub label: Option<String>,
    pub count: i64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DayCount {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub count: i64,
    pub failures: i64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AuditStats {
    pub from: Timestamp,
    pub to: Timestamp,
    pub total: i64,
    pub by_action: Vec<Count>,
    pub by_actor_type: Vec<Count>,
    pub by_resource_type: Vec<Count>,
    pub by_outcome: Vec<Count>,
    /// The ten most active actors.
    pub top_actors: Vec<ActorCount>,
    /// Every day of the range, oldest first, including days without entries.
    pub per_day: Vec<DayCount>,
}

/// Statistics over the whole UTC days from `from`'s day to `to`'s day.
#[tracing::instrument(name = "audit::stats", skip_all, fields(account = %account))]
pub async fn stats(
    conn: &mut Conn,
    account: Id<Account>,
    from: Timestamp,
    to: Timestamp,
) -> StoreResult<AuditStats> {
    let first_day = from.start_of_day().micros();
    let last_day = to.start_of_day().micros();
    let rows: Vec<(i64, String, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT day, dimension, value, label, count FROM audit_daily_counts \
         WHERE account_id = $1 AND day >= $2 AND day <= $3",
    )
    .bind(account.to_string())
    .bind(first_day)
    .bind(last_day)
    .fetch_all(conn)
    .await?;
    let mut totals: HashMap<&str, BTreeMap<String, (Option<String>, i64)>> = HashMap::new();
    let mut days: BTreeMap<i64, (i64, i64)> = (0..=(last_day - first_day) / DAY_MICROS)
        .map(|n| (first_day + n * DAY_MICROS, (0, 0)))
        .collect();
    for (day, dimension, value, label, count) in &rows {
        let dimension = match dimension.as_str() {
            "action" => "action",
            "actor_type" => "actor_type",
            "resource_type" => "resource_type",
            "outcome" => "outcome",
            "actor" => "actor",
            _ => continue,
        };
        if dimension == "outcome" {
            let slot = days.entry(*day).or_default();
            slot.0 += count;
            if value == "failure" {
                slot.1 += count;
            }
        }
        let slot = totals
            .entry(dimension)
            .or_default()
            .entry(value.clone())
            .or_default();
        slot.1 += count;
        if slot.0.is_none() {
            slot.0 = label.clone();
        }
    }
    let sorted = |dimension: &str| -> Vec<Count> {
        let mut counts: Vec<Count> = totals
            .get(dimension)
            .map(|m| {
                m.iter()
                    .map(|(key, (_, count))| Count {
                        key: key.clone(),
                        count: *count,
                    })
                    .collect()
            })
            .unwrap_or_default();
        counts.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        counts
    };
    let mut top_actors: Vec<ActorCount> = totals
        .get("actor")
        .map(|m| {
            m.iter()
                .map(|(actor, (label, count))| ActorCount {
                    actor: actor.clone(),
                    label: label.clone(),
                    count: *count,
                })
                .collect()
        })
        .unwrap_or_default();
    top_actors.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.actor.cmp(&b.actor)));
    top_actors.truncate(10);
    let by_outcome = sorted("outcome");
    Ok(AuditStats {
        from: Timestamp::from_micros(first_day),
        to,
        total: by_outcome.iter().map(|c| c.count).sum(),
        by_action: sorted("action"),
        by_actor_type: sorted("actor_type"),
        by_resource_type: sorted("resource_type"),
        by_outcome,
        top_actors,
        per_day: days
            .into_iter()
            .map(|(day, (count, failures))| DayCount {
                day: Timestamp::from_micros(day).day(),
                count,
                failures,
            })
            .collect(),
    })
}
