//! An in-memory S3 with versions, multipart uploads and failure injection.
//!
//! It follows S3's semantics where the services depend on them: versioned buckets keep every
//! version and get delete markers, unversioned buckets have one `"null"` version per key,
//! nothing of a multipart upload is visible before `CompleteMultipartUpload`, listings are
//! paged, and `DeleteObjects` takes at most 1000 keys. Every call is recorded so tests can
//! assert what was asked (the version copied, the KMS key used, an abort).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use futures::stream;
use sha2::{Digest, Sha256};

use crate::error::{EgressError, Result};
use crate::ports::{
    ByteChunks, CopyReceipt, Destination, ListCursor, ListedObject, MultipartUpload, ObjectHead,
    ObjectPage, ObjectRef, ObjectStore, UploadedPart, VersionPage, VersionedKey, MAX_DELETE_BATCH,
    MAX_PARTS, MAX_SINGLE_COPY,
};

/// One stored version (or delete marker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// `"null"` in an unversioned bucket.
    pub version_id: String,
    /// The content.
    pub data: Bytes,
    /// The SSE-KMS key it was written with, if any.
    pub kms_key_arn: Option<String>,
    /// User metadata.
    pub metadata: BTreeMap<String, String>,
    /// A delete marker rather than content.
    pub delete_marker: bool,
}

/// A call the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectCall {
    /// `HeadObject`.
    Head(ObjectRef),
    /// `GetObject` (whole or streamed).
    Get(ObjectRef),
    /// `PutObject`.
    Put(Destination),
    /// `CopyObject`.
    Copy {
        /// What was copied, with its version.
        source: ObjectRef,
        /// Where to.
        destination: Destination,
    },
    /// `CopyObject` asking S3 for a SHA-256 of the copy (also recorded as [`ObjectCall::Copy`]
    /// first, so counts of copies include it).
    CopyWithSha256 {
        /// Whether a full-object SHA-256 was returned.
        checksum_returned: bool,
    },
    /// `ListObjectsV2` (one page).
    ListObjects {
        /// Bucket.
        bucket: String,
        /// Prefix.
        prefix: String,
    },
    /// `CreateMultipartUpload`.
    CreateMultipart(Destination),
    /// `UploadPart`.
    UploadPart {
        /// The upload.
        upload_id: String,
        /// Part number.
        part_number: i32,
        /// Bytes in the part.
        size: usize,
    },
    /// `UploadPartCopy`.
    UploadPartCopy {
        /// The upload.
        upload_id: String,
        /// Part number.
        part_number: i32,
        /// What was copied, with its version.
        source: ObjectRef,
        /// Byte range, end exclusive.
        range: std::ops::Range<u64>,
    },
    /// `CompleteMultipartUpload`.
    Complete {
        /// The upload.
        upload_id: String,
        /// Parts listed.
        parts: usize,
    },
    /// `AbortMultipartUpload`.
    Abort {
        /// The upload.
        upload_id: String,
    },
    /// `ListObjectVersions` (one page).
    ListVersions {
        /// Bucket.
        bucket: String,
        /// Prefix.
        prefix: String,
    },
    /// `DeleteObjects`.
    Delete {
        /// Bucket.
        bucket: String,
        /// Keys and versions in the batch.
        objects: Vec<VersionedKey>,
    },
}

#[derive(Debug, Default)]
struct Bucket {
    versioned: bool,
    /// Versions of each key, oldest first.
    keys: BTreeMap<String, Vec<StoredObject>>,
}

#[derive(Debug)]
struct PendingUpload {
    destination: Destination,
    parts: BTreeMap<i32, (String, Bytes)>,
}

#[derive(Debug)]
struct State {
    buckets: HashMap<String, Bucket>,
    uploads: HashMap<String, PendingUpload>,
    calls: Vec<ObjectCall>,
    next_id: u64,
    chunk_size: usize,
    page_size: usize,
    fail_upload_part: Option<i32>,
    fail_complete: bool,
    deny_delete: HashSet<String>,
    /// Keys whose writes (`PutObject`) fail.
    deny_put: HashSet<String>,
    /// Keys whose deletes are acknowledged but not done (a broken store, for the proof).
    ignore_delete: HashSet<String>,
    yield_on_part_copy: bool,
    copy_checksums: bool,
    /// Copies whose last byte is flipped (a copy that is not what the source holds).
    corrupt_copies: bool,
    /// `CreateMultipartUpload`s whose first answer is lost: S3 made an upload, the caller
    /// never heard of it, and the SDK's retry made the one returned.
    lost_create_answers: usize,
    /// Tags by bucket and key (of the current version).
    tags: HashMap<(String, String), BTreeMap<String, String>>,
}

