//! The reviewer API's operations against the in-memory fakes: what is written, what the
//! workflow receives, what is audited, and what happens under races and failures.

use super::*;
use crate::domain::review::federation::IdpGroupMap;
use crate::domain::review::{
    APPROVED_NO_REVIEW_MESSAGE, DOWNLOAD_LIMIT_MESSAGE, STALE_REQUEST_MESSAGE,
};
use crate::fakes::{
    approved, caller, directory_of, parked_at, review_service, review_settings, sample_request,
    FailingWorkflowCallbacks, FakeReviewService, FakeWorkflowCallbacks, InMemoryDirectory,
};
use crate::model::{ApprovalMode, Decision, EgressStatus, ReviewOutcome, ReviewStage};
use crate::ports::DirectoryUser;

const IG: &str = "IGApprover";
const RIT: &str = "ResearchITAdmin";
const TOKEN: &str = "sfn-secret-token";
const HANDLE: &str = "handle-1";

type Service<W> = FakeReviewService<W>;

fn settings() -> ReviewSettings {
    ReviewSettings {
        idp_group_map: IdpGroupMap::parse("tre-ig=IGApprover,tre-rit=ResearchITAdmin", &[IG, RIT])
            .unwrap(),
        ..review_settings(IG, RIT, &[IG, RIT], 2)
    }
}

fn directory() -> InMemoryDirectory {
    // Pool membership as the tokens of these tests say; tests of revocation change it.
    directory_of(&[
        ("iris", "sub-iris", "iris@example.org", &[IG]),
        ("ian", "sub-ian", "ian@example.org", &[IG]),
        ("rita", "sub-rita", "rita@example.org", &[RIT]),
        ("res", "sub-res", "researcher@example.org", &[IG, RIT]),
    ])
}

fn service_with<W>(
    workflow: W,
    requests: Vec<EgressRequest>,
    settings: ReviewSettings,
) -> Service<W> {
    review_service(workflow, requests, directory(), settings)
}

fn service(requests: Vec<EgressRequest>) -> Service<FakeWorkflowCallbacks> {
    service_with(FakeWorkflowCallbacks::default(), requests, settings())
}

/// The service over `req-1` parked at IG, with a workflow that fails as `workflow` does.
fn failing(workflow: FailingWorkflowCallbacks) -> Service<FailingWorkflowCallbacks> {
    service_with(workflow, vec![parked_ig()], settings())
}

fn ig_decision(decision: &str) -> UpdateRequestInput {
    UpdateRequestInput {
        egress_request_id: "req-1".into(),
        task_token: HANDLE.into(),
        ig_reviewer_1_decision: Some(decision.into()),
        ig_reviewer_1_reason: Some("Aggregate results only".into()),
        // What the web app sends on its own; all of it must be ignored.
        ig_reviewer_1_name: Some("forged@example.org".into()),
        ig_reviewer_1_email: Some("forged@example.org".into()),
        ig_reviewer_1_dt: Some("Wed, 01 Jan 2020 00:00:00 GMT".into()),
        ..Default::default()
    }
}

/// `who`, with an IG token, decides req-1 at its IG stage as the web app sends it.
async fn ig_decides<W: WorkflowCallbacks>(
    svc: &Service<W>,
    who: &str,
    decision: &str,
) -> Result<String> {
    svc.update_request(&caller(who, &[IG]), ig_decision(decision))
        .await
}

/// `who`, with an IG token, downloads req-1's archive (the client echoing a count of 0).
async fn downloads<W: WorkflowCallbacks>(svc: &Service<W>, who: &str) -> Result<PresignPayload> {
    svc.download_data(&caller(who, &[IG]), download_input("0"))
        .await
}

/// A RIT reviewer lists requests with `arguments` and no field selection.
async fn rita_lists<W: WorkflowCallbacks>(svc: &Service<W>, arguments: Value) -> Result<Listed> {
    svc.list_requests(&caller("rita", &[RIT]), &arguments, None)
        .await
}

