//! S3 adapter of [`ObjectStore`].
//!
//! Every write is SSE-KMS with the destination's key (`CreateMultipartUpload` carries it for
//! multipart objects). Copies name the exact source version in `CopySource`. A missing
//! object, version or upload (404, modelled as `NoSuchKey`/`NotFound` or coded
//! `NoSuchVersion`/`NoSuchUpload`) becomes `NotFound` naming the key and version; a missing
//! *bucket* is a deployment error, not a missing object. Throttling (`SlowDown`, 503) and
//! 5xx are retried by the SDK and then reported as `Transient`.

use std::collections::HashMap;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::copy_object::builders::CopyObjectFluentBuilder;
use aws_sdk_s3::operation::copy_object::CopyObjectError;
use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumType, CompletedMultipartUpload, CompletedPart, CopyObjectResult,
    Delete, MetadataDirective, ObjectIdentifier, ServerSideEncryption, TaggingDirective,
};
use aws_sdk_s3::Client;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use bytes::Bytes;
use futures::stream;

use super::classify;
use crate::error::{EgressError, Result};
use crate::ports::{
    ByteChunks, CopyReceipt, Destination, ListCursor, ListedObject, MultipartUpload, ObjectHead,
    ObjectPage, ObjectRef, ObjectStore, OpenUpload, UploadedPart, VersionPage, VersionedKey,
    MAX_DELETE_BATCH,
};

/// Error codes of `DeleteObjects` per-key failures that a retry can fix.
const TRANSIENT_DELETE_CODES: &[&str] = &["SlowDown", "InternalError", "ServiceUnavailable"];

/// [`ObjectStore`] on an S3 client.
#[derive(Debug, Clone)]
pub struct S3ObjectStore {
    client: Client,
}

impl S3ObjectStore {
    /// Wraps `client` (built with [`crate::aws::s3_client`]).
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// True when S3 says the object, version or upload does not exist. `NoSuchBucket` is also a
/// 404, but it means the deployment is wrong, which a retry or the researcher cannot fix.
fn is_missing<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    matches!(err, SdkError::ServiceError(_))
        && err.raw_response().map(|r| r.status().as_u16()) == Some(404)
        && err.code() != Some("NoSuchBucket")
}

/// `bucket/key?versionId=v`, percent-encoded as `CopySource` requires.
fn copy_source(source: &ObjectRef) -> String {
    let mut out = format!("{}/{}", source.bucket, percent_encode(&source.key, true));
    if let Some(version) = &source.version_id {
        out.push_str("?versionId=");
        out.push_str(&percent_encode(version, false));
    }
    out
}

