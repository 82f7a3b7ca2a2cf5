//! `handle-rejection`: delete everything staged for a request, and the same clean-up after an
//! approved archive was confirmed.
//!
//! The staging bucket is meant to be **unversioned** (a delete then really deletes), but the
//! clean-up does not depend on it: it lists every version and delete marker under the
//! request's prefix and deletes them by version id, which on an unversioned bucket is each
//! object's `"null"` version and on a versioned bucket removes the history too, so rejected
//! data never lingers as noncurrent versions. Listing is paged and deletes go in batches of
//! at most 1000. Running it again when nothing is left deletes nothing and succeeds.
//!
//! **Proof of deletion** ([`delete_staged_proved`], used here and after an archive): before
//! deleting, the audit chain records every key and version about to go with its size and
//! SHA-256 (as the staging manifest recorded them when the file was copied and hashed; the
//! manifest's own from its bytes) in `deletion_proof` events of at most
//! [`PROOF_ENTRIES_PER_EVENT`] entries (DynamoDB items are limited to 400 KB); after
//! deleting, a listing of the same prefixes must no longer show any of them (S3 lists with
//! strong read-after-delete consistency), and only then is `deletion_confirmed` chained
//! (count, bytes, SHA-256 of the whole list) and success reported.

use futures::StreamExt;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{step_audit, Step};
use crate::domain::keys::StagingLayout;
use crate::error::{EgressError, Result};
use crate::model::{CleanupInput, CleanupResult, Manifest};
use crate::ports::{
    get_bytes_if_any, AuditEvent, AuditLog, Clock, ObjectRef, ObjectStore, VersionedKey,
    MAX_DELETE_BATCH,
};

/// Who the audit trail names for this step.
pub const ACTOR: &str = "system:handle-rejection";

/// `handle-rejection` with its ports, as a [`Step`].
#[derive(Debug)]
pub struct CleanupStep<O, A, C> {
    /// The buckets.
    pub objects: O,
    /// The audit trail.
    pub audit: A,
    /// The server clock.
    pub clock: C,
    /// The staging bucket.
    pub staging_bucket: String,
}

impl<O: ObjectStore, A: AuditLog, C: Clock> Step for CleanupStep<O, A, C> {
    type Input = CleanupInput;
    type Output = CleanupResult;
    const FAILED: &'static str = "deleting the staged data failed";

    /// Deletes the staged files and the manifest of `input`'s request and audits it.
    async fn run(&self, input: &CleanupInput) -> Result<CleanupResult> {
        let id = &input.egress_request_id;
        let bucket = self.staging_bucket.as_str();
        let outcome = match StagingLayout::new(&input.workspace_id, id) {
            Ok(layout) => {
                let (objects, audit, clock) = (&self.objects, &self.audit, &self.clock);
                delete_staged_proved(objects, audit, clock, ACTOR, id, bucket, &layout).await
            }
            Err(err) => Err(err),
        };
        if let Ok(deleted_objects) = outcome {
            tracing::info!(egress_request_id = %id, deleted_objects, "staged data deleted");
        }
        let deleted_objects = step_audit::audited(
            &self.audit,
            &self.clock,
            id,
            ACTOR,
            "cleanup",
            outcome,
            |deleted_objects| json!({ "deleted_objects": deleted_objects, "staging_bucket": bucket }),
        )
        .await?;
        Ok(CleanupResult { deleted_objects })
    }
}

/// Deletes every version of everything under the request's staging prefix, then the
/// manifest (last, so an interrupted clean-up still shows what was staged). Returns the
/// number of versions deleted.
pub async fn delete_staged(
    objects: &impl ObjectStore,
    staging_bucket: &str,
    layout: &StagingLayout,
) -> Result<u64> {
    let files = delete_versions_under(objects, staging_bucket, layout.prefix(), |_| true).await?;
    let manifest_key = layout.manifest_key();
    // The manifest key is used as a prefix, so `<id>.json.bak` would match too: keep only
    // the exact key.
    let manifest =
        delete_versions_under(objects, staging_bucket, manifest_key, |k| k == manifest_key).await?;
    Ok(files + manifest)
}

/// Entries per `deletion_proof` event (about 250 bytes each, far below DynamoDB's 400 KB).
pub const PROOF_ENTRIES_PER_EVENT: usize = 200;

/// `HEAD`s in flight while sizing the objects the manifest does not record (64 were slower
/// on the local stack: each connection beyond the client's warm pool costs the router a new
/// thread, and a request has few such objects).
const CONFIRM_CONCURRENCY: usize = 16;

