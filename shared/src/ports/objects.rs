//! Object storage (S3): the SWB egress store, staging, the datalake.
//!
//! The port mirrors the S3 operations the workflow needs one to one, so the orchestration
//! (which version to copy, when to switch to a multipart copy, how parts are cut and when an
//! upload is aborted) lives in [`crate::services`] and is tested against the in-memory fake,
//! while the adapter only translates calls and classifies errors.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use bytes::Bytes;
use futures::stream::BoxStream;

use crate::error::{EgressError, Result};

/// A streamed object body: chunks as they arrive. A read failure mid-way is an item error.
pub type ByteChunks = BoxStream<'static, Result<Bytes>>;

/// One object, optionally at one specific version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    /// Bucket name.
    pub bucket: String,
    /// Full key.
    pub key: String,
    /// The version to address; `None` is the current version.
    pub version_id: Option<String>,
}

impl ObjectRef {
    /// The current version of `bucket/key`.
    pub fn new(bucket: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            key: key.into(),
            version_id: None,
        }
    }

    /// Version `version_id` of `bucket/key`.
    pub fn at_version(
        bucket: impl Into<String>,
        key: impl Into<String>,
        version_id: impl Into<String>,
    ) -> Self {
        Self {
            version_id: Some(version_id.into()),
            ..Self::new(bucket, key)
        }
    }
}

impl fmt::Display for ObjectRef {
    /// `s3://bucket/key` plus ` (version v)` when a version is addressed; used in errors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{:?}", self.bucket, self.key)?;
        if let Some(v) = &self.version_id {
            write!(f, " (version {v:?})")?;
        }
        Ok(())
    }
}

/// What `HeadObject` tells about an object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectHead {
    /// Size in bytes.
    pub size: u64,
    /// Version id, when the bucket is versioned.
    pub version_id: Option<String>,
    /// Entity tag, as returned (quoted).
    pub e_tag: Option<String>,
    /// User metadata (`x-amz-meta-*`), keys without the prefix.
    pub metadata: BTreeMap<String, String>,
}

/// Where an object is written: every write of this service is SSE-KMS with a
/// customer-managed key, so the key is part of the destination, not an option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Bucket name.
    pub bucket: String,
    /// Full key.
    pub key: String,
    /// KMS key (ARN) for SSE-KMS.
    pub kms_key_arn: String,
    /// User metadata to store with the object.
    pub metadata: BTreeMap<String, String>,
    /// `Content-Type` of the object, when it matters to whoever downloads it.
    pub content_type: Option<String>,
    /// SHA-256 (hex) the writer computed of the body: `PutObject` sends it and S3 refuses
    /// the write when the bytes it received differ (an `Integrity` error), so a stored body
    /// is known to be the one hashed.
    pub sha256: Option<String>,
}

impl Destination {
    /// `bucket/key` encrypted with `kms_key_arn`, no metadata.
    pub fn new(
        bucket: impl Into<String>,
        key: impl Into<String>,
        kms_key_arn: impl Into<String>,
    ) -> Self {
        Self {
            bucket: bucket.into(),
            key: key.into(),
            kms_key_arn: kms_key_arn.into(),
            metadata: BTreeMap::new(),
            content_type: None,
            sha256: None,
        }
    }

    /// The same destination with a `Content-Type`.
    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// The same destination, its `PutObject` checked against `sha256` (hex) by S3.
    pub fn with_sha256(mut self, sha256: impl Into<String>) -> Self {
        self.sha256 = Some(sha256.into());
        self
    }
}

/// An open multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartUpload {
    /// Bucket name.
    pub bucket: String,
    /// Key the object will have once completed.
    pub key: String,
    /// S3's id of the upload.
    pub upload_id: String,
}

/// A multipart upload still open, as `ListMultipartUploads` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenUpload {
    /// The upload.
    pub upload: MultipartUpload,
    /// When it was started (seconds since the epoch), when S3 says.
    pub initiated: Option<i64>,
}

