//! End-to-end tests of the sweep (issue 14) against the local stack: reminders, escalation
//! and the expiry warning of a waiting stage, and the reconciliation of drift planted by the
//! test (written straight to the local DynamoDB and S3, or left by an execution that failed).
//!
//! The sweep is invoked directly through the local Lambda endpoint, as an admin would, rather
//! than waiting for its schedule. The local stack's timings are in seconds (reminder after 4 s,
//! escalation after 8 s, expiry warning 12 s after the stage parks, uploads stale after 5 s:
//! local/egress_local/provision.py). Each sweep is scoped to the test's own requests
//! (`egress_request_ids`) so tests running beside it never see its notices or repairs.
#![cfg(feature = "e2e")]

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sfn::types::ExecutionStatus;
use e2e_tests::driver::{default_driver, ReviewDriver, Reviewer};
use e2e_tests::fixture::{self, TIMEOUT};
use e2e_tests::inspect;
use e2e_tests::stack::Stack;
use e2e_tests::swb::{Mode, Submit};
use e2e_tests::wait;
use serde_json::{json, Value};
use shared::domain::intake::build_workflow_input;
use shared::model::{Decision, EgressRequest, EgressStatus, ReviewStage, SweepReport};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Invokes the sweep with `input`, as an admin does (Lambda `Invoke`), and returns its report.
fn sweep(stack: &Stack, input: Value) -> SweepReport {
    let url = format!(
        "{}/2015-03-31/functions/sweep/invocations",
        stack.outputs.endpoint
    );
    let mut response = ureq::post(&url)
        .send(input.to_string())
        .expect("the sweep answers");
    let failed = response.headers().get("X-Amz-Function-Error").is_some();
    let body = response
        .body_mut()
        .read_to_vec()
        .expect("the sweep's answer");
    assert!(
        !failed,
        "the sweep failed: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "the sweep's answer is a report ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    })
}

fn sent<'a>(report: &'a SweepReport, id: &str, kind: &str) -> Vec<&'a shared::model::NoticeReport> {
    report
        .notices
        .iter()
        .filter(|n| n.egress_request_id == id && n.kind == kind && n.outcome == "sent")
        .collect()
}

/// Sleeps until `seconds` after `since`.
async fn until_after(since: OffsetDateTime, seconds: f64) {
    let at = since + time::Duration::seconds_f64(seconds);
    let left = at - OffsetDateTime::now_utc();
    if left.is_positive() {
        tokio::time::sleep(Duration::from_secs_f64(left.as_seconds_f64())).await;
    }
}

