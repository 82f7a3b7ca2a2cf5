//! End-to-end checks of what the local stack must do as AWS does for the web app and its
//! users (issue 8): CORS on the GraphQL endpoint, so a browser copy of the web app can be
//! pointed at it, and Cognito's app-client write permissions, so a reviewer cannot rename
//! themself and have the new name recorded on a decision (defect 7). moto's Cognito does not
//! check write permissions; the edge router does, against the local web client, which
//! mirrors the template's.
//!
//! Run by `make test-e2e` (features `e2e` and `e2e-api`), on the stack and API it starts.
#![cfg(all(feature = "e2e", feature = "e2e-api"))]

use aws_sdk_sfn::types::ExecutionStatus;
use e2e_tests::fixture::{setup, TIMEOUT};
use e2e_tests::graphql::{web_app_decision, Api, UPDATE_REQUEST};
use e2e_tests::inspect;
use e2e_tests::swb::{self, Mode, Submit};
use serde_json::{json, Value};
use shared::model::{Decision, ReviewStage};

/// Where a browser copy of the web app would be served from.
const ORIGIN: &str = "http://localhost:3000";
/// The name the outside review's reviewer gave themself.
const IMPERSONATION: &str = "Ivy Governance (IG lead)";

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn header(response: &ureq::http::Response<ureq::Body>, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn listed(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|v| v.trim().to_ascii_lowercase())
        .collect()
}

/// A user's own Cognito call (`GetUser`, `UpdateUserAttributes`): authorised by the access
/// token in the body, as the web app's Amplify makes it; the credential scope only tells
/// moto the region.
fn cognito(api: &Api, operation: &str, body: &Value) -> (u16, Value) {
    let scope = format!(
        "AWS4-HMAC-SHA256 Credential=local/20240101/{}/cognito-idp/aws4_request, SignedHeaders=host, Signature=0",
        api.region
    );
    let mut response = agent()
        .post(&api.cognito_endpoint)
        .header("Content-Type", "application/x-amz-json-1.1")
        .header(
            "X-Amz-Target",
            format!("AWSCognitoIdentityProviderService.{operation}"),
        )
        .header("Authorization", &scope)
        .send(body.to_string())
        .expect("Cognito answers");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().expect("readable");
    let value = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, value)
}

/// The user's attribute as the pool holds it.
fn pool_attribute(api: &Api, access: &str, name: &str) -> Option<String> {
    let (status, user) = cognito(api, "GetUser", &json!({ "AccessToken": access }));
    assert_eq!(status, 200, "GetUser: {user}");
    user["UserAttributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .find(|a| a["Name"] == name)
        .and_then(|a| a["Value"].as_str())
        .map(str::to_string)
}

#[tokio::test]
async fn when_a_browser_on_another_origin_preflights_and_posts_then_the_endpoint_answers_as_appsync_does(
) {
    let (_stack, api) = setup().await;

    // The preflight a browser sends before the web app's POST: no token, no body.
    let preflight = agent()
        .options(&api.graphql_url)
        .header("Origin", ORIGIN)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type,x-amz-user-agent",
        )
        .call()
        .expect("the endpoint answers");
    assert_eq!(preflight.status().as_u16(), 200);
    assert_eq!(header(&preflight, "access-control-allow-origin"), "*");
    let methods = listed(&header(&preflight, "access-control-allow-methods"));
    assert!(
        methods.contains(&"post".into()) && methods.contains(&"options".into()),
        "{methods:?}"
    );
    let allowed = listed(&header(&preflight, "access-control-allow-headers"));
    for h in [
        "content-type",
        "authorization",
        "x-amz-date",
        "x-amz-user-agent",
        "x-api-key",
        "x-amz-security-token",
    ] {
        assert!(allowed.contains(&h.to_string()), "{h} in {allowed:?}");
    }
    let max_age: u64 = header(&preflight, "access-control-max-age")
        .parse()
        .expect("a max-age");
    assert!(max_age > 0);

    // The POST that follows: a refusal must be readable by the page too (Amplify reads the
    // 401 to decide to sign in again).
    let access = api
        .sign_in(api.user("rit").expect("seeded"))
        .expect("signs in")
        .access;
    for (token, status) in [(Some(access.as_str()), 200), (None, 401)] {
        let mut request = agent()
            .post(&api.graphql_url)
            .header("Origin", ORIGIN)
            .header("Content-Type", "application/json");
        if let Some(token) = token {
            request = request.header("Authorization", token);
        }
        let response = request
            .send(
                json!({"query": "query ListRequests { listRequests { egress_request_id } }"})
                    .to_string(),
            )
            .expect("the endpoint answers");
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(header(&response, "access-control-allow-origin"), "*");
    }
}

