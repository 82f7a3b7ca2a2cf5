//! End-to-end tests of every workflow path, against the local stack (feature `e2e`; run by
//! `make test-e2e`, which starts and stops the stack).
//!
//! Each test submits a request as SWB does (or starts an execution directly where the path
//! needs a short review timeout), drives reviewers through [`ReviewDriver`], and asserts the
//! side effects: the request item, SWB's status, staging and the datalake (the archive
//! unzipped and compared byte for byte with the submitted versions), the e-mails, the topic
//! publications and the execution history.
#![cfg(feature = "e2e")]

use aws_sdk_sfn::types::ExecutionStatus;
use e2e_tests::driver::{default_driver, ReviewDriver, Reviewer};
use e2e_tests::fixture::{self, ended, succeeded, TIMEOUT};
use e2e_tests::inspect::{self, Archive};
use e2e_tests::stack::Stack;
use e2e_tests::swb::{Mode, Scenario, Submission, Submit};
use e2e_tests::timing::Timer;
use e2e_tests::{verify, wait};
use shared::domain::intake::build_workflow_input;
use shared::model::{ApprovalMode, Decision, EgressRequest, EgressStatus, ReviewStage};

async fn stack() -> Stack {
    fixture::connect().await
}

fn submit(stack: &Stack, how: Submit) -> Submission {
    fixture::submit_as(stack, &how)
}

/// A single-mode submission whose message SWB publishes `times` times.
fn submit_published(stack: &Stack, times: u32) -> Submission {
    let how = Submit {
        publish_times: times,
        ..Submit::new(Mode::Single)
    };
    submit(stack, how)
}

async fn stored(stack: &Stack, id: &str) -> EgressRequest {
    inspect::request(stack, id)
        .await
        .expect("readable")
        .expect("the request is stored")
}

async fn swb_status(stack: &Stack, s: &Submission) -> String {
    fixture::swb_status(stack, &s.egress_store_id)
        .await
        .expect("the SWB egress store item still exists")
}

async fn states(stack: &Stack, id: &str) -> Vec<String> {
    let events = inspect::history(stack, &stack.outputs.execution_arn(id))
        .await
        .expect("history");
    inspect::states_entered(&events)
}

fn assert_visits_in_order(visited: &[String], expected: &[&str]) {
    let mut rest = visited.iter();
    for state in expected {
        assert!(
            rest.any(|v| v == state),
            "expected {state} (in order {expected:?}); visited {visited:?}"
        );
    }
}

fn assert_never_visits(visited: &[String], forbidden: &[&str]) {
    for state in forbidden {
        assert!(
            !visited.iter().any(|v| v == state),
            "unexpected {state}; visited {visited:?}"
        );
    }
}

/// The execution entered the `expected` states in this order and none of the `forbidden`.
async fn assert_path(stack: &Stack, s: &Submission, expected: &[&str], forbidden: &[&str]) {
    let visited = states(stack, &s.egress_request_id).await;
    assert_visits_in_order(&visited, expected);
    assert_never_visits(&visited, forbidden);
}

async fn email_to_requester(stack: &Stack, s: &Submission, word: &str) -> inspect::SentEmail {
    let id = s.egress_request_id.clone();
    let to = s.submitter.email.clone();
    wait::until(&format!("the requester's {word} e-mail"), TIMEOUT, || {
        let id = id.clone();
        let to = to.clone();
        async move {
            // Not the early "received" e-mail (issue 14): the outcome's.
            Ok(inspect::emails_about(stack, &id)?.into_iter().find(|m| {
                m.recipients.contains(&to) && !m.subject.starts_with("Egress request received")
            }))
        }
    })
    .await
    .expect("the requester is e-mailed")
}

