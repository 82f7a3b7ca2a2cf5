//! [`DownloadLinks`] with S3 presigned `GetObject` URLs.
//!
//! Presigning is local (SigV4 with the function's credentials): no request reaches S3 until
//! the reviewer's browser follows the link. The URL is a bearer credential for its lifetime,
//! so it is never logged.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::Client;

use super::classify;
use crate::error::{EgressError, Result};
use crate::ports::DownloadLinks;

/// The file name browsers save the archive as (the web app's own name for it).
const DOWNLOAD_FILE_NAME: &str = "egress_data.zip";

/// Presigns with one S3 client (path-style when a local endpoint is configured, see
/// [`crate::aws::s3_client`]).
#[derive(Debug, Clone)]
pub struct S3DownloadLinks {
    client: Client,
}

impl S3DownloadLinks {
    /// Wraps `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl DownloadLinks for S3DownloadLinks {
    async fn presign_get(&self, bucket: &str, key: &str, expires_in: Duration) -> Result<String> {
        let config = PresigningConfig::expires_in(expires_in).map_err(|e| {
            EgressError::Config(format!(
                "download URL expiry {expires_in:?} is not valid: {e}"
            ))
        })?;
        let request = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            // The web app's `download` attribute is ignored across origins; this header
            // makes the browser save the file under the expected name.
            .response_content_disposition(format!("attachment; filename=\"{DOWNLOAD_FILE_NAME}\""))
            .presigned(config)
            .await
            .map_err(|e| classify("presigning GetObject", e))?;
        Ok(request.uri().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

    fn client() -> Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-2"))
            .credentials_provider(Credentials::new(
                "AKIDEXAMPLE",
                "secret",
                None,
                None,
                "test",
            ))
            .force_path_style(true)
            .endpoint_url("http://localhost:4566")
            .build();
        Client::from_conf(config)
    }

    fn query_param(url: &str, name: &str) -> Option<String> {
        let query = url.split_once('?')?.1;
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(str::to_string))
    }

    #[tokio::test]
    async fn when_presigning_then_the_url_expires_as_configured() {
        let links = S3DownloadLinks::new(client());
        for secs in [60_u64, 300, 900] {
            let url = links
                .presign_get(
                    "datalake",
                    "approved_egress/ws/req/egress_data.zip",
                    Duration::from_secs(secs),
                )
                .await
                .unwrap();
            assert_eq!(
                query_param(&url, "X-Amz-Expires"),
                Some(secs.to_string()),
                "{secs}"
            );
            assert!(
                url.starts_with(
                    "http://localhost:4566/datalake/approved_egress/ws/req/egress_data.zip?"
                ),
                "path-style URL of the archive expected"
            );
            assert!(query_param(&url, "X-Amz-Signature").is_some());
            assert!(query_param(&url, "response-content-disposition").is_some());
        }
    }

    #[tokio::test]
    async fn when_the_expiry_is_beyond_what_s3_allows_then_it_is_a_config_error() {
        let err = S3DownloadLinks::new(client())
            .presign_get("b", "k", Duration::from_secs(8 * 24 * 3600))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "ConfigError");
    }
}
