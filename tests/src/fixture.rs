//! What every GraphQL e2e test starts from: the running stack and its reviewer API, a
//! submission as SWB makes it, and the request as stored.

use std::time::Duration;

use shared::model::{EgressRequest, ReviewStage};

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
