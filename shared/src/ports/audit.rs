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

/// What [`AuditLog::append_once`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The event is now the chain's head.
    Now,
    /// An event with the same key was appended earlier; nothing was written.
    Already,
}

/// Appends to the audit trail, each event chained to the previous one of its request
/// ([`crate::evidence::chain`]).
pub trait AuditLog: Send + Sync {
    /// Appends `event` as the next link of its request's chain; never overwrites an earlier
    /// event, and never forks the chain (a lost race re-reads the head and retries).
    fn append(&self, event: &AuditEvent) -> impl Future<Output = Result<()>> + Send;

    /// Appends `event` unless an event with the same `once` key was already appended for its
    /// request (a step re-run after its answer was lost must not audit itself twice: the
    /// workflow's steps each happen once per request). Returns whether it was appended.
    fn append_once(
        &self,
        event: &AuditEvent,
        once: &str,
    ) -> impl Future<Output = Result<Appended>> + Send;

    /// Every event of a request with its link, and the chain locks, for the verifier.
    fn trail(&self, egress_request_id: &str) -> impl Future<Output = Result<AuditTrail>> + Send;

    /// The request's chain head (`None` before its first chained event).
    fn head(
        &self,
        egress_request_id: &str,
    ) -> impl Future<Output = Result<Option<ChainHead>>> + Send;
}
