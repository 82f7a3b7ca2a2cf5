//! The Cognito pre-token-generation trigger event (`pre-token-generation`: the event is read
//! by lambda_runtime, then `shared::domain::review::federation::token_groups` decides the
//! group override, as its handler does) and the federation parsers the reviewer API shares
//! (`parse_idp_groups`, `linked_identities`, `IdpGroupMap::parse`).
//!
//! The security property: a federated user gets a reviewer group only when one of their IdP
//! groups, read as DESIGN.md and `federation.rs` document, equals a mapped IdP group exactly;
//! a look-alike, a substring, a different case or a comma inside one value never grants one.

use std::collections::HashMap;

use aws_lambda_events::event::cognito::CognitoEventUserPoolsPreTokenGen;
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use serde_json::Value;
use shared::domain::review::federation::{linked_identities, token_groups, IdpGroupMap};

use crate::support::{self, fragment, hostile_string, hostile_value, mutation, path, Mutation};

const IG: &str = "InformationGovernance";
const RIT: &str = "ResearchIT";
const CLAIM: &str = "custom:idp_groups";
const MAP: &str = "tre-ig=InformationGovernance,tre-rit=ResearchIT";

fn map() -> IdpGroupMap {
    IdpGroupMap::parse(MAP, &[IG, RIT]).expect("a valid map")
}

fn fixtures() -> Vec<Value> {
    [
        "cognito-user.json",
        "federated-comma-in-group-name.json",
        "federated-ig.json",
        "federated-lookalike.json",
    ]
    .iter()
    .map(|f| support::fixture(&format!("pre-token-generation/{f}")))
    .collect()
}

/// IdP group names: the mapped ones, look-alikes of them, and anything.
fn group_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(vec![
            "tre-ig", "tre-rit", "TRE-IG", "tre-ig-admins", "xtre-ig", "tre-i", " tre-ig ",
            "x, tre-ig", "\"tre-ig\"", "tre-ig]", "[tre-ig", "tre-ig tre-rit", "tre-rit,",
            "all-staff", "",
        ])
        .prop_map(str::to_string),
        1 => hostile_string(),
        1 => proptest::collection::vec(fragment(), 1..4).prop_map(|v| v.concat()),
    ]
}

/// `custom:idp_groups` as Cognito may store it: a SAML multi-value `[a, b]`, an OIDC JSON
/// array, a single value, an array of non-strings, or anything.
fn idp_groups_value() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::collection::vec(group_name(), 0..4).prop_map(|g| format!("[{}]", g.join(", "))),
        proptest::collection::vec(group_name(), 0..4).prop_map(|g| Value::from(g).to_string()),
        group_name(),
        proptest::collection::vec(hostile_value(), 0..3).prop_map(|v| Value::Array(v).to_string()),
    ]
}

fn identities_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("[]".to_string()),
        (group_name(), group_name()).prop_map(|(p, u)| {
            serde_json::json!([{ "userId": u, "providerName": p, "providerType": "SAML" }])
                .to_string()
        }),
        proptest::collection::vec(hostile_value(), 0..3).prop_map(|v| Value::Array(v).to_string()),
        hostile_string(),
    ]
}

fn attribute(name: &str) -> Vec<support::Step> {
    path(&["request", "userAttributes", name])
}

fn case() -> impl Strategy<Value = (Value, Vec<Mutation>)> {
    let mut paths = vec![
        path(&["request"]),
        path(&["request", "userAttributes"]),
        path(&["request", "groupConfiguration"]),
        path(&["response"]),
        path(&["response", "claimsOverrideDetails"]),
        path(&["userName"]),
        path(&["triggerSource"]),
        path(&["version"]),
        path(&["userPoolId"]),
        path(&["callerContext"]),
    ];
    for a in [
        "sub",
        "cognito:user_status",
        "identities",
        "email",
        "name",
        CLAIM,
    ] {
        paths.push(attribute(a));
    }
    let set = |name: &'static str, s: BoxedStrategy<String>| {
        s.prop_map(move |v| Mutation::Set(attribute(name), Value::String(v)))
    };
    let attributes = prop_oneof![
        3 => set(CLAIM, idp_groups_value().boxed()),
        1 => Just(Mutation::Remove(attribute(CLAIM))),
        1 => set("identities", identities_value().boxed()),
        1 => Just(Mutation::Remove(attribute("identities"))),
        1 => set(
            "cognito:user_status",
            prop_oneof![
                Just("EXTERNAL_PROVIDER".to_string()),
                Just("CONFIRMED".to_string()),
                Just("external_provider".to_string()),
                Just(" EXTERNAL_PROVIDER".to_string()),
                hostile_string(),
            ]
            .boxed()
        ),
        1 => Just(Mutation::Remove(attribute("cognito:user_status"))),
    ];
    (
        proptest::sample::select(fixtures()),
        proptest::collection::vec(prop_oneof![3 => attributes, 1 => mutation(paths)], 0..=3),
    )
}

