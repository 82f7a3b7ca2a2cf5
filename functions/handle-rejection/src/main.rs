//! `handle-rejection`: invoked by the state machine when a request is rejected, expires or
//! fails; deletes everything staged for it so no copy of the data outlives the decision.

mod config;
mod handler;

use lambda_runtime::{run, service_fn, Error};
use shared::adapters::dynamodb::DynamoDbAuditLog;
use shared::adapters::s3::S3ObjectStore;
use shared::config::ProcessEnv;
use shared::ports::SystemClock;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = config::Config::from_env(&ProcessEnv).inspect_err(|e| {
        tracing::error!(error = %e, "handle-rejection cannot start: invalid configuration");
    })?;
    let sdk = shared::aws::load_config().await;
    let step = shared::services::cleanup::CleanupStep {
        objects: S3ObjectStore::new(shared::aws::s3_client(&sdk)),
        audit: DynamoDbAuditLog::new(aws_sdk_dynamodb::Client::new(&sdk), config.audit_table),
        clock: SystemClock,
        staging_bucket: config.staging_bucket,
    };
    run(service_fn(|event| handler::handle(&step, event))).await
}
