//! End-to-end tests of the workflow's hardening (issue 8) against the local stack (feature
//! `e2e`; `make test-e2e` starts the stack and the reviewer API):
//! - an insider who reads a task token from the requests table and calls `SendTaskSuccess`
//!   with a made-up decision, or with a payload missing a field, gets nothing approved: the
//!   request ends `FAILED` with the admin alerted, never stuck;
//! - a request id already recorded by an earlier run with the same execution name (Step
//!   Functions forgets names after 90 days) is never overwritten;
//! - a second request for an SWB egress store that is in review fails `SwbEgressStoreBusy` and
//!   never unlocks it, even when SWB's own rewrite of the store item dropped the lock.
#![cfg(feature = "e2e")]

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sfn::types::ExecutionStatus;
use e2e_tests::driver::{default_driver, ReviewDriver, Reviewer};
use e2e_tests::fixture::{self, connect, ended, start_execution, submit_as, TIMEOUT};
use e2e_tests::inspect;
use e2e_tests::stack::Stack;
use e2e_tests::swb::{Mode, Submission, Submit};
use e2e_tests::timing::Timer;
use serde_json::json;
use shared::domain::intake::build_workflow_input;
use shared::model::{Decision, EgressStatus, ReviewOutcome, ReviewStage, WorkflowInput};

/// The SWB store attribute naming the request that holds the store (docs/contracts.md).
const LOCK: &str = "egress_request_lock";

fn key(name: &str, value: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([(name.to_string(), AttributeValue::S(value.to_string()))])
}

/// The request item as stored, every attribute (what an insider with table access reads).
async fn raw_request(stack: &Stack, id: &str) -> Option<HashMap<String, AttributeValue>> {
    stack
        .dynamodb
        .get_item()
        .table_name(
            stack
                .outputs
                .table("RequestsTable")
                .expect("requests table"),
        )
        .set_key(Some(key("egress_request_id", id)))
        .consistent_read(true)
        .send()
        .await
        .expect("the requests table is readable")
        .item
}