/// The requester's `word` e-mail came from the verified sender and mentions all `words`.
async fn assert_emailed(stack: &Stack, s: &Submission, word: &str, words: &[&str]) {
    let email = email_to_requester(stack, s, word).await;
    assert_eq!(
        email.source, stack.outputs.email.sender,
        "sent from the verified sender"
    );
    let text = format!("{}\n{}\n{}", email.subject, email.text, email.html).to_lowercase();
    for word in words {
        assert!(
            text.contains(&word.to_lowercase()),
            "the e-mail mentions {word:?}: {email:?}"
        );
    }
}

/// How every rejection ends: the execution succeeded, the request is REJECTED, SWB is back to
/// PENDING (the researcher may revise and resubmit), nothing is left staged nor archived, and
/// the requester is told `reason`.
async fn assert_rejected(stack: &Stack, s: &Submission, reason: &str) -> EgressRequest {
    succeeded(stack, &s.egress_request_id).await;
    let request = stored(stack, &s.egress_request_id).await;
    assert_eq!(request.egress_status, EgressStatus::Rejected);
    assert!(request.archive_key.is_none());
    assert_eq!(swb_status(stack, s).await, "PENDING");
    assert_staging_empty(stack, s).await;
    assert_no_archive(stack, s).await;
    assert_emailed(
        stack,
        s,
        "rejection",
        &[&s.egress_request_id, "rejected", reason],
    )
    .await;
    request
}

async fn assert_staging_empty(stack: &Stack, s: &Submission) {
    let left = inspect::staged_keys(stack, &s.workspace_id, &s.egress_request_id)
        .await
        .expect("staging listable");
    assert!(left.is_empty(), "staging is cleaned up, found {left:?}");
}

async fn assert_no_archive(stack: &Stack, s: &Submission) {
    let bucket = stack.outputs.bucket("DatalakeBucket").expect("datalake");
    let key = inspect::archive_key(&s.workspace_id, &s.egress_request_id);
    let object = inspect::object(stack, bucket, &key, None)
        .await
        .expect("readable");
    assert!(object.is_none(), "nothing reaches the datalake");
}

/// The archive in the datalake: KMS-encrypted with the datalake key, and holding exactly the
/// submitted versions.
async fn assert_archive(stack: &Stack, s: &Submission) -> Archive {
    let bucket = stack.outputs.bucket("DatalakeBucket").expect("datalake");
    let key = inspect::archive_key(&s.workspace_id, &s.egress_request_id);
    let object = inspect::object(stack, bucket, &key, None)
        .await
        .expect("readable")
        .expect("the archive is in the datalake");
    assert_eq!(
        object.server_side_encryption.as_deref(),
        Some("aws:kms"),
        "SSE-KMS"
    );
    let key_arn = &stack.outputs.keys["DatalakeKey"].arn;
    let kms = object.kms_key_id.clone().unwrap_or_default();
    assert!(
        key_arn.ends_with(&kms) || kms.ends_with(key_arn.rsplit('/').next().unwrap_or("?")),
        "datalake key, got {kms}"
    );
    let archive = Archive::read(&object.body).expect("a valid zip");
    verify::archive_holds_submission(stack, s, &archive)
        .await
        .expect("the archive holds the submission");
    archive
}

/// The stage's reviewer (IG's or RIT's) decides, once the request awaits that stage.
async fn decide(
    stack: &Stack,
    s: &Submission,
    stage: ReviewStage,
    decision: Decision,
    reason: &str,
) {
    let reviewer = match stage {
        ReviewStage::Ig => Reviewer::ig(stack),
        ReviewStage::Rit => Reviewer::rit(stack),
    };
    inspect::awaiting_review(stack, &s.egress_request_id, stage, TIMEOUT)
        .await
        .expect("the request awaits the decision");
    default_driver(stack)
        .decide(&s.egress_request_id, &reviewer, decision, reason)
        .await
        .expect("the decision is accepted");
}

async fn approve(stack: &Stack, s: &Submission, stage: ReviewStage, reason: &str) {
    decide(stack, s, stage, Decision::Approved, reason).await;
}

