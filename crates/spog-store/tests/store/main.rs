//! Store behaviour, run on SQLite and (with SPOG_TEST_DATABASE_URL) PostgreSQL.

mod agents;
mod alerting;
mod audit_chain;
mod audit_upgrade;
mod deliveries;
mod fair_delivery;
mod identity;
mod login_throttle;
mod metrics;
mod sessions;
mod sso;

use spog_core::Id;
use spog_core::Timestamp;
use spog_core::audit::{ActorType, AuditEntry, Outcome, Source};
use spog_core::model::Account;

/// An unlinked entry as a mutation would record it.
pub fn entry(account: Id<Account>, action: &str, resource_id: &str) -> AuditEntry {
    AuditEntry {
        id: uuid::Uuid::now_v7().to_string(),
        seq: None,
        occurred_at: Timestamp::now(),
        account_id: account.to_string(),
        organization_id: None,
        actor_type: ActorType::System,
        actor_id: None,
        actor_email: None,
        actor_name: None,
        source: Source::Api,
        ip: None,
        user_agent: None,
        request_id: None,
        action: action.to_owned(),
        resource_type: "host".to_owned(),
        resource_id: Some(resource_id.to_owned()),
        resource_name: None,
        outcome: Outcome::Success,
        before: None,
        after: None,
        metadata: None,
        credential_id: None,
        credential_name: None,
        recorded_at: Some(Timestamp::now()),
        prev_hash: None,
        hash: None,
    }
}