/// An audit event's action and outcome.
fn kind(event: &AuditEvent) -> (&str, &str) {
    (event.action.as_str(), event.outcome.as_str())
}

fn parked_ig() -> EgressRequest {
    parked_at(
        sample_request("req-1", ApprovalMode::Dual),
        ReviewStage::Ig,
        TOKEN,
        HANDLE,
    )
}

#[tokio::test]
async fn when_an_ig_reviewer_approves_then_the_item_the_workflow_and_the_audit_agree() {
    let svc = service(vec![parked_ig()]);
    let result = ig_decides(&svc, "iris", "APPROVED").await.unwrap();
    assert_eq!(result, UPDATE_SUCCESS_MESSAGE);

    let item = svc.store.item("req-1").unwrap();
    assert_eq!(item.egress_status, EgressStatus::IgApproved);
    assert_eq!(
        item.ig_reviewer_1_email.as_deref(),
        Some("iris@example.org")
    );
    assert_eq!(item.ig_reviewer_1_name.as_deref(), Some("iris@example.org"));
    assert_eq!(item.ig_reviewer_1_sub.as_deref(), Some("sub-iris"));
    assert_eq!(
        item.ig_reviewer_1_dt.as_deref(),
        Some("2024-05-03T12:00:00.000Z")
    );
    assert_eq!(item.ig_reviewer_1_decision, Some(Decision::Approved));
    assert_eq!(item.updated_by, "iris");
    assert_eq!(item.review_handle, None, "the handle is used up");
    assert_eq!(item.sfn_task_token, None, "the token is removed once used");
    assert_eq!(item.pending_task_token, None, "settled once delivered");

    let completed = svc.workflow.completed();
    assert_eq!(completed.len(), 1);
    let outcome: ReviewOutcome = serde_json::from_str(&completed[TOKEN]).unwrap();
    assert_eq!(outcome.stage, ReviewStage::Ig);
    assert_eq!(outcome.decision, Decision::Approved);
    assert_eq!(outcome.reviewer, "iris");
    assert_eq!(outcome.reviewer_email, "iris@example.org");
    assert_eq!(outcome.decided_at, "2024-05-03T12:00:00.000Z");

    let events = svc.audit.events();
    assert_eq!(events.len(), 1);
    assert_eq!(kind(&events[0]), ("decision", "success"));
    assert_eq!(events[0].actor, "iris");
    assert!(!serde_json::to_string(&events).unwrap().contains(TOKEN));
}

#[tokio::test]
async fn when_the_same_handle_is_used_twice_then_the_second_is_stale() {
    let svc = service(vec![parked_ig()]);
    ig_decides(&svc, "iris", "APPROVED").await.unwrap();
    let err = ig_decides(&svc, "ian", "REJECTED").await.unwrap_err();
    assert_eq!(err, EgressError::Conflict(STALE_REQUEST_MESSAGE.into()));
    assert_eq!(svc.workflow.completed().len(), 1);
    assert_eq!(
        svc.store.item("req-1").unwrap().ig_reviewer_1_decision,
        Some(Decision::Approved)
    );
    let refused = svc
        .audit
        .events()
        .into_iter()
        .filter(|e| e.outcome == "refused")
        .count();
    assert_eq!(refused, 1, "the refusal is audited");
}

/// The request as a claim by iris at `at` left it when its call died before delivering.
fn claimed_by_iris_and_stalled(at: &str) -> EgressRequest {
    let mut item = parked_ig();
    item.egress_status = EgressStatus::IgApproved;
    item.ig_reviewer_1_name = Some("iris@example.org".into());
    item.ig_reviewer_1_email = Some("iris@example.org".into());
    item.ig_reviewer_1_sub = Some("sub-iris".into());
    item.ig_reviewer_1_dt = Some(at.into());
    item.ig_reviewer_1_reason = Some("Aggregate results only".into());
    item.ig_reviewer_1_decision = Some(Decision::Approved);
    item.updated_by = "iris".into();
    item.updated_dt = at.into();
    item.review_handle = None;
    item.pending_task_token = item.sfn_task_token.take();
    item
}