async fn item(stack: &Stack, id: &str) -> HashMap<String, AttributeValue> {
    stack
        .dynamodb
        .get_item()
        .table_name(stack.outputs.table("RequestsTable").expect("table"))
        .key("egress_request_id", AttributeValue::S(id.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("readable")
        .item
        .expect("stored")
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name)?.as_s().ok().cloned()
}

#[tokio::test]
async fn when_a_stage_waits_then_reviewers_admin_and_requester_are_told_once_each_and_never_after_the_decision(
) {
    let stack = fixture::connect().await;
    let s = fixture::submit(&stack, Mode::Single);
    let id = s.egress_request_id.clone();
    let scope = json!({ "egress_request_ids": [id] });
    let parked = fixture::parked(&stack, &id, ReviewStage::Ig).await;
    let since = OffsetDateTime::parse(&parked.updated_dt, &Rfc3339).expect("updated_dt");

    // 4 s after parking: the first reminder, to the IG reviewers' topic. (On a slow machine a
    // later notice may already be due too: each is counted over all the sweeps below.)
    until_after(since, 4.5).await;
    let first = sweep(&stack, scope.clone());
    assert_eq!(sent(&first, &id, "reminder").len(), 1, "{first:?}");
    assert_eq!(sent(&first, &id, "reminder")[0].number, 1);
    // At once again: no second reminder (the first is recorded on the request).
    let again = sweep(&stack, scope.clone());
    assert!(sent(&again, &id, "reminder").is_empty(), "{again:?}");
    let marks = item(&stack, &id).await;
    assert_eq!(text(&marks, "reminder_handle"), parked.review_handle);
    assert_eq!(
        marks
            .get("reminders_sent")
            .and_then(|v| v.as_n().ok())
            .map(String::as_str),
        Some("1")
    );

    // 12 s after parking: the admin has been told it is overdue, the requester that it expires.
    until_after(since, 12.5).await;
    let late = sweep(&stack, scope.clone());
    let quiet = sweep(&stack, scope.clone());
    let reports = [&first, &again, &late, &quiet];
    let total = |kind: &str| {
        reports
            .iter()
            .map(|r| sent(r, &id, kind).len())
            .sum::<usize>()
    };
    assert_eq!(
        (
            total("reminder"),
            total("escalation"),
            total("expiry_warning")
        ),
        (1, 1, 1),
        "{reports:#?}"
    );
    assert!(
        quiet.notices.iter().all(|n| n.outcome != "sent"),
        "{quiet:?}"
    );
    let reminders = inspect::publications_about(&stack, "IgNotificationTopic", &id)
        .await
        .expect("inbox");
    assert_eq!(
        reminders
            .iter()
            .filter(|p| p.subject.as_deref().unwrap_or("").starts_with("Reminder"))
            .count(),
        1,
        "{reminders:?}"
    );
    let overdue = inspect::publications_about(&stack, "AdminAlertTopic", &id)
        .await
        .expect("inbox");
    assert_eq!(
        overdue
            .iter()
            .filter(|p| p.subject.as_deref().unwrap_or("").contains("overdue"))
            .count(),
        1,
        "{overdue:?}"
    );
    let warning = wait::until("the requester's expiry warning", TIMEOUT, || {
        let (stack, id, to) = (&stack, id.clone(), s.submitter.email.clone());
        async move {
            Ok(inspect::emails_about(stack, &id)?
                .into_iter()
                .find(|m| m.recipients.contains(&to) && m.subject.contains("expires")))
        }
    })
    .await
    .expect("the requester is warned");
    assert!(warning.text.contains(&id), "{warning:?}");

    // After the decision, nothing more, however long the sweep waits.
    default_driver(&stack)
        .decide(
            &id,
            &Reviewer::ig(&stack),
            Decision::Rejected,
            "Row-level data",
        )
        .await
        .expect("the decision is accepted");
    fixture::ended(&stack, &id).await;
    let after = sweep(&stack, scope);
    assert!(after.notices.is_empty(), "{after:?}");
    let actions: Vec<String> = inspect::audit_lines(&stack, &id)
        .await
        .expect("audit")
        .into_iter()
        .map(|l| l.action)
        .collect();
    for action in ["reminder", "escalation", "expiry_warning"] {
        assert_eq!(
            actions.iter().filter(|a| *a == action).count(),
            1,
            "{action} in {actions:?}"
        );
    }
}

/// A decision whose `updateRequest` call died between its claim and `SendTaskSuccess`: the
/// request shows it (status, reviewer fields) and keeps the task token as
/// `pending_task_token`; the execution still waits. The sweep delivers it, once.
#[tokio::test]
async fn when_a_claimed_decision_was_never_delivered_then_the_sweep_resumes_the_workflow_once() {
    let stack = fixture::connect().await;
    let s = fixture::submit(&stack, Mode::Single);
    let id = s.egress_request_id.clone();
    let parked = fixture::parked(&stack, &id, ReviewStage::Ig).await;
    let reviewer = Reviewer::ig(&stack);
    // The claim as the API writes it, two minutes ago (older than the 60 s grace), by a call
    // that then died: the token moved to pending_task_token, never delivered.
    let at = shared::ports::iso_millis(OffsetDateTime::now_utc() - time::Duration::minutes(2));
    let v = |x: &str| AttributeValue::S(x.to_string());
    stack
        .dynamodb
        .update_item()
        .table_name(stack.outputs.table("RequestsTable").expect("table"))
        .key("egress_request_id", v(&id))
        .update_expression(
            "SET ig_reviewer_1_name = :name, ig_reviewer_1_email = :email, \
             ig_reviewer_1_sub = :sub, ig_reviewer_1_dt = :at, ig_reviewer_1_reason = :reason, \
             ig_reviewer_1_decision = :decision, egress_status = :approved, updated_by = :by, \
             updated_dt = :at, pending_task_token = sfn_task_token \
             REMOVE review_handle, sfn_task_token",
        )
        .condition_expression("review_handle = :handle")
        .expression_attribute_values(":name", v("Ivy Governance"))
        .expression_attribute_values(":email", v(&reviewer.email))
        .expression_attribute_values(":sub", v("sub-of-the-dead-call"))
        .expression_attribute_values(":at", v(&at))
        .expression_attribute_values(":reason", v("claimed by a call that died"))
        .expression_attribute_values(":decision", v("APPROVED"))
        .expression_attribute_values(":approved", v("IGAPPROVED"))
        .expression_attribute_values(":by", v("ig-reviewer"))
        .expression_attribute_values(
            ":handle",
            v(parked.review_handle.as_deref().expect("parked")),
        )
        .send()
        .await
        .expect("the claim is planted");

    let scope = json!({ "repair": true, "egress_request_ids": [id] });
    let report = sweep(&stack, scope.clone());
    let delivered = found(&report, "stalled_decision", &id);
    assert_eq!(delivered.len(), 1, "{report:#?}");
    assert_eq!(delivered[0].action, "repaired", "{report:#?}");

    // The workflow resumed with that decision: approved, archived, ended.
    fixture::succeeded(&stack, &id).await;
    let after = item(&stack, &id).await;
    assert_eq!(text(&after, "egress_status").as_deref(), Some("IGAPPROVED"));
    assert_eq!(text(&after, "pending_task_token"), None, "settled");
    let key = inspect::archive_key(&s.workspace_id, &id);
    let datalake = stack.outputs.bucket("DatalakeBucket").expect("datalake");
    assert!(exists(&stack, datalake, &key).await, "archived at {key}");

    // In the reviewer's name, once; a second sweep finds nothing to deliver.
    let again = sweep(&stack, scope);
    assert!(
        found(&again, "stalled_decision", &id).is_empty(),
        "{again:#?}"
    );
    let decisions: Vec<_> = inspect::audit_lines(&stack, &id)
        .await
        .expect("audit")
        .into_iter()
        .filter(|l| l.action == "decision")
        .collect();
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert_eq!(decisions[0].outcome, "success");
    assert_eq!(decisions[0].actor, "ig-reviewer");
}

/// A request item as the workflow writes it, in a workspace of the test's own.
fn planted(id: &str, workspace: &str, store: &str, status: EgressStatus) -> EgressRequest {
    let mut r = shared::testdata::request(id, status);
    r.workspace_id = workspace.into();
    r.swb_egress_store_id = store.into();
    r.s3_egress_store_bucket_path = format!("{workspace}/");
    r.requested_dt = shared::ports::iso_millis(OffsetDateTime::now_utc());
    r.updated_dt = r.requested_dt.clone();
    r
}

async fn put_request(stack: &Stack, r: &EgressRequest) {
    stack
        .dynamodb
        .put_item()
        .table_name(stack.outputs.table("RequestsTable").expect("table"))
        .set_item(Some(serde_dynamo::to_item(r).expect("item")))
        .send()
        .await
        .expect("request planted");
}

async fn put_store(stack: &Stack, store: &str, lock: &str) {
    stack
        .dynamodb
        .put_item()
        .table_name(stack.outputs.table("SwbEgressStoreTable").expect("table"))
        .item("id", AttributeValue::S(store.into()))
        .item("status", AttributeValue::S("PROCESSING".into()))
        .item("egress_request_lock", AttributeValue::S(lock.into()))
        .send()
        .await
        .expect("store planted");
}

async fn put_object(stack: &Stack, bucket: &str, key: &str) {
    stack
        .s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(b"planted,by,the,sweep,test\n".to_vec().into())
        .send()
        .await
        .expect("object planted");
}

async fn exists(stack: &Stack, bucket: &str, key: &str) -> bool {
    stack
        .s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .is_ok()
}

async fn open_uploads(stack: &Stack, bucket: &str, key: &str) -> usize {
    stack
        .s3
        .list_multipart_uploads()
        .bucket(bucket)
        .prefix(key)
        .send()
        .await
        .expect("uploads")
        .uploads()
        .len()
}

fn found<'a>(report: &'a SweepReport, kind: &str, id: &str) -> Vec<&'a shared::model::DriftReport> {
    report
        .drift
        .iter()
        .filter(|d| d.kind == kind && d.egress_request_id.as_deref() == Some(id))
        .collect()
}