/// A part that S3 accepted, as `CompleteMultipartUpload` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    /// 1..=10000.
    pub part_number: i32,
    /// The part's entity tag.
    pub e_tag: String,
}

/// One object version (or delete marker) found by a listing, as `DeleteObjects` takes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct VersionedKey {
    /// Full key.
    pub key: String,
    /// Version id; `"null"` for objects of an unversioned bucket.
    pub version_id: Option<String>,
}

/// Where a version listing continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor {
    /// Next key marker.
    pub key_marker: String,
    /// Next version id marker.
    pub version_id_marker: Option<String>,
}

/// One page of a version listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VersionPage {
    /// Versions and delete markers of this page (at most 1000).
    pub objects: Vec<VersionedKey>,
    /// Where to continue; `None` on the last page.
    pub next: Option<ListCursor>,
}

/// What S3 reports about a `CopyObject` that asked it for a SHA-256 of the copy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopyReceipt {
    /// S3's own SHA-256 of the whole copy, lower-case hex; `None` when S3 gave no full-object
    /// SHA-256 (a composite checksum, or none at all): then the copy must be read back.
    pub sha256: Option<String>,
}

/// One current object of a listing, with its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Full key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// One page of a `ListObjectsV2` listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectPage {
    /// Current objects of this page, in key order (at most 1000).
    pub objects: Vec<ListedObject>,
    /// The continuation token of the next page; `None` on the last page.
    pub next: Option<String>,
}

/// S3's limit on keys per `DeleteObjects` call.
pub const MAX_DELETE_BATCH: usize = 1000;

/// S3's limit on parts per multipart upload.
pub const MAX_PARTS: i32 = 10_000;

/// S3's minimum size of every part but the last.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// S3's limit on a single `CopyObject` (and on one part).
pub const MAX_SINGLE_COPY: u64 = 5 * 1024 * 1024 * 1024;

/// Reads and writes objects. Missing objects and versions are
/// [`crate::EgressError::NotFound`] naming the key and version; throttling and 5xx are
/// `Transient` after the SDK's own retries.
pub trait ObjectStore: Send + Sync {
    /// `HeadObject`; `None` when the object (or the addressed version) does not exist.
    fn head(&self, object: &ObjectRef) -> impl Future<Output = Result<Option<ObjectHead>>> + Send;

    /// The whole body of a small object (a snapshot, a manifest). Refuses objects larger
    /// than `max_bytes` with a `Validation` error instead of buffering them.
    fn get_bytes(
        &self,
        object: &ObjectRef,
        max_bytes: u64,
    ) -> impl Future<Output = Result<Bytes>> + Send;

    /// The body as a stream of chunks, for objects of any size.
    fn get_stream(&self, object: &ObjectRef) -> impl Future<Output = Result<ByteChunks>> + Send;

    /// The bytes `range` (end exclusive) of the object, streamed; fewer when the object ends
    /// before `range.end` (so asking one byte past the expected end tells whether an object
    /// grew). The default reads the whole body and keeps the range; S3 asks for the range.
    fn get_range(
        &self,
        object: &ObjectRef,
        range: std::ops::Range<u64>,
    ) -> impl Future<Output = Result<ByteChunks>> + Send {
        async move {
            use futures::StreamExt;
            let body = self.get_stream(object).await?;
            let ranged = body
                .scan(0u64, move |at, chunk| {
                    let out = chunk.map(|c| {
                        let start = *at;
                        *at += c.len() as u64;
                        let from = range.start.saturating_sub(start).min(c.len() as u64);
                        let to = range.end.saturating_sub(start).min(c.len() as u64);
                        c.slice(from as usize..to.max(from) as usize)
                    });
                    futures::future::ready(Some(out))
                })
                .filter(|c| futures::future::ready(!matches!(c, Ok(c) if c.is_empty())));
            Ok(Box::pin(ranged) as ByteChunks)
        }
    }

    /// `PutObject` of a small body; returns the new version id, if the bucket is versioned.
    fn put_bytes(
        &self,
        destination: &Destination,
        body: Bytes,
    ) -> impl Future<Output = Result<Option<String>>> + Send;