#[tokio::test]
async fn when_a_claim_was_never_delivered_then_the_next_decision_delivers_it_and_is_refused() {
    // The call that claimed the stage died (its function timed out) between the claim and
    // SendTaskSuccess: the workflow would wait until the review timeout for a decision
    // already shown as made.
    let svc = service(vec![claimed_by_iris_and_stalled(
        "2024-05-03T11:58:00.000Z",
    )]);
    let err = ig_decides(&svc, "ian", "REJECTED").await.unwrap_err();
    assert_eq!(err, EgressError::Conflict(STALE_REQUEST_MESSAGE.into()));
    let completed = svc.workflow.completed();
    let outcome: ReviewOutcome = serde_json::from_str(&completed[TOKEN]).unwrap();
    assert_eq!(
        (
            outcome.decision,
            outcome.reviewer.as_str(),
            outcome.reviewer_sub.as_str()
        ),
        (Decision::Approved, "iris", "sub-iris"),
        "iris's decision is delivered, not ian's"
    );
    assert_eq!(outcome.decided_at, "2024-05-03T11:58:00.000Z");
    assert_eq!(svc.store.item("req-1").unwrap().pending_task_token, None);
    let decisions: Vec<_> = svc
        .audit
        .events()
        .into_iter()
        .filter(|e| e.action == "decision" && e.outcome == "success")
        .collect();
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].actor, "iris");
}

#[tokio::test]
async fn when_a_call_died_after_its_decision_was_delivered_and_audited_then_the_recovery_adds_no_second_decision(
) {
    // Delivered and audited, then the function timed out before it settled the token: the
    // next call finds the claim stalled and delivers again (no longer waiting).
    let svc = service_with(
        FailingWorkflowCallbacks::no_longer_waiting(),
        vec![claimed_by_iris_and_stalled("2024-05-03T11:58:00.000Z")],
        settings(),
    );
    let delivered = AuditEvent {
        egress_request_id: "req-1".into(),
        at: "2024-05-03T11:58:01.000Z".into(),
        actor: "iris".into(),
        actor_email: Some("iris@example.org".into()),
        action: "decision".into(),
        outcome: "success".into(),
        detail: json!({"stage": "IG", "decision": "APPROVED"}),
    };
    svc.audit
        .append_once(&delivered, &decision_once(ReviewStage::Ig))
        .await
        .unwrap();
    ig_decides(&svc, "ian", "REJECTED").await.unwrap_err();
    let decisions: Vec<_> = svc
        .audit
        .events()
        .into_iter()
        .filter(|e| e.action == "decision" && e.outcome != "refused")
        .collect();
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert_eq!(kind(&decisions[0]), ("decision", "success"));
    assert_eq!(svc.store.item("req-1").unwrap().pending_task_token, None);
}

#[tokio::test]
async fn when_a_claim_is_recent_then_its_own_call_is_left_to_deliver_it() {
    let svc = service(vec![claimed_by_iris_and_stalled(
        "2024-05-03T11:59:30.000Z",
    )]);
    ig_decides(&svc, "ian", "REJECTED").await.unwrap_err();
    assert!(svc.workflow.completed().is_empty());
    assert!(svc
        .store
        .item("req-1")
        .unwrap()
        .pending_task_token
        .is_some());
}

#[tokio::test]
async fn when_two_reviewers_decide_at_once_then_exactly_one_wins_and_the_workflow_resumes_once() {
    for _ in 0..20 {
        let svc = service(vec![parked_ig()]);
        // The directory lookup yields, so both calls read the parked request before
        // either claims it: the race is decided by the conditional claim alone.
        let (iris, ian) = (caller("iris", &[IG]), caller("ian", &[IG]));
        let (first, second) = tokio::join!(
            svc.update_request(&iris, ig_decision("APPROVED")),
            svc.update_request(&ian, ig_decision("REJECTED")),
        );
        let results = [first, second];
        let wins = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "{results:?}");
        let loser = results.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert_eq!(loser, &EgressError::Conflict(STALE_REQUEST_MESSAGE.into()));
        assert_eq!(svc.workflow.completed().len(), 1);
    }
}