/// The SWB egress store item, every attribute.
async fn store_item(stack: &Stack, store_id: &str) -> HashMap<String, AttributeValue> {
    stack
        .dynamodb
        .get_item()
        .table_name(
            stack
                .outputs
                .table("SwbEgressStoreTable")
                .expect("SWB table"),
        )
        .set_key(Some(key("id", store_id)))
        .consistent_read(true)
        .send()
        .await
        .expect("the SWB table is readable")
        .item
        .expect("the store item exists")
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

/// The workflow input for SWB's `message`, with `id` as the request id.
fn input_for(stack: &Stack, message: &serde_json::Value, id: &str) -> WorkflowInput {
    let mut message = message.clone();
    message["id"] = json!(id);
    build_workflow_input(&message.to_string(), &fixture::intake_config(stack, 600))
        .expect("the message passes intake")
}

async fn admin_alerts(stack: &Stack, id: &str) -> Vec<inspect::Publication> {
    inspect::publications_about(stack, "AdminAlertTopic", id)
        .await
        .expect("publications readable")
}

async fn assert_failed_cleanly(stack: &Stack, s: &Submission, id: &str, error: &str) {
    let end = ended(stack, id).await;
    assert_eq!(end.status, ExecutionStatus::Failed, "{end:?}");
    assert_eq!(end.error.as_deref(), Some(error), "{end:?}");
    let request = inspect::request(stack, id)
        .await
        .expect("readable")
        .expect("stored");
    assert_eq!(request.egress_status, EgressStatus::Failed, "never stuck");
    assert_eq!(request.failure_error.as_deref(), Some(error));
    assert!(request.sfn_task_token.is_none(), "the token is dropped");
    let alerts = admin_alerts(stack, id).await;
    assert_eq!(alerts.len(), 1, "the admin is alerted once: {alerts:?}");
    assert!(alerts[0].message.contains(error), "{:?}", alerts[0]);
    let staged = inspect::staged_keys(stack, &s.workspace_id, id)
        .await
        .expect("staging listable");
    assert!(staged.is_empty(), "staging is cleaned up, found {staged:?}");
    let bucket = stack.outputs.bucket("DatalakeBucket").expect("datalake");
    let archive = inspect::object(
        stack,
        bucket,
        &inspect::archive_key(&s.workspace_id, id),
        None,
    )
    .await
    .expect("readable");
    assert!(archive.is_none(), "nothing reaches the datalake");
}

/// Waits for the IG review and resumes it as an insider would: with the task token read from
/// the requests table and a payload of their own making.
async fn resume_as_insider(stack: &Stack, s: &Submission, output: serde_json::Value) {
    let id = &s.egress_request_id;
    inspect::awaiting_review(stack, id, ReviewStage::Ig, TIMEOUT)
        .await
        .expect("the request awaits IG review");
    let item = raw_request(stack, id).await.expect("stored");
    let token = text(&item, "sfn_task_token").expect("the task token is in the table");
    stack
        .sfn
        .send_task_success()
        .task_token(token)
        .output(output.to_string())
        .send()
        .await
        .expect("Step Functions takes the callback");
}

#[tokio::test]
async fn when_an_insider_resumes_a_review_with_a_made_up_or_malformed_decision_then_the_request_fails_cleanly(
) {
    let timer = Timer::start("insider_send_task_success_failed");
    let stack = connect().await;
    let made_up = submit_as(&stack, &Submit::new(Mode::Single));
    let malformed = submit_as(&stack, &Submit::new(Mode::Single));

    // A well-formed approval nobody claimed through the API.
    let forged = ReviewOutcome {
        stage: ReviewStage::Ig,
        decision: Decision::Approved,
        reviewer: "ig.reviewer".into(),
        reviewer_name: "Ivy Governance".into(),
        reviewer_sub: "4f1c2a7e-1d7b-4c1e-9d65-1a0c3b2e4f10".into(),
        reviewer_email: "ig.reviewer@tre.example.org".into(),
        decided_at: "2026-01-01T00:00:00.000Z".into(),
        reason: "looks fine to me".into(),
    };
    // An approval missing a field the save reads.
    let mut missing = json!(forged);
    missing
        .as_object_mut()
        .expect("an object")
        .remove("reviewer_sub");
    tokio::join!(
        resume_as_insider(&stack, &made_up, json!(forged)),
        resume_as_insider(&stack, &malformed, missing),
    );

    assert_failed_cleanly(
        &stack,
        &made_up,
        &made_up.egress_request_id,
        "UnclaimedDecision",
    )
    .await;
    assert_failed_cleanly(
        &stack,
        &malformed,
        &malformed.egress_request_id,
        "InvalidDecision",
    )
    .await;
    for s in [&made_up, &malformed] {
        let request = inspect::request(&stack, &s.egress_request_id)
            .await
            .expect("readable")
            .expect("stored");
        assert!(
            request.ig_reviewer_1_decision.is_none() && request.ig_reviewer_1_sub.is_none(),
            "the made-up decision is not recorded: {request:?}"
        );
        let store = store_item(&stack, &s.egress_store_id).await;
        assert_eq!(text(&store, "status").as_deref(), Some("PENDING"));
        assert!(!store.contains_key(LOCK), "the lock is released: {store:?}");
    }
    timer.finish();
}

#[tokio::test]
async fn when_a_request_id_was_recorded_by_an_earlier_run_of_the_same_execution_name_then_it_is_never_overwritten(
) {
    let timer = Timer::start("request_id_rerun_refused");
    let stack = connect().await;
    let s = submit_as(
        &stack,
        &Submit {
            publish_times: 0,
            ..Submit::new(Mode::Single)
        },
    );
    let input = input_for(&stack, &s.message, &s.egress_request_id);
    let id = &s.egress_request_id;
    // The record of a run that ended long ago: approved, downloaded twice, and written by an
    // execution whose ARN the new one gets again once Step Functions forgot the name.
    let old = json!({
        "egress_request_id": id,
        "record_type": "EGRESS_REQUEST",
        "egress_store_name": input.request.egress_store_name,
        "swb_egress_store_id": input.request.swb_egress_store_id,
        "project_id": input.request.project_id,
        "workspace_id": input.request.workspace_id,
        "requested_by": input.request.requested_by,
        "requested_by_email": input.request.requested_by_email,
        "store_owner_email": input.request.store_owner_email,
        "requested_dt": "2025-01-02T08:00:00.000Z",
        "updated_by": "ig.reviewer",
        "updated_dt": "2025-01-03T09:00:00.000Z",
        "egress_status": "IGAPPROVED",
        "s3_egress_store_bucket": input.request.s3_egress_store_bucket,
        "s3_egress_store_bucket_path": input.request.s3_egress_store_bucket_path,
        "s3_egress_store_object_list_location": input.request.s3_egress_store_object_list_location,
        "s3_swb_object_metadata_version": 1,
        "approval_mode": "single",
        "is_single_approval_enabled": true,
        "download_count": 2,
        "ig_reviewer_1_decision": "APPROVED",
        "ig_reviewer_1_name": "Ivy Governance",
        "ig_reviewer_1_email": "ig.reviewer@tre.example.org",
        "ig_reviewer_1_sub": "4f1c2a7e-1d7b-4c1e-9d65-1a0c3b2e4f10",
        "ig_reviewer_1_dt": "2025-01-03T09:00:00.000Z",
        "ig_reviewer_1_reason": "aggregate data only",
        "archive_key": inspect::archive_key(&input.request.workspace_id, id),
        "execution_arn": stack.outputs.execution_arn(id),
        "execution_run_id": "a run of January 2025",
    });
    let item: HashMap<String, AttributeValue> =
        serde_dynamo::to_item(&old).expect("a DynamoDB item");
    stack
        .dynamodb
        .put_item()
        .table_name(
            stack
                .outputs
                .table("RequestsTable")
                .expect("requests table"),
        )
        .set_item(Some(item.clone()))
        .send()
        .await
        .expect("the old record is written");

    start_execution(&stack, &input).await;
    let end = ended(&stack, id).await;
    assert_eq!(end.status, ExecutionStatus::Failed, "{end:?}");
    assert_eq!(end.error.as_deref(), Some("DuplicateRequest"), "{end:?}");
    assert_eq!(
        raw_request(&stack, id).await.expect("still stored"),
        item,
        "the old record, its decisions and download count are untouched"
    );
    let store = store_item(&stack, &s.egress_store_id).await;
    assert_eq!(text(&store, "status").as_deref(), Some("PENDING"));
    assert!(
        !store.contains_key(LOCK),
        "the store is not locked: {store:?}"
    );
    let staged = inspect::staged_keys(&stack, &s.workspace_id, id)
        .await
        .expect("staging listable");
    assert!(staged.is_empty(), "nothing is staged: {staged:?}");
    timer.finish();
}

#[tokio::test]
async fn when_a_second_request_targets_a_store_in_review_then_it_fails_busy_and_the_first_keeps_the_store(
) {
    let timer = Timer::start("swb_store_busy");
    let stack = connect().await;
    let first = submit_as(&stack, &Submit::new(Mode::Single));
    let owner = &first.egress_request_id;
    inspect::awaiting_review(&stack, owner, ReviewStage::Ig, TIMEOUT)
        .await
        .expect("the first request awaits IG review");
    let store = store_item(&stack, &first.egress_store_id).await;
    assert_eq!(text(&store, "status").as_deref(), Some("PROCESSING"));
    assert_eq!(
        text(&store, LOCK).as_deref(),
        Some(owner.as_str()),
        "the store names its owner"
    );

    // A second submission for the same store while the first is in review.
    let second = input_for(&stack, &first.message, &uuid_like("b"));
    start_execution(&stack, &second).await;
    let second_id = second.request.egress_request_id.clone();
    assert_failed_cleanly(&stack, &first, &second_id, "SwbEgressStoreBusy").await;
    let store = store_item(&stack, &first.egress_store_id).await;
    assert_eq!(text(&store, "status").as_deref(), Some("PROCESSING"));
    assert_eq!(text(&store, LOCK).as_deref(), Some(owner.as_str()));

    // SWB rewrites the whole store item on its own updates and drops the lock: the store is
    // still the first request's.
    let mut rewritten = store.clone();
    rewritten.remove(LOCK);
    stack
        .dynamodb
        .put_item()
        .table_name(
            stack
                .outputs
                .table("SwbEgressStoreTable")
                .expect("SWB table"),
        )
        .set_item(Some(rewritten))
        .send()
        .await
        .expect("SWB rewrites its item");
    let third = input_for(&stack, &first.message, &uuid_like("c"));
    start_execution(&stack, &third).await;
    let third_id = third.request.egress_request_id.clone();
    assert_failed_cleanly(&stack, &first, &third_id, "SwbEgressStoreBusy").await;
    let store = store_item(&stack, &first.egress_store_id).await;
    assert_eq!(
        text(&store, "status").as_deref(),
        Some("PROCESSING"),
        "a failed request never unlocks another's store"
    );

    // The first request is decided: only now is the store released.
    default_driver(&stack)
        .decide(
            owner,
            &Reviewer::ig(&stack),
            Decision::Approved,
            "aggregate data only",
        )
        .await
        .expect("the decision is accepted");
    let end = ended(&stack, owner).await;
    assert_eq!(end.status, ExecutionStatus::Succeeded, "{end:?}");
    let store = store_item(&stack, &first.egress_store_id).await;
    assert_eq!(text(&store, "status").as_deref(), Some("PROCESSED"));
    assert!(!store.contains_key(LOCK), "the lock is removed: {store:?}");
    let request = inspect::request(&stack, owner)
        .await
        .expect("readable")
        .expect("stored");
    assert_eq!(request.egress_status, EgressStatus::IgApproved);
    timer.finish();
}

/// A fresh request id (SWB's are UUIDs; intake accepts execution-safe ids).
fn uuid_like(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos:032x}-{tag}")
}