#[tokio::test]
async fn when_drift_is_planted_then_a_dry_run_reports_each_kind_and_a_repair_fixes_what_is_safe_once(
) {
    let stack = fixture::connect().await;
    let bucket = |name: &str| stack.outputs.bucket(name).expect("bucket").to_string();
    let (staging, datalake) = (bucket("StagingBucket"), bucket("DatalakeBucket"));
    let u = uuid_suffix();
    let store = |what: &str| format!("store-{what}-{u}");
    let ws = format!("ws-sweep-{u}");
    let (lost, ghost, ended, approved, orphan) = (
        format!("sweep-lost-{u}"),
        format!("sweep-ghost-{u}"),
        format!("sweep-ended-{u}"),
        format!("sweep-approved-{u}"),
        format!("sweep-orphan-{u}"),
    );

    // 1. A request PROCESSING with no execution, holding its store, with staged data.
    let mut r = planted(&lost, &ws, &store("lost"), EgressStatus::Processing);
    r.review_stage = Some(ReviewStage::Ig);
    r.review_handle = Some(format!("handle-{u}"));
    put_request(&stack, &r).await;
    put_store(&stack, &store("lost"), &lost).await;
    put_object(&stack, &staging, &format!("{ws}/{lost}/results.csv")).await;
    // 2. A real execution that ended (FAILED: its store was missing) while its request was
    // left PROCESSING, as when the failure path's own write is lost. (moto's interpreter does
    // not end an execution on StopExecution, so the test makes one fail instead.)
    let s = fixture::submit_as(
        &stack,
        &Submit {
            publish_times: 0,
            ..Submit::new(Mode::Single)
        },
    );
    let stopped = s.egress_request_id.clone();
    let mut input = build_workflow_input(&s.message_json(), &fixture::intake_config(&stack, 600))
        .expect("passes intake");
    input.request.swb_egress_store_id = format!("{}-gone", s.egress_store_id);
    fixture::start_execution(&stack, &input).await;
    let end = fixture::ended(&stack, &stopped).await;
    assert_eq!(end.status, ExecutionStatus::Failed, "{end:?}");
    stack
        .dynamodb
        .update_item()
        .table_name(stack.outputs.table("RequestsTable").expect("table"))
        .key("egress_request_id", AttributeValue::S(stopped.clone()))
        .update_expression("SET egress_status = :p REMOVE failure_error, failure_cause")
        .expression_attribute_values(":p", AttributeValue::S("PROCESSING".into()))
        .send()
        .await
        .expect("the lost write planted");
    // 3. SWB's store locked by a request that does not exist.
    put_store(&stack, &store("ghost"), &ghost).await;
    // 4. Staged objects of an ended request, and 5. an upload of it left open.
    let r = planted(&ended, &ws, &store("ended"), EgressStatus::Rejected);
    put_request(&stack, &r).await;
    put_object(&stack, &staging, &format!("{ws}/{ended}/table.csv")).await;
    put_object(&stack, &staging, &format!(".manifests/{ws}/{ended}.json")).await;
    let big = format!("{ws}/{ended}/big.bin");
    stack
        .s3
        .create_multipart_upload()
        .bucket(&staging)
        .key(&big)
        .send()
        .await
        .expect("upload opened");
    // 6. A final approval without its archive, and 7. an archive nobody approved.
    let r = planted(&approved, &ws, &store("approved"), EgressStatus::IgApproved);
    put_request(&stack, &r).await;
    let orphan_key = format!("approved_egress/{ws}/{orphan}/egress_data.zip");
    put_object(&stack, &datalake, &orphan_key).await;
    // The upload is stale after 5 s locally.
    tokio::time::sleep(Duration::from_secs(6)).await;

    let ids = [&lost, &stopped, &ghost, &ended, &approved, &orphan];
    let dry = sweep(
        &stack,
        json!({ "dry_run": true, "repair": true, "egress_request_ids": ids }),
    );
    for (kind, id) in [
        ("processing_without_execution", &lost),
        ("execution_ended_without_status", &stopped),
        ("swb_store_stuck", &ghost),
        ("staged_after_end", &ended),
        ("stale_multipart_upload", &ended),
        ("approved_without_archive", &approved),
        ("archive_without_approval", &orphan),
    ] {
        let d = found(&dry, kind, id);
        assert_eq!(d.len(), 1, "{kind} of {id} in {:#?}", dry.drift);
        assert_eq!(d[0].action, "reported");
    }
    assert_eq!(dry.counts.drift_repaired, 0);
    // Nothing changed.
    assert_eq!(
        fixture::stored(&stack, &lost).await.egress_status,
        EgressStatus::Processing
    );
    assert_eq!(
        fixture::stored(&stack, &stopped).await.egress_status,
        EgressStatus::Processing
    );
    assert_eq!(
        fixture::swb_status(&stack, &store("ghost"))
            .await
            .as_deref(),
        Some("PROCESSING")
    );
    assert!(exists(&stack, &staging, &format!("{ws}/{ended}/table.csv")).await);
    assert_eq!(open_uploads(&stack, &staging, &big).await, 1);

    let repair = sweep(&stack, json!({ "repair": true, "egress_request_ids": ids }));
    for (kind, id) in [
        ("processing_without_execution", &lost),
        ("execution_ended_without_status", &stopped),
        ("swb_store_stuck", &ghost),
        ("staged_after_end", &ended),
        ("stale_multipart_upload", &ended),
    ] {
        let d = found(&repair, kind, id);
        assert_eq!(d.len(), 1, "{kind} of {id} in {:#?}", repair.drift);
        assert_eq!(d[0].action, "repaired", "{kind}: {:?}", d[0]);
    }
    for (kind, id) in [
        ("approved_without_archive", &approved),
        ("archive_without_approval", &orphan),
    ] {
        assert_eq!(found(&repair, kind, id)[0].action, "reported");
    }
    // 1 and 2: FAILED with a cause, the store released, staged data deleted with its proof.
    let l = fixture::stored(&stack, &lost).await;
    assert_eq!(
        (l.egress_status, l.failure_error.as_deref()),
        (EgressStatus::Failed, Some("ExecutionMissing"))
    );
    assert_eq!(
        fixture::swb_status(&stack, &store("lost")).await.as_deref(),
        Some("PENDING")
    );
    assert!(!exists(&stack, &staging, &format!("{ws}/{lost}/results.csv")).await);
    let st = fixture::stored(&stack, &stopped).await;
    assert_eq!(st.egress_status, EgressStatus::Failed);
    assert_eq!(
        st.failure_error.as_deref(),
        Some("SwbEgressStoreNotFound"),
        "{st:?}"
    );
    assert!(
        st.failure_cause
            .as_deref()
            .unwrap_or("")
            .contains("ended Failed"),
        "{st:?}"
    );
    // 3, 4, 5.
    assert_eq!(
        fixture::swb_status(&stack, &store("ghost"))
            .await
            .as_deref(),
        Some("PENDING")
    );
    assert!(!exists(&stack, &staging, &format!("{ws}/{ended}/table.csv")).await);
    assert!(!exists(&stack, &staging, &format!(".manifests/{ws}/{ended}.json")).await);
    assert_eq!(open_uploads(&stack, &staging, &big).await, 0);
    let audit: Vec<String> = inspect::audit_lines(&stack, &ended)
        .await
        .expect("audit")
        .into_iter()
        .map(|l| l.action)
        .collect();
    assert!(audit.iter().any(|a| a == "deletion_confirmed"), "{audit:?}");
    assert!(audit.iter().any(|a| a == "sweep"), "{audit:?}");
    // 6 and 7 are only reported: the archive stays for the admin.
    assert!(exists(&stack, &datalake, &orphan_key).await);
    let report = inspect::publications_about(&stack, "AdminAlertTopic", &ghost)
        .await
        .expect("inbox");
    assert!(
        report.len() >= 2,
        "the dry run and the repair are reported: {report:?}"
    );

    // Idempotent: the next sweep repairs nothing and finds only what it must not repair.
    let again = sweep(&stack, json!({ "repair": true, "egress_request_ids": ids }));
    assert_eq!(again.counts.drift_repaired, 0, "{:#?}", again.drift);
    let mut kinds: Vec<&str> = again.drift.iter().map(|d| d.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec!["approved_without_archive", "archive_without_approval"]
    );
}

fn uuid_suffix() -> String {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    format!("{:x}", nanos % 0xffff_ffff_ffff)
}
