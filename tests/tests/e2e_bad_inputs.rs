//! The catalogue of bad inputs (`events/bad/catalogue.json`, issue 10 section 3) replayed end
//! to end against the local stack (features `e2e` and `e2e-api`; run by `make test-e2e`).
//!
//! Every case runs in its own workspace ([`World`]) and the cases of one kind run at once,
//! so the file stays fast. Each must end as the catalogue says:
//! - `refused`: `start-workflow` refuses the SNS message with the named error; no execution,
//!   no request item, the SWB store untouched, nothing staged;
//! - `failed`: the execution ends `FAILED` with the named error and cause; the request item
//!   is `FAILED`; the SWB store is released (`PENDING`, unlocked), or untouched when it did
//!   not exist or another request holds it; nothing staged, no archive, the source intact;
//! - `graphql_error`: the API refuses the call; the request is unchanged, and once the test
//!   rejects it properly it ends `REJECTED` with SWB released and nothing left behind;
//! - `accepted_ignoring_extras`: fields SWB never sends change nothing (the project's
//!   approval mode applies); the test rejects the request and checks the same.
#![cfg(all(feature = "e2e", feature = "e2e-api"))]

use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_sfn::types::ExecutionStatus;
use e2e_tests::bad_inputs::{self, attr, Case, Entry, Expect, Project, StoreItem, World};
use e2e_tests::driver::{default_driver, ReviewDriver, Reviewer};
use e2e_tests::graphql::Api;
use e2e_tests::inspect;
use e2e_tests::stack::Stack;
use e2e_tests::timing::Timer;
use serde_json::Value;
use shared::model::{Decision, EgressStatus, ReviewStage};

/// Generous: the first invocation of a function may wait for cargo's lock on a busy machine,
/// and the cases of a kind queue behind one instance per function.
const TIMEOUT: Duration = Duration::from_secs(180);

/// The reason the test gives when it ends a request properly.
const REJECTION: &str = "Rejected by the bad-inputs test to end the request.";

type Outcome = std::result::Result<(), String>;

fn cases(keep: impl Fn(&Case) -> bool) -> Vec<Case> {
    let cases: Vec<Case> = bad_inputs::load()
        .expect("the catalogue loads")
        .cases
        .into_iter()
        .filter(|c| keep(c))
        .collect();
    assert!(!cases.is_empty(), "the catalogue has cases of this kind");
    cases
}

/// Runs `check` on every case at once; every case that did not behave, described.
async fn replay<F, Fut>(stack: &Stack, cases: Vec<Case>, check: F) -> Vec<String>
where
    F: Fn(Stack, Case) -> Fut,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let tasks: Vec<_> = cases
        .into_iter()
        .map(|case| {
            let id = case.id.clone();
            let run = check(stack.clone(), case);
            let started = Instant::now();
            (
                id,
                tokio::spawn(async move { (run.await, started.elapsed()) }),
            )
        })
        .collect();
    let mut problems = Vec::new();
    for (id, task) in tasks {
        match task.await {
            Ok((Ok(()), took)) => println!("bad input {id}: as catalogued ({took:.1?})"),
            Ok((Err(problem), took)) => {
                println!("bad input {id}: NOT as catalogued ({took:.1?}): {problem}");
                problems.push(format!("{id}: {problem}"));
            }
            Err(panic) => problems.push(format!("{id}: the check panicked: {panic}")),
        }
    }
    problems
}

