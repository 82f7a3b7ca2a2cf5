//! Step Functions adapters: starting executions and completing review tasks.

use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessError;
use aws_sdk_sfn::operation::start_execution::StartExecutionError;
use aws_sdk_sfn::Client;

use super::classify;
use crate::error::{EgressError, Result};
use crate::ports::{StartOutcome, WorkflowCallbacks, WorkflowStarter};

/// [`WorkflowStarter`] for one state machine.
#[derive(Debug, Clone)]
pub struct SfnWorkflowStarter {
    client: Client,
    state_machine_arn: String,
}

impl SfnWorkflowStarter {
    /// Wraps `client` for the state machine `state_machine_arn`.
    pub fn new(client: Client, state_machine_arn: impl Into<String>) -> Self {
        Self {
            client,
            state_machine_arn: state_machine_arn.into(),
        }
    }
}

impl WorkflowStarter for SfnWorkflowStarter {
    async fn start(&self, name: &str, input: &str) -> Result<StartOutcome> {
        match self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(name)
            .input(input)
            .send()
            .await
        {
            Ok(out) => Ok(StartOutcome::Started {
                execution_arn: out.execution_arn,
            }),
            Err(err) => match err.as_service_error() {
                Some(StartExecutionError::ExecutionAlreadyExists(_)) => {
                    Ok(StartOutcome::AlreadyExists)
                }
                Some(StartExecutionError::InvalidName(e)) => Err(EgressError::validation(format!(
                    "execution name {name:?} is not valid: {}",
                    e.message().unwrap_or_default()
                ))),
                Some(StartExecutionError::InvalidExecutionInput(e)) => {
                    Err(EgressError::validation(format!(
                        "workflow input is not valid: {}",
                        e.message().unwrap_or_default()
                    )))
                }
                Some(StartExecutionError::ExecutionLimitExceeded(e)) => {
                    Err(EgressError::Transient(format!(
                        "execution limit exceeded: {}",
                        e.message().unwrap_or_default()
                    )))
                }
                Some(StartExecutionError::StateMachineDoesNotExist(e)) => {
                    Err(EgressError::Config(format!(
                        "the configured state machine does not exist: {}",
                        e.message().unwrap_or_default()
                    )))
                }
                _ => Err(classify("StartExecution", err)),
            },
        }
    }
}

/// [`WorkflowCallbacks`] through `SendTaskSuccess`.
#[derive(Debug, Clone)]
pub struct SfnWorkflowCallbacks {
    client: Client,
}

impl SfnWorkflowCallbacks {
    /// Wraps `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl WorkflowCallbacks for SfnWorkflowCallbacks {
    async fn send_success(&self, task_token: &str, output: &str) -> Result<()> {
        match self
            .client
            .send_task_success()
            .task_token(task_token)
            .output(output)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // The token is a secret: none of these messages include it.
            Err(err) => Err(match err.as_service_error() {
                Some(SendTaskSuccessError::TaskTimedOut(_)) => EgressError::Conflict(
                    "the review task has timed out; the request has expired".into(),
                ),
                Some(
                    SendTaskSuccessError::TaskDoesNotExist(_)
                    | SendTaskSuccessError::InvalidToken(_),
                ) => EgressError::Conflict(
                    "the review task is no longer waiting for a decision".into(),
                ),
                Some(SendTaskSuccessError::InvalidOutput(e)) => EgressError::Internal(format!(
                    "decision output refused: {}",
                    e.message().unwrap_or_default()
                )),
                _ => classify("SendTaskSuccess", err),
            }),
        }
    }
}