/// An in-memory [`ObjectStore`].
#[derive(Debug)]
pub struct InMemoryObjectStore {
    state: Mutex<State>,
}

impl Default for InMemoryObjectStore {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                buckets: HashMap::new(),
                uploads: HashMap::new(),
                calls: Vec::new(),
                next_id: 0,
                chunk_size: 64 * 1024,
                page_size: 1000,
                fail_upload_part: None,
                fail_complete: false,
                deny_delete: HashSet::new(),
                deny_put: HashSet::new(),
                ignore_delete: HashSet::new(),
                yield_on_part_copy: false,
                copy_checksums: true,
                lost_create_answers: 0,
                corrupt_copies: false,
                tags: HashMap::new(),
            }),
        }
    }
}

impl InMemoryObjectStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the tags of `bucket/key` (as the malware scanner would).
    pub fn set_tags(&self, bucket: &str, key: &str, tags: &[(&str, &str)]) {
        self.lock().tags.insert(
            (bucket.to_string(), key.to_string()),
            tags.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
    }

    /// Adds a bucket (builder style).
    pub fn with_bucket(self, name: &str, versioned: bool) -> Self {
        self.lock().buckets.insert(
            name.to_string(),
            Bucket {
                versioned,
                keys: BTreeMap::new(),
            },
        );
        self
    }

    /// Writes a new version of `bucket/key` (test setup); returns its version id.
    pub fn put_object(&self, bucket: &str, key: &str, data: impl Into<Bytes>) -> String {
        let mut state = self.lock();
        let id = state.new_id();
        let b = state.buckets.entry(bucket.to_string()).or_default();
        b.write(key, data.into(), None, BTreeMap::new(), id)
    }

    /// Writes `bucket/key` as version `version_id` of a versioned bucket (test setup with
    /// the version ids of a fixture).
    pub fn put_object_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        data: impl Into<Bytes>,
    ) {
        let mut state = self.lock();
        let b = state.buckets.entry(bucket.to_string()).or_default();
        b.versioned = true;
        b.keys
            .entry(key.to_string())
            .or_default()
            .push(StoredObject {
                version_id: version_id.to_string(),
                data: data.into(),
                kms_key_arn: None,
                metadata: BTreeMap::new(),
                delete_marker: false,
            });
    }

    /// The current content of `bucket/key`, if any.
    pub fn object(&self, bucket: &str, key: &str) -> Option<StoredObject> {
        let state = self.lock();
        state
            .buckets
            .get(bucket)
            .and_then(|b| b.current(key))
            .cloned()
    }

    /// Current keys of `bucket` (delete markers excluded), sorted.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let state = self.lock();
        state
            .buckets
            .get(bucket)
            .map(|b| {
                b.keys
                    .iter()
                    .filter(|(_, v)| v.last().is_some_and(|o| !o.delete_marker))
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every version and delete marker in `bucket`.
    pub fn version_count(&self, bucket: &str) -> usize {
        let state = self.lock();
        state
            .buckets
            .get(bucket)
            .map(|b| b.keys.values().map(Vec::len).sum())
            .unwrap_or(0)
    }

    /// The calls received so far.
    pub fn calls(&self) -> Vec<ObjectCall> {
        self.lock().calls.clone()
    }

    /// Ids of multipart uploads neither completed nor aborted.
    pub fn open_uploads(&self) -> Vec<String> {
        self.lock().uploads.keys().cloned().collect()
    }

    /// Streamed reads deliver chunks of `size` bytes.
    pub fn set_chunk_size(&self, size: usize) {
        self.lock().chunk_size = size.max(1);
    }

    /// Listings return pages of at most `size` entries.
    pub fn set_page_size(&self, size: usize) {
        self.lock().page_size = size.max(1);
    }

    /// `UploadPart` of `part_number` fails (as a non-retryable error).
    pub fn fail_upload_part(&self, part_number: i32) {
        self.lock().fail_upload_part = Some(part_number);
    }

    /// Every `UploadPartCopy` yields to the scheduler first, as a network call would, so
    /// that concurrent copies really interleave.
    pub fn yield_on_part_copy(&self) {
        self.lock().yield_on_part_copy = true;
    }

    /// `CopyObject` returns no checksum even when asked for one, as an S3 that cannot give
    /// a full-object SHA-256 would.
    pub fn without_copy_checksums(&self) {
        self.lock().copy_checksums = false;
    }

    /// The next `count` `CreateMultipartUpload`s each leave an upload nobody was told of
    /// (the answer lost, the SDK asked again) before the one they return.
    pub fn lose_create_answers(&self, count: usize) {
        self.lock().lost_create_answers = count;
    }

    /// Every `CopyObject` writes the source with its last byte flipped, and reports the
    /// checksum of what it wrote: a copy that differs from what a reader of the source sees.
    pub fn corrupt_copies(&self) {
        self.lock().corrupt_copies = true;
    }

    /// `CompleteMultipartUpload` fails.
    pub fn fail_complete(&self) {
        self.lock().fail_complete = true;
    }

    /// `DeleteObjects` reports `key` as not deleted (`AccessDenied`).
    pub fn deny_delete(&self, key: &str) {
        self.lock().deny_delete.insert(key.to_string());
    }

    /// `PutObject` of `key` fails with a transient error (the write never happens).
    pub fn deny_put(&self, key: &str) {
        self.lock().deny_put.insert(key.to_string());
    }

    /// `PutObject` of `key` works again.
    pub fn allow_put(&self, key: &str) {
        self.lock().deny_put.remove(key);
    }

    /// `DeleteObjects` reports `key` as deleted but keeps it (proof of deletion must notice).
    pub fn ignore_deletes_of(&self, key: &str) {
        self.lock().ignore_delete.insert(key.to_string());
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn bucket(&self, name: &str) -> Result<&Bucket> {
        self.buckets
            .get(name)
            .ok_or_else(|| EgressError::Internal(format!("bucket {name} does not exist")))
    }

    fn bucket_mut(&mut self, name: &str) -> Result<&mut Bucket> {
        self.buckets
            .get_mut(name)
            .ok_or_else(|| EgressError::Internal(format!("bucket {name} does not exist")))
    }

    fn find(&self, object: &ObjectRef) -> Result<Option<&StoredObject>> {
        let bucket = self.bucket(&object.bucket)?;
        Ok(match &object.version_id {
            None => bucket.current(&object.key),
            Some(v) => bucket
                .keys
                .get(&object.key)
                .and_then(|versions| versions.iter().find(|o| &o.version_id == v))
                .filter(|o| !o.delete_marker),
        })
    }

    fn require(&self, object: &ObjectRef) -> Result<StoredObject> {
        self.find(object)?
            .cloned()
            .ok_or_else(|| EgressError::NotFound(format!("object {object} does not exist")))
    }

    fn upload(&mut self, upload: &MultipartUpload) -> Result<&mut PendingUpload> {
        self.uploads.get_mut(&upload.upload_id).ok_or_else(|| {
            EgressError::NotFound(format!(
                "multipart upload {} of {} does not exist",
                upload.upload_id, upload.key
            ))
        })
    }

    fn write(&mut self, destination: &Destination, data: Bytes) -> Result<Option<String>> {
        if let Some(sha256) = &destination.sha256 {
            use sha2::Digest;
            if hex::encode(sha2::Sha256::digest(&data)) != *sha256 {
                return Err(EgressError::Integrity(format!(
                    "BadDigest: the body of {:?} does not hash to {sha256}",
                    destination.key
                )));
            }
        }
        let id = self.new_id();
        let bucket = self.bucket_mut(&destination.bucket)?;
        let versioned = bucket.versioned;
        let version = bucket.write(
            &destination.key,
            data,
            Some(destination.kms_key_arn.clone()),
            destination.metadata.clone(),
            id,
        );
        Ok(versioned.then_some(version))
    }
}

impl Bucket {
    fn current(&self, key: &str) -> Option<&StoredObject> {
        self.keys
            .get(key)
            .and_then(|v| v.last())
            .filter(|o| !o.delete_marker)
    }

    fn write(
        &mut self,
        key: &str,
        data: Bytes,
        kms_key_arn: Option<String>,
        metadata: BTreeMap<String, String>,
        id: u64,
    ) -> String {
        let version_id = if self.versioned {
            format!("3sL4kqtJlcpXroDTDmJ.rmSpXd3dIbrH{id:06}")
        } else {
            "null".to_string()
        };
        let object = StoredObject {
            version_id: version_id.clone(),
            data,
            kms_key_arn,
            metadata,
            delete_marker: false,
        };
        let versions = self.keys.entry(key.to_string()).or_default();
        if !self.versioned {
            versions.clear();
        }
        versions.push(object);
        version_id
    }
}

fn part_etag(data: &[u8]) -> String {
    format!("\"{:08x}-{}\"", crc32fast::hash(data), data.len())
}

impl ObjectStore for InMemoryObjectStore {
    async fn get_tags(&self, object: &ObjectRef) -> Result<BTreeMap<String, String>> {
        let state = self.lock();
        state.require(object)?;
        Ok(state
            .tags
            .get(&(object.bucket.clone(), object.key.clone()))
            .cloned()
            .unwrap_or_default())
    }

    async fn head(&self, object: &ObjectRef) -> Result<Option<ObjectHead>> {
        let mut state = self.lock();
        state.calls.push(ObjectCall::Head(object.clone()));
        Ok(state.find(object)?.map(|o| ObjectHead {
            size: o.data.len() as u64,
            version_id: Some(o.version_id.clone()),
            e_tag: Some(part_etag(&o.data)),
            metadata: o.metadata.clone(),
        }))
    }

    async fn get_bytes(&self, object: &ObjectRef, max_bytes: u64) -> Result<Bytes> {
        let mut state = self.lock();
        state.calls.push(ObjectCall::Get(object.clone()));
        let found = state.require(object)?;
        if found.data.len() as u64 > max_bytes {
            return Err(EgressError::validation(format!(
                "object {object} is {} bytes, more than the {max_bytes} allowed",
                found.data.len()
            )));
        }
        Ok(found.data)
    }

    async fn get_stream(&self, object: &ObjectRef) -> Result<ByteChunks> {
        let mut state = self.lock();
        state.calls.push(ObjectCall::Get(object.clone()));
        let data = state.require(object)?.data;
        let chunk = state.chunk_size;
        let chunks: Vec<Result<Bytes>> = (0..data.len())
            .step_by(chunk)
            .map(|start| Ok(data.slice(start..(start + chunk).min(data.len()))))
            .collect();
        Ok(Box::pin(stream::iter(chunks)))
    }

    async fn put_bytes(&self, destination: &Destination, body: Bytes) -> Result<Option<String>> {
        let mut state = self.lock();
        state.calls.push(ObjectCall::Put(destination.clone()));
        if state.deny_put.contains(&destination.key) {
            return Err(EgressError::Transient(format!(
                "PutObject of {} failed",
                destination.key
            )));
        }
        state.write(destination, body)
    }

    async fn copy(&self, source: &ObjectRef, destination: &Destination) -> Result<()> {
        let mut state = self.lock();
        state.calls.push(ObjectCall::Copy {
            source: source.clone(),
            destination: destination.clone(),
        });
        let found = state.require(source)?;
        if found.data.len() as u64 > MAX_SINGLE_COPY {
            return Err(EgressError::Internal(format!(
                "CopyObject of {source}: the object is larger than 5 GiB"
            )));
        }
        let data = match (state.corrupt_copies, found.data.last()) {
            (true, Some(last)) => {
                let mut flipped = found.data.to_vec();
                let end = flipped.len() - 1;
                flipped[end] = !*last;
                Bytes::from(flipped)
            }
            _ => found.data,
        };
        state.write(destination, data).map(|_| ())
    }

    async fn copy_with_sha256(
        &self,
        source: &ObjectRef,
        destination: &Destination,
    ) -> Result<CopyReceipt> {
        self.copy(source, destination).await?;
        let mut state = self.lock();
        let checksum_returned = state.copy_checksums;
        state
            .calls
            .push(ObjectCall::CopyWithSha256 { checksum_returned });
        let sha256 = match checksum_returned {
            true => Some(hex::encode(Sha256::digest(
                state
                    .require(&ObjectRef::new(&destination.bucket, &destination.key))?
                    .data,
            ))),
            false => None,
        };
        Ok(CopyReceipt { sha256 })
    }

    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<&str>,
    ) -> Result<ObjectPage> {
        let mut state = self.lock();
        state.calls.push(ObjectCall::ListObjects {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        });
        let page_size = state.page_size;
        let b = state.bucket(bucket)?;
        // The continuation token is the last key of the previous page.
        let mut objects: Vec<ListedObject> = b
            .keys
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(k, _)| continuation.is_none_or(|after| k.as_str() > after))
            .filter_map(|(k, versions)| {
                let current = versions.last().filter(|o| !o.delete_marker)?;
                Some(ListedObject {
                    key: k.clone(),
                    size: current.data.len() as u64,
                })
            })
            .take(page_size + 1)
            .collect();
        let next = if objects.len() > page_size {
            objects.truncate(page_size);
            objects.last().map(|o| o.key.clone())
        } else {
            None
        };
        Ok(ObjectPage { objects, next })
    }

    async fn create_multipart(&self, destination: &Destination) -> Result<MultipartUpload> {
        let mut state = self.lock();
        state
            .calls
            .push(ObjectCall::CreateMultipart(destination.clone()));
        state.bucket(&destination.bucket)?;
        if state.lost_create_answers > 0 {
            state.lost_create_answers -= 1;
            let lost = format!("upload-{}", state.new_id());
            state.uploads.insert(
                lost,
                PendingUpload {
                    destination: destination.clone(),
                    parts: BTreeMap::new(),
                },
            );
        }
        let upload_id = format!("upload-{}", state.new_id());
        state.uploads.insert(
            upload_id.clone(),
            PendingUpload {
                destination: destination.clone(),
                parts: BTreeMap::new(),
            },
        );
        Ok(MultipartUpload {
            bucket: destination.bucket.clone(),
            key: destination.key.clone(),
            upload_id,
        })
    }

    async fn upload_part(
        &self,
        upload: &MultipartUpload,
        part_number: i32,
        body: Bytes,
    ) -> Result<UploadedPart> {
        let mut state = self.lock();
        state.calls.push(ObjectCall::UploadPart {
            upload_id: upload.upload_id.clone(),
            part_number,
            size: body.len(),
        });
        if state.fail_upload_part == Some(part_number) {
            return Err(EgressError::Internal(format!(
                "UploadPart {part_number} of {}: InvalidRequest (injected)",
                upload.key
            )));
        }
        if !(1..=MAX_PARTS).contains(&part_number) {
            return Err(EgressError::Internal(format!(
                "UploadPart: part number {part_number} is out of range"
            )));
        }
        let e_tag = part_etag(&body);
        state
            .upload(upload)?
            .parts
            .insert(part_number, (e_tag.clone(), body));
        Ok(UploadedPart { part_number, e_tag })
    }

    async fn upload_part_copy(
        &self,
        upload: &MultipartUpload,
        part_number: i32,
        source: &ObjectRef,
        range: std::ops::Range<u64>,
    ) -> Result<UploadedPart> {
        let yield_first = self.lock().yield_on_part_copy;
        if yield_first {
            tokio::task::yield_now().await;
        }
        let mut state = self.lock();
        state.calls.push(ObjectCall::UploadPartCopy {
            upload_id: upload.upload_id.clone(),
            part_number,
            source: source.clone(),
            range: range.clone(),
        });
        let found = state.require(source)?;
        if range.start >= range.end || range.end > found.data.len() as u64 {
            return Err(EgressError::Internal(format!(
                "UploadPartCopy of {source}: range {range:?} is not inside the object"
            )));
        }
        let body = found.data.slice(range.start as usize..range.end as usize);
        let e_tag = part_etag(&body);
        state
            .upload(upload)?
            .parts
            .insert(part_number, (e_tag.clone(), body));
        Ok(UploadedPart { part_number, e_tag })
    }

    async fn complete_multipart(
        &self,
        upload: &MultipartUpload,
        parts: &[UploadedPart],
    ) -> Result<()> {
        let mut state = self.lock();
        state.calls.push(ObjectCall::Complete {
            upload_id: upload.upload_id.clone(),
            parts: parts.len(),
        });
        if state.fail_complete {
            return Err(EgressError::Internal(format!(
                "CompleteMultipartUpload of {}: InternalError (injected)",
                upload.key
            )));
        }
        let pending = state.upload(upload)?;
        if parts.is_empty()
            || parts
                .windows(2)
                .any(|w| w[0].part_number >= w[1].part_number)
        {
            return Err(EgressError::Internal(
                "CompleteMultipartUpload: parts must be listed in ascending order".into(),
            ));
        }
        let mut data = Vec::new();
        for part in parts {
            match pending.parts.get(&part.part_number) {
                Some((e_tag, body)) if *e_tag == part.e_tag => data.extend_from_slice(body),
                _ => {
                    return Err(EgressError::Internal(format!(
                        "CompleteMultipartUpload: InvalidPart {}",
                        part.part_number
                    )))
                }
            }
        }
        let destination = pending.destination.clone();
        state.uploads.remove(&upload.upload_id);
        state.write(&destination, Bytes::from(data)).map(|_| ())
    }

    async fn abort_multipart(&self, upload: &MultipartUpload) -> Result<()> {
        let mut state = self.lock();
        state.calls.push(ObjectCall::Abort {
            upload_id: upload.upload_id.clone(),
        });
        state.upload(upload)?;
        state.uploads.remove(&upload.upload_id);
        Ok(())
    }

    async fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<crate::ports::OpenUpload>> {
        let state = self.lock();
        state.bucket(bucket)?;
        let mut open: Vec<crate::ports::OpenUpload> = state
            .uploads
            .iter()
            .filter(|(_, u)| {
                u.destination.bucket == bucket && u.destination.key.starts_with(prefix)
            })
            .map(|(id, u)| crate::ports::OpenUpload {
                upload: MultipartUpload {
                    bucket: bucket.to_string(),
                    key: u.destination.key.clone(),
                    upload_id: id.clone(),
                },
                initiated: None,
            })
            .collect();
        open.sort_by(|a, b| a.upload.upload_id.cmp(&b.upload.upload_id));
        Ok(open)
    }

    async fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        cursor: Option<&ListCursor>,
    ) -> Result<VersionPage> {
        let mut state = self.lock();
        state.calls.push(ObjectCall::ListVersions {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        });
        let page_size = state.page_size;
        let b = state.bucket(bucket)?;
        // S3 order: keys ascending, each key's versions newest first.
        let all = b
            .keys
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .flat_map(|(k, versions)| {
                versions.iter().rev().map(move |o| VersionedKey {
                    key: k.clone(),
                    version_id: Some(o.version_id.clone()),
                })
            });
        // Markers are positions, as in S3: entries already deleted do not move them. Within
        // the marker key, listing resumes after the marker version (or at the next key when
        // that version is gone).
        let mut remaining: Vec<VersionedKey> = match cursor {
            None => all.collect(),
            Some(c) => {
                let mut after_marker_version = false;
                all.filter(|v| {
                    if v.key == c.key_marker {
                        let resume = after_marker_version;
                        if v.version_id == c.version_id_marker {
                            after_marker_version = true;
                        }
                        resume
                    } else {
                        v.key > c.key_marker
                    }
                })
                .collect()
            }
        };
        let next = if remaining.len() > page_size {
            remaining.truncate(page_size);
            remaining.last().map(|last| ListCursor {
                key_marker: last.key.clone(),
                version_id_marker: last.version_id.clone(),
            })
        } else {
            None
        };
        Ok(VersionPage {
            objects: remaining,
            next,
        })
    }

    async fn delete_versions(&self, bucket: &str, objects: &[VersionedKey]) -> Result<()> {
        let mut state = self.lock();
        state.calls.push(ObjectCall::Delete {
            bucket: bucket.to_string(),
            objects: objects.to_vec(),
        });
        if objects.is_empty() || objects.len() > MAX_DELETE_BATCH {
            return Err(EgressError::Internal(format!(
                "DeleteObjects: MalformedXML ({} keys; 1-1000 allowed)",
                objects.len()
            )));
        }
        let denied: std::collections::BTreeSet<String> = objects
            .iter()
            .filter(|o| state.deny_delete.contains(&o.key))
            .map(|o| o.key.clone())
            .collect();
        let ignored = state.ignore_delete.clone();
        let id = state.new_id();
        let b = state.bucket_mut(bucket)?;
        for o in objects
            .iter()
            .filter(|o| !denied.contains(&o.key) && !ignored.contains(&o.key))
        {
            let Some(versions) = b.keys.get_mut(&o.key) else {
                continue;
            };
            match (&o.version_id, b.versioned) {
                (None, true) => versions.push(StoredObject {
                    version_id: format!("marker-{id:06}"),
                    data: Bytes::new(),
                    kms_key_arn: None,
                    metadata: BTreeMap::new(),
                    delete_marker: true,
                }),
                (None, false) => versions.clear(),
                (Some(v), _) => versions.retain(|x| &x.version_id != v),
            }
            if versions.is_empty() {
                b.keys.remove(&o.key);
            }
        }
        if denied.is_empty() {
            Ok(())
        } else {
            Err(EgressError::Internal(format!(
                "DeleteObjects in {bucket} could not delete {} object(s): {}",
                denied.len(),
                denied
                    .iter()
                    .map(|k| format!("{k:?} (AccessDenied)"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }
}