fn assert_as_catalogued(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{} case(s) not as catalogued:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

fn err(what: impl std::fmt::Display) -> String {
    what.to_string()
}

fn topic(stack: &Stack, project: Project) -> Result<String, String> {
    let logical = match project {
        Project::Single => "SwbEgressTopic",
        Project::Dual => "SwbEgressTopicDual",
    };
    stack
        .outputs
        .topic(logical)
        .map(str::to_string)
        .map_err(err)
}

/// Publishes `message` to the project's SWB topic; the SNS message id.
async fn publish(stack: &Stack, project: Project, message: &str) -> Result<String, String> {
    let sns = aws_sdk_sns::Client::new(&stack.sdk);
    let out = sns
        .publish()
        .topic_arn(topic(stack, project)?)
        .message(message)
        .send()
        .await
        .map_err(|e| format!("publishing: {}", e2e_tests::chain(&e)))?;
    out.message_id()
        .map(str::to_string)
        .ok_or_else(|| "no message id".to_string())
}

fn missing_substrings(text: &str, contains: &[String], world: &World) -> Result<(), String> {
    for wanted in contains {
        let wanted = world.vars.fill(wanted).map_err(err)?;
        if !text.contains(&wanted) {
            return Err(format!("{wanted:?} is not in {:?}", shorten(text)));
        }
    }
    Ok(())
}

fn shorten(text: &str) -> String {
    if text.len() <= 600 {
        return text.to_string();
    }
    let mut end = 600;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &text[..end], text.len())
}

/// A failed Lambda task's cause is the function's error JSON; its message is what people
/// read. Any other cause is read as it is.
fn lambda_message(cause: &str) -> String {
    serde_json::from_str::<Value>(cause)
        .ok()
        .and_then(|v| v["errorMessage"].as_str().map(str::to_string))
        .unwrap_or_else(|| cause.to_string())
}

/// Nothing of the request reached S3's staging or the datalake, and the submitted version
/// is still at the source.
async fn nothing_left_or_lost(stack: &Stack, world: &World) -> Result<(), String> {
    let staged = inspect::staged_keys(stack, &world.workspace_id, &world.request_id)
        .await
        .map_err(err)?;
    if !staged.is_empty() {
        return Err(format!("left in staging: {staged:?}"));
    }
    let datalake = stack.outputs.bucket("DatalakeBucket").map_err(err)?;
    let archive = inspect::archive_key(&world.workspace_id, &world.request_id);
    if inspect::object(stack, datalake, &archive, None)
        .await
        .map_err(err)?
        .is_some()
    {
        return Err(format!("an archive exists: {archive}"));
    }
    if !world.source_intact(stack).await.map_err(err)? {
        return Err("the submitted version is gone from SWB's bucket".into());
    }
    Ok(())
}

/// The SWB store item is as it must be once the request has ended.
async fn store_as_expected(stack: &Stack, world: &World, setup: StoreItem) -> Result<(), String> {
    let item = bad_inputs::raw_item(stack, "SwbEgressStoreTable", "id", &world.workspace_id)
        .await
        .map_err(err)?;
    match (setup, item) {
        (StoreItem::Absent, None) => Ok(()),
        (StoreItem::Absent, Some(item)) => Err(format!("a store item was created: {item:?}")),
        (_, None) => Err("the SWB store item disappeared".into()),
        (StoreItem::Present, Some(item)) => {
            let (status, lock) = (attr(&item, "status"), attr(&item, "egress_request_lock"));
            if status == Some("PENDING") && lock.is_none() {
                Ok(())
            } else {
                Err(format!(
                    "SWB store not released: status {status:?}, lock {lock:?}"
                ))
            }
        }
        (StoreItem::LockedByOther, Some(item)) => {
            let (status, lock) = (attr(&item, "status"), attr(&item, "egress_request_lock"));
            if status == Some("PROCESSING") && lock == world.other_lock.as_deref() {
                Ok(())
            } else {
                Err(format!(
                    "the other request's lock was touched: status {status:?}, lock {lock:?}"
                ))
            }
        }
    }
}

