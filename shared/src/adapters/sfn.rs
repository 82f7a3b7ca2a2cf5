//! Step Functions adapters: starting executions and completing review tasks.

use aws_sdk_sfn::config::retry::RetryConfig;
use aws_sdk_sfn::error::SdkError;
use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessError;
use aws_sdk_sfn::operation::start_execution::StartExecutionError;
use aws_sdk_sfn::Client;
use aws_smithy_runtime_api::http::Response as HttpResponse;

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

impl SfnWorkflowCallbacks {
    /// One `SendTaskSuccess`, without the SDK's retries (the caller retries, knowing which
    /// attempt may have been delivered).
    async fn send_once(
        &self,
        task_token: &str,
        output: &str,
    ) -> std::result::Result<(), SdkError<SendTaskSuccessError, HttpResponse>> {
        self.client
            .send_task_success()
            .task_token(task_token)
            .output(output)
            .customize()
            .config_override(
                aws_sdk_sfn::config::Builder::default().retry_config(RetryConfig::disabled()),
            )
            .send()
            .await
            .map(|_| ())
    }
}

/// Whether a failed attempt may still have been delivered: it was sent and its answer was
/// lost (a timeout, a dropped connection, a 5xx). A refusal AWS answered (4xx), or a request
/// that never left, was not.
fn maybe_delivered(err: &SdkError<SendTaskSuccessError, HttpResponse>) -> bool {
    match err {
        SdkError::ConstructionFailure(_) => false,
        SdkError::DispatchFailure(e) => !e.is_io() || e.is_timeout(),
        SdkError::ServiceError(e) => e.raw().status().is_server_error(),
        _ => true,
    }
}

/// Attempts of `SendTaskSuccess` (as the SDK's other calls: [`crate::aws::MAX_ATTEMPTS`]).
const SEND_ATTEMPTS: u32 = crate::aws::MAX_ATTEMPTS;

impl WorkflowCallbacks for SfnWorkflowCallbacks {
    /// Retried here rather than by the SDK, because a retry's answer depends on what the
    /// earlier attempt did: after an attempt that may have been delivered (its answer was
    /// lost), "the task is no longer waiting" means that attempt resumed it. The caller holds
    /// the stage's decision claim, so nobody else can have completed this task; only a review
    /// timeout at the same instant could, and the workflow then records the expiry itself.
    async fn send_success(&self, task_token: &str, output: &str) -> Result<Delivery> {
        let mut sent_before = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let err = match self.send_once(task_token, output).await {
                Ok(()) => return Ok(Delivery::Delivered),
                Err(err) => err,
            };
            // The token is a secret: none of these messages include it.
            match err.as_service_error() {
                Some(
                    SendTaskSuccessError::TaskTimedOut(_)
                    | SendTaskSuccessError::TaskDoesNotExist(_)
                    | SendTaskSuccessError::InvalidToken(_),
                ) => {
                    if sent_before {
                        tracing::info!(
                            attempt,
                            "an earlier attempt whose answer was lost resumed the task"
                        );
                        return Ok(Delivery::Delivered);
                    }
                    return Ok(Delivery::NoLongerWaiting);
                }
                Some(SendTaskSuccessError::InvalidOutput(e)) => {
                    return Err(EgressError::Internal(format!(
                        "decision output refused: {}",
                        e.message().unwrap_or_default()
                    )))
                }
                _ => {}
            }
            sent_before |= maybe_delivered(&err);
            let classified = classify("SendTaskSuccess", err);
            if !classified.is_transient() || attempt >= SEND_ATTEMPTS {
                return Err(classified);
            }
            tokio::time::sleep(backoff(attempt)).await;
        }
    }
}

