//! `copy-to-staging`: copy exactly the submitted object versions into the staging bucket,
//! record a SHA-256 of every staged copy and write the manifest the review and the archive
//! rely on.
//!
//! Order matters: every key is validated before the first copy (an unsafe snapshot stages
//! nothing); each file is copied by version id, never "the latest"; the manifest is written
//! last, so its presence means the staging is complete. Re-running overwrites the same keys
//! with the same bytes and writes the same manifest.
//!
//! One request per file where S3 allows it: a file up to the single-copy limit (5 GiB) is one
//! `CopyObject` that asks S3 for its own SHA-256 of the copy. There is no `HeadObject` first:
//! a missing version is the copy's own 404. The sizes the snapshot lists are then checked
//! against one `ListObjectsV2` of the request's staging prefix per 1,000 files. The copy is
//! read back and hashed here only when S3 cannot give a full-object SHA-256: a multipart copy
//! (above 5 GiB), or an S3 that returns a composite checksum or none.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::{stream, StreamExt};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{multipart, step_audit, Step};
use crate::domain::intake::parse_s3_arn;
use crate::domain::keys::StagingLayout;
use crate::domain::staging::{self, PlannedCopy};
use crate::error::{EgressError, Result};
use crate::model::{EgressStatus, ManifestEntry, Snapshot, StagingInput, StagingResult};
use crate::ports::{
    AuditLog, Clock, Destination, ObjectRef, ObjectStore, RequestStore, MAX_SINGLE_COPY,
};

/// Who the audit trail names for this step.
pub const ACTOR: &str = "system:copy-to-staging";

/// How staging runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagingSettings {
    /// The staging bucket.
    pub staging_bucket: String,
    /// Its customer-managed KMS key (SSE-KMS on every staged object and the manifest).
    pub staging_kms_key_arn: String,
    /// Files copied at once (`COPY_CONCURRENCY`).
    pub copy_concurrency: usize,
    /// Objects above this size are copied in parts (S3 refuses a `CopyObject` above 5 GiB).
    pub multipart_copy_threshold: u64,
    /// Part size of multipart copies (raised automatically to stay within 10,000 parts).
    pub copy_part_size: u64,
    /// The largest snapshot file read into memory.
    pub max_snapshot_bytes: u64,
}

