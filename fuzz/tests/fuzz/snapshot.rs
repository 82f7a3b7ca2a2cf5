//! SWB's snapshot file (`{"objects": [...]}`), read by `copy-to-staging`.
//!
//! `shared::services::staging` parses the bytes inside a private function (`stage`); this
//! target runs the same two public steps it is made of: `serde_json::from_slice::<Snapshot>`
//! (refused as a `ValidationError` "snapshot ... is not a valid SWB snapshot") and
//! `shared::domain::staging::plan`.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use serde_json::{json, Value};
use shared::domain::keys::{StagingLayout, MAX_KEY_BYTES};
use shared::domain::staging::plan;
use shared::model::Snapshot;
use shared::EgressError;

use crate::keys::{key_under, spec_violation, PREFIX};
use crate::support::{
    self, hostile_string, mutation, names_field, path, text_damage, Mutation, TextDamage,
};

const WORKSPACE: &str = "1637e3f6-5d2c-4d52-9a41-3f1b2c3d4e5f";
const REQUEST: &str = "8d3b9a57-4b8e-4a9e-9b7c-1f2d3e4a5b6c";
const MEMBERS: &[&str] = &[
    "Key",
    "VersionId",
    "Size",
    "ETag",
    "LastModified",
    "StorageClass",
    "Owner",
];

/// A listing entry with a generated key and version.
fn entry() -> impl Strategy<Value = Value> {
    (
        key_under(PREFIX),
        prop_oneof![4 => "[a-zA-Z0-9._]{32}", 1 => Just("null".to_string()), 1 => hostile_string()],
        prop_oneof![any::<u64>(), 0u64..100_000],
    )
        .prop_map(|(key, version, size)| {
            json!({
                "Key": key, "VersionId": version, "Size": size,
                "ETag": "\"d41d8cd98f00b204e9800998ecf8427e\"", "StorageClass": "STANDARD",
                "LastModified": "2024-03-01T16:42:07.000Z",
            })
        })
}

/// How the snapshot is changed before it is read.
#[derive(Debug, Clone)]
struct Case {
    /// Entries appended to the fixture's (a copy of an existing entry is a duplicate).
    added: Vec<Value>,
    /// Copies of fixture entries appended (index modulo the count).
    duplicated: Vec<usize>,
    /// Member mutations (of the entries, of the top level).
    mutations: Vec<Mutation>,
    damage: Option<TextDamage>,
}

fn case() -> impl Strategy<Value = Case> {
    let mut paths = vec![path(&["objects"]), path(&["objects", "0"])];
    for i in ["0", "1", "2", "4", "5", "7"] {
        for m in MEMBERS {
            paths.push(path(&["objects", i, m]));
        }
    }
    (
        proptest::collection::vec(entry(), 0..4),
        proptest::collection::vec(0usize..6, 0..2),
        proptest::collection::vec(mutation(paths), 0..=3),
        prop_oneof![9 => Just(None), 1 => text_damage(vec!["objects"]).prop_map(Some)],
    )
        .prop_map(|(added, duplicated, mutations, damage)| Case {
            added,
            duplicated,
            mutations,
            damage,
        })
}

fn render(case: &Case) -> String {
    let mut doc = support::fixture("copy-to-staging/snapshot-ver1.json");
    if let Some(objects) = doc["objects"].as_array_mut() {
        for i in &case.duplicated {
            let copy = objects[i % objects.len()].clone();
            objects.push(copy);
        }
        objects.extend(case.added.iter().cloned());
    }
    for m in &case.mutations {
        m.apply(&mut doc);
    }
    let text = doc.to_string();
    match &case.damage {
        Some(d) => d.apply(&text),
        None => text,
    }
}

