//! End-to-end tests of the reviewer API's hardening (issue 8) over GraphQL with real Cognito
//! tokens: federated reviewers, group removal taking effect at once, and what the web app
//! shows (feature `e2e-api`; the stack and the API must be up: `make stack-up api-up`).
//!
//! Each test that changes a user creates its own, so the seeded users other tests sign in
//! with are never touched.
#![cfg(feature = "e2e")]
#![cfg(feature = "e2e-api")]

use aws_sdk_sfn::types::ExecutionStatus;
use e2e_tests::fixture::{parked, setup, stored, submit, TIMEOUT};
use e2e_tests::graphql::{
    uuid_like, web_app_decision, web_app_download, Answer, Api, ApiUser, DOWNLOAD_DATA,
    UPDATE_REQUEST,
};
use e2e_tests::inspect;
use e2e_tests::stack::Stack;
use e2e_tests::swb::Mode;
use serde_json::{json, Value};
use shared::model::{Decision, EgressStatus, ReviewStage};

const REASON: &str = "Aggregate tables only; nothing identifying.";
const NO_FURTHER_REVIEW: &str =
    "This request needs no further review: it was approved at its final stage.";

async fn finished(stack: &Stack, id: &str) {
    let end = inspect::execution_end(stack, &stack.outputs.execution_arn(id), TIMEOUT)
        .await
        .expect("the execution ends");
    assert_eq!(end.status, ExecutionStatus::Succeeded);
}

fn access_token(api: &Api, user: &ApiUser) -> String {
    api.sign_in(user).expect("signs in").access
}

fn decide(api: &Api, token: &str, request: Value) -> Answer {
    api.call(Some(token), UPDATE_REQUEST, json!({ "request": request }))
        .expect("the API answers")
}

fn download(api: &Api, token: &str, row: &Value) -> Answer {
    api.call(
        Some(token),
        DOWNLOAD_DATA,
        json!({ "request": web_app_download(row) }),
    )
    .expect("the API answers")
}

fn refused(answer: &Answer, field: &str) -> String {
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert!(answer.data(field).is_null(), "{:?}", answer.body);
    answer.error().expect("an error is returned")
}

fn ig_group(api: &Api) -> String {
    api.groups.get("ig").expect("the IG group").clone()
}

/// A fresh user of the pool itself in the IG group.
fn new_ig_reviewer(api: &Api, verified: bool) -> ApiUser {
    let email = format!("ig.{}@tre.example.org", &uuid_like()[..12]);
    let verified = if verified { "true" } else { "false" };
    api.create_user(
        &[
            ("email", &email),
            ("email_verified", verified),
            ("name", "Nia Native"),
        ],
        &[&ig_group(api)],
    )
    .expect("creates a user")
}

#[tokio::test]
async fn when_a_reviewer_is_removed_from_the_ig_group_then_their_live_token_no_longer_decides_or_downloads(
) {
    let (stack, api) = setup().await;
    let ig = ig_group(&api);
    let user = new_ig_reviewer(&api, true);
    let token = access_token(&api, &user);
    let s = submit(&stack, Mode::Single);
    let before = parked(&stack, &s.egress_request_id, ReviewStage::Ig).await;
    let row = api.row(&token, &s.egress_request_id).unwrap();

    // The token still says IG; the pool no longer does.
    api.remove_from_group(&user.username, &ig).unwrap();
    let request = web_app_decision(&row, ReviewStage::Ig, &user, Decision::Approved, REASON);
    let error = refused(&decide(&api, &token, request.clone()), "updateRequest");
    assert!(error.contains("not authorised"), "{error}");
    let after = stored(&stack, &s.egress_request_id).await;
    assert_eq!(after.egress_status, EgressStatus::Processing);
    assert_eq!(after.review_handle, before.review_handle, "nothing claimed");

    // Control: back in the group, the same token decides, so the refusal was the removal.
    api.add_to_group(&user.username, &ig).unwrap();
    let answer = decide(&api, &token, request);
    assert_eq!(answer.error(), None, "{:?}", answer.body);
    finished(&stack, &s.egress_request_id).await;

    let row = api.row(&token, &s.egress_request_id).unwrap();
    api.remove_from_group(&user.username, &ig).unwrap();
    let error = refused(&download(&api, &token, &row), "downloadData");
    assert!(error.contains("not authorised to download"), "{error}");
    assert_eq!(stored(&stack, &s.egress_request_id).await.download_count, 0);
}

