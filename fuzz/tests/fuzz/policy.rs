//! The checks policy (`CHECKS_POLICY`: one `Policy`, or `{"default", "projects"}`), parsed and
//! validated by `ProjectPolicies::from_json` at deploy (the template gate) and at cold start
//! (`check-outputs`), and by `Policy::from_json` in `egress-check --policy`.
//!
//! Arbitrary JSON, and mutations of a valid policy, give either a policy that obeys every
//! rule of `Policy::validate` (thresholds in range, extensions lower case without the dot,
//! a version of 1 to 64 characters) or a `ValidationError` "the checks policy is not valid"
//! that names the member at fault (the serde path, or the rule's own member name).

use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use serde_json::{json, Value};
use shared::checks::policy::MAX_SPREADSHEET_BYTES;
use shared::checks::{Policy, ProjectPolicies};

use crate::support::{self, hostile_value, mutation, names_field, path, text_damage, Step};

const SECTIONS: &[(&str, &[&str])] = &[
    ("size", &["max_file_bytes", "max_request_bytes", "severity"]),
    (
        "types",
        &[
            "allow_extensions",
            "review_extensions",
            "block_extensions",
            "executables",
            "scripts",
            "encrypted_archives",
            "hidden_files",
            "git_folders",
            "extension_mismatch",
        ],
    ),
    (
        "tables",
        &[
            "small_count_threshold",
            "flag_zeros",
            "small_counts",
            "record_level_min_rows",
            "record_level",
            "max_spreadsheet_bytes",
        ],
    ),
    (
        "identifiers",
        &[
            "nhs_numbers",
            "postcodes",
            "emails",
            "phone_numbers",
            "ni_numbers",
            "dates_of_birth",
            "ip_addresses",
        ],
    ),
    (
        "archives",
        &[
            "max_depth",
            "max_entries",
            "max_expansion_ratio",
            "max_expanded_bytes",
        ],
    ),
    ("images", &["gps", "identifying_metadata"]),
    (
        "acro",
        &[
            "checksum_mismatch",
            "file_missing",
            "unverified",
            "output_not_passed",
        ],
    ),
    ("malware", &["threats_found", "scan_not_finished"]),
];

/// Every member path of a policy under `prefix`.
fn member_paths(prefix: &[&str]) -> Vec<Vec<Step>> {
    let mut out = vec![path(prefix)];
    for top in ["version", "mode"] {
        out.push(path(&[prefix, &[top]].concat()));
    }
    for (section, fields) in SECTIONS {
        out.push(path(&[prefix, &[section]].concat()));
        for f in *fields {
            out.push(path(&[prefix, &[section, f]].concat()));
        }
    }
    for list in ["allow_extensions", "review_extensions", "block_extensions"] {
        out.push(path(&[prefix, &["types", list, "0"]].concat()));
    }
    out
}

/// Values the rules give a meaning to: severities, modes, limits around their bounds,
/// extensions with and without the dot.
fn vocabulary() -> impl Strategy<Value = Value> {
    prop_oneof![
        proptest::sample::select(
            &[
                "pass", "review", "block", "Block", "advise", "enforce", "", "x", "csv", ".csv",
                "CSV", "tar.gz", "p-1"
            ][..]
        )
        .prop_map(Value::from),
        proptest::sample::select(
            &[
                0u64,
                1,
                9,
                10,
                11,
                1000,
                1001,
                MAX_SPREADSHEET_BYTES,
                MAX_SPREADSHEET_BYTES + 1,
                u64::MAX
            ][..]
        )
        .prop_map(Value::from),
        Just(json!(-1)),
        Just(json!(1.5)),
        proptest::collection::vec(
            proptest::sample::select(vec![
                "py",
                "exe",
                ".exe",
                "",
                "a1",
                "ÉXE",
                "xxxxxxxxxxxxxxxxx"
            ]),
            0..3
        )
        .prop_map(|v| json!(v)),
        (1usize..80).prop_map(|n| Value::String("v".repeat(n))),
    ]
}

/// A valid policy (defaults with some members changed to other valid values).
fn valid_policy() -> impl Strategy<Value = Value> {
    (
        "[a-z0-9-]{1,20}",
        any::<bool>(),
        1u64..=1000,
        1u64..=MAX_SPREADSHEET_BYTES,
        0u32..=10,
        proptest::collection::vec("[a-z0-9]{1,16}", 0..3),
    )
        .prop_map(|(version, enforce, threshold, sheet, depth, exts)| {
            let mut p = Policy {
                version,
                ..Policy::default()
            };
            if enforce {
                p.mode = shared::checks::Mode::Enforce;
            }
            p.tables.small_count_threshold = threshold;
            p.tables.max_spreadsheet_bytes = sheet;
            p.archives.max_depth = depth;
            p.types.review_extensions = exts;
            serde_json::to_value(p).expect("a policy serialises")
        })
}

