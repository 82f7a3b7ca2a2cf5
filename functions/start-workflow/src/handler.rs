//! SNS event → [`Intake::start`] per record.

use aws_lambda_events::event::sns::SnsEvent;
use lambda_runtime::{Diagnostic, LambdaEvent};
use shared::ports::{StartOutcome, WorkflowStarter};
use shared::services::intake::Intake;

/// Starts one execution per record. Every record is attempted; if any fails, the invocation
/// fails with the first error so Lambda's async retries and the dead-letter queue keep the
/// message (records already started are duplicates on retry, which is a success).
pub(crate) async fn handle<S: WorkflowStarter>(
    intake: &Intake<S>,
    event: LambdaEvent<SnsEvent>,
) -> Result<(), Diagnostic> {
    let mut first_error = None;
    for record in &event.payload.records {
        let message_id = &record.sns.message_id;
        match intake.start(&record.sns.message).await {
            Ok(started) => match started.outcome {
                StartOutcome::Started { execution_arn } => {
                    tracing::info!(
                        %message_id,
                        egress_request_id = %started.egress_request_id,
                        %execution_arn,
                        "egress workflow started"
                    );
                    // Counted once: a duplicate delivery below is not a new request.
                    shared::metrics::requests_submitted(&started.egress_request_id);
                }
                StartOutcome::AlreadyExists => tracing::info!(
                    %message_id,
                    egress_request_id = %started.egress_request_id,
                    "duplicate delivery: workflow already started"
                ),
            },
            Err(err) => {
                tracing::error!(%message_id, error_type = err.error_type(), error = %err, "egress message refused");
                first_error.get_or_insert(err);
            }
        }
    }
    match first_error {
        None => Ok(()),
        Some(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::Context;
    use shared::domain::intake::workflow_config;
    use shared::fakes::FakeWorkflowStarter;

    fn intake() -> Intake<FakeWorkflowStarter> {
        Intake {
            starter: FakeWorkflowStarter::default(),
            config: shared::domain::intake::IntakeConfig {
                swb_notification_bucket: "swb-egress-notify-123456789012".into(),
                swb_egress_store_bucket: "swb-egress-store-123456789012".into(),
                workflow: workflow_config("single", "IG".into(), "RIT".into(), 60, String::new())
                    .unwrap(),
            },
        }
    }

    fn fixture(name: &str) -> SnsEvent {
        let path = format!(
            "{}/../../events/start-workflow/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn when_swb_publishes_a_request_then_one_execution_starts() {
        let intake = intake();
        handle(
            &intake,
            LambdaEvent::new(fixture("sns-egress-request.json"), Context::default()),
        )
        .await
        .unwrap();
        assert_eq!(intake.starter.executions().len(), 1);
        assert!(intake
            .starter
            .executions()
            .contains_key("8d3b9a57-4b8e-4a9e-9b7c-1f2d3e4a5b6c"));
    }

    #[tokio::test]
    async fn when_the_same_notification_arrives_twice_then_it_is_not_an_error() {
        let intake = intake();
        shared::metrics::capture::start();
        for _ in 0..2 {
            handle(
                &intake,
                LambdaEvent::new(fixture("sns-egress-request.json"), Context::default()),
            )
            .await
            .unwrap();
        }
        assert_eq!(intake.starter.executions().len(), 1);
        assert_eq!(
            shared::metrics::capture::values("RequestsSubmitted"),
            vec![1.0],
            "one request submitted, not two"
        );
    }

    #[tokio::test]
    async fn when_a_message_is_invalid_then_the_invocation_fails_with_a_validation_error() {
        let intake = intake();
        let err = handle(
            &intake,
            LambdaEvent::new(fixture("sns-invalid-request.json"), Context::default()),
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type, "ValidationError");
        assert!(
            err.error_message.contains("workspace_id"),
            "{}",
            err.error_message
        );
        assert!(intake.starter.executions().is_empty());
    }
}
