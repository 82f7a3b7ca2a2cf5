//! `copy-to-staging`: copy exactly the submitted object versions into the staging bucket,
//! record a SHA-256 of every staged copy, check each file's content on the way (the output
//! checks, issue 12) and write the manifest the review and the archive rely on.
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
//!
//! With the checks' policies ([`StagingSettings::with_checks`], as deployed), a file up to
//! [`checks::CHECKED_WHILE_STAGED_BYTES`] is instead read (its listed version), checked, and
//! written with the SHA-256 of the bytes read, which S3 verifies; a larger one up to 5 GiB is
//! read in ranges and checked while S3 copies it, and the bytes read must hash to S3's
//! checksum of the copy. The findings are written beside the manifest, before it
//! ([`checks::staged_checks_key`]), for `check-outputs` to take over.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::{stream, StreamExt};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::checks::{self, StagedChecks, StagedFileChecks};
use super::{multipart, step_audit, Step};
use crate::checks::{FileChecker, FileReport, Policy, ProjectPolicies};
use crate::domain::intake::parse_s3_arn;
use crate::domain::keys::StagingLayout;
use crate::domain::staging::{self, PlannedCopy};
use crate::error::{EgressError, Result};
use crate::model::{EgressStatus, ManifestEntry, Snapshot, StagingInput, StagingResult};
use crate::ports::{
    AuditLog, Clock, CopyReceipt, Destination, ObjectRef, ObjectStore, RequestStore,
    MAX_SINGLE_COPY,
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
    /// The output checks' policies, when staging checks the files it stages (see
    /// [`checks::checked_while_staged`] and [`checks::checked_while_copied`]); `None`: every
    /// file is left to `check-outputs`.
    pub checks: Option<ProjectPolicies>,
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
            checks: None,
        }
    }

    /// The same settings, checking the files as they are staged under `policies`.
    pub fn with_checks(mut self, policies: ProjectPolicies) -> Self {
        self.checks = Some(policies);
        self
    }
}

/// Part copies of one object in flight at once.
const PART_COPY_CONCURRENCY: usize = 4;

/// Most files checked as they are staged at once: each is two round trips (its read, its
/// write) where a copy is one, and small. Four times `copy_concurrency`, at most
/// [`MAX_CHECKED_AT_ONCE`]. Each is held whole while in flight: at most 32 files of
/// [`checks::CHECKED_WHILE_STAGED_BYTES`] (256 MiB), within the function's memory
/// (`CheckOutputsMemoryMB`, at least 1,024 MB).
fn checked_at_once(copy_concurrency: usize) -> usize {
    copy_concurrency
        .saturating_mul(4)
        .clamp(1, MAX_CHECKED_AT_ONCE)
}

/// See [`checked_at_once`].
const MAX_CHECKED_AT_ONCE: usize = 32;

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

/// One staged file: its manifest entry, whether its size was read from the copy itself
/// (else the listing of the staging prefix checks it), and its checks when it was checked as
/// it was staged.
struct Staged {
    entry: ManifestEntry,
    size_checked: bool,
    checks: Option<Vec<FileReport>>,
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
        let policy = settings
            .checks
            .as_ref()
            .map(|policies| policies.for_project(&request.project_id));
        let (entries, checked) = self
            .stage_all(&input.s3_egress_store_bucket, &plan, &layout, policy)
            .await?;
        if let Some(policy) = policy.filter(|_| !checked.is_empty()) {
            // Written before the manifest: a manifest present means both are.
            self.write_staged_checks(&input.egress_request_id, &layout, policy, checked)
                .await?;
        }
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

