//! Silences (SPEC 7.4). A silence's state is a function of now and its span, so reads
//! compute it; expiring one ends its span.

use spog_core::alerts::silences::{CreatedBy, Silence, SilenceState};
use spog_core::model::{Account, Organization};
use spog_core::page::{Cursor, Page, key_int, key_text};
use spog_core::{Id, Timestamp};

use crate::error::Found;
use crate::rows::{at, from_json, id, json_text, opt_id};
use crate::{Conn, Sql, StoreError, StoreResult};

const COLUMNS: &str = "id, organization_id, matchers, starts_at, ends_at, comment, created_by_id, \
     created_by_email, created_at, updated_at";
/// Active silences of an organization read to match one alert; more are refused at creation.
pub const MAX_ACTIVE_PER_ORGANIZATION: u32 = 1_000;

#[derive(sqlx::FromRow)]
struct SilenceRow {
    id: String,
    organization_id: String,
    matchers: String,
    starts_at: i64,
    ends_at: i64,
    comment: String,
    created_by_id: Option<String>,
    created_by_email: Option<String>,
    created_at: i64,
    updated_at: i64,
}

fn from_row(row: SilenceRow, now: Timestamp) -> StoreResult<Silence> {
    let (starts_at, ends_at) = (at(row.starts_at), at(row.ends_at));
    Ok(Silence {
        id: id(&row.id)?,
        organization_id: id(&row.organization_id)?,
        matchers: from_json(&row.matchers)?,
        starts_at,
        ends_at,
        comment: row.comment,
        state: Silence::state_at(starts_at, ends_at, now),
        created_by: CreatedBy {
            user_id: opt_id(row.created_by_id.as_deref())?,
            email: row.created_by_email,
        },
        created_at: at(row.created_at),
        updated_at: at(row.updated_at),
    })
}

#[tracing::instrument(name = "alerting::silences::create", skip_all, fields(account = %account, silence = %silence.id))]
pub async fn create(conn: &mut Conn, account: Id<Account>, silence: &Silence) -> StoreResult<()> {
    let mut sql = Sql::new(&format!(
        "INSERT INTO silences (account_id, {COLUMNS}) VALUES ("
    ));
    sql.bind(account.to_string())
        .push(", ")
        .bind(silence.id.to_string())
        .push(", ")
        .bind(silence.organization_id.to_string())
        .push(", ")
        .bind(json_text(&silence.matchers))
        .push(", ")
        .bind(silence.starts_at.micros())
        .push(", ")
        .bind(silence.ends_at.micros())
        .push(", ")
        .bind(silence.comment.clone())
        .push(", ")
        .bind(silence.created_by.user_id.map(|u| u.to_string()))
        .push(", ")
        .bind(silence.created_by.email.clone())
        .push(", ")
        .bind(silence.created_at.micros())
        .push(", ")
        .bind(silence.updated_at.micros())
        .push(")");
    sql.execute(conn).await?;
    Ok(())
}

#[tracing::instrument(name = "alerting::silences::get", skip_all, fields(account = %account, silence = %silence))]
pub async fn get(
    conn: &mut Conn,
    account: Id<Account>,
    silence: Id<Silence>,
    now: Timestamp,
) -> StoreResult<Silence> {
    let mut sql = Sql::new(&format!(
        "SELECT {COLUMNS} FROM silences WHERE account_id = "
    ));
    sql.bind(account.to_string())
        .push(" AND id = ")
        .bind(silence.to_string());
    from_row(sql.fetch_optional::<SilenceRow>(conn).await.found()?, now)
}