#[tokio::test]
async fn when_the_workflow_cannot_be_resumed_then_the_claim_is_rolled_back() {
    let svc = failing(FailingWorkflowCallbacks::new(|| {
        EgressError::Transient("throttled".into())
    }));
    let err = ig_decides(&svc, "iris", "APPROVED").await.unwrap_err();
    assert_eq!(err.error_type(), "TransientError");
    assert!(err.to_string().contains("has not been recorded"), "{err}");
    assert_eq!(*svc.workflow.calls.lock().unwrap(), 1);

    let item = svc.store.item("req-1").unwrap();
    assert_eq!(
        item,
        parked_ig(),
        "the request is back as it was before the claim"
    );
    let last = svc.audit.events().pop().unwrap();
    assert_eq!(kind(&last), ("decision", "failed"));
    assert_eq!(last.detail["claim_released"], true);
}

#[tokio::test]
async fn when_the_review_task_has_expired_then_the_caller_is_told_to_refresh() {
    let svc = failing(FailingWorkflowCallbacks::no_longer_waiting());
    let err = ig_decides(&svc, "iris", "APPROVED").await.unwrap_err();
    assert_eq!(err.error_type(), "Conflict");
    assert!(err.to_string().contains("refresh"), "{err}");
    // The task may already have taken this decision (an SDK retry after a delivered
    // attempt): the claim stands, and the audit says the outcome is unconfirmed.
    let item = svc.store.item("req-1").unwrap();
    assert_eq!(item.egress_status, EgressStatus::IgApproved);
    assert_eq!(item.ig_reviewer_1_decision, Some(Decision::Approved));
    assert!(item.sfn_task_token.is_none() && item.review_handle.is_none());
    let last = svc.audit.events().pop().unwrap();
    assert_eq!(kind(&last), ("decision", "unknown"));
    assert_eq!(last.detail["claim_released"], false);
}

#[tokio::test]
async fn when_the_request_names_no_submitter_email_then_nobody_may_decide_it() {
    let mut request = parked_ig();
    request.requested_by_email = None;
    request.store_owner_email = None;
    let svc = service(vec![request.clone()]);
    let err = ig_decides(&svc, "iris", "APPROVED").await.unwrap_err();
    assert_eq!(err.error_type(), "Forbidden");
    assert!(err.to_string().contains("separation of duties"), "{err}");
    assert_eq!(svc.store.item("req-1").unwrap(), request);
    assert!(svc.workflow.completed().is_empty());
}

#[tokio::test]
async fn when_the_submitter_decides_then_it_is_forbidden_and_audited() {
    let svc = service(vec![parked_ig()]);
    let err = ig_decides(&svc, "res", "APPROVED").await.unwrap_err();
    assert_eq!(err.error_type(), "Forbidden");
    assert_eq!(svc.store.item("req-1").unwrap(), parked_ig());
    assert!(svc.workflow.completed().is_empty());
    let events = svc.audit.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].outcome, "refused");
    assert_eq!(events[0].actor, "res");
    assert_eq!(events[0].detail["error_type"], "Forbidden");
}

#[tokio::test]
async fn when_the_token_user_is_not_in_the_pool_then_it_is_forbidden() {
    let svc = service(vec![parked_ig()]);
    let err = ig_decides(&svc, "mallory", "APPROVED").await.unwrap_err();
    assert_eq!(err.error_type(), "Forbidden");
    assert!(svc.workflow.completed().is_empty());
}

#[tokio::test]
async fn when_the_request_does_not_exist_then_not_found() {
    let svc = service(vec![]);
    let err = ig_decides(&svc, "iris", "APPROVED").await.unwrap_err();
    assert_eq!(err.error_type(), "NotFound");
}

