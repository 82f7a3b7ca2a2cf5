//! The catalogue of bad inputs (`events/bad/catalogue.json`, issue 10 section 3) is well
//! formed and agrees with the domain rules, offline (`cargo test --workspace`).
//!
//! The e2e test (`e2e_bad_inputs.rs`) replays every case against the local stack; this one
//! catches a broken catalogue, and an expectation that drifted from the code, without a
//! stack: each refused message goes through `build_workflow_input`, each snapshot through
//! the snapshot parser and `staging::plan`, exactly as `start-workflow` and
//! `copy-to-staging` run them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use e2e_tests::bad_inputs::{self, Case, Entry, Expect, Vars};
use serde_json::Value;
use shared::domain::intake::{build_workflow_input, workflow_config, IntakeConfig};
use shared::domain::keys::StagingLayout;
use shared::domain::staging;
use shared::model::{Snapshot, WorkflowInput};

/// What issue 10 requires the catalogue to hold, as `covers` tags.
const REQUIRED: [&str; 22] = [
    "malformed-json",
    "missing-field",
    "extra-field",
    "wrong-type",
    "huge-value",
    "unknown-approval-mode",
    "snapshot-not-json",
    "snapshot-other-bucket",
    "snapshot-empty",
    "100k-entries",
    "unsafe-key-dotdot",
    "unsafe-key-absolute",
    "unsafe-key-backslash",
    "unsafe-key-control",
    "unsafe-key-bidi",
    "unsafe-key-nfc-nfd",
    "unsafe-key-case",
    "unsafe-key-trailing-dot",
    "version-gone",
    "store-item-missing",
    "unknown-decision",
    "reason-1mb",
];

fn catalogue() -> bad_inputs::Catalogue {
    bad_inputs::load().expect("events/bad/catalogue.json loads")
}

fn intake_config(vars: &Vars) -> IntakeConfig {
    IntakeConfig {
        swb_notification_bucket: vars.get("NOTIFY_BUCKET").unwrap().to_string(),
        swb_egress_store_bucket: vars.get("STORE_BUCKET").unwrap().to_string(),
        workflow: workflow_config(
            "single",
            "ig-reviewers".into(),
            "rit-reviewers".into(),
            3600,
            String::new(),
        )
        .unwrap(),
    }
}

/// The error names a case may expect: the functions' stable names and the names the state
/// machine's failure states give.
fn known_errors() -> BTreeSet<String> {
    let mut names: BTreeSet<String> = [
        "ValidationError",
        "NotFound",
        "Conflict",
        "Forbidden",
        "IntegrityError",
        "TransientError",
        "ConfigError",
        "InternalError",
    ]
    .map(String::from)
    .into();
    let asl = e2e_tests::stack::repo_root().join("statemachine/egress_workflow.asl.json");
    let asl: Value = serde_json::from_str(&std::fs::read_to_string(asl).unwrap()).unwrap();
    for state in asl["States"].as_object().unwrap().values() {
        for error in [&state["Error"], &state["Parameters"]["Error"]] {
            if let Some(name) = error.as_str() {
                names.insert(name.to_string());
            }
        }
    }
    names
}

fn files_under(dir: &Path, root: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, root, out);
        } else {
            let rel = path.strip_prefix(root).unwrap().to_string_lossy();
            out.insert(rel.replace('\\', "/"));
        }
    }
}

fn contains_all(case: &Case, text: &str, contains: &[String], vars: &Vars) -> Vec<String> {
    contains
        .iter()
        .map(|c| vars.fill(c).unwrap())
        .filter(|c| !text.contains(c.as_str()))
        .map(|c| format!("{}: {c:?} not in {text:?}", case.id))
        .collect()
}

