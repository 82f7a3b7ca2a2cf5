//! End-to-end tests of the reviewer API over GraphQL with real Cognito tokens (feature
//! `e2e-api`; run by `make test-e2e-api`, which starts the local stack and the API).
//!
//! Requests are submitted as SWB does and reach the review stages through the real
//! workflow; reviewers sign in to the local Cognito (moto) and call the API exactly as the
//! TREEHOOSE web app does (its documents, its variables, the access token in
//! `Authorization`). Each test checks what the API answers and what it stored.
#![cfg(feature = "e2e-api")]

use std::sync::Barrier;

use e2e_tests::fixture::{parked, setup, stored, submit, succeeded};
use e2e_tests::graphql::{
    claims_of, mint_token, moto_signing_key, web_app_decision, web_app_download, Api, ApiUser,
    DOWNLOAD_DATA, LIST_REQUESTS, UPDATE_REQUEST,
};
use e2e_tests::inspect;
use e2e_tests::stack::http_get;
use e2e_tests::swb::Mode;
use serde_json::{json, Value};
use shared::model::{Decision, EgressStatus, ReviewStage};

const STALE: &str =
    "Another user may have updated this request. Please refresh to get the latest data";
const LIMIT: &str = "Download limit exceeded. Please contact an administrator";
const REASON: &str = "Aggregate tables only; nothing identifying.";

fn token(api: &Api, role: &str) -> (ApiUser, String) {
    let user = api.user(role).expect("seeded").clone();
    let tokens = api.sign_in(&user).expect("signs in");
    (user, tokens.access)
}

fn decide(api: &Api, token: &str, request: Value) -> e2e_tests::graphql::Answer {
    api.call(Some(token), UPDATE_REQUEST, json!({ "request": request }))
        .expect("the API answers")
}

/// Downloads as the web app does, sending `request` as its variables.
fn download(api: &Api, token: &str, request: &Value) -> e2e_tests::graphql::Answer {
    api.call(Some(token), DOWNLOAD_DATA, json!({ "request": request }))
        .expect("the API answers")
}

/// What the web app sends when `who` approves `row` at `stage` with [`REASON`].
fn approval(row: &Value, stage: ReviewStage, who: &ApiUser) -> Value {
    web_app_decision(row, stage, who, Decision::Approved, REASON)
}

fn refused(answer: &e2e_tests::graphql::Answer) -> String {
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert!(answer.data("updateRequest").is_null(), "{:?}", answer.body);
    answer.error().expect("an error is returned")
}

#[tokio::test]
async fn when_the_web_app_lists_then_all_29_fields_are_strings_and_task_token_is_only_a_handle() {
    let (stack, api) = setup().await;
    let s = submit(&stack, Mode::Single);
    let item = parked(&stack, &s.egress_request_id, ReviewStage::Ig).await;
    let (_, access) = token(&api, "ig");

    let answer = api.call(Some(&access), LIST_REQUESTS, json!({})).unwrap();
    assert_eq!(answer.error(), None, "{:?}", answer.body);
    let text = answer.body.to_string();
    let sfn_token = item
        .sfn_task_token
        .clone()
        .expect("token stored server-side");
    assert!(
        !text.contains(&sfn_token),
        "the Step Functions token never leaves the backend"
    );

    let row = api.row(&access, &s.egress_request_id).unwrap();
    let fields = row.as_object().unwrap();
    assert_eq!(fields.len(), 29);
    assert!(
        fields.values().all(|v| v.is_string() || v.is_null()),
        "every field is a string (or null): {row}"
    );
    assert_eq!(
        row["task_token"],
        item.review_handle.clone().unwrap().as_str()
    );
    assert_ne!(row["task_token"], sfn_token.as_str());
    assert_eq!(
        row["download_count"], "0",
        "the web app echoes it as a String!"
    );
    assert_eq!(row["is_single_approval_enabled"], "true");
    assert_eq!(row["s3_swb_object_metadata_version"], "1");
    assert_eq!(row["egress_status"], "PROCESSING");
    assert_eq!(
        row["current_reviewer_group"],
        stack.outputs.project.ig_reviewer_group.as_str()
    );

    // The ID token is accepted as well (AppSync accepts both kinds of user-pool token).
    let id_token = api.sign_in(api.user("rit").unwrap()).unwrap().id;
    assert!(api.row(&id_token, &s.egress_request_id).is_ok());
}

