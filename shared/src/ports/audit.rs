//! The audit trail: who did what to which request, when, and with what outcome.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::error::Result;
pub use crate::evidence::chain::{AuditTrail, ChainHead};

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

/// Appends to the audit trail, each event chained to the previous one of its request
/// ([`crate::evidence::chain`]).
pub trait AuditLog: Send + Sync {
    /// Appends `event` as the next link of its request's chain; never overwrites an earlier
    /// event, and never forks the chain (a lost race re-reads the head and retries).
    fn append(&self, event: &AuditEvent) -> impl Future<Output = Result<()>> + Send;

    /// Every event of a request with its link, and the chain locks, for the verifier.
    fn trail(&self, egress_request_id: &str) -> impl Future<Output = Result<AuditTrail>> + Send;

    /// The request's chain head (`None` before its first chained event).
    fn head(
        &self,
        egress_request_id: &str,
    ) -> impl Future<Output = Result<Option<ChainHead>>> + Send;
}
