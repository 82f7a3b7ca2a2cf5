//! [`Executions`] on Step Functions: how the execution of a request stands, for the sweep.

use aws_sdk_sfn::operation::describe_execution::DescribeExecutionError;
use aws_sdk_sfn::types::ExecutionStatus as SfnStatus;
use aws_sdk_sfn::Client;

use super::classify;
use crate::error::Result;
use crate::model::{ExecutionInfo, ExecutionStatus};
use crate::ports::Executions;

/// [`Executions`] of one state machine; executions are named after their request.
#[derive(Debug, Clone)]
pub struct SfnExecutions {
    client: Client,
    execution_prefix: String,
}

impl SfnExecutions {
    /// Wraps `client` for the state machine `state_machine_arn`
    /// (`arn:...:stateMachine:<name>`; an execution's ARN is `arn:...:execution:<name>:<id>`).
    pub fn new(client: Client, state_machine_arn: &str) -> Self {
        Self {
            client,
            execution_prefix: state_machine_arn.replacen(":stateMachine:", ":execution:", 1),
        }
    }
}

fn status(s: &SfnStatus) -> ExecutionStatus {
    match s {
        SfnStatus::Running => ExecutionStatus::Running,
        SfnStatus::Succeeded => ExecutionStatus::Succeeded,
        SfnStatus::TimedOut => ExecutionStatus::TimedOut,
        SfnStatus::Aborted => ExecutionStatus::Aborted,
        SfnStatus::PendingRedrive => ExecutionStatus::PendingRedrive,
        // FAILED, and anything a later API version adds: ended, not running.
        _ => ExecutionStatus::Failed,
    }
}

impl Executions for SfnExecutions {
    async fn describe(&self, name: &str) -> Result<Option<ExecutionInfo>> {
        let arn = format!("{}:{name}", self.execution_prefix);
        match self
            .client
            .describe_execution()
            .execution_arn(&arn)
            .send()
            .await
        {
            Ok(out) => Ok(Some(ExecutionInfo {
                status: status(&out.status),
                error: out.error,
                cause: out.cause,
                output: out.output,
            })),
            Err(err) => match err.as_service_error() {
                Some(DescribeExecutionError::ExecutionDoesNotExist(_)) => Ok(None),
                _ => Err(classify(&format!("DescribeExecution {name}"), err)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput;
    use aws_sdk_sfn::types::error::ExecutionDoesNotExist;
    use aws_smithy_mocks::{mock, mock_client};

    const MACHINE: &str = "arn:aws:states:eu-west-2:123456789012:stateMachine:egress";

    #[tokio::test]
    async fn when_describing_then_the_execution_named_after_the_request_is_read() {
        let describe = mock!(Client::describe_execution)
            .match_requests(|r| {
                r.execution_arn()
                    == Some("arn:aws:states:eu-west-2:123456789012:execution:egress:req-1")
            })
            .then_output(|| {
                DescribeExecutionOutput::builder()
                    .execution_arn("arn:x")
                    .state_machine_arn(MACHINE)
                    .status(SfnStatus::Aborted)
                    .start_date(aws_smithy_types::DateTime::from_secs(0))
                    .error("States.Aborted")
                    .build()
                    .unwrap()
            });
        let client = mock_client!(aws_sdk_sfn, [&describe]);
        let info = SfnExecutions::new(client, MACHINE)
            .describe("req-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(info.status, ExecutionStatus::Aborted);
        assert_eq!(info.error.as_deref(), Some("States.Aborted"));
    }

    #[tokio::test]
    async fn when_no_execution_has_the_name_then_none_is_returned() {
        let describe = mock!(Client::describe_execution).then_error(|| {
            DescribeExecutionError::ExecutionDoesNotExist(ExecutionDoesNotExist::builder().build())
        });
        let client = mock_client!(aws_sdk_sfn, [&describe]);
        assert_eq!(
            SfnExecutions::new(client, MACHINE)
                .describe("ghost")
                .await
                .unwrap(),
            None
        );
    }
}
