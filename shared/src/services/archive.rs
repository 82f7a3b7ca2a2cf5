//! `copy-to-datalake`: write the approved files as one zip archive to the datalake and
//! remove the staged copies.
//!
//! The staged files stream through the zip writer into a multipart upload (memory: a few
//! part buffers, whatever the size; no temp file). While streaming, each file's SHA-256 and
//! size are checked against the manifest written at staging time, so what reviewers approved
//! is what leaves. The manifest itself goes into the archive. Any failure aborts the upload
//! (no partial archive becomes visible) and leaves staging untouched; the staged copies are
//! deleted only once the upload is complete and a `HeadObject` shows the archive at the size
//! written.
//!
//! Re-running is safe: the archive carries the request id and the manifest's SHA-256 as
//! metadata, so a re-run that finds its own complete archive (at the predicted size) does not
//! write it again, and a re-run after staging was already removed succeeds when that archive
//! exists.

mod checkpoint;

use std::pin::pin;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use serde_json::json;
use sha2::{Digest, Sha256};

use self::checkpoint::{Checkpoint, Position, SavedPart};
use super::multipart::{self, BufferGauge, PartSink, StartAt, UploadSettings};
pub use super::readahead::ReadAhead;
use super::readahead::Segment;
use super::{cleanup, step_audit, Step};
use crate::domain::keys::{self, StagingLayout};
use crate::domain::staging::check_manifest;
use crate::domain::transitions::final_approval;
use crate::error::{EgressError, Result};
use crate::model::{ArchiveInput, ArchiveResult, Manifest};
use crate::ports::{
    get_bytes_if_any, AuditLog, Clock, Destination, MultipartUpload, ObjectHead, ObjectRef,
    ObjectStore, RequestStore, VersionedKey, MAX_PARTS, MIN_PART_SIZE,
};
use crate::zipstream::{self, DosDateTime, ZipStreamWriter};

/// Who the audit trail names for this step.
pub const ACTOR: &str = "system:copy-to-datalake";

/// Archive metadata: the request it holds.
pub const META_REQUEST_ID: &str = "egress-request-id";
/// Archive metadata: SHA-256 of the manifest it was built from.
pub const META_MANIFEST_SHA256: &str = "egress-manifest-sha256";
/// Archive metadata: number of files (the manifest excluded).
pub const META_FILE_COUNT: &str = "egress-file-count";

const MIB: u64 = 1024 * 1024;
/// The largest checkpoint read back (a CRC-32 per file: 100,000 files take about 1 MB).
const MAX_CHECKPOINT_BYTES: u64 = 64 * MIB;

/// How the archive is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSettings {
    /// Where the staged files are.
    pub staging_bucket: String,
    /// The project's datalake bucket.
    pub datalake_bucket: String,
    /// Its customer-managed KMS key.
    pub datalake_kms_key_arn: String,
    /// Bytes per uploaded part (raised automatically to stay within 10,000 parts).
    pub part_size: u64,
    /// Part uploads in flight at once (part buffers: one more than this).
    pub upload_concurrency: usize,
    /// How far the staged files are read ahead of the zip writer.
    pub read_ahead: ReadAhead,
    /// The largest manifest read into memory.
    pub max_manifest_bytes: u64,
    /// The staging bucket's KMS key, for checkpoints (needed only when an invocation may
    /// stop before the archive is complete).
    pub staging_kms_key_arn: String,
    /// An invocation stops (and the state machine invokes it again) when less than this
    /// remains before its deadline.
    pub reserve: Duration,
    /// When set, an invocation also stops after this long (tests force continuations with it).
    pub slice: Option<Duration>,
    /// Signs the release record (evidence); `None` writes it unsigned (tests, benches).
    pub release_signer: Option<crate::evidence::release::SignerHandle>,
}

impl ArchiveSettings {
    /// Settings with `part_size` bytes per part, four uploads in flight, 8 MiB read ahead by
    /// up to 8 requests (4 MiB ranges), a 60 s reserve.
    pub fn new(
        staging_bucket: impl Into<String>,
        datalake_bucket: impl Into<String>,
        datalake_kms_key_arn: impl Into<String>,
        part_size: u64,
    ) -> Self {
        Self {
            staging_bucket: staging_bucket.into(),
            datalake_bucket: datalake_bucket.into(),
            datalake_kms_key_arn: datalake_kms_key_arn.into(),
            part_size,
            upload_concurrency: 4,
            read_ahead: ReadAhead {
                bytes: 8 * MIB,
                requests: 8,
                range_size: 4 * MIB,
            },
            max_manifest_bytes: 256 * MIB,
            staging_kms_key_arn: String::new(),
            reserve: Duration::from_secs(60),
            slice: None,
            release_signer: None,
        }
    }
}

/// `copy-to-datalake`: the step with its ports. As a [`Step`] it writes the whole archive in
/// one run; [`ArchiveStep::until`] is the same step bounded by a Lambda deadline.
#[derive(Debug)]
pub struct ArchiveStep<O, R, A, C> {
    /// The buckets.
    pub objects: O,
    /// The requests table.
    pub requests: R,
    /// The audit trail.
    pub audit: A,
    /// The server clock.
    pub clock: C,
    /// Configuration.
    pub settings: ArchiveSettings,
}

/// One invocation of [`ArchiveStep`] that must stop before `deadline`: it saves its place
/// and answers `complete: false` when time runs low, and the state machine invokes it again.
#[derive(Debug)]
pub struct ArchiveRun<'a, O, R, A, C> {
    step: &'a ArchiveStep<O, R, A, C>,
    deadline: Instant,
}

impl<O, R, A, C> ArchiveStep<O, R, A, C> {
    /// This step, for an invocation that ends at `deadline` (the Lambda context's).
    pub fn until(&self, deadline: SystemTime) -> ArchiveRun<'_, O, R, A, C> {
        let left = deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        ArchiveRun {
            step: self,
            deadline: Instant::now() + left,
        }
    }
}

impl<O: ObjectStore, R: RequestStore, A: AuditLog, C: Clock> Step for ArchiveStep<O, R, A, C> {
    type Input = ArchiveInput;
    type Output = ArchiveResult;
    const FAILED: &'static str = "archiving failed; staging is left as it was";

