//! `sweep`: reminders, escalation and expiry warnings for waiting review stages, and the
//! reconciliation of drift. Run by an EventBridge Scheduler schedule (`{"repair": true}`) and
//! on demand by an admin (`{"dry_run": true}`, `{"repair": true, "egress_request_ids": [..]}`).

mod config;
mod handler;

use lambda_runtime::{run, service_fn, Error};
use shared::adapters::dynamodb_audit::DynamoDbAuditLog;
use shared::adapters::dynamodb_sweep::DynamoDbSweepStore;
use shared::adapters::s3::S3ObjectStore;
use shared::adapters::s3_uploads::S3UploadListing;
use shared::adapters::ses::SesMailer;
use shared::adapters::sfn::SfnWorkflowCallbacks;
use shared::adapters::sfn_executions::SfnExecutions;
use shared::adapters::sns::SnsPublisher;
use shared::config::ProcessEnv;
use shared::ports::SystemClock;
use shared::services::sweep::SweepService;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = config::Config::from_env(&ProcessEnv).inspect_err(|e| {
        tracing::error!(error = %e, "sweep cannot start: invalid configuration");
    })?;
    let sdk = shared::aws::load_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let s3 = shared::aws::s3_client(&sdk);
    let sfn = aws_sdk_sfn::Client::new(&sdk);
    let sweep = SweepService {
        store: DynamoDbSweepStore::new(
            dynamodb.clone(),
            config.requests_table,
            config.swb_egress_store_table,
        ),
        executions: SfnExecutions::new(sfn.clone(), &config.state_machine_arn),
        workflow: SfnWorkflowCallbacks::new(sfn),
        objects: S3ObjectStore::new(s3.clone()),
        uploads: S3UploadListing::new(s3),
        audit: DynamoDbAuditLog::new(dynamodb, config.audit_table),
        publisher: SnsPublisher::new(aws_sdk_sns::Client::new(&sdk)),
        mailer: SesMailer::new(aws_sdk_ses::Client::new(&sdk), config.sender_email),
        clock: SystemClock,
        settings: config.settings,
    };
    run(service_fn(|event| handler::handle(&sweep, event))).await
}
