//! `copy-to-datalake`: invoked by the state machine once a request is approved; streams the
//! staged files into one zip archive in the project's datalake bucket (verifying each file's
//! SHA-256 on the way), then removes the staged copies.

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
        tracing::error!(error = %e, "copy-to-datalake cannot start: invalid configuration");
    })?;
    let sdk = shared::aws::load_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let mut settings = config.archive;
    settings.release_signer = config.release_signing_key_id.map(|key| {
        shared::evidence::release::SignerHandle::new(
            shared::adapters::kms::KmsReleaseSigner::from_config(&sdk, key),
        )
    });
    let step = shared::services::archive::ArchiveStep {
        objects: S3ObjectStore::new(shared::aws::s3_client(&sdk)),
        requests: DynamoDbRequestStore::new(dynamodb.clone(), config.requests_table),
        audit: DynamoDbAuditLog::new(dynamodb, config.audit_table),
        clock: SystemClock,
        settings,
    };
    run(service_fn(|event| handler::handle(&step, event))).await
}