    /// Writes the archive of `input`'s approved request, removes staging, records the archive
    /// on the request and audits it. A failure is audited too (best effort) and returned.
    async fn run(&self, input: &ArchiveInput) -> Result<ArchiveResult> {
        self.run_within(input, None).await
    }
}

impl<O: ObjectStore, R: RequestStore, A: AuditLog, C: Clock> Step for ArchiveRun<'_, O, R, A, C> {
    type Input = ArchiveInput;
    type Output = ArchiveResult;
    const FAILED: &'static str = ArchiveStep::<O, R, A, C>::FAILED;

    /// Like [`ArchiveStep::run`], stopping at a part boundary when the deadline nears.
    async fn run(&self, input: &ArchiveInput) -> Result<ArchiveResult> {
        let budget = Budget {
            stop_at: self.deadline.checked_sub(self.step.settings.reserve),
            started: Instant::now(),
            slice: self.step.settings.slice,
        };
        self.step.run_within(input, Some(budget)).await
    }
}

/// When an invocation stops writing and saves its place.
#[derive(Debug, Clone, Copy)]
struct Budget {
    /// The deadline less the reserve (`None`: already past).
    stop_at: Option<Instant>,
    started: Instant,
    slice: Option<Duration>,
}

impl Budget {
    fn exhausted(&self) -> bool {
        let now = Instant::now();
        self.stop_at.is_none_or(|at| now >= at)
            || self.slice.is_some_and(|s| now >= self.started + s)
    }
}

impl<O: ObjectStore, R: RequestStore, A: AuditLog, C: Clock> ArchiveStep<O, R, A, C> {
    async fn run_within(
        &self,
        input: &ArchiveInput,
        budget: Option<Budget>,
    ) -> Result<ArchiveResult> {
        match self.archive(input, budget).await {
            Ok(result) if !result.complete => {
                tracing::info!(
                    egress_request_id = %input.egress_request_id,
                    written = result.size,
                    "the archive continues in the next invocation"
                );
                Ok(result)
            }
            outcome => {
                step_audit::audited(
                    &self.audit,
                    &self.clock,
                    &input.egress_request_id,
                    ACTOR,
                    "archived",
                    outcome,
                    |result| {
                        json!({
                            "bucket": result.bucket,
                            "key": result.key,
                            "size": result.size,
                            "file_count": result.file_count,
                            "deleted_staged_objects": result.deleted_staged_objects,
                        })
                    },
                )
                .await
            }
        }
    }

