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

/// What happened to a task completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The waiting task took the output.
    Delivered,
    /// The task is no longer waiting (timed out, or the token was already used).
    NoLongerWaiting,
}

/// Completes a waiting `.waitForTaskToken` task.
pub trait WorkflowCallbacks: Send + Sync {
    /// `SendTaskSuccess` with the JSON `output`.
    fn send_success(
        &self,
        task_token: &str,
        output: &str,
    ) -> impl Future<Output = Result<Delivery>> + Send;
}