#[test]
fn when_the_catalogue_is_read_then_it_has_30_distinct_cases_each_with_its_file_and_outcome() {
    let catalogue = catalogue();
    assert!(
        catalogue.cases.len() >= 30,
        "{} cases",
        catalogue.cases.len()
    );
    let mut ids = BTreeSet::new();
    let mut files = BTreeMap::new();
    for case in &catalogue.cases {
        assert!(ids.insert(case.id.as_str()), "{} listed twice", case.id);
        assert!(!case.why.trim().is_empty(), "{} says why", case.id);
        assert!(!case.covers.is_empty(), "{} covers something", case.id);
        if let Some(other) = files.insert(case.file.as_str(), case.id.as_str()) {
            assert_eq!(other, case.id, "{} shares its file", case.file);
        }
        case.template().expect("the fixture exists");
        let compatible = matches!(
            (&case.entry, &case.expect),
            (Entry::SwbMessage, Expect::Refused { .. })
                | (Entry::SwbMessage, Expect::Failed { .. })
                | (Entry::SwbMessage, Expect::AcceptedIgnoringExtras { .. })
                | (Entry::Snapshot, Expect::Failed { .. })
                | (Entry::WorkflowInput, Expect::Failed { .. })
                | (Entry::Graphql, Expect::GraphqlError { .. })
        );
        assert!(
            compatible,
            "{}: {:?} cannot end {:?}",
            case.id, case.entry, case.expect
        );
        let (Expect::Refused { contains, .. }
        | Expect::Failed { contains, .. }
        | Expect::GraphqlError { contains, .. }) = &case.expect
        else {
            continue;
        };
        assert!(
            !contains.is_empty(),
            "{} says what the error names",
            case.id
        );
    }

    let mut on_disk = BTreeSet::new();
    let root = bad_inputs::dir();
    files_under(&root, &root, &mut on_disk);
    on_disk.remove("catalogue.json");
    let listed: BTreeSet<String> = files.keys().map(|f| f.to_string()).collect();
    assert_eq!(
        on_disk, listed,
        "every fixture is in the catalogue and every case has its file"
    );

    let covered: BTreeSet<&str> = catalogue
        .cases
        .iter()
        .flat_map(|c| c.covers.iter().map(String::as_str))
        .collect();
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|r| !covered.contains(r))
        .collect();
    assert!(missing.is_empty(), "the catalogue lacks {missing:?}");
    for entry in ["swb_message", "snapshot", "graphql", "workflow_input"] {
        assert!(
            catalogue.entries.contains_key(entry),
            "entry {entry} described"
        );
    }
    for outcome in [
        "refused",
        "failed",
        "graphql_error",
        "accepted_ignoring_extras",
    ] {
        assert!(
            catalogue.outcomes.contains_key(outcome),
            "outcome {outcome} described"
        );
    }
}

#[test]
fn when_a_case_expects_an_error_name_then_the_system_has_that_name() {
    let known = known_errors();
    for case in catalogue().cases {
        if let Expect::Refused { error, .. } | Expect::Failed { error, .. } = &case.expect {
            assert!(
                known.contains(error),
                "{}: unknown error name {error}",
                case.id
            );
        }
    }
}

#[test]
fn when_every_fixture_is_filled_then_no_placeholder_is_left_and_json_fixtures_parse() {
    let vars = Vars::sample();
    for case in catalogue().cases {
        let text = case.content(&vars).expect("every placeholder is known");
        assert!(!text.contains("${"), "{}: a placeholder is left", case.id);
        if case.file.ends_with(".json") {
            serde_json::from_str::<Value>(&text).unwrap_or_else(|e| {
                panic!("{}: {} is not JSON once filled: {e}", case.id, case.file)
            });
        }
    }
}

