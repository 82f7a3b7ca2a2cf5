//! [`Publisher`] on SNS: the reviewers' and the admin's topics.

use aws_sdk_sns::Client;

use super::classify;
use crate::error::Result;
use crate::ports::Publisher;

/// SNS subjects are limited to 100 characters.
const MAX_SUBJECT: usize = 100;

/// [`Publisher`] on an SNS client.
#[derive(Debug, Clone)]
pub struct SnsPublisher {
    client: Client,
}

impl SnsPublisher {
    /// Wraps `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// `subject` cut to SNS's limit on a character boundary, line breaks removed (SNS refuses them).
fn subject_line(subject: &str) -> String {
    subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_SUBJECT)
        .collect()
}

impl Publisher for SnsPublisher {
    async fn publish(&self, topic_arn: &str, subject: &str, message: &str) -> Result<String> {
        let out = self
            .client
            .publish()
            .topic_arn(topic_arn)
            .subject(subject_line(subject))
            .message(message)
            .send()
            .await
            .map_err(|e| classify(&format!("Publish to {topic_arn}"), e))?;
        Ok(out.message_id.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sns::operation::publish::PublishOutput;
    use aws_smithy_mocks::{mock, mock_client};

    #[tokio::test]
    async fn when_publishing_then_the_topic_gets_the_message_with_a_subject_sns_accepts() {
        let long = format!("Reminder\n{}", "x".repeat(200));
        let publish = mock!(Client::publish)
            .match_requests(|r| {
                r.topic_arn() == Some("arn:topic")
                    && r.message() == Some("body")
                    && r.subject()
                        .is_some_and(|s| s.chars().count() == 100 && !s.contains('\n'))
            })
            .then_output(|| PublishOutput::builder().message_id("m-1").build());
        let client = mock_client!(aws_sdk_sns, [&publish]);
        let id = SnsPublisher::new(client)
            .publish("arn:topic", &long, "body")
            .await
            .unwrap();
        assert_eq!(id, "m-1");
    }

    #[tokio::test]
    async fn when_sns_throttles_then_publishing_is_transient() {
        let publish = mock!(Client::publish).then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(429).unwrap(),
                aws_smithy_types::body::SdkBody::from("{}"),
            )
        });
        let client = mock_client!(aws_sdk_sns, [&publish]);
        let err = SnsPublisher::new(client)
            .publish("arn:topic", "s", "m")
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "TransientError");
    }
}