fn approved_request(downloads: u32) -> EgressRequest {
    approved(sample_request("req-1", ApprovalMode::Single), downloads)
}

fn download_input(count: &str) -> DownloadDataInput {
    DownloadDataInput {
        egress_request_id: "req-1".into(),
        workspace_id: Some("someone-elses-workspace".into()),
        download_count: Some(serde_json::json!(count)),
    }
}

#[tokio::test]
async fn when_downloading_then_the_stored_archive_is_presigned_and_counted() {
    let svc = service(vec![approved_request(0)]);
    let payload = downloads(&svc, "iris").await.unwrap();
    assert!(payload
        .presign_url
        .contains("approved_egress/ws-1/req-1/egress_data.zip"));
    assert_eq!(
        svc.links.issued(),
        vec![(
            "datalake".to_string(),
            "approved_egress/ws-1/req-1/egress_data.zip".to_string(),
            Duration::from_secs(300)
        )],
        "the client's workspace id is ignored and the expiry is the configured one"
    );
    assert_eq!(svc.store.item("req-1").unwrap().download_count, 1);
    let event = svc.audit.events().pop().unwrap();
    assert_eq!(kind(&event), ("download", "success"));
    assert_eq!(event.detail["download_count"], 1);
    assert!(
        !serde_json::to_string(&event)
            .unwrap()
            .contains("X-Amz-Signature"),
        "the URL is never audited"
    );
}

#[tokio::test]
async fn when_the_client_sends_a_low_count_then_the_server_count_still_limits() {
    let svc = service(vec![approved_request(0)]);
    for _ in 0..2 {
        downloads(&svc, "iris").await.unwrap();
    }
    let err = downloads(&svc, "iris").await.unwrap_err();
    assert_eq!(err, EgressError::Conflict(DOWNLOAD_LIMIT_MESSAGE.into()));
    assert_eq!(svc.store.item("req-1").unwrap().download_count, 2);
    assert_eq!(
        svc.links.issued().len(),
        2,
        "no URL is even presigned past the limit"
    );
    assert_eq!(svc.audit.events().last().unwrap().outcome, "refused");
}

#[tokio::test]
async fn when_the_configured_expiry_is_too_long_then_it_is_capped() {
    let mut long = settings();
    long.url_expiry = Duration::from_secs(86_400);
    let svc = service_with(
        FakeWorkflowCallbacks::default(),
        vec![approved_request(0)],
        long,
    );
    downloads(&svc, "iris").await.unwrap();
    assert_eq!(svc.links.issued()[0].2, MAX_URL_EXPIRY);
}

#[tokio::test]
async fn when_an_unapproved_request_is_downloaded_then_it_is_refused() {
    let svc = service(vec![parked_ig()]);
    let err = downloads(&svc, "iris").await.unwrap_err();
    assert_eq!(err.error_type(), "Conflict");
    assert!(svc.links.issued().is_empty());
}

