//! Step Functions adapters: starting executions and completing review tasks.

use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessError;
use aws_sdk_sfn::operation::start_execution::StartExecutionError;
use aws_sdk_sfn::Client;

use super::classify;
use crate::error::{EgressError, Result};
use crate::ports::{Delivery, StartOutcome, WorkflowCallbacks, WorkflowStarter};

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
    async fn send_success(&self, task_token: &str, output: &str) -> Result<Delivery> {
        match self
            .client
            .send_task_success()
            .task_token(task_token)
            .output(output)
            .send()
            .await
        {
            Ok(_) => Ok(Delivery::Delivered),
            // The token is a secret: none of these messages include it.
            Err(err) => match err.as_service_error() {
                Some(
                    SendTaskSuccessError::TaskTimedOut(_)
                    | SendTaskSuccessError::TaskDoesNotExist(_)
                    | SendTaskSuccessError::InvalidToken(_),
                ) => Ok(Delivery::NoLongerWaiting),
                Some(SendTaskSuccessError::InvalidOutput(e)) => {
                    Err(EgressError::Internal(format!(
                        "decision output refused: {}",
                        e.message().unwrap_or_default()
                    )))
                }
                _ => Err(classify("SendTaskSuccess", err)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessOutput;
    use aws_sdk_sfn::operation::start_execution::StartExecutionOutput;
    use aws_sdk_sfn::types::error::{
        ExecutionAlreadyExists, ExecutionLimitExceeded, InvalidOutput, TaskTimedOut,
    };
    use aws_smithy_mocks::{mock, mock_client};

    const ARN: &str = "arn:aws:states:eu-west-2:123456789012:stateMachine:egress";

    #[tokio::test]
    async fn when_starting_then_the_named_execution_of_the_configured_machine_starts() {
        let start = mock!(aws_sdk_sfn::Client::start_execution)
            .match_requests(|r| {
                r.state_machine_arn() == Some(ARN)
                    && r.name() == Some("req-1")
                    && r.input() == Some("{}")
            })
            .then_output(|| {
                StartExecutionOutput::builder()
                    .execution_arn("arn:exec")
                    .start_date(aws_smithy_types::DateTime::from_secs(0))
                    .build()
                    .unwrap()
            });
        let client = mock_client!(aws_sdk_sfn, [&start]);
        let outcome = SfnWorkflowStarter::new(client, ARN)
            .start("req-1", "{}")
            .await
            .unwrap();
        assert_eq!(
            outcome,
            StartOutcome::Started {
                execution_arn: "arn:exec".into()
            }
        );
    }

    #[tokio::test]
    async fn when_the_execution_already_exists_then_it_is_not_an_error() {
        let start = mock!(aws_sdk_sfn::Client::start_execution).then_error(|| {
            StartExecutionError::ExecutionAlreadyExists(ExecutionAlreadyExists::builder().build())
        });
        let client = mock_client!(aws_sdk_sfn, [&start]);
        let outcome = SfnWorkflowStarter::new(client, ARN)
            .start("req-1", "{}")
            .await
            .unwrap();
        assert_eq!(outcome, StartOutcome::AlreadyExists);
    }

    #[tokio::test]
    async fn when_the_execution_limit_is_reached_then_starting_is_transient() {
        let start = mock!(aws_sdk_sfn::Client::start_execution).then_error(|| {
            StartExecutionError::ExecutionLimitExceeded(ExecutionLimitExceeded::builder().build())
        });
        let client = mock_client!(aws_sdk_sfn, [&start]);
        let err = SfnWorkflowStarter::new(client, ARN)
            .start("req-1", "{}")
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "TransientError");
    }

    #[tokio::test]
    async fn when_the_task_takes_the_output_then_it_is_delivered() {
        let send = mock!(aws_sdk_sfn::Client::send_task_success)
            .match_requests(|r| r.task_token() == Some("token") && r.output() == Some("{}"))
            .then_output(|| SendTaskSuccessOutput::builder().build());
        let client = mock_client!(aws_sdk_sfn, [&send]);
        let delivery = SfnWorkflowCallbacks::new(client)
            .send_success("token", "{}")
            .await
            .unwrap();
        assert_eq!(delivery, Delivery::Delivered);
    }

    #[tokio::test]
    async fn when_the_task_timed_out_then_it_is_no_longer_waiting() {
        let send = mock!(aws_sdk_sfn::Client::send_task_success)
            .then_error(|| SendTaskSuccessError::TaskTimedOut(TaskTimedOut::builder().build()));
        let client = mock_client!(aws_sdk_sfn, [&send]);
        let delivery = SfnWorkflowCallbacks::new(client)
            .send_success("token", "{}")
            .await
            .unwrap();
        assert_eq!(delivery, Delivery::NoLongerWaiting);
    }

    #[tokio::test]
    async fn when_the_output_is_refused_then_it_is_internal_and_names_no_token() {
        let send = mock!(aws_sdk_sfn::Client::send_task_success).then_error(|| {
            SendTaskSuccessError::InvalidOutput(InvalidOutput::builder().message("bad").build())
        });
        let client = mock_client!(aws_sdk_sfn, [&send]);
        let err = SfnWorkflowCallbacks::new(client)
            .send_success("secret-token", "{}")
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "InternalError");
        assert!(!err.to_string().contains("secret-token"), "{err}");
    }
}
