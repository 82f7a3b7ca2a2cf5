//! Offline contract tests of the state machine (no stack needed; part of `cargo test`).
//!
//! The ASL, the local stack's substitutions, docs/contracts.md and the Rust step types can
//! drift apart without any compiler noticing. These tests evaluate the ASL's payload
//! templates against the workflow fixtures in `events/workflow/` and deserialize the results
//! into the `shared::model` types the functions read, so a renamed field, a missing
//! attribute or a wrong DynamoDB type fails here rather than in a running workflow.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use aws_sdk_dynamodb::types::AttributeValue;
use e2e_tests::stack::repo_root;
use serde_json::{json, Map, Value};
use shared::model::{
    ArchiveInput, ArchiveResult, CleanupInput, CleanupResult, Decision, EgressRequest,
    EgressStatus, NotifyInput, NotifyResult, RecordTaskTokenInput, ReviewOutcome, ReviewStage,
    StagingInput, StagingResult, WorkflowInput, RECORD_TYPE,
};
use shared::ports::AuditEvent;

fn read(path: &str) -> String {
    let full = repo_root().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {}: {e}", full.display()))
}

fn asl() -> Value {
    serde_json::from_str(&read("statemachine/egress_workflow.asl.json"))
        .expect("the ASL is valid JSON")
}

fn states() -> Map<String, Value> {
    asl()["States"]
        .as_object()
        .expect("States is an object")
        .clone()
}

fn placeholders(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after.find('}').expect("an unterminated ${ in the ASL");
        found.insert(after[..end].to_string());
        rest = &after[end..];
    }
    found
}

fn workflow_fixtures() -> Vec<(PathBuf, Value)> {
    let dir = repo_root().join("events/workflow");
    let mut fixtures: Vec<(PathBuf, Value)> = std::fs::read_dir(&dir)
        .expect("events/workflow exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let value =
                serde_json::from_str(&std::fs::read_to_string(&p).expect("readable fixture"))
                    .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()));
            (p, value)
        })
        .collect();
    fixtures.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        fixtures.len() >= 3,
        "expected the workflow fixtures in {}",
        dir.display()
    );
    fixtures
}

// -- a small evaluator for the ASL's JSONPath payload templates ----------------------------

/// The execution's data as the states see it mid-workflow: the input plus the results the
/// workflow adds, with values of the real step output types.
fn data_for(input: &Value) -> Value {
    let mut data = input.clone();
    let staging = StagingResult {
        file_count: 3,
        total_bytes: 4096,
        file_types: vec!["csv".into(), "png".into()],
        staging_bucket: "egress-staging".into(),
        staging_prefix: "ws/req/".into(),
        manifest_key: ".manifests/ws/req.json".into(),
    };
    let review = |stage| ReviewOutcome {
        stage,
        decision: Decision::Approved,
        reviewer: "reviewer".into(),
        reviewer_name: "Ada Reviewer".into(),
        reviewer_sub: "7d2c9f1e-3b4a-4c5d-8e6f-0a1b2c3d4e5f".into(),
        reviewer_email: "reviewer@example.org".into(),
        decided_at: "2024-03-03T09:00:00.000Z".into(),
        reason: "aggregate data only".into(),
    };
    data["staging"] = json!(staging);
    data["ig_review"] = json!(review(ReviewStage::Ig));
    data["rit_review"] = json!(review(ReviewStage::Rit));
    data["failure"] = json!({"Error": "NotFound", "Cause": "a version is missing"});
    data["notification_failure"] = json!({"Error": "TransientError", "Cause": "SES throttled"});
    data
}

fn context_value(path: &str) -> Value {
    match path {
        "$$.Task.Token" => json!("AQCEAAAAKgAAAAMAAAAAAAAAAVWQ3aXuDaRAVjWEu5lyBigExampleToken"),
        "$$.State.EnteredTime" => json!("2024-03-02T08:00:01.123Z"),
        "$$.Execution.Id" => {
            json!("arn:aws:states:eu-west-2:123456789012:execution:egress-workflow:x")
        }
        other => panic!("the test evaluator does not know the context path {other}"),
    }
}

fn resolve(path: &str, data: &Value) -> Value {
    if path.starts_with("$$.") {
        return context_value(path);
    }
    let rest = path
        .strip_prefix("$.")
        .unwrap_or_else(|| panic!("unsupported path {path}"));
    let mut value = data;
    for segment in rest.split('.') {
        value = value.get(segment).unwrap_or_else(|| {
            panic!("path {path} selects nothing: the workflow data has no `{segment}`")
        });
    }
    value.clone()
}

