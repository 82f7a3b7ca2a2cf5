//! `start-workflow`: SWB's egress SNS topic → one Step Functions execution per request.

mod config;
mod handler;

use lambda_runtime::{run, service_fn, Error};
use shared::adapters::sfn::SfnWorkflowStarter;
use shared::config::ProcessEnv;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = config::Config::from_env(&ProcessEnv).inspect_err(|e| {
        tracing::error!(error = %e, "start-workflow cannot start: invalid configuration");
    })?;
    let sdk = shared::aws::load_config().await;
    let intake = shared::services::intake::Intake {
        starter: SfnWorkflowStarter::new(aws_sdk_sfn::Client::new(&sdk), config.state_machine_arn),
        config: config.intake,
    };
    run(service_fn(|event| handler::handle(&intake, event))).await
}
