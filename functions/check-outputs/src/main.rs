//! `check-outputs`: invoked by the state machine after staging; checks every staged file
//! (types, sizes, tables and spreadsheets, personal identifiers, images' metadata, archives,
//! ACRO's results, the malware test signature and the malware scanner's tags),
//! writes the report next to the manifest and returns the verdict for the reviewers'
//! notification, the request item and, in `enforce` mode, the automatic rejection.

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
        tracing::error!(error = %e, "check-outputs cannot start: invalid configuration");
    })?;
    let sdk = shared::aws::load_config().await;
    let step = shared::services::checks::ChecksStep {
        objects: S3ObjectStore::new(shared::aws::s3_client(&sdk)),
        audit: DynamoDbAuditLog::new(aws_sdk_dynamodb::Client::new(&sdk), config.audit_table),
        clock: SystemClock,
        staging_bucket: config.staging_bucket,
        staging_kms_key_arn: config.staging_kms_key_arn,
        policies: config.policies,
        malware_wait: config.malware_wait,
    };
    run(service_fn(|event| handler::handle(&step, event))).await
}
