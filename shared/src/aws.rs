//! Building the AWS SDK configuration and clients, once per cold start.
//!
//! Local endpoints come from the SDK's standard `AWS_ENDPOINT_URL` /
//! `AWS_ENDPOINT_URL_<SERVICE>` variables; there is no custom flag.

use aws_config::{BehaviorVersion, SdkConfig};

/// Loads the shared SDK configuration from the environment (region, credentials, endpoints).
pub async fn load_config() -> SdkConfig {
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

/// True when an endpoint override is configured for S3 (a local stack).
fn s3_endpoint_overridden() -> bool {
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .any(|v| std::env::var(v).map(|s| !s.is_empty()).unwrap_or(false))
}

/// An S3 client. Path-style addressing is switched on when a local endpoint is configured,
/// because a local endpoint has no wildcard DNS for virtual-hosted bucket names.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(s3_endpoint_overridden())
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}