async fn reject(stack: &Stack, s: &Submission, stage: ReviewStage, reason: &str) {
    decide(stack, s, stage, Decision::Rejected, reason).await;
}

async fn reviewer_notified(
    stack: &Stack,
    topic: &str,
    s: &Submission,
) -> Vec<inspect::Publication> {
    inspect::publications_about(stack, topic, &s.egress_request_id)
        .await
        .expect("publications readable")
}

async fn assert_not_notified(stack: &Stack, topic: &str, s: &Submission, why: &str) {
    let published = reviewer_notified(stack, topic, s).await;
    assert!(published.is_empty(), "{why}: {published:?}");
}

#[tokio::test]
async fn when_single_mode_ig_approves_then_the_submitted_files_are_archived_and_swb_processed() {
    let timer = Timer::start("single_mode_approve");
    let stack = stack().await;
    let s = submit(&stack, Submit::new(Mode::Single));
    let ig = Reviewer::ig(&stack);

    let awaiting = inspect::awaiting_review(&stack, &s.egress_request_id, ReviewStage::Ig, TIMEOUT)
        .await
        .expect("awaits IG");
    assert_eq!(
        swb_status(&stack, &s).await,
        "PROCESSING",
        "SWB locked while in flight"
    );
    assert_eq!(
        awaiting.staged_file_count,
        Some(s.files.len() as u64),
        "folder marker not staged"
    );
    assert_eq!(awaiting.staged_total_bytes, Some(s.total_bytes()));
    let manifest = verify::staging_manifest(&stack, &s.workspace_id, &s.egress_request_id)
        .await
        .expect("manifest");
    assert_eq!(manifest.files.len(), s.files.len());
    let ig_message = reviewer_notified(&stack, "IgNotificationTopic", &s).await;
    assert_eq!(ig_message.len(), 1, "IG notified once");
    assert!(
        ig_message[0]
            .message
            .contains(&format!("{} file(s)", s.files.len())),
        "{:?}",
        ig_message[0]
    );
    assert!(ig_message[0].message.contains(&s.total_bytes().to_string()));

    approve(&stack, &s, ReviewStage::Ig, "aggregate outputs only").await;
    succeeded(&stack, &s.egress_request_id).await;

    let request = stored(&stack, &s.egress_request_id).await;
    assert_eq!(request.egress_status, EgressStatus::IgApproved);
    assert_eq!(request.ig_reviewer_1_decision, Some(Decision::Approved));
    assert_eq!(
        request.ig_reviewer_1_name.as_deref(),
        Some(ig.name.as_str())
    );
    assert_eq!(
        request.ig_reviewer_1_reason.as_deref(),
        Some("aggregate outputs only")
    );
    assert!(
        request.sfn_task_token.is_none(),
        "the used task token is dropped"
    );
    assert_eq!(
        request.archive_key,
        Some(inspect::archive_key(&s.workspace_id, &s.egress_request_id))
    );
    assert_eq!(swb_status(&stack, &s).await, "PROCESSED");
    assert_staging_empty(&stack, &s).await;
    let archive = assert_archive(&stack, &s).await;
    let rit = "RitNotificationTopic";
    assert_not_notified(&stack, rit, &s, "no RIT stage in single mode").await;

    let words = [
        s.egress_request_id.as_str(),
        "approved",
        "aggregate outputs only",
    ];
    assert_emailed(&stack, &s, "approval", &words).await;

    let downloaded = default_driver(&stack)
        .download(&s.egress_request_id, &ig)
        .await
        .expect("download");
    assert_eq!(
        Archive::read(&downloaded).expect("zip"),
        archive,
        "the presigned download is the archive"
    );
    assert_eq!(
        stored(&stack, &s.egress_request_id).await.download_count,
        1,
        "counted server-side"
    );

    assert_path(
        &stack,
        &s,
        &[
            "SaveRequest",
            "AuditSubmitted",
            "MarkSwbProcessing",
            "CopyToStaging",
            "NotifyIgReviewers",
            "AwaitIgDecision",
            "IgDecision",
            "SaveIgApproval",
            "ApprovalMode",
            "CopyToDatalake",
            "MarkSwbProcessed",
            "NotifyRequesterApproved",
            "Approved",
        ],
        &["NotifyRitReviewers", "MarkFailed", "CleanUpRejected"],
    )
    .await;
    timer.finish();
}