/// Exponential backoff with full jitter, as the SDK's standard retry mode.
fn backoff(attempt: u32) -> std::time::Duration {
    let cap = crate::aws::INITIAL_BACKOFF
        .saturating_mul(1 << attempt.min(10))
        .min(crate::aws::MAX_BACKOFF);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    cap.mul_f64(f64::from(nanos % 1000) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessOutput;
    use aws_sdk_sfn::operation::start_execution::StartExecutionOutput;
    use aws_sdk_sfn::types::error::{
        ExecutionAlreadyExists, ExecutionLimitExceeded, InvalidOutput, TaskTimedOut,
    };
    use aws_smithy_mocks::{mock, mock_client, Rule};

    const ARN: &str = "arn:aws:states:eu-west-2:123456789012:stateMachine:egress";

    /// Starts `req-1` with input `{}`, Step Functions answering as `start` says.
    async fn start_req_1(start: &Rule) -> Result<StartOutcome> {
        let client = mock_client!(aws_sdk_sfn, [start]);
        SfnWorkflowStarter::new(client, ARN)
            .start("req-1", "{}")
            .await
    }

    /// Sends `{}` as the output of task `token`, Step Functions answering as `send` says.
    async fn send_success(send: &Rule, token: &str) -> Result<Delivery> {
        let client = mock_client!(aws_sdk_sfn, [send]);
        SfnWorkflowCallbacks::new(client)
            .send_success(token, "{}")
            .await
    }

    /// A raw HTTP answer with `status` and `body`, as the SDK's retries see it.
    fn http(status: u16, body: &'static str) -> HttpResponse {
        HttpResponse::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(status).unwrap(),
            aws_smithy_types::body::SdkBody::from(body),
        )
    }

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
        let outcome = start_req_1(&start).await.unwrap();
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
        let outcome = start_req_1(&start).await.unwrap();
        assert_eq!(outcome, StartOutcome::AlreadyExists);
    }

    #[tokio::test]
    async fn when_the_execution_limit_is_reached_then_starting_is_transient() {
        let start = mock!(aws_sdk_sfn::Client::start_execution).then_error(|| {
            StartExecutionError::ExecutionLimitExceeded(ExecutionLimitExceeded::builder().build())
        });
        let err = start_req_1(&start).await.unwrap_err();
        assert_eq!(err.error_type(), "TransientError");
    }

    #[tokio::test]
    async fn when_the_task_takes_the_output_then_it_is_delivered() {
        let send = mock!(aws_sdk_sfn::Client::send_task_success)
            .match_requests(|r| r.task_token() == Some("token") && r.output() == Some("{}"))
            .then_output(|| SendTaskSuccessOutput::builder().build());
        let delivery = send_success(&send, "token").await.unwrap();
        assert_eq!(delivery, Delivery::Delivered);
    }

    #[tokio::test]
    async fn when_an_attempt_was_lost_and_the_retry_finds_the_task_done_then_it_was_delivered() {
        // The first attempt reached Step Functions, its answer did not come back (a 503);
        // the retry finds the task no longer waiting: the first attempt resumed it.
        let send = mock!(aws_sdk_sfn::Client::send_task_success)
            .sequence()
            .http_response(|| http(503, "{}"))
            .error(|| SendTaskSuccessError::TaskTimedOut(TaskTimedOut::builder().build()))
            .build();
        let delivery = send_success(&send, "token").await.unwrap();
        assert_eq!(delivery, Delivery::Delivered);
        assert_eq!(send.num_calls(), 2);
    }

    #[tokio::test]
    async fn when_throttled_then_retried_and_a_later_timeout_is_no_longer_waiting() {
        // A throttled attempt was refused, not delivered: the task's state is the answer.
        let send = mock!(aws_sdk_sfn::Client::send_task_success)
            .sequence()
            .http_response(|| {
                http(
                    400,
                    r#"{"__type":"ThrottlingException","message":"slow down"}"#,
                )
            })
            .error(|| SendTaskSuccessError::TaskTimedOut(TaskTimedOut::builder().build()))
            .build();
        let delivery = send_success(&send, "token").await.unwrap();
        assert_eq!(delivery, Delivery::NoLongerWaiting);
        assert_eq!(send.num_calls(), 2);
    }

    #[tokio::test]
    async fn when_the_task_timed_out_then_it_is_no_longer_waiting() {
        let send = mock!(aws_sdk_sfn::Client::send_task_success)
            .then_error(|| SendTaskSuccessError::TaskTimedOut(TaskTimedOut::builder().build()));
        let delivery = send_success(&send, "token").await.unwrap();
        assert_eq!(delivery, Delivery::NoLongerWaiting);
    }

    #[tokio::test]
    async fn when_the_output_is_refused_then_it_is_internal_and_names_no_token() {
        let send = mock!(aws_sdk_sfn::Client::send_task_success).then_error(|| {
            SendTaskSuccessError::InvalidOutput(InvalidOutput::builder().message("bad").build())
        });
        let err = send_success(&send, "secret-token").await.unwrap_err();
        assert_eq!(err.error_type(), "InternalError");
        assert!(!err.to_string().contains("secret-token"), "{err}");
    }
}
