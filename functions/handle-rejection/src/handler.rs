//! Payload → [`shared::services::cleanup::CleanupStep`], run once by [`run_step`].

use lambda_runtime::{Diagnostic, LambdaEvent};
use shared::model::{CleanupInput, CleanupResult};
use shared::services::{run_step, Step};

pub(crate) async fn handle(
    step: &impl Step<Input = CleanupInput, Output = CleanupResult>,
    event: LambdaEvent<CleanupInput>,
) -> Result<CleanupResult, Diagnostic> {
    Ok(run_step(step, event.payload).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::Context;
    use shared::fakes::{InMemoryAuditLog, InMemoryObjectStore};
    use shared::ports::FixedClock;
    use shared::services::cleanup::CleanupStep;
    use time::macros::datetime;

    const STAGING: &str = "egress-staging";

    type TestDeps = CleanupStep<InMemoryObjectStore, InMemoryAuditLog, FixedClock>;

    fn events_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/handle-rejection")
    }

    fn input() -> CleanupInput {
        let text = std::fs::read_to_string(events_dir().join("rejected.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn deps() -> TestDeps {
        CleanupStep {
            objects: InMemoryObjectStore::new().with_bucket(STAGING, false),
            audit: InMemoryAuditLog::default(),
            clock: FixedClock(datetime!(2024-03-03 09:00:00 UTC)),
            staging_bucket: STAGING.into(),
        }
    }

    async fn invoke(deps: &TestDeps) -> Result<CleanupResult, Diagnostic> {
        handle(deps, LambdaEvent::new(input(), Context::default())).await
    }

    #[test]
    fn when_reading_the_fixtures_then_each_deserializes_into_a_cleanup_input() {
        let mut seen = 0;
        for entry in std::fs::read_dir(events_dir()).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            serde_json::from_str::<CleanupInput>(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
        assert!(seen >= 1);
    }

    #[tokio::test]
    async fn when_a_request_is_rejected_then_its_files_and_manifest_go_and_a_rerun_finds_nothing() {
        let deps = deps();
        let i = input();
        let prefix = format!("{}/{}/", i.workspace_id, i.egress_request_id);
        let manifest = format!(".manifests/{}/{}.json", i.workspace_id, i.egress_request_id);
        for path in ["results/summary.csv", "figures/summary.csv", "README"] {
            deps.objects
                .put_object(STAGING, &format!("{prefix}{path}"), "data");
        }
        deps.objects.put_object(STAGING, &manifest, "{}");
        let other = format!("{}/another-request/data.csv", i.workspace_id);
        deps.objects.put_object(STAGING, &other, "data");

        let first = invoke(&deps).await.unwrap();
        assert_eq!(first.deleted_objects, 4);
        assert_eq!(deps.objects.keys(STAGING), vec![other]);

        let second = invoke(&deps).await.unwrap();
        assert_eq!(second.deleted_objects, 0);
        let events: Vec<_> = deps
            .audit
            .events()
            .into_iter()
            .filter(|e| e.action == "cleanup")
            .collect();
        // The clean-up is audited once per request: the re-run (its answer was lost, the
        // workflow retried it) finds its earlier events and adds none.
        assert_eq!(events.len(), 1);
        assert!(events.iter().all(|e| e.actor == "system:handle-rejection"));
        assert_eq!(events[0].detail["deleted_objects"], 4);
        let confirmed = deps
            .audit
            .events()
            .into_iter()
            .filter(|e| e.action == "deletion_confirmed")
            .count();
        assert_eq!(confirmed, 1);
    }

    #[tokio::test]
    async fn when_s3_cannot_delete_a_key_then_the_error_names_it() {
        let deps = deps();
        let i = input();
        let locked = format!("{}/{}/locked.csv", i.workspace_id, i.egress_request_id);
        deps.objects.put_object(STAGING, &locked, "data");
        deps.objects.deny_delete(&locked);
        let err = invoke(&deps).await.unwrap_err();
        assert_eq!(err.error_type, "InternalError");
        assert!(err.error_message.contains(&locked), "{}", err.error_message);
        assert_eq!(deps.audit.events().last().unwrap().outcome, "failed");
    }
}