/// One deleted object version, as the proof records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeletedObject {
    /// Full key.
    pub key: String,
    /// Version id (`"null"` on an unversioned bucket).
    pub version_id: Option<String>,
    /// Bytes, as recorded at staging (or read by `HEAD` when not in the manifest).
    pub size: Option<u64>,
    /// SHA-256 as recorded at staging; `None` for objects the manifest does not list.
    pub sha256: Option<String>,
}

/// [`delete_staged`] with its proof: records what is about to be deleted in the audit
/// chain, deletes it, confirms each version is gone (a listing of the same prefixes no longer
/// shows it) and chains the confirmation. Returns the number of versions deleted.
pub async fn delete_staged_proved(
    objects: &impl ObjectStore,
    audit: &impl AuditLog,
    clock: &impl Clock,
    actor: &str,
    egress_request_id: &str,
    staging_bucket: &str,
    layout: &StagingLayout,
) -> Result<u64> {
    let manifest_key = layout.manifest_key();
    let manifest_ref = ObjectRef::new(staging_bucket, manifest_key);
    // The output checks' report and the checks made while staging, beside the manifest, go
    // with the staged files. All share the manifest's stem (`.manifests/<ws>/<id>.`), so one
    // listing finds them. The manifest is read while both listings run: each round trip of
    // the clean-up is paid once.
    let checks_key = super::checks::report_key(layout);
    let staged_checks_key = super::checks::staged_checks_key(layout);
    let stem = manifest_key.strip_suffix("json").unwrap_or(manifest_key);
    let (manifest, mut listed, beside) = futures::try_join!(
        get_bytes_if_any(objects, &manifest_ref, 256 * 1024 * 1024),
        list_versions_under(objects, staging_bucket, layout.prefix(), |_| true),
        list_versions_under(objects, staging_bucket, stem, |k| {
            k == manifest_key || k == checks_key || k == staged_checks_key
        }),
    )?;
    listed.extend(beside);
    let mut recorded = std::collections::HashMap::new();
    if let Some(bytes) = manifest {
        recorded.insert(
            manifest_key.to_string(),
            (bytes.len() as u64, hex::encode(Sha256::digest(&bytes))),
        );
        if let Ok(manifest) = serde_json::from_slice::<Manifest>(&bytes) {
            for f in manifest.files {
                if let Ok(key) = layout.staged_key(&f.path) {
                    recorded.insert(key, (f.size, f.sha256));
                }
            }
        }
    }
    // Objects the manifest does not record (the checks report, anything not staged by us, a
    // delete marker): their size from S3, no digest, all asked at once.
    let proof: Vec<DeletedObject> = futures::stream::iter(listed.iter())
        .map(|v| {
            let recorded = recorded.get(&v.key).cloned();
            async move {
                let (size, sha256) = match recorded {
                    Some((size, sha)) => (Some(size), Some(sha)),
                    None => {
                        let size = objects
                            .head(&version_ref(staging_bucket, v))
                            .await
                            .ok()
                            .flatten()
                            .map(|h| h.size);
                        (size, None)
                    }
                };
                DeletedObject {
                    key: v.key.clone(),
                    version_id: v.version_id.clone(),
                    size,
                    sha256,
                }
            }
        })
        .buffered(CONFIRM_CONCURRENCY)
        .collect()
        .await;
    let parts = proof.len().div_ceil(PROOF_ENTRIES_PER_EVENT);
    let event = |action: &str, detail: serde_json::Value| AuditEvent {
        egress_request_id: egress_request_id.to_string(),
        at: clock.now_iso(),
        actor: actor.to_string(),
        actor_email: None,
        action: action.to_string(),
        outcome: "success".to_string(),
        detail,
    };
    for (part, chunk) in proof.chunks(PROOF_ENTRIES_PER_EVENT).enumerate() {
        audit
            .append(&event(
                "deletion_proof",
                json!({
                    "bucket": staging_bucket,
                    "part": part + 1,
                    "parts": parts,
                    "objects": chunk,
                }),
            ))
            .await?;
    }
    // Files first, the manifest last, so an interrupted clean-up still shows what was staged.
    let (manifest_versions, files): (Vec<VersionedKey>, Vec<VersionedKey>) =
        listed.iter().cloned().partition(|v| v.key == manifest_key);
    for batch in [files, manifest_versions] {
        for chunk in batch.chunks(MAX_DELETE_BATCH) {
            objects.delete_versions(staging_bucket, chunk).await?;
        }
    }
    // Confirmed by listing the same prefixes again: S3 lists with strong read-after-delete
    // consistency, so a version the listing no longer shows is gone, and one listing per
    // 1,000 versions proves what a `HEAD` per version did (64 `HEAD`s were a tenth of a
    // 256 MiB archive's step on the local stack).
    let (left, left_beside) = futures::try_join!(
        list_versions_under(objects, staging_bucket, layout.prefix(), |_| true),
        list_versions_under(objects, staging_bucket, stem, |k| {
            k == manifest_key || k == checks_key || k == staged_checks_key
        }),
    )?;
    let left: std::collections::BTreeSet<VersionedKey> =
        left.into_iter().chain(left_beside).collect();
    let still_there: Vec<&str> = listed
        .iter()
        .filter(|v| left.contains(*v))
        .map(|v| v.key.as_str())
        .collect();
    if !still_there.is_empty() {
        return Err(EgressError::Integrity(format!(
            "{} staged object version(s) are still listed after their deletion, e.g. {:?}",
            still_there.len(),
            still_there.iter().take(5).collect::<Vec<_>>()
        )));
    }
    let list_sha256 = hex::encode(Sha256::digest(
        serde_json::to_vec(&proof).unwrap_or_default(),
    ));
    // Once per request: a re-run finds nothing left and must not confirm a second time.
    audit
        .append_once(
            &event(
                "deletion_confirmed",
                json!({
                    "bucket": staging_bucket,
                    "objects": proof.len(),
                    "total_bytes": proof.iter().filter_map(|p| p.size).sum::<u64>(),
                    "proof_events": parts,
                    "proof_sha256": list_sha256,
                    "confirmed_by": "a listing of every version under the request's prefixes, after the deletion, showed none of them",
                }),
            ),
            "deletion_confirmed",
        )
        .await?;
    Ok(proof.len() as u64)
}

