//! The scheduled or on-demand input → [`SweepService::run`] → its report.

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;
use shared::model::{SweepReport, SweepRequest};
use shared::ports::{
    AuditLog, Clock, Executions, Mailer, ObjectStore, Publisher, SweepStore, UploadListing,
    WorkflowCallbacks,
};
use shared::services::sweep::SweepService;
use shared::EgressError;

/// Runs one sweep. The input is [`SweepRequest`] (`{}`, `{"repair": true}`,
/// `{"dry_run": true}`, optionally `egress_request_ids`); an unknown field is refused rather
/// than ignored, so a mistyped `dry_run` never turns into a real run.
pub(crate) async fn handle<St, Ex, W, O, U, A, P, M, C>(
    sweep: &SweepService<St, Ex, W, O, U, A, P, M, C>,
    event: LambdaEvent<Value>,
) -> Result<SweepReport, Diagnostic>
where
    St: SweepStore,
    Ex: Executions,
    W: WorkflowCallbacks,
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

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::Context;
    use serde_json::json;
    use shared::domain::sweep::ReminderPolicy;
    use shared::fakes::{
        FakeExecutions, FakeUploadListing, FakeWorkflowCallbacks, InMemoryAuditLog,
        InMemoryObjectStore, InMemorySweepStore, RecordingMailer, RecordingPublisher,
    };
    use shared::model::SwbStoreItem;
    use shared::ports::SystemClock;
    use shared::services::sweep::SweepSettings;

    type Sweep = SweepService<
        InMemorySweepStore,
        FakeExecutions,
        FakeWorkflowCallbacks,
        InMemoryObjectStore,
        FakeUploadListing,
        InMemoryAuditLog,
        RecordingPublisher,
        RecordingMailer,
        SystemClock,
    >;

    fn sweep() -> Sweep {
        let store = InMemorySweepStore::default();
        store.put_store(SwbStoreItem {
            id: "store-1".into(),
            status: Some("PROCESSING".into()),
            lock: Some("ghost".into()),
        });
        SweepService {
            store,
            executions: FakeExecutions::default(),
            workflow: FakeWorkflowCallbacks::default(),
            objects: InMemoryObjectStore::new()
                .with_bucket("staging", false)
                .with_bucket("datalake", false),
            uploads: FakeUploadListing::default(),
            audit: InMemoryAuditLog::default(),
            publisher: RecordingPublisher::default(),
            mailer: RecordingMailer::default(),
            clock: SystemClock,
            settings: SweepSettings {
                policy: ReminderPolicy {
                    remind_after: 60,
                    remind_every: 60,
                    escalate_after: 120,
                    warn_before_expiry: 60,
                    review_timeout: 600,
                },
                ig_topic_arn: "arn:ig".into(),
                rit_topic_arn: "arn:rit".into(),
                admin_topic_arn: "arn:admin".into(),
                admin_email: "admin@example.org".into(),
                app_url: String::new(),
                staging_bucket: "staging".into(),
                datalake_bucket: "datalake".into(),
                stale_upload_after: 86_400,
            },
        }
    }

    #[tokio::test]
    async fn when_the_input_has_an_unknown_field_then_it_is_refused_and_nothing_is_repaired() {
        let sweep = sweep();
        let err = handle(
            &sweep,
            LambdaEvent::new(
                json!({ "dryrun": true, "repair": true }),
                Context::default(),
            ),
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type, "ValidationError");
        assert!(
            err.error_message.contains("dryrun"),
            "{}",
            err.error_message
        );
        let store = sweep.store.store("store-1").unwrap();
        assert_eq!(store.status.as_deref(), Some("PROCESSING"));
    }

    #[tokio::test]
    async fn when_the_schedule_asks_for_a_repair_then_the_report_counts_it() {
        let sweep = sweep();
        let report = handle(
            &sweep,
            LambdaEvent::new(json!({ "repair": true }), Context::default()),
        )
        .await
        .unwrap();
        assert_eq!(report.counts.drift_repaired, 1);
        assert_eq!(
            sweep.store.store("store-1").unwrap().status.as_deref(),
            Some("PENDING")
        );
    }

    #[tokio::test]
    async fn when_invoked_without_input_then_it_reports_without_repairing() {
        let sweep = sweep();
        let report = handle(&sweep, LambdaEvent::new(Value::Null, Context::default()))
            .await
            .unwrap();
        assert_eq!(
            (report.counts.drift_found, report.counts.drift_repaired),
            (1, 0)
        );
    }
}