    async fn archive(&self, input: &ArchiveInput, budget: Option<Budget>) -> Result<ArchiveResult> {
        let settings = &self.settings;
        let objects = &self.objects;
        let id = &input.egress_request_id;
        let layout = StagingLayout::new(&input.workspace_id, id)?;
        let archive_key = keys::archive_key(&input.workspace_id, id)?;
        let archive_ref = ObjectRef::new(&settings.datalake_bucket, &archive_key);
        let checkpoint_ref = ObjectRef::new(
            &settings.staging_bucket,
            format!(".checkpoints/{}/{id}.json", input.workspace_id),
        );
        let manifest_ref = ObjectRef::new(&settings.staging_bucket, layout.manifest_key());
        // The checks report (when the checks ran) is summarised in the record.
        let checks_ref = ObjectRef::new(
            &settings.staging_bucket,
            crate::services::checks::report_key(&layout),
        );
        // The archive ends with the signed release record (evidence::release).
        let release_target = crate::evidence::release::ReleaseTarget {
            bucket: &settings.datalake_bucket,
            kms_key_arn: &settings.datalake_kms_key_arn,
            archive_key: &archive_key,
            checks_report: Some(&checks_ref),
        };
        // Everything the step reads before it writes, read at once: each is one round trip,
        // and in turn they were a tenth of a small archive's time.
        let (request, manifest_bytes, existing, saved, open_uploads, release_reads) = futures::try_join!(
            self.requests.get(id),
            get_bytes_if_any(objects, &manifest_ref, settings.max_manifest_bytes),
            objects.head(&archive_ref),
            get_bytes_if_any(objects, &checkpoint_ref, MAX_CHECKPOINT_BYTES),
            objects.list_multipart_uploads(&archive_ref.bucket, &archive_ref.key),
            crate::evidence::release::read(
                objects,
                &self.audit,
                release_target,
                id,
                settings.release_signer.is_some(),
            ),
        )?;
        let request = request
            .ok_or_else(|| EgressError::NotFound(format!("egress request {id} does not exist")))?;
        let approved = final_approval(request.approval_mode);
        if request.egress_status != approved {
            return Err(EgressError::Conflict(format!(
                "egress request {id} is {}, not {approved}: only approved data is archived",
                request.egress_status
            )));
        }
        if request.workspace_id != input.workspace_id {
            return Err(EgressError::validation(format!(
                "egress request {id} belongs to workspace {}, not {}",
                request.workspace_id, input.workspace_id
            )));
        }

        let (size, file_count) = match manifest_bytes {
            Some(bytes) => {
                let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
                    EgressError::Integrity(format!(
                        "the staging manifest {} is not valid: {e}",
                        layout.manifest_key()
                    ))
                })?;
                check_manifest(&manifest, &input.workspace_id, id)?;
                let manifest_sha = hex::encode(Sha256::digest(&bytes));
                let release = crate::evidence::release::prepare_from(
                    objects,
                    &self.audit,
                    &self.clock,
                    settings.release_signer.as_ref(),
                    release_target,
                    &request,
                    &manifest,
                    &manifest_sha,
                    release_reads,
                )
                .await?;
                let trailer: Vec<(String, Bytes)> = release
                    .entries
                    .into_iter()
                    .map(|(name, b)| (name, Bytes::from(b)))
                    .collect();
                let predicted = zipstream::predicted_size(
                    manifest
                        .files
                        .iter()
                        .map(|f| (f.path.as_str(), f.size))
                        .chain(trailer.iter().map(|(n, b)| (n.as_str(), b.len() as u64))),
                );
                let size = match existing {
                    Some(head)
                        if is_own_archive(&head, id, Some(&manifest_sha))
                            && head.size == predicted =>
                    {
                        tracing::info!(egress_request_id = %id, "the archive was already written; not writing it again");
                        if open_uploads.iter().any(|o| o.upload.key == archive_ref.key) {
                            multipart::abort_left_open(
                                objects,
                                &archive_ref.bucket,
                                &archive_ref.key,
                            )
                            .await?;
                        }
                        head.size
                    }
                    _ => {
                        let mut destination = Destination::new(
                            &settings.datalake_bucket,
                            &archive_key,
                            &settings.datalake_kms_key_arn,
                        )
                        .with_content_type("application/zip");
                        destination.metadata.extend([
                            (META_REQUEST_ID.to_string(), id.clone()),
                            (META_MANIFEST_SHA256.to_string(), manifest_sha.clone()),
                            (
                                META_FILE_COUNT.to_string(),
                                manifest.files.len().to_string(),
                            ),
                        ]);
                        let job = ArchiveJob {
                            objects,
                            settings,
                            layout: &layout,
                            manifest: &manifest,
                            trailer: &trailer,
                            manifest_sha: &manifest_sha,
                            predicted,
                            destination: &destination,
                            checkpoint_ref: &checkpoint_ref,
                            saved: saved.as_deref(),
                            open_uploads: &open_uploads,
                            budget,
                        };
                        match job.write(self.clock.now()).await? {
                            Written::Complete(written) => {
                                // An upload whose creation was answered too late for this
                                // run (the SDK asked again) is still open: aborted here.
                                futures::try_join!(
                                    confirm(objects, &archive_ref, written),
                                    multipart::abort_left_open(
                                        objects,
                                        &archive_ref.bucket,
                                        &archive_ref.key
                                    ),
                                )?;
                                written
                            }
                            Written::Partial(at) => {
                                return Ok(ArchiveResult {
                                    bucket: settings.datalake_bucket.clone(),
                                    key: archive_key,
                                    size: at,
                                    file_count: manifest.files.len() as u64,
                                    deleted_staged_objects: 0,
                                    complete: false,
                                });
                            }
                        }
                    }
                };
                (size, manifest.files.len() as u64)
            }
            None => {
                // Staging is gone: fine only if an earlier run completed this request's archive.
                let head = existing
                    .filter(|h| is_own_archive(h, id, None))
                    .ok_or_else(|| {
                        EgressError::NotFound(format!(
                            "the staging manifest {} does not exist and no archive of request {id} was written",
                            layout.manifest_key()
                        ))
                    })?;
                if open_uploads.iter().any(|o| o.upload.key == archive_ref.key) {
                    multipart::abort_left_open(objects, &archive_ref.bucket, &archive_ref.key)
                        .await?;
                }
                let files = head
                    .metadata
                    .get(META_FILE_COUNT)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                (head.size, files)
            }
        };

        // A checkpoint outlives its archive only when a run stopped between completing the
        // upload and removing it. It is not under the staged prefixes, so both go at once.
        let ((), deleted_staged_objects) = futures::try_join!(
            remove_checkpoint(objects, &checkpoint_ref),
            cleanup::delete_staged_proved(
                objects,
                &self.audit,
                &self.clock,
                ACTOR,
                id,
                &settings.staging_bucket,
                &layout,
            ),
        )?;
        self.requests
            .record_archive(id, &archive_key, &self.clock.now_iso())
            .await?;
        tracing::info!(egress_request_id = %id, size, file_count, deleted_staged_objects, "archive written to the datalake");
        crate::metrics::archived(&request, size, self.clock.now());
        Ok(ArchiveResult {
            bucket: settings.datalake_bucket.clone(),
            key: archive_key,
            size,
            file_count,
            deleted_staged_objects,
            complete: true,
        })
    }
}

/// An archive this service wrote for request `id` (and, when given, from this manifest).
fn is_own_archive(head: &ObjectHead, id: &str, manifest_sha: Option<&str>) -> bool {
    head.metadata.get(META_REQUEST_ID).map(String::as_str) == Some(id)
        && manifest_sha.is_none_or(|sha| {
            head.metadata.get(META_MANIFEST_SHA256).map(String::as_str) == Some(sha)
        })
}

/// The archive must be visible at exactly the size written before staging may go.
async fn confirm(objects: &impl ObjectStore, archive: &ObjectRef, written: u64) -> Result<()> {
    match objects.head(archive).await? {
        Some(head) if head.size == written => Ok(()),
        Some(head) => Err(EgressError::Integrity(format!(
            "the archive {archive} has {} bytes but {written} were written",
            head.size
        ))),
        None => Err(EgressError::Integrity(format!(
            "the archive {archive} is not visible after its upload completed"
        ))),
    }
}

/// Deletes every version of the checkpoint (the staging bucket may be versioned).
async fn remove_checkpoint(objects: &impl ObjectStore, checkpoint: &ObjectRef) -> Result<()> {
    let page = objects
        .list_versions(&checkpoint.bucket, &checkpoint.key, None)
        .await?;
    let versions: Vec<VersionedKey> = page
        .objects
        .into_iter()
        .filter(|o| o.key == checkpoint.key)
        .collect();
    if !versions.is_empty() {
        objects
            .delete_versions(&checkpoint.bucket, &versions)
            .await?;
    }
    Ok(())
}

/// The part size for an archive of `predicted` bytes: the configured size, raised when the
/// archive would otherwise need more parts than S3 allows (with a margin), in whole MiB. With
/// the 10% margin a 5 TiB archive (S3's object limit) takes 583 MiB parts.
pub fn part_size_for(configured: u64, predicted: u64) -> u64 {
    let needed = predicted.div_ceil(MAX_PARTS as u64 * 9 / 10);
    configured
        .max(MIN_PART_SIZE)
        .max(needed.div_ceil(MIB) * MIB)
}

/// What one invocation wrote.
enum Written {
    /// The upload is complete: the archive's size.
    Complete(u64),
    /// Stopped for time with this many bytes in accepted parts; the checkpoint is saved.
    Partial(u64),
}