/// The rules every accepted policy obeys (`Policy::validate`, restated).
fn check_valid(p: &Policy) -> TestCaseResult {
    let v = p.version.trim();
    prop_assert!(!v.is_empty() && v.len() <= 64);
    prop_assert!(p.size.max_file_bytes > 0 && p.size.max_request_bytes > 0);
    prop_assert!((1..=1000).contains(&p.tables.small_count_threshold));
    prop_assert!((1..=MAX_SPREADSHEET_BYTES).contains(&p.tables.max_spreadsheet_bytes));
    prop_assert!(p.tables.record_level_min_rows > 0);
    prop_assert!(p.archives.max_depth <= 10);
    prop_assert!(p.archives.max_entries > 0 && p.archives.max_expansion_ratio > 0);
    for e in p
        .types
        .allow_extensions
        .iter()
        .chain(&p.types.review_extensions)
        .chain(&p.types.block_extensions)
    {
        prop_assert!(
            !e.is_empty()
                && e.len() <= 16
                && e.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "{:?}",
            e
        );
    }
    Ok(())
}

/// True when the refusal names a member of the policy (a section, a field, `version`,
/// `mode`, `default`/`projects`), as serde's path or in the rule's words.
fn names_a_member(msg: &str) -> bool {
    let words = ["version", "mode", "default", "projects"];
    words
        .iter()
        .chain(SECTIONS.iter().map(|(s, _)| s))
        .chain(SECTIONS.iter().flat_map(|(_, f)| f.iter()))
        .any(|w| msg.contains(w))
}

#[derive(Debug, Clone)]
enum Doc {
    /// One policy.
    Single(Value),
    /// `{"default", "projects": {...}}`.
    PerProject(Value, Vec<(String, Value)>),
    /// Any JSON value at all.
    Any(Value),
}

fn doc() -> impl Strategy<Value = (Doc, Vec<support::Mutation>, Option<support::TextDamage>)> {
    let mut paths = member_paths(&[]);
    paths.extend(member_paths(&["default"]));
    paths.extend(member_paths(&["projects", "proj-a"]));
    paths.push(path(&["projects"]));
    let vocab = (proptest::sample::select(paths.clone()), vocabulary())
        .prop_map(|(p, v)| support::Mutation::Set(p, v));
    (
        prop_oneof![
            4 => valid_policy().prop_map(Doc::Single),
            3 => (valid_policy(), proptest::collection::vec(
                (prop_oneof![Just("proj-a".to_string()), support::hostile_string()], valid_policy()), 0..3))
                .prop_map(|(d, p)| Doc::PerProject(d, p)),
            1 => hostile_value().prop_map(Doc::Any),
        ],
        proptest::collection::vec(prop_oneof![2 => mutation(paths), 3 => vocab], 0..=3),
        prop_oneof![8 => Just(None), 1 => text_damage(vec!["version", "default", "projects", "tables"]).prop_map(Some)],
    )
}

#[test]
fn when_the_checks_policy_is_hostile_json_then_it_is_valid_or_refused_naming_the_member() {
    support::run(
        "checks_policy",
        support::cases(support::DEFAULT_CASES, u32::MAX),
        doc(),
        |(doc, mutations, damage)| {
            let mut value = match doc {
                Doc::Single(v) | Doc::Any(v) => v,
                Doc::PerProject(d, projects) => json!({
                    "default": d,
                    "projects": projects.into_iter().collect::<serde_json::Map<_, _>>(),
                }),
            };
            for m in &mutations {
                m.apply(&mut value);
            }
            let mut text = value.to_string();
            if let Some(d) = &damage {
                text = d.apply(&text);
            }
            for (which, outcome) in [
                (
                    "project_policies",
                    ProjectPolicies::from_json(&text).map(|p| {
                        let mut all = vec![p.default.clone()];
                        all.extend(p.projects.into_values());
                        all
                    }),
                ),
                ("policy", Policy::from_json(&text).map(|p| vec![p])),
            ] {
                match outcome {
                    Ok(policies) => {
                        support::tally(if which == "policy" {
                            "policy_accepted"
                        } else {
                            "project_policies_accepted"
                        });
                        for p in &policies {
                            check_valid(p)?;
                        }
                    }
                    Err(err) => {
                        let msg = err.to_string();
                        support::tally_refusal_size(&msg);
                        prop_assert_eq!(err.error_type(), "ValidationError", "{}", msg);
                        prop_assert!(msg.starts_with("the checks policy is not valid"), "{}", msg);
                        let parsed = serde_json::from_str::<Value>(&text);
                        let json_broken = parsed.is_err();
                        if json_broken || names_a_member(&msg) {
                            support::tally("refused");
                        } else if parsed.is_ok_and(|v| !v.is_object()) {
                            // Not an object at all: serde says "invalid type", at the top.
                            support::tally("refused_not_an_object");
                        } else {
                            prop_assert!(false, "the refusal names no member: {}", msg);
                        }
                        let field = mutations.iter().rev().find_map(|m| m.field());
                        if let Some(f) = field {
                            if names_field(&msg, f) || msg.contains(f) {
                                support::tally("refused_naming_the_mutated_member");
                            }
                        }
                    }
                }
            }
            Ok(())
        },
    );
}
