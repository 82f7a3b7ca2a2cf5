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
use shared::domain::transitions::{next_step, stages, status_after, status_awaiting, NextStep};
use shared::error::ERROR_TYPES;
use shared::model::{
    ApprovalMode, ArchiveInput, ArchiveResult, ChecksInput, ChecksResult, CleanupInput,
    CleanupResult, Decision, EgressRequest, EgressStatus, NotifyInput, NotifyResult,
    RecordTaskTokenInput, ReviewOutcome, ReviewStage, StagingInput, StagingResult, WorkflowInput,
    RECORD_TYPE,
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
        file_types: "csv, png".into(),
        file_type_count: 2,
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
    data["run"] = json!({"id": "00000000-0000-4000-8000-000000000000"});
    data["swb_lock"] = json!({"held": true});
    data["archive_written"] = json!(false);
    // A request past the output checks (a catch on the malware alert goes on to review).
    data["checks"] = json!({"verdict": "block", "summary": "BLOCK (1 file(s))",
        "policy_version": "default-1", "mode": "advise", "files_checked": 1, "report_key": "k",
        "auto_reject": false, "rejection_reason": "", "malware_threats": 1});
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
/// Panics where Step Functions would raise `States.Runtime`.
fn evaluate(template: &Value, data: &Value) -> Value {
    try_evaluate(template, data).unwrap_or_else(|e| panic!("{e}"))
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
    // item stuck at PROCESSING: the condition admits the run that wrote the item.
    let data = data_for(&workflow_fixtures()[0].1);
    let params = &states()["SaveRequest"]["Parameters"];
    let u = save_request(&data);
    let written: Item = item(&params["Item"], &data)
        .iter()
        .filter_map(|(k, v)| v.as_s().ok().map(|s| (k.clone(), s.clone())))
        .collect();
    assert!(condition_holds(&u, Some(&written)), "{}", u.condition);
    assert_eq!(params["Item"]["execution_arn"]["S.$"], "$$.Execution.Id");
    let mut other = written.clone();
    other.insert(
        "execution_arn".into(),
        "arn:aws:states:eu-west-2:123456789012:execution:egress-workflow:other".into(),
    );
    assert!(
        !condition_holds(&u, Some(&other)),
        "another execution's item is refused"
    );
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
            "${CheckOutputsFunctionArn}" => {
                serde_json::from_value::<ChecksInput>(payload).map(|_| ())
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
        6,
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
                file_types: "csv".into(),
                file_type_count: 1,
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
            "${CheckOutputsFunctionArn}",
            json!(ChecksResult {
                verdict: "pass".into(),
                summary: "PASS".into(),
                policy_version: "default-1".into(),
                mode: "advise".into(),
                files_checked: 1,
                report_key: "k".into(),
                auto_reject: false,
                rejection_reason: String::new(),
                malware_threats: 0,
            }),
        ),
        (
            "${CopyToDatalakeFunctionArn}",
            json!(ArchiveResult {
                bucket: "b".into(),
                key: "k".into(),
                size: 1,
                file_count: 1,
                deleted_staged_objects: 0,
                complete: true,
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
        let Some(function) = state["Parameters"]["FunctionName"].as_str() else {
            // A service integration's selector here is a constant (MarkSwbProcessing's).
            try_evaluate(selector, &json!({})).unwrap_or_else(|e| panic!("{name}: {e}"));
            continue;
        };
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
}

/// Lambda service errors worth retrying, for every Lambda task.
const LAMBDA_SERVICE_ERRORS: [&str; 4] = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
];

/// The one `Retry` policy of each family of Task, by resource. A review wait never retries
/// `States.Timeout` (a review timeout means expiry); a step invocation does.
fn canonical_retry(resource: &str) -> Value {
    let backoff = |errors: Vec<&str>, interval: u32, attempts: u32, max_delay: u32| {
        json!([{"ErrorEquals": errors, "IntervalSeconds": interval, "MaxAttempts": attempts,
                "BackoffRate": 2.0, "MaxDelaySeconds": max_delay, "JitterStrategy": "FULL"}])
    };
    let lambda = [&["TransientError"][..], &LAMBDA_SERVICE_ERRORS].concat();
    match resource {
        // A step is also retried when its function died (killed, out of memory: Lambda
        // answers Runtime.ExitError) or ran past its timeout (Sandbox.Timedout): every step
        // is idempotent (`make chaos` kills functions mid-copy and mid-archive).
        "arn:aws:states:::lambda:invoke" => backoff(
            [
                &lambda[..],
                &["Runtime.ExitError", "Sandbox.Timedout", "States.Timeout"],
            ]
            .concat(),
            2,
            4,
            30,
        ),
        "arn:aws:states:::lambda:invoke.waitForTaskToken" => backoff(lambda, 2, 4, 30),
        "arn:aws:states:::sns:publish" => backoff(
            vec![
                "SNS.ThrottledException",
                "SNS.InternalErrorException",
                "SNS.KMSThrottlingException",
            ],
            1,
            5,
            20,
        ),
        r if r.starts_with("arn:aws:states:::dynamodb:") => backoff(
            vec![
                "DynamoDB.ProvisionedThroughputExceededException",
                "DynamoDB.ThrottlingException",
                "DynamoDB.RequestLimitExceeded",
                "DynamoDB.InternalServerErrorException",
                // What the SDK's error code names it (the Step Functions interpreter of the
                // local stack raises this name for a 500; `make chaos` found it).
                "DynamoDB.InternalServerError",
                "DynamoDB.TransactionConflictException",
            ],
            1,
            5,
            20,
        ),
        other => panic!("no canonical Retry for {other}"),
    }
}

#[test]
fn when_a_state_can_fail_then_it_retries_its_familys_errors_and_catches_the_rest() {
    let states = states();
    for (name, state) in tasks() {
        let resource = state["Resource"].as_str().expect("a resource");
        assert_eq!(state["Retry"], canonical_retry(resource), "{name}: Retry");
        let catch = state["Catch"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no Catch"));
        assert!(
            catch
                .iter()
                .any(|c| c["ErrorEquals"] == json!(["States.ALL"])),
            "{name}: a catch-all"
        );
        for rule in state["Retry"].as_array().into_iter().flatten().chain(catch) {
            for error in rule["ErrorEquals"].as_array().expect("ErrorEquals") {
                let error = error.as_str().expect("an error name");
                assert!(
                    error.contains('.') || ERROR_TYPES.contains(&error),
                    "{name} names {error}, which no function returns"
                );
            }
        }
        for target in catch.iter().chain(std::iter::once(&state)) {
            if let Some(next) = target["Next"].as_str() {
                assert!(
                    states.contains_key(next),
                    "{name} goes to unknown state {next}"
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

// -- hardening (issue 8): a small interpreter for Choice/Pass states and DynamoDB conditions --

/// `path` in `data`, or `None` when it selects nothing (where Step Functions would raise the
/// uncatchable `States.Runtime`).
fn lookup<'a>(path: &str, data: &'a Value) -> Option<&'a Value> {
    let rest = path.strip_prefix("$.")?;
    rest.split('.')
        .try_fold(data, |value, segment| value.get(segment))
}

/// Like [`evaluate`], but a path that selects nothing is an error naming it, not a panic.
fn try_evaluate(template: &Value, data: &Value) -> Result<Value, String> {
    match template {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                match k.strip_suffix(".$") {
                    Some(key) => {
                        let expr = v.as_str().ok_or_else(|| format!("{k} is not a path"))?;
                        for path in paths_in(expr) {
                            if !path.starts_with("$$.") && lookup(&path, data).is_none() {
                                return Err(format!("{path} selects nothing"));
                            }
                        }
                        out.insert(key.to_string(), evaluate_string(expr, data));
                    }
                    None => {
                        out.insert(k.clone(), try_evaluate(v, data)?);
                    }
                }
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items.iter().map(|v| try_evaluate(v, data)).collect(),
        other => Ok(other.clone()),
    }
}

/// The JSONPaths an expression reads (a path, or the arguments of an intrinsic).
fn paths_in(expr: &str) -> Vec<String> {
    if !expr.starts_with("States.") {
        return vec![expr.to_string()];
    }
    let args = expr.split_once("', ").map(|(_, a)| a).unwrap_or_default();
    args.trim_end_matches(')')
        .split(", ")
        .filter(|a| a.starts_with('$'))
        .map(str::to_string)
        .collect()
}

fn set_path(data: &mut Value, path: &str, value: Value) {
    let rest = path.strip_prefix("$.").expect("a $. path");
    let mut node = data;
    let segments: Vec<&str> = rest.split('.').collect();
    for segment in &segments[..segments.len() - 1] {
        if !node.get(*segment).is_some_and(Value::is_object) {
            node[*segment] = json!({});
        }
        node = &mut node[*segment];
    }
    node[*segments.last().expect("a segment")] = value;
}

/// A Choice rule, as Step Functions evaluates it (`And` short-circuits).
fn rule_matches(rule: &Value, data: &Value) -> bool {
    if let Some(all) = rule["And"].as_array() {
        return all.iter().all(|r| rule_matches(r, data));
    }
    if let Some(any) = rule["Or"].as_array() {
        return any.iter().any(|r| rule_matches(r, data));
    }
    if rule.get("Not").is_some() {
        return !rule_matches(&rule["Not"], data);
    }
    let path = rule["Variable"].as_str().expect("a Variable");
    let value = lookup(path, data);
    if let Some(present) = rule["IsPresent"].as_bool() {
        return value.is_some() == present;
    }
    let value = value.unwrap_or_else(|| {
        panic!("a Choice reads {path} without IsPresent first: States.Runtime in AWS")
    });
    if let Some(is) = rule["IsString"].as_bool() {
        return value.is_string() == is;
    }
    if let Some(is) = rule["IsBoolean"].as_bool() {
        return value.is_boolean() == is;
    }
    if let Some(expected) = rule.get("StringEquals") {
        assert!(
            value.is_string(),
            "StringEquals on {path} without IsString first"
        );
        return value == expected;
    }
    if let Some(expected) = rule.get("BooleanEquals") {
        return value == expected;
    }
    panic!("the test evaluator does not know the rule {rule}")
}

fn choose(state: &Value, data: &Value) -> String {
    state["Choices"]
        .as_array()
        .expect("Choices")
        .iter()
        .find(|r| rule_matches(r, data))
        .map(|r| &r["Next"])
        .unwrap_or(&state["Default"])
        .as_str()
        .expect("a Next")
        .to_string()
}

/// Runs Choice and Pass states from `from` until a Task or an end state; returns its name and
/// the data it receives. Panics where Step Functions would raise `States.Runtime`.
fn run_to_task(from: &str, data: &Value) -> (String, Value) {
    let states = states();
    let mut name = from.to_string();
    let mut data = data.clone();
    for _ in 0..20 {
        let state = &states[&name];
        match state["Type"].as_str() {
            Some("Choice") => name = choose(state, &data),
            Some("Pass") => {
                let result = match state.get("Parameters") {
                    Some(p) => try_evaluate(p, &data)
                        .unwrap_or_else(|e| panic!("{name}: {e} (States.Runtime)")),
                    None => state.get("Result").cloned().unwrap_or(Value::Null),
                };
                match state["ResultPath"].as_str() {
                    Some(path) => set_path(&mut data, path, result),
                    None => data = result,
                }
                name = state["Next"].as_str().expect("a Next").to_string();
            }
            _ => return (name, data),
        }
    }
    panic!("no Task reached from {from}")
}

/// Follows a path of states from `from` (Tasks succeed, Choice/Pass run) to its end and
/// checks every `.$` path each state reads selects something. Returns the states visited.
fn walk_to_end(from: &str, data: &Value) -> Vec<String> {
    let states = states();
    let mut visited = Vec::new();
    let (mut name, mut data) = run_to_task(from, data);
    for _ in 0..40 {
        visited.push(name.clone());
        let state = &states[&name];
        match state["Type"].as_str() {
            Some("Task") => {
                try_evaluate(&state["Parameters"], &data)
                    .unwrap_or_else(|e| panic!("{name}: {e} (States.Runtime, uncatchable)"));
                if let Some(path) = state["ResultPath"].as_str() {
                    set_path(&mut data, path, json!({}));
                }
                let next = state["Next"].as_str().expect("a Task has a Next");
                (name, data) = run_to_task(next, &data);
            }
            Some("Fail") => {
                for key in ["ErrorPath", "CausePath"] {
                    if let Some(path) = state[key].as_str() {
                        assert!(
                            lookup(path, &data).is_some_and(Value::is_string),
                            "{name}: {key} {path} is not a string in {data}"
                        );
                    }
                }
                return visited;
            }
            _ => return visited,
        }
    }
    panic!("no end reached from {from}")
}

/// A DynamoDB item, attribute name to (string) value: the attributes these tests care about.
type Item = HashMap<String, String>;

fn item_of(pairs: &[(&str, &str)]) -> Item {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A DynamoDB update's expression parts, with `:values` evaluated against the workflow data.
struct Update {
    update: String,
    condition: String,
    names: HashMap<String, String>,
    values: HashMap<String, String>,
}

fn update_of(state: &str, data: &Value) -> Update {
    let params = &states()[state]["Parameters"];
    let values = evaluate(&params["ExpressionAttributeValues"], data);
    Update {
        update: params["UpdateExpression"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        condition: params["ConditionExpression"]
            .as_str()
            .unwrap_or_else(|| panic!("{state} has no ConditionExpression"))
            .to_string(),
        names: params["ExpressionAttributeNames"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().expect("a name").to_string()))
                    .collect()
            })
            .unwrap_or_default(),
        values: values
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let (_, inner) =
                            v.as_object().and_then(|o| o.iter().next()).expect("typed");
                        let text = match inner {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (k.clone(), text)
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Tokens of a DynamoDB expression.
fn tokens(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | ',' | '(' | ')' | '=' | '<' | '>' => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
                if c == '<' && chars.peek() == Some(&'>') {
                    chars.next();
                    out.push("<>".into());
                } else if c != ' ' {
                    out.push(c.to_string());
                }
            }
            _ => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// Evaluates a condition expression (AND, OR, NOT, parentheses, `=`, `<>`,
/// `attribute_exists`, `attribute_not_exists`) on `item`, as DynamoDB does: a comparison
/// with a missing attribute is false.
fn condition_holds(u: &Update, item: Option<&Item>) -> bool {
    struct Parser<'a> {
        tokens: Vec<String>,
        at: usize,
        u: &'a Update,
        item: Option<&'a Item>,
    }
    impl Parser<'_> {
        fn peek(&self) -> Option<&str> {
            self.tokens.get(self.at).map(String::as_str)
        }
        fn next(&mut self) -> String {
            self.at += 1;
            self.tokens[self.at - 1].clone()
        }
        fn name(&self, token: &str) -> String {
            if token.starts_with('#') {
                self.u
                    .names
                    .get(token)
                    .cloned()
                    .unwrap_or_else(|| panic!("unknown {token}"))
            } else {
                token.to_string()
            }
        }
        fn operand(&self, token: &str) -> Option<String> {
            if token.starts_with(':') {
                Some(
                    self.u
                        .values
                        .get(token)
                        .cloned()
                        .unwrap_or_else(|| panic!("unknown {token}")),
                )
            } else {
                self.item.and_then(|i| i.get(&self.name(token)).cloned())
            }
        }
        fn or(&mut self) -> bool {
            let mut value = self.and();
            while self.peek() == Some("OR") {
                self.next();
                value |= self.and();
            }
            value
        }
        fn and(&mut self) -> bool {
            let mut value = self.not();
            while self.peek() == Some("AND") {
                self.next();
                value &= self.not();
            }
            value
        }
        fn not(&mut self) -> bool {
            if self.peek() == Some("NOT") {
                self.next();
                return !self.not();
            }
            self.primary()
        }
        fn primary(&mut self) -> bool {
            let token = self.next();
            if token == "(" {
                let value = self.or();
                assert_eq!(self.next(), ")");
                return value;
            }
            if token == "attribute_exists" || token == "attribute_not_exists" {
                assert_eq!(self.next(), "(");
                let attr = self.next();
                assert_eq!(self.next(), ")");
                let exists = self.item.is_some_and(|i| i.contains_key(&self.name(&attr)));
                return exists == (token == "attribute_exists");
            }
            let op = self.next();
            let right = self.next();
            let (l, r) = (self.operand(&token), self.operand(&right));
            match (op.as_str(), l, r) {
                ("=", Some(l), Some(r)) => l == r,
                ("<>", Some(l), Some(r)) => l != r,
                (_, _, _) if op == "=" || op == "<>" => false,
                _ => panic!("the test evaluator does not know {op}"),
            }
        }
    }
    let mut parser = Parser {
        tokens: tokens(&u.condition),
        at: 0,
        u,
        item,
    };
    let value = parser.or();
    assert_eq!(parser.at, parser.tokens.len(), "unparsed: {}", u.condition);
    value
}

/// Applies `SET a = :v, b = :w REMOVE x, y` to `item`.
fn apply_update(u: &Update, item: &Item) -> Item {
    let mut out = item.clone();
    let (set, remove) = match u.update.split_once(" REMOVE ") {
        Some((s, r)) => (s, r),
        None => (u.update.as_str(), ""),
    };
    let resolve = |t: &str| -> String {
        if t.starts_with('#') {
            u.names[t].clone()
        } else {
            t.to_string()
        }
    };
    for assignment in set
        .trim_start_matches("SET ")
        .split(", ")
        .filter(|a| !a.is_empty())
    {
        let (attr, value) = assignment.split_once(" = ").expect("an assignment");
        let value = if value.starts_with(':') {
            u.values[value].clone()
        } else {
            item.get(&resolve(value)).cloned().unwrap_or_default()
        };
        out.insert(resolve(attr.trim()), value);
    }
    for attr in remove.split(", ").filter(|a| !a.is_empty()) {
        out.remove(&resolve(attr.trim()));
    }
    out
}

fn review_outcome(stage: ReviewStage, decision: Decision) -> ReviewOutcome {
    ReviewOutcome {
        stage,
        decision,
        reviewer: "ig.reviewer".into(),
        reviewer_name: "Ivy Governance".into(),
        reviewer_sub: "4f1c2a7e-1d7b-4c1e-9d65-1a0c3b2e4f10".into(),
        reviewer_email: "ig.reviewer@tre.example.org".into(),
        decided_at: "2024-03-03T09:00:00.000Z".into(),
        reason: "aggregate data only".into(),
    }
}

/// The request item as the API's `claim_decision` leaves it for `outcome`
/// (shared/src/adapters/dynamodb_review.rs).
fn claimed_item(outcome: &ReviewOutcome, new_status: EgressStatus) -> Item {
    let p = match outcome.stage {
        ReviewStage::Ig => "ig_reviewer_1",
        ReviewStage::Rit => "rit_reviewer_2",
    };
    let mut item = item_of(&[
        ("egress_request_id", "req-1"),
        ("egress_status", new_status.as_str()),
        ("review_stage", outcome.stage.as_str()),
        ("updated_by", &outcome.reviewer),
        ("updated_dt", &outcome.decided_at),
    ]);
    for (suffix, value) in [
        ("decision", outcome.decision.as_str()),
        ("sub", &outcome.reviewer_sub),
        ("name", &outcome.reviewer_name),
        ("email", &outcome.reviewer_email),
        ("dt", &outcome.decided_at),
        ("reason", &outcome.reason),
    ] {
        item.insert(format!("{p}_{suffix}"), value.to_string());
    }
    item
}

/// The Save state of each decision; the status it writes is `transitions::status_after`'s.
const SAVES: [(&str, ReviewStage, Decision); 4] = [
    ("SaveIgApproval", ReviewStage::Ig, Decision::Approved),
    ("SaveIgRejection", ReviewStage::Ig, Decision::Rejected),
    ("SaveRitApproval", ReviewStage::Rit, Decision::Approved),
    ("SaveRitRejection", ReviewStage::Rit, Decision::Rejected),
];

fn review_path(stage: ReviewStage) -> &'static str {
    match stage {
        ReviewStage::Ig => "ig_review",
        ReviewStage::Rit => "rit_review",
    }
}

#[test]
fn when_a_review_callback_lacks_a_field_or_has_a_non_string_one_then_it_routes_to_the_failure_path()
{
    // A JSONPath that selects nothing in a Save state raises States.Runtime, which no Catch
    // catches: the execution would end with the request stuck at PROCESSING.
    let base = data_for(&workflow_fixtures()[0].1);
    for (choice, stage) in [
        ("IgDecision", ReviewStage::Ig),
        ("RitDecision", ReviewStage::Rit),
    ] {
        let key = review_path(stage);
        for decision in [Decision::Approved, Decision::Rejected] {
            let outcome = json!(review_outcome(stage, decision));
            let mut data = base.clone();
            data[key] = outcome.clone();
            let (save, _) = run_to_task(choice, &data);
            assert!(
                save.starts_with("Save"),
                "{choice}: the real outcome is saved, got {save}"
            );
            for field in outcome.as_object().expect("an object").keys() {
                for broken in [None, Some(json!(7)), Some(json!(null)), Some(json!(["x"]))] {
                    let mut data = base.clone();
                    data[key] = outcome.clone();
                    match &broken {
                        None => {
                            data[key].as_object_mut().expect("object").remove(field);
                        }
                        Some(v) => data[key][field] = v.clone(),
                    }
                    let (task, reached) = run_to_task(choice, &data);
                    assert_eq!(
                        task, "MarkFailed",
                        "{choice}: `{field}` = {broken:?} must go to the failure path"
                    );
                    walk_to_end(&task, &reached);
                }
            }
        }
        for junk in [json!("APPROVED"), json!(null), json!([]), json!({})] {
            let mut data = base.clone();
            data[key] = junk.clone();
            assert_eq!(
                run_to_task(choice, &data).0,
                "MarkFailed",
                "{choice}: {junk}"
            );
        }
    }
}

#[test]
fn when_a_stage_is_decided_then_the_workflow_saves_and_goes_where_the_transitions_say() {
    // shared::domain::transitions is the oracle: the status each Save writes and the step
    // the workflow takes next, for every stage of every mode and both decisions.
    for mode in [ApprovalMode::Single, ApprovalMode::Dual] {
        for &stage in stages(mode) {
            for decision in [Decision::Approved, Decision::Rejected] {
                let case = format!("{mode} {stage} {decision}");
                let mut data = data_for(&workflow_fixtures()[0].1);
                data["config"]["approval_mode"] = json!(mode);
                data[review_path(stage)] = json!(review_outcome(stage, decision));
                let choice = match stage {
                    ReviewStage::Ig => "IgDecision",
                    ReviewStage::Rit => "RitDecision",
                };
                let (save, data) = run_to_task(choice, &data);
                let expected = status_after(stage, decision);
                let values = update_of(&save, &data).values;
                assert_eq!(values[":status"], expected.as_str(), "{case}");
                assert_eq!(values[":decision"], decision.as_str(), "{case}");
                let after = states()[&save]["Next"]
                    .as_str()
                    .expect("a Next")
                    .to_string();
                let (next, _) = run_to_task(&after, &data);
                let want = match next_step(mode, stage, decision).expect("a stage of the mode") {
                    NextStep::Reject => "CleanUpRejected",
                    NextStep::Approve => "CopyToDatalake",
                    NextStep::AwaitReview(ReviewStage::Rit) => "NotifyRitReviewers",
                    NextStep::AwaitReview(ReviewStage::Ig) => panic!("{case}: IG is never next"),
                };
                assert_eq!(next, want, "{case}");
            }
        }
    }
}

#[test]
fn when_a_decision_reaches_a_save_then_it_is_applied_only_if_the_api_claimed_exactly_it() {
    for (state, stage, decision) in SAVES {
        let status = status_after(stage, decision);
        let outcome = review_outcome(stage, decision);
        let mut data = data_for(&workflow_fixtures()[0].1);
        data[review_path(stage)] = json!(outcome);
        let u = update_of(state, &data);
        let claimed = claimed_item(&outcome, status);
        assert!(
            condition_holds(&u, Some(&claimed)),
            "{state}: the claim the API wrote passes: {}",
            u.condition
        );
        // What an insider holding the task token sees: the item before any claim.
        let awaiting = status_awaiting(stage);
        let mut unclaimed = item_of(&[
            ("egress_request_id", "req-1"),
            ("egress_status", awaiting.as_str()),
            ("review_stage", stage.as_str()),
            ("sfn_task_token", "AQB-token"),
            ("review_handle", "h-1"),
        ]);
        if stage == ReviewStage::Rit {
            let ig = review_outcome(ReviewStage::Ig, Decision::Approved);
            unclaimed.extend(
                claimed_item(&ig, EgressStatus::IgApproved)
                    .into_iter()
                    .filter(|(k, _)| k.starts_with("ig_reviewer_1")),
            );
        }
        assert!(
            !condition_holds(&u, Some(&unclaimed)),
            "{state}: a decision nobody claimed through the API is refused: {}",
            u.condition
        );
        assert!(!condition_holds(&u, None), "{state}: no item, no save");
        let p = if stage == ReviewStage::Ig {
            "ig_reviewer_1"
        } else {
            "rit_reviewer_2"
        };
        for (attr, other) in [
            ("egress_status".to_string(), "PROCESSING"),
            (
                "review_stage".to_string(),
                if stage == ReviewStage::Ig {
                    "RIT"
                } else {
                    "IG"
                },
            ),
            (
                format!("{p}_decision"),
                if decision == Decision::Approved {
                    "REJECTED"
                } else {
                    "APPROVED"
                },
            ),
            (format!("{p}_sub"), "someone-else"),
            (format!("{p}_name"), "Mallory"),
            (format!("{p}_email"), "mallory@example.org"),
            (format!("{p}_dt"), "2020-01-01T00:00:00.000Z"),
            (format!("{p}_reason"), "made up"),
        ] {
            let mut changed = claimed.clone();
            changed.insert(attr.clone(), other.to_string());
            assert!(
                !condition_holds(&u, Some(&changed)),
                "{state}: a claim with a different {attr} is refused"
            );
            changed.remove(&attr);
            assert!(
                !condition_holds(&u, Some(&changed)),
                "{state}: a claim without {attr} is refused"
            );
        }
        // A refused save is a named failure, not a stuck request.
        let catches = states()[state]["Catch"].as_array().expect("Catch").clone();
        let refused = catches
            .iter()
            .find(|c| c["ErrorEquals"] == json!(["DynamoDB.ConditionalCheckFailedException"]))
            .unwrap_or_else(|| panic!("{state} catches a refused condition by name"));
        let mut failed = data.clone();
        set_path(
            &mut failed,
            refused["ResultPath"].as_str().expect("ResultPath"),
            json!({"Error": "DynamoDB.ConditionalCheckFailedException", "Cause": "refused"}),
        );
        let (task, reached) = run_to_task(refused["Next"].as_str().expect("Next"), &failed);
        assert_eq!(task, "MarkFailed", "{state}");
        assert_eq!(reached["failure"]["Error"], "UnclaimedDecision", "{state}");
        let visited = walk_to_end(&task, &reached);
        assert!(
            visited.contains(&"AlertAdminOfFailure".to_string()),
            "{visited:?}"
        );
    }
}

#[test]
fn when_any_task_fails_with_any_error_shape_then_the_failure_path_resolves_every_path() {
    // The error output of a Catch need not carry a Cause (nor be what we expect): the failure
    // path must still write FAILED, alert the admin and end, never raise States.Runtime.
    let base = data_for(&workflow_fixtures()[0].1);
    let shapes = [
        json!({"Error": "NotFound", "Cause": "a version is missing"}),
        json!({"Error": "States.TaskFailed"}),
        json!({"Cause": "only a cause"}),
        json!({}),
        json!({"Error": 7, "Cause": ["x"]}),
    ];
    for (name, state) in tasks() {
        for catch in state["Catch"].as_array().expect("Catch") {
            for shape in &shapes {
                // Whatever reached this state had a well-formed failure (data_for's); the
                // catch's own ResultPath gets the shape under test.
                if catch["ResultPath"].is_null() {
                    // Not a failure path: an audit write that finds its own event (a retry
                    // after a lost answer) goes on as if it had written it.
                    assert_eq!(
                        catch["ErrorEquals"],
                        json!(["DynamoDB.ConditionalCheckFailedException"]),
                        "{name}: only an already-written event may be caught without its error"
                    );
                    assert_eq!(catch["Next"], state["Next"], "{name}");
                    continue;
                }
                let mut data = base.clone();
                set_path(
                    &mut data,
                    catch["ResultPath"].as_str().expect("ResultPath"),
                    shape.clone(),
                );
                let next = catch["Next"].as_str().expect("Next");
                let visited = walk_to_end(next, &data);
                assert!(!visited.is_empty(), "{name}: {next}");
            }
        }
    }
}

#[test]
fn when_a_task_output_exceeds_the_data_limit_then_it_is_caught_by_name_before_states_all() {
    // States.DataLimitExceeded is not matched by States.ALL in AWS.
    for (name, state) in tasks() {
        let catches = state["Catch"].as_array().expect("Catch");
        let last = catches.last().expect("a catcher");
        assert_eq!(
            last["ErrorEquals"],
            json!(["States.ALL"]),
            "{name}: States.ALL is last and alone"
        );
        let limit = catches
            .iter()
            .find(|c| c["ErrorEquals"] == json!(["States.DataLimitExceeded"]))
            .unwrap_or_else(|| panic!("{name} catches States.DataLimitExceeded by name"));
        assert_eq!(
            limit["Next"], last["Next"],
            "{name}: the same route as States.ALL"
        );
        assert_eq!(limit["ResultPath"], last["ResultPath"], "{name}");
        assert!(
            catches[..catches.len() - 1]
                .iter()
                .all(|c| !c["ErrorEquals"]
                    .as_array()
                    .expect("names")
                    .contains(&json!("States.ALL"))),
            "{name}: States.ALL only in the last catcher"
        );
    }
}

fn save_request(data: &Value) -> Update {
    let mut u = update_of("SaveRequest", data);
    u.update = String::new();
    u
}

#[test]
fn when_a_request_id_was_recorded_by_an_earlier_run_with_the_same_execution_name_then_save_request_refuses_it(
) {
    // Step Functions forgets an execution name 90 days after it closes: a re-run of the same
    // request id gets the same execution ARN, so the ARN alone does not tell runs apart.
    let states = states();
    let input = workflow_fixtures()[0].1.clone();
    // The run id is made once, before SaveRequest, so a retried put of this run still matches.
    let (task, data) = run_to_task(asl()["StartAt"].as_str().expect("StartAt"), &input);
    assert_eq!(task, "SaveRequest");
    assert!(data["run"]["id"].is_string(), "{data}");
    let u = save_request(&data);
    let item = item(
        &states["SaveRequest"]["Parameters"]["Item"],
        &data_for(&data),
    );
    let written: Item = item
        .iter()
        .filter_map(|(k, v)| v.as_s().ok().map(|s| (k.clone(), s.clone())))
        .collect();
    assert!(condition_holds(&u, None), "a new request is recorded");
    assert!(
        condition_holds(&u, Some(&written)),
        "a retried put of this run (response lost) is let through"
    );
    let mut old = written.clone();
    for (k, v) in old.iter_mut() {
        if k.starts_with("execution_") && k != "execution_arn" {
            *v = "an earlier run".into();
        }
    }
    assert_ne!(old, written, "the item records which run wrote it");
    assert!(
        !condition_holds(&u, Some(&old)),
        "an item of an earlier run with the same execution ARN is never overwritten: {}",
        u.condition
    );
    let mut legacy = written.clone();
    legacy.retain(|k, _| !k.starts_with("execution_") || k == "execution_arn");
    assert!(
        !condition_holds(&u, Some(&legacy)),
        "nor an item written before runs were recorded"
    );
}

fn swb_data(request_id: &str) -> Value {
    let mut data = data_for(&workflow_fixtures()[0].1);
    data["request"]["egress_request_id"] = json!(request_id);
    data
}

const SWB_RELEASES: [(&str, &str); 4] = [
    ("MarkSwbProcessed", "PROCESSED"),
    ("ReleaseSwbAfterRejection", "PENDING"),
    ("ReleaseSwbAfterExpiry", "PENDING"),
    ("ReleaseSwbAfterFailure", "PENDING"),
];

#[test]
fn when_a_store_is_locked_by_another_request_then_this_request_fails_busy_and_never_unlocks_it() {
    let me = swb_data("req-me");
    let lock = update_of("MarkSwbProcessing", &me);
    let lock_attr = lock
        .names
        .values()
        .find(|n| n.as_str() != "status")
        .expect("the lock attribute")
        .clone();
    let pending = item_of(&[("id", "ws-1"), ("status", "PENDING")]);
    assert!(condition_holds(&lock, Some(&pending)));
    let locked = apply_update(&lock, &pending);
    assert_eq!(locked["status"], "PROCESSING");
    assert_eq!(locked[&lock_attr], "req-me", "the store records its owner");
    assert!(
        condition_holds(&lock, Some(&locked)),
        "a retried lock of mine passes"
    );
    assert!(!condition_holds(&lock, None), "never creates a store item");
    let mut theirs = locked.clone();
    theirs.insert(lock_attr.clone(), "req-other".into());
    assert!(
        !condition_holds(&lock, Some(&theirs)),
        "another request's lock is refused"
    );
    // SWB rewrites the whole item on its own updates: a PROCESSING store that lost its lock
    // is still somebody's review in flight.
    let mut vanished = locked.clone();
    vanished.remove(&lock_attr);
    assert!(
        !condition_holds(&lock, Some(&vanished)),
        "a PROCESSING store without a lock is busy"
    );

    // Refused: SwbEgressStoreBusy, and no release of any kind touches the owner's lock.
    let refused = states()["MarkSwbProcessing"]["Catch"][0].clone();
    assert_eq!(
        refused["ErrorEquals"],
        json!(["DynamoDB.ConditionalCheckFailedException"])
    );
    let mut data = me.clone();
    set_path(
        &mut data,
        refused["ResultPath"].as_str().expect("ResultPath"),
        json!({"Error": "DynamoDB.ConditionalCheckFailedException", "Cause": "refused"}),
    );
    let (probe, data) = run_to_task(refused["Next"].as_str().expect("Next"), &data);
    let probe_update = update_of(&probe, &data);
    assert!(
        condition_holds(&probe_update, Some(&theirs)),
        "{probe}: the store exists"
    );
    assert_eq!(
        apply_update(&probe_update, &theirs),
        theirs,
        "{probe} changes nothing on the store"
    );
    assert!(
        !condition_holds(&probe_update, None),
        "{probe} never creates the store"
    );
    let busy_next = states()[&probe]["Next"].as_str().expect("Next").to_string();
    let (task, reached) = run_to_task(&busy_next, &data);
    assert_eq!(task, "MarkFailed");
    assert_eq!(reached["failure"]["Error"], "SwbEgressStoreBusy");
    let visited = walk_to_end(&task, &reached);
    for state in &visited {
        let params = &states()[state]["Parameters"];
        if params["TableName"] == "${SwbEgressStoreTable}" {
            let release = update_of(state, &reached);
            assert!(
                !condition_holds(&release, Some(&theirs)),
                "{state} must not release the owner's lock"
            );
        }
    }
    assert!(
        visited.contains(&"AlertAdminOfFailure".to_string()),
        "{visited:?}"
    );

    for (state, status) in SWB_RELEASES {
        let release = update_of(state, &me);
        assert!(
            condition_holds(&release, Some(&locked)),
            "{state}: the owner releases"
        );
        let released = apply_update(&release, &locked);
        assert_eq!(released["status"], status, "{state}");
        assert!(
            !released.contains_key(&lock_attr),
            "{state} removes the lock"
        );
        assert!(
            !condition_holds(&release, Some(&theirs)),
            "{state}: not another's lock"
        );
        assert!(
            !condition_holds(&release, None),
            "{state}: never creates the store"
        );
        assert!(
            condition_holds(&release, Some(&vanished)),
            "{state}: the owner still releases a store whose lock SWB dropped"
        );
        assert!(
            !condition_holds(&release, Some(&released)),
            "{state}: an already released store is not written again"
        );
    }
}

#[test]
fn when_a_release_finds_the_store_already_released_then_the_path_moves_on() {
    for (state, _) in SWB_RELEASES {
        let s = &states()[state];
        let catches = s["Catch"].as_array().expect("Catch");
        let refused = catches
            .iter()
            .find(|c| c["ErrorEquals"] == json!(["DynamoDB.ConditionalCheckFailedException"]))
            .or_else(|| {
                // The failure path moves on from every error.
                catches
                    .iter()
                    .find(|c| c["ErrorEquals"] == json!(["States.ALL"]))
                    .filter(|c| c["Next"] == s["Next"])
            })
            .unwrap_or_else(|| panic!("{state} moves on when the store was already released"));
        assert_eq!(
            refused["Next"], s["Next"],
            "{state}: a refused release is not a failure"
        );
    }
}

#[test]
fn when_the_failure_path_notifies_the_requester_then_it_says_whether_an_archive_was_written() {
    let mut base = data_for(&workflow_fixtures()[0].1);
    base.as_object_mut()
        .expect("object")
        .remove("notification_failure");
    for (archive, expected) in [(None, false), (Some(json!({"key": "k"})), true)] {
        let mut data = base.clone();
        if let Some(a) = archive {
            data["archive"] = a;
        }
        let alert = &states()["AlertAdminOfFailure"];
        let (task, reached) = run_to_task(alert["Next"].as_str().expect("Next"), &data);
        assert_eq!(task, "NotifyRequesterFailed");
        let payload = try_evaluate(&states()[&task]["Parameters"]["Payload"], &reached)
            .expect("the payload resolves");
        let input: NotifyInput = serde_json::from_value(payload).expect("a NotifyInput");
        assert_eq!(input.archive_written, expected);
    }
}

#[test]
fn when_the_archive_step_answers_incomplete_then_the_workflow_invokes_it_again_until_complete() {
    let data = data_for(&workflow_fixtures()[0].1);
    let task = &states()["CopyToDatalake"];
    let next = task["Next"].as_str().expect("a Next");
    for (complete, want) in [(false, "CopyToDatalake"), (true, "MarkSwbProcessed")] {
        let answer = json!(ArchiveResult {
            bucket: "b".into(),
            key: "k".into(),
            size: 1,
            file_count: 1,
            deleted_staged_objects: 0,
            complete,
        });
        let mut after = data.clone();
        let selected = evaluate(&task["ResultSelector"], &json!({ "Payload": answer }));
        set_path(
            &mut after,
            task["ResultPath"].as_str().expect("a ResultPath"),
            selected,
        );
        let (reached, _) = run_to_task(next, &after);
        assert_eq!(reached, want, "complete={complete}");
    }
}

#[test]
fn when_the_ig_reviewers_are_notified_then_the_requester_is_told_early_without_holding_up_the_review(
) {
    let states = states();
    assert_eq!(
        states["NotifyIgReviewers"]["Next"],
        "NotifyRequesterReceived"
    );
    let received = &states["NotifyRequesterReceived"];
    assert_eq!(received["Next"], "AwaitIgDecision");
    let data = data_for(&workflow_fixtures()[0].1);
    let payload: NotifyInput =
        serde_json::from_value(evaluate(&received["Parameters"]["Payload"], &data))
            .expect("a NotifyInput");
    assert_eq!(payload.outcome, shared::model::Outcome::Received);
    let timeout = data["config"]["review_timeout_seconds"]
        .as_u64()
        .expect("the configured review timeout");
    assert!(timeout > 0);
    assert_eq!(
        payload.review_timeout_seconds, timeout,
        "the e-mail states the configured review time"
    );
    assert_eq!(
        received["ResultPath"],
        Value::Null,
        "nothing added to the state"
    );
    for catch in received["Catch"].as_array().expect("Catch") {
        assert_eq!(
            catch["Next"], "AwaitIgDecision",
            "best effort: a failed e-mail does not stop the review"
        );
    }
}
