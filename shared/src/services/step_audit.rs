//! Audit records of the workflow's S3 steps (staging, clean-up, archive).

use serde_json::json;

use crate::error::EgressError;
use crate::ports::{AuditEvent, AuditLog, Clock};

/// A successful step by `actor`.
pub(crate) fn success(
    clock: &impl Clock,
    egress_request_id: &str,
    actor: &str,
    action: &str,
    detail: serde_json::Value,
) -> AuditEvent {
    AuditEvent {
        egress_request_id: egress_request_id.to_string(),
        at: clock.now_iso(),
        actor: actor.to_string(),
        actor_email: None,
        action: action.to_string(),
        outcome: "success".to_string(),
        detail,
    }
}

/// Records that a step failed, with its error name and message (which name keys and
/// versions, never secrets). Best effort: the step's own error is what the workflow acts on,
/// so a failure to audit is logged rather than returned in its place.
pub(crate) async fn failure(
    audit: &impl AuditLog,
    clock: &impl Clock,
    egress_request_id: &str,
    actor: &str,
    action: &str,
    err: &EgressError,
) {
    let event = AuditEvent {
        outcome: "failed".to_string(),
        ..success(
            clock,
            egress_request_id,
            actor,
            action,
            json!({ "error_type": err.error_type(), "error": err.to_string() }),
        )
    };
    if let Err(audit_err) = audit.append(&event).await {
        tracing::warn!(
            egress_request_id,
            action,
            error = %audit_err,
            "the failure could not be written to the audit trail"
        );
    }
}
