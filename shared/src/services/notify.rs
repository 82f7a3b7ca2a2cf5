//! `notify-requester`: e-mail the researcher that their request was received, and later its
//! outcome. The outcome's run also records the request's end in the metrics (`RequestsCompleted`,
//! `Turnaround`, and `Failures` by cause): this step is the last of every path of the workflow.

use super::Step;
use crate::domain::notify::{outcome_email, recipients, NotifyContext};
use crate::error::{EgressError, Result};
use crate::model::{NotifyInput, NotifyResult};
use crate::ports::{Mailer, RequestStore};

/// `notify-requester` with its ports, as a [`Step`].
#[derive(Debug)]
pub struct NotifyStep<S, M> {
    /// The requests table (decisions and reasons live there).
    pub store: S,
    /// SES.
    pub mailer: M,
    /// The TRE admin's e-mail, given as the contact.
    pub admin_email: String,
}

impl<S: RequestStore, M: Mailer> Step for NotifyStep<S, M> {
    type Input = NotifyInput;
    type Output = NotifyResult;
    const FAILED: &'static str = "requester not notified";

    /// Reads the request and sends the received or the outcome e-mail. A request without any
    /// requester e-mail (older SWB releases) is not an error: nobody can be told, and the
    /// result says so.
    async fn run(&self, input: &NotifyInput) -> Result<NotifyResult> {
        let request = self
            .store
            .get(&input.egress_request_id)
            .await?
            .ok_or_else(|| {
                EgressError::NotFound(format!(
                    "egress request {} does not exist",
                    input.egress_request_id
                ))
            })?;
        let ctx = NotifyContext {
            admin_email: &self.admin_email,
            app_url: &input.app_url,
            review_timeout_seconds: input.review_timeout_seconds,
        };
        // Before the e-mail: a request that ended counts even if nobody can be told (a retry
        // after a transient SES error counts it again; EMF metrics are at-least-once anyway).
        crate::metrics::completed(&request, input.outcome);
        let Some(email) = outcome_email(&request, input.outcome, input.archive_written, &ctx)
        else {
            tracing::warn!(outcome = ?input.outcome, "no requester e-mail on the request; not e-mailed");
            return Ok(NotifyResult {
                recipients: Vec::new(),
                message_id: None,
            });
        };
        let message_id = self.mailer.send(&email).await?;
        let out = NotifyResult {
            recipients: recipients(&request),
            message_id: Some(message_id),
        };
        tracing::info!(outcome = ?input.outcome, recipients = out.recipients.len(), "requester notified");
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{InMemoryRequestStore, RecordingMailer};
    use crate::model::{EgressStatus, Outcome};
    use crate::testdata::request;

    fn step(store: InMemoryRequestStore) -> NotifyStep<InMemoryRequestStore, RecordingMailer> {
        NotifyStep {
            store,
            mailer: RecordingMailer::default(),
            admin_email: "admin@example.org".into(),
        }
    }

    #[tokio::test]
    async fn when_a_request_ends_then_its_requester_gets_one_email() {
        let step = step(InMemoryRequestStore::with([request(
            "req-1",
            EgressStatus::Rejected,
        )]));
        let input = NotifyInput {
            egress_request_id: "req-1".into(),
            outcome: Outcome::Rejected,
            archive_written: false,
            app_url: String::new(),
            review_timeout_seconds: 0,
        };
        let out = step.run(&input).await.unwrap();
        assert_eq!(out.recipients, vec!["submitter@example.org"]);
        assert_eq!(out.message_id.as_deref(), Some("message-1"));
        assert_eq!(step.mailer.sent().len(), 1);
    }

    #[tokio::test]
    async fn when_a_request_is_received_then_the_early_email_names_the_review_time_and_no_end_is_counted(
    ) {
        let mut r = request("req-1", EgressStatus::Processing);
        r.staged_file_count = Some(2);
        r.staged_total_bytes = Some(2048);
        let step = step(InMemoryRequestStore::with([r]));
        let input = NotifyInput {
            egress_request_id: "req-1".into(),
            outcome: Outcome::Received,
            archive_written: false,
            app_url: String::new(),
            review_timeout_seconds: 3 * 86_400,
        };
        crate::metrics::capture::start();
        let out = step.run(&input).await.unwrap();
        assert_eq!(out.recipients, vec!["submitter@example.org"]);
        let sent = step.mailer.sent();
        assert_eq!(sent.len(), 1);
        assert!(sent[0].subject.starts_with("Egress request received"));
        assert!(
            sent[0].text.contains("Files submitted: 2 (2.0 KiB)."),
            "{}",
            sent[0].text
        );
        assert!(sent[0].text.contains("up to 3 days"), "{}", sent[0].text);
        assert!(
            crate::metrics::capture::take().is_empty(),
            "received is not an end"
        );
    }

    #[tokio::test]
    async fn when_a_request_failed_then_its_end_and_its_cause_are_counted() {
        let mut r = request("req-1", EgressStatus::Failed);
        r.failure_error = Some("IntegrityError".into());
        let step = step(InMemoryRequestStore::with([r]));
        let input = NotifyInput {
            egress_request_id: "req-1".into(),
            outcome: Outcome::Failed,
            archive_written: false,
            app_url: String::new(),
            review_timeout_seconds: 0,
        };
        crate::metrics::capture::start();
        step.run(&input).await.unwrap();
        let docs = crate::metrics::capture::take();
        assert_eq!(docs.len(), 2, "{docs:?}");
        assert_eq!(docs[0]["RequestsCompleted"], 1.0);
        assert_eq!(docs[0]["Outcome"], "FAILED");
        assert_eq!(docs[1]["Failures"], 1.0);
        assert_eq!(docs[1]["Cause"], "IntegrityError");
        assert_eq!(docs[1]["egress_request_id"], "req-1");
    }

    #[tokio::test]
    async fn when_the_request_is_unknown_then_it_is_not_found_and_nothing_is_sent() {
        let step = step(InMemoryRequestStore::default());
        let input = NotifyInput {
            egress_request_id: "nope".into(),
            outcome: Outcome::Approved,
            archive_written: false,
            app_url: String::new(),
            review_timeout_seconds: 0,
        };
        let err = step.run(&input).await.unwrap_err();
        assert_eq!(err.error_type(), "NotFound");
        assert!(step.mailer.sent().is_empty());
    }

    #[tokio::test]
    async fn when_no_email_is_known_then_nothing_is_sent_and_it_succeeds() {
        let mut r = request("req-1", EgressStatus::Expired);
        r.requested_by_email = None;
        r.store_owner_email = None;
        let step = step(InMemoryRequestStore::with([r]));
        let input = NotifyInput {
            egress_request_id: "req-1".into(),
            outcome: Outcome::Expired,
            archive_written: false,
            app_url: String::new(),
            review_timeout_seconds: 0,
        };
        let out = step.run(&input).await.unwrap();
        assert!(out.recipients.is_empty() && out.message_id.is_none());
        assert!(step.mailer.sent().is_empty());
    }
}
