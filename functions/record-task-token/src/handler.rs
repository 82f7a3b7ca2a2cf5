//! Payload → [`shared::services::review_task::ReviewTaskStep`], run once by [`run_step`].
//! The task token is a secret: it is only ever passed to the store, never to a log line.

use lambda_runtime::{Diagnostic, LambdaEvent};
use shared::model::{RecordTaskTokenInput, RecordTaskTokenOutput};
use shared::services::{run_step, Step};

pub(crate) async fn handle(
    step: &impl Step<Input = RecordTaskTokenInput, Output = RecordTaskTokenOutput>,
    event: LambdaEvent<RecordTaskTokenInput>,
) -> Result<RecordTaskTokenOutput, Diagnostic> {
    Ok(run_step(step, event.payload).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::Context;
    use shared::fakes::InMemoryRequestStore;
    use shared::model::{EgressStatus, ReviewStage};
    use shared::ports::SystemClock;
    use shared::services::review_task::ReviewTaskStep;
    use shared::testdata::request;

    fn fixture(name: &str) -> RecordTaskTokenInput {
        let path = format!(
            "{}/../../events/record-task-token/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn when_the_ig_stage_starts_then_the_token_is_stored_and_not_returned() {
        let input = fixture("ig-stage.json");
        let deps = ReviewTaskStep {
            store: InMemoryRequestStore::with([request(
                &input.egress_request_id,
                EgressStatus::Processing,
            )]),
            clock: SystemClock,
        };
        let out = handle(&deps, LambdaEvent::new(input.clone(), Context::default()))
            .await
            .unwrap();
        assert_eq!(out.stage, ReviewStage::Ig);
        assert!(!serde_json::to_string(&out)
            .unwrap()
            .contains(&input.task_token));
        let item = deps.store.item(&input.egress_request_id).unwrap();
        assert_eq!(item.sfn_task_token, Some(input.task_token));
    }

    #[tokio::test]
    async fn when_the_request_is_missing_then_the_error_is_not_found() {
        let deps = ReviewTaskStep {
            store: InMemoryRequestStore::default(),
            clock: SystemClock,
        };
        let err = handle(
            &deps,
            LambdaEvent::new(fixture("rit-stage.json"), Context::default()),
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type, "NotFound");
    }

    #[test]
    fn when_the_input_is_displayed_then_the_token_is_redacted() {
        let input = fixture("ig-stage.json");
        assert!(!input.to_string().contains(&input.task_token));
    }
}
