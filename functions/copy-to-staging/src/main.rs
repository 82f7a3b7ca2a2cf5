//! `copy-to-staging`: invoked by the state machine after intake; copies exactly the object
//! versions SWB's snapshot lists into the KMS-encrypted staging bucket, hashes them and
//! writes the manifest the reviewers and the archive rely on.

mod config;
mod handler;

use lambda_runtime::{run, service_fn, Error};
use shared::adapters::dynamodb::{DynamoDbAuditLog, DynamoDbRequestStore};
use shared::adapters::s3::S3ObjectStore;
use shared::config::ProcessEnv;
use shared::ports::SystemClock;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = config::Config::from_env(&ProcessEnv).inspect_err(|e| {
        tracing::error!(error = %e, "copy-to-staging cannot start: invalid configuration");
    })?;
    let sdk = shared::aws::load_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let step = shared::services::staging::StagingStep {
        objects: S3ObjectStore::new(shared::aws::s3_client(&sdk)),
        requests: DynamoDbRequestStore::new(dynamodb.clone(), config.requests_table),
        audit: DynamoDbAuditLog::new(dynamodb, config.audit_table),
        clock: SystemClock,
        settings: config.staging,
    };
    run(service_fn(|event| handler::handle(&step, event))).await
}