    /// Stages every planned copy, `copy_concurrency` at a time (the files checked as they
    /// are staged, up to [`checked_at_once`] at a time beside them), then checks the sizes
    /// that no read-back checked. After the first failure no new copy starts, but the copies
    /// already in flight run to their end rather than being dropped: a dropped multipart copy
    /// would never reach its `AbortMultipartUpload`.
    async fn stage_all(
        &self,
        source_bucket: &str,
        plan: &[PlannedCopy],
        layout: &StagingLayout,
        policy: Option<&Policy>,
    ) -> Result<(Vec<ManifestEntry>, Vec<StagedFileChecks>)> {
        let failed = AtomicBool::new(false);
        let read_back = AtomicUsize::new(0);
        let checks_it = |planned: &PlannedCopy| {
            policy.is_some() && checks::checked_while_staged(&planned.path, planned.listed_size)
        };
        let stage =
            |planned| self.stage_unless_failed(source_bucket, planned, &read_back, policy, &failed);
        let copy_concurrency = self.settings.copy_concurrency.max(1);
        let copied = stream::iter(plan.iter().filter(|p| !checks_it(p)))
            .map(stage)
            .buffer_unordered(copy_concurrency)
            .collect::<Vec<_>>();
        let checked = stream::iter(plan.iter().filter(|p| checks_it(p)))
            .map(stage)
            .buffer_unordered(checked_at_once(copy_concurrency))
            .collect::<Vec<_>>();
        let (copied, checked) = futures::join!(copied, checked);
        let outcomes: Vec<Option<Result<Staged>>> = copied.into_iter().chain(checked).collect();
        let mut entries = Vec::with_capacity(plan.len());
        let mut checked = Vec::new();
        let mut unchecked: HashMap<&str, &PlannedCopy> = HashMap::new();
        let by_path: HashMap<&str, &PlannedCopy> =
            plan.iter().map(|p| (p.path.as_str(), p)).collect();
        let mut first_error = None;
        for outcome in outcomes.into_iter().flatten() {
            match outcome {
                Ok(mut staged) => {
                    if let Some(reports) = staged.checks.take() {
                        checked.push(StagedFileChecks {
                            path: staged.entry.path.clone(),
                            sha256: staged.entry.sha256.clone(),
                            reports,
                        });
                    }
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
        checked.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((entries, checked))
    }

    /// [`Self::stage_one`], unless a file failed already (`None`); a failure raises `failed`.
    async fn stage_unless_failed(
        &self,
        source_bucket: &str,
        planned: &PlannedCopy,
        read_back: &AtomicUsize,
        policy: Option<&Policy>,
        failed: &AtomicBool,
    ) -> Option<Result<Staged>> {
        if failed.load(Ordering::Acquire) {
            return None;
        }
        let outcome = self
            .stage_one(source_bucket, planned, read_back, policy)
            .await;
        if outcome.is_err() {
            failed.store(true, Ordering::Release);
        }
        Some(outcome)
    }

    /// Writes the checks made while staging beside the manifest, for `check-outputs`.
    async fn write_staged_checks(
        &self,
        egress_request_id: &str,
        layout: &StagingLayout,
        policy: &Policy,
        files: Vec<StagedFileChecks>,
    ) -> Result<()> {
        let staged = StagedChecks {
            egress_request_id: egress_request_id.to_string(),
            policy_version: policy.version.clone(),
            policy_sha256: checks::policy_fingerprint(policy),
            files,
        };
        let body = serde_json::to_vec(&staged).map_err(|e| {
            EgressError::Internal(format!("the staging checks cannot be serialised: {e}"))
        })?;
        self.objects
            .put_bytes(
                &Destination::new(
                    &self.settings.staging_bucket,
                    checks::staged_checks_key(layout),
                    &self.settings.staging_kms_key_arn,
                )
                .with_content_type("application/json"),
                body.into(),
            )
            .await?;
        Ok(())
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
        policy: Option<&Policy>,
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
        if let Some(policy) =
            policy.filter(|_| checks::checked_while_staged(&planned.path, planned.listed_size))
        {
            let (sha256, reports) = self
                .stage_checked(source_bucket, &source, destination, planned, policy)
                .await?;
            return Ok(Staged {
                entry: entry(sha256, planned.listed_size),
                size_checked: true,
                checks: Some(reports),
            });
        }
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
                checks: None,
            });
        }
        let copy = self.copy_listed(source_bucket, &source, &destination, planned);
        let checking = policy.filter(|_| {
            checks::checked_while_copied(
                &planned.path,
                planned.listed_size,
                settings.multipart_copy_threshold,
            )
        });
        // A larger file is read and checked while S3 copies it: the step waits for the
        // slower of the two, not for both.
        let (receipt, read) = match checking {
            Some(policy) => {
                let read = self.read_and_check(source_bucket, &source, planned, policy);
                let (receipt, read) = tokio::try_join!(copy, read)?;
                (receipt, Some(read))
            }
            None => (copy.await?, None),
        };
        let (sha256, size_checked) = match receipt.sha256 {
            Some(sha256) => (sha256, false),
            None => {
                read_back.fetch_add(1, Ordering::Relaxed);
                let (sha256, size) = self.sha256_of(&staged).await?;
                if size != planned.listed_size {
                    return Err(staging::size_mismatch(planned, size));
                }
                (sha256, true)
            }
        };
        if let Some((read_sha256, _)) = &read {
            // Two independent views of the same bytes: what was read and checked, and S3's
            // checksum of the copy.
            if *read_sha256 != sha256 {
                return Err(EgressError::Integrity(format!(
                    "key {:?} version {:?}: the bytes checked hash to {read_sha256}, its staged copy to {sha256}",
                    planned.source_key, planned.version_id
                )));
            }
        }
        Ok(Staged {
            entry: entry(sha256, planned.listed_size),
            size_checked,
            checks: read.map(|(_, reports)| reports),
        })
    }