impl StagingSettings {
    /// Settings with S3's limits and the default part size.
    pub fn new(
        staging_bucket: impl Into<String>,
        staging_kms_key_arn: impl Into<String>,
        copy_concurrency: usize,
    ) -> Self {
        Self {
            staging_bucket: staging_bucket.into(),
            staging_kms_key_arn: staging_kms_key_arn.into(),
            copy_concurrency: copy_concurrency.max(1),
            multipart_copy_threshold: MAX_SINGLE_COPY,
            copy_part_size: 512 * 1024 * 1024,
            max_snapshot_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Part copies of one object in flight at once.
const PART_COPY_CONCURRENCY: usize = 4;

/// `copy-to-staging` with its ports, run as a [`Step`].
#[derive(Debug)]
pub struct StagingStep<O, R, A, C> {
    /// The buckets.
    pub objects: O,
    /// The requests table.
    pub requests: R,
    /// The audit trail.
    pub audit: A,
    /// The server clock.
    pub clock: C,
    /// Configuration.
    pub settings: StagingSettings,
}

/// One staged file: its manifest entry, and whether its size was read from the copy itself
/// (else the listing of the staging prefix checks it).
struct Staged {
    entry: ManifestEntry,
    size_checked: bool,
}

impl<O: ObjectStore, R: RequestStore, A: AuditLog, C: Clock> Step for StagingStep<O, R, A, C> {
    type Input = StagingInput;
    type Output = StagingResult;
    const FAILED: &'static str = "staging failed";

    /// Stages `input`'s snapshot, records the result on the request and audits it. A failure
    /// is audited too (best effort) and returned unchanged.
    async fn run(&self, input: &StagingInput) -> Result<StagingResult> {
        // The request item records the staging before the trail does: a retry after a lost
        // audit write stages and records again (idempotent), so the trail is never ahead.
        let outcome = match self.stage(input).await {
            Ok((result, manifest_version)) => self
                .requests
                .record_staging(
                    &input.egress_request_id,
                    &result,
                    manifest_version.as_deref(),
                    &self.clock.now_iso(),
                )
                .await
                .map(|()| result),
            Err(err) => Err(err),
        };
        let result = step_audit::audited(
            &self.audit,
            &self.clock,
            &input.egress_request_id,
            ACTOR,
            "staged",
            outcome,
            |result| {
                json!({
                    "file_count": result.file_count,
                    "total_bytes": result.total_bytes,
                    "file_types": result.file_types,
                    "manifest_key": result.manifest_key,
                    "snapshot": input.s3_egress_store_object_list_location,
                })
            },
        )
        .await?;
        tracing::info!(
            file_count = result.file_count,
            total_bytes = result.total_bytes,
            "staged"
        );
        crate::metrics::staged(
            &input.egress_request_id,
            result.total_bytes,
            result.file_count,
        );
        Ok(result)
    }
}

impl<O: ObjectStore, R: RequestStore, A: AuditLog, C: Clock> StagingStep<O, R, A, C> {
    async fn stage(&self, input: &StagingInput) -> Result<(StagingResult, Option<String>)> {
        let settings = &self.settings;
        let layout = StagingLayout::new(&input.workspace_id, &input.egress_request_id)?;
        let request = self
            .requests
            .get(&input.egress_request_id)
            .await?
            .ok_or_else(|| {
                EgressError::NotFound(format!(
                    "egress request {} does not exist",
                    input.egress_request_id
                ))
            })?;
        if request.egress_status != EgressStatus::Processing {
            return Err(EgressError::Conflict(format!(
                "egress request {} is {}; only a request being processed is staged",
                input.egress_request_id, request.egress_status
            )));
        }
        let location = &input.s3_egress_store_object_list_location;
        let (snapshot_bucket, snapshot_key) =
            parse_s3_arn("s3_egress_store_object_list_location", location)?;
        let raw = self
            .objects
            .get_bytes(
                &ObjectRef::new(snapshot_bucket, snapshot_key),
                settings.max_snapshot_bytes,
            )
            .await?;
        // The path names the member that is wrong (`objects[3].Size`), not only a line and column.
        let snapshot: Snapshot =
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&raw))
                .map_err(|e| {
                    EgressError::validation(format!(
                        "snapshot {location} is not a valid SWB snapshot: at {}: {}",
                        e.path(),
                        e.inner()
                    ))
                })?;
        let plan = staging::plan(
            &snapshot,
            &input.s3_egress_store_bucket_path,
            &layout,
            &input.egress_request_id,
        )?;
        tracing::info!(
            egress_request_id = %input.egress_request_id,
            files = plan.len(),
            "staging the submitted versions"
        );
        let entries = self
            .stage_all(&input.s3_egress_store_bucket, &plan, &layout)
            .await?;
        let manifest = staging::manifest(
            &input.egress_request_id,
            &input.workspace_id,
            &input.s3_egress_store_bucket,
            location,
            entries,
        );
        let body = serde_json::to_vec_pretty(&manifest).map_err(|e| {
            EgressError::Internal(format!("the manifest cannot be serialised: {e}"))
        })?;
        let manifest_version = self
            .objects
            .put_bytes(
                &Destination::new(
                    &settings.staging_bucket,
                    layout.manifest_key(),
                    &settings.staging_kms_key_arn,
                )
                .with_content_type("application/json"),
                body.into(),
            )
            .await?;
        Ok((
            staging::result(&manifest, &settings.staging_bucket, &layout),
            manifest_version,
        ))
    }

    /// Stages every planned copy, `copy_concurrency` at a time, then checks the sizes that no
    /// read-back checked. After the first failure no new copy starts, but the copies already
    /// in flight run to their end rather than being dropped: a dropped multipart copy would
    /// never reach its `AbortMultipartUpload`.
    async fn stage_all(
        &self,
        source_bucket: &str,
        plan: &[PlannedCopy],
        layout: &StagingLayout,
    ) -> Result<Vec<ManifestEntry>> {
        let failed = AtomicBool::new(false);
        let read_back = AtomicUsize::new(0);
        let outcomes: Vec<Option<Result<Staged>>> = stream::iter(plan)
            .map(|planned| {
                let (failed, read_back) = (&failed, &read_back);
                async move {
                    if failed.load(Ordering::Acquire) {
                        return None;
                    }
                    let outcome = self.stage_one(source_bucket, planned, read_back).await;
                    if outcome.is_err() {
                        failed.store(true, Ordering::Release);
                    }
                    Some(outcome)
                }
            })
            .buffer_unordered(self.settings.copy_concurrency.max(1))
            .collect()
            .await;
        let mut entries = Vec::with_capacity(plan.len());
        let mut unchecked: HashMap<&str, &PlannedCopy> = HashMap::new();
        let by_path: HashMap<&str, &PlannedCopy> =
            plan.iter().map(|p| (p.path.as_str(), p)).collect();
        let mut first_error = None;
        for outcome in outcomes.into_iter().flatten() {
            match outcome {
                Ok(staged) => {
                    if !staged.size_checked {
                        if let Some(planned) = by_path.get(staged.entry.path.as_str()) {
                            unchecked.insert(planned.staged_key.as_str(), planned);
                        }
                    }
                    entries.push(staged.entry);
                }
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        if let Some(err) = first_error {
            return Err(err);
        }
        let read_back = read_back.into_inner();
        if read_back > 0 {
            // Said once per run, so a local stack or an S3-compatible store that gives no
            // full-object SHA-256 is visible in the logs, not silently slower.
            tracing::warn!(
                files = read_back,
                "S3 returned no full-object SHA-256 for these copies: they were read back and hashed"
            );
        }
        if !unchecked.is_empty() {
            let mut copies: Vec<&PlannedCopy> = unchecked.into_values().collect();
            copies.sort_by(|a, b| a.path.cmp(&b.path));
            let staged = self.staged_sizes(layout).await?;
            staging::check_staged_sizes(&copies, &staged)?;
        }
        Ok(entries)
    }

    /// The size of every object under the request's staging prefix: one `ListObjectsV2` per
    /// 1,000 files rather than a `HeadObject` per file.
    async fn staged_sizes(&self, layout: &StagingLayout) -> Result<HashMap<String, u64>> {
        let mut sizes = HashMap::new();
        let mut continuation: Option<String> = None;
        loop {
            let page = self
                .objects
                .list_objects(
                    &self.settings.staging_bucket,
                    layout.prefix(),
                    continuation.as_deref(),
                )
                .await?;
            sizes.extend(page.objects.into_iter().map(|o| (o.key, o.size)));
            match page.next {
                Some(next) => continuation = Some(next),
                None => return Ok(sizes),
            }
        }
    }

    /// Copies one listed version and records its SHA-256: S3's own for a single copy, else
    /// the copy read back.
    async fn stage_one(
        &self,
        source_bucket: &str,
        planned: &PlannedCopy,
        read_back: &AtomicUsize,
    ) -> Result<Staged> {
        let settings = &self.settings;
        let source = ObjectRef::at_version(source_bucket, &planned.source_key, &planned.version_id);
        let destination = Destination::new(
            &settings.staging_bucket,
            &planned.staged_key,
            &settings.staging_kms_key_arn,
        );
        let staged = ObjectRef::new(&settings.staging_bucket, &planned.staged_key);
        let entry = |sha256: String, size: u64| ManifestEntry {
            path: planned.path.clone(),
            source_key: planned.source_key.clone(),
            version_id: planned.version_id.clone(),
            size,
            sha256,
        };
        if planned.listed_size > settings.multipart_copy_threshold {
            // The parts are cut from the real size, so this one copy starts with a HEAD.
            let head = self
                .objects
                .head(&source)
                .await?
                .ok_or_else(|| staging::missing_version(planned, source_bucket))?;
            if head.size != planned.listed_size {
                return Err(staging::size_mismatch(planned, head.size));
            }
            multipart::copy_multipart(
                &self.objects,
                &source,
                &destination,
                head.size,
                settings.copy_part_size,
                PART_COPY_CONCURRENCY,
            )
            .await?;
            // A multipart copy has no full-object SHA-256 in S3 (only a checksum of its parts).
            let (sha256, size) = self.sha256_of(&staged).await?;
            if size != head.size {
                return Err(EgressError::Integrity(format!(
                    "the staged copy of key {:?} has {size} bytes, the source version has {}",
                    planned.source_key, head.size
                )));
            }
            return Ok(Staged {
                entry: entry(sha256, size),
                size_checked: true,
            });
        }
        let receipt = match self.objects.copy_with_sha256(&source, &destination).await {
            Ok(receipt) => receipt,
            Err(EgressError::NotFound(_)) => {
                return Err(staging::missing_version(planned, source_bucket))
            }
            Err(err @ EgressError::Transient(_)) => return Err(err),
            // S3 refuses to copy a version above 5 GiB in one request: a snapshot that lists
            // less than the version has. Only then is the version's size asked for.
            Err(err) => {
                return Err(match self.objects.head(&source).await {
                    Ok(Some(head)) if head.size != planned.listed_size => {
                        staging::size_mismatch(planned, head.size)
                    }
                    _ => err,
                })
            }
        };
        match receipt.sha256 {
            Some(sha256) => Ok(Staged {
                entry: entry(sha256, planned.listed_size),
                size_checked: false,
            }),
            None => {
                read_back.fetch_add(1, Ordering::Relaxed);
                let (sha256, size) = self.sha256_of(&staged).await?;
                if size != planned.listed_size {
                    return Err(staging::size_mismatch(planned, size));
                }
                Ok(Staged {
                    entry: entry(sha256, size),
                    size_checked: true,
                })
            }
        }
    }

    /// Streams `object` through SHA-256: memory is one chunk, whatever the size.
    async fn sha256_of(&self, object: &ObjectRef) -> Result<(String, u64)> {
        let mut body = self.objects.get_stream(object).await?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
        }
        Ok((hex::encode(hasher.finalize()), size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{InMemoryAuditLog, InMemoryObjectStore, InMemoryRequestStore, ObjectCall};
    use crate::model::Manifest;
    use crate::ports::FixedClock;
    use crate::testdata::request;
    use time::macros::datetime;

    const CLOCK: FixedClock = FixedClock(datetime!(2024-05-01 12:00:00 UTC));
    const KMS: &str = "arn:aws:kms:eu-west-2:123456789012:key/staging";

    type World =
        StagingStep<InMemoryObjectStore, InMemoryRequestStore, InMemoryAuditLog, FixedClock>;

    fn world() -> World {
        StagingStep {
            objects: InMemoryObjectStore::new()
                .with_bucket("swb-egress", true)
                .with_bucket("swb-notify", false)
                .with_bucket("staging", false),
            requests: InMemoryRequestStore::with([request("req-1", EgressStatus::Processing)]),
            audit: InMemoryAuditLog::default(),
            clock: CLOCK,
            settings: StagingSettings::new("staging", KMS, 3),
        }
    }

    fn input() -> StagingInput {
        StagingInput {
            egress_request_id: "req-1".into(),
            workspace_id: "ws-1".into(),
            s3_egress_store_bucket: "swb-egress".into(),
            s3_egress_store_bucket_path: "ws-1/".into(),
            s3_egress_store_object_list_location: "arn:aws:s3:::swb-notify/store/ver1.json".into(),
        }
    }

    fn snapshot(w: &World, entries: &[(&str, &str, usize)]) {
        let objects: Vec<_> = entries
            .iter()
            .map(|(k, v, size)| json!({"Key": k, "VersionId": v, "Size": size, "ETag": "\"x\"", "StorageClass": "STANDARD"}))
            .collect();
        w.objects.put_object(
            "swb-notify",
            "store/ver1.json",
            serde_json::to_vec(&json!({ "objects": objects })).unwrap(),
        );
    }

    async fn run_world(w: &World) -> Result<StagingResult> {
        w.run(&input()).await
    }

    #[tokio::test]
    async fn when_a_version_was_overwritten_later_then_the_submitted_version_is_staged() {
        let w = world();
        let v1 = w
            .objects
            .put_object("swb-egress", "ws-1/a.csv", "submitted");
        w.objects
            .put_object("swb-egress", "ws-1/a.csv", "edited after submission");
        snapshot(&w, &[("ws-1/a.csv", &v1, 9)]);
        let result = run_world(&w).await.unwrap();
        assert_eq!(result.file_count, 1);
        let staged = w.objects.object("staging", "ws-1/req-1/a.csv").unwrap();
        assert_eq!(staged.data.as_ref(), b"submitted");
        assert_eq!(staged.kms_key_arn.as_deref(), Some(KMS));
        let manifest = w
            .objects
            .object("staging", ".manifests/ws-1/req-1.json")
            .unwrap();
        assert_eq!(manifest.kms_key_arn.as_deref(), Some(KMS));
        let manifest: Manifest = serde_json::from_slice(&manifest.data).unwrap();
        assert_eq!(manifest.files[0].version_id, v1);
        assert_eq!(
            manifest.files[0].sha256,
            hex::encode(Sha256::digest(b"submitted"))
        );
    }

    #[tokio::test]
    async fn when_small_files_are_staged_then_each_is_one_copy_with_s3s_sha256_and_nothing_is_read_back(
    ) {
        let w = world();
        w.objects.set_page_size(2);
        let files = ["a.csv", "b/c.txt", "d.bin", "e.json", "f"];
        let listed: Vec<(String, String, usize)> = files
            .iter()
            .map(|f| {
                let key = format!("ws-1/{f}");
                let version = w.objects.put_object("swb-egress", &key, f.repeat(3));
                (key, version, f.len() * 3)
            })
            .collect();
        let entries: Vec<(&str, &str, usize)> = listed
            .iter()
            .map(|(k, v, n)| (k.as_str(), v.as_str(), *n))
            .collect();
        snapshot(&w, &entries);
        let result = run_world(&w).await.unwrap();
        assert_eq!(result.file_count, 5);
        let calls = w.objects.calls();
        let count = |f: &dyn Fn(&ObjectCall) -> bool| calls.iter().filter(|c| f(c)).count();
        assert_eq!(count(&|c| matches!(c, ObjectCall::Head(_))), 0, "no HEAD");
        assert_eq!(
            count(&|c| matches!(
                c,
                ObjectCall::CopyWithSha256 {
                    checksum_returned: true
                }
            )),
            5
        );
        assert_eq!(
            count(&|c| matches!(c, ObjectCall::Get(o) if o.bucket == "staging")),
            0,
            "no copy is read back"
        );
        // Five sizes checked by three pages of the request's staging prefix.
        assert_eq!(
            count(
                &|c| matches!(c, ObjectCall::ListObjects { bucket, prefix } if bucket == "staging" && prefix == "ws-1/req-1/")
            ),
            3
        );
        let manifest: Manifest = serde_json::from_slice(
            &w.objects
                .object("staging", ".manifests/ws-1/req-1.json")
                .unwrap()
                .data,
        )
        .unwrap();
        for (entry, f) in manifest
            .files
            .iter()
            .zip(["a.csv", "b/c.txt", "d.bin", "e.json", "f"])
        {
            assert_eq!(entry.path, f);
            assert_eq!(entry.size, f.len() as u64 * 3);
            assert_eq!(entry.sha256, hex::encode(Sha256::digest(f.repeat(3))));
        }
    }

    #[tokio::test]
    async fn when_s3_gives_no_sha256_of_a_copy_then_the_copy_is_read_back_and_hashed() {
        let w = world();
        w.objects.without_copy_checksums();
        let v1 = w
            .objects
            .put_object("swb-egress", "ws-1/a.csv", "submitted");
        snapshot(&w, &[("ws-1/a.csv", &v1, 9)]);
        run_world(&w).await.unwrap();
        let calls = w.objects.calls();
        assert!(calls
            .iter()
            .any(|c| matches!(c, ObjectCall::Get(o) if o.bucket == "staging" && o.key == "ws-1/req-1/a.csv")));
        assert!(
            !calls
                .iter()
                .any(|c| matches!(c, ObjectCall::ListObjects { .. })),
            "the read-back already gave the size"
        );
        let manifest: Manifest = serde_json::from_slice(
            &w.objects
                .object("staging", ".manifests/ws-1/req-1.json")
                .unwrap()
                .data,
        )
        .unwrap();
        assert_eq!(
            manifest.files[0].sha256,
            hex::encode(Sha256::digest(b"submitted"))
        );
    }

    #[tokio::test]
    async fn when_a_listed_version_is_missing_then_the_copy_fails_with_todays_message_and_no_head()
    {
        let w = world();
        w.objects.put_object("swb-egress", "ws-1/a.csv", "x");
        snapshot(&w, &[("ws-1/a.csv", "gone-version", 1)]);
        let err = run_world(&w).await.unwrap_err();
        assert_eq!(err.error_type(), "NotFound");
        assert_eq!(
            err.to_string(),
            "version \"gone-version\" of key \"ws-1/a.csv\" listed in the snapshot does not exist in bucket swb-egress"
        );
        assert!(!w
            .objects
            .calls()
            .iter()
            .any(|c| matches!(c, ObjectCall::Head(_))));
    }

    #[tokio::test]
    async fn when_the_listed_size_differs_from_the_version_then_staging_fails_on_integrity() {
        let w = world();
        let v1 = w.objects.put_object("swb-egress", "ws-1/a.csv", "12345");
        snapshot(&w, &[("ws-1/a.csv", &v1, 6)]);
        let err = run_world(&w).await.unwrap_err();
        assert_eq!(err.error_type(), "IntegrityError");
        assert_eq!(
            err.to_string(),
            format!("the snapshot lists 6 bytes for key \"ws-1/a.csv\" version {v1:?}, but that version has 5 bytes")
        );
        assert!(w
            .objects
            .object("staging", ".manifests/ws-1/req-1.json")
            .is_none());
    }

    #[tokio::test]
    async fn when_an_object_is_above_the_copy_threshold_then_it_is_copied_in_parts() {
        let mut w = world();
        w.settings.multipart_copy_threshold = 1000;
        w.settings.copy_part_size = 400;
        let big: Vec<u8> = (0..2500u32).map(|i| (i % 256) as u8).collect();
        let v1 = w
            .objects
            .put_object("swb-egress", "ws-1/big.bin", big.clone());
        let v2 = w.objects.put_object("swb-egress", "ws-1/small.txt", "s");
        snapshot(
            &w,
            &[("ws-1/big.bin", &v1, 2500), ("ws-1/small.txt", &v2, 1)],
        );
        run_world(&w).await.unwrap();
        assert_eq!(
            w.objects
                .object("staging", "ws-1/req-1/big.bin")
                .unwrap()
                .data
                .as_ref(),
            big.as_slice()
        );
        let calls = w.objects.calls();
        let part_copies = calls
            .iter()
            .filter(|c| matches!(c, ObjectCall::UploadPartCopy { .. }))
            .count();
        assert_eq!(part_copies, 7);
        assert!(calls
            .iter()
            .any(|c| matches!(c, ObjectCall::CreateMultipart(d) if d.kms_key_arn == KMS)));
        assert!(calls.iter().any(|c| matches!(c, ObjectCall::Copy { source, .. } if source.key == "ws-1/small.txt" && source.version_id.as_deref() == Some(v2.as_str()))));
    }

    #[tokio::test]
    async fn when_one_copy_fails_then_copies_in_flight_finish_and_no_upload_is_left_open() {
        let mut w = world();
        w.settings.multipart_copy_threshold = 1000;
        w.settings.copy_part_size = 400;
        w.objects.yield_on_part_copy();
        let big: Vec<u8> = (0..2500u32).map(|i| (i % 256) as u8).collect();
        let v1 = w.objects.put_object("swb-egress", "ws-1/a.bin", big);
        let v2 = w.objects.put_object("swb-egress", "ws-1/c.csv", "c");
        snapshot(
            &w,
            &[
                ("ws-1/a.bin", &v1, 2500),
                ("ws-1/b.csv", "no-such-version", 1),
                ("ws-1/c.csv", &v2, 1),
            ],
        );
        let err = run_world(&w).await.unwrap_err();
        assert_eq!(err.error_type(), "NotFound", "{err}");
        assert!(err.to_string().contains("ws-1/b.csv"), "{err}");
        assert!(
            w.objects.open_uploads().is_empty(),
            "a multipart copy was dropped mid-way: {:?}",
            w.objects.open_uploads()
        );
        let copies_of_c = w
            .objects
            .calls()
            .into_iter()
            .filter(|c| matches!(c, ObjectCall::Copy { source, .. } if source.key == "ws-1/c.csv"))
            .count();
        assert_eq!(copies_of_c, 0, "no copy starts after the first failure");
    }

    #[tokio::test]
    async fn when_the_snapshot_is_not_json_then_the_error_is_a_validation_error() {
        let w = world();
        w.objects
            .put_object("swb-notify", "store/ver1.json", "not json");
        let err = run_world(&w).await.unwrap_err();
        assert_eq!(err.error_type(), "ValidationError");
        assert!(err.to_string().contains("not a valid SWB snapshot"));
    }

    #[tokio::test]
    async fn when_the_request_is_no_longer_processing_then_nothing_is_staged() {
        let w = world();
        w.requests.put(request("req-1", EgressStatus::Rejected));
        let v1 = w.objects.put_object("swb-egress", "ws-1/a.csv", "x");
        snapshot(&w, &[("ws-1/a.csv", &v1, 1)]);
        let err = run_world(&w).await.unwrap_err();
        assert_eq!(err.error_type(), "Conflict");
        assert!(w.objects.keys("staging").is_empty());
    }

    #[tokio::test]
    async fn when_staging_fails_then_the_failure_is_audited() {
        let w = world();
        snapshot(&w, &[("ws-1/a.csv", "missing-version", 1)]);
        let err = run_world(&w).await.unwrap_err();
        let events = w.audit.events();
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].action.as_str(), events[0].outcome.as_str()),
            ("staged", "failed")
        );
        assert_eq!(events[0].detail["error_type"], err.error_type());
    }
}