async fn refused_at_intake(stack: Stack, case: Case) -> Outcome {
    let Expect::Refused { error, contains } = &case.expect else {
        return Err("not a refusal".into());
    };
    let world = World::prepare(&stack, &case.setup).await.map_err(err)?;
    let message = case.content(&world.vars).map_err(err)?;
    let id = publish(&stack, case.setup.project, &message).await?;
    let delivery = inspect::deliveries_finished(&stack, &[id], TIMEOUT)
        .await
        .map_err(err)?
        .remove(0);
    if delivery.state != "error" {
        return Err(format!("start-workflow did not refuse it: {delivery:?}"));
    }
    let answer = delivery.error.clone().unwrap_or(Value::Null);
    let error_type = answer["errorType"].as_str().unwrap_or_default();
    if error_type != error {
        return Err(format!(
            "refused with {error_type:?} instead of {error}: {answer}"
        ));
    }
    missing_substrings(
        answer["errorMessage"].as_str().unwrap_or_default(),
        contains,
        &world,
    )?;

    let arn = stack.outputs.execution_arn(&world.request_id);
    if stack
        .sfn
        .describe_execution()
        .execution_arn(&arn)
        .send()
        .await
        .is_ok()
    {
        return Err("an execution started".into());
    }
    if bad_inputs::raw_item(
        &stack,
        "RequestsTable",
        "egress_request_id",
        &world.request_id,
    )
    .await
    .map_err(err)?
    .is_some()
    {
        return Err("a request item was written".into());
    }
    store_as_expected(&stack, &world, case.setup.store_item).await?;
    nothing_left_or_lost(&stack, &world).await
}

/// Sends the case's input; the world it runs in.
async fn submit(stack: &Stack, case: &Case) -> Result<World, String> {
    let world = World::prepare(stack, &case.setup).await.map_err(err)?;
    let content = case.content(&world.vars).map_err(err)?;
    match case.entry {
        Entry::SwbMessage => {
            publish(stack, case.setup.project, &content).await?;
        }
        Entry::Snapshot => {
            world
                .write_snapshot(stack, content.as_bytes())
                .await
                .map_err(err)?;
            let message = world.valid_message().map_err(err)?;
            publish(stack, case.setup.project, &message).await?;
        }
        Entry::WorkflowInput => {
            stack
                .sfn
                .start_execution()
                .state_machine_arn(&stack.outputs.state_machine_arn)
                .name(&world.request_id)
                .input(content)
                .send()
                .await
                .map_err(|e| format!("StartExecution: {}", e2e_tests::chain(&e)))?;
        }
        Entry::Graphql => return Err("a GraphQL case is not submitted".into()),
    }
    Ok(world)
}

async fn fails_with_its_cause(stack: Stack, case: Case) -> Outcome {
    let Expect::Failed {
        error,
        contains,
        max_cause_bytes,
    } = &case.expect
    else {
        return Err("not a failure".into());
    };
    let world = submit(&stack, &case).await?;
    let arn = stack.outputs.execution_arn(&world.request_id);
    let end = inspect::execution_end(&stack, &arn, TIMEOUT)
        .await
        .map_err(err)?;
    if end.status != ExecutionStatus::Failed || end.error.as_deref() != Some(error.as_str()) {
        return Err(format!(
            "execution ended {:?} with {:?} instead of FAILED {error}: {:?}",
            end.status,
            end.error,
            end.cause.as_deref().map(shorten)
        ));
    }
    let cause = end.cause.unwrap_or_default();
    missing_substrings(&lambda_message(&cause), contains, &world)?;
    if let Some(max) = max_cause_bytes {
        if cause.len() > *max {
            return Err(format!("a cause of {} bytes (at most {max})", cause.len()));
        }
    }
    let item = bad_inputs::raw_item(
        &stack,
        "RequestsTable",
        "egress_request_id",
        &world.request_id,
    )
    .await
    .map_err(err)?
    .ok_or("no request item")?;
    let (status, failure) = (attr(&item, "egress_status"), attr(&item, "failure_error"));
    if status != Some("FAILED") || failure != Some(error.as_str()) {
        return Err(format!(
            "request item is {status:?} with failure {failure:?}, not FAILED {error}"
        ));
    }
    if item.contains_key("sfn_task_token") {
        return Err("the failed request keeps a task token".into());
    }
    store_as_expected(&stack, &world, case.setup.store_item).await?;
    nothing_left_or_lost(&stack, &world).await
}