#[tokio::test]
async fn when_single_mode_ig_rejects_then_staging_is_cleaned_and_swb_pending() {
    let timer = Timer::start("single_mode_reject");
    let stack = stack().await;
    let s = submit(&stack, Submit::new(Mode::Single));
    reject(&stack, &s, ReviewStage::Ig, "row-level data in summary.csv").await;
    let request = assert_rejected(&stack, &s, "row-level data in summary.csv").await;
    assert_eq!(request.ig_reviewer_1_decision, Some(Decision::Rejected));
    assert_path(
        &stack,
        &s,
        &[
            "AwaitIgDecision",
            "SaveIgRejection",
            "CleanUpRejected",
            "ReleaseSwbAfterRejection",
            "NotifyRequesterRejected",
            "Rejected",
        ],
        &["CopyToDatalake", "MarkFailed"],
    )
    .await;
    timer.finish();
}

#[tokio::test]
async fn when_dual_mode_both_approve_then_research_it_decides_second_and_files_are_archived() {
    let timer = Timer::start("dual_mode_approve_approve");
    let stack = stack().await;
    let s = submit(&stack, Submit::new(Mode::Dual));
    approve(&stack, &s, ReviewStage::Ig, "IG: aggregate outputs only").await;
    let between = inspect::awaiting_review(&stack, &s.egress_request_id, ReviewStage::Rit, TIMEOUT)
        .await
        .expect("awaits RIT");
    assert_eq!(between.egress_status, EgressStatus::IgApproved);
    assert_eq!(
        between.current_reviewer_group.as_deref(),
        Some(stack.outputs.project.rit_reviewer_group.as_str())
    );
    let rit_message = reviewer_notified(&stack, "RitNotificationTopic", &s).await;
    assert_eq!(rit_message.len(), 1, "RIT notified once");
    assert!(
        rit_message[0]
            .message
            .contains("IG: aggregate outputs only"),
        "RIT sees the IG reason: {:?}",
        rit_message[0]
    );
    approve(&stack, &s, ReviewStage::Rit, "RIT: file formats are safe").await;

    succeeded(&stack, &s.egress_request_id).await;
    let request = stored(&stack, &s.egress_request_id).await;
    assert_eq!(request.approval_mode, ApprovalMode::Dual);
    assert!(!request.is_single_approval_enabled);
    assert_eq!(request.egress_status, EgressStatus::RitApproved);
    assert_eq!(request.ig_reviewer_1_decision, Some(Decision::Approved));
    assert_eq!(request.rit_reviewer_2_decision, Some(Decision::Approved));
    assert_eq!(
        request.rit_reviewer_2_name.as_deref(),
        Some(Reviewer::rit(&stack).name.as_str())
    );
    assert_eq!(swb_status(&stack, &s).await, "PROCESSED");
    assert_staging_empty(&stack, &s).await;
    assert_archive(&stack, &s).await;
    assert_emailed(&stack, &s, "approval", &[&s.egress_request_id, "approved"]).await;
    assert_path(
        &stack,
        &s,
        &[
            "AwaitIgDecision",
            "SaveIgApproval",
            "ApprovalMode",
            "NotifyRitReviewers",
            "AwaitRitDecision",
            "SaveRitApproval",
            "CopyToDatalake",
            "MarkSwbProcessed",
            "Approved",
        ],
        &[],
    )
    .await;
    timer.finish();
}