/// What the producer ended with.
enum Produced {
    Finished(multipart::Finished),
    Stopped(Position),
}

struct ArchiveJob<'a, O> {
    objects: &'a O,
    settings: &'a ArchiveSettings,
    layout: &'a StagingLayout,
    manifest: &'a Manifest,
    /// The entries after the files: the release record and its signature.
    trailer: &'a [(String, Bytes)],
    manifest_sha: &'a str,
    predicted: u64,
    destination: &'a Destination,
    checkpoint_ref: &'a ObjectRef,
    /// The checkpoint as the step found it (read with the manifest).
    saved: Option<&'a [u8]>,
    /// The archive key's open uploads, listed with the manifest.
    open_uploads: &'a [crate::ports::OpenUpload],
    budget: Option<Budget>,
}

impl<O: ObjectStore> ArchiveJob<'_, O> {
    /// Name and size of entry `i` (the trailer comes after the files).
    fn entry(&self, i: usize) -> (&str, u64) {
        match self.manifest.files.get(i) {
            Some(f) => (f.path.as_str(), f.size),
            None => self
                .trailer
                .get(i - self.manifest.files.len())
                .map(|(n, b)| (n.as_str(), b.len() as u64))
                .unwrap_or(("", 0)),
        }
    }

    fn entry_count(&self) -> usize {
        self.manifest.files.len() + self.trailer.len()
    }

    /// Continues the archive from its checkpoint (or starts it), until it is complete or the
    /// budget runs out.
    async fn write(&self, now: time::OffsetDateTime) -> Result<Written> {
        let part_size = part_size_for(self.settings.part_size, self.predicted);
        let saved = self.load_checkpoint(part_size).await?;
        let checkpoint = match saved {
            Some(checkpoint) => checkpoint,
            None => {
                let ((), upload) = futures::try_join!(
                    self.abort_orphaned_uploads(),
                    self.objects.create_multipart(self.destination),
                )?;
                let checkpoint = Checkpoint {
                    version: checkpoint::VERSION,
                    upload_id: upload.upload_id,
                    manifest_sha256: self.manifest_sha.to_string(),
                    archive_size: self.predicted,
                    part_size,
                    modified: DosDateTime::from_datetime(now).to_raw(),
                    parts: Vec::new(),
                    position: Position::start(),
                };
                if self.budget.is_some() {
                    // Saved before any part, so a crash leaves an upload a retry continues
                    // rather than one nobody knows of.
                    self.save_checkpoint(&checkpoint).await?;
                }
                checkpoint
            }
        };
        let upload = MultipartUpload {
            bucket: self.destination.bucket.clone(),
            key: self.destination.key.clone(),
            upload_id: checkpoint.upload_id.clone(),
        };
        match self.continue_upload(&upload, &checkpoint).await {
            Ok(written) => Ok(written),
            Err(EgressError::NotFound(what)) if !self.is_open(&upload).await? => {
                // The upload itself was aborted under the archive (the sweep, a bucket's
                // lifecycle rule): nothing of it can be kept, but nothing is lost either.
                // The state machine retries, and the retry starts a new upload.
                if let Err(e) = remove_checkpoint(self.objects, self.checkpoint_ref).await {
                    tracing::warn!(error = %e, "removing the archive checkpoint failed");
                }
                Err(EgressError::Transient(format!(
                    "the archive's multipart upload {} was aborted while it was written \
                     ({what}); the retry starts it again",
                    upload.upload_id
                )))
            }
            Err(err) => {
                // A transient failure of a bounded invocation is retried by the state
                // machine from the checkpoint; anything else ends the archive.
                let resumable = self.budget.is_some() && err.is_transient();
                if !resumable {
                    multipart::abort(self.objects, &upload).await;
                    if let Err(e) = remove_checkpoint(self.objects, self.checkpoint_ref).await {
                        tracing::warn!(error = %e, "removing the archive checkpoint failed");
                    }
                }
                Err(err)
            }
        }
    }

    async fn continue_upload(
        &self,
        upload: &MultipartUpload,
        checkpoint: &Checkpoint,
    ) -> Result<Written> {
        let part_size = usize::try_from(checkpoint.part_size)
            .map_err(|_| EgressError::Internal("the part size does not fit in memory".into()))?;
        let settings = UploadSettings {
            part_size,
            concurrency: self.settings.upload_concurrency,
        };
        let gauge = BufferGauge::default();
        let start = StartAt {
            part: checkpoint.parts.len() as i32 + 1,
            offset: checkpoint.position.at,
        };
        let modified = DosDateTime::from_raw(checkpoint.modified);
        let (produced, parts) =
            multipart::stream_parts(self.objects, upload, settings, &gauge, start, |sink| {
                self.produce(sink, &checkpoint.position, modified, checkpoint.part_size)
            })
            .await?;
        let mut all = checkpoint.uploaded();
        all.extend(parts);
        tracing::info!(
            key = %upload.key,
            parts = all.len(),
            part_size,
            peak_buffered_bytes = gauge.peak(),
            "archive parts uploaded"
        );
        match produced {
            Produced::Finished(finished) => {
                self.objects.complete_multipart(upload, &all).await?;
                Ok(Written::Complete(finished.bytes()))
            }
            Produced::Stopped(position) => {
                let at = position.at;
                let next = Checkpoint {
                    parts: all
                        .into_iter()
                        .map(|p| SavedPart {
                            n: p.part_number,
                            e: p.e_tag,
                        })
                        .collect(),
                    position,
                    ..checkpoint.clone()
                };
                self.save_checkpoint(&next).await?;
                Ok(Written::Partial(at))
            }
        }
    }

    /// True while `upload` is still open (neither completed nor aborted).
    async fn is_open(&self, upload: &MultipartUpload) -> Result<bool> {
        let open = self
            .objects
            .list_multipart_uploads(&upload.bucket, &upload.key)
            .await?;
        Ok(open.iter().any(|o| o.upload.upload_id == upload.upload_id))
    }

    /// Aborts the open uploads of this archive's key: an earlier run that was killed (or
    /// timed out) before it could complete or abort its upload, and left no checkpoint to
    /// continue from. Nobody else writes this key, so none of them can still be in use.
    async fn abort_orphaned_uploads(&self) -> Result<()> {
        let orphans = self
            .open_uploads
            .iter()
            .filter(|o| o.upload.key == self.destination.key);
        for orphan in orphans {
            tracing::warn!(
                upload_id = %orphan.upload.upload_id,
                "aborting the upload an earlier run of this archive left open"
            );
            match self.objects.abort_multipart(&orphan.upload).await {
                // Already gone (the stale checkpoint's upload, aborted just before): done.
                Ok(()) | Err(EgressError::NotFound(_)) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    async fn load_checkpoint(&self, part_size: u64) -> Result<Option<Checkpoint>> {
        let Some(bytes) = self.saved else {
            return Ok(None);
        };
        match serde_json::from_slice::<Checkpoint>(bytes) {
            Ok(c) if c.fits(self.manifest_sha, self.predicted, part_size) => {
                tracing::info!(
                    at = c.position.at,
                    parts = c.parts.len(),
                    "continuing the archive from its checkpoint"
                );
                Ok(Some(c))
            }
            found => {
                // Another manifest, size or format: that upload cannot be continued.
                tracing::warn!("the archive checkpoint does not fit this archive; starting over");
                if let Ok(old) = found {
                    let stale = MultipartUpload {
                        bucket: self.destination.bucket.clone(),
                        key: self.destination.key.clone(),
                        upload_id: old.upload_id,
                    };
                    multipart::abort(self.objects, &stale).await;
                }
                Ok(None)
            }
        }
    }

    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        let body = serde_json::to_vec(checkpoint)
            .map_err(|e| EgressError::Internal(format!("writing the archive checkpoint: {e}")))?;
        let destination = Destination::new(
            &self.checkpoint_ref.bucket,
            &self.checkpoint_ref.key,
            &self.settings.staging_kms_key_arn,
        )
        .with_content_type("application/json");
        self.objects
            .put_bytes(&destination, Bytes::from(body))
            .await?;
        Ok(())
    }

    /// The staged objects to read, from entry `first` (its data from `from`) to the last file.
    fn segments(&self, first: usize, from: u64) -> impl Iterator<Item = Result<Segment>> + '_ {
        let read_ahead = self.settings.read_ahead;
        self.manifest
            .files
            .iter()
            .enumerate()
            .skip(first)
            .flat_map(move |(i, file)| {
                let from = if i == first { from } else { 0 };
                let key = self
                    .layout
                    .staged_key(&file.path)
                    .map_err(|e| e.to_string());
                read_ahead
                    .ranges(file.size, from)
                    .into_iter()
                    .map(move |(range, whole)| {
                        key.clone()
                            .map(|key| Segment {
                                entry: i,
                                object: ObjectRef::new(&self.settings.staging_bucket, key),
                                range,
                                whole,
                            })
                            .map_err(EgressError::validation)
                    })
            })
    }

    /// Writes the archive from `position` into `sink`: entries in manifest order, then the
    /// central directory. Stops at a part boundary when the budget is exhausted.
    async fn produce(
        &self,
        sink: PartSink,
        position: &Position,
        modified: DosDateTime,
        part_size: u64,
    ) -> Result<Produced> {
        let mut crcs = position.entry_crcs()?;
        let done = (0..position.entry).map(|i| {
            let (name, size) = self.entry(i);
            (name, size, crcs[i])
        });
        let mut zip =
            ZipStreamWriter::resume(sink, done, modified, position.at).map_err(zip_error)?;
        let mut fetched = pin!(self.settings.read_ahead.fetch(
            self.objects,
            self.segments(position.entry, position.data_done)
        ));
        let mut writer = Writer {
            budget: self.budget,
            parts_at_start: zip.get_mut().next_part(),
            part_size,
        };
        for i in position.entry..self.entry_count() {
            let (name, size) = self.entry(i);
            zip.start_entry(name, Some(size), modified)
                .map_err(zip_error)?;
            let mut sha = Sha256::new();
            let mut seen = 0;
            if i == position.entry {
                zip.skip_data(position.data_done, position.crc32)
                    .map_err(zip_error)?;
                sha = checkpoint::decode_sha(&position.sha256_state)?;
                seen = position.data_done;
            }
            let data = zip.open_entry_crc().unwrap_or((0, 0));
            if let Some(stop) = writer.drained(&mut zip, i, data, &sha, &crcs).await? {
                return Ok(Produced::Stopped(stop));
            }
            if i < self.manifest.files.len() {
                let segments = self.settings.read_ahead.ranges(size, seen).len();
                for _ in 0..segments {
                    let segment = fetched.next().await.ok_or_else(|| {
                        EgressError::Internal("the read-ahead ended early".into())
                    })??;
                    debug_assert_eq!(segment.entry, i);
                    for chunk in &segment.chunks {
                        if seen + chunk.len() as u64 > size {
                            return Err(EgressError::Integrity(format!(
                                "staged file {name:?} is larger than the {size} bytes its manifest entry records"
                            )));
                        }
                        seen += chunk.len() as u64;
                        if let Some(stop) =
                            writer.write(&mut zip, chunk, i, &mut sha, &crcs).await?
                        {
                            return Ok(Produced::Stopped(stop));
                        }
                    }
                }
                let entry = &self.manifest.files[i];
                let sha256 = hex::encode(sha.clone().finalize());
                if seen != entry.size || sha256 != entry.sha256 {
                    return Err(EgressError::Integrity(format!(
                        "staged file {:?} does not match its manifest entry: {seen} bytes with SHA-256 {sha256}, expected {} bytes with SHA-256 {}",
                        entry.path, entry.size, entry.sha256
                    )));
                }
            } else {
                let rest = self
                    .trailer
                    .get(i - self.manifest.files.len())
                    .map(|(_, b)| b.slice(seen as usize..))
                    .unwrap_or_default();
                if let Some(stop) = writer.write(&mut zip, &rest, i, &mut sha, &crcs).await? {
                    return Ok(Produced::Stopped(stop));
                }
            }
            let summary = zip.finish_entry().map_err(zip_error)?;
            // Until the descriptor is out, a boundary inside it resumes in this entry.
            let data = (summary.size, summary.crc32);
            if let Some(stop) = writer.drained(&mut zip, i, data, &sha, &crcs).await? {
                return Ok(Produced::Stopped(stop));
            }
            crcs.push(summary.crc32);
        }
        // The central directory goes out in one piece: it grows with the number of files
        // (about 100 bytes each), not with their size.
        zip.finish().map_err(zip_error)?;
        let count = self.entry_count();
        if let Some(stop) = writer
            .drained(&mut zip, count, (0, 0), &Sha256::new(), &crcs)
            .await?
        {
            return Ok(Produced::Stopped(stop));
        }
        Ok(Produced::Finished(zip.into_inner().finish().await?))
    }
}