/// The documented reading of the attribute (federation.rs): a JSON array of strings is one
/// group per element; `[a, b]` is split at commas; anything else is one group; all trimmed.
fn documented_groups(value: &str) -> Vec<String> {
    let v = value.trim();
    let items: Vec<String> = if v.starts_with('[') && v.ends_with(']') {
        match serde_json::from_str::<Vec<Value>>(v) {
            Ok(list) => list
                .iter()
                .filter_map(Value::as_str)
                .map(|s| s.trim().to_string())
                .collect(),
            Err(_) => v[1..v.len() - 1]
                .split(',')
                .map(|s| s.trim().to_string())
                .collect(),
        }
    } else {
        vec![v.to_string()]
    };
    let mut granted = Vec::new();
    for (idp, group) in [("tre-ig", IG), ("tre-rit", RIT)] {
        if items.iter().any(|i| i == idp) {
            granted.push(group.to_string());
        }
    }
    granted
}

fn check(attrs: &HashMap<String, String>, groups: Option<Vec<String>>) -> TestCaseResult {
    let federated = attrs.get("cognito:user_status").map(String::as_str)
        == Some("EXTERNAL_PROVIDER")
        || attrs
            .get("identities")
            .is_some_and(|v| !v.trim().is_empty() && v.trim() != "[]");
    match groups {
        None => {
            support::tally("pool_user_kept");
            prop_assert!(!federated, "a federated user kept their Cognito groups");
        }
        Some(groups) => {
            support::tally(if groups.is_empty() {
                "federated_no_group"
            } else {
                "federated_granted"
            });
            prop_assert!(federated, "a pool user's groups were overridden");
            let expected = attrs
                .get(CLAIM)
                .map(|v| documented_groups(v))
                .unwrap_or_default();
            prop_assert_eq!(groups, expected);
        }
    }
    Ok(())
}

#[test]
fn when_trigger_events_are_hostile_then_only_exact_idp_groups_grant_reviewer_groups() {
    let map = map();
    support::run(
        "cognito_trigger",
        support::cases(support::DEFAULT_CASES, u32::MAX),
        case(),
        |(mut doc, mutations)| {
            for m in &mutations {
                m.apply(&mut doc);
            }
            // What lambda_runtime does before the handler (its own DeserializeError).
            let Ok(mut event) = serde_json::from_value::<CognitoEventUserPoolsPreTokenGen>(doc)
            else {
                support::tally("event_refused_by_runtime");
                return Ok(());
            };
            let groups = token_groups(&event.request.user_attributes, CLAIM, &map);
            check(&event.request.user_attributes, groups.clone())?;
            // The handler's answer must read back as the same event (Cognito parses it).
            if let Some(groups) = groups {
                let mut details = event
                    .response
                    .claims_override_details
                    .take()
                    .unwrap_or_default();
                details.group_override_details.groups_to_override = groups;
                event.response.claims_override_details = Some(details);
            }
            let answer = serde_json::to_string(&event).expect("the answer serialises");
            let back: CognitoEventUserPoolsPreTokenGen =
                serde_json::from_str(&answer).expect("and reads back");
            prop_assert_eq!(back, event);
            Ok(())
        },
    );
}

#[test]
fn when_identities_and_group_maps_are_hostile_then_they_parse_or_are_refused_by_name() {
    let input = (
        identities_value(),
        prop_oneof![
            Just(MAP.to_string()),
            proptest::collection::vec(
                (
                    group_name(),
                    prop_oneof![
                        Just(IG.to_string()),
                        Just(RIT.to_string()),
                        hostile_string()
                    ]
                ),
                0..4
            )
            .prop_map(|pairs| pairs
                .iter()
                .map(|(i, g)| format!("{i}={g}"))
                .collect::<Vec<_>>()
                .join(",")),
            hostile_string(),
        ],
    );
    support::run(
        "cognito_identities_and_map",
        support::cases(support::DEFAULT_CASES, u32::MAX),
        input,
        |(identities, raw_map)| {
            match linked_identities(Some(&identities)) {
                Ok(list) => {
                    support::tally("identities_read");
                    for i in &list {
                        prop_assert!(
                            !i.provider_name.trim().is_empty() && !i.user_id.trim().is_empty()
                        );
                    }
                }
                Err(err) => {
                    support::tally("identities_refused");
                    prop_assert_eq!(err.error_type(), "Forbidden", "{}", err);
                }
            }
            match IdpGroupMap::parse(&raw_map, &[IG, RIT]) {
                Ok(map) => {
                    support::tally("map_read");
                    // Whatever the map, it grants only reviewer groups, each once.
                    let all: Vec<String> = raw_map
                        .split(',')
                        .filter_map(|p| p.split_once('=').map(|(i, _)| i.trim().to_string()))
                        .collect();
                    let granted = map.reviewer_groups(&all);
                    prop_assert!(granted.iter().all(|g| g == IG || g == RIT), "{:?}", granted);
                    let distinct: std::collections::BTreeSet<_> = granted.iter().collect();
                    prop_assert_eq!(distinct.len(), granted.len());
                }
                Err(err) => {
                    support::tally("map_refused");
                    prop_assert_eq!(err.error_type(), "ConfigError");
                    prop_assert!(err.to_string().contains("IDP_GROUP_MAP"), "{}", err);
                }
            }
            Ok(())
        },
    );
}