#[tokio::test]
async fn when_dual_mode_ig_rejects_then_research_it_is_never_asked() {
    let timer = Timer::start("dual_mode_ig_reject");
    let stack = stack().await;
    let s = submit(&stack, Submit::new(Mode::Dual));
    reject(&stack, &s, ReviewStage::Ig, "IG: identifiable individuals").await;
    let request = assert_rejected(&stack, &s, "IG: identifiable individuals").await;
    assert!(request.rit_reviewer_2_decision.is_none());
    assert_not_notified(&stack, "RitNotificationTopic", &s, "RIT never notified").await;
    assert_path(
        &stack,
        &s,
        &["SaveIgRejection", "CleanUpRejected", "Rejected"],
        &["NotifyRitReviewers", "AwaitRitDecision"],
    )
    .await;
    timer.finish();
}

#[tokio::test]
async fn when_dual_mode_rit_rejects_then_the_ig_approval_is_kept_and_nothing_is_archived() {
    let timer = Timer::start("dual_mode_rit_reject");
    let stack = stack().await;
    let s = submit(&stack, Submit::new(Mode::Dual));
    approve(&stack, &s, ReviewStage::Ig, "IG: aggregate outputs only").await;
    reject(&stack, &s, ReviewStage::Rit, "RIT: executable content").await;
    let request = assert_rejected(&stack, &s, "RIT: executable content").await;
    assert_eq!(request.ig_reviewer_1_decision, Some(Decision::Approved));
    assert_eq!(request.rit_reviewer_2_decision, Some(Decision::Rejected));
    assert_eq!(
        request.rit_reviewer_2_reason.as_deref(),
        Some("RIT: executable content")
    );
    assert_path(
        &stack,
        &s,
        &[
            "SaveIgApproval",
            "NotifyRitReviewers",
            "SaveRitRejection",
            "CleanUpRejected",
            "Rejected",
        ],
        &["CopyToDatalake"],
    )
    .await;
    timer.finish();
}

#[tokio::test]
async fn when_nobody_decides_within_the_review_timeout_then_the_request_expires() {
    let timer = Timer::start("review_timeout_expired");
    let stack = stack().await;
    // Prepared as SWB does, but started directly: the review timeout is captured at intake
    // and a test cannot wait the project's 14 days.
    let s = submit_published(&stack, 0);
    let config = fixture::intake_config(&stack, 3);
    let input = build_workflow_input(&s.message_json(), &config)
        .expect("the simulator's message passes intake");
    fixture::start_execution(&stack, &input).await;

    // Expiry is a handled outcome.
    succeeded(&stack, &s.egress_request_id).await;
    let request = stored(&stack, &s.egress_request_id).await;
    assert_eq!(request.egress_status, EgressStatus::Expired);
    assert!(
        request.sfn_task_token.is_none(),
        "the stale token is dropped"
    );
    assert!(request.ig_reviewer_1_decision.is_none());
    assert_eq!(swb_status(&stack, &s).await, "PENDING");
    assert_staging_empty(&stack, &s).await;
    assert_no_archive(&stack, &s).await;
    assert_emailed(&stack, &s, "expiry", &[&s.egress_request_id, "expired"]).await;
    let audit = inspect::audit_trail(&stack, &s.egress_request_id)
        .await
        .expect("audit");
    assert!(
        audit.iter().any(|(action, _, _)| action == "expired"),
        "expiry audited: {audit:?}"
    );
    assert_path(
        &stack,
        &s,
        &[
            "AwaitIgDecision",
            "MarkExpired",
            "AuditExpired",
            "CleanUpExpired",
            "ReleaseSwbAfterExpiry",
            "NotifyRequesterExpired",
            "Expired",
        ],
        &["IgDecision", "MarkFailed"],
    )
    .await;
    timer.finish();
}