/// RFC 3986 encoding of everything but unreserved characters (and `/` in keys).
fn percent_encode(raw: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && byte == b'/')
        {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn metadata(map: &std::collections::BTreeMap<String, String>) -> Option<HashMap<String, String>> {
    (!map.is_empty()).then(|| map.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

fn size_of(length: Option<i64>) -> u64 {
    length.and_then(|l| u64::try_from(l).ok()).unwrap_or(0)
}

impl S3ObjectStore {
    async fn get(&self, object: &ObjectRef) -> Result<GetObjectOutput> {
        self.client
            .get_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .set_version_id(object.version_id.clone())
            .send()
            .await
            .map_err(|err| {
                let missing = matches!(err.as_service_error(), Some(GetObjectError::NoSuchKey(_)))
                    || is_missing(&err);
                if missing {
                    EgressError::NotFound(format!("object {object} does not exist"))
                } else {
                    classify(&format!("GetObject {object}"), err)
                }
            })
    }
}

impl S3ObjectStore {
    /// `CopyObject` of exactly `source` to `destination`, SSE-KMS with the destination's key.
    fn copy_request(
        &self,
        source: &ObjectRef,
        destination: &Destination,
    ) -> CopyObjectFluentBuilder {
        let replace_metadata =
            !destination.metadata.is_empty() || destination.content_type.is_some();
        let request = self
            .client
            .copy_object()
            .bucket(&destination.bucket)
            .key(&destination.key)
            .copy_source(copy_source(source))
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&destination.kms_key_arn)
            // Source tags are not copied: staging needs none, and copying them would need
            // tagging permissions on both buckets.
            .tagging_directive(TaggingDirective::Replace);
        if replace_metadata {
            request
                .metadata_directive(MetadataDirective::Replace)
                .set_metadata(metadata(&destination.metadata))
                .set_content_type(destination.content_type.clone())
        } else {
            request
        }
    }
}

/// A failed `CopyObject`: a missing source object or version (the copy's own 404, with no
/// `HeadObject` before it) is `NotFound` naming the key and version.
fn copy_error(
    source: &ObjectRef,
    destination: &Destination,
    err: SdkError<CopyObjectError, HttpResponse>,
) -> EgressError {
    if is_missing(&err) {
        EgressError::NotFound(format!("object {source} does not exist"))
    } else {
        classify(
            &format!("CopyObject {source} to {:?}", destination.key),
            err,
        )
    }
}

/// The SHA-256 S3 computed over the whole copy, as lower-case hex. A composite checksum (a
/// checksum of part checksums, marked `COMPOSITE` or suffixed `-<parts>`) is not one: it is
/// refused, and so is anything that does not decode to 32 bytes.
fn full_object_sha256(result: &CopyObjectResult) -> Option<String> {
    if result.checksum_type() == Some(&ChecksumType::Composite) {
        return None;
    }
    let digest = aws_smithy_types::base64::decode(result.checksum_sha256()?).ok()?;
    (digest.len() == 32).then(|| hex::encode(digest))
}

/// A body as chunks; ends after the first error (a body that failed mid-way cannot resume).
fn body_chunks(body: ByteStream, name: String) -> ByteChunks {
    let chunks = stream::unfold(Some(body), move |body| {
        let name = name.clone();
        async move {
            let mut body = body?;
            match body.next().await {
                None => None,
                Some(Ok(chunk)) => Some((Ok(chunk), Some(body))),
                Some(Err(e)) => Some((
                    Err(EgressError::Transient(format!(
                        "reading {name} failed: {e}"
                    ))),
                    None,
                )),
            }
        }
    });
    Box::pin(chunks)
}

impl ObjectStore for S3ObjectStore {
    async fn get_tags(
        &self,
        object: &ObjectRef,
    ) -> Result<std::collections::BTreeMap<String, String>> {
        let out = self
            .client
            .get_object_tagging()
            .bucket(&object.bucket)
            .key(&object.key)
            .set_version_id(object.version_id.clone())
            .send()
            .await
            .map_err(|err| {
                if is_missing(&err) {
                    EgressError::NotFound(format!("object {object} does not exist"))
                } else {
                    classify(&format!("GetObjectTagging {object}"), err)
                }
            })?;
        Ok(out
            .tag_set()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect())
    }

    async fn head(&self, object: &ObjectRef) -> Result<Option<ObjectHead>> {
        let result = self
            .client
            .head_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .set_version_id(object.version_id.clone())
            .send()
            .await;
        match result {
            Ok(out) => Ok(Some(ObjectHead {
                size: size_of(out.content_length()),
                version_id: out.version_id().map(str::to_string),
                e_tag: out.e_tag().map(str::to_string),
                metadata: out
                    .metadata()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
            })),
            Err(err) => {
                let status = err.raw_response().map(|r| r.status().as_u16());
                // HEAD has no body, so a missing object is only a 404 (modelled `NotFound`);
                // a version that is a delete marker answers 405.
                let missing = matches!(err.as_service_error(), Some(HeadObjectError::NotFound(_)))
                    || is_missing(&err)
                    || (status == Some(405) && object.version_id.is_some());
                if missing {
                    Ok(None)
                } else {
                    Err(classify(&format!("HeadObject {object}"), err))
                }
            }
        }
    }

    async fn get_bytes(&self, object: &ObjectRef, max_bytes: u64) -> Result<Bytes> {
        let out = self.get(object).await?;
        let too_big = |size: u64| {
            EgressError::validation(format!(
                "object {object} is {size} bytes, more than the {max_bytes} allowed"
            ))
        };
        if let Some(length) = out.content_length() {
            if size_of(Some(length)) > max_bytes {
                return Err(too_big(size_of(Some(length))));
            }
        }
        let data = out
            .body
            .collect()
            .await
            .map_err(|e| EgressError::Transient(format!("reading {object} failed: {e}")))?
            .into_bytes();
        if data.len() as u64 > max_bytes {
            return Err(too_big(data.len() as u64));
        }
        Ok(data)
    }

    async fn get_stream(&self, object: &ObjectRef) -> Result<ByteChunks> {
        let out = self.get(object).await?;
        Ok(body_chunks(out.body, object.to_string()))
    }

    async fn get_range(
        &self,
        object: &ObjectRef,
        range: std::ops::Range<u64>,
    ) -> Result<ByteChunks> {
        if range.start >= range.end {
            return Ok(Box::pin(stream::empty()));
        }
        let out = self
            .client
            .get_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .set_version_id(object.version_id.clone())
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await
            .map_err(|err| {
                let status = err.raw_response().map(|r| r.status().as_u16());
                if matches!(err.as_service_error(), Some(GetObjectError::NoSuchKey(_)))
                    || is_missing(&err)
                {
                    EgressError::NotFound(format!("object {object} does not exist"))
                } else if status == Some(416) {
                    // The object ends before the range starts: it is shorter than expected.
                    EgressError::Integrity(format!(
                        "object {object} ends before byte {}",
                        range.start
                    ))
                } else {
                    classify(&format!("GetObject {object} bytes {range:?}"), err)
                }
            })?;
        Ok(body_chunks(out.body, object.to_string()))
    }

    async fn put_bytes(&self, destination: &Destination, body: Bytes) -> Result<Option<String>> {
        let checksum = match &destination.sha256 {
            Some(sha256) => Some(aws_smithy_types::base64::encode(
                hex::decode(sha256).map_err(|_| {
                    EgressError::Internal(format!(
                        "PutObject of {:?}: {sha256:?} is not a hex SHA-256",
                        destination.key
                    ))
                })?,
            )),
            None => None,
        };
        let out = self
            .client
            .put_object()
            .bucket(&destination.bucket)
            .key(&destination.key)
            .body(ByteStream::from(body))
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&destination.kms_key_arn)
            .set_metadata(metadata(&destination.metadata))
            .set_content_type(destination.content_type.clone())
            .set_checksum_sha256(checksum)
            .send()
            .await
            .map_err(|e| {
                let what = format!(
                    "PutObject s3://{}/{:?}",
                    destination.bucket, destination.key
                );
                // S3's answer when the body it received does not hash to the SHA-256 sent.
                if e.code() == Some("BadDigest") {
                    EgressError::Integrity(format!(
                        "{what}: S3 received bytes whose SHA-256 is not the one computed here"
                    ))
                } else {
                    classify(&what, e)
                }
            })?;
        Ok(out.version_id().map(str::to_string))
    }

    async fn copy(&self, source: &ObjectRef, destination: &Destination) -> Result<()> {
        self.copy_request(source, destination)
            .send()
            .await
            .map_err(|err| copy_error(source, destination, err))?;
        Ok(())
    }

    async fn copy_with_sha256(
        &self,
        source: &ObjectRef,
        destination: &Destination,
    ) -> Result<CopyReceipt> {
        let out = self
            .copy_request(source, destination)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .send()
            .await
            .map_err(|err| copy_error(source, destination, err))?;
        Ok(CopyReceipt {
            sha256: out.copy_object_result().and_then(full_object_sha256),
        })
    }

    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<&str>,
    ) -> Result<ObjectPage> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(continuation.map(str::to_string))
            .send()
            .await
            .map_err(|e| classify(&format!("ListObjectsV2 {bucket}/{prefix:?}"), e))?;
        let objects = out
            .contents()
            .iter()
            .filter_map(|o| {
                Some(ListedObject {
                    key: o.key()?.to_string(),
                    size: size_of(o.size()),
                })
            })
            .collect();
        let next = out
            .next_continuation_token()
            .filter(|_| out.is_truncated() == Some(true))
            .map(str::to_string);
        Ok(ObjectPage { objects, next })
    }

    async fn create_multipart(&self, destination: &Destination) -> Result<MultipartUpload> {
        let what = format!(
            "CreateMultipartUpload s3://{}/{:?}",
            destination.bucket, destination.key
        );
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&destination.bucket)
            .key(&destination.key)
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&destination.kms_key_arn)
            .set_metadata(metadata(&destination.metadata))
            .set_content_type(destination.content_type.clone())
            .send()
            .await
            .map_err(|e| classify(&what, e))?;
        let upload_id = out
            .upload_id()
            .ok_or_else(|| EgressError::Internal(format!("{what}: no upload id returned")))?;
        Ok(MultipartUpload {
            bucket: destination.bucket.clone(),
            key: destination.key.clone(),
            upload_id: upload_id.to_string(),
        })
    }

    async fn upload_part(
        &self,
        upload: &MultipartUpload,
        part_number: i32,
        body: Bytes,
    ) -> Result<UploadedPart> {
        let what = format!("UploadPart {part_number} of {:?}", upload.key);
        let length = i64::try_from(body.len())
            .map_err(|_| EgressError::Internal(format!("{what}: part too large")))?;
        let out = self
            .client
            .upload_part()
            .bucket(&upload.bucket)
            .key(&upload.key)
            .upload_id(&upload.upload_id)
            .part_number(part_number)
            .content_length(length)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| classify(&what, e))?;
        let e_tag = out
            .e_tag()
            .ok_or_else(|| EgressError::Internal(format!("{what}: no ETag returned")))?;
        Ok(UploadedPart {
            part_number,
            e_tag: e_tag.to_string(),
        })
    }

    async fn upload_part_copy(
        &self,
        upload: &MultipartUpload,
        part_number: i32,
        source: &ObjectRef,
        range: std::ops::Range<u64>,
    ) -> Result<UploadedPart> {
        let what = format!("UploadPartCopy {part_number} of {source}");
        if range.start >= range.end {
            return Err(EgressError::Internal(format!("{what}: empty range")));
        }
        let out = self
            .client
            .upload_part_copy()
            .bucket(&upload.bucket)
            .key(&upload.key)
            .upload_id(&upload.upload_id)
            .part_number(part_number)
            .copy_source(copy_source(source))
            .copy_source_range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await
            .map_err(|err| {
                if is_missing(&err) {
                    EgressError::NotFound(format!("object {source} does not exist"))
                } else {
                    classify(&what, err)
                }
            })?;
        let e_tag = out
            .copy_part_result()
            .and_then(|r| r.e_tag())
            .ok_or_else(|| EgressError::Internal(format!("{what}: no ETag returned")))?;
        Ok(UploadedPart {
            part_number,
            e_tag: e_tag.to_string(),
        })
    }

    async fn complete_multipart(
        &self,
        upload: &MultipartUpload,
        parts: &[UploadedPart],
    ) -> Result<()> {
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|p| {
                        CompletedPart::builder()
                            .part_number(p.part_number)
                            .e_tag(&p.e_tag)
                            .build()
                    })
                    .collect(),
            ))
            .build();
        self.client
            .complete_multipart_upload()
            .bucket(&upload.bucket)
            .key(&upload.key)
            .upload_id(&upload.upload_id)
            .multipart_upload(completed)
            .send()
            .await
            .map_err(|e| classify(&format!("CompleteMultipartUpload {:?}", upload.key), e))?;
        Ok(())
    }

    async fn abort_multipart(&self, upload: &MultipartUpload) -> Result<()> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&upload.bucket)
            .key(&upload.key)
            .upload_id(&upload.upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Already gone (aborted, or completed after all): nothing is left to discard.
            Err(err) if is_missing(&err) => Ok(()),
            Err(err) => Err(classify(
                &format!("AbortMultipartUpload {:?}", upload.key),
                err,
            )),
        }
    }

    async fn list_multipart_uploads(&self, bucket: &str, prefix: &str) -> Result<Vec<OpenUpload>> {
        let what = format!("ListMultipartUploads s3://{bucket}/{prefix:?}");
        let mut open = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let out = self
                .client
                .list_multipart_uploads()
                .bucket(bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| classify(&what, e))?;
            for u in out.uploads() {
                if let (Some(key), Some(upload_id)) = (u.key(), u.upload_id()) {
                    open.push(OpenUpload {
                        upload: MultipartUpload {
                            bucket: bucket.to_string(),
                            key: key.to_string(),
                            upload_id: upload_id.to_string(),
                        },
                        initiated: u.initiated().map(|t| t.secs()),
                    });
                }
            }
            if out.is_truncated() != Some(true) {
                return Ok(open);
            }
            key_marker = out.next_key_marker().map(str::to_string);
            id_marker = out.next_upload_id_marker().map(str::to_string);
            if key_marker.is_none() && id_marker.is_none() {
                return Err(EgressError::Internal(format!(
                    "{what}: truncated without a marker to go on from"
                )));
            }
        }
    }

    async fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        cursor: Option<&ListCursor>,
    ) -> Result<VersionPage> {
        let what = format!("ListObjectVersions s3://{bucket}/{prefix:?}");
        let out = self
            .client
            .list_object_versions()
            .bucket(bucket)
            .prefix(prefix)
            .max_keys(MAX_DELETE_BATCH as i32)
            .set_key_marker(cursor.map(|c| c.key_marker.clone()))
            .set_version_id_marker(cursor.and_then(|c| c.version_id_marker.clone()))
            .send()
            .await
            .map_err(|e| classify(&what, e))?;
        let versions = out.versions().iter().map(|v| (v.key(), v.version_id()));
        let markers = out
            .delete_markers()
            .iter()
            .map(|m| (m.key(), m.version_id()));
        let objects = versions
            .chain(markers)
            .filter_map(|(key, version)| {
                key.map(|k| VersionedKey {
                    key: k.to_string(),
                    version_id: version.map(str::to_string),
                })
            })
            .collect();
        let next = if out.is_truncated().unwrap_or(false) {
            let key_marker = out.next_key_marker().ok_or_else(|| {
                EgressError::Internal(format!("{what}: truncated listing without a next marker"))
            })?;
            Some(ListCursor {
                key_marker: key_marker.to_string(),
                version_id_marker: out.next_version_id_marker().map(str::to_string),
            })
        } else {
            None
        };
        Ok(VersionPage { objects, next })
    }

    async fn delete_versions(&self, bucket: &str, objects: &[VersionedKey]) -> Result<()> {
        let what = format!("DeleteObjects in {bucket}");
        if objects.is_empty() {
            return Ok(());
        }
        if objects.len() > MAX_DELETE_BATCH {
            return Err(EgressError::Internal(format!(
                "{what}: {} keys in one batch, S3 takes at most {MAX_DELETE_BATCH}",
                objects.len()
            )));
        }
        let identifiers = objects
            .iter()
            .map(|o| {
                ObjectIdentifier::builder()
                    .key(&o.key)
                    .set_version_id(o.version_id.clone())
                    .build()
                    .map_err(|e| EgressError::Internal(format!("{what}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let delete = Delete::builder()
            .set_objects(Some(identifiers))
            .quiet(true)
            .build()
            .map_err(|e| EgressError::Internal(format!("{what}: {e}")))?;
        let out = self
            .client
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| classify(&what, e))?;
        let failures = out.errors();
        if failures.is_empty() {
            return Ok(());
        }
        let named: Vec<String> = failures
            .iter()
            .map(|f| {
                format!(
                    "{:?} (version {}: {}: {})",
                    f.key().unwrap_or_default(),
                    f.version_id().unwrap_or("-"),
                    f.code().unwrap_or("unknown"),
                    f.message().unwrap_or_default()
                )
            })
            .collect();
        let message = format!(
            "{what} could not delete {} object(s): {}",
            failures.len(),
            named.join(", ")
        );
        let retryable = failures.iter().all(|f| {
            f.code()
                .is_some_and(|c| TRANSIENT_DELETE_CODES.contains(&c))
        });
        Err(if retryable {
            EgressError::Transient(message)
        } else {
            EgressError::Internal(message)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::multipart::{upload_stream, BufferGauge, UploadSettings};
    use aws_sdk_s3::config::{AsyncSleep, SharedAsyncSleep, Sleep};
    use aws_sdk_s3::operation::abort_multipart_upload::AbortMultipartUploadOutput;
    use aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput;
    use aws_sdk_s3::operation::copy_object::CopyObjectOutput;
    use aws_sdk_s3::operation::create_multipart_upload::CreateMultipartUploadOutput;
    use aws_sdk_s3::operation::delete_objects::DeleteObjectsOutput;
    use aws_sdk_s3::operation::head_object::HeadObjectOutput;
    use aws_sdk_s3::operation::list_object_versions::ListObjectVersionsOutput;
    use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
    use aws_sdk_s3::operation::put_object::PutObjectOutput;
    use aws_sdk_s3::operation::upload_part::UploadPartOutput;
    use aws_sdk_s3::types::error::{NoSuchKey, NotFound};
    use aws_sdk_s3::types::Object as S3Object;
    use aws_sdk_s3::types::{DeleteMarkerEntry, Error as S3Error, ObjectVersion};
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
    use std::io::Write;
    use std::time::Duration;

    const KMS: &str = "arn:aws:kms:eu-west-2:123456789012:key/1234abcd";

    /// Sleeps on tokio, so SDK retries back off for real (1 ms here).
    #[derive(Debug)]
    struct TokioSleep;
    impl AsyncSleep for TokioSleep {
        fn sleep(&self, duration: Duration) -> Sleep {
            Sleep::new(tokio::time::sleep(duration))
        }
    }

    fn retrying(builder: aws_sdk_s3::config::Builder) -> aws_sdk_s3::config::Builder {
        builder
            .retry_config(
                aws_sdk_s3::config::retry::RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
            .sleep_impl(SharedAsyncSleep::new(TokioSleep))
    }

    fn s3_error_xml(code: &str, message: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message><RequestId>R</RequestId></Error>"#
        )
    }

    /// S3's 404 answer with error `code`, as CopyObject gives it for a missing version or bucket.
    fn not_found(code: &str, message: &str) -> aws_smithy_runtime_api::http::Response {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(404).unwrap(),
            aws_smithy_types::body::SdkBody::from(s3_error_xml(code, message)),
        )
    }

    /// A copy whose names do not matter to the test.
    fn any_copy() -> (ObjectRef, Destination) {
        let source = ObjectRef::at_version("egress", "k", "v");
        (source, Destination::new("staging", "k", KMS))
    }

    /// A copy of version `v-gone` of `ws/a.csv`, with the 404 S3 gives for it.
    fn copy_of_a_gone_version() -> (ObjectRef, Destination, Rule) {
        let copy = mock!(Client::copy_object).then_http_response(|| {
            not_found("NoSuchVersion", "The specified version does not exist.")
        });
        let destination = Destination::new("staging", "ws/req/a.csv", KMS);
        let source = ObjectRef::at_version("egress", "ws/a.csv", "v-gone");
        (source, destination, copy)
    }

    #[tokio::test]
    async fn when_the_key_does_not_exist_then_get_is_not_found_naming_the_key() {
        let get = mock!(Client::get_object)
            .then_error(|| GetObjectError::NoSuchKey(NoSuchKey::builder().build()));
        let store = S3ObjectStore::new(mock_client!(aws_sdk_s3, [&get]));
        let err = store
            .get_bytes(&ObjectRef::new("notify", "store/ver1.json"), 1024)
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "NotFound");
        assert!(err.to_string().contains("store/ver1.json"), "{err}");
    }

    #[tokio::test]
    async fn when_a_listed_version_is_missing_then_head_finds_nothing() {
        let head = mock!(Client::head_object)
            .match_requests(|r| r.version_id() == Some("v-gone"))
            .then_error(|| HeadObjectError::NotFound(NotFound::builder().build()));
        let store = S3ObjectStore::new(mock_client!(aws_sdk_s3, [&head]));
        let found = store
            .head(&ObjectRef::at_version("egress", "ws/a.csv", "v-gone"))
            .await
            .unwrap();
        assert_eq!(found, None);
        assert_eq!(head.num_calls(), 1);
    }

    #[tokio::test]
    async fn when_copying_a_missing_version_then_the_error_is_not_found_naming_key_and_version() {
        let (source, destination, copy) = copy_of_a_gone_version();
        let store = S3ObjectStore::new(mock_client!(aws_sdk_s3, [&copy]));
        let err = store.copy(&source, &destination).await.unwrap_err();
        assert_eq!(err.error_type(), "NotFound");
        let text = err.to_string();
        assert!(
            text.contains("ws/a.csv") && text.contains("v-gone"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn when_the_bucket_is_missing_then_it_is_not_reported_as_a_missing_object() {
        let copy = mock!(Client::copy_object)
            .then_http_response(|| not_found("NoSuchBucket", "no bucket"));
        let store = S3ObjectStore::new(mock_client!(aws_sdk_s3, [&copy]));
        let (source, destination) = any_copy();
        let err = store.copy(&source, &destination).await.unwrap_err();
        assert_eq!(err.error_type(), "InternalError");
    }

    #[tokio::test]
    async fn when_copying_then_copy_source_names_the_version_and_sse_kms_is_set() {
        let copy = mock!(Client::copy_object)
            .match_requests(|r| {
                r.copy_source() == Some("egress/ws-1/results%20v2/a%2Bb.csv?versionId=3%2FL4kq%3D")
                    && r.bucket() == Some("staging")
                    && r.key() == Some("ws-1/req-1/results v2/a+b.csv")
                    && r.server_side_encryption() == Some(&ServerSideEncryption::AwsKms)
                    && r.ssekms_key_id() == Some(KMS)
                    && r.tagging_directive() == Some(&TaggingDirective::Replace)
            })
            .then_output(|| CopyObjectOutput::builder().build());
        let store = S3ObjectStore::new(mock_client!(aws_sdk_s3, [&copy]));
        store
            .copy(
                &ObjectRef::at_version("egress", "ws-1/results v2/a+b.csv", "3/L4kq="),
                &Destination::new("staging", "ws-1/req-1/results v2/a+b.csv", KMS),
            )
            .await
            .unwrap();
        assert_eq!(copy.num_calls(), 1);
    }

    #[tokio::test]
    async fn when_copying_with_sha256_then_s3_is_asked_for_it_and_its_digest_is_returned_as_hex() {
        // SHA-256 of "abc".
        let digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let copy = mock!(Client::copy_object)
            .match_requests(|r| {
                r.checksum_algorithm() == Some(&ChecksumAlgorithm::Sha256)
                    && r.copy_source() == Some("egress/ws-1/a.csv?versionId=v1")
                    && r.ssekms_key_id() == Some(KMS)
            })
            .then_output(|| {
                CopyObjectOutput::builder()
                    .copy_object_result(
                        CopyObjectResult::builder()
                            .checksum_sha256("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=")
                            .checksum_type(ChecksumType::FullObject)
                            .build(),
                    )
                    .build()
            });
        let store = S3ObjectStore::new(mock_client!(aws_sdk_s3, [&copy]));
        let receipt = store
            .copy_with_sha256(
                &ObjectRef::at_version("egress", "ws-1/a.csv", "v1"),
                &Destination::new("staging", "ws-1/req-1/a.csv", KMS),
            )
            .await
            .unwrap();
        assert_eq!(receipt.sha256.as_deref(), Some(digest));
        assert_eq!(copy.num_calls(), 1);
    }

    #[tokio::test]
    async fn when_s3_gives_a_composite_or_no_sha256_then_none_is_trusted() {
        let results = [
            CopyObjectResult::builder()
                .checksum_sha256("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=")
                .checksum_type(ChecksumType::Composite)
                .build(),
            CopyObjectResult::builder()
                .checksum_sha256("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=-3")
                .build(),
            CopyObjectResult::builder()
                .checksum_crc32("AAAAAA==")
                .build(),
        ];
        for result in results {
            let copy = mock!(Client::copy_object).then_output(move || {
                CopyObjectOutput::builder()
                    .copy_object_result(result.clone())
                    .build()
            });
            let store = S3ObjectStore::new(mock_client!(aws_sdk_s3, [&copy]));
            let (source, destination) = any_copy();
            let receipt = store.copy_with_sha256(&source, &destination).await;
            let receipt = receipt.unwrap();
            assert_eq!(receipt.sha256, None);
        }
    }

    #[tokio::test]
    async fn when_copying_with_sha256_a_missing_version_then_the_error_is_not_found() {
        let (source, destination, copy) = copy_of_a_gone_version();
        let store = S3ObjectStore::new(mock_client!(aws_sdk_s3, [&copy]));
        let err = store
            .copy_with_sha256(&source, &destination)
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "NotFound");
        assert!(err.to_string().contains("v-gone"), "{err}");
    }

    #[tokio::test]
    async fn when_listing_objects_then_sizes_and_the_next_page_are_returned() {
        let list = mock!(Client::list_objects_v2)
            .match_requests(|r| {
                r.bucket() == Some("staging")
                    && r.prefix() == Some("ws-1/req-1/")
                    && r.continuation_token() == Some("page-2")
            })
            .then_output(|| {
                ListObjectsV2Output::builder()
                    .contents(S3Object::builder().key("ws-1/req-1/a.csv").size(12).build())
                    .contents(S3Object::builder().key("ws-1/req-1/b.csv").size(0).build())
                    .is_truncated(true)
                    .next_continuation_token("page-3")
                    .build()
            });
        let store = S3ObjectStore::new(mock_client!(aws_sdk_s3, [&list]));
        let page = store
            .list_objects("staging", "ws-1/req-1/", Some("page-2"))
            .await
            .unwrap();
        assert_eq!(
            page.objects,
            vec![
                ListedObject {
                    key: "ws-1/req-1/a.csv".into(),
                    size: 12
                },
                ListedObject {
                    key: "ws-1/req-1/b.csv".into(),
                    size: 0
                }
            ]
        );
        assert_eq!(page.next.as_deref(), Some("page-3"));
    }

    #[tokio::test]
    async fn when_s3_slows_down_then_the_sdk_retries_and_succeeds() {
        let copy = mock!(Client::copy_object)
            .sequence()
            .http_status(
                503,
                Some(s3_error_xml("SlowDown", "Please reduce your request rate.")),
            )
            .output(|| CopyObjectOutput::builder().build())
            .build();
        let client = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&copy], retrying);
        let (source, destination) = any_copy();
        let store = S3ObjectStore::new(client);
        store.copy(&source, &destination).await.unwrap();
        assert_eq!(copy.num_calls(), 2);
    }

    #[tokio::test]
    async fn when_s3_keeps_slowing_down_then_the_error_is_transient() {
        let head = mock!(Client::head_object)
            .sequence()
            .http_status(503, None)
            .times(3)
            .build();
        let client = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&head], retrying);
        let err = S3ObjectStore::new(client)
            .head(&ObjectRef::at_version("egress", "k", "v"))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "TransientError");
        assert_eq!(head.num_calls(), 3);
    }

    #[tokio::test]
    async fn when_writing_small_objects_then_sse_kms_and_metadata_are_set() {
        let put = mock!(Client::put_object)
            .match_requests(|r| {
                r.server_side_encryption() == Some(&ServerSideEncryption::AwsKms)
                    && r.ssekms_key_id() == Some(KMS)
                    && r.content_type() == Some("application/json")
            })
            .then_output(|| PutObjectOutput::builder().version_id("mv-1").build());
        let store = S3ObjectStore::new(mock_client!(aws_sdk_s3, [&put]));
        let version = store
            .put_bytes(
                &Destination::new("staging", ".manifests/ws/req.json", KMS)
                    .with_content_type("application/json"),
                Bytes::from_static(b"{}"),
            )
            .await
            .unwrap();
        assert_eq!(version.as_deref(), Some("mv-1"));
    }

    #[tokio::test]
    async fn when_a_body_is_written_with_its_sha256_then_s3_checks_it_and_a_bad_digest_is_integrity(
    ) {
        // SHA-256 of "abc", hex and as S3 wants it (base64).
        const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        const ABC_B64: &str = "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=";
        let put = mock!(Client::put_object)
            .match_requests(|r| r.checksum_sha256() == Some(ABC_B64))
            .then_output(|| PutObjectOutput::builder().version_id("v-1").build());
        let store = S3ObjectStore::new(mock_client!(aws_sdk_s3, [&put]));
        let destination = Destination::new("staging", "ws/req/a.csv", KMS).with_sha256(ABC);
        let version = store
            .put_bytes(&destination, Bytes::from_static(b"abc"))
            .await
            .unwrap();
        assert_eq!(version.as_deref(), Some("v-1"));

        let refused = mock!(Client::put_object).then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
                aws_smithy_types::body::SdkBody::from(s3_error_xml(
                    "BadDigest",
                    "The SHA256 you specified did not match the calculated checksum.",
                )),
            )
        });
        let store = S3ObjectStore::new(mock_client!(aws_sdk_s3, [&refused]));
        let err = store
            .put_bytes(&destination, Bytes::from_static(b"abd"))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "IntegrityError");
        assert!(err.to_string().contains("ws/req/a.csv"), "{err}");
    }

    /// Streams `writes` into `destination` in parts of `part_size`, sending the full parts
    /// after each write; the size uploaded.
    async fn upload(
        store: &S3ObjectStore,
        destination: &Destination,
        part_size: usize,
        concurrency: usize,
        writes: Vec<Vec<u8>>,
    ) -> Result<u64> {
        let settings = UploadSettings {
            part_size,
            concurrency,
        };
        let gauge = BufferGauge::default();
        let sent = upload_stream(
            store,
            destination,
            settings,
            &gauge,
            |mut sink| async move {
                for write in writes {
                    sink.write_all(&write)
                        .map_err(|e| EgressError::Internal(e.to_string()))?;
                    sink.send_full_parts().await?;
                }
                Ok(((), sink.finish().await?))
            },
        );
        Ok(sent.await?.1)
    }

    #[tokio::test]
    async fn when_a_part_upload_fails_then_the_multipart_upload_is_aborted() {
        let create = mock!(Client::create_multipart_upload)
            .match_requests(|r| {
                r.server_side_encryption() == Some(&ServerSideEncryption::AwsKms)
                    && r.ssekms_key_id() == Some(KMS)
                    && r.metadata()
                        .and_then(|m| m.get("egress-request-id"))
                        .map(String::as_str)
                        == Some("req-1")
            })
            .then_output(|| {
                CreateMultipartUploadOutput::builder()
                    .upload_id("up-1")
                    .build()
            });
        let part = mock!(Client::upload_part)
            .sequence()
            .output(|| UploadPartOutput::builder().e_tag("\"e1\"").build())
            .http_status(400, Some(s3_error_xml("InvalidRequest", "bad part")))
            .build();
        let abort = mock!(Client::abort_multipart_upload)
            .match_requests(|r| r.upload_id() == Some("up-1") && r.key() == Some("out.zip"))
            .then_output(|| AbortMultipartUploadOutput::builder().build());
        let complete = mock!(Client::complete_multipart_upload)
            .then_output(|| CompleteMultipartUploadOutput::builder().build());
        let client = mock_client!(
            aws_sdk_s3,
            RuleMode::MatchAny,
            [&create, &part, &abort, &complete]
        );
        let store = S3ObjectStore::new(client);
        let mut destination = Destination::new("datalake", "out.zip", KMS);
        destination
            .metadata
            .insert("egress-request-id".into(), "req-1".into());
        let writes = vec![vec![7u8; 700]; 5];
        let err = upload(&store, &destination, 1024, 1, writes)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("UploadPart 2"), "{err}");
        assert_eq!(create.num_calls(), 1);
        assert_eq!(abort.num_calls(), 1);
        assert_eq!(complete.num_calls(), 0);
    }

    #[tokio::test]
    async fn when_an_upload_succeeds_then_parts_are_completed_in_order() {
        let create = mock!(Client::create_multipart_upload).then_output(|| {
            CreateMultipartUploadOutput::builder()
                .upload_id("up-1")
                .build()
        });
        let part = mock!(Client::upload_part).then_compute_output(|r| {
            UploadPartOutput::builder()
                .e_tag(format!("\"e{}\"", r.part_number().unwrap_or(0)))
                .build()
        });
        let complete = mock!(Client::complete_multipart_upload)
            .match_requests(|r| {
                let parts = r.multipart_upload().map(|m| m.parts()).unwrap_or_default();
                parts.len() == 3
                    && parts.iter().enumerate().all(|(i, p)| {
                        p.part_number() == Some(i as i32 + 1)
                            && p.e_tag() == Some(format!("\"e{}\"", i + 1).as_str())
                    })
            })
            .then_output(|| CompleteMultipartUploadOutput::builder().build());
        // Once complete, the key's open uploads are listed (none left open here).
        let left_open = mock!(Client::list_multipart_uploads)
            .match_requests(|r| r.bucket() == Some("datalake") && r.prefix() == Some("out.zip"))
            .then_output(|| {
                aws_sdk_s3::operation::list_multipart_uploads::ListMultipartUploadsOutput::builder()
                    .build()
            });
        let client = mock_client!(
            aws_sdk_s3,
            RuleMode::MatchAny,
            [&create, &part, &complete, &left_open]
        );
        let store = S3ObjectStore::new(client);
        let destination = Destination::new("datalake", "out.zip", KMS);
        let size = upload(&store, &destination, 1000, 2, vec![vec![1u8; 2500]])
            .await
            .unwrap();
        assert_eq!(size, 2500);
        assert_eq!(part.num_calls(), 3);
        assert_eq!(complete.num_calls(), 1);
        assert_eq!(left_open.num_calls(), 1);
    }

    #[tokio::test]
    async fn when_listing_versions_then_versions_and_delete_markers_are_returned_with_a_cursor() {
        let list = mock!(Client::list_object_versions)
            .match_requests(|r| r.prefix() == Some("ws/req/") && r.key_marker() == Some("ws/req/a"))
            .then_output(|| {
                ListObjectVersionsOutput::builder()
                    .versions(
                        ObjectVersion::builder()
                            .key("ws/req/b")
                            .version_id("null")
                            .build(),
                    )
                    .delete_markers(
                        DeleteMarkerEntry::builder()
                            .key("ws/req/c")
                            .version_id("dm1")
                            .build(),
                    )
                    .is_truncated(true)
                    .next_key_marker("ws/req/c")
                    .next_version_id_marker("dm1")
                    .build()
            });
        let store = S3ObjectStore::new(mock_client!(aws_sdk_s3, [&list]));
        let cursor = ListCursor {
            key_marker: "ws/req/a".into(),
            version_id_marker: None,
        };
        let page = store
            .list_versions("staging", "ws/req/", Some(&cursor))
            .await
            .unwrap();
        assert_eq!(
            page.objects,
            vec![
                VersionedKey {
                    key: "ws/req/b".into(),
                    version_id: Some("null".into())
                },
                VersionedKey {
                    key: "ws/req/c".into(),
                    version_id: Some("dm1".into())
                },
            ]
        );
        assert_eq!(
            page.next,
            Some(ListCursor {
                key_marker: "ws/req/c".into(),
                version_id_marker: Some("dm1".into())
            })
        );
    }

    #[tokio::test]
    async fn when_delete_objects_reports_failures_then_the_error_names_the_keys() {
        let delete = mock!(Client::delete_objects)
            .match_requests(|r| {
                r.delete()
                    .is_some_and(|d| d.quiet() == Some(true) && d.objects().len() == 2)
            })
            .then_output(|| {
                DeleteObjectsOutput::builder()
                    .errors(
                        S3Error::builder()
                            .key("ws/req/locked.csv")
                            .version_id("null")
                            .code("AccessDenied")
                            .message("Access Denied")
                            .build(),
                    )
                    .build()
            });
        let store = S3ObjectStore::new(mock_client!(aws_sdk_s3, [&delete]));
        let batch = vec![
            VersionedKey {
                key: "ws/req/a.csv".into(),
                version_id: Some("null".into()),
            },
            VersionedKey {
                key: "ws/req/locked.csv".into(),
                version_id: Some("null".into()),
            },
        ];
        let err = store.delete_versions("staging", &batch).await.unwrap_err();
        assert_eq!(err.error_type(), "InternalError");
        let text = err.to_string();
        assert!(
            text.contains("ws/req/locked.csv") && text.contains("AccessDenied"),
            "{text}"
        );
        assert!(!text.contains("ws/req/a.csv"), "{text}");
    }

    #[tokio::test]
    async fn when_an_archive_is_headed_then_size_and_metadata_are_read() {
        let head = mock!(Client::head_object).then_output(|| {
            HeadObjectOutput::builder()
                .content_length(1234)
                .metadata("egress-request-id", "req-1")
                .build()
        });
        let store = S3ObjectStore::new(mock_client!(aws_sdk_s3, [&head]));
        let found = store
            .head(&ObjectRef::new("datalake", "a.zip"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.size, 1234);
        assert_eq!(
            found.metadata.get("egress-request-id").map(String::as_str),
            Some("req-1")
        );
    }

    #[test]
    fn when_encoding_a_copy_source_then_only_unreserved_characters_stay() {
        assert_eq!(
            copy_source(&ObjectRef::at_version("b", "a/ü ?&=#%.csv", "x+y")),
            "b/a/%C3%BC%20%3F%26%3D%23%25.csv?versionId=x%2By"
        );
        assert_eq!(copy_source(&ObjectRef::new("b", "k")), "b/k");
    }

    #[tokio::test]
    async fn when_an_object_is_tagged_then_get_tags_returns_them_for_its_version() {
        use aws_sdk_s3::operation::get_object_tagging::GetObjectTaggingOutput;
        use aws_sdk_s3::types::Tag;
        let tagging = mock!(Client::get_object_tagging)
            .match_requests(|r| {
                r.bucket() == Some("staging")
                    && r.key() == Some("ws-1/req-1/a.csv")
                    && r.version_id() == Some("v1")
            })
            .then_output(|| {
                GetObjectTaggingOutput::builder()
                    .tag_set(
                        Tag::builder()
                            .key("GuardDutyMalwareScanStatus")
                            .value("THREATS_FOUND")
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap()
            });
        let store = S3ObjectStore::new(mock_client!(aws_sdk_s3, [&tagging]));
        let tags = store
            .get_tags(&ObjectRef::at_version("staging", "ws-1/req-1/a.csv", "v1"))
            .await
            .unwrap();
        assert_eq!(
            tags.get("GuardDutyMalwareScanStatus").map(String::as_str),
            Some("THREATS_FOUND")
        );
        assert_eq!(tagging.num_calls(), 1);
    }

    #[tokio::test]
    async fn when_a_tagged_object_is_missing_then_get_tags_is_not_found() {
        let tagging = mock!(Client::get_object_tagging)
            .then_http_response(|| not_found("NoSuchKey", "The specified key does not exist."));
        let store = S3ObjectStore::new(mock_client!(aws_sdk_s3, [&tagging]));
        let err = store
            .get_tags(&ObjectRef::new("staging", "ws-1/req-1/gone.csv"))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "NotFound", "{err}");
        assert!(err.to_string().contains("gone.csv"), "{err}");
    }

    #[tokio::test]
    async fn when_uploads_span_two_pages_then_every_open_upload_is_listed() {
        use aws_sdk_s3::operation::list_multipart_uploads::ListMultipartUploadsOutput;
        use aws_sdk_s3::types::MultipartUpload as S3Upload;
        let upload = |key: &str, id: &str| S3Upload::builder().key(key).upload_id(id).build();
        let first = mock!(aws_sdk_s3::Client::list_multipart_uploads)
            .match_requests(|r| r.key_marker().is_none() && r.prefix() == Some("ws/a.zip"))
            .then_output(move || {
                ListMultipartUploadsOutput::builder()
                    .uploads(upload("ws/a.zip", "u1"))
                    .is_truncated(true)
                    .next_key_marker("ws/a.zip")
                    .next_upload_id_marker("u1")
                    .build()
            });
        let second = mock!(aws_sdk_s3::Client::list_multipart_uploads)
            .match_requests(|r| r.upload_id_marker() == Some("u1"))
            .then_output(move || {
                ListMultipartUploadsOutput::builder()
                    .uploads(upload("ws/a.zip", "u2"))
                    .is_truncated(false)
                    .build()
            });
        let store = S3ObjectStore::new(mock_client!(
            aws_sdk_s3,
            RuleMode::MatchAny,
            [&first, &second]
        ));
        let open = store
            .list_multipart_uploads("dl", "ws/a.zip")
            .await
            .unwrap();
        let ids: Vec<_> = open.iter().map(|o| o.upload.upload_id.as_str()).collect();
        assert_eq!(ids, ["u1", "u2"]);
        assert!(open
            .iter()
            .all(|o| o.upload.bucket == "dl" && o.upload.key == "ws/a.zip"));
    }
}
