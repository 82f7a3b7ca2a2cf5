//! Reviewer groups of federated users (the `pre-token-generation` Cognito trigger).
//!
//! A federated user's groups come from their identity provider, through a custom user-pool
//! attribute (`custom:idp_groups`) that the IdP attribute mapping writes at every sign-in and
//! no app client lets the user write. Each IdP group is mapped to a reviewer group by exact,
//! case-sensitive equality: `tre-ig-admins` never matches `tre-ig`, whatever the order.
//!
//! The reviewer API applies the same mapping to the attribute as the pool holds it at the
//! time of each decision and download ([`mapped_groups`]), and trusts a federated user's
//! e-mail only when their `identities` ([`linked_identities`]) name a provider configured in
//! the pool.

use std::collections::HashMap;

use serde::Deserialize;

use crate::error::{EgressError, Result};

/// The attribute the template's IdP attribute mapping writes the IdP's groups to.
pub const DEFAULT_GROUP_CLAIM: &str = "custom:idp_groups";

/// The attribute Cognito sets on users who signed in through an external IdP.
const USER_STATUS: &str = "cognito:user_status";
/// Its value for federated users.
const EXTERNAL_PROVIDER: &str = "EXTERNAL_PROVIDER";
/// The attribute listing the linked IdP identities of a federated user.
const IDENTITIES: &str = "identities";

/// `<idp group>` → reviewer group, from `IDP_GROUP_MAP` (`a=InformationGovernance,b=ResearchIT`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdpGroupMap {
    entries: Vec<(String, String)>,
}

impl IdpGroupMap {
    /// Parses comma-separated `<idp group>=<reviewer group>` pairs. Every reviewer group must
    /// be one of `reviewer_groups`; an IdP group may map to several reviewer groups (one pair
    /// each). Blank means no mapping: federated users then get no reviewer group.
    pub fn parse(raw: &str, reviewer_groups: &[&str]) -> Result<Self> {
        let mut entries = Vec::new();
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (idp, group) = pair
                .split_once('=')
                .map(|(i, g)| (i.trim(), g.trim()))
                .filter(|(i, g)| !i.is_empty() && !g.is_empty())
                .ok_or_else(|| {
                    EgressError::Config(format!(
                        "IDP_GROUP_MAP entry {pair:?} is not `<idp group>=<reviewer group>`"
                    ))
                })?;
            if !reviewer_groups.contains(&group) {
                return Err(EgressError::Config(format!(
                    "IDP_GROUP_MAP maps {idp:?} to {group:?}, which is not a reviewer group ({})",
                    reviewer_groups.join(", ")
                )));
            }
            let entry = (idp.to_string(), group.to_string());
            if !entries.contains(&entry) {
                entries.push(entry);
            }
        }
        Ok(Self { entries })
    }

    /// The reviewer groups `idp_groups` grant, in mapping order, without duplicates.
    pub fn reviewer_groups(&self, idp_groups: &[String]) -> Vec<String> {
        let mut granted: Vec<String> = Vec::new();
        for (idp, group) in &self.entries {
            if idp_groups.iter().any(|g| g == idp) && !granted.contains(group) {
                granted.push(group.clone());
            }
        }
        granted
    }
}

/// The IdP groups in the attribute's value, in the formats Cognito's attribute mapping
/// writes:
/// - a JSON array of strings, `["g1","g2"]` (an OIDC array claim): each element is one group,
///   whatever it contains;
/// - `[g1, g2]`, brackets around comma-separated values: how Cognito stores a SAML attribute
///   that has several `AttributeValue`s (values without quotes, so the commas are the only
///   separators Cognito gives us);
/// - anything else is one group, compared whole: a single-valued claim is never split, so an
///   IdP group called `x, tre-ig` stays `x, tre-ig` and cannot pass for `tre-ig`.
///
/// Values are trimmed of blanks and nothing else (no quote stripping: a half-quoted value
/// matches no configured group).
pub fn parse_idp_groups(value: &str) -> Vec<String> {
    let value = value.trim();
    let keep = |g: &str| {
        let g = g.trim();
        (!g.is_empty()).then(|| g.to_string())
    };
    if value.starts_with('[') && value.ends_with(']') {
        if let Ok(list) = serde_json::from_str::<Vec<serde_json::Value>>(value) {
            // Only string elements are group names; numbers or objects name no group.
            return list
                .iter()
                .filter_map(serde_json::Value::as_str)
                .filter_map(keep)
                .collect();
        }
        let inner = &value[1..value.len() - 1];
        return inner.split(',').filter_map(keep).collect();
    }
    keep(value).into_iter().collect()
}

/// The reviewer groups a stored IdP group attribute grants (absent: none).
pub fn mapped_groups(value: Option<&str>, map: &IdpGroupMap) -> Vec<String> {
    map.reviewer_groups(&value.map(parse_idp_groups).unwrap_or_default())
}