/// Rejects the request as an IG reviewer through the API and checks it ends `REJECTED` with
/// SWB released and nothing left behind.
async fn reject_and_check_released(stack: &Stack, world: &World) -> Result<(), String> {
    default_driver(stack)
        .decide(
            &world.request_id,
            &Reviewer::ig(stack),
            Decision::Rejected,
            REJECTION,
        )
        .await
        .map_err(err)?;
    let arn = stack.outputs.execution_arn(&world.request_id);
    let end = inspect::execution_end(stack, &arn, TIMEOUT)
        .await
        .map_err(err)?;
    if end.status != ExecutionStatus::Succeeded {
        return Err(format!("after the rejection the execution ended {end:?}"));
    }
    let request = inspect::request(stack, &world.request_id)
        .await
        .map_err(err)?
        .ok_or("no request item")?;
    if request.egress_status != EgressStatus::Rejected {
        return Err(format!("request ended {}", request.egress_status));
    }
    store_as_expected(stack, world, StoreItem::Present).await?;
    nothing_left_or_lost(stack, world).await
}

async fn awaiting_ig(stack: &Stack, world: &World) -> Result<shared::model::EgressRequest, String> {
    inspect::awaiting_review(stack, &world.request_id, ReviewStage::Ig, TIMEOUT)
        .await
        .map_err(err)
}

async fn extras_ignored(stack: Stack, case: Case) -> Outcome {
    let Expect::AcceptedIgnoringExtras { approval_mode } = &case.expect else {
        return Err("not an accepted case".into());
    };
    let world = submit(&stack, &case).await?;
    let request = awaiting_ig(&stack, &world).await?;
    let single = approval_mode == "single";
    if request.approval_mode.to_string() != *approval_mode
        || request.is_single_approval_enabled != single
    {
        return Err(format!(
            "reviewed in mode {} (single: {}) instead of the project's {approval_mode}",
            request.approval_mode, request.is_single_approval_enabled
        ));
    }
    if request.egress_status != EgressStatus::Processing || request.ig_reviewer_1_decision.is_some()
    {
        return Err(format!(
            "the message's fields changed the request: {} / {:?}",
            request.egress_status, request.ig_reviewer_1_decision
        ));
    }
    reject_and_check_released(&stack, &world).await
}

/// POSTs `body` as it is to the API with `token`; the JSON answer (or the transport error).
fn post_raw(api: &Api, token: &str, body: String) -> Result<(u16, Value), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .post(&api.graphql_url)
        .header("Content-Type", "application/json")
        .header("Authorization", token)
        .send(body)
        .map_err(|e| format!("POST failed: {e}"))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("reading the answer: {e}"))?;
    serde_json::from_str(&text)
        .map(|v| (status, v))
        .map_err(|_| format!("answered {status} with non-JSON: {}", shorten(&text)))
}

/// Sends the case's body as an IG reviewer: the API must refuse it as catalogued.
fn graphql_refused(api: &Api, token: &str, world: &World, case: &Case) -> Outcome {
    let Expect::GraphqlError {
        contains,
        error_type,
    } = &case.expect
    else {
        return Err("not a GraphQL error".into());
    };
    let body = case.content(&world.vars).map_err(err)?;
    let (status, answer) = post_raw(api, token, body)?;
    let first = &answer["errors"][0];
    let message = first["message"].as_str().ok_or_else(|| {
        format!(
            "answered {status} without an error: {}",
            shorten(&answer.to_string())
        )
    })?;
    if let Some(expected) = error_type {
        if first["errorType"].as_str() != Some(expected.as_str()) {
            return Err(format!(
                "errorType {} instead of {expected}",
                first["errorType"]
            ));
        }
    }
    if status >= 500 {
        return Err(format!("answered {status}: {message}"));
    }
    missing_substrings(message, contains, world)
}

