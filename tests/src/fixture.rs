//! What every e2e test starts from: the running stack (and its reviewer API), a submission
//! as SWB makes it or an execution started directly, and the state read back.

use std::time::Duration;

use aws_sdk_sfn::types::ExecutionStatus;

use shared::domain::intake::IntakeConfig;
use shared::model::{ApprovalMode, EgressRequest, ReviewStage, WorkflowConfig, WorkflowInput};

use crate::graphql::Api;
use crate::inspect;
use crate::stack::Stack;
use crate::swb::{self, Mode, Submission, Submit};

/// Generous: on a busy 2-core machine a request can queue behind others for its functions.
pub const TIMEOUT: Duration = Duration::from_secs(180);

/// The running stack and its reviewer API (`make test-e2e` starts both).
///
/// # Panics
/// When either is not up, or the API serves another stack.
pub async fn setup() -> (Stack, Api) {
    let stack = Stack::connect()
        .await
        .expect("the local stack is up (make test-e2e starts it)");
    let api = Api::load().expect("the reviewer API is up (make test-e2e starts it)");
    assert_eq!(
        api.stack_id, stack.outputs.stack_id,
        "the reviewer API runs on this stack"
    );
    (stack, api)
}

/// A submission in `mode`, as SWB makes it.
///
/// # Panics
/// When the SWB simulator fails.
pub fn submit(stack: &Stack, mode: Mode) -> Submission {
    swb::submit(&stack.outputs, &Submit::new(mode)).expect("the SWB simulator submits")
}

/// The request once it waits for `stage`'s review.
///
/// # Panics
/// When it does not within [`TIMEOUT`].
pub async fn parked(stack: &Stack, id: &str, stage: ReviewStage) -> EgressRequest {
    inspect::awaiting_review(stack, id, stage, TIMEOUT)
        .await
        .expect("the request waits for the review")
}

/// The request as stored.
///
/// # Panics
/// When it is not stored.
pub async fn stored(stack: &Stack, id: &str) -> EgressRequest {
    inspect::request(stack, id)
        .await
        .expect("readable")
        .expect("stored")
}

/// The running stack (`make test-e2e` starts it), for the tests that need no API.
///
/// # Panics
/// When it is not up.
pub async fn connect() -> Stack {
    Stack::connect()
        .await
        .expect("the local stack is up (make test-e2e starts it)")
}

/// A submission as `how` says, as SWB makes it.
///
/// # Panics
/// When the SWB simulator fails.
pub fn submit_as(stack: &Stack, how: &Submit) -> Submission {
    swb::submit(&stack.outputs, how).expect("the SWB simulator submits")
}

/// The execution of request `id` once it has ended.
///
/// # Panics
/// When it does not end within [`TIMEOUT`].
pub async fn ended(stack: &Stack, id: &str) -> inspect::ExecutionEnd {
    inspect::execution_end(stack, &stack.outputs.execution_arn(id), TIMEOUT)
        .await
        .expect("the execution ends")
}

/// The execution of request `id` once it has ended, asserted to have succeeded.
///
/// # Panics
/// When it does not end within [`TIMEOUT`], or ends otherwise than succeeded.
pub async fn succeeded(stack: &Stack, id: &str) -> inspect::ExecutionEnd {
    let end = ended(stack, id).await;
    assert_eq!(end.status, ExecutionStatus::Succeeded, "{end:?}");
    end
}

/// The status of SWB's egress store item, `None` when there is no such item.
///
/// # Panics
/// When the SWB table cannot be read.
pub async fn swb_status(stack: &Stack, egress_store_id: &str) -> Option<String> {
    inspect::swb_status(stack, egress_store_id)
        .await
        .expect("the SWB table is readable")
}

/// What `start-workflow` applies in the single-approval project, with a review timeout of
/// the test's choosing (a test cannot wait the project's 14 days).
///
/// # Panics
/// When the stack's outputs lack the SWB buckets.
pub fn intake_config(stack: &Stack, review_timeout_seconds: u64) -> IntakeConfig {
    let bucket = |name: &str| stack.outputs.bucket(name).expect("bucket").to_string();
    IntakeConfig {
        swb_notification_bucket: bucket("SwbNotificationBucket"),
        swb_egress_store_bucket: bucket("SwbEgressStoreBucket"),
        workflow: WorkflowConfig {
            approval_mode: ApprovalMode::Single,
            is_single_approval_enabled: true,
            ig_reviewer_group: stack.outputs.project.ig_reviewer_group.clone(),
            rit_reviewer_group: stack.outputs.project.rit_reviewer_group.clone(),
            review_timeout_seconds,
            app_url: stack.outputs.project.app_url.clone(),
        },
    }
}

/// Starts the workflow with `input` directly, as `start-workflow` would, for the paths a test
/// prepares itself.
///
/// # Panics
/// When Step Functions refuses the execution.
pub async fn start_execution(stack: &Stack, input: &WorkflowInput) {
    stack
        .sfn
        .start_execution()
        .state_machine_arn(&stack.outputs.state_machine_arn)
        .name(&input.request.egress_request_id)
        .input(serde_json::to_string(input).expect("json"))
        .send()
        .await
        .expect("execution started");
}