/// `States.Format` and `States.UUID`, the intrinsics used in templates that become items or
/// payloads. Arguments are paths or nested intrinsics, separated by `, `.
fn intrinsic(expr: &str, data: &Value) -> Value {
    if expr == "States.UUID()" {
        return json!("00000000-0000-4000-8000-000000000000");
    }
    let inner = expr
        .strip_prefix("States.Format('")
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or_else(|| panic!("the test evaluator does not support {expr}"));
    let (template, args) = inner
        .split_once("', ")
        .unwrap_or((inner.trim_end_matches('\''), ""));
    let args: Vec<Value> = args
        .split(", ")
        .filter(|a| !a.is_empty())
        .map(|a| evaluate_string(a, data))
        .collect();
    let mut out = String::new();
    let mut pieces = template.split("{}");
    out.push_str(pieces.next().unwrap_or_default());
    for (piece, arg) in pieces.zip(args.iter().chain(std::iter::repeat(&Value::Null))) {
        out.push_str(&match arg {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        out.push_str(piece);
    }
    json!(out)
}

fn evaluate_string(expr: &str, data: &Value) -> Value {
    if expr.starts_with("States.") {
        intrinsic(expr, data)
    } else {
        resolve(expr, data)
    }
}

/// Evaluates a `Parameters`-style template: keys ending in `.$` take the value of their path.
fn evaluate(template: &Value, data: &Value) -> Value {
    match template {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| match k.strip_suffix(".$") {
                    Some(key) => (
                        key.to_string(),
                        evaluate_string(v.as_str().expect("a path"), data),
                    ),
                    None => (k.clone(), evaluate(v, data)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| evaluate(v, data)).collect()),
        other => other.clone(),
    }
}

/// A DynamoDB JSON attribute value (as in a `putItem` `Item`) to the SDK type.
fn attribute(value: &Value) -> AttributeValue {
    let (kind, inner) = value
        .as_object()
        .and_then(|m| m.iter().next())
        .unwrap_or_else(|| panic!("not a DynamoDB attribute value: {value}"));
    match (kind.as_str(), inner) {
        ("S", Value::String(s)) => AttributeValue::S(s.clone()),
        ("N", Value::String(n)) => {
            n.parse::<f64>()
                .unwrap_or_else(|_| panic!("N attribute {n:?} is not a number"));
            AttributeValue::N(n.clone())
        }
        ("BOOL", Value::Bool(b)) => AttributeValue::Bool(*b),
        ("M", Value::Object(m)) => {
            AttributeValue::M(m.iter().map(|(k, v)| (k.clone(), attribute(v))).collect())
        }
        (kind, inner) => panic!("unexpected DynamoDB attribute {kind}: {inner}"),
    }
}

fn item(template: &Value, data: &Value) -> HashMap<String, AttributeValue> {
    let evaluated = evaluate(template, data);
    evaluated
        .as_object()
        .expect("an item is an object")
        .iter()
        .map(|(k, v)| (k.clone(), attribute(v)))
        .collect()
}

fn tasks() -> Vec<(String, Value)> {
    states()
        .into_iter()
        .filter(|(_, s)| s["Type"] == "Task")
        .collect()
}

// -- the tests ----------------------------------------------------------------------------

#[test]
fn when_placeholders_are_listed_then_asl_stack_and_contracts_doc_agree() {
    let asl_placeholders = placeholders(&read("statemachine/egress_workflow.asl.json"));

    let resources: Value =
        serde_json::from_str(&read("local/resources.json")).expect("resources.json is JSON");
    let stack: BTreeSet<String> = resources["workflow_substitutions"]
        .as_object()
        .expect("workflow_substitutions")
        .keys()
        .cloned()
        .collect();

    let doc = read("docs/contracts.md");
    let section = doc
        .split("## State machine substitutions")
        .nth(1)
        .expect("docs/contracts.md has the substitutions section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let documented: BTreeSet<String> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect();

    assert_eq!(
        asl_placeholders, stack,
        "ASL placeholders vs local/resources.json workflow_substitutions"
    );
    assert_eq!(
        asl_placeholders, documented,
        "ASL placeholders vs docs/contracts.md"
    );
}

#[test]
fn when_workflow_fixtures_are_read_then_each_is_a_workflow_input_with_nothing_dropped() {
    for (path, value) in workflow_fixtures() {
        let input: WorkflowInput = serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("{} is not a WorkflowInput: {e}", path.display()));
        assert_eq!(
            json!(input),
            value,
            "{} has fields WorkflowInput does not know",
            path.display()
        );
        assert_eq!(
            input.config.is_single_approval_enabled,
            input.config.approval_mode == shared::model::ApprovalMode::Single,
            "{}: is_single_approval_enabled must follow approval_mode",
            path.display()
        );
    }
}

#[test]
fn when_save_request_runs_then_its_item_is_a_processing_egress_request() {
    let template = &states()["SaveRequest"]["Parameters"]["Item"];
    for (path, input) in workflow_fixtures() {
        let item = item(template, &data_for(&input));
        let request: EgressRequest = serde_dynamo::from_item(item.clone()).unwrap_or_else(|e| {
            panic!(
                "{}: SaveRequest's item is not an EgressRequest: {e}",
                path.display()
            )
        });
        let wf: WorkflowInput = serde_json::from_value(input).expect("a WorkflowInput");
        assert_eq!(request.egress_request_id, wf.request.egress_request_id);
        assert_eq!(request.record_type, RECORD_TYPE);
        assert_eq!(request.egress_status, EgressStatus::Processing);
        assert_eq!(request.download_count, 0);
        assert_eq!(request.approval_mode, wf.config.approval_mode);
        assert_eq!(
            request.is_single_approval_enabled,
            wf.config.is_single_approval_enabled
        );
        assert_eq!(
            request.s3_swb_object_metadata_version,
            wf.request.s3_swb_object_metadata_version
        );
        assert_eq!(request.requested_dt, wf.request.requested_dt);
        assert!(
            matches!(item["s3_swb_object_metadata_version"], AttributeValue::N(_)),
            "version must be a number"
        );
        assert!(
            matches!(item["download_count"], AttributeValue::N(_)),
            "download_count must be a number"
        );
        assert!(
            matches!(item["is_single_approval_enabled"], AttributeValue::Bool(_)),
            "a BOOL"
        );
        assert!(request.sfn_task_token.is_none() && request.review_stage.is_none());
    }
}

#[test]
fn when_save_request_is_retried_by_its_own_execution_then_the_condition_lets_it_through() {
    // A retry after a put whose response was lost must not end in DuplicateRequest with the
    // item stuck at PROCESSING: the condition admits the execution that wrote the item.
    let params = &states()["SaveRequest"]["Parameters"];
    let condition = params["ConditionExpression"].as_str().unwrap_or_default();
    assert!(
        condition.contains("attribute_not_exists(egress_request_id)")
            && condition.contains("OR execution_arn = :execution"),
        "{condition}"
    );
    assert_eq!(
        params["ExpressionAttributeValues"][":execution"]["S.$"],
        "$$.Execution.Id"
    );
    assert_eq!(params["Item"]["execution_arn"]["S.$"], "$$.Execution.Id");
}

#[test]
fn when_a_decision_is_saved_then_the_reviewer_sub_is_kept_and_the_handle_dropped() {
    // The RIT separation-of-duties check reads ig_reviewer_1_sub: the workflow's own save
    // must write it, so a rolled-back or lost API write cannot erase it.
    for (state, prefix, review) in [
        ("SaveIgApproval", "ig_reviewer_1", "ig_review"),
        ("SaveIgRejection", "ig_reviewer_1", "ig_review"),
        ("SaveRitApproval", "rit_reviewer_2", "rit_review"),
        ("SaveRitRejection", "rit_reviewer_2", "rit_review"),
    ] {
        let params = &states()[state]["Parameters"];
        let update = params["UpdateExpression"].as_str().unwrap_or_default();
        assert!(
            update.contains(&format!("{prefix}_sub = :sub")),
            "{state}: {update}"
        );
        assert!(update.contains("review_handle"), "{state}: {update}");
        assert_eq!(
            params["ExpressionAttributeValues"][":sub"]["S.$"],
            format!("$.{review}.reviewer_sub"),
            "{state}"
        );
    }
}

#[test]
fn when_the_workflow_invokes_a_function_then_the_payload_is_that_functions_input_type() {
    let data = data_for(&workflow_fixtures()[0].1);
    let mut seen = BTreeSet::new();
    for (name, state) in tasks() {
        let resource = state["Resource"].as_str().unwrap_or_default();
        if !resource.starts_with("arn:aws:states:::lambda:invoke") {
            continue;
        }
        let function = state["Parameters"]["FunctionName"]
            .as_str()
            .expect("FunctionName");
        let payload = evaluate(&state["Parameters"]["Payload"], &data);
        let result = match function {
            "${CopyToStagingFunctionArn}" => {
                serde_json::from_value::<StagingInput>(payload).map(|_| ())
            }
            "${RecordTaskTokenFunctionArn}" => {
                serde_json::from_value::<RecordTaskTokenInput>(payload).map(|_| ())
            }
            "${HandleRejectionFunctionArn}" => {
                serde_json::from_value::<CleanupInput>(payload).map(|_| ())
            }
            "${CopyToDatalakeFunctionArn}" => {
                serde_json::from_value::<ArchiveInput>(payload).map(|_| ())
            }
            "${NotifyRequesterFunctionArn}" => {
                serde_json::from_value::<NotifyInput>(payload).map(|_| ())
            }
            other => panic!("{name} invokes an unknown function {other}"),
        };
        result.unwrap_or_else(|e| panic!("{name}: the payload does not deserialize: {e}"));
        seen.insert(function.to_string());
    }
    assert_eq!(
        seen.len(),
        5,
        "every workflow function is invoked: {seen:?}"
    );
}

#[test]
fn when_a_function_answers_then_every_field_the_workflow_selects_exists() {
    let outputs: HashMap<&str, Value> = HashMap::from([
        (
            "${CopyToStagingFunctionArn}",
            json!(StagingResult {
                file_count: 1,
                total_bytes: 1,
                file_types: vec![],
                staging_bucket: "b".into(),
                staging_prefix: "p/".into(),
                manifest_key: "m".into(),
            }),
        ),
        (
            "${HandleRejectionFunctionArn}",
            json!(CleanupResult { deleted_objects: 0 }),
        ),
        (
            "${CopyToDatalakeFunctionArn}",
            json!(ArchiveResult {
                bucket: "b".into(),
                key: "k".into(),
                size: 1,
                file_count: 1,
                deleted_staged_objects: 0,
            }),
        ),
        (
            "${NotifyRequesterFunctionArn}",
            json!(NotifyResult {
                recipients: vec![],
                message_id: None,
            }),
        ),
    ]);
    for (name, state) in tasks() {
        let Some(selector) = state.get("ResultSelector") else {
            continue;
        };
        let function = state["Parameters"]["FunctionName"]
            .as_str()
            .unwrap_or_default();
        let output = outputs
            .get(function)
            .unwrap_or_else(|| panic!("{name} has a ResultSelector but no known output type"));
        // Lambda's integration wraps the function's answer in `Payload`.
        evaluate(selector, &json!({ "Payload": output }));
    }
}

#[test]
fn when_audit_items_are_written_then_each_is_an_audit_event() {
    let data = data_for(&workflow_fixtures()[0].1);
    let mut audited = 0;
    for (name, state) in tasks() {
        if state["Parameters"]["TableName"] != "${AuditTable}" {
            continue;
        }
        let item = item(&state["Parameters"]["Item"], &data);
        assert!(item.contains_key("event_key"), "{name}: the audit sort key");
        let event: AuditEvent = serde_dynamo::from_item(item)
            .unwrap_or_else(|e| panic!("{name}: not an AuditEvent: {e}"));
        assert!(
            !event.action.is_empty() && !event.actor.is_empty(),
            "{name}: who and what"
        );
        audited += 1;
    }
    assert!(audited >= 3, "submission, expiry and failure are audited");
}

#[test]
fn when_a_review_completes_then_the_choice_and_the_save_read_review_outcome_fields() {
    let states = states();
    for (choice, stage) in [("IgDecision", "IG"), ("RitDecision", "RIT")] {
        let rules = states[choice]["Choices"].as_array().expect("choices");
        assert!(
            states[choice]["Default"].is_string(),
            "{choice} must have a Default"
        );
        let decisions: BTreeSet<String> = rules
            .iter()
            .flat_map(|r| r["And"].as_array().cloned().unwrap_or_default())
            .filter(|c| {
                c["Variable"]
                    .as_str()
                    .is_some_and(|v| v.ends_with(".decision"))
            })
            .filter_map(|c| c["StringEquals"].as_str().map(str::to_string))
            .collect();
        let expected: BTreeSet<String> = [Decision::Approved, Decision::Rejected]
            .iter()
            .map(|d| d.as_str().to_string())
            .collect();
        assert_eq!(
            decisions, expected,
            "{choice} routes exactly the Decision values"
        );
        let stages: BTreeSet<&str> = rules
            .iter()
            .flat_map(|r| r["And"].as_array().cloned().unwrap_or_default())
            .filter(|c| {
                c["Variable"]
                    .as_str()
                    .is_some_and(|v| v.ends_with(".stage"))
            })
            .filter_map(|c| {
                c["StringEquals"]
                    .as_str()
                    .map(|s| if s == stage { "ok" } else { "wrong" })
            })
            .collect();
        assert_eq!(
            stages,
            BTreeSet::from(["ok"]),
            "{choice} checks the outcome is for {stage}"
        );
    }
    let data = data_for(&workflow_fixtures()[0].1);
    for save in [
        "SaveIgApproval",
        "SaveIgRejection",
        "SaveRitApproval",
        "SaveRitRejection",
    ] {
        let values = evaluate(
            &states[save]["Parameters"]["ExpressionAttributeValues"],
            &data,
        );
        let status = values[":status"]["S"].as_str().expect("a status");
        status
            .parse::<EgressStatus>()
            .unwrap_or_else(|e| panic!("{save} writes an unknown status: {e}"));
        values[":decision"]["S"]
            .as_str()
            .expect("a decision")
            .parse::<Decision>()
            .unwrap_or_else(|e| panic!("{save}: {e}"));
    }
}

#[test]
fn when_a_state_can_fail_then_it_retries_transient_errors_and_catches_the_rest() {
    let states = states();
    let known_names: BTreeSet<&str> = [
        "ValidationError",
        "NotFound",
        "Conflict",
        "Forbidden",
        "IntegrityError",
        "TransientError",
        "ConfigError",
        "InternalError",
    ]
    .into();
    for (name, state) in tasks() {
        let retry = state["Retry"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no Retry"));
        let catch = state["Catch"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no Catch"));
        assert!(
            !retry.is_empty() && !catch.is_empty(),
            "{name}: Retry and Catch"
        );
        assert!(
            catch.iter().any(|c| c["ErrorEquals"]
                .as_array()
                .is_some_and(|e| e.contains(&json!("States.ALL")))),
            "{name}: a catch-all"
        );
        for target in catch.iter().chain(std::iter::once(&state)) {
            if let Some(next) = target["Next"].as_str() {
                assert!(
                    states.contains_key(next),
                    "{name} goes to unknown state {next}"
                );
            }
        }
        for rule in retry {
            assert!(
                rule["BackoffRate"].as_f64().is_some_and(|b| b > 1.0),
                "{name}: backoff"
            );
            for error in rule["ErrorEquals"].as_array().expect("ErrorEquals") {
                let error = error.as_str().expect("an error name");
                let ours = !error.contains('.');
                assert!(
                    !ours || known_names.contains(error),
                    "{name} retries {error}, which no function returns"
                );
                assert!(error != "States.ALL", "{name} must not retry everything");
            }
            let is_review_wait = state["Resource"]
                .as_str()
                .is_some_and(|r| r.ends_with(".waitForTaskToken"));
            if is_review_wait {
                assert!(
                    !rule["ErrorEquals"]
                        .as_array()
                        .expect("names")
                        .contains(&json!("States.Timeout")),
                    "{name}: a review timeout means expiry, never a retry"
                );
            }
        }
    }
}

#[test]
fn when_a_review_waits_then_its_timeout_is_the_configured_review_timeout() {
    let states = states();
    for wait in ["AwaitIgDecision", "AwaitRitDecision"] {
        assert_eq!(
            states[wait]["TimeoutSecondsPath"],
            "$.config.review_timeout_seconds"
        );
        let catches = states[wait]["Catch"].as_array().expect("catch");
        let timeout = catches
            .iter()
            .find(|c| c["ErrorEquals"] == json!(["States.Timeout"]))
            .unwrap_or_else(|| panic!("{wait} catches States.Timeout"));
        assert_eq!(timeout["Next"], "MarkExpired");
    }
}
