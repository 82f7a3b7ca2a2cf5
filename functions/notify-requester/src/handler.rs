//! Payload → [`shared::services::notify::NotifyStep`], run once by [`run_step`].
//! The same function sends the early "received" e-mail and the outcome e-mail (`outcome`).

use lambda_runtime::{Diagnostic, LambdaEvent};
use shared::model::{NotifyInput, NotifyResult};
use shared::services::{run_step, Step};

/// Sends the received or the outcome e-mail.
pub(crate) async fn handle(
    step: &impl Step<Input = NotifyInput, Output = NotifyResult>,
    event: LambdaEvent<NotifyInput>,
) -> Result<NotifyResult, Diagnostic> {
    Ok(run_step(step, event.payload).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::Context;
    use shared::fakes::{InMemoryRequestStore, RecordingMailer};
    use shared::model::{Decision, EgressStatus};
    use shared::services::notify::NotifyStep;
    use shared::testdata::request;

    fn fixture(name: &str) -> NotifyInput {
        let path = format!(
            "{}/../../events/notify-requester/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    fn deps(status: EgressStatus) -> NotifyStep<InMemoryRequestStore, RecordingMailer> {
        let mut r = request("8d3b9a57-4b8e-4a9e-9b7c-1f2d3e4a5b6c", status);
        r.ig_reviewer_1_decision = Some(Decision::Rejected);
        r.ig_reviewer_1_reason = Some("Row-level data in results.csv".into());
        NotifyStep {
            store: InMemoryRequestStore::with([r]),
            mailer: RecordingMailer::default(),
            admin_email: "tre-admin@example.org".into(),
        }
    }

    #[tokio::test]
    async fn when_a_request_is_rejected_then_the_researcher_gets_the_reason() {
        let deps = deps(EgressStatus::Rejected);
        let out = handle(
            &deps,
            LambdaEvent::new(fixture("rejected.json"), Context::default()),
        )
        .await
        .unwrap();
        assert_eq!(out.recipients, vec!["submitter@example.org"]);
        let sent = deps.mailer.sent();
        assert_eq!(sent.len(), 1);
        assert!(sent[0].text.contains("Row-level data in results.csv"));
        assert!(sent[0].text.contains("tre-admin@example.org"));
        // The link comes from the workflow's input, the one source of the app's URL.
        assert!(
            sent[0].text.contains("TRE: https://egress.tre.example.org"),
            "{}",
            sent[0].text
        );
    }

    #[tokio::test]
    async fn when_a_request_fails_after_its_archive_was_written_then_the_researcher_is_not_told_no_data_left(
    ) {
        let deps = deps(EgressStatus::Failed);
        let input = fixture("failed-after-archive.json");
        assert!(input.archive_written);
        handle(&deps, LambdaEvent::new(input, Context::default()))
            .await
            .unwrap();
        let sent = deps.mailer.sent();
        assert_eq!(sent.len(), 1);
        assert!(
            !sent[0].text.contains("no data has left"),
            "{}",
            sent[0].text
        );
        assert!(
            sent[0].text.contains("already been written"),
            "{}",
            sent[0].text
        );
    }

    #[tokio::test]
    async fn when_a_request_is_received_then_the_researcher_is_told_the_review_time() {
        let deps = deps(EgressStatus::Processing);
        let input = fixture("received.json");
        assert_eq!(input.review_timeout_seconds, 14 * 86_400);
        handle(&deps, LambdaEvent::new(input, Context::default()))
            .await
            .unwrap();
        let sent = deps.mailer.sent();
        assert_eq!(sent.len(), 1);
        assert!(
            sent[0].subject.starts_with("Egress request received"),
            "{}",
            sent[0].subject
        );
        assert!(sent[0].text.contains("up to 14 days"), "{}", sent[0].text);
    }

    #[tokio::test]
    async fn when_every_fixture_is_read_then_it_is_a_valid_input() {
        for name in [
            "received.json",
            "approved.json",
            "rejected.json",
            "expired.json",
            "failed.json",
            "failed-after-archive.json",
        ] {
            let input = fixture(name);
            let deps = deps(EgressStatus::Rejected);
            handle(&deps, LambdaEvent::new(input, Context::default()))
                .await
                .unwrap();
            assert_eq!(deps.mailer.sent().len(), 1, "{name}");
        }
    }
}
