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