    /// `CopyObject` of exactly `source` (its version, when given) to `destination`; at most
    /// [`MAX_SINGLE_COPY`] bytes.
    fn copy(
        &self,
        source: &ObjectRef,
        destination: &Destination,
    ) -> impl Future<Output = Result<()>> + Send;

    /// `CopyObject` like [`ObjectStore::copy`], asking S3 for its own SHA-256 of the copy
    /// (`ChecksumAlgorithm=SHA256`). The default makes a plain copy and reports no checksum,
    /// so the caller reads the copy back.
    fn copy_with_sha256(
        &self,
        source: &ObjectRef,
        destination: &Destination,
    ) -> impl Future<Output = Result<CopyReceipt>> + Send {
        async move {
            self.copy(source, destination).await?;
            Ok(CopyReceipt::default())
        }
    }

    /// One page of `ListObjectsV2` under `prefix`: the current objects and their sizes.
    fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<&str>,
    ) -> impl Future<Output = Result<ObjectPage>> + Send;

    /// `CreateMultipartUpload`; the encryption and metadata of `destination` apply to the
    /// completed object.
    fn create_multipart(
        &self,
        destination: &Destination,
    ) -> impl Future<Output = Result<MultipartUpload>> + Send;

    /// `UploadPart`.
    fn upload_part(
        &self,
        upload: &MultipartUpload,
        part_number: i32,
        body: Bytes,
    ) -> impl Future<Output = Result<UploadedPart>> + Send;

    /// `UploadPartCopy` of the bytes `range` (end exclusive) of exactly `source`.
    fn upload_part_copy(
        &self,
        upload: &MultipartUpload,
        part_number: i32,
        source: &ObjectRef,
        range: std::ops::Range<u64>,
    ) -> impl Future<Output = Result<UploadedPart>> + Send;

    /// `CompleteMultipartUpload` with `parts` in part-number order.
    fn complete_multipart(
        &self,
        upload: &MultipartUpload,
        parts: &[UploadedPart],
    ) -> impl Future<Output = Result<()>> + Send;

    /// `AbortMultipartUpload`: the parts are discarded and no object appears.
    fn abort_multipart(&self, upload: &MultipartUpload) -> impl Future<Output = Result<()>> + Send;

    /// `ListMultipartUploads` under `prefix` (every page): the uploads neither completed nor
    /// aborted, each with when it was started (seconds since the epoch, when S3 says).
    fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<OpenUpload>>> + Send;

    /// One page of `ListObjectVersions` under `prefix`: every version and delete marker.
    /// On an unversioned bucket each object appears once, with version `"null"`.
    fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        cursor: Option<&ListCursor>,
    ) -> impl Future<Output = Result<VersionPage>> + Send;

    /// `DeleteObjects` of at most [`MAX_DELETE_BATCH`] versions. Keys S3 could not delete
    /// make the call fail with an error naming them.
    fn delete_versions(
        &self,
        bucket: &str,
        objects: &[VersionedKey],
    ) -> impl Future<Output = Result<()>> + Send;

    /// `GetObjectTagging`: the object's (or version's) tags, by key; a missing object is
    /// `NotFound`. The output checks read the malware scanner's `GuardDutyMalwareScanStatus`
    /// with it. The default (stores that keep no tags) refuses.
    fn get_tags(
        &self,
        object: &ObjectRef,
    ) -> impl Future<Output = Result<std::collections::BTreeMap<String, String>>> + Send {
        async move {
            Err(crate::error::EgressError::Internal(format!(
                "this object store keeps no tags ({object})"
            )))
        }
    }
}

/// [`ObjectStore::get_bytes`], with a missing object as `None` rather than `NotFound`.
pub async fn get_bytes_if_any(
    objects: &impl ObjectStore,
    at: &ObjectRef,
    max_bytes: u64,
) -> Result<Option<Bytes>> {
    match objects.get_bytes(at, max_bytes).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(EgressError::NotFound(_)) => Ok(None),
        Err(err) => Err(err),
    }
}
