//! Payload → [`shared::services::staging::StagingStep`], run once by [`run_step`].

use lambda_runtime::{Diagnostic, LambdaEvent};
use shared::model::{StagingInput, StagingResult};
use shared::services::{run_step, Step};

pub(crate) async fn handle(
    step: &impl Step<Input = StagingInput, Output = StagingResult>,
    event: LambdaEvent<StagingInput>,
) -> Result<StagingResult, Diagnostic> {
    Ok(run_step(step, event.payload).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::Context;
    use sha2::{Digest, Sha256};
    use shared::fakes::{InMemoryAuditLog, InMemoryObjectStore, InMemoryRequestStore, ObjectCall};
    use shared::model::{EgressStatus, Manifest, Snapshot};
    use shared::ports::FixedClock;
    use shared::services::staging::{StagingSettings, StagingStep};
    use shared::testdata::request;
    use time::macros::datetime;

    const STAGING: &str = "egress-staging";
    const KMS: &str = "arn:aws:kms:eu-west-2:123456789012:key/staging";
    const EGRESS_BUCKET: &str = "swb-egress-store-123456789012";
    const NOTIFY_BUCKET: &str = "swb-egress-notify-123456789012";
    const SNAPSHOT_KEY: &str =
        "1637e3f6-5d2c-4d52-9a41-3f1b2c3d4e5f/covid-analysis-egress-store-ver1.json";

    type TestDeps =
        StagingStep<InMemoryObjectStore, InMemoryRequestStore, InMemoryAuditLog, FixedClock>;

    fn events_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/copy-to-staging")
    }

    fn fixture_text(name: &str) -> String {
        std::fs::read_to_string(events_dir().join(name)).unwrap()
    }

    fn input() -> StagingInput {
        serde_json::from_str(&fixture_text("staging-input.json")).unwrap()
    }

    fn snapshot() -> Snapshot {
        serde_json::from_str(&fixture_text("snapshot-ver1.json")).unwrap()
    }

    /// Content of exactly `size` bytes that differs per key.
    fn content(key: &str, size: u64) -> Vec<u8> {
        key.bytes().cycle().take(size as usize).collect()
    }

    /// The world SWB leaves behind: every listed version exists (plus a later edit of each
    /// file, which must not be staged), and the snapshot file is in the notification bucket.
    fn deps_with(snapshot: &Snapshot) -> TestDeps {
        let input = input();
        let objects = InMemoryObjectStore::new()
            .with_bucket(NOTIFY_BUCKET, false)
            .with_bucket(STAGING, false);
        for o in snapshot.objects.iter().filter(|o| !o.is_folder_marker()) {
            objects.put_object_version(
                EGRESS_BUCKET,
                &o.key,
                &o.version_id,
                content(&o.key, o.size),
            );
            objects.put_object_version(
                EGRESS_BUCKET,
                &o.key,
                "later-edit",
                "edited after submission",
            );
        }
        objects.put_object(
            NOTIFY_BUCKET,
            SNAPSHOT_KEY,
            serde_json::to_vec(snapshot).unwrap(),
        );
        StagingStep {
            objects,
            requests: InMemoryRequestStore::with([request(
                &input.egress_request_id,
                EgressStatus::Processing,
            )]),
            audit: InMemoryAuditLog::default(),
            clock: FixedClock(datetime!(2024-03-02 08:00:05 UTC)),
            settings: StagingSettings::new(STAGING, KMS, 8),
        }
    }

    async fn invoke(deps: &TestDeps) -> Result<StagingResult, Diagnostic> {
        handle(deps, LambdaEvent::new(input(), Context::default())).await
    }

    fn copies(deps: &TestDeps) -> usize {
        deps.objects
            .calls()
            .iter()
            .filter(|c| matches!(c, ObjectCall::Copy { .. } | ObjectCall::CreateMultipart(_)))
            .count()
    }

    #[test]
    fn when_reading_the_fixtures_then_each_deserializes_into_its_type() {
        let mut seen = 0;
        for entry in std::fs::read_dir(events_dir()).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("snapshot") {
                serde_json::from_str::<Snapshot>(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            } else {
                serde_json::from_str::<StagingInput>(&text)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            seen += 1;
        }
        assert!(seen >= 2);
    }

    #[tokio::test]
    async fn when_a_snapshot_is_staged_then_exact_versions_land_under_workspace_and_request() {
        let deps = deps_with(&snapshot());
        let result = invoke(&deps).await.unwrap();

        // Two folder markers skipped; four files, two of them called summary.csv.
        assert_eq!(result.file_count, 4);
        assert_eq!(result.total_bytes, 36 + 24 + 16 + 21);
        assert_eq!(result.file_types, "csv, (none), png");
        assert_eq!(result.file_type_count, 3);
        let prefix = "1637e3f6-5d2c-4d52-9a41-3f1b2c3d4e5f/8d3b9a57-4b8e-4a9e-9b7c-1f2d3e4a5b6c/";
        assert_eq!(result.staging_prefix, prefix);
        let manifest_key = ".manifests/1637e3f6-5d2c-4d52-9a41-3f1b2c3d4e5f/8d3b9a57-4b8e-4a9e-9b7c-1f2d3e4a5b6c.json";
        assert_eq!(result.manifest_key, manifest_key);
        let mut expected_keys: Vec<String> = [
            "README",
            "figures/Figure 1.PNG",
            "figures/summary.csv",
            "results/summary.csv",
        ]
        .iter()
        .map(|p| format!("{prefix}{p}"))
        .collect();
        expected_keys.insert(0, manifest_key.to_string());
        assert_eq!(deps.objects.keys(STAGING), expected_keys);

        // The same file name in two folders stays two files with their own content.
        let source = "1637e3f6-5d2c-4d52-9a41-3f1b2c3d4e5f/figures/summary.csv";
        let staged = deps
            .objects
            .object(STAGING, &format!("{prefix}figures/summary.csv"))
            .unwrap();
        assert_eq!(staged.data.as_ref(), content(source, 24).as_slice());
        assert_eq!(staged.kms_key_arn.as_deref(), Some(KMS));

        // Every copy named the listed version.
        let listed: Vec<(String, String)> = snapshot()
            .objects
            .into_iter()
            .filter(|o| !o.is_folder_marker())
            .map(|o| (o.key, o.version_id))
            .collect();
        for call in deps.objects.calls() {
            if let ObjectCall::Copy {
                source,
                destination,
            } = call
            {
                assert!(listed.contains(&(source.key.clone(), source.version_id.clone().unwrap())));
                assert_eq!(destination.kms_key_arn, KMS);
            }
        }

        let manifest: Manifest =
            serde_json::from_slice(&deps.objects.object(STAGING, manifest_key).unwrap().data)
                .unwrap();
        let paths: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "README",
                "figures/Figure 1.PNG",
                "figures/summary.csv",
                "results/summary.csv"
            ]
        );
        let readme = "1637e3f6-5d2c-4d52-9a41-3f1b2c3d4e5f/README";
        assert_eq!(
            manifest.files[0].sha256,
            hex::encode(Sha256::digest(content(readme, 21)))
        );
        assert_eq!(
            manifest.files[0].version_id,
            "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe"
        );

        let item = deps.requests.item(&input().egress_request_id).unwrap();
        assert_eq!(item.staged_file_count, Some(4));
        assert_eq!(item.staging_manifest_key.as_deref(), Some(manifest_key));
        let events = deps.audit.events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].actor, "system:copy-to-staging");
        assert_eq!(
            (events[0].action.as_str(), events[0].outcome.as_str()),
            ("staged", "success")
        );
    }

    #[tokio::test]
    async fn when_staging_runs_twice_then_the_result_and_the_manifest_bytes_are_the_same() {
        let deps = deps_with(&snapshot());
        let first = invoke(&deps).await.unwrap();
        let manifest_key = first.manifest_key.clone();
        let first_manifest = deps.objects.object(STAGING, &manifest_key).unwrap().data;
        let second = invoke(&deps).await.unwrap();
        assert_eq!(first, second);
        assert_eq!(
            deps.objects.object(STAGING, &manifest_key).unwrap().data,
            first_manifest
        );
        assert_eq!(deps.objects.keys(STAGING).len(), 5);
    }

    #[tokio::test]
    async fn when_a_listed_version_does_not_exist_then_staging_fails_naming_key_and_version() {
        let mut listed = snapshot();
        listed.objects[2].version_id = "deleted-version-id".into();
        let deps = deps_with(&snapshot());
        deps.objects.put_object(
            NOTIFY_BUCKET,
            SNAPSHOT_KEY,
            serde_json::to_vec(&listed).unwrap(),
        );
        let err = invoke(&deps).await.unwrap_err();
        assert_eq!(err.error_type, "NotFound");
        assert!(
            err.error_message.contains("figures/summary.csv"),
            "{}",
            err.error_message
        );
        assert!(
            err.error_message.contains("deleted-version-id"),
            "{}",
            err.error_message
        );
        assert!(
            deps.objects
                .object(STAGING, &input_manifest_key())
                .is_none(),
            "no manifest"
        );
        assert_eq!(
            deps.requests
                .item(&input().egress_request_id)
                .unwrap()
                .staged_file_count,
            None
        );
    }

    fn input_manifest_key() -> String {
        let i = input();
        format!(".manifests/{}/{}.json", i.workspace_id, i.egress_request_id)
    }

    #[tokio::test]
    async fn when_one_key_is_unsafe_then_nothing_is_copied_and_the_key_is_named() {
        let mut listed = snapshot();
        let mut evil = listed.objects[1].clone();
        evil.key = "1637e3f6-5d2c-4d52-9a41-3f1b2c3d4e5f/../other-workspace/secrets.csv".into();
        listed.objects.push(evil);
        let deps = deps_with(&listed);
        let err = invoke(&deps).await.unwrap_err();
        assert_eq!(err.error_type, "ValidationError");
        assert!(
            err.error_message.contains("other-workspace/secrets.csv"),
            "{}",
            err.error_message
        );
        assert_eq!(copies(&deps), 0);
        assert!(deps.objects.keys(STAGING).is_empty());
        assert_eq!(deps.audit.events()[0].outcome, "failed");
    }

    #[tokio::test]
    async fn when_the_snapshot_lists_only_folders_then_it_is_a_validation_error() {
        let mut listed = snapshot();
        listed.objects.retain(|o| o.is_folder_marker());
        let deps = deps_with(&listed);
        let err = invoke(&deps).await.unwrap_err();
        assert_eq!(err.error_type, "ValidationError");
        assert_eq!(err.error_message, "snapshot lists no files");
        assert_eq!(copies(&deps), 0);
    }

    #[tokio::test]
    async fn when_the_snapshot_file_is_missing_then_the_error_is_not_found() {
        let deps = deps_with(&snapshot());
        let empty = InMemoryObjectStore::new().with_bucket(NOTIFY_BUCKET, false);
        let deps = StagingStep {
            objects: empty,
            ..deps
        };
        let err = invoke(&deps).await.unwrap_err();
        assert_eq!(err.error_type, "NotFound");
        assert!(
            err.error_message.contains("ver1.json"),
            "{}",
            err.error_message
        );
    }
}