/// Drains the sink after each write and decides, at each part boundary crossed, whether to
/// stop there.
struct Writer {
    budget: Option<Budget>,
    parts_at_start: i32,
    part_size: u64,
}

impl Writer {
    /// Writes `data` into entry `entry`, in slices that never cross a part boundary, so the
    /// hash states are exact at every boundary.
    async fn write(
        &mut self,
        zip: &mut ZipStreamWriter<PartSink>,
        data: &[u8],
        entry: usize,
        sha: &mut Sha256,
        crcs: &[u32],
    ) -> Result<Option<Position>> {
        let mut rest = data;
        while !rest.is_empty() {
            let n = zip.get_mut().max_write().min(rest.len());
            let (piece, tail) = rest.split_at(n);
            sha.update(piece);
            zip.write_data(piece).map_err(zip_error)?;
            rest = tail;
            let data = zip.open_entry_crc().unwrap_or((0, 0));
            if let Some(stop) = self.drained(zip, entry, data, sha, crcs).await? {
                return Ok(Some(stop));
            }
        }
        Ok(None)
    }

    /// Sends full parts; when a part was cut and the budget is exhausted, the position at
    /// that boundary: the writer is exactly there after a data slice, or inside `entry`'s
    /// header or descriptor with `data` (bytes done, CRC-32) of its data written.
    async fn drained(
        &mut self,
        zip: &mut ZipStreamWriter<PartSink>,
        entry: usize,
        data: (u64, u32),
        sha: &Sha256,
        crcs: &[u32],
    ) -> Result<Option<Position>> {
        let before = zip.get_mut().next_part();
        zip.get_mut().send_full_parts().await?;
        let next = zip.get_mut().next_part();
        // At least one new part per invocation, so every invocation makes progress.
        let stop = next > before
            && next > self.parts_at_start
            && self.budget.is_some_and(|b| b.exhausted());
        if !stop {
            return Ok(None);
        }
        let (data_done, crc32) = data;
        Ok(Some(Position {
            at: (next - 1) as u64 * self.part_size,
            entry,
            data_done,
            crc32,
            sha256_state: checkpoint::encode_sha(sha),
            crcs: checkpoint::encode_crcs(&crcs[..entry.min(crcs.len())]),
        }))
    }
}

