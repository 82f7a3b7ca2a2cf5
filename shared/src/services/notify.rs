//! `notify-requester`: e-mail the researcher the outcome of their request.

use crate::domain::notify::{outcome_email, recipients, NotifyContext};
use crate::error::{EgressError, Result};
use crate::model::{NotifyInput, NotifyResult};
use crate::ports::{Mailer, RequestStore};

/// Reads the request (decisions and reasons live there) and sends the outcome e-mail.
/// A request without any requester e-mail (older SWB releases) is not an error: nobody can
/// be told, and the result says so.
pub async fn notify_requester(
    store: &impl RequestStore,
    mailer: &impl Mailer,
    ctx: &NotifyContext<'_>,
    input: &NotifyInput,
) -> Result<NotifyResult> {
    let request = store.get(&input.egress_request_id).await?.ok_or_else(|| {
        EgressError::NotFound(format!(
            "egress request {} does not exist",
            input.egress_request_id
        ))
    })?;
    match outcome_email(&request, input.outcome, input.archive_written, ctx) {
        None => {
            tracing::warn!(
                egress_request_id = %input.egress_request_id,
                "no requester e-mail on the request; outcome not e-mailed"
            );
            Ok(NotifyResult {
                recipients: Vec::new(),
                message_id: None,
            })
        }
        Some(email) => {
            let message_id = mailer.send(&email).await?;
            Ok(NotifyResult {
                recipients: recipients(&request),
                message_id: Some(message_id),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{InMemoryRequestStore, RecordingMailer};
    use crate::model::{EgressStatus, Outcome};
    use crate::testdata::request;

    const CTX: NotifyContext<'static> = NotifyContext {
        admin_email: "admin@example.org",
        app_url: "",
    };

    #[tokio::test]
    async fn when_a_request_ends_then_its_requester_gets_one_email() {
        let store = InMemoryRequestStore::with([request("req-1", EgressStatus::Rejected)]);
        let mailer = RecordingMailer::default();
        let input = NotifyInput {
            egress_request_id: "req-1".into(),
            outcome: Outcome::Rejected,
            archive_written: false,
        };
        let out = notify_requester(&store, &mailer, &CTX, &input)
            .await
            .unwrap();
        assert_eq!(out.recipients, vec!["submitter@example.org"]);
        assert_eq!(out.message_id.as_deref(), Some("message-1"));
        assert_eq!(mailer.sent().len(), 1);
    }

    #[tokio::test]
    async fn when_the_request_is_unknown_then_it_is_not_found_and_nothing_is_sent() {
        let store = InMemoryRequestStore::default();
        let mailer = RecordingMailer::default();
        let input = NotifyInput {
            egress_request_id: "nope".into(),
            outcome: Outcome::Approved,
            archive_written: false,
        };
        let err = notify_requester(&store, &mailer, &CTX, &input)
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "NotFound");
        assert!(mailer.sent().is_empty());
    }

    #[tokio::test]
    async fn when_no_email_is_known_then_nothing_is_sent_and_it_succeeds() {
        let mut r = request("req-1", EgressStatus::Expired);
        r.requested_by_email = None;
        r.store_owner_email = None;
        let store = InMemoryRequestStore::with([r]);
        let mailer = RecordingMailer::default();
        let input = NotifyInput {
            egress_request_id: "req-1".into(),
            outcome: Outcome::Expired,
            archive_written: false,
        };
        let out = notify_requester(&store, &mailer, &CTX, &input)
            .await
            .unwrap();
        assert!(out.recipients.is_empty() && out.message_id.is_none());
        assert!(mailer.sent().is_empty());
    }
}
