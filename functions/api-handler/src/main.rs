//! `api-handler`: the Lambda data source of the reviewer GraphQL API (AppSync). Resolves
//! `listRequests`, `updateRequest` and `downloadData` for the TREEHOOSE egress web app, the
//! evidence queries `requestChecks`, `requestEvidence` and `releaseSigningKey`, and the
//! admin's `revokeRelease`.

mod config;
mod handler;

use lambda_runtime::{run, service_fn, Error};
use shared::adapters::cognito::CognitoReviewerDirectory;
use shared::adapters::dynamodb::{DynamoDbAuditLog, DynamoDbRequestStore};
use shared::adapters::kms::KmsReleaseSigner;
use shared::adapters::s3::S3ObjectStore;
use shared::adapters::s3_presign::S3DownloadLinks;
use shared::adapters::ses::SesMailer;
use shared::adapters::sfn::SfnWorkflowCallbacks;
use shared::config::ProcessEnv;
use shared::ports::SystemClock;
use shared::services::review_api::evidence::{Evidence, EvidenceSources};
use shared::services::review_api::revoke::Revocation;
use shared::services::review_api::ReviewService;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = config::Config::from_env(&ProcessEnv).inspect_err(|e| {
        tracing::error!(error = %e, "api-handler cannot start: invalid configuration");
    })?;
    let sdk = shared::aws::load_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let s3 = shared::aws::s3_client(&sdk);
    let revocation = Revocation {
        objects: S3ObjectStore::new(s3.clone()),
        mailer: SesMailer::new(aws_sdk_ses::Client::new(&sdk), config.sender_email),
        admin_group: config.admin_group,
        datalake_kms_key_arn: config.datalake_kms_key_arn,
    };
    let evidence = Evidence {
        sources: EvidenceSources {
            objects: S3ObjectStore::new(s3.clone()),
            // Only GetPublicKey is ever called: the role may not sign.
            key: KmsReleaseSigner::from_config(&sdk, config.release_signing_key_id),
        },
        staging_bucket: config.staging_bucket,
        admin_group: revocation.admin_group.clone(),
    };
    let service = ReviewService {
        store: DynamoDbRequestStore::new(dynamodb.clone(), config.requests_table),
        directory: CognitoReviewerDirectory::new(aws_sdk_cognitoidentityprovider::Client::new(
            &sdk,
        )),
        workflow: SfnWorkflowCallbacks::new(aws_sdk_sfn::Client::new(&sdk)),
        audit: DynamoDbAuditLog::new(dynamodb, config.audit_table),
        links: S3DownloadLinks::new(s3),
        clock: SystemClock,
        settings: config.settings,
    };
    run(service_fn(|event| {
        handler::handle(&service, &evidence, &revocation, event)
    }))
    .await
}
