//! The scheduled or on-demand input → [`SweepService::run`] → its report.

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;
use shared::model::{SweepReport, SweepRequest};
use shared::ports::{
    AuditLog, Clock, Executions, Mailer, ObjectStore, Publisher, SweepStore, UploadListing,
};
use shared::services::sweep::SweepService;
use shared::EgressError;

/// Runs one sweep. The input is [`SweepRequest`] (`{}`, `{"repair": true}`,
/// `{"dry_run": true}`, optionally `egress_request_ids`); an unknown field is refused rather
/// than ignored, so a mistyped `dry_run` never turns into a real run.
pub(crate) async fn handle<St, Ex, O, U, A, P, M, C>(
    sweep: &SweepService<St, Ex, O, U, A, P, M, C>,
    event: LambdaEvent<Value>,
) -> Result<SweepReport, Diagnostic>
where
    St: SweepStore,
    Ex: Executions,
    O: ObjectStore,
    U: UploadListing,
    A: AuditLog,
    P: Publisher,
    M: Mailer,
    C: Clock,
{
    let payload = match event.payload {
        Value::Null => Value::Object(Default::default()),
        other => other,
    };
    let request: SweepRequest = serde_json::from_value(payload)
        .map_err(|e| EgressError::validation(format!("sweep input: {e}")))?;
    let report = sweep.run(&request).await.inspect_err(|err| {
        tracing::error!(error_type = err.error_type(), error = %err, "sweep failed");
    })?;
    Ok(report)
}
