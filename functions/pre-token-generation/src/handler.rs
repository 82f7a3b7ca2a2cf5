//! Cognito event → `shared::domain::review::federation::token_groups` → group override.

use aws_lambda_events::event::cognito::CognitoEventUserPoolsPreTokenGen;
use lambda_runtime::{Diagnostic, LambdaEvent};
use shared::domain::review::federation::token_groups;

use crate::config::Config;

/// Sets a federated user's `cognito:groups` (in the ID and the access token) to the reviewer
/// groups their IdP groups map to; leaves users of the pool itself as they are. Never fails a
/// sign-in: a federated user without a mapped group just gets no reviewer group.
pub(crate) async fn handle(
    config: &Config,
    event: LambdaEvent<CognitoEventUserPoolsPreTokenGen>,
) -> Result<CognitoEventUserPoolsPreTokenGen, Diagnostic> {
    let mut event = event.payload;
    let username = event
        .cognito_event_user_pools_header
        .user_name
        .clone()
        .unwrap_or_default();
    let Some(groups) = token_groups(&event.request.user_attributes, &config.claim, &config.map)
    else {
        tracing::debug!(%username, "not federated: Cognito groups kept");
        return Ok(event);
    };
    tracing::info!(%username, groups = ?groups, "federated sign-in: reviewer groups from the IdP");
    let mut details = event
        .response
        .claims_override_details
        .take()
        .unwrap_or_default();
    details.group_override_details.groups_to_override = groups;
    event.response.claims_override_details = Some(details);
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::Context;
    use serde_json::Value;
    use shared::domain::review::federation::IdpGroupMap;

    fn config() -> Config {
        Config {
            claim: "custom:idp_groups".into(),
            map: IdpGroupMap::parse(
                "tre-ig=InformationGovernance,tre-rit=ResearchIT",
                &["InformationGovernance", "ResearchIT"],
            )
            .unwrap(),
        }
    }

    fn fixture(name: &str) -> CognitoEventUserPoolsPreTokenGen {
        let path = format!(
            "{}/../../events/pre-token-generation/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    async fn groups_after(name: &str) -> Option<Vec<String>> {
        let out = handle(
            &config(),
            LambdaEvent::new(fixture(name), Context::default()),
        )
        .await
        .unwrap();
        let json: Value = serde_json::to_value(&out).unwrap();
        json["response"]["claimsOverrideDetails"]["groupOverrideDetails"]["groupsToOverride"]
            .as_array()
            .map(|a| a.iter().map(|g| g.as_str().unwrap().to_string()).collect())
    }

    #[tokio::test]
    async fn when_a_federated_ig_member_signs_in_then_the_token_carries_the_ig_group() {
        assert_eq!(
            groups_after("federated-ig.json").await,
            Some(vec!["InformationGovernance".to_string()])
        );
    }

    #[tokio::test]
    async fn when_a_federated_user_has_a_lookalike_group_then_the_token_carries_none() {
        assert_eq!(groups_after("federated-lookalike.json").await, Some(vec![]));
    }

    #[tokio::test]
    async fn when_a_single_idp_group_name_contains_a_comma_then_the_token_carries_none() {
        // `x, tre-ig` is one IdP group (a single SAML value); splitting it granted IG.
        assert_eq!(
            groups_after("federated-comma-in-group-name.json").await,
            Some(vec![])
        );
    }

    #[tokio::test]
    async fn when_a_cognito_user_signs_in_then_nothing_is_overridden() {
        assert_eq!(groups_after("cognito-user.json").await, None);
    }

    #[test]
    fn when_each_fixture_is_read_then_it_is_a_pre_token_generation_event() {
        let dir = format!(
            "{}/../../events/pre-token-generation",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            serde_json::from_str::<CognitoEventUserPoolsPreTokenGen>(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
        assert!(seen >= 4);
    }
}
