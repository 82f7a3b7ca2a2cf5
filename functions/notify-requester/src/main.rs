//! `notify-requester`: e-mails the researcher that the request was received (after the IG
//! reviewers are notified: what was submitted, what happens next, the expected review time),
//! and, as the last step of every path of the workflow, the decision, the reviewers' reasons
//! and what to do next.

mod config;
mod handler;

use lambda_runtime::{run, service_fn, Error};
use shared::adapters::dynamodb::DynamoDbRequestStore;
use shared::adapters::ses::SesMailer;
use shared::config::ProcessEnv;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = config::Config::from_env(&ProcessEnv).inspect_err(|e| {
        tracing::error!(error = %e, "notify-requester cannot start: invalid configuration");
    })?;
    let sdk = shared::aws::load_config().await;
    let step = shared::services::notify::NotifyStep {
        store: DynamoDbRequestStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            config.requests_table,
        ),
        mailer: SesMailer::new(aws_sdk_ses::Client::new(&sdk), config.sender_email),
        admin_email: config.admin_email,
    };
    run(service_fn(|event| handler::handle(&step, event))).await
}