#[tokio::test]
async fn when_listing_then_reviewers_see_handles_and_outsiders_are_refused() {
    let mut older = approved_request(0);
    older.egress_request_id = "req-0".into();
    older.requested_dt = "2024-04-01T00:00:00.000Z".into();
    let svc = service(vec![older, parked_ig()]);
    let listed = rita_lists(&svc, json!({})).await.unwrap();
    let ids: Vec<&str> = listed
        .items
        .iter()
        .map(|v| v["egress_request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["req-1", "req-0"], "newest first");
    assert_eq!(listed.items[0]["task_token"], HANDLE);
    assert_eq!(
        listed.items[0],
        serde_json::to_value(request_view(&parked_ig())).unwrap(),
        "every field when no selection is given"
    );
    assert!(!serde_json::to_string(&listed.items)
        .unwrap()
        .contains(TOKEN));

    let err = svc
        .list_requests(&caller("eve", &[]), &json!({}), None)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "Forbidden");
}

/// `n` decided requests, one submitted per minute, and one parked at IG submitted first.
fn many(n: usize) -> Vec<EgressRequest> {
    let mut requests: Vec<EgressRequest> = (0..n)
        .map(|i| {
            let mut r = approved_request(0);
            r.egress_request_id = format!("req-{i:05}");
            r.requested_dt = format!("2024-05-01T{:02}:{:02}:00.000Z", i / 60 % 24, i % 60);
            r
        })
        .collect();
    let mut waiting = parked_ig();
    waiting.requested_dt = "2024-04-01T00:00:00.000Z".into();
    requests.push(waiting);
    requests
}

#[tokio::test]
async fn when_a_request_awaits_the_callers_group_then_it_comes_first_and_pages_follow_on() {
    let svc = service(many(30));
    let page = |next: Option<&str>| {
        let args = match next {
            None => json!({"limit": 10}),
            Some(id) => json!({"limit": 10, "nextToken": id}),
        };
        let svc = &svc;
        async move {
            svc.list_requests(&caller("iris", &[IG]), &args, None)
                .await
                .unwrap()
        }
    };
    let first = page(None).await;
    let ids = |l: &Listed| -> Vec<String> {
        l.items
            .iter()
            .map(|v| v["egress_request_id"].as_str().unwrap().to_string())
            .collect()
    };
    let first_ids = ids(&first);
    assert_eq!(
        first_ids[0], "req-1",
        "awaiting IG first, though the oldest"
    );
    assert_eq!(first_ids[1], "req-00029", "then newest first");
    assert_eq!(first_ids.len(), 10);
    assert!(first.read <= 12, "read {} items for 10", first.read);
    let mut seen: Vec<String> = first_ids.clone();
    let mut next = first_ids.last().cloned();
    loop {
        let listed = page(next.as_deref()).await;
        if listed.items.is_empty() {
            break;
        }
        let page_ids = ids(&listed);
        next = page_ids.last().cloned();
        seen.extend(page_ids);
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(seen.len(), 31, "every request once: {seen:?}");
    assert_eq!(unique.len(), 31);
}

#[tokio::test]
async fn when_fields_are_selected_then_only_those_are_returned() {
    let svc = service(many(3));
    let selection = ["egress_request_id".to_string(), "egress_status".to_string()];
    let listed = svc
        .list_requests(&caller("rita", &[RIT]), &json!({}), Some(&selection))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 4);
    for item in &listed.items {
        let fields: Vec<&String> = item.as_object().unwrap().keys().collect();
        assert_eq!(fields, vec!["egress_request_id", "egress_status"]);
    }
    assert_eq!(
        listed.bytes,
        serde_json::to_string(&listed.items).unwrap().len()
    );
}

#[tokio::test]
async fn when_a_page_would_pass_the_byte_cap_then_it_ends_before_it() {
    let mut requests = many(0);
    for i in 0..40 {
        let mut r = approved_request(0);
        r.egress_request_id = format!("big-{i:02}");
        r.ig_reviewer_1_reason = Some("x".repeat(200 * 1024));
        requests.push(r);
    }
    let svc = service(requests);
    let listed = rita_lists(&svc, json!({"limit": 1000})).await.unwrap();
    assert!(listed.truncated);
    assert!(listed.bytes <= crate::domain::listing::MAX_LIST_BYTES);
    assert!(listed.items.len() < 41 && !listed.items.is_empty());
}

#[tokio::test]
async fn when_the_next_token_is_older_than_the_window_then_the_page_is_empty() {
    let mut old = approved_request(0);
    old.egress_request_id = "req-old".into();
    old.requested_dt = "2020-01-01T00:00:00.000Z".into();
    let mut svc = service(vec![old, parked_ig()]);
    svc.settings.list_max_age_days = 30;
    let listed = rita_lists(&svc, json!({"nextToken": "req-old"}))
        .await
        .unwrap();
    assert!(listed.items.is_empty());
    assert_eq!(listed.read, 0);
    let first = rita_lists(&svc, json!({})).await.unwrap();
    assert_eq!(
        first.items.len(),
        1,
        "the old request is outside the window"
    );
}

#[tokio::test]
async fn when_the_next_token_names_no_request_then_it_is_a_validation_error() {
    let svc = service(many(2));
    let err = rita_lists(&svc, json!({"nextToken": "nope"}))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "ValidationError");
}