#[tokio::test]
async fn when_a_submitted_version_is_missing_then_the_request_fails_cleanly_and_the_admin_is_told()
{
    let timer = Timer::start("function_failure_failed");
    let stack = stack().await;
    let s = submit(
        &stack,
        Submit {
            scenario: Scenario::MissingVersion,
            ..Submit::new(Mode::Single)
        },
    );
    assert_eq!(s.missing_versions.len(), 1);
    let end = ended(&stack, &s.egress_request_id).await;
    assert_eq!(end.status, ExecutionStatus::Failed, "{end:?}");
    let error = end.error.clone().unwrap_or_default();
    assert_eq!(
        error, "NotFound",
        "the execution fails with the function's error name: {end:?}"
    );

    let request = stored(&stack, &s.egress_request_id).await;
    assert_eq!(request.egress_status, EgressStatus::Failed);
    assert_eq!(request.failure_error.as_deref(), Some("NotFound"));
    let cause = request.failure_cause.clone().unwrap_or_default();
    assert!(
        cause.contains(&s.missing_versions[0].version_id) || cause.contains("table2.csv"),
        "the cause names what is missing: {cause}"
    );
    assert_eq!(
        swb_status(&stack, &s).await,
        "PENDING",
        "never left PROCESSING"
    );
    assert_staging_empty(&stack, &s).await;
    assert_no_archive(&stack, &s).await;

    let alerts = reviewer_notified(&stack, "AdminAlertTopic", &s).await;
    assert_eq!(alerts.len(), 1, "the admin is alerted once: {alerts:?}");
    assert!(alerts[0].message.contains("NotFound"), "{:?}", alerts[0]);
    assert_not_notified(&stack, "IgNotificationTopic", &s, "reviewers are not asked").await;
    let words = [
        s.egress_request_id.as_str(),
        "could not be processed",
        stack.outputs.email.admin.as_str(),
    ];
    assert_emailed(&stack, &s, "failure", &words).await;

    let events = inspect::history(&stack, &stack.outputs.execution_arn(&s.egress_request_id))
        .await
        .expect("history");
    assert_eq!(
        inspect::task_failures(&events),
        vec!["NotFound".to_string()],
        "not retried: NotFound is permanent"
    );
    assert_path(
        &stack,
        &s,
        &[
            "CopyToStaging",
            "MarkFailed",
            "AuditFailed",
            "CleanUpAfterFailure",
            "ReleaseSwbAfterFailure",
            "AlertAdminOfFailure",
            "NotifyRequesterFailed",
            "WorkflowFailed",
        ],
        &["NotifyIgReviewers", "AwaitIgDecision"],
    )
    .await;
    timer.finish();
}

#[tokio::test]
async fn when_sns_delivers_the_same_message_twice_then_one_execution_runs() {
    let timer = Timer::start("duplicate_sns_delivery");
    let stack = stack().await;
    let s = submit_published(&stack, 2);
    let deliveries = inspect::deliveries_finished(&stack, &s.published_message_ids, TIMEOUT)
        .await
        .expect("both deliveries handled");
    assert_eq!(deliveries.len(), 2);
    for d in &deliveries {
        assert_eq!(d.function, "start-workflow");
        assert_eq!(d.state, "done", "a duplicate is not an error: {d:?}");
    }
    assert_eq!(
        inspect::executions_named(&stack, &s.egress_request_id)
            .await
            .expect("listable"),
        1,
        "one execution per request"
    );
    reject(&stack, &s, ReviewStage::Ig, "duplicate delivery test").await;
    succeeded(&stack, &s.egress_request_id).await;
    assert_eq!(
        reviewer_notified(&stack, "IgNotificationTopic", &s)
            .await
            .len(),
        1,
        "reviewers notified once"
    );
    let audit = inspect::audit_trail(&stack, &s.egress_request_id)
        .await
        .expect("audit");
    assert_eq!(
        audit
            .iter()
            .filter(|(action, _, _)| action == "submitted")
            .count(),
        1,
        "{audit:?}"
    );
    timer.finish();
}

