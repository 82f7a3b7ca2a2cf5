//! Building the AWS SDK configuration and clients, once per cold start.
//!
//! Local endpoints come from the SDK's standard `AWS_ENDPOINT_URL` /
//! `AWS_ENDPOINT_URL_<SERVICE>` variables; there is no custom flag.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

/// Attempts per AWS call (the first and four retries). AWS throttles and fails calls now and
/// then (`make chaos` fails one in five): with the SDK's standard retry mode (exponential
/// backoff with full jitter, and a retry quota so an outage is not hammered), five attempts
/// make a call that fails one time in five give up about once in 3,000.
pub const MAX_ATTEMPTS: u32 = 5;

/// The first retry waits up to this long (full jitter), doubling each time.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(200);

/// No retry waits longer than this: a step's retries stay well inside its Lambda timeout.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A connection that cannot be opened within this is retried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The retry policy of every client: standard mode, [`MAX_ATTEMPTS`], exponential backoff
/// from [`INITIAL_BACKOFF`] capped at [`MAX_BACKOFF`], with jitter.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(INITIAL_BACKOFF)
        .with_max_backoff(MAX_BACKOFF)
}

/// Loads the shared SDK configuration from the environment (region, credentials, endpoints),
/// with the retry policy of [`retry_config`] and a connect timeout.
pub async fn load_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .build(),
        )
        .load()
        .await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_a_client_is_built_then_it_retries_with_backoff_and_jitter() {
        let retry = retry_config();
        assert_eq!(retry.mode(), aws_config::retry::RetryMode::Standard);
        assert_eq!(retry.max_attempts(), MAX_ATTEMPTS);
        assert_eq!(retry.initial_backoff(), INITIAL_BACKOFF);
        assert_eq!(retry.max_backoff(), MAX_BACKOFF);
        // A call failing 1 in 5 gives up after all attempts 1 in 5^MAX_ATTEMPTS times.
        const _: () = assert!(
            MAX_ATTEMPTS >= 4,
            "a call failing 1 in 5 must rarely give up"
        );
    }

    #[tokio::test]
    async fn when_the_config_is_loaded_then_every_client_gets_the_retry_policy() {
        let config = load_config().await;
        let retry = config.retry_config().expect("a retry config");
        assert_eq!(retry.max_attempts(), MAX_ATTEMPTS);
        assert_eq!(
            config.timeout_config().and_then(|t| t.connect_timeout()),
            Some(CONNECT_TIMEOUT)
        );
    }
}