/// Writes a silence's matchers, span and comment.
#[tracing::instrument(name = "alerting::silences::update", skip_all, fields(account = %account, silence = %silence.id))]
pub async fn update(conn: &mut Conn, account: Id<Account>, silence: &Silence) -> StoreResult<()> {
    let mut sql = Sql::new("UPDATE silences SET matchers = ");
    sql.bind(json_text(&silence.matchers))
        .push(", starts_at = ")
        .bind(silence.starts_at.micros())
        .push(", ends_at = ")
        .bind(silence.ends_at.micros())
        .push(", comment = ")
        .bind(silence.comment.clone())
        .push(", updated_at = ")
        .bind(silence.updated_at.micros())
        .push(" WHERE account_id = ")
        .bind(account.to_string())
        .push(" AND id = ")
        .bind(silence.id.to_string());
    if sql.execute(conn).await?.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Ends a silence now; false when it had ended already.
#[tracing::instrument(name = "alerting::silences::expire", skip_all, fields(account = %account, silence = %silence))]
pub async fn expire(
    conn: &mut Conn,
    account: Id<Account>,
    silence: Id<Silence>,
    now: Timestamp,
) -> StoreResult<bool> {
    let mut sql = Sql::new("UPDATE silences SET ends_at = ");
    sql.bind(now.micros())
        .push(", starts_at = CASE WHEN starts_at > ")
        .bind(now.micros())
        .push(" THEN ")
        .bind(now.micros())
        .push(" ELSE starts_at END, updated_at = ")
        .bind(now.micros())
        .push(" WHERE account_id = ")
        .bind(account.to_string())
        .push(" AND id = ")
        .bind(silence.to_string())
        .push(" AND ends_at > ")
        .bind(now.micros());
    Ok(sql.execute(conn).await?.rows_affected() == 1)
}

/// Active silences of an organization at `now`, at most [`MAX_ACTIVE_PER_ORGANIZATION`].
#[tracing::instrument(name = "alerting::silences::active", skip_all, fields(organization = %organization))]
pub async fn active(
    conn: &mut Conn,
    account: Id<Account>,
    organization: Id<Organization>,
    now: Timestamp,
) -> StoreResult<Vec<Silence>> {
    let mut sql = Sql::new(&format!(
        "SELECT {COLUMNS} FROM silences WHERE organization_id = "
    ));
    sql.bind(organization.to_string())
        .push(" AND account_id = ")
        .bind(account.to_string())
        .push(" AND ends_at > ")
        .bind(now.micros())
        .push(" AND starts_at <= ")
        .bind(now.micros())
        .push(" ORDER BY created_at, id LIMIT ")
        .bind(i64::from(MAX_ACTIVE_PER_ORGANIZATION));
    sql.fetch_all::<SilenceRow>(conn)
        .await?
        .into_iter()
        .map(|row| from_row(row, now))
        .collect()
}

/// How many silences of an organization are pending or active at `now`.
pub async fn current_count(
    conn: &mut Conn,
    account: Id<Account>,
    organization: Id<Organization>,
    now: Timestamp,
) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM silences WHERE account_id = $1 AND organization_id = $2 AND ends_at > $3",
    )
    .bind(account.to_string())
    .bind(organization.to_string())
    .bind(now.micros())
    .fetch_one(conn)
    .await?)
}

/// Newest first.
#[tracing::instrument(name = "alerting::silences::list", skip_all, fields(account = %account))]
pub async fn list(
    conn: &mut Conn,
    account: Id<Account>,
    state: Option<SilenceState>,
    organization: Option<Id<Organization>>,
    now: Timestamp,
    limit: u32,
    cursor: Option<&str>,
) -> StoreResult<Page<Silence>> {
    let scope = Cursor::scope(&[
        &account.to_string(),
        "silences",
        state.map(|s| s.as_str()).unwrap_or_default(),
        &organization.map(|o| o.to_string()).unwrap_or_default(),
    ]);
    let after = scope.decode(cursor)?;
    let mut sql = Sql::new(&format!(
        "SELECT {COLUMNS} FROM silences WHERE account_id = "
    ));
    sql.bind(account.to_string());
    if let Some(organization) = organization {
        sql.push(" AND organization_id = ")
            .bind(organization.to_string());
    }
    match state {
        Some(SilenceState::Pending) => {
            sql.push(" AND starts_at > ").bind(now.micros());
        }
        Some(SilenceState::Active) => {
            sql.push(" AND starts_at <= ")
                .bind(now.micros())
                .push(" AND ends_at > ")
                .bind(now.micros());
        }
        Some(SilenceState::Expired) => {
            sql.push(" AND ends_at <= ").bind(now.micros());
        }
        None => {}
    }
    if let Some(key) = after {
        sql.push(" AND (created_at, id) < (")
            .bind(key_int(&key, 0)?)
            .push(", ")
            .bind(key_text(&key, 1)?)
            .push(")");
    }
    sql.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .bind(i64::from(limit) + 1);
    let silences = sql
        .fetch_all::<SilenceRow>(conn)
        .await?
        .into_iter()
        .map(|row| from_row(row, now))
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Page::from_rows(silences, limit, &scope, |s| {
        vec![s.created_at.micros().into(), s.id.to_string().into()]
    }))
}
