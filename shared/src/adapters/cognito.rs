//! [`ReviewerDirectory`] on Cognito user pools (`AdminGetUser`, `AdminListGroupsForUser`,
//! `DescribeIdentityProvider`).

use std::collections::BTreeMap;

use aws_sdk_cognitoidentityprovider::operation::admin_get_user::AdminGetUserError;
use aws_sdk_cognitoidentityprovider::operation::admin_list_groups_for_user::AdminListGroupsForUserError;
use aws_sdk_cognitoidentityprovider::operation::describe_identity_provider::DescribeIdentityProviderError;
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
        let custom_attributes: BTreeMap<String, String> = out
            .user_attributes()
            .iter()
            .filter(|a| a.name().starts_with("custom:"))
            .filter_map(|a| Some((a.name().to_string(), a.value()?.to_string())))
            .collect();
        Ok(Some(DirectoryUser {
            sub: attribute("sub").unwrap_or_default(),
            email: attribute("email"),
            email_verified: attribute("email_verified").map(|v| v.eq_ignore_ascii_case("true")),
            name: attribute("name"),
            enabled: out.enabled(),
            identities: attribute("identities"),
            custom_attributes,
        }))
    }

    async fn groups(&self, user_pool_id: &str, username: &str) -> Result<Vec<String>> {
        let mut groups = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = match self
                .client
                .admin_list_groups_for_user()
                .user_pool_id(user_pool_id)
                .username(username)
                .set_next_token(next.take())
                .send()
                .await
            {
                Ok(out) => out,
                // Deleted since the token was issued: a member of nothing.
                Err(err)
                    if matches!(
                        err.as_service_error(),
                        Some(AdminListGroupsForUserError::UserNotFoundException(_))
                    ) =>
                {
                    return Ok(Vec::new())
                }
                Err(err) => return Err(classify("Cognito AdminListGroupsForUser", err)),
            };
            groups.extend(
                out.groups()
                    .iter()
                    .filter_map(|g| g.group_name().map(str::to_string)),
            );
            match out.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_string()),
                _ => return Ok(groups),
            }
        }
    }

    async fn has_identity_provider(&self, user_pool_id: &str, provider_name: &str) -> Result<bool> {
        match self
            .client
            .describe_identity_provider()
            .user_pool_id(user_pool_id)
            .provider_name(provider_name)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .identity_provider()
                .and_then(|p| p.provider_name())
                .is_some_and(|name| name == provider_name)),
            Err(err) => match err.as_service_error() {
                Some(DescribeIdentityProviderError::ResourceNotFoundException(_)) => Ok(false),
                _ => Err(classify("Cognito DescribeIdentityProvider", err)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cognitoidentityprovider::operation::admin_get_user::AdminGetUserOutput;
    use aws_sdk_cognitoidentityprovider::operation::admin_list_groups_for_user::AdminListGroupsForUserOutput;
    use aws_sdk_cognitoidentityprovider::operation::describe_identity_provider::DescribeIdentityProviderOutput;
    use aws_sdk_cognitoidentityprovider::types::error::{
        ResourceNotFoundException, UserNotFoundException,
    };
    use aws_sdk_cognitoidentityprovider::types::{AttributeType, GroupType, IdentityProviderType};
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

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
    async fn when_the_user_is_federated_then_identities_and_custom_attributes_are_read() {
        let identities =
            r#"[{"userId":"jane@example.org","providerName":"corp-saml","providerType":"SAML"}]"#;
        let get = mock!(Client::admin_get_user).then_output(move || {
            AdminGetUserOutput::builder()
                .username("corp-saml_jane@example.org")
                .enabled(true)
                .user_attributes(attr("sub", "sub-j"))
                .user_attributes(attr("email", "jane@example.org"))
                .user_attributes(attr("email_verified", "false"))
                .user_attributes(attr("identities", identities))
                .user_attributes(attr("custom:idp_groups", "[all-staff, tre-ig]"))
                .build()
                .unwrap()
        });
        let client = mock_client!(aws_sdk_cognitoidentityprovider, [&get]);
        let user = CognitoReviewerDirectory::new(client)
            .user("pool-1", "corp-saml_jane@example.org")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(user.email_verified, Some(false));
        assert_eq!(user.identities.as_deref(), Some(identities));
        assert_eq!(
            user.custom_attributes
                .get("custom:idp_groups")
                .map(String::as_str),
            Some("[all-staff, tre-ig]")
        );
        assert_eq!(user.custom_attributes.len(), 1, "only custom:* attributes");
    }

    #[tokio::test]
    async fn when_listing_groups_then_every_page_is_read() {
        let group = |name: &str| GroupType::builder().group_name(name).build();
        let first = mock!(Client::admin_list_groups_for_user)
            .match_requests(|r| {
                r.user_pool_id() == Some("pool-1")
                    && r.username() == Some("alice")
                    && r.next_token().is_none()
            })
            .then_output(move || {
                AdminListGroupsForUserOutput::builder()
                    .groups(group("InformationGovernance"))
                    .next_token("page-2")
                    .build()
            });
        let second = mock!(Client::admin_list_groups_for_user)
            .match_requests(|r| r.next_token() == Some("page-2"))
            .then_output(move || {
                AdminListGroupsForUserOutput::builder()
                    .groups(group("ResearchIT"))
                    .build()
            });
        let client = mock_client!(
            aws_sdk_cognitoidentityprovider,
            RuleMode::MatchAny,
            [&first, &second]
        );
        let groups = CognitoReviewerDirectory::new(client)
            .groups("pool-1", "alice")
            .await
            .unwrap();
        assert_eq!(groups, vec!["InformationGovernance", "ResearchIT"]);
    }

    #[tokio::test]
    async fn when_the_user_was_deleted_then_they_are_in_no_group() {
        let list = mock!(Client::admin_list_groups_for_user).then_error(|| {
            AdminListGroupsForUserError::UserNotFoundException(
                UserNotFoundException::builder().build(),
            )
        });
        let client = mock_client!(aws_sdk_cognitoidentityprovider, [&list]);
        let groups = CognitoReviewerDirectory::new(client)
            .groups("pool-1", "ghost")
            .await
            .unwrap();
        assert!(groups.is_empty());
    }

    #[tokio::test]
    async fn when_the_identity_provider_is_configured_then_true_else_false() {
        let found = mock!(Client::describe_identity_provider)
            .match_requests(|r| r.provider_name() == Some("corp-saml"))
            .then_output(|| {
                DescribeIdentityProviderOutput::builder()
                    .identity_provider(
                        IdentityProviderType::builder()
                            .provider_name("corp-saml")
                            .build(),
                    )
                    .build()
            });
        let missing = mock!(Client::describe_identity_provider)
            .match_requests(|r| r.provider_name() == Some("gone"))
            .then_error(|| {
                DescribeIdentityProviderError::ResourceNotFoundException(
                    ResourceNotFoundException::builder().build(),
                )
            });
        let client = mock_client!(
            aws_sdk_cognitoidentityprovider,
            RuleMode::MatchAny,
            [&found, &missing]
        );
        let directory = CognitoReviewerDirectory::new(client);
        assert!(directory
            .has_identity_provider("pool-1", "corp-saml")
            .await
            .unwrap());
        assert!(!directory
            .has_identity_provider("pool-1", "gone")
            .await
            .unwrap());
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
