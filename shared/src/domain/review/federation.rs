//! Reviewer groups of federated users (the `pre-token-generation` Cognito trigger).
//!
//! A federated user's groups come from their identity provider, through a custom user-pool
//! attribute (`custom:idp_groups`) that the IdP attribute mapping writes at every sign-in and
//! no app client lets the user write. Each IdP group is mapped to a reviewer group by exact,
//! case-sensitive equality: `tre-ig-admins` never matches `tre-ig`, whatever the order.

use std::collections::HashMap;

use crate::error::{EgressError, Result};

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

/// The IdP groups in the attribute's value. IdPs and Cognito's attribute mapping write lists
/// in several shapes: `g1`, `g1,g2`, `[g1, g2]` (SAML multi-valued) or `["g1","g2"]` (an OIDC
/// array claim). Items are trimmed of blanks and quotes and never split further.
pub fn parse_idp_groups(value: &str) -> Vec<String> {
    let value = value.trim();
    if value.starts_with('[') && value.ends_with(']') {
        if let Ok(list) = serde_json::from_str::<Vec<String>>(value) {
            return list
                .into_iter()
                .map(|g| g.trim().to_string())
                .filter(|g| !g.is_empty())
                .collect();
        }
    }
    let inner = value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(value);
    inner
        .split(',')
        .map(|g| g.trim().trim_matches('"').trim())
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .collect()
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
    let idp_groups = user_attributes
        .get(claim)
        .map(|v| parse_idp_groups(v))
        .unwrap_or_default();
    Some(map.reviewer_groups(&idp_groups))
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
    fn when_the_attribute_has_any_list_shape_then_each_item_is_read() {
        for value in [
            "tre-ig,other",
            "[tre-ig, other]",
            r#"["tre-ig","other"]"#,
            " tre-ig ",
            r#""tre-ig""#,
        ] {
            assert!(
                parse_idp_groups(value).contains(&"tre-ig".to_string()),
                "{value}"
            );
        }
        assert_eq!(parse_idp_groups("[]"), Vec::<String>::new());
        assert_eq!(parse_idp_groups(""), Vec::<String>::new());
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