#[tokio::test]
async fn when_dispatching_then_each_field_reaches_its_operation() {
    let svc = service(vec![parked_ig()]);
    let event = |field: &str, arguments: serde_json::Value| ApiEvent {
        field: field.into(),
        identity: caller("iris", &[IG]),
        arguments,
        selection: None,
    };
    let listed = svc
        .dispatch(event("listRequests", json!({})))
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let updated = svc
        .dispatch(event(
            "updateRequest",
            json!({"request": ig_decision("APPROVED")}),
        ))
        .await
        .unwrap();
    assert_eq!(updated, json!(UPDATE_SUCCESS_MESSAGE));
    let err = svc
        .dispatch(event("deleteRequest", json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "ValidationError");
    let err = svc
        .dispatch(event(
            "updateRequest",
            json!({"request": {"task_token": 1}}),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "ValidationError");
}

const JANE: &str = "corp-saml_jane@example.org";

/// A SAML user as Cognito creates them: `email_verified` false, `identities` naming the
/// provider, the IdP's groups in `custom:idp_groups`.
fn federated_user(idp_groups: &str, identities: &str) -> DirectoryUser {
    DirectoryUser {
        sub: format!("sub-{JANE}"),
        email: Some("jane@example.org".into()),
        email_verified: Some(false),
        name: Some("Jane Doe".into()),
        enabled: true,
        identities: Some(identities.into()),
        custom_attributes: [("custom:idp_groups".to_string(), idp_groups.to_string())].into(),
    }
}

const JANE_IDENTITIES: &str = r#"[{"userId":"jane@example.org","providerName":"corp-saml","providerType":"SAML","issuer":null,"primary":true,"dateCreated":1714636800000}]"#;

#[tokio::test]
async fn when_a_federated_reviewer_with_an_unverified_email_decides_then_it_is_recorded() {
    let svc = service(vec![parked_ig()]);
    svc.directory.add_provider("corp-saml");
    svc.directory
        .put(JANE, federated_user("[all-staff, tre-ig]", JANE_IDENTITIES));
    ig_decides(&svc, JANE, "APPROVED").await.unwrap();
    let item = svc.store.item("req-1").unwrap();
    assert_eq!(item.egress_status, EgressStatus::IgApproved);
    assert_eq!(
        item.ig_reviewer_1_email.as_deref(),
        Some("jane@example.org")
    );
    assert_eq!(item.ig_reviewer_1_name.as_deref(), Some("Jane Doe"));
}

#[tokio::test]
async fn when_a_federated_users_provider_is_not_configured_or_identities_are_malformed_then_forbidden(
) {
    for (identities, configured, expect) in [
        // Linked to a provider the pool does not have: a user of the pool, unverified.
        (JANE_IDENTITIES, false, "not verified"),
        ("not json", true, "federated identity"),
        (
            r#"[{"providerName":"corp-saml"}]"#,
            true,
            "federated identity",
        ),
    ] {
        let svc = service(vec![parked_ig()]);
        if configured {
            svc.directory.add_provider("corp-saml");
        }
        svc.directory
            .put(JANE, federated_user("tre-ig", identities));
        svc.directory.set_groups(JANE, &[IG]);
        let err = ig_decides(&svc, JANE, "APPROVED").await.unwrap_err();
        assert_eq!(err.error_type(), "Forbidden", "{identities}");
        assert!(err.to_string().contains(expect), "{identities}: {err}");
        assert_eq!(svc.store.item("req-1").unwrap(), parked_ig());
    }
}

#[tokio::test]
async fn when_a_reviewer_was_removed_from_the_group_in_the_pool_then_their_token_no_longer_decides()
{
    let svc = service(vec![parked_ig()]);
    // AdminRemoveUserFromGroup: the token still says IG for up to an hour.
    svc.directory.set_groups("iris", &[]);
    let err = ig_decides(&svc, "iris", "APPROVED").await.unwrap_err();
    assert_eq!(err.error_type(), "Forbidden");
    assert_eq!(svc.store.item("req-1").unwrap(), parked_ig());
    assert!(svc.workflow.completed().is_empty());
    assert_eq!(svc.audit.events()[0].outcome, "refused");
}

#[tokio::test]
async fn when_a_reviewer_was_removed_from_the_group_in_the_pool_then_they_cannot_download() {
    let svc = service(vec![approved_request(0)]);
    svc.directory.set_groups("iris", &["SomeOtherGroup"]);
    let err = downloads(&svc, "iris").await.unwrap_err();
    assert_eq!(err.error_type(), "Forbidden");
    assert!(svc.links.issued().is_empty());
    assert_eq!(svc.store.item("req-1").unwrap().download_count, 0);
}

#[tokio::test]
async fn when_a_federated_reviewers_idp_groups_no_longer_map_then_their_token_no_longer_decides() {
    let svc = service(vec![parked_ig()]);
    svc.directory.add_provider("corp-saml");
    // Pool group membership is not what grants a federated user anything.
    svc.directory.set_groups(JANE, &[IG]);
    for groups in ["[all-staff, tre-ig-old]", "x, tre-ig", ""] {
        svc.directory
            .put(JANE, federated_user(groups, JANE_IDENTITIES));
        let err = ig_decides(&svc, JANE, "APPROVED").await.unwrap_err();
        assert_eq!(err.error_type(), "Forbidden", "{groups}");
    }
    assert_eq!(svc.store.item("req-1").unwrap(), parked_ig());
}

#[tokio::test]
async fn when_a_reviewer_renamed_themself_then_the_decision_records_the_pools_name_not_the_clients()
{
    let svc = service(vec![parked_ig()]);
    let mut iris = svc.directory.users.lock().unwrap()["iris"].clone();
    iris.name = Some("Iris Reviewer".into());
    svc.directory.put("iris", iris);
    let mut token = caller("iris", &[IG]);
    // A forged `name` claim cannot come through a verified token; the client's fields are
    // ignored and the pool's record wins over the token's.
    token.name = Some("Ivy Governance (IG lead)".into());
    let mut input = ig_decision("APPROVED");
    input.ig_reviewer_1_name = Some("Ivy Governance (IG lead)".into());
    svc.update_request(&token, input).await.unwrap();
    let item = svc.store.item("req-1").unwrap();
    assert_eq!(item.ig_reviewer_1_name.as_deref(), Some("Iris Reviewer"));
    let outcome: ReviewOutcome = serde_json::from_str(&svc.workflow.completed()[TOKEN]).unwrap();
    assert_eq!(outcome.reviewer_name, "Iris Reviewer");
}

#[tokio::test]
async fn when_research_it_decides_a_final_single_approval_then_it_needs_no_further_review() {
    let mut request = parked_ig();
    request.approval_mode = ApprovalMode::Single;
    request.is_single_approval_enabled = true;
    let svc = service(vec![request]);
    ig_decides(&svc, "iris", "APPROVED").await.unwrap();
    // What the web app sends for a RIT member: the RIT fields, the (now empty) handle.
    let input = UpdateRequestInput {
        egress_request_id: "req-1".into(),
        task_token: String::new(),
        rit_reviewer_2_decision: Some("APPROVED".into()),
        rit_reviewer_2_reason: Some("Looks fine to me as well".into()),
        ..Default::default()
    };
    let err = svc
        .update_request(&caller("rita", &[RIT]), input)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        EgressError::Conflict(APPROVED_NO_REVIEW_MESSAGE.into())
    );
    assert_eq!(svc.workflow.completed().len(), 1);
}