    /// One `CopyObject` of the listed version, asking S3 for the copy's SHA-256; a missing
    /// version or a size the snapshot got wrong is named as such.
    async fn copy_listed(
        &self,
        source_bucket: &str,
        source: &ObjectRef,
        destination: &Destination,
        planned: &PlannedCopy,
    ) -> Result<CopyReceipt> {
        match self.objects.copy_with_sha256(source, destination).await {
            Ok(receipt) => Ok(receipt),
            Err(EgressError::NotFound(_)) => Err(staging::missing_version(planned, source_bucket)),
            Err(err @ EgressError::Transient(_)) => Err(err),
            // S3 refuses to copy a version above 5 GiB in one request: a snapshot that lists
            // less than the version has. Only then is the version's size asked for.
            Err(err) => Err(match self.objects.head(source).await {
                Ok(Some(head)) if head.size != planned.listed_size => {
                    staging::size_mismatch(planned, head.size)
                }
                _ => err,
            }),
        }
    }

    /// Reads the listed version in ranges several at once (as `check-outputs` reads a large
    /// staged file) and checks it under `policy`: its SHA-256 and its reports.
    async fn read_and_check(
        &self,
        source_bucket: &str,
        source: &ObjectRef,
        planned: &PlannedCopy,
        policy: &Policy,
    ) -> Result<(String, Vec<FileReport>)> {
        let mut checker = FileChecker::new(policy, &planned.path)
            .with_table_thread(crate::checks::table_thread_pays(planned.listed_size));
        let mut hasher = Sha256::new();
        let read = checks::read_in_ranges(&self.objects, source, planned.listed_size, |chunk| {
            hasher.update(chunk);
            checker.feed(chunk);
        })
        .await;
        match read {
            Ok(read) if read == planned.listed_size => {
                Ok((hex::encode(hasher.finalize()), checker.finish()))
            }
            Ok(read) if read < planned.listed_size => Err(staging::size_mismatch(planned, read)),
            // Larger than listed: its real size says by how much.
            Ok(_) => Err(match self.objects.head(source).await? {
                Some(head) => staging::size_mismatch(planned, head.size),
                None => staging::missing_version(planned, source_bucket),
            }),
            Err(EgressError::NotFound(_)) => Err(staging::missing_version(planned, source_bucket)),
            Err(err) => Err(err),
        }
    }