#[test]
fn when_intake_reads_each_message_then_it_refuses_exactly_the_cases_that_must_be_refused() {
    let vars = Vars::sample();
    let config = intake_config(&vars);
    let mut problems = Vec::new();
    for case in catalogue().cases {
        if case.entry != Entry::SwbMessage {
            continue;
        }
        let message = case.content(&vars).unwrap();
        let outcome = build_workflow_input(&message, &config);
        match (&case.expect, outcome) {
            (Expect::Refused { error, contains }, Err(err)) => {
                if err.error_type() != error {
                    problems.push(format!(
                        "{}: {} instead of {error}",
                        case.id,
                        err.error_type()
                    ));
                }
                problems.extend(contains_all(&case, &err.to_string(), contains, &vars));
            }
            (Expect::Refused { .. }, Ok(_)) => problems.push(format!("{}: accepted", case.id)),
            (_, Err(err)) => problems.push(format!("{}: refused at intake: {err}", case.id)),
            (_, Ok(_)) => {}
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn when_staging_plans_each_snapshot_then_the_refusals_are_the_expected_ones() {
    let vars = Vars::sample();
    let prefix = vars.get("PREFIX").unwrap();
    let request_id = vars.get("REQUEST_ID").unwrap();
    let layout = StagingLayout::new(vars.get("WORKSPACE_ID").unwrap(), request_id).unwrap();
    let mut problems = Vec::new();
    for case in catalogue().cases {
        if case.entry != Entry::Snapshot {
            continue;
        }
        let Expect::Failed {
            error,
            contains,
            max_cause_bytes,
        } = &case.expect
        else {
            unreachable!("checked by the first test");
        };
        let content = case.content(&vars).unwrap();
        // As copy-to-staging reads it: parse, then plan every key before the first copy.
        let planned = serde_json::from_slice::<Snapshot>(content.as_bytes())
            .map_err(|e| {
                shared::EgressError::validation(format!(
                    "snapshot is not a valid SWB snapshot: {e}"
                ))
            })
            .and_then(|snapshot| staging::plan(&snapshot, prefix, &layout, request_id));
        match planned {
            Err(err) => {
                if err.error_type() != error {
                    problems.push(format!(
                        "{}: {} ({err}) instead of {error}",
                        case.id,
                        err.error_type()
                    ));
                }
                problems.extend(contains_all(&case, &err.to_string(), contains, &vars));
                if let Some(max) = max_cause_bytes {
                    if err.to_string().len() > *max {
                        problems.push(format!(
                            "{}: cause of {} bytes",
                            case.id,
                            err.to_string().len()
                        ));
                    }
                }
            }
            // Refused only once S3 is asked (a missing version, a size that does not match).
            Ok(_) if error != "ValidationError" => {}
            Ok(plan) => problems.push(format!("{}: planned {} copies", case.id, plan.len())),
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn when_a_workflow_input_bypasses_intake_then_the_typed_input_refuses_its_mode() {
    let vars = Vars::sample();
    for case in catalogue().cases {
        if case.entry != Entry::WorkflowInput {
            continue;
        }
        let text = case.content(&vars).unwrap();
        let parsed = serde_json::from_str::<WorkflowInput>(&text);
        if case.covers.iter().any(|c| c == "unknown-approval-mode") {
            let err = parsed.expect_err("an unknown mode is not a WorkflowInput");
            assert!(err.to_string().contains("triple"), "{}: {err}", case.id);
        }
    }
}

#[test]
fn when_a_snapshot_is_generated_then_it_has_its_entries() {
    let vars = Vars::sample();
    let generated: Vec<Case> = catalogue()
        .cases
        .into_iter()
        .filter(|c| c.generator().unwrap().is_some())
        .collect();
    assert!(
        generated.iter().any(|c| {
            c.covers.iter().any(|t| t == "100k-entries")
                && c.generator().unwrap().unwrap().count == 100_000
        }),
        "a snapshot of 100,000 entries"
    );
    for case in generated {
        let snapshot: Snapshot = serde_json::from_str(&case.content(&vars).unwrap()).unwrap();
        let count = case.generator().unwrap().unwrap().count;
        assert_eq!(snapshot.objects.len(), count, "{}", case.id);
        assert!(count >= 20_000, "{}: {count} entries", case.id);
    }
}