#[tokio::test]
async fn when_a_token_is_missing_forged_expired_or_for_another_client_then_it_is_refused() {
    let (stack, api) = setup().await;
    let (_, access) = token(&api, "ig");
    let key = moto_signing_key(&stack.outputs.python).expect("moto's key");
    let real = claims_of(&access).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let with = |changes: Value| {
        let mut c = real.clone();
        for (k, v) in changes.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };

    // Control: a token minted with moto's key and unchanged claims is accepted, so each
    // refusal below is for the claim that was changed.
    let control = mint_token(&key, &real).unwrap();
    assert_eq!(
        api.call(Some(&control), LIST_REQUESTS, json!({}))
            .unwrap()
            .status,
        200
    );

    let parts: Vec<&str> = access.split('.').collect();
    let mut escalated = real.clone();
    escalated["cognito:groups"] = json!(["ig-reviewers", "rit-reviewers", "admins"]);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64url(&escalated.to_string()),
        parts[2]
    );
    let unsigned = format!(
        "{}.{}.",
        b64url(r#"{"alg":"none","kid":"dummy"}"#),
        parts[1]
    );
    let cases = [
        ("no token", None, "Valid authorization header not provided."),
        ("tampered groups", Some(tampered), "Valid authorization header not provided."),
        ("alg none", Some(unsigned), "Valid authorization header not provided."),
        (
            "expired",
            Some(mint_token(&key, &with(json!({"iat": now - 7200, "exp": now - 3600}))).unwrap()),
            "Token has expired.",
        ),
        (
            "another client",
            Some(mint_token(&key, &with(json!({"client_id": "some-other-app"}))).unwrap()),
            "Valid authorization header not provided.",
        ),
        (
            "another pool",
            Some(
                mint_token(
                    &key,
                    &with(json!({"iss": format!("https://cognito-idp.{}.amazonaws.com/{}_Other", api.region, api.region)})),
                )
                .unwrap(),
            ),
            "Valid authorization header not provided.",
        ),
        (
            "refresh token use",
            Some(mint_token(&key, &with(json!({"token_use": "refresh"}))).unwrap()),
            "Valid authorization header not provided.",
        ),
    ];
    for (what, bad, message) in cases {
        let answer = api.call(bad.as_deref(), LIST_REQUESTS, json!({})).unwrap();
        assert_eq!(answer.status, 401, "{what}: {:?}", answer.body);
        assert_eq!(
            answer.error_type().as_deref(),
            Some("UnauthorizedException"),
            "{what}"
        );
        assert_eq!(answer.error().as_deref(), Some(message), "{what}");
    }
}

