//! `record-task-token`: invoked by the state machine with `.waitForTaskToken` when a review
//! stage starts; stores the token server-side so the API can resume the workflow.

mod config;
mod handler;

use lambda_runtime::{run, service_fn, Error};
use shared::adapters::dynamodb::DynamoDbRequestStore;
use shared::config::ProcessEnv;
use shared::ports::SystemClock;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = config::Config::from_env(&ProcessEnv).inspect_err(|e| {
        tracing::error!(error = %e, "record-task-token cannot start: invalid configuration");
    })?;
    let sdk = shared::aws::load_config().await;
    let step = shared::services::review_task::ReviewTaskStep {
        store: DynamoDbRequestStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            config.requests_table,
        ),
        clock: SystemClock,
    };
    run(service_fn(|event| handler::handle(&step, event))).await
}