    /// Stages a small file by reading the listed version whole, checking it under `policy`
    /// and writing it with the SHA-256 of what was read, which S3 verifies: a `GetObject` and
    /// a `PutObject` where a `CopyObject` was, and the bytes `check-outputs` would read again
    /// checked once, here. Returns the SHA-256 and the file's reports.
    async fn stage_checked(
        &self,
        source_bucket: &str,
        source: &ObjectRef,
        destination: Destination,
        planned: &PlannedCopy,
        policy: &Policy,
    ) -> Result<(String, Vec<FileReport>)> {
        let body = match self.objects.get_bytes(source, planned.listed_size).await {
            Ok(body) => body,
            Err(EgressError::NotFound(_)) => {
                return Err(staging::missing_version(planned, source_bucket))
            }
            // Larger than the snapshot lists: its real size says by how much.
            Err(err @ EgressError::Validation(_)) => {
                return Err(match self.objects.head(source).await {
                    Ok(Some(head)) => staging::size_mismatch(planned, head.size),
                    _ => err,
                })
            }
            Err(err) => return Err(err),
        };
        if body.len() as u64 != planned.listed_size {
            return Err(staging::size_mismatch(planned, body.len() as u64));
        }
        let sha256 = hex::encode(Sha256::digest(&body));
        let destination = destination.with_sha256(&sha256);
        let write = self.objects.put_bytes(&destination, body.clone());
        // The write is under way while the bytes are checked (CPU, this thread).
        let check = async {
            let mut checker = FileChecker::new(policy, &planned.path);
            checker.feed(&body);
            checker.finish()
        };
        let (written, reports) = tokio::join!(write, check);
        written?;
        Ok((sha256, reports))
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

    /// The manifest's key for `input()`.
    const MANIFEST: &str = ".manifests/ws-1/req-1.json";

    /// The manifest staging wrote.
    fn stored_manifest(w: &World) -> Manifest {
        serde_json::from_slice(&w.objects.object("staging", MANIFEST).unwrap().data).unwrap()
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
        let manifest = stored_manifest(&w);
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
        let manifest = stored_manifest(&w);
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
        assert!(w.objects.object("staging", MANIFEST).is_none());
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

    /// The world, staging with the default checks.
    fn checking_world() -> World {
        let mut w = world();
        w.settings = w.settings.with_checks(ProjectPolicies::default());
        w
    }

    /// Puts each `(name, body)` under `ws-1/` and lists it in the snapshot.
    fn submit(w: &World, files: &[(&str, Vec<u8>)]) {
        let listed: Vec<(String, String, usize)> = files
            .iter()
            .map(|(name, body)| {
                let key = format!("ws-1/{name}");
                let version = w.objects.put_object("swb-egress", &key, body.clone());
                (key, version, body.len())
            })
            .collect();
        let entries: Vec<(&str, &str, usize)> = listed
            .iter()
            .map(|(k, v, n)| (k.as_str(), v.as_str(), *n))
            .collect();
        snapshot(w, &entries);
    }

    #[tokio::test]
    async fn when_staging_checks_then_small_files_are_read_once_and_written_larger_ones_checked_while_copied_all_beside_the_manifest(
    ) {
        let w = checking_world();
        let big = vec![b'x'; checks::CHECKED_WHILE_STAGED_BYTES as usize + 1];
        submit(
            &w,
            &[
                ("counts.csv", b"region,count\nnorth,3\nsouth,120\n".to_vec()),
                ("notes.txt", b"mean 3.2\n".to_vec()),
                ("acro/results.json", b"{}".to_vec()),
                ("big.bin", big.clone()),
            ],
        );
        run_world(&w).await.unwrap();
        let calls = w.objects.calls();
        let written_with_sha: Vec<&str> = calls
            .iter()
            .filter_map(|c| match c {
                ObjectCall::Put(d) if d.sha256.is_some() => Some(d.key.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(written_with_sha.len(), 2, "{written_with_sha:?}");
        let copies = calls
            .iter()
            .filter(|c| matches!(c, ObjectCall::CopyWithSha256 { .. }))
            .count();
        assert_eq!(
            copies, 2,
            "ACRO's results and the large file are copied by S3"
        );
        assert!(calls
            .iter()
            .all(|c| !matches!(c, ObjectCall::Get(o) if o.bucket == "staging")));
        for (name, body) in [
            ("counts.csv", &b"region,count\nnorth,3\nsouth,120\n"[..]),
            ("big.bin", &big[..]),
        ] {
            let staged = w.objects.object("staging", &format!("ws-1/req-1/{name}"));
            assert_eq!(staged.unwrap().data.as_ref(), body, "{name}");
        }
        let manifest = stored_manifest(&w);
        let stored = w
            .objects
            .object("staging", ".manifests/ws-1/req-1.staged-checks.json")
            .unwrap();
        assert_eq!(stored.kms_key_arn.as_deref(), Some(KMS));
        let staged: StagedChecks = serde_json::from_slice(&stored.data).unwrap();
        assert_eq!(staged.egress_request_id, "req-1");
        let policy = ProjectPolicies::default();
        let policy = policy.for_project("project-alpha");
        assert_eq!(staged.policy_sha256, checks::policy_fingerprint(policy));
        let paths: Vec<&str> = staged.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["big.bin", "counts.csv", "notes.txt"]);
        for file in &staged.files {
            let entry = manifest.files.iter().find(|e| e.path == file.path).unwrap();
            assert_eq!(file.sha256, entry.sha256);
        }
        let counts = &staged.files[1].reports[0];
        assert_eq!(counts.path, "counts.csv");
        assert!(
            counts
                .findings
                .iter()
                .any(|f| f.rule == crate::checks::rules::SMALL_COUNTS.id),
            "{counts:?}"
        );
    }

    #[tokio::test]
    async fn when_a_checked_file_is_not_the_size_listed_then_staging_fails_naming_it_and_writes_no_manifest(
    ) {
        // Small files (read whole) and larger ones (read in ranges while S3 copies them).
        let big = checks::CHECKED_WHILE_STAGED_BYTES as usize;
        for (real, listed) in [
            (10usize, 9usize),
            (10, 11),
            (big + 10, big + 9),
            (big + 10, big + 11),
        ] {
            let w = checking_world();
            let v1 = w
                .objects
                .put_object("swb-egress", "ws-1/a.csv", vec![b'1'; real]);
            snapshot(&w, &[("ws-1/a.csv", &v1, listed)]);
            let err = run_world(&w).await.unwrap_err();
            assert_eq!(err.error_type(), "IntegrityError", "{err}");
            assert!(err.to_string().contains("ws-1/a.csv"), "{err}");
            assert!(
                err.to_string()
                    .contains(&format!("that version has {real} bytes")),
                "{err}"
            );
            assert!(w.objects.object("staging", MANIFEST).is_none());
        }
    }

    #[tokio::test]
    async fn when_a_checked_version_is_missing_then_staging_fails_naming_it() {
        let w = checking_world();
        snapshot(&w, &[("ws-1/a.csv", "v-gone", 3)]);
        let err = run_world(&w).await.unwrap_err();
        assert_eq!(err.error_type(), "NotFound", "{err}");
        assert!(err.to_string().contains("v-gone"), "{err}");
    }

    #[tokio::test]
    async fn when_check_outputs_follows_a_checking_stage_then_it_reads_only_what_was_not_checked_and_reports_the_same(
    ) {
        use crate::fakes::Delayed;
        use crate::services::checks::ChecksStep;
        use std::sync::Arc;
        let big = {
            let mut b = b"region,count\n".to_vec();
            while b.len() <= checks::CHECKED_WHILE_STAGED_BYTES as usize {
                b.extend_from_slice(b"south,450\n");
            }
            b.extend_from_slice(b"east,4\n");
            b
        };
        let files = [
            ("counts.csv", b"region,count\nnorth,3\nsouth,120\n".to_vec()),
            ("nhs.txt", b"patient 943 476 5919 seen\n".to_vec()),
            ("notes.txt", b"mean 3.2\n".to_vec()),
            ("big.csv", big),
        ];
        let mut reports = Vec::new();
        for checking in [false, true] {
            let w = if checking { checking_world() } else { world() };
            submit(&w, &files);
            let objects = Arc::new(w.objects);
            let staging = StagingStep {
                objects: Delayed {
                    inner: objects.clone(),
                    delay: std::time::Duration::ZERO,
                },
                requests: w.requests,
                audit: InMemoryAuditLog::default(),
                clock: CLOCK,
                settings: w.settings,
            };
            staging.run(&input()).await.unwrap();
            let before = objects.calls().len();
            let checks = ChecksStep {
                objects: Delayed {
                    inner: objects.clone(),
                    delay: std::time::Duration::ZERO,
                },
                audit: InMemoryAuditLog::default(),
                clock: CLOCK,
                staging_bucket: "staging".into(),
                staging_kms_key_arn: KMS.into(),
                policies: ProjectPolicies::default(),
                malware_wait: None,
            };
            let out = checks
                .run(&crate::model::ChecksInput {
                    egress_request_id: "req-1".into(),
                    workspace_id: "ws-1".into(),
                    project_id: "project-alpha".into(),
                })
                .await
                .unwrap();
            let read: Vec<String> = objects.calls()[before..]
                .iter()
                .filter_map(|c| match c {
                    ObjectCall::Get(o) if o.key.starts_with("ws-1/req-1/") => Some(o.key.clone()),
                    _ => None,
                })
                .collect();
            if checking {
                assert!(read.is_empty(), "nothing is read again: {read:?}");
            } else {
                assert_eq!(
                    read.len(),
                    3 + 2,
                    "three small files, the large in two ranges"
                );
            }
            let report: crate::checks::Report =
                serde_json::from_slice(&objects.object("staging", &out.report_key).unwrap().data)
                    .unwrap();
            assert_ne!(out.verdict, "pass", "a small count and an NHS number");
            let audited = checks.audit.events().pop().unwrap();
            assert_eq!(audited.action, "output_checks");
            assert_eq!(
                audited.detail["checked_while_staged"],
                if checking { 4 } else { 0 },
                "the trail says where each file was checked"
            );
            reports.push(report);
        }
        assert_eq!(reports[0], reports[1], "the same report either way");
        let paths: Vec<&str> = reports[1].files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["big.csv", "counts.csv", "nhs.txt", "notes.txt"]);
    }

    #[tokio::test(start_paused = true)]
    async fn when_small_files_are_checked_as_staged_then_four_times_as_many_are_in_flight() {
        use crate::fakes::Delayed;
        use std::sync::Arc;
        let w = checking_world();
        let files: Vec<(String, Vec<u8>)> = (0..96)
            .map(|i| (format!("f{i:03}.txt"), format!("mean {i}\n").into_bytes()))
            .collect();
        let named: Vec<(&str, Vec<u8>)> =
            files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
        submit(&w, &named);
        let round_trip = std::time::Duration::from_millis(20);
        let step = StagingStep {
            objects: Delayed {
                inner: Arc::new(w.objects),
                delay: round_trip,
            },
            requests: w.requests,
            audit: InMemoryAuditLog::default(),
            clock: CLOCK,
            settings: StagingSettings::new("staging", KMS, 8)
                .with_checks(ProjectPolicies::default()),
        };
        let started = tokio::time::Instant::now();
        step.run(&input()).await.unwrap();
        let took = started.elapsed();
        // The snapshot, 96 files of two round trips 32 at a time (6), the checks and the
        // manifest: 9 round trips; 8 at a time would take 27.
        assert_eq!(took, round_trip * 9, "{took:?}");
    }

    #[tokio::test]
    async fn when_the_bytes_checked_differ_from_s3s_copy_then_staging_fails_on_integrity() {
        let w = checking_world();
        let big = vec![b'x'; checks::CHECKED_WHILE_STAGED_BYTES as usize + 1];
        submit(&w, &[("big.bin", big)]);
        w.objects.corrupt_copies();
        let err = run_world(&w).await.unwrap_err();
        assert_eq!(err.error_type(), "IntegrityError", "{err}");
        assert!(
            err.to_string().contains("the bytes checked hash to"),
            "{err}"
        );
        assert!(w.objects.object("staging", MANIFEST).is_none());
    }
}