/// What `copy-to-staging` does with the bytes, up to the first copy.
fn read_and_plan(
    raw: &[u8],
    layout: &StagingLayout,
) -> Result<(Snapshot, Vec<shared::domain::staging::PlannedCopy>), EgressError> {
    let snapshot: Snapshot = serde_json::from_slice(raw).map_err(|e| {
        EgressError::validation(format!(
            "snapshot arn:aws:s3:::swb-egress-notify/{WORKSPACE}/s-ver1.json is not a valid SWB snapshot: {e}"
        ))
    })?;
    let planned = plan(&snapshot, PREFIX, layout, REQUEST)?;
    Ok((snapshot, planned))
}

/// Everything planned is a listed file at its listed version, under the layout, with a safe
/// path; every listed file is planned exactly once.
fn check_plan(
    snapshot: &Snapshot,
    planned: &[shared::domain::staging::PlannedCopy],
    layout: &StagingLayout,
) -> TestCaseResult {
    let files: Vec<_> = snapshot
        .objects
        .iter()
        .filter(|o| !o.key.ends_with('/'))
        .collect();
    prop_assert_eq!(planned.len(), files.len(), "every listed file once");
    let listed: BTreeMap<&str, &str> = files
        .iter()
        .map(|o| (o.key.as_str(), o.version_id.as_str()))
        .collect();
    prop_assert_eq!(listed.len(), files.len(), "a key listed twice was accepted");
    for (i, p) in planned.iter().enumerate() {
        prop_assert_eq!(
            listed.get(p.source_key.as_str()).copied(),
            Some(p.version_id.as_str())
        );
        prop_assert!(!p.version_id.trim().is_empty());
        prop_assert_eq!(&p.source_key, &format!("{PREFIX}{}", p.path));
        prop_assert_eq!(
            spec_violation(&p.path),
            None,
            "unsafe path accepted: {:?}",
            p.path
        );
        prop_assert_ne!(&p.path, &format!("egress_manifest_{REQUEST}.json"));
        prop_assert_eq!(&p.staged_key, &format!("{}{}", layout.prefix(), p.path));
        prop_assert!(p.staged_key.len() <= MAX_KEY_BYTES);
        if i > 0 {
            prop_assert!(planned[i - 1].path < p.path, "not sorted and distinct");
        }
    }
    Ok(())
}

#[test]
fn when_snapshots_are_hostile_then_staging_plans_only_the_listed_safe_versions() {
    let layout = StagingLayout::new(WORKSPACE, REQUEST).unwrap();
    support::run(
        "snapshot",
        support::cases(support::DEFAULT_CASES, u32::MAX),
        case(),
        |case| {
            let raw = render(&case);
            match read_and_plan(raw.as_bytes(), &layout) {
                Ok((snapshot, planned)) => {
                    support::tally("accepted");
                    check_plan(&snapshot, &planned, &layout)
                }
                Err(err) => {
                    prop_assert_eq!(err.error_type(), "ValidationError", "{}", err);
                    let msg = err.to_string();
                    support::tally_refusal_size(&msg);
                    if msg.contains("is not a valid SWB snapshot") {
                        // serde_json names a missing or unknown member but not the member of a
                        // wrong type (only line and column): counted, and reported.
                        let named = MEMBERS
                            .iter()
                            .chain(&["objects"])
                            .any(|m| names_field(&msg, m));
                        support::tally(if named {
                            "refused_unreadable"
                        } else {
                            "refused_unreadable_no_member_named"
                        });
                        return Ok(());
                    }
                    support::tally("refused_by_plan");
                    // The plan's refusals name the key at fault (a staged key too long for
                    // S3 by its path under the prefix), or say there is no file.
                    let snapshot: Snapshot = serde_json::from_str(&raw).expect("it was read");
                    let names_key = snapshot.objects.iter().any(|o| {
                        support::quotes(&msg, &o.key)
                            || o.key
                                .strip_prefix(PREFIX)
                                .is_some_and(|rel| support::quotes(&msg, rel))
                    });
                    prop_assert!(
                        names_key || msg == "snapshot lists no files",
                        "the refusal names no listed key: {}",
                        msg
                    );
                    Ok(())
                }
            }
        },
    );
}