/// `HEAD` target of a listed version: the version itself on a versioned bucket, the key on
/// an unversioned one (its only version is `"null"`).
fn version_ref(bucket: &str, v: &VersionedKey) -> ObjectRef {
    match v.version_id.as_deref() {
        Some(version) if version != "null" => ObjectRef::at_version(bucket, &v.key, version),
        _ => ObjectRef::new(bucket, &v.key),
    }
}

/// Every version under `prefix` whose key is `wanted`, all pages.
async fn list_versions_under(
    objects: &impl ObjectStore,
    bucket: &str,
    prefix: &str,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<VersionedKey>> {
    let mut found = Vec::new();
    let mut cursor = None;
    loop {
        let page = objects
            .list_versions(bucket, prefix, cursor.as_ref())
            .await?;
        found.extend(page.objects.into_iter().filter(|o| wanted(&o.key)));
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(found),
        }
    }
}

async fn delete_versions_under(
    objects: &impl ObjectStore,
    bucket: &str,
    prefix: &str,
    wanted: impl Fn(&str) -> bool,
) -> Result<u64> {
    let mut deleted = 0u64;
    let mut cursor = None;
    loop {
        let page = objects
            .list_versions(bucket, prefix, cursor.as_ref())
            .await?;
        let batch: Vec<VersionedKey> = page
            .objects
            .into_iter()
            .filter(|o| wanted(&o.key))
            .collect();
        for chunk in batch.chunks(MAX_DELETE_BATCH) {
            objects.delete_versions(bucket, chunk).await?;
            deleted += chunk.len() as u64;
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(deleted),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{InMemoryAuditLog, InMemoryObjectStore, ObjectCall};
    use crate::ports::FixedClock;
    use time::macros::datetime;

    const CLOCK: FixedClock = FixedClock(datetime!(2024-05-01 12:00:00 UTC));

    fn step(
        store: InMemoryObjectStore,
    ) -> CleanupStep<InMemoryObjectStore, InMemoryAuditLog, FixedClock> {
        CleanupStep {
            objects: store,
            audit: InMemoryAuditLog::default(),
            clock: CLOCK,
            staging_bucket: "staging".into(),
        }
    }

    fn input() -> CleanupInput {
        CleanupInput {
            egress_request_id: "req-1".into(),
            workspace_id: "ws-1".into(),
        }
    }

    #[tokio::test]
    async fn when_more_than_a_page_is_staged_then_everything_goes_in_batches_of_at_most_1000() {
        let store = InMemoryObjectStore::new().with_bucket("staging", false);
        store.set_page_size(1000);
        for i in 0..2345 {
            store.put_object("staging", &format!("ws-1/req-1/d/{i:05}.csv"), "x");
        }
        store.put_object("staging", ".manifests/ws-1/req-1.json", "{}");
        store.put_object("staging", ".manifests/ws-1/req-1.json.bak", "{}");
        store.put_object("staging", "ws-1/req-10/keep.csv", "x");
        store.put_object("staging", "ws-1/req-2/keep.csv", "x");
        let s = step(store);
        let result = s.run(&input()).await.unwrap();
        assert_eq!(result.deleted_objects, 2346);
        assert_eq!(
            s.objects.keys("staging"),
            [
                ".manifests/ws-1/req-1.json.bak",
                "ws-1/req-10/keep.csv",
                "ws-1/req-2/keep.csv"
            ]
        );
        let batches: Vec<usize> = s
            .objects
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                ObjectCall::Delete { objects, .. } => Some(objects.len()),
                _ => None,
            })
            .collect();
        assert_eq!(batches, [1000, 1000, 345, 1]);
        let events = s.audit.events();
        let last = events.last().unwrap();
        assert_eq!(last.action, "cleanup");
        assert_eq!(last.detail["deleted_objects"], 2346);
        // The proof: 2346 entries in events of at most 200, then the confirmation.
        let proof: Vec<_> = events
            .iter()
            .filter(|e| e.action == "deletion_proof")
            .flat_map(|e| e.detail["objects"].as_array().unwrap().clone())
            .collect();
        assert_eq!(proof.len(), 2346);
        assert_eq!(
            events
                .iter()
                .filter(|e| e.action == "deletion_proof")
                .count(),
            2346_usize.div_ceil(PROOF_ENTRIES_PER_EVENT)
        );
        let confirmed = &events[events.len() - 2];
        assert_eq!(confirmed.action, "deletion_confirmed");
        assert_eq!(confirmed.detail["objects"], 2346);
    }

    #[tokio::test]
    async fn when_staged_data_is_deleted_then_the_chain_records_keys_sizes_and_sha256_and_the_404s()
    {
        use crate::model::ManifestEntry;
        let store = InMemoryObjectStore::new().with_bucket("staging", false);
        let sha = hex::encode(Sha256::digest(b"hello"));
        let manifest = Manifest {
            egress_request_id: "req-1".into(),
            workspace_id: "ws-1".into(),
            source_bucket: "swb".into(),
            snapshot_location: "arn:aws:s3:::n/s.json".into(),
            files: vec![ManifestEntry {
                path: "d/a.csv".into(),
                source_key: "ws-1/d/a.csv".into(),
                version_id: "v1".into(),
                size: 5,
                sha256: sha.clone(),
            }],
        };
        let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
        store.put_object("staging", "ws-1/req-1/d/a.csv", "hello");
        store.put_object(
            "staging",
            ".manifests/ws-1/req-1.json",
            manifest_bytes.clone(),
        );
        let s = step(store);
        s.run(&input()).await.unwrap();
        let events = s.audit.events();
        let proof = &events[0];
        assert_eq!(proof.action, "deletion_proof");
        let objects = proof.detail["objects"].as_array().unwrap();
        let file = objects
            .iter()
            .find(|o| o["key"] == "ws-1/req-1/d/a.csv")
            .unwrap();
        assert_eq!(file["size"], 5);
        assert_eq!(file["sha256"], sha.as_str());
        assert!(file["version_id"].is_string() || file["version_id"].is_null());
        let m = objects
            .iter()
            .find(|o| o["key"] == ".manifests/ws-1/req-1.json")
            .unwrap();
        assert_eq!(
            m["sha256"],
            hex::encode(Sha256::digest(&manifest_bytes)).as_str()
        );
        // The same two prefixes were listed again after the delete, before the confirmation
        // was chained; no object was asked for one by one.
        let after_delete: Vec<ObjectCall> = s
            .objects
            .calls()
            .into_iter()
            .skip_while(|c| !matches!(c, ObjectCall::Delete { .. }))
            .collect();
        let listings = after_delete
            .iter()
            .filter(|c| matches!(c, ObjectCall::ListVersions { .. }))
            .count();
        assert_eq!(listings, 2);
        assert!(!after_delete
            .iter()
            .any(|c| matches!(c, ObjectCall::Head(_))));
        assert_eq!(events[1].action, "deletion_confirmed");
        assert_eq!(
            events[1].detail["total_bytes"],
            5 + manifest_bytes.len() as u64
        );
        let trail = s.audit.trail("req-1").await.unwrap();
        assert!(crate::evidence::chain::verify(&trail).valid);
    }

    #[tokio::test]
    async fn when_the_manifest_and_checks_reports_are_staged_then_one_listing_finds_them_and_no_neighbour(
    ) {
        let store = InMemoryObjectStore::new().with_bucket("staging", true);
        store.put_object("staging", "ws-1/req-1/a.csv", "x");
        store.put_object("staging", ".manifests/ws-1/req-1.json", "{}");
        store.put_object("staging", ".manifests/ws-1/req-1.checks.json", "{}");
        store.put_object("staging", ".manifests/ws-1/req-1.staged-checks.json", "{}");
        // Another request whose id starts with this one's: never listed as ours.
        store.put_object("staging", ".manifests/ws-1/req-10.json", "{}");
        store.put_object("staging", "ws-1/req-10/b.csv", "y");
        let s = step(store);
        assert_eq!(s.run(&input()).await.unwrap().deleted_objects, 4);
        let mut prefixes: Vec<String> = s
            .objects
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                ObjectCall::ListVersions { prefix, .. } => Some(prefix),
                _ => None,
            })
            .collect();
        prefixes.sort();
        // Each listed twice: to find what to delete, and to confirm it is gone.
        assert_eq!(
            prefixes,
            [
                ".manifests/ws-1/req-1.",
                ".manifests/ws-1/req-1.",
                "ws-1/req-1/",
                "ws-1/req-1/"
            ]
        );
        let left = s.objects.keys("staging");
        assert_eq!(left, [".manifests/ws-1/req-10.json", "ws-1/req-10/b.csv"]);
    }

    #[tokio::test]
    async fn when_a_deleted_object_is_still_listed_then_cleanup_fails_without_confirming() {
        let store = InMemoryObjectStore::new().with_bucket("staging", false);
        store.put_object("staging", "ws-1/req-1/a.csv", "x");
        store.ignore_deletes_of("ws-1/req-1/a.csv");
        let s = step(store);
        let err = s.run(&input()).await.unwrap_err();
        assert_eq!(err.error_type(), "IntegrityError");
        assert!(err.to_string().contains("still listed"), "{err}");
        assert!(err.to_string().contains("ws-1/req-1/a.csv"), "{err}");
        assert!(!s
            .audit
            .events()
            .iter()
            .any(|e| e.action == "deletion_confirmed"));
    }

    #[tokio::test]
    async fn when_the_bucket_is_versioned_then_every_version_and_marker_is_deleted() {
        let store = InMemoryObjectStore::new().with_bucket("staging", true);
        store.put_object("staging", "ws-1/req-1/a.csv", "1");
        store.put_object("staging", "ws-1/req-1/a.csv", "2");
        store.put_object("staging", "ws-1/req-1/b.csv", "1");
        // A plain delete left a marker over b.csv's data.
        store
            .delete_versions(
                "staging",
                &[VersionedKey {
                    key: "ws-1/req-1/b.csv".into(),
                    version_id: None,
                }],
            )
            .await
            .unwrap();
        assert_eq!(store.version_count("staging"), 4);
        let deleted = delete_staged(
            &store,
            "staging",
            &StagingLayout::new("ws-1", "req-1").unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(deleted, 4);
        assert_eq!(store.version_count("staging"), 0);
    }

    #[tokio::test]
    async fn when_nothing_is_left_then_cleanup_succeeds_with_zero() {
        let store = InMemoryObjectStore::new().with_bucket("staging", false);
        let s = step(store);
        let result = s.run(&input()).await.unwrap();
        assert_eq!(result.deleted_objects, 0);
        assert!(!s
            .objects
            .calls()
            .iter()
            .any(|c| matches!(c, ObjectCall::Delete { .. })));
    }

    #[tokio::test]
    async fn when_s3_refuses_some_keys_then_the_error_names_them_and_is_audited() {
        let store = InMemoryObjectStore::new().with_bucket("staging", false);
        store.put_object("staging", "ws-1/req-1/a.csv", "x");
        store.put_object("staging", "ws-1/req-1/locked.csv", "x");
        store.deny_delete("ws-1/req-1/locked.csv");
        let s = step(store);
        let err = s.run(&input()).await.unwrap_err();
        assert!(err.to_string().contains("ws-1/req-1/locked.csv"), "{err}");
        assert_eq!(s.audit.events().last().unwrap().outcome, "failed");
    }

    #[tokio::test]
    async fn when_the_ids_are_not_plain_then_nothing_is_listed_or_deleted() {
        let store = InMemoryObjectStore::new().with_bucket("staging", false);
        let bad = CleanupInput {
            egress_request_id: "..".into(),
            workspace_id: "ws-1".into(),
        };
        let s = step(store);
        let err = s.run(&bad).await.unwrap_err();
        assert_eq!(err.error_type(), "ValidationError");
        assert!(s.objects.calls().is_empty());
    }
}
