//! SES adapter for [`Mailer`].

use aws_sdk_ses::error::ProvideErrorMetadata;
use aws_sdk_ses::operation::send_email::SendEmailError;
use aws_sdk_ses::types::{Body, Content, Destination, Message};
use aws_sdk_ses::Client;

use super::classify;
use crate::error::{EgressError, Result};
use crate::ports::{Email, Mailer};

/// Sends from one verified SES identity.
#[derive(Debug, Clone)]
pub struct SesMailer {
    client: Client,
    sender: String,
}

impl SesMailer {
    /// Wraps `client`, sending as `sender`.
    pub fn new(client: Client, sender: impl Into<String>) -> Self {
        Self {
            client,
            sender: sender.into(),
        }
    }
}

fn content(text: &str) -> Result<Content> {
    Content::builder()
        .data(text)
        .charset("UTF-8")
        .build()
        .map_err(|e| EgressError::Internal(format!("e-mail content: {e}")))
}

impl Mailer for SesMailer {
    async fn send(&self, email: &Email) -> Result<String> {
        let mut body = Body::builder().text(content(&email.text)?);
        if let Some(html) = &email.html {
            body = body.html(content(html)?);
        }
        let message = Message::builder()
            .subject(content(&email.subject)?)
            .body(body.build())
            .build();
        let out = self
            .client
            .send_email()
            .source(&self.sender)
            .destination(
                Destination::builder()
                    .set_to_addresses(Some(email.to.clone()))
                    .build(),
            )
            .message(message)
            .send()
            .await
            .map_err(|err| match err.as_service_error() {
                Some(
                    e @ (SendEmailError::MessageRejected(_)
                    | SendEmailError::MailFromDomainNotVerifiedException(_)
                    | SendEmailError::ConfigurationSetDoesNotExistException(_)),
                ) => EgressError::Internal(format!(
                    "SES refused the e-mail: {}: {}",
                    e.code().unwrap_or_default(),
                    e.message().unwrap_or_default()
                )),
                _ => classify("SES SendEmail", err),
            })?;
        Ok(out.message_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ses::operation::send_email::SendEmailOutput;
    use aws_sdk_ses::types::error::MessageRejected;
    use aws_smithy_mocks::{mock, mock_client};

    fn email() -> Email {
        Email {
            to: vec!["researcher@example.org".into()],
            subject: "Egress request approved".into(),
            text: "Your request was approved.".into(),
            html: None,
        }
    }

    #[tokio::test]
    async fn when_sending_then_the_sender_recipients_and_text_go_to_ses() {
        let send = mock!(aws_sdk_ses::Client::send_email)
            .match_requests(|r| {
                let message = r.message();
                r.source() == Some("egress@example.org")
                    && r.destination().map(|d| d.to_addresses())
                        == Some(&["researcher@example.org".to_string()][..])
                    && message.map(|m| m.subject().map(|s| s.data()))
                        == Some(Some("Egress request approved"))
                    && message
                        .and_then(|m| m.body())
                        .and_then(|b| b.text())
                        .map(|t| t.data())
                        == Some("Your request was approved.")
            })
            .then_output(|| {
                SendEmailOutput::builder()
                    .message_id("msg-1")
                    .build()
                    .unwrap()
            });
        let client = mock_client!(aws_sdk_ses, [&send]);
        let id = SesMailer::new(client, "egress@example.org")
            .send(&email())
            .await
            .unwrap();
        assert_eq!(id, "msg-1");
    }

    #[tokio::test]
    async fn when_ses_rejects_the_message_then_it_is_internal_and_says_why() {
        let send = mock!(aws_sdk_ses::Client::send_email).then_error(|| {
            SendEmailError::MessageRejected(
                MessageRejected::builder()
                    .meta(
                        aws_sdk_ses::error::ErrorMetadata::builder()
                            .code("MessageRejected")
                            .message("Email address is not verified")
                            .build(),
                    )
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_ses, [&send]);
        let err = SesMailer::new(client, "egress@example.org")
            .send(&email())
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "InternalError");
        assert!(
            err.to_string()
                .contains("MessageRejected: Email address is not verified"),
            "{err}"
        );
    }
}
