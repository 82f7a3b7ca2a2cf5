//! Audit records of the workflow's S3 steps (staging, checks, clean-up, archive): one
//! [`audited`] wraps each step's outcome.

use serde_json::json;

use crate::error::EgressError;
use crate::ports::{Appended, AuditEvent, AuditLog, Clock};

/// Audits a step's `outcome` under `action` and returns it unchanged: a success as `detail`
/// of the result (appended once per request and action; if the trail refuses it, that is the step's error, since an
/// unaudited step must be retried), a failure by its error name and message (best effort: see
/// [`failure`]).
pub(crate) async fn audited<T>(
    audit: &impl AuditLog,
    clock: &impl Clock,
    egress_request_id: &str,
    actor: &str,
    action: &str,
    outcome: crate::error::Result<T>,
    detail: impl FnOnce(&T) -> serde_json::Value,
) -> crate::error::Result<T> {
    match outcome {
        Ok(value) => {
            let event = success(clock, egress_request_id, actor, action, detail(&value));
            // Each of these steps happens once per request: a re-run (its answer was lost,
            // the state machine retried it) finds its earlier event and adds none.
            if audit.append_once(&event, action).await? == Appended::Already {
                tracing::info!(
                    egress_request_id,
                    action,
                    "already audited by an earlier run"
                );
            }
            Ok(value)
        }
        Err(err) => {
            failure(audit, clock, egress_request_id, actor, action, &err).await;
            Err(err)
        }
    }
}

/// A successful step by `actor`.
fn success(
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
async fn failure(
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
