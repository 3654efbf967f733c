//! In-app notifications (SPEC 6).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::User;
use crate::{Id, Timestamp};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Job,
    Deployment,
    Alert,
    Security,
    System,
}

impl Category {
    pub const ALL: [Category; 5] = [
        Category::Job,
        Category::Deployment,
        Category::Alert,
        Category::Security,
        Category::System,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Category::Job => "job",
            Category::Deployment => "deployment",
            Category::Alert => "alert",
            Category::Security => "security",
            Category::System => "system",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// Severity of notifications and alerts, most severe first.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
    Info,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The colour of SPEC 7.2, as `#RRGGBB`.
    pub const fn colour(self) -> &'static str {
        match self {
            Severity::Critical => "#D32F2F",
            Severity::High => "#F57C00",
            Severity::Medium => "#FBC02D",
            Severity::Low => "#388E3C",
            Severity::Info => "#1976D2",
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Notification {
    pub id: Id<Notification>,
    pub category: Category,
    pub severity: Severity,
    pub title: String,
    pub message: String,
    pub link: Option<String>,
    /// The addressee; null for a broadcast to the whole account.
    pub user_id: Option<Id<User>>,
    pub broadcast: bool,
    pub created_at: Timestamp,
    /// For the caller.
    pub read: bool,
    pub read_at: Option<Timestamp>,
}
