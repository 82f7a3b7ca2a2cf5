//! `start-workflow`: one execution per SWB submission.

use crate::domain::intake::{build_workflow_input, IntakeConfig};
use crate::error::{EgressError, Result};
use crate::ports::{StartOutcome, WorkflowStarter};

/// What happened to one SNS record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The egress request id (= execution name).
    pub egress_request_id: String,
    /// Started now, or already running from an earlier delivery.
    pub outcome: StartOutcome,
}

/// `start-workflow` with its ports: one execution per SWB message.
#[derive(Debug)]
pub struct Intake<S> {
    /// Starts executions.
    pub starter: S,
    /// The buckets and the workflow's configuration.
    pub config: IntakeConfig,
}

impl<S: WorkflowStarter> Intake<S> {
    /// Validates one SWB message and starts its execution. A duplicate delivery is a success.
    pub async fn start(&self, message: &str) -> Result<Started> {
        let input = build_workflow_input(message, &self.config)?;
        let json = serde_json::to_string(&input)
            .map_err(|e| EgressError::Internal(format!("workflow input cannot be encoded: {e}")))?;
        let id = input.request.egress_request_id;
        let outcome = self.starter.start(&id, &json).await?;
        Ok(Started {
            egress_request_id: id,
            outcome,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::intake::workflow_config;
    use crate::fakes::FakeWorkflowStarter;
    use crate::model::WorkflowInput;

    fn intake() -> Intake<FakeWorkflowStarter> {
        let config = IntakeConfig {
            swb_notification_bucket: "swb-notify".into(),
            swb_egress_store_bucket: "swb-egress".into(),
            workflow: workflow_config(
                "single",
                "IG".into(),
                "RIT".into(),
                60,
                "https://app".into(),
            )
            .unwrap(),
        };
        Intake {
            starter: FakeWorkflowStarter::default(),
            config,
        }
    }

    fn message(id: &str) -> String {
        serde_json::json!({
            "id": id, "egress_store_id": "ws1", "egress_store_name": "store",
            "workspace_id": "ws1", "project_id": "p1", "s3_bucketname": "swb-egress",
            "s3_bucketpath": "ws1/", "egress_store_object_list_location": "arn:aws:s3:::swb-notify/ws1/store-ver1.json",
            "created_at": "2024-01-01T00:00:00.000Z", "updated_at": "2024-01-01T00:00:00.000Z",
            "created_by": "u1", "updated_by": "u1", "status": "PENDING", "ver": 1
        })
        .to_string()
    }

    #[tokio::test]
    async fn when_a_message_is_valid_then_one_execution_named_after_the_request_starts() {
        let intake = intake();
        let started = intake.start(&message("req-1")).await.unwrap();
        assert!(matches!(started.outcome, StartOutcome::Started { .. }));
        let executions = intake.starter.executions();
        let input: WorkflowInput = serde_json::from_str(&executions["req-1"]).unwrap();
        assert_eq!(input.request.egress_request_id, "req-1");
        assert_eq!(input.config.review_timeout_seconds, 60);
    }

    #[tokio::test]
    async fn when_sns_delivers_twice_then_the_second_is_a_success_without_a_new_execution() {
        let intake = intake();
        intake.start(&message("req-1")).await.unwrap();
        let again = intake.start(&message("req-1")).await.unwrap();
        assert_eq!(again.outcome, StartOutcome::AlreadyExists);
        assert_eq!(intake.starter.executions().len(), 1);
    }

    #[tokio::test]
    async fn when_a_message_is_invalid_then_nothing_starts_and_the_error_names_the_field() {
        let intake = intake();
        let err = intake.start(r#"{"id":"x"}"#).await.unwrap_err();
        assert_eq!(err.error_type(), "ValidationError");
        assert!(err.to_string().contains("egress_store_id"), "{err}");
        assert!(intake.starter.executions().is_empty());
    }

    #[tokio::test]
    async fn when_a_message_points_at_another_workspaces_data_then_nothing_starts() {
        let intake = intake();
        let foreign =
            message("req-1").replace("\"s3_bucketpath\":\"ws1/\"", "\"s3_bucketpath\":\"ws2/\"");
        assert_ne!(foreign, message("req-1"));
        let err = intake.start(&foreign).await.unwrap_err();
        assert_eq!(err.error_type(), "ValidationError");
        assert!(err.to_string().contains("s3_bucketpath"), "{err}");
        assert!(intake.starter.executions().is_empty());
    }
}