#[tokio::test]
async fn when_swb_sends_a_bad_message_then_start_workflow_refuses_it_naming_what_is_wrong() {
    let timer = Timer::start("bad_inputs_refused_at_intake");
    let stack = e2e_tests::fixture::connect().await;
    let cases = cases(|c| matches!(c.expect, Expect::Refused { .. }));
    assert_as_catalogued(replay(&stack, cases, refused_at_intake).await);
    timer.finish();
}

#[tokio::test]
async fn when_a_submission_is_bad_beyond_its_message_then_it_fails_with_its_cause_and_swb_is_released(
) {
    let timer = Timer::start("bad_inputs_failed");
    let stack = e2e_tests::fixture::connect().await;
    let cases = cases(|c| {
        matches!(c.expect, Expect::Failed { .. }) && c.generator().ok().flatten().is_none()
    });
    assert_as_catalogued(replay(&stack, cases, fails_with_its_cause).await);
    timer.finish();
}

#[tokio::test]
async fn when_a_snapshot_lists_many_thousand_entries_then_it_is_refused_before_any_copy_with_a_bounded_cause(
) {
    let timer = Timer::start("bad_inputs_generated_snapshots");
    let stack = e2e_tests::fixture::connect().await;
    let cases = cases(|c| c.generator().ok().flatten().is_some());
    assert_as_catalogued(replay(&stack, cases, fails_with_its_cause).await);
    timer.finish();
}

#[tokio::test]
async fn when_swb_adds_fields_it_never_sends_then_they_change_nothing() {
    let timer = Timer::start("bad_inputs_extra_fields");
    let stack = e2e_tests::fixture::connect().await;
    let cases = cases(|c| matches!(c.expect, Expect::AcceptedIgnoringExtras { .. }));
    assert_as_catalogued(replay(&stack, cases, extras_ignored).await);
    timer.finish();
}

#[tokio::test]
async fn when_a_reviewer_sends_a_bad_graphql_call_then_the_api_refuses_it_and_the_request_is_unchanged(
) {
    let timer = Timer::start("bad_inputs_graphql");
    let stack = e2e_tests::fixture::connect().await;
    let api = Api::load().expect("the reviewer API is up (make test-e2e starts it)");
    let reviewer = api.user("ig").expect("an IG reviewer").clone();
    let token = api
        .sign_in(&reviewer)
        .expect("the IG reviewer signs in")
        .access;

    let mut world = World::prepare(&stack, &Default::default())
        .await
        .expect("a workspace");
    let message = world.valid_message().expect("the message");
    publish(&stack, Project::Single, &message)
        .await
        .expect("published");
    awaiting_ig(&stack, &world)
        .await
        .expect("awaiting IG review");
    let row = api
        .row(&token, &world.request_id)
        .expect("listed for the IG reviewer");
    let handle = row["task_token"].as_str().expect("a handle").to_string();
    world.vars.set("TASK_TOKEN", handle);

    let cases = cases(|c| c.entry == Entry::Graphql);
    let (api, world_vars) = (api.clone(), world.clone());
    let mut problems = replay(&stack, cases, move |_, case| {
        let (api, token, world) = (api.clone(), token.clone(), world_vars.clone());
        async move {
            tokio::task::spawn_blocking(move || graphql_refused(&api, &token, &world, &case))
                .await
                .map_err(|e| format!("the check panicked: {e}"))?
        }
    })
    .await;

    let request = inspect::request(&stack, &world.request_id)
        .await
        .expect("readable")
        .expect("stored");
    assert_eq!(request.egress_status, EgressStatus::Processing, "unchanged");
    assert_eq!(request.review_stage, Some(ReviewStage::Ig), "still at IG");
    assert_eq!(request.ig_reviewer_1_decision, None, "no decision recorded");
    assert!(
        request.sfn_task_token.is_some(),
        "still waiting for a decision"
    );
    if let Err(problem) = reject_and_check_released(&stack, &world).await {
        problems.push(format!("ending the request: {problem}"));
    }
    assert_as_catalogued(problems);
    timer.finish();
}
