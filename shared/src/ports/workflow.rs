//! Starting and resuming the Step Functions workflow.

use std::future::Future;

use crate::error::Result;

/// What happened when an execution was requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// A new execution started.
    Started {
        /// Its ARN.
        execution_arn: String,
    },
    /// An execution with this name already exists (a duplicate SNS delivery): not an error.
    AlreadyExists,
}

/// Starts workflow executions.
pub trait WorkflowStarter: Send + Sync {
    /// Starts an execution called `name` with the JSON `input`.
    fn start(&self, name: &str, input: &str) -> impl Future<Output = Result<StartOutcome>> + Send;
}

/// Completes a waiting `.waitForTaskToken` task.
pub trait WorkflowCallbacks: Send + Sync {
    /// `SendTaskSuccess` with the JSON `output`. A token that is no longer valid (timed out,
    /// already used) is a `Conflict`.
    fn send_success(
        &self,
        task_token: &str,
        output: &str,
    ) -> impl Future<Output = Result<()>> + Send;
}
