//! `handle-rejection`: delete everything staged for a request, and the same clean-up after an
//! approved archive was confirmed.
//!
//! The staging bucket is meant to be **unversioned** (a delete then really deletes), but the
//! clean-up does not depend on it: it lists every version and delete marker under the
//! request's prefix and deletes them by version id, which on an unversioned bucket is each
//! object's `"null"` version and on a versioned bucket removes the history too, so rejected
//! data never lingers as noncurrent versions. Listing is paged and deletes go in batches of
//! at most 1000. Running it again when nothing is left deletes nothing and succeeds.

use serde_json::json;

use super::{step_audit, Step};
use crate::domain::keys::StagingLayout;
use crate::error::Result;
use crate::model::{CleanupInput, CleanupResult};
use crate::ports::{AuditLog, Clock, ObjectStore, VersionedKey, MAX_DELETE_BATCH};

/// Who the audit trail names for this step.
pub const ACTOR: &str = "system:handle-rejection";

/// `handle-rejection` with its ports: [`run`] as a [`Step`].
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

    async fn run(&self, input: &CleanupInput) -> Result<CleanupResult> {
        run(
            &self.objects,
            &self.audit,
            &self.clock,
            &self.staging_bucket,
            input,
        )
        .await
    }
}

/// Deletes the staged files and the manifest of `input`'s request and audits it.
pub async fn run(
    objects: &impl ObjectStore,
    audit: &impl AuditLog,
    clock: &impl Clock,
    staging_bucket: &str,
    input: &CleanupInput,
) -> Result<CleanupResult> {
    let outcome = match StagingLayout::new(&input.workspace_id, &input.egress_request_id) {
        Ok(layout) => delete_staged(objects, staging_bucket, &layout).await,
        Err(err) => Err(err),
    };
    match outcome {
        Ok(deleted_objects) => {
            tracing::info!(
                egress_request_id = %input.egress_request_id,
                deleted_objects,
                "staged data deleted"
            );
            let event = step_audit::success(
                clock,
                &input.egress_request_id,
                ACTOR,
                "cleanup",
                json!({ "deleted_objects": deleted_objects, "staging_bucket": staging_bucket }),
            );
            audit.append(&event).await?;
            Ok(CleanupResult { deleted_objects })
        }
        Err(err) => {
            step_audit::failure(
                audit,
                clock,
                &input.egress_request_id,
                ACTOR,
                "cleanup",
                &err,
            )
            .await;
            Err(err)
        }
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
        let audit = InMemoryAuditLog::default();
        let result = run(&store, &audit, &CLOCK, "staging", &input())
            .await
            .unwrap();
        assert_eq!(result.deleted_objects, 2346);
        assert_eq!(
            store.keys("staging"),
            [
                ".manifests/ws-1/req-1.json.bak",
                "ws-1/req-10/keep.csv",
                "ws-1/req-2/keep.csv"
            ]
        );
        let batches: Vec<usize> = store
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                ObjectCall::Delete { objects, .. } => Some(objects.len()),
                _ => None,
            })
            .collect();
        assert_eq!(batches, [1000, 1000, 345, 1]);
        let events = audit.events();
        assert_eq!(events[0].action, "cleanup");
        assert_eq!(events[0].detail["deleted_objects"], 2346);
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
        let audit = InMemoryAuditLog::default();
        let result = run(&store, &audit, &CLOCK, "staging", &input())
            .await
            .unwrap();
        assert_eq!(result.deleted_objects, 0);
        assert!(!store
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
        let audit = InMemoryAuditLog::default();
        let err = run(&store, &audit, &CLOCK, "staging", &input())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("ws-1/req-1/locked.csv"), "{err}");
        assert_eq!(audit.events()[0].outcome, "failed");
    }

    #[tokio::test]
    async fn when_the_ids_are_not_plain_then_nothing_is_listed_or_deleted() {
        let store = InMemoryObjectStore::new().with_bucket("staging", false);
        let audit = InMemoryAuditLog::default();
        let bad = CleanupInput {
            egress_request_id: "..".into(),
            workspace_id: "ws-1".into(),
        };
        let err = run(&store, &audit, &CLOCK, "staging", &bad)
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "ValidationError");
        assert!(store.calls().is_empty());
    }
}