#[tokio::test]
async fn when_a_federated_reviewer_with_an_unverified_email_approves_then_the_decision_is_recorded()
{
    let (stack, api) = setup().await;
    // The pool's identity provider (what the template creates when federation is on).
    let provider = format!("corp-{}", &uuid_like()[..8]);
    api.cognito(
        "CreateIdentityProvider",
        json!({
            "UserPoolId": api.user_pool_id,
            "ProviderName": provider,
            "ProviderType": "SAML",
            "ProviderDetails": {"MetadataURL": "https://idp.example.org/metadata.xml"},
            "AttributeMapping": {"email": "email", "custom:idp_groups": "groups"},
        }),
    )
    .expect("the local Cognito creates the identity provider");
    let email = format!("fed.{}@example.org", &uuid_like()[..12]);
    let identities = json!([{
        "userId": email, "providerName": provider, "providerType": "SAML",
        "issuer": null, "primary": true, "dateCreated": 1714636800000u64
    }])
    .to_string();
    // What Cognito writes for a SAML user: the IdP's e-mail unverified, the linked identity,
    // and a multi-valued SAML group attribute. moto cannot run the pre-token trigger, so the
    // token's IG group comes from pool membership; the API re-maps the IdP groups itself.
    let fed = api
        .create_user(
            &[
                ("email", &email),
                ("email_verified", "false"),
                ("name", "Fay Federated"),
                ("identities", &identities),
                ("custom:idp_groups", "[all-staff, tre-ig]"),
            ],
            &[&ig_group(&api)],
        )
        .expect("the local Cognito accepts the identities attribute");
    let native = new_ig_reviewer(&api, false);

    let s = submit(&stack, Mode::Single);
    parked(&stack, &s.egress_request_id, ReviewStage::Ig).await;

    // A user of the pool itself still needs a verified e-mail.
    let native_token = access_token(&api, &native);
    let row = api.row(&native_token, &s.egress_request_id).unwrap();
    let request = web_app_decision(&row, ReviewStage::Ig, &native, Decision::Approved, REASON);
    let error = refused(&decide(&api, &native_token, request), "updateRequest");
    assert!(error.contains("not verified"), "{error}");

    let token = access_token(&api, &fed);
    let row = api.row(&token, &s.egress_request_id).unwrap();
    let request = web_app_decision(&row, ReviewStage::Ig, &fed, Decision::Approved, REASON);
    let answer = decide(&api, &token, request);
    assert_eq!(answer.error(), None, "{:?}", answer.body);
    finished(&stack, &s.egress_request_id).await;
    let done = stored(&stack, &s.egress_request_id).await;
    assert_eq!(done.egress_status, EgressStatus::IgApproved);
    assert_eq!(done.ig_reviewer_1_email.as_deref(), Some(email.as_str()));
    assert_eq!(done.ig_reviewer_1_sub.as_deref(), Some(fed.sub.as_str()));
}

#[tokio::test]
async fn when_the_web_app_lists_and_rit_acts_on_a_final_single_approval_then_it_sees_emails_and_a_clear_refusal(
) {
    let (stack, api) = setup().await;
    let s = submit(&stack, Mode::Single);
    parked(&stack, &s.egress_request_id, ReviewStage::Ig).await;
    let ig = api.user("ig").unwrap().clone();
    let ig_token = access_token(&api, &ig);

    let row = api.row(&ig_token, &s.egress_request_id).unwrap();
    assert_eq!(
        row["requested_by"],
        s.submitter.email.as_str(),
        "the Researcher column shows the submitter's e-mail, not the SWB id"
    );
    assert_eq!(row["updated_by"], s.submitter.email.as_str());

    let request = web_app_decision(&row, ReviewStage::Ig, &ig, Decision::Approved, REASON);
    let answer = decide(&api, &ig_token, request);
    assert_eq!(answer.error(), None, "{:?}", answer.body);
    finished(&stack, &s.egress_request_id).await;

    // The web app shows Approve/Reject to Research IT on final single-approval requests.
    let rit = api.user("rit").unwrap().clone();
    let rit_token = access_token(&api, &rit);
    let row = api.row(&rit_token, &s.egress_request_id).unwrap();
    assert_eq!(row["egress_status"], "IGAPPROVED");
    assert_eq!(row["requested_by"], s.submitter.email.as_str());
    assert_eq!(
        row["updated_by"],
        ig.email.as_str(),
        "the last writer is shown by e-mail, not by Cognito username"
    );
    let request = web_app_decision(&row, ReviewStage::Rit, &rit, Decision::Approved, REASON);
    let error = refused(&decide(&api, &rit_token, request), "updateRequest");
    assert_eq!(error, NO_FURTHER_REVIEW);

    // The store keeps the ids.
    let done = stored(&stack, &s.egress_request_id).await;
    assert_eq!(done.requested_by, s.submitter.id);
    assert_eq!(done.egress_status, EgressStatus::IgApproved);
}