/// The user-pool attribute holding the IdP's groups: `IDP_GROUP_CLAIM`, default
/// [`DEFAULT_GROUP_CLAIM`]. Only a custom attribute is accepted, because standard attributes
/// (`profile`, `website`...) are writable by users by default while a custom one can be left
/// out of every app client's write attributes.
pub fn group_claim(raw: Option<&str>) -> Result<String> {
    let claim = raw
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .unwrap_or(DEFAULT_GROUP_CLAIM);
    if !claim.starts_with("custom:") || claim.len() <= "custom:".len() {
        return Err(EgressError::Config(format!(
            "IDP_GROUP_CLAIM must name a custom user-pool attribute (custom:...), got {claim:?}"
        )));
    }
    Ok(claim.to_string())
}

/// One linked identity of a federated user, from the pool's `identities` attribute.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkedIdentity {
    /// The user-pool identity provider's name (`ProviderName`).
    pub provider_name: String,
    /// `SAML`, `OIDC`, `Google`...
    #[serde(default)]
    pub provider_type: Option<String>,
    /// The user's id at that provider (SAML `NameID`, OIDC `sub`).
    pub user_id: String,
}

/// The identities a user's `identities` attribute links: none when the attribute is absent,
/// blank or `[]`. Cognito alone writes it (at a federated sign-in, or when an administrator
/// links a provider), no app client and no attribute update can; anything but a JSON array
/// of objects naming a provider and a user id is refused rather than guessed at.
pub fn linked_identities(raw: Option<&str>) -> Result<Vec<LinkedIdentity>> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(Vec::new());
    };
    let malformed = || {
        EgressError::Forbidden(
            "Your user account's federated identity record is not readable; \
             ask the TRE admin to check your account"
                .into(),
        )
    };
    let identities: Vec<LinkedIdentity> = serde_json::from_str(raw).map_err(|_| malformed())?;
    if identities
        .iter()
        .any(|i| i.provider_name.trim().is_empty() || i.user_id.trim().is_empty())
    {
        return Err(malformed());
    }
    Ok(identities)
}

/// True when the user signed in through an external identity provider.
pub fn is_federated(user_attributes: &HashMap<String, String>) -> bool {
    user_attributes.get(USER_STATUS).map(String::as_str) == Some(EXTERNAL_PROVIDER)
        || user_attributes
            .get(IDENTITIES)
            .is_some_and(|v| !v.trim().is_empty() && v.trim() != "[]")
}

