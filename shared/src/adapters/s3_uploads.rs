//! [`UploadListing`] on S3: the open multipart uploads of a bucket, for the sweep.

use aws_sdk_s3::Client;
use time::OffsetDateTime;

use super::classify;
use crate::error::Result;
use crate::ports::{ListedUpload, UploadListing};

/// [`UploadListing`] on an S3 client (aborting is [`super::s3::S3ObjectStore`]'s).
#[derive(Debug, Clone)]
pub struct S3UploadListing {
    client: Client,
}

impl S3UploadListing {
    /// Wraps `client` (built with [`crate::aws::s3_client`]).
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl UploadListing for S3UploadListing {
    async fn open_uploads(&self, bucket: &str) -> Result<Vec<ListedUpload>> {
        let mut out = Vec::new();
        let mut key_marker: Option<String> = None;
        let mut upload_id_marker: Option<String> = None;
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(bucket)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(upload_id_marker.take())
                .send()
                .await
                .map_err(|e| classify(&format!("ListMultipartUploads {bucket}"), e))?;
            for u in page.uploads() {
                let (Some(key), Some(upload_id)) = (u.key(), u.upload_id()) else {
                    continue;
                };
                // An upload without a start time is treated as just started: never aborted
                // on a guess.
                let initiated = u
                    .initiated()
                    .and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok())
                    .unwrap_or_else(OffsetDateTime::now_utc);
                out.push(ListedUpload {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                    upload_id: upload_id.to_string(),
                    initiated,
                });
            }
            if page.is_truncated() == Some(true) {
                key_marker = page.next_key_marker().map(str::to_string);
                upload_id_marker = page.next_upload_id_marker().map(str::to_string);
                if key_marker.is_none() {
                    break;
                }
            } else {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::operation::list_multipart_uploads::ListMultipartUploadsOutput;
    use aws_sdk_s3::types::MultipartUpload;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    fn upload(key: &str, id: &str, secs: i64) -> MultipartUpload {
        MultipartUpload::builder()
            .key(key)
            .upload_id(id)
            .initiated(aws_smithy_types::DateTime::from_secs(secs))
            .build()
    }

    #[tokio::test]
    async fn when_uploads_span_pages_then_every_page_is_read_with_its_start_time() {
        let first = mock!(Client::list_multipart_uploads)
            .match_requests(|r| r.bucket() == Some("staging") && r.key_marker().is_none())
            .then_output(|| {
                ListMultipartUploadsOutput::builder()
                    .uploads(upload("ws/req-1/a.bin", "u1", 1_700_000_000))
                    .is_truncated(true)
                    .next_key_marker("ws/req-1/a.bin")
                    .next_upload_id_marker("u1")
                    .build()
            });
        let second = mock!(Client::list_multipart_uploads)
            .match_requests(|r| {
                r.key_marker() == Some("ws/req-1/a.bin") && r.upload_id_marker() == Some("u1")
            })
            .then_output(|| {
                ListMultipartUploadsOutput::builder()
                    .uploads(upload("ws/req-2/b.bin", "u2", 1_700_000_100))
                    .is_truncated(false)
                    .build()
            });
        let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&first, &second]);
        let found = S3UploadListing::new(client)
            .open_uploads("staging")
            .await
            .unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].upload_id, "u2");
        assert_eq!(found[0].initiated.unix_timestamp(), 1_700_000_000);
    }

    #[tokio::test]
    async fn when_s3_throttles_then_listing_is_transient() {
        let slow = mock!(Client::list_multipart_uploads).then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(503).unwrap(),
                aws_smithy_types::body::SdkBody::from("<Error><Code>SlowDown</Code></Error>"),
            )
        });
        let client = mock_client!(aws_sdk_s3, [&slow]);
        let err = S3UploadListing::new(client)
            .open_uploads("staging")
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "TransientError");
    }
}