#[tokio::test]
async fn when_a_reviewer_renames_themself_then_cognito_refuses_and_the_decision_records_the_pools_name(
) {
    let (stack, api) = setup().await;
    let reviewer = api.user("ig2").expect("seeded").clone();
    let access = api.sign_in(&reviewer).expect("signs in").access;
    assert_eq!(
        pool_attribute(&api, &access, "name").as_deref(),
        Some(reviewer.name.as_str()),
        "control: the token is valid and the pool holds the seeded name"
    );

    // What the review did through the web client (Amplify's updateUserAttributes), and the
    // other attributes shown to others or used for decisions.
    for (attribute, value) in [
        ("name", IMPERSONATION),
        ("email", "ig.reviewer@tre.example.org"),
        ("email_verified", "true"),
        ("custom:idp_groups", "tre-ig"),
    ] {
        let (status, answer) = cognito(
            &api,
            "UpdateUserAttributes",
            &json!({
                "AccessToken": access,
                "UserAttributes": [{ "Name": attribute, "Value": value }],
            }),
        );
        assert_eq!(status, 400, "{attribute}: {answer}");
        assert_eq!(answer["__type"], "NotAuthorizedException", "{attribute}");
        assert_eq!(
            answer["message"], "A client attempted to write unauthorized attribute",
            "{attribute}"
        );
    }
    assert_eq!(
        pool_attribute(&api, &access, "name").as_deref(),
        Some(reviewer.name.as_str())
    );
    assert_eq!(
        pool_attribute(&api, &access, "email").as_deref(),
        Some(reviewer.email.as_str())
    );

    // The reviewer then approves a request as the web app does.
    let s = swb::submit(&stack.outputs, &Submit::new(Mode::Single)).expect("submitted");
    inspect::awaiting_review(&stack, &s.egress_request_id, ReviewStage::Ig, TIMEOUT)
        .await
        .expect("the request waits for the review");
    let access = api.sign_in(&reviewer).expect("signs in again").access;
    let row = api.row(&access, &s.egress_request_id).expect("listed");
    let request = web_app_decision(
        &row,
        ReviewStage::Ig,
        &reviewer,
        Decision::Approved,
        "Aggregates only.",
    );
    let answer = api
        .call(Some(&access), UPDATE_REQUEST, json!({ "request": request }))
        .expect("the API answers");
    if answer.error().is_some() {
        let now = inspect::request(&stack, &s.egress_request_id).await;
        panic!(
            "the decision was refused: {:?}\nrow: {row}\nstored now: {now:?}",
            answer.body
        );
    }
    let end = inspect::execution_end(
        &stack,
        &stack.outputs.execution_arn(&s.egress_request_id),
        TIMEOUT,
    )
    .await
    .expect("the workflow ends");
    assert_eq!(end.status, ExecutionStatus::Succeeded, "{end:?}");

    let stored = inspect::request(&stack, &s.egress_request_id)
        .await
        .expect("readable")
        .expect("stored");
    assert_eq!(
        stored.ig_reviewer_1_name.as_deref(),
        Some(reviewer.name.as_str())
    );
    assert_eq!(
        stored.ig_reviewer_1_email.as_deref(),
        Some(reviewer.email.as_str())
    );
    let row = api.row(&access, &s.egress_request_id).expect("listed");
    assert_eq!(row["ig_reviewer_1_name"], reviewer.name.as_str());
    assert!(!row.to_string().contains(IMPERSONATION));
}
