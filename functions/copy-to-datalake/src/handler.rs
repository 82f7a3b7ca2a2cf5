//! Payload → [`shared::services::archive::ArchiveStep`] bounded by the invocation's deadline,
//! run once by [`run_step`]; `complete: false` tells the state machine to invoke it again.

use lambda_runtime::{Diagnostic, LambdaEvent};
use shared::model::ArchiveResult;
use shared::ports::{AuditLog, Clock, ObjectStore, RequestStore};
use shared::services::archive::ArchiveStep;
use shared::services::run_step;

pub(crate) async fn handle<O: ObjectStore, R: RequestStore, A: AuditLog, C: Clock>(
    step: &ArchiveStep<O, R, A, C>,
    event: LambdaEvent<shared::model::ArchiveInput>,
) -> Result<ArchiveResult, Diagnostic> {
    // Lambda always sends a deadline; an event without one (0) runs to completion.
    if event.context.deadline == 0 {
        return Ok(run_step(step, event.payload).await?);
    }
    Ok(run_step(&step.until(event.context.deadline()), event.payload).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::Context;
    use serde_json::json;
    use shared::fakes::{InMemoryAuditLog, InMemoryObjectStore, InMemoryRequestStore, ObjectCall};
    use shared::model::{ArchiveInput, EgressStatus, StagingInput};
    use shared::ports::FixedClock;
    use shared::services::archive::{ArchiveSettings, ArchiveStep};
    use shared::services::staging::{StagingSettings, StagingStep};
    use shared::testdata::request;
    use std::io::Read;
    use time::macros::datetime;

    const STAGING: &str = "egress-staging";
    const DATALAKE: &str = "project-datalake";
    const STAGING_KMS: &str = "arn:aws:kms:eu-west-2:123456789012:key/staging";
    const DATALAKE_KMS: &str = "arn:aws:kms:eu-west-2:123456789012:key/datalake";
    const EGRESS_BUCKET: &str = "swb-egress-store-123456789012";
    const NOTIFY_BUCKET: &str = "swb-egress-notify-123456789012";

    type TestDeps =
        ArchiveStep<InMemoryObjectStore, InMemoryRequestStore, InMemoryAuditLog, FixedClock>;

    fn events_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/copy-to-datalake")
    }

    fn input() -> ArchiveInput {
        let text = std::fs::read_to_string(events_dir().join("approved.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// The files of the request: the same name in two folders, and one file large enough
    /// to span several 5 MiB parts.
    fn files() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            (
                "results/summary.csv",
                b"id,value\n1,0.25\n2,0.75\n".to_vec(),
            ),
            ("figures/summary.csv", b"figure,caption\n1,trend\n".to_vec()),
            ("README", b"Egress for paper 1.\n".to_vec()),
            (
                "data/cohort.bin",
                (0..12 * 1024 * 1024 + 7)
                    .map(|i: u32| (i % 251) as u8)
                    .collect(),
            ),
        ]
    }

    fn prefix() -> String {
        let i = input();
        format!("{}/{}/", i.workspace_id, i.egress_request_id)
    }

    fn archive_key() -> String {
        let i = input();
        format!(
            "approved_egress/{}/{}/egress_data.zip",
            i.workspace_id, i.egress_request_id
        )
    }

    /// A request staged by the real staging service, then approved (single mode).
    async fn staged() -> TestDeps {
        let i = input();
        let objects = InMemoryObjectStore::new()
            .with_bucket(NOTIFY_BUCKET, false)
            .with_bucket(STAGING, false)
            .with_bucket(DATALAKE, false);
        let mut listed = Vec::new();
        for (path, data) in files() {
            let key = format!("{}/{path}", i.workspace_id);
            let version = format!("v-{}", path.len());
            objects.put_object_version(EGRESS_BUCKET, &key, &version, data.clone());
            listed.push(json!({"Key": key, "VersionId": version, "Size": data.len()}));
        }
        objects.put_object(
            NOTIFY_BUCKET,
            "store/ver1.json",
            json!({ "objects": listed }).to_string(),
        );
        let requests =
            InMemoryRequestStore::with([request(&i.egress_request_id, EgressStatus::Processing)]);
        let audit = InMemoryAuditLog::default();
        let clock = FixedClock(datetime!(2024-03-05 14:30:00 UTC));
        let staging_input = StagingInput {
            egress_request_id: i.egress_request_id.clone(),
            workspace_id: i.workspace_id.clone(),
            s3_egress_store_bucket: EGRESS_BUCKET.into(),
            s3_egress_store_bucket_path: format!("{}/", i.workspace_id),
            s3_egress_store_object_list_location: format!(
                "arn:aws:s3:::{NOTIFY_BUCKET}/store/ver1.json"
            ),
        };
        let step = StagingStep {
            objects,
            requests,
            audit,
            clock,
            settings: StagingSettings::new(STAGING, STAGING_KMS, 4),
        };
        shared::services::Step::run(&step, &staging_input)
            .await
            .unwrap();
        let StagingStep {
            objects, requests, ..
        } = step;
        let mut approved = requests.item(&i.egress_request_id).unwrap();
        approved.egress_status = EgressStatus::IgApproved;
        requests.put(approved);
        ArchiveStep {
            objects,
            requests,
            audit: InMemoryAuditLog::default(),
            clock,
            settings: ArchiveSettings::new(STAGING, DATALAKE, DATALAKE_KMS, 5 * 1024 * 1024),
        }
    }

    async fn invoke(deps: &TestDeps) -> Result<ArchiveResult, Diagnostic> {
        handle(deps, LambdaEvent::new(input(), Context::default())).await
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

    fn position(calls: &[ObjectCall], wanted: impl Fn(&ObjectCall) -> bool) -> Option<usize> {
        calls.iter().position(wanted)
    }

    #[test]
    fn when_reading_the_fixtures_then_each_deserializes_into_an_archive_input() {
        let mut seen = 0;
        for entry in std::fs::read_dir(events_dir()).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            serde_json::from_str::<ArchiveInput>(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
        assert!(seen >= 1);
    }

    #[tokio::test]
    async fn when_approved_then_one_zip_holds_every_file_and_the_manifest_and_staging_goes_last() {
        let deps = staged().await;
        let manifest_key = format!(
            ".manifests/{}/{}.json",
            input().workspace_id,
            input().egress_request_id
        );
        let manifest_bytes = deps.objects.object(STAGING, &manifest_key).unwrap().data;

        let result = invoke(&deps).await.unwrap();

        assert_eq!(result.bucket, DATALAKE);
        assert_eq!(result.key, archive_key());
        assert_eq!(result.file_count, 4);
        assert_eq!(result.deleted_staged_objects, 5);
        let stored = deps.objects.object(DATALAKE, &archive_key()).unwrap();
        assert_eq!(stored.data.len() as u64, result.size);
        assert_eq!(stored.kms_key_arn.as_deref(), Some(DATALAKE_KMS));
        assert_eq!(
            stored.metadata.get("egress-request-id"),
            Some(&input().egress_request_id)
        );

        let mut expected: Vec<(String, Vec<u8>)> = files()
            .into_iter()
            .map(|(p, d)| (p.to_string(), d))
            .collect();
        expected.sort();
        let mut got = unzip(&stored.data);
        // Last: the release record (evidence::release), which carries the staging manifest's
        // files and digest.
        let (name, record) = got.pop().unwrap();
        assert_eq!(
            name,
            format!("egress_manifest_{}.json", input().egress_request_id)
        );
        let record: shared::evidence::release::ReleaseRecord =
            serde_json::from_slice(&record).unwrap();
        let staged: shared::model::Manifest = serde_json::from_slice(&manifest_bytes).unwrap();
        assert_eq!(record.files, staged.files);
        assert_eq!(record.egress_request_id, input().egress_request_id);
        assert_eq!(got, expected);

        // Staging is deleted only after the upload completed and the archive was confirmed.
        let calls = deps.objects.calls();
        let completed = position(&calls, |c| matches!(c, ObjectCall::Complete { .. })).unwrap();
        let confirmed = position(
            &calls[completed..],
            |c| matches!(c, ObjectCall::Head(o) if o.key == archive_key()),
        )
        .unwrap()
            + completed;
        let first_delete = position(&calls, |c| matches!(c, ObjectCall::Delete { .. })).unwrap();
        assert!(completed < confirmed && confirmed < first_delete);
        let parts = calls
            .iter()
            .filter(|c| matches!(c, ObjectCall::UploadPart { .. }))
            .count();
        assert_eq!(parts, 3, "12 MiB in 5 MiB parts");
        assert!(calls
            .iter()
            .any(|c| matches!(c, ObjectCall::CreateMultipart(d) if d.kms_key_arn == DATALAKE_KMS)));
        assert!(deps.objects.keys(STAGING).is_empty());

        let item = deps.requests.item(&input().egress_request_id).unwrap();
        assert_eq!(item.archive_key, Some(archive_key()));
        // The proof of deletion of staging, then the archive itself.
        let events = deps.audit.events();
        let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions,
            ["deletion_proof", "deletion_confirmed", "archived"]
        );
        assert!(events.iter().all(|e| e.actor == "system:copy-to-datalake"));
    }

    #[tokio::test]
    async fn when_the_deadline_is_near_then_it_answers_incomplete_and_later_invocations_finish() {
        let deps = staged().await;
        let soon = std::time::SystemTime::now() + std::time::Duration::from_secs(10);
        let mut context = Context::default();
        context.deadline = soon
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let first = handle(&deps, LambdaEvent::new(input(), context.clone()))
            .await
            .unwrap();
        assert!(!first.complete, "less time left than the reserve");
        assert_eq!(first.size, 5 * 1024 * 1024, "one part written");
        assert!(deps.objects.object(DATALAKE, &archive_key()).is_none());
        let mut invocations = 1;
        loop {
            invocations += 1;
            let result = handle(&deps, LambdaEvent::new(input(), context.clone()))
                .await
                .unwrap();
            if result.complete {
                assert_eq!(result.file_count, 4);
                break;
            }
            assert!(invocations < 10);
        }
        assert_eq!(
            invocations, 3,
            "12 MiB in 5 MiB parts: one part per invocation"
        );
        let stored = deps.objects.object(DATALAKE, &archive_key()).unwrap();
        let names: Vec<String> = unzip(&stored.data).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.len(), 5);
        assert!(deps.objects.keys(STAGING).is_empty());
    }

    #[tokio::test]
    async fn when_run_again_after_success_then_the_confirmed_archive_is_kept_and_it_succeeds() {
        let deps = staged().await;
        let first = invoke(&deps).await.unwrap();
        let uploads_before = deps
            .objects
            .calls()
            .iter()
            .filter(|c| matches!(c, ObjectCall::CreateMultipart(_)))
            .count();
        let second = invoke(&deps).await.unwrap();
        assert_eq!(
            (second.key.as_str(), second.size, second.file_count),
            (first.key.as_str(), first.size, 4)
        );
        assert_eq!(second.deleted_staged_objects, 0);
        let uploads_after = deps
            .objects
            .calls()
            .iter()
            .filter(|c| matches!(c, ObjectCall::CreateMultipart(_)))
            .count();
        assert_eq!(uploads_before, uploads_after, "no second upload");
    }

    #[tokio::test]
    async fn when_a_run_stopped_after_the_upload_then_the_rerun_reuses_the_archive() {
        let deps = staged().await;
        let manifest_key = format!(
            ".manifests/{}/{}.json",
            input().workspace_id,
            input().egress_request_id
        );
        let manifest = deps.objects.object(STAGING, &manifest_key).unwrap().data;
        let first = invoke(&deps).await.unwrap();
        // As if the first run had died after confirming the archive, before the clean-up.
        deps.objects.put_object(STAGING, &manifest_key, manifest);
        let second = invoke(&deps).await.unwrap();
        assert_eq!(
            (
                second.size,
                second.file_count,
                second.deleted_staged_objects
            ),
            (first.size, 4, 1)
        );
        let uploads = deps
            .objects
            .calls()
            .iter()
            .filter(|c| matches!(c, ObjectCall::CreateMultipart(_)))
            .count();
        assert_eq!(
            uploads, 1,
            "the archive matched its manifest and predicted size"
        );
        assert!(deps.objects.keys(STAGING).is_empty());
    }

    #[tokio::test]
    async fn when_a_staged_file_no_longer_matches_its_checksum_then_nothing_is_published() {
        let deps = staged().await;
        // Same length, different bytes: only the SHA-256 can tell.
        let tampered = format!("{}figures/summary.csv", prefix());
        let original = deps.objects.object(STAGING, &tampered).unwrap().data;
        let mut changed = original.to_vec();
        changed[0] ^= 0xFF;
        deps.objects.put_object(STAGING, &tampered, changed);
        let staged_keys = deps.objects.keys(STAGING);

        let err = invoke(&deps).await.unwrap_err();

        assert_eq!(err.error_type, "IntegrityError");
        assert!(
            err.error_message.contains("figures/summary.csv"),
            "{}",
            err.error_message
        );
        assert_eq!(deps.objects.keys(STAGING), staged_keys, "staging intact");
        assert!(deps
            .objects
            .calls()
            .iter()
            .any(|c| matches!(c, ObjectCall::Abort { .. })));
        assert!(deps.objects.open_uploads().is_empty());
        assert!(deps.objects.object(DATALAKE, &archive_key()).is_none());
        assert_eq!(
            deps.requests
                .item(&input().egress_request_id)
                .unwrap()
                .archive_key,
            None
        );
        assert_eq!(deps.audit.events()[0].outcome, "failed");
    }

    #[tokio::test]
    async fn when_a_staged_file_grew_then_it_is_an_integrity_error() {
        let deps = staged().await;
        deps.objects.put_object(
            STAGING,
            &format!("{}README", prefix()),
            "Egress for paper 1.\nand more\n",
        );
        let err = invoke(&deps).await.unwrap_err();
        assert_eq!(err.error_type, "IntegrityError");
        assert!(
            err.error_message.contains("README"),
            "{}",
            err.error_message
        );
        assert!(deps.objects.object(DATALAKE, &archive_key()).is_none());
    }

    #[tokio::test]
    async fn when_a_part_upload_fails_then_the_upload_is_aborted_and_staging_kept() {
        let deps = staged().await;
        deps.objects.fail_upload_part(2);
        let staged_keys = deps.objects.keys(STAGING);
        let err = invoke(&deps).await.unwrap_err();
        assert!(
            err.error_message.contains("UploadPart 2"),
            "{}",
            err.error_message
        );
        assert!(deps.objects.open_uploads().is_empty());
        assert!(deps.objects.object(DATALAKE, &archive_key()).is_none());
        assert_eq!(deps.objects.keys(STAGING), staged_keys);
    }

    #[tokio::test]
    async fn when_the_request_is_not_approved_then_nothing_is_archived() {
        let deps = staged().await;
        let mut item = deps.requests.item(&input().egress_request_id).unwrap();
        item.egress_status = EgressStatus::Rejected;
        deps.requests.put(item);
        let err = invoke(&deps).await.unwrap_err();
        assert_eq!(err.error_type, "Conflict");
        assert!(!deps
            .objects
            .calls()
            .iter()
            .any(|c| matches!(c, ObjectCall::CreateMultipart(_))));
        assert_eq!(deps.objects.keys(STAGING).len(), 5);
    }

    #[tokio::test]
    async fn when_nothing_was_staged_and_no_archive_exists_then_it_is_not_found() {
        let deps = staged().await;
        let objects = InMemoryObjectStore::new()
            .with_bucket(STAGING, false)
            .with_bucket(DATALAKE, false);
        let deps = ArchiveStep { objects, ..deps };
        let err = invoke(&deps).await.unwrap_err();
        assert_eq!(err.error_type, "NotFound");
        assert!(
            err.error_message.contains("manifest"),
            "{}",
            err.error_message
        );
    }
}
