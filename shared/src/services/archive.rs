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

use futures::StreamExt;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::multipart::{self, BufferGauge, UploadSettings};
use super::{cleanup, step_audit, Step};
use crate::domain::keys::{self, StagingLayout};
use crate::domain::staging::check_manifest;
use crate::domain::transitions::final_approval;
use crate::error::{EgressError, Result};
use crate::model::{ArchiveInput, ArchiveResult, Manifest};
use crate::ports::{
    AuditLog, Clock, Destination, ObjectHead, ObjectRef, ObjectStore, RequestStore, MAX_PARTS,
    MIN_PART_SIZE,
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
    /// Part uploads in flight at once.
    pub upload_concurrency: usize,
    /// The largest manifest read into memory.
    pub max_manifest_bytes: u64,
}

impl ArchiveSettings {
    /// Settings with `part_size` bytes per part and two uploads in flight.
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
            upload_concurrency: 2,
            max_manifest_bytes: 256 * 1024 * 1024,
        }
    }
}

/// `copy-to-datalake`: the step with its ports.
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

impl<O: ObjectStore, R: RequestStore, A: AuditLog, C: Clock> Step for ArchiveStep<O, R, A, C> {
    type Input = ArchiveInput;
    type Output = ArchiveResult;
    const FAILED: &'static str = "archiving failed; staging is left as it was";

    /// Writes the archive of `input`'s approved request, removes staging, records the archive
    /// on the request and audits it. A failure is audited too (best effort) and returned.
    async fn run(&self, input: &ArchiveInput) -> Result<ArchiveResult> {
        match archive(
            &self.objects,
            &self.requests,
            &self.clock,
            &self.settings,
            input,
        )
        .await
        {
            Ok(result) => {
                let event = step_audit::success(
                    &self.clock,
                    &input.egress_request_id,
                    ACTOR,
                    "archived",
                    json!({
                        "bucket": result.bucket,
                        "key": result.key,
                        "size": result.size,
                        "file_count": result.file_count,
                        "deleted_staged_objects": result.deleted_staged_objects,
                    }),
                );
                self.audit.append(&event).await?;
                Ok(result)
            }
            Err(err) => {
                step_audit::failure(
                    &self.audit,
                    &self.clock,
                    &input.egress_request_id,
                    ACTOR,
                    "archived",
                    &err,
                )
                .await;
                Err(err)
            }
        }
    }
}

async fn archive(
    objects: &impl ObjectStore,
    requests: &impl RequestStore,
    clock: &impl Clock,
    settings: &ArchiveSettings,
    input: &ArchiveInput,
) -> Result<ArchiveResult> {
    let id = &input.egress_request_id;
    let layout = StagingLayout::new(&input.workspace_id, id)?;
    let archive_key = keys::archive_key(&input.workspace_id, id)?;
    let request = requests
        .get(id)
        .await?
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
    let archive_ref = ObjectRef::new(&settings.datalake_bucket, &archive_key);
    let manifest_ref = ObjectRef::new(&settings.staging_bucket, layout.manifest_key());
    let manifest_bytes = match objects
        .get_bytes(&manifest_ref, settings.max_manifest_bytes)
        .await
    {
        Ok(bytes) => Some(bytes),
        Err(EgressError::NotFound(_)) => None,
        Err(err) => return Err(err),
    };

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
            let manifest_name = keys::archive_manifest_name(id);
            let predicted = zipstream::predicted_size(
                manifest
                    .files
                    .iter()
                    .map(|f| (f.path.as_str(), f.size))
                    .chain([(manifest_name.as_str(), bytes.len() as u64)]),
            );
            let existing = objects.head(&archive_ref).await?;
            let size = match existing {
                Some(head)
                    if is_own_archive(&head, id, Some(&manifest_sha)) && head.size == predicted =>
                {
                    tracing::info!(egress_request_id = %id, "the archive was already written; not writing it again");
                    head.size
                }
                _ => {
                    let job = ArchiveJob {
                        settings,
                        layout: &layout,
                        manifest: &manifest,
                        manifest_bytes: &bytes,
                        manifest_name: &manifest_name,
                        modified: DosDateTime::from_datetime(clock.now()),
                    };
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
                    let written = job.write(objects, &destination, predicted).await?;
                    confirm(objects, &archive_ref, written).await?;
                    written
                }
            };
            (size, manifest.files.len() as u64)
        }
        None => {
            // Staging is gone: fine only if an earlier run completed this request's archive.
            let head = objects
                .head(&archive_ref)
                .await?
                .filter(|h| is_own_archive(h, id, None))
                .ok_or_else(|| {
                    EgressError::NotFound(format!(
                        "the staging manifest {} does not exist and no archive of request {id} was written",
                        layout.manifest_key()
                    ))
                })?;
            let files = head
                .metadata
                .get(META_FILE_COUNT)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            (head.size, files)
        }
    };

    let deleted_staged_objects =
        cleanup::delete_staged(objects, &settings.staging_bucket, &layout).await?;
    requests
        .record_archive(id, &archive_key, &clock.now_iso())
        .await?;
    tracing::info!(egress_request_id = %id, size, file_count, deleted_staged_objects, "archive written to the datalake");
    Ok(ArchiveResult {
        bucket: settings.datalake_bucket.clone(),
        key: archive_key,
        size,
        file_count,
        deleted_staged_objects,
    })
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

