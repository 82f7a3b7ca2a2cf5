//! [`ReviewerDirectory`] on Cognito user pools (`AdminGetUser`).

use aws_sdk_cognitoidentityprovider::operation::admin_get_user::AdminGetUserError;
use aws_sdk_cognitoidentityprovider::Client;

use super::classify;
use crate::error::Result;
use crate::ports::{DirectoryUser, ReviewerDirectory};

/// Reads users of the reviewer user pool (IAM limits the function to that pool).
#[derive(Debug, Clone)]
pub struct CognitoReviewerDirectory {
    client: Client,
}

impl CognitoReviewerDirectory {
    /// Wraps `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl ReviewerDirectory for CognitoReviewerDirectory {
    async fn user(&self, user_pool_id: &str, username: &str) -> Result<Option<DirectoryUser>> {
        let out = match self
            .client
            .admin_get_user()
            .user_pool_id(user_pool_id)
            .username(username)
            .send()
            .await
        {
            Ok(out) => out,
            Err(err) => {
                return match err.as_service_error() {
                    Some(AdminGetUserError::UserNotFoundException(_)) => Ok(None),
                    _ => Err(classify("Cognito AdminGetUser", err)),
                }
            }
        };
        let attribute = |name: &str| {
            out.user_attributes()
                .iter()
                .find(|a| a.name() == name)
                .and_then(|a| a.value())
                .map(str::to_string)
        };
        Ok(Some(DirectoryUser {
            sub: attribute("sub").unwrap_or_default(),
            email: attribute("email"),
            email_verified: attribute("email_verified").map(|v| v.eq_ignore_ascii_case("true")),
            name: attribute("name"),
            enabled: out.enabled(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cognitoidentityprovider::operation::admin_get_user::AdminGetUserOutput;
    use aws_sdk_cognitoidentityprovider::types::error::UserNotFoundException;
    use aws_sdk_cognitoidentityprovider::types::AttributeType;
    use aws_smithy_mocks::{mock, mock_client};

    fn attr(name: &str, value: &str) -> AttributeType {
        AttributeType::builder()
            .name(name)
            .value(value)
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn when_the_user_exists_then_sub_email_and_state_come_from_the_pool() {
        let get = mock!(Client::admin_get_user)
            .match_requests(|r| r.user_pool_id() == Some("pool-1") && r.username() == Some("alice"))
            .then_output(|| {
                AdminGetUserOutput::builder()
                    .username("alice")
                    .enabled(false)
                    .user_attributes(attr("sub", "sub-a"))
                    .user_attributes(attr("email", "alice@example.org"))
                    .user_attributes(attr("email_verified", "True"))
                    .build()
                    .unwrap()
            });
        let client = mock_client!(aws_sdk_cognitoidentityprovider, [&get]);
        let user = CognitoReviewerDirectory::new(client)
            .user("pool-1", "alice")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(user.sub, "sub-a");
        assert_eq!(user.email.as_deref(), Some("alice@example.org"));
        assert_eq!(user.email_verified, Some(true));
        assert_eq!(user.name, None);
        assert!(!user.enabled);
    }

    #[tokio::test]
    async fn when_the_user_does_not_exist_then_none() {
        let get = mock!(Client::admin_get_user).then_error(|| {
            AdminGetUserError::UserNotFoundException(UserNotFoundException::builder().build())
        });
        let client = mock_client!(aws_sdk_cognitoidentityprovider, [&get]);
        let user = CognitoReviewerDirectory::new(client)
            .user("pool-1", "ghost")
            .await
            .unwrap();
        assert_eq!(user, None);
    }
}
