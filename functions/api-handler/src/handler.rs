//! Resolver payload → `shared::services::review_api::ReviewService::dispatch_all` (the web
//! app's operations, the evidence queries answered from [`Evidence`], and `revokeRelease`
//! with its [`Revocation`] ports).

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;
use shared::model::ApiEvent;
use shared::ports::{
    AuditLog, Clock, DownloadLinks, Mailer, ObjectStore, ReviewStore, ReviewerDirectory,
    RevocationStore, WorkflowCallbacks,
};
use shared::services::review_api::evidence::{Evidence, EvidenceStore};
use shared::services::review_api::revoke::Revocation;
use shared::services::review_api::ReviewService;
use shared::EgressError;

/// Resolves one GraphQL field. The payload is what `infra/resolvers/*.request.vtl` builds:
/// the field name, the verified caller and the client's arguments. Errors reach AppSync as
/// the function error (`errorMessage` is what the web app shows). Arguments, handles, task
/// tokens and presigned URLs are never logged.
pub(crate) async fn handle<S, D, W, A, L, C, E, O, M>(
    service: &ReviewService<S, D, W, A, L, C>,
    evidence: &Evidence<E>,
    revocation: &Revocation<O, M>,
    event: LambdaEvent<Value>,
) -> Result<Value, Diagnostic>
where
    S: ReviewStore + RevocationStore,
    D: ReviewerDirectory,
    W: WorkflowCallbacks,
    A: AuditLog,
    L: DownloadLinks,
    C: Clock,
    E: EvidenceStore,
    O: ObjectStore,
    M: Mailer,
{
    let api: ApiEvent = serde_json::from_value(event.payload).map_err(|e| {
        tracing::error!(error = %e, "resolver payload is not an api-handler event");
        Diagnostic::from(EgressError::validation(format!(
            "the resolver payload is not valid: {e}"
        )))
    })?;
    let field = api.field.clone();
    let username = api.identity.username.clone();
    service
        .dispatch_all(evidence, revocation, api)
        .await.map_err(|err| {
        tracing::warn!(%field, %username, error_type = err.error_type(), error = %err, "GraphQL field not resolved");
        err.into()
    })
}

#[cfg(test)]
mod tests;