/// The part size for an archive of `predicted` bytes: the configured size, raised when the
/// archive would otherwise need more parts than S3 allows (with a margin), in whole MiB.
pub fn part_size_for(configured: u64, predicted: u64) -> u64 {
    const MIB: u64 = 1024 * 1024;
    let needed = predicted.div_ceil(MAX_PARTS as u64 * 9 / 10);
    configured
        .max(MIN_PART_SIZE)
        .max(needed.div_ceil(MIB) * MIB)
}

struct ArchiveJob<'a> {
    settings: &'a ArchiveSettings,
    layout: &'a StagingLayout,
    manifest: &'a Manifest,
    manifest_bytes: &'a [u8],
    manifest_name: &'a str,
    modified: DosDateTime,
}

impl ArchiveJob<'_> {
    /// Streams the zip into a multipart upload; returns the bytes written.
    async fn write(
        &self,
        objects: &impl ObjectStore,
        destination: &Destination,
        predicted: u64,
    ) -> Result<u64> {
        let upload = UploadSettings {
            part_size: usize::try_from(part_size_for(self.settings.part_size, predicted)).map_err(
                |_| EgressError::Internal("the part size does not fit in memory".into()),
            )?,
            concurrency: self.settings.upload_concurrency,
        };
        let gauge = BufferGauge::default();
        let ((), written) =
            multipart::upload_stream(objects, destination, upload, &gauge, |sink| async move {
                let mut zip = ZipStreamWriter::new(sink);
                for entry in &self.manifest.files {
                    self.add_staged_file(objects, &mut zip, entry).await?;
                }
                zip.start_entry(
                    self.manifest_name,
                    Some(self.manifest_bytes.len() as u64),
                    self.modified,
                )
                .map_err(zip_error)?;
                let max_write = zip.get_mut().max_write();
                for piece in self.manifest_bytes.chunks(max_write) {
                    zip.write_data(piece).map_err(zip_error)?;
                    zip.get_mut().send_full_parts().await?;
                }
                zip.finish_entry().map_err(zip_error)?;
                // The central directory goes out in one piece: it grows with the number of
                // files (about 100 bytes each), not with their size.
                zip.finish().map_err(zip_error)?;
                let finished = zip.into_inner().finish().await?;
                Ok(((), finished))
            })
            .await?;
        tracing::info!(
            key = %destination.key,
            written,
            part_size = upload.part_size,
            peak_buffered_bytes = gauge.peak(),
            "archive upload completed"
        );
        Ok(written)
    }

    /// Streams one staged file into the zip, checking it against its manifest entry.
    async fn add_staged_file(
        &self,
        objects: &impl ObjectStore,
        zip: &mut ZipStreamWriter<multipart::PartSink>,
        entry: &crate::model::ManifestEntry,
    ) -> Result<()> {
        let staged = ObjectRef::new(
            &self.settings.staging_bucket,
            self.layout.staged_key(&entry.path)?,
        );
        let mut body = objects.get_stream(&staged).await?;
        zip.start_entry(&entry.path, Some(entry.size), self.modified)
            .map_err(zip_error)?;
        zip.get_mut().send_full_parts().await?;
        let max_write = zip.get_mut().max_write();
        let mut hasher = Sha256::new();
        let mut seen = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            for piece in chunk.chunks(max_write) {
                seen += piece.len() as u64;
                if seen > entry.size {
                    return Err(EgressError::Integrity(format!(
                        "staged file {:?} is larger than the {} bytes its manifest entry records",
                        entry.path, entry.size
                    )));
                }
                hasher.update(piece);
                zip.write_data(piece).map_err(zip_error)?;
                zip.get_mut().send_full_parts().await?;
            }
        }
        let sha256 = hex::encode(hasher.finalize());
        if seen != entry.size || sha256 != entry.sha256 {
            return Err(EgressError::Integrity(format!(
                "staged file {:?} does not match its manifest entry: {seen} bytes with SHA-256 {sha256}, expected {} bytes with SHA-256 {}",
                entry.path, entry.size, entry.sha256
            )));
        }
        zip.finish_entry().map_err(zip_error)?;
        zip.get_mut().send_full_parts().await?;
        Ok(())
    }
}

fn zip_error(err: std::io::Error) -> EgressError {
    EgressError::Internal(format!("writing the zip archive failed: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