#[tokio::test]
async fn when_a_file_changes_after_submission_then_the_archive_holds_the_submitted_version() {
    let timer = Timer::start("file_changed_after_submission");
    let stack = stack().await;
    let s = submit(&stack, Submit::new(Mode::Single));
    let changed = s
        .changed_after_snapshot
        .first()
        .expect("the simulator changes a file")
        .clone();
    assert_ne!(changed.submitted_version, changed.latest_version);
    approve(&stack, &s, ReviewStage::Ig, "submitted version approved").await;
    succeeded(&stack, &s.egress_request_id).await;

    let archive = assert_archive(&stack, &s).await;
    let path = changed
        .key
        .strip_prefix(&s.prefix)
        .expect("under the store prefix");
    let latest = inspect::object(&stack, &s.bucket, &changed.key, None)
        .await
        .expect("readable")
        .expect("the latest version exists");
    let submitted = inspect::object(
        &stack,
        &s.bucket,
        &changed.key,
        Some(&changed.submitted_version),
    )
    .await
    .expect("readable")
    .expect("the submitted version exists");
    assert_ne!(latest.body, submitted.body, "the file really changed");
    assert_eq!(
        archive.entries[path], submitted.body,
        "the archive holds the submitted version"
    );
    assert_ne!(archive.entries[path], latest.body);
    assert!(
        !archive
            .entries
            .keys()
            .any(|k| k.is_empty() || k.ends_with('/')),
        "the folder marker is not archived: {:?}",
        archive.entries.keys()
    );
    timer.finish();
}

#[tokio::test]
async fn when_the_swb_egress_store_does_not_exist_then_the_request_fails_and_no_store_is_created() {
    let timer = Timer::start("swb_store_missing_failed");
    let stack = stack().await;
    let s = submit_published(&stack, 0);
    let ghost_store = format!("{}-gone", s.egress_store_id);
    let config = fixture::intake_config(&stack, 600);
    // Intake binds the store to the workspace, so the ghost store is put into the workflow
    // input after intake, as a store deleted between submission and processing would be.
    let mut input = build_workflow_input(&s.message_json(), &config).expect("passes intake");
    input.request.swb_egress_store_id = ghost_store.clone();
    fixture::start_execution(&stack, &input).await;

    let end = ended(&stack, &s.egress_request_id).await;
    assert_eq!(end.status, ExecutionStatus::Failed, "{end:?}");
    assert_eq!(end.error.as_deref(), Some("SwbEgressStoreNotFound"));
    let request = stored(&stack, &s.egress_request_id).await;
    assert_eq!(request.egress_status, EgressStatus::Failed);
    assert_eq!(
        request.failure_error.as_deref(),
        Some("SwbEgressStoreNotFound")
    );
    let ghost = fixture::swb_status(&stack, &ghost_store).await;
    assert_eq!(
        ghost, None,
        "the workflow never creates an SWB egress store item"
    );
    assert_eq!(
        swb_status(&stack, &s).await,
        "PENDING",
        "the real store is untouched"
    );
    assert_staging_empty(&stack, &s).await;
    let alerts = reviewer_notified(&stack, "AdminAlertTopic", &s).await;
    assert_eq!(alerts.len(), 1, "the admin is alerted: {alerts:?}");
    assert!(
        alerts[0].message.contains("SwbEgressStoreNotFound"),
        "{:?}",
        alerts[0]
    );
    assert_path(
        &stack,
        &s,
        &[
            "MarkSwbProcessing",
            "SwbEgressStoreMissing",
            "MarkFailed",
            "AlertAdminOfFailure",
            "WorkflowFailed",
        ],
        &["CopyToStaging"],
    )
    .await;
    timer.finish();
}
