//! `pre-token-generation`: the Cognito pre token generation trigger (V1 event) of the
//! reviewer user pool. Gives federated users the reviewer groups their IdP groups map to.

mod config;
mod handler;

use lambda_runtime::{run, service_fn, Error};
use shared::config::ProcessEnv;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = config::Config::from_env(&ProcessEnv).inspect_err(|e| {
        tracing::error!(error = %e, "pre-token-generation cannot start: invalid configuration");
    })?;
    run(service_fn(|event| handler::handle(&config, event))).await
}
