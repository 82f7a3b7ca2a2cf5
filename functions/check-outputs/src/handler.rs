//! Payload → [`shared::services::checks::ChecksStep`], run once by [`run_step`].

use lambda_runtime::{Diagnostic, LambdaEvent};
use shared::model::{ChecksInput, ChecksResult};
use shared::services::{run_step, Step};

pub(crate) async fn handle(
    step: &impl Step<Input = ChecksInput, Output = ChecksResult>,
    event: LambdaEvent<ChecksInput>,
) -> Result<ChecksResult, Diagnostic> {
    Ok(run_step(step, event.payload).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::Context;
    use shared::checks::ProjectPolicies;
    use shared::fakes::{InMemoryAuditLog, InMemoryObjectStore};
    use shared::ports::FixedClock;
    use shared::services::checks::ChecksStep;
    use time::macros::datetime;

    fn events_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/check-outputs")
    }

    #[test]
    fn when_reading_the_fixtures_then_each_deserializes_into_its_type() {
        let mut seen = 0;
        for entry in std::fs::read_dir(events_dir()).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("result") {
                serde_json::from_str::<ChecksResult>(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            } else {
                serde_json::from_str::<ChecksInput>(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            seen += 1;
        }
        assert!(seen >= 2);
    }

    #[tokio::test]
    async fn when_nothing_was_staged_then_the_error_reaches_the_workflow_by_its_name() {
        let step = ChecksStep {
            objects: InMemoryObjectStore::new().with_bucket("staging", false),
            audit: InMemoryAuditLog::default(),
            clock: FixedClock(datetime!(2024-03-03 09:00:00 UTC)),
            staging_bucket: "staging".into(),
            staging_kms_key_arn: "k".into(),
            policies: ProjectPolicies::default(),
            malware_wait: None,
        };
        let text = std::fs::read_to_string(events_dir().join("checks-input.json")).unwrap();
        let input: ChecksInput = serde_json::from_str(&text).unwrap();
        let err = handle(&step, LambdaEvent::new(input, Context::default()))
            .await
            .unwrap_err();
        assert_eq!(err.error_type, "NotFound");
    }
}
