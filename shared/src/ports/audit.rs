//! The audit trail: who did what to which request, when, and with what outcome.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// One audit record. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// The request concerned.
    pub egress_request_id: String,
    /// When (ISO-8601 with milliseconds).
    pub at: String,
    /// Who: a reviewer's username, or `system:<function>` for the workflow.
    pub actor: String,
    /// The actor's e-mail when a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_email: Option<String>,
    /// What: `staged`, `decision`, `download`, `archived`, `cleanup`, ...
    pub action: String,
    /// `success`, `refused`, `failed`, or `unknown` (the outcome could not be confirmed).
    pub outcome: String,
    /// Details (decision and reason, refusal message, counts). No secrets.
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// Appends to the audit trail.
pub trait AuditLog: Send + Sync {
    /// Appends `event`; never overwrites an earlier one.
    fn append(&self, event: &AuditEvent) -> impl Future<Output = Result<()>> + Send;
}