fn b64url(text: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn when_an_outsider_calls_then_the_groups_gate_refuses_before_any_data() {
    let (_, api) = setup().await;
    let (_, access) = token(&api, "outsider");
    let answer = api.call(Some(&access), LIST_REQUESTS, json!({})).unwrap();
    assert!(answer.data("listRequests").is_null(), "{:?}", answer.body);
    assert_eq!(answer.error_type().as_deref(), Some("Unauthorized"));
}

#[tokio::test]
async fn when_research_it_acts_at_the_ig_stage_or_anyone_downloads_early_then_it_is_refused() {
    let (stack, api) = setup().await;
    let s = submit(&stack, Mode::Dual);
    let before = parked(&stack, &s.egress_request_id, ReviewStage::Ig).await;
    let (rit, access) = token(&api, "rit");
    let row = api.row(&access, &s.egress_request_id).unwrap();

    for as_stage in [ReviewStage::Rit, ReviewStage::Ig] {
        let request = approval(&row, as_stage, &rit);
        let error = refused(&decide(&api, &access, request));
        assert!(
            error.contains("awaiting Information Governance review"),
            "{error}"
        );
    }
    let (_, ig_access) = token(&api, "ig");
    let early = download(&api, &ig_access, &web_app_download(&row));
    assert!(
        early
            .error()
            .unwrap_or_default()
            .contains("Only approved requests"),
        "{:?}",
        early.body
    );

    let after = stored(&stack, &s.egress_request_id).await;
    assert_eq!(after.egress_status, EgressStatus::Processing);
    assert_eq!(
        after.review_handle, before.review_handle,
        "nothing was claimed"
    );
    assert_eq!(after.download_count, 0);
}

#[tokio::test]
async fn when_the_submitter_approves_then_it_is_forbidden_and_audited() {
    let (stack, api) = setup().await;
    let s = submit(&stack, Mode::Single);
    parked(&stack, &s.egress_request_id, ReviewStage::Ig).await;
    let (researcher, access) = token(&api, "researcher");
    assert_eq!(
        researcher.email, s.submitter.email,
        "the seeded researcher submitted it"
    );
    let row = api.row(&access, &s.egress_request_id).unwrap();

    let request = approval(&row, ReviewStage::Ig, &researcher);
    let error = refused(&decide(&api, &access, request));
    assert!(error.contains("You submitted this request"), "{error}");
    assert_eq!(
        stored(&stack, &s.egress_request_id).await.egress_status,
        EgressStatus::Processing
    );
    let trail = inspect::audit_trail(&stack, &s.egress_request_id)
        .await
        .unwrap();
    assert!(
        trail
            .iter()
            .any(|(action, outcome, actor)| action == "decision"
                && outcome == "refused"
                && actor == &researcher.username),
        "the refusal is audited: {trail:?}"
    );
}

#[tokio::test]
async fn when_one_person_tries_both_stages_and_forges_fields_then_only_server_values_count() {
    let (stack, api) = setup().await;
    let s = submit(&stack, Mode::Dual);
    parked(&stack, &s.egress_request_id, ReviewStage::Ig).await;
    let (both, both_access) = token(&api, "both");
    let ig_row = api.row(&both_access, &s.egress_request_id).unwrap();

    // IG stage: the web app sends its own name, e-mail and a toUTCString() date; forge them.
    let mut request = approval(&ig_row, ReviewStage::Ig, &both);
    request["ig_reviewer_1_email"] = json!("someone.else@tre.example.org");
    request["ig_reviewer_1_name"] = json!("Someone Else");
    request["ig_reviewer_1_dt"] = json!("Wed, 01 Jan 2020 00:00:00 GMT");
    let answer = decide(&api, &both_access, request);
    assert_eq!(answer.error(), None, "{:?}", answer.body);
    assert_eq!(answer.data("updateRequest"), "Request updated successfully");

    let at_rit = parked(&stack, &s.egress_request_id, ReviewStage::Rit).await;
    assert_eq!(
        at_rit.ig_reviewer_1_email.as_deref(),
        Some(both.email.as_str())
    );
    assert_eq!(at_rit.ig_reviewer_1_sub.as_deref(), Some(both.sub.as_str()));
    let dt = at_rit.ig_reviewer_1_dt.clone().unwrap();
    assert!(
        dt.starts_with("20") && dt.ends_with('Z') && !dt.starts_with("2020-01-01"),
        "server time: {dt}"
    );

    // RIT stage: the same person is refused, whatever fields they send.
    let rit_row = api.row(&both_access, &s.egress_request_id).unwrap();
    assert_ne!(
        rit_row["task_token"], ig_row["task_token"],
        "a fresh handle per stage"
    );
    assert_ne!(
        rit_row["task_token"],
        at_rit.sfn_task_token.clone().unwrap().as_str()
    );
    let request = approval(&rit_row, ReviewStage::Rit, &both);
    let error = refused(&decide(&api, &both_access, request));
    assert!(error.contains("a different person"), "{error}");

    // The first stage's handle is stale at the second stage.
    let (rit, rit_access) = token(&api, "rit");
    let stale = approval(&ig_row, ReviewStage::Rit, &rit);
    assert_eq!(refused(&decide(&api, &rit_access, stale)), STALE);

    // A different RIT reviewer approves; the forged first-stage decision is ignored.
    let mut request = approval(&rit_row, ReviewStage::Rit, &rit);
    request["ig_reviewer_1_decision"] = json!("REJECTED");
    let answer = decide(&api, &rit_access, request);
    assert_eq!(answer.error(), None, "{:?}", answer.body);
    succeeded(&stack, &s.egress_request_id).await;
    let done = stored(&stack, &s.egress_request_id).await;
    assert_eq!(done.egress_status, EgressStatus::RitApproved);
    assert_eq!(done.ig_reviewer_1_decision, Some(Decision::Approved));
    assert_eq!(
        done.rit_reviewer_2_email.as_deref(),
        Some(rit.email.as_str())
    );
    assert_eq!(done.sfn_task_token, None);
}

#[tokio::test]
async fn when_the_web_app_downloads_then_the_server_counts_and_the_client_count_is_ignored() {
    let (stack, api) = setup().await;
    let s = submit(&stack, Mode::Single);
    parked(&stack, &s.egress_request_id, ReviewStage::Ig).await;
    let (ig, access) = token(&api, "ig");
    let row = api.row(&access, &s.egress_request_id).unwrap();
    let answer = decide(&api, &access, approval(&row, ReviewStage::Ig, &ig));
    assert_eq!(answer.error(), None, "{:?}", answer.body);
    succeeded(&stack, &s.egress_request_id).await;

    let row = api.row(&access, &s.egress_request_id).unwrap();
    assert_eq!(row["download_count"], "0");
    let max = stack.outputs.project.max_downloads;
    // The client keeps echoing the count it first saw ("0") and a wrong workspace.
    let mut variables = web_app_download(&row);
    variables["workspace_id"] = json!("another-workspace");
    for n in 1..=max {
        let answer = download(&api, &access, &variables);
        assert_eq!(answer.error(), None, "download {n}: {:?}", answer.body);
        let url = answer.data("downloadData")["presign_url"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(url.contains(&format!(
            "X-Amz-Expires={}",
            stack.outputs.project.download_url_expiry_seconds
        )));
        assert!(url.contains(&format!(
            "approved_egress/{}/{}/",
            s.workspace_id, s.egress_request_id
        )));
        let zip = http_get(&url).expect("the presigned URL serves the archive");
        assert!(zip.starts_with(b"PK"), "a zip archive");
        assert_eq!(
            api.row(&access, &s.egress_request_id).unwrap()["download_count"],
            n.to_string().as_str()
        );
    }
    let over = download(&api, &access, &variables);
    assert!(over.data("downloadData").is_null());
    assert_eq!(over.error().as_deref(), Some(LIMIT));
    let (_, rit_access) = token(&api, "rit");
    let other = download(&api, &rit_access, &variables);
    assert_eq!(
        other.error().as_deref(),
        Some(LIMIT),
        "the limit is per request, not per reviewer"
    );
    assert_eq!(
        stored(&stack, &s.egress_request_id).await.download_count,
        max
    );
    let downloads = inspect::audit_trail(&stack, &s.egress_request_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|(action, _, _)| action == "download")
        .map(|(_, outcome, _)| outcome)
        .collect::<Vec<_>>();
    assert_eq!(
        downloads.iter().filter(|o| *o == "success").count(),
        max as usize
    );
    assert_eq!(downloads.iter().filter(|o| *o == "refused").count(), 2);
}

#[tokio::test]
async fn when_two_reviewers_decide_at_once_then_one_wins_and_the_workflow_resumes_once() {
    let (stack, api) = setup().await;
    let s = submit(&stack, Mode::Single);
    parked(&stack, &s.egress_request_id, ReviewStage::Ig).await;
    let (ig, ig_access) = token(&api, "ig");
    let (ig2, ig2_access) = token(&api, "ig2");
    let row = api.row(&ig_access, &s.egress_request_id).unwrap();
    let approve = approval(&row, ReviewStage::Ig, &ig);
    let reject = web_app_decision(&row, ReviewStage::Ig, &ig2, Decision::Rejected, REASON);

    let barrier = Barrier::new(2);
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| {
            barrier.wait();
            decide(&api, &ig_access, approve)
        });
        let b = scope.spawn(|| {
            barrier.wait();
            decide(&api, &ig2_access, reject)
        });
        (a.join().unwrap(), b.join().unwrap())
    });
    let outcomes = [a.error(), b.error()];
    assert_eq!(
        outcomes.iter().filter(|e| e.is_none()).count(),
        1,
        "exactly one wins: {outcomes:?}"
    );
    let loser = outcomes.iter().flatten().next().unwrap();
    assert_eq!(loser, STALE);
    let winner = if a.error().is_none() { &ig } else { &ig2 };

    succeeded(&stack, &s.egress_request_id).await;
    let events = inspect::history(&stack, &stack.outputs.execution_arn(&s.egress_request_id))
        .await
        .unwrap();
    let states = inspect::states_entered(&events);
    let resumed = states
        .iter()
        .filter(|s| *s == "SaveIgApproval" || *s == "SaveIgRejection")
        .count();
    assert_eq!(resumed, 1, "the workflow resumed once: {states:?}");
    let done = stored(&stack, &s.egress_request_id).await;
    assert_eq!(
        done.ig_reviewer_1_email.as_deref(),
        Some(winner.email.as_str())
    );
}