/// The reviewer groups to put in a user's tokens: `None` for users of the pool itself (their
/// Cognito groups stand), the mapped groups (possibly none) for federated users, for whom the
/// IdP is the only source of roles.
pub fn token_groups(
    user_attributes: &HashMap<String, String>,
    claim: &str,
    map: &IdpGroupMap,
) -> Option<Vec<String>> {
    if !is_federated(user_attributes) {
        return None;
    }
    Some(mapped_groups(
        user_attributes.get(claim).map(String::as_str),
        map,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUPS: [&str; 2] = ["InformationGovernance", "ResearchIT"];

    fn map() -> IdpGroupMap {
        IdpGroupMap::parse("tre-ig=InformationGovernance, tre-rit=ResearchIT", &GROUPS).unwrap()
    }

    fn federated(groups: Option<&str>) -> HashMap<String, String> {
        let mut attrs = HashMap::from([
            ("sub".to_string(), "s-1".to_string()),
            (USER_STATUS.to_string(), EXTERNAL_PROVIDER.to_string()),
        ]);
        if let Some(g) = groups {
            attrs.insert("custom:idp_groups".into(), g.into());
        }
        attrs
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn when_idp_groups_match_exactly_then_the_reviewer_groups_are_granted() {
        let groups = token_groups(
            &federated(Some("[tre-rit, tre-ig]")),
            "custom:idp_groups",
            &map(),
        );
        assert_eq!(groups, Some(strings(&GROUPS)));
    }

    #[test]
    fn when_an_idp_group_only_contains_or_resembles_a_mapped_name_then_nothing_is_granted() {
        for value in [
            "tre-ig-admins",
            "xtre-ig",
            "TRE-IG",
            "tre-i",
            "tre-ig tre-rit",
            "not-tre-rit",
        ] {
            let groups = token_groups(&federated(Some(value)), "custom:idp_groups", &map());
            assert_eq!(groups, Some(vec![]), "{value}");
        }
    }

    #[test]
    fn when_the_attribute_has_a_real_list_shape_then_each_whole_item_is_read() {
        let both = strings(&["tre-ig", "other"]);
        // SAML multi-valued, as Cognito stores it; an OIDC array claim; a single value.
        assert_eq!(parse_idp_groups("[tre-ig, other]"), both);
        assert_eq!(parse_idp_groups("[tre-ig,other]"), both);
        assert_eq!(parse_idp_groups(r#"["tre-ig", "other"]"#), both);
        assert_eq!(parse_idp_groups(" tre-ig "), strings(&["tre-ig"]));
        assert_eq!(
            parse_idp_groups(r#"["a, b", 7, "c"]"#),
            strings(&["a, b", "c"])
        );
        assert_eq!(parse_idp_groups("[]"), Vec::<String>::new());
        assert_eq!(parse_idp_groups(""), Vec::<String>::new());
        // A half-quoted value is not unquoted into a match.
        assert_eq!(parse_idp_groups(r#""tre-ig""#), strings(&[r#""tre-ig""#]));
    }

    #[test]
    fn when_a_single_idp_group_value_contains_a_comma_then_it_stays_one_group_and_maps_to_nothing()
    {
        for value in [
            "x, tre-ig",
            "x,tre-ig",
            r#"["x, tre-ig"]"#,
            r#"["x,tre-ig", "other"]"#,
        ] {
            assert_eq!(
                token_groups(&federated(Some(value)), "custom:idp_groups", &map()),
                Some(vec![]),
                "{value}"
            );
        }
    }

    #[test]
    fn when_the_user_is_not_federated_then_their_cognito_groups_stand() {
        let mut attrs = federated(Some("tre-ig"));
        attrs.remove(USER_STATUS);
        assert_eq!(token_groups(&attrs, "custom:idp_groups", &map()), None);
        attrs.insert(IDENTITIES.into(), r#"[{"providerName":"Corp"}]"#.into());
        assert!(token_groups(&attrs, "custom:idp_groups", &map()).is_some());
    }

    #[test]
    fn when_a_federated_user_has_no_group_attribute_then_no_group_is_granted() {
        assert_eq!(
            token_groups(&federated(None), "custom:idp_groups", &map()),
            Some(vec![])
        );
    }

    #[test]
    fn when_the_map_names_an_unknown_group_or_is_malformed_then_it_is_a_config_error() {
        for raw in ["tre-ig=Admins", "tre-ig", "=ResearchIT", "tre-ig="] {
            let err = IdpGroupMap::parse(raw, &GROUPS).unwrap_err();
            assert_eq!(err.error_type(), "ConfigError", "{raw}");
            assert!(err.to_string().contains("IDP_GROUP_MAP"), "{raw}: {err}");
        }
        assert_eq!(
            IdpGroupMap::parse("", &GROUPS).unwrap(),
            IdpGroupMap::default()
        );
    }

    #[test]
    fn when_identities_name_providers_then_they_are_read_and_malformed_ones_are_refused() {
        let raw = r#"[{"userId":"jane@example.org","providerName":"corp-saml","providerType":"SAML","issuer":null,"primary":true,"dateCreated":1714636800000}]"#;
        let ids = linked_identities(Some(raw)).unwrap();
        assert_eq!(ids.len(), 1);
        assert_eq!(ids[0].provider_name, "corp-saml");
        assert_eq!(ids[0].user_id, "jane@example.org");
        assert_eq!(ids[0].provider_type.as_deref(), Some("SAML"));
        assert_eq!(linked_identities(None).unwrap(), vec![]);
        assert_eq!(linked_identities(Some(" ")).unwrap(), vec![]);
        assert_eq!(linked_identities(Some("[]")).unwrap(), vec![]);
        for bad in [
            "corp-saml",
            r#"{"providerName":"corp-saml","userId":"j"}"#,
            r#"[{"providerName":"corp-saml"}]"#,
            r#"[{"providerName":"","userId":"j"}]"#,
            r#"[{"providerName":"corp-saml","userId":" "}]"#,
            r#"["corp-saml"]"#,
        ] {
            let err = linked_identities(Some(bad)).unwrap_err();
            assert_eq!(err.error_type(), "Forbidden", "{bad}");
        }
    }

    #[test]
    fn when_the_group_claim_is_not_a_custom_attribute_then_it_is_a_config_error() {
        assert_eq!(group_claim(None).unwrap(), "custom:idp_groups");
        assert_eq!(group_claim(Some("custom:groups")).unwrap(), "custom:groups");
        for bad in ["profile", "custom:", "email"] {
            let err = group_claim(Some(bad)).unwrap_err();
            assert!(err.to_string().contains("IDP_GROUP_CLAIM"), "{bad}: {err}");
        }
    }

    #[test]
    fn when_one_idp_group_maps_to_both_stages_then_both_are_granted_once() {
        let map = IdpGroupMap::parse(
            "all=InformationGovernance,all=ResearchIT,all=ResearchIT",
            &GROUPS,
        )
        .unwrap();
        assert_eq!(
            map.reviewer_groups(&strings(&["all", "all"])),
            strings(&GROUPS)
        );
    }
}
