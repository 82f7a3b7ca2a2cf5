//! Use cases: one [`Step`] per workflow step (a struct owning its ports) and the reviewer API,
//! written against the ports so that each Lambda handler is a single call.

pub mod archive;
pub mod checks;
pub mod cleanup;
pub mod intake;
pub mod multipart;
pub mod notify;
mod readahead;
pub mod review_api;
pub mod review_task;
pub mod staging;
mod step_audit;
pub mod sweep;

use std::future::Future;

use tracing::Instrument;

use crate::error::Result;
use crate::model::{
    ArchiveInput, ChecksInput, CleanupInput, NotifyInput, RecordTaskTokenInput, StagingInput,
};

/// A workflow step as its Lambda runs it: a struct owning its ports, with one `run`.
pub trait Step: Send + Sync {
    /// What the state machine passes in.
    type Input: StepInput;
    /// What the step returns to the state machine.
    type Output: Send;
    /// The log line of a failure.
    const FAILED: &'static str;
    /// Runs the step once. (No `Send` bound: the Lambda runtime does not need one, and
    /// proving it for the staging stream's closures trips a compiler limitation.)
    fn run(&self, input: &Self::Input) -> impl Future<Output = Result<Self::Output>>;
}

/// A step input naming its request, so that every log line of the step carries the id.
pub trait StepInput: Send + Sync {
    /// The request the step works on.
    fn egress_request_id(&self) -> &str;
}

macro_rules! step_input {
    ($($t:ty),*) => {$(
        impl StepInput for $t {
            fn egress_request_id(&self) -> &str {
                &self.egress_request_id
            }
        }
    )*};
}
step_input!(
    StagingInput,
    ChecksInput,
    CleanupInput,
    ArchiveInput,
    RecordTaskTokenInput,
    NotifyInput
);

/// Runs `step` in a span carrying the request id, and logs a failure once, by its error
/// name: the one error tail every handler shares.
pub async fn run_step<S: Step>(step: &S, input: S::Input) -> Result<S::Output> {
    let span = tracing::info_span!("step", egress_request_id = input.egress_request_id());
    // Boxed: the step futures are deep enough to exceed the compiler's layout depth once
    // wrapped in the span.
    let outcome = Box::pin(step.run(&input)).instrument(span.clone()).await;
    outcome.inspect_err(|err| {
        span.in_scope(
            || tracing::error!(error_type = err.error_type(), error = %err, "{}", S::FAILED),
        )
    })
}