fn zip_error(err: std::io::Error) -> EgressError {
    EgressError::Internal(format!("writing the zip archive failed: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fakes::{InMemoryAuditLog, InMemoryObjectStore, InMemoryRequestStore, ObjectCall};
    use crate::model::{EgressStatus, ManifestEntry};
    use crate::ports::FixedClock;
    use crate::testdata::request;
    use std::io::Read;
    use time::macros::datetime;

    const ID: &str = "req-continued";
    type TestStep =
        ArchiveStep<InMemoryObjectStore, InMemoryRequestStore, InMemoryAuditLog, FixedClock>;

    fn workspace() -> String {
        request(ID, EgressStatus::IgApproved).workspace_id
    }

    fn input() -> ArchiveInput {
        ArchiveInput {
            egress_request_id: ID.into(),
            workspace_id: workspace(),
        }
    }

    fn pattern(len: usize, seed: u32) -> Vec<u8> {
        (0..len as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
            .collect()
    }

    /// 16 MiB in 5 MiB parts: four parts; large files read in 1 MiB ranges.
    fn files() -> Vec<(String, Vec<u8>)> {
        vec![
            ("a/first.bin".into(), pattern(7 * 1024 * 1024 + 3, 1)),
            ("a/small.txt".into(), b"a small file\n".to_vec()),
            ("b/empty".into(), Vec::new()),
            ("c/last.bin".into(), pattern(9 * 1024 * 1024, 2)),
        ]
    }

    fn staged() -> TestStep {
        let objects = InMemoryObjectStore::new()
            .with_bucket("staging", false)
            .with_bucket("datalake", false);
        let layout = StagingLayout::new(&workspace(), ID).unwrap();
        let mut entries = Vec::new();
        for (path, data) in files() {
            objects.put_object("staging", &layout.staged_key(&path).unwrap(), data.clone());
            entries.push(ManifestEntry {
                path: path.clone(),
                source_key: path,
                version_id: "v1".into(),
                size: data.len() as u64,
                sha256: hex::encode(Sha256::digest(&data)),
            });
        }
        let manifest = Manifest {
            egress_request_id: ID.into(),
            workspace_id: workspace(),
            source_bucket: "egress".into(),
            snapshot_location: "arn:aws:s3:::notify/s.json".into(),
            files: entries,
        };
        objects.put_object(
            "staging",
            layout.manifest_key(),
            serde_json::to_vec(&manifest).unwrap(),
        );
        let mut settings = ArchiveSettings::new("staging", "datalake", "dkms", 5 * MIB);
        settings.staging_kms_key_arn = "skms".into();
        settings.read_ahead.range_size = MIB;
        settings.read_ahead.bytes = 3 * MIB;
        settings.read_ahead.requests = 3;
        settings.slice = Some(Duration::ZERO);
        ArchiveStep {
            objects,
            requests: InMemoryRequestStore::with([request(ID, EgressStatus::IgApproved)]),
            audit: InMemoryAuditLog::default(),
            clock: FixedClock(datetime!(2024-03-05 14:30:00 UTC)),
            settings,
        }
    }

    fn checkpoint_key() -> String {
        format!(".checkpoints/{}/{ID}.json", workspace())
    }

    fn archive_key() -> String {
        keys::archive_key(&workspace(), ID).unwrap()
    }

    /// The archive one uninterrupted run writes.
    async fn one_run() -> Vec<u8> {
        let step = staged();
        let result = step.run(&input()).await.unwrap();
        assert!(result.complete);
        step.objects
            .object("datalake", &archive_key())
            .unwrap()
            .data
            .to_vec()
    }

    /// Invokes the bounded step until it completes; returns the continuations.
    async fn until_complete(step: &TestStep) -> usize {
        let mut continuations = 0;
        loop {
            let deadline = SystemTime::now() + Duration::from_secs(900);
            let result = step.until(deadline).run(&input()).await.unwrap();
            if result.complete {
                return continuations;
            }
            continuations += 1;
            assert!(continuations < 50, "no progress");
            assert!(step.objects.object("staging", &checkpoint_key()).is_some());
            assert!(step.objects.object("datalake", &archive_key()).is_none());
        }
    }

    fn unzip(data: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(data.to_vec())).unwrap();
        (0..archive.len())
            .map(|n| {
                let mut entry = archive.by_index(n).unwrap();
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).unwrap();
                (entry.name().unwrap().to_string(), bytes)
            })
            .collect()
    }

    fn count(step: &TestStep, wanted: impl Fn(&ObjectCall) -> bool) -> usize {
        step.objects.calls().iter().filter(|c| wanted(c)).count()
    }

    #[tokio::test]
    async fn when_the_answer_to_creating_the_upload_is_lost_then_the_upload_nobody_knows_is_aborted(
    ) {
        let expected = one_run().await;
        let step = staged();
        step.objects.lose_create_answers(1);
        let result = step.run(&input()).await.unwrap();
        assert!(result.complete);
        let archive = step.objects.object("datalake", &archive_key()).unwrap();
        assert_eq!(archive.data.as_ref(), expected.as_slice());
        assert!(
            step.objects.open_uploads().is_empty(),
            "left open: {:?}",
            step.objects.open_uploads()
        );
    }

    #[tokio::test]
    async fn when_each_invocation_runs_out_of_time_then_it_continues_and_the_archive_is_byte_identical(
    ) {
        let expected = one_run().await;
        let step = staged();
        let continuations = until_complete(&step).await;
        assert!(continuations >= 3, "{continuations} continuations");
        let archive = step.objects.object("datalake", &archive_key()).unwrap();
        assert_eq!(archive.data.as_ref(), expected.as_slice());
        let entries = unzip(&archive.data);
        for ((path, data), (name, bytes)) in files().iter().zip(&entries) {
            assert_eq!((path, data), (name, bytes));
        }
        assert_eq!(entries.len(), files().len() + 1, "and the manifest");
        assert_eq!(
            count(&step, |c| matches!(c, ObjectCall::CreateMultipart(_))),
            1
        );
        assert!(step.objects.open_uploads().is_empty());
        assert!(step.objects.object("staging", &checkpoint_key()).is_none());
        assert!(step.objects.keys("staging").is_empty(), "staging removed");
        let archived = step
            .audit
            .events()
            .into_iter()
            .filter(|e| e.action == "archived")
            .count();
        assert_eq!(archived, 1, "one archived event for the whole archive");
    }

    #[tokio::test]
    async fn when_an_invocation_dies_between_two_checkpoints_then_the_next_continues_from_the_last_one(
    ) {
        let expected = one_run().await;
        let step = staged();
        let deadline = || SystemTime::now() + Duration::from_secs(900);
        for _ in 0..2 {
            assert!(!step.until(deadline()).run(&input()).await.unwrap().complete);
        }
        let saved = step
            .objects
            .object("staging", &checkpoint_key())
            .unwrap()
            .data;
        // The third invocation uploads a part and then dies before its checkpoint: the
        // state it leaves is the earlier checkpoint and one part S3 holds beyond it.
        assert!(!step.until(deadline()).run(&input()).await.unwrap().complete);
        step.objects.put_object("staging", &checkpoint_key(), saved);
        until_complete(&step).await;
        let archive = step.objects.object("datalake", &archive_key()).unwrap();
        assert_eq!(archive.data.as_ref(), expected.as_slice());
        let part3 = count(&step, |c| {
            matches!(c, ObjectCall::UploadPart { part_number: 3, .. })
        });
        assert_eq!(
            part3, 2,
            "the part written after the checkpoint is written again"
        );
        assert!(step.objects.open_uploads().is_empty());
    }

    #[tokio::test]
    async fn when_an_earlier_run_was_killed_with_its_upload_open_then_that_upload_is_aborted() {
        // A run killed after CreateMultipartUpload and before its checkpoint leaves an upload
        // nobody knows of: the next run must not leave it open beside its own.
        let expected = one_run().await;
        let step = staged();
        let orphan = step
            .objects
            .create_multipart(&Destination::new("datalake", archive_key(), "dkms"))
            .await
            .unwrap();
        until_complete(&step).await;
        assert!(
            step.objects.open_uploads().is_empty(),
            "no upload left open"
        );
        assert_eq!(
            count(
                &step,
                |c| matches!(c, ObjectCall::Abort { upload_id } if *upload_id == orphan.upload_id)
            ),
            1
        );
        let archive = step.objects.object("datalake", &archive_key()).unwrap();
        assert_eq!(archive.data.as_ref(), expected.as_slice());
    }

    #[tokio::test]
    async fn when_its_upload_is_aborted_between_invocations_then_the_retry_starts_a_new_one() {
        // The sweep or a lifecycle rule aborted the upload a checkpoint names: the next run
        // must not fail for good on NoSuchUpload, nor keep the checkpoint of a dead upload.
        let expected = one_run().await;
        let step = staged();
        let deadline = SystemTime::now() + Duration::from_secs(900);
        assert!(!step.until(deadline).run(&input()).await.unwrap().complete);
        let aborted = step.objects.open_uploads();
        assert_eq!(aborted.len(), 1);
        step.objects
            .abort_multipart(&MultipartUpload {
                bucket: "datalake".into(),
                key: archive_key(),
                upload_id: aborted[0].clone(),
            })
            .await
            .unwrap();

        let err = step.until(deadline).run(&input()).await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(err.to_string().contains(&aborted[0]), "{err}");
        assert!(step.objects.object("staging", &checkpoint_key()).is_none());

        until_complete(&step).await;
        let archive = step.objects.object("datalake", &archive_key()).unwrap();
        assert_eq!(archive.data.as_ref(), expected.as_slice());
        assert!(step.objects.open_uploads().is_empty());
    }

    #[tokio::test]
    async fn when_a_bounded_invocation_fails_for_good_then_the_upload_and_checkpoint_are_removed() {
        let step = staged();
        let deadline = SystemTime::now() + Duration::from_secs(900);
        assert!(!step.until(deadline).run(&input()).await.unwrap().complete);
        step.objects.fail_upload_part(2);
        let err = step.until(deadline).run(&input()).await.unwrap_err();
        assert!(err.to_string().contains("UploadPart 2"), "{err}");
        assert!(step.objects.open_uploads().is_empty());
        assert!(step.objects.object("staging", &checkpoint_key()).is_none());
        assert!(step.objects.object("datalake", &archive_key()).is_none());
        assert!(!step.objects.keys("staging").is_empty(), "staging kept");
    }

    #[tokio::test]
    async fn when_time_remains_then_one_bounded_invocation_writes_the_whole_archive() {
        let expected = one_run().await;
        let mut step = staged();
        step.settings.slice = None;
        let deadline = SystemTime::now() + Duration::from_secs(900);
        let result = step.until(deadline).run(&input()).await.unwrap();
        assert!(result.complete);
        let archive = step.objects.object("datalake", &archive_key()).unwrap();
        assert_eq!(archive.data.as_ref(), expected.as_slice());
    }

    #[tokio::test]
    async fn when_the_deadline_is_within_the_reserve_then_it_still_writes_one_part_and_continues() {
        let mut step = staged();
        step.settings.slice = None;
        let deadline = SystemTime::now() + Duration::from_secs(10);
        let result = step.until(deadline).run(&input()).await.unwrap();
        assert!(!result.complete);
        assert_eq!(result.size, 5 * MIB, "one part");
    }

    #[test]
    fn when_the_archive_reaches_s3s_5_tib_limit_then_its_parts_fit_within_10000() {
        let limit = 5 * 1024 * 1024 * MIB;
        let part = part_size_for(8 * MIB, limit);
        assert!(limit.div_ceil(part) <= MAX_PARTS as u64);
        assert!(part <= 5 * 1024 * MIB, "a part is at most 5 GiB");
    }

    #[test]
    fn when_the_archive_is_small_then_the_configured_part_size_applies() {
        let mib = 1024 * 1024;
        assert_eq!(part_size_for(16 * mib, 100 * mib), 16 * mib);
        // Below S3's minimum is raised to it.
        assert_eq!(part_size_for(mib, 100 * mib), 5 * mib);
    }

    #[test]
    fn when_the_archive_is_huge_then_the_part_size_grows_to_stay_within_10000_parts() {
        let mib = 1024 * 1024;
        let predicted = 500 * 1024 * mib; // 500 GiB
        let part = part_size_for(16 * mib, predicted);
        assert!(part > 16 * mib);
        assert_eq!(part % mib, 0);
        assert!(predicted.div_ceil(part) <= MAX_PARTS as u64);
    }

    /// Round trips one after another when every store call takes `LATENCY` (tokio's paused
    /// clock: the elapsed time counts them exactly).
    async fn sequential_round_trips(
        step: ArchiveStep<
            crate::fakes::Delayed<InMemoryObjectStore>,
            InMemoryRequestStore,
            InMemoryAuditLog,
            FixedClock,
        >,
    ) -> u128 {
        const LATENCY: Duration = Duration::from_millis(20);
        let started = tokio::time::Instant::now();
        let result = step.run(&input()).await.unwrap();
        assert!(result.complete);
        assert!(step
            .objects
            .inner
            .object("datalake", &archive_key())
            .is_some());
        assert!(step.objects.inner.keys("staging").is_empty());
        started.elapsed().as_millis() / LATENCY.as_millis()
    }

    #[tokio::test(start_paused = true)]
    async fn when_each_store_call_takes_a_round_trip_then_the_reads_before_and_the_clean_up_after_the_data_overlap(
    ) {
        // Three small files: one round of GETs and one part, so nearly every round trip is
        // the step's own bookkeeping around the data.
        let TestStep {
            objects,
            requests,
            audit,
            clock,
            mut settings,
        } = staged();
        let layout = StagingLayout::new(&workspace(), ID).unwrap();
        for (path, _) in files() {
            let key = layout.staged_key(&path).unwrap();
            objects.put_object("staging", &key, format!("{path}\n"));
        }
        let mut manifest: Manifest = serde_json::from_slice(
            &objects
                .object("staging", layout.manifest_key())
                .unwrap()
                .data,
        )
        .unwrap();
        for f in &mut manifest.files {
            let data = format!("{}\n", f.path);
            f.size = data.len() as u64;
            f.sha256 = hex::encode(Sha256::digest(data.as_bytes()));
        }
        objects.put_object(
            "staging",
            layout.manifest_key(),
            serde_json::to_vec(&manifest).unwrap(),
        );
        settings.slice = None;
        let step = ArchiveStep {
            objects: crate::fakes::Delayed {
                inner: std::sync::Arc::new(objects),
                delay: Duration::from_millis(20),
            },
            requests,
            audit,
            clock,
            settings,
        };
        // In turn: the reads (request, manifest, archive HEAD, checkpoint, open uploads, the
        // release's record, signature and checks report), the record's PUT, the upload's
        // creation, the files' GETs, the part, the completion, the archive's HEAD, the
        // clean-up's manifest read and listings with the checkpoint's listing, the files'
        // and the manifest's deletion, the listings confirming them: 12. Each in turn was 19.
        let rounds = sequential_round_trips(step).await;
        assert!(rounds <= 12, "{rounds} round trips one after another");
    }
}
