//! The reviewer API: the resolver payload (`ApiEvent`: field, verified identity, the client's
//! GraphQL arguments) as `api-handler` reads it (`serde_json::from_value::<ApiEvent>`, then
//! `ReviewService::dispatch`), against the in-memory fakes.
//!
//! Beyond "no panic, named refusals": whatever the client sends, a decision records the
//! reviewer the user pool knows (never a client-sent name or e-mail), the Step Functions task
//! token appears in no response and no error, and a refusal changes nothing.

use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use serde_json::Value;
use shared::domain::review::federation::IdpGroupMap;
use shared::domain::review::UPDATE_SUCCESS_MESSAGE;
use shared::fakes::{
    approved, parked_at, review_service, review_settings, sample_request, FakeReviewService,
    FakeWorkflowCallbacks, InMemoryDirectory,
};
use shared::model::ApiEvent;
use shared::model::{ApprovalMode, Decision, EgressStatus, ReviewStage};
use shared::ports::DirectoryUser;
use shared::services::review_api::ReviewSettings;

use crate::support::{self, mutation, names_field, path, Mutation, Step};

const IG: &str = "InformationGovernance";
const RIT: &str = "ResearchIT";
const POOL: &str = "eu-west-2_AbCdEfGhI";
/// The fixtures' caller.
const REVIEWER: &str = "7d1f0c4e-2b8a-4c61-9f3e-5a6b7c8d9e01";
/// What the user pool says about them (the fixtures send other values, which must be ignored).
const POOL_EMAIL: &str = "iris.pool@example.org";
const POOL_NAME: &str = "Iris Pool";
const PARKED: &str = "8d3b9a57-4b8e-4a9e-9b7c-1f2d3e4a5b6c";
const APPROVED: &str = "approved-1";
const HANDLE: &str = "3c9e2f4a-61b7-4d8e-a0f1-2b3c4d5e6f70";
const SFN_TOKEN: &str = "AQCEAAAAKgAAAAMAAAAAAAAAAS-secret-sfn-task-token";

type Service = FakeReviewService;

/// A fresh service per case: one request parked at the IG stage, one approved and archived.
fn service() -> Service {
    let directory = InMemoryDirectory::with([(
        REVIEWER.to_string(),
        DirectoryUser {
            sub: REVIEWER.into(),
            email: Some(POOL_EMAIL.into()),
            email_verified: Some(true),
            name: Some(POOL_NAME.into()),
            enabled: true,
            ..Default::default()
        },
    )]);
    directory.set_groups(REVIEWER, &[IG]);
    let requests = [
        parked_at(
            sample_request(PARKED, ApprovalMode::Dual),
            ReviewStage::Ig,
            SFN_TOKEN,
            HANDLE,
        ),
        approved(sample_request(APPROVED, ApprovalMode::Single), 0),
    ];
    let settings = ReviewSettings {
        user_pool_id: Some(POOL.into()),
        idp_group_map: IdpGroupMap::parse("tre-ig=InformationGovernance", &[IG, RIT])
            .expect("a valid map"),
        ..review_settings(IG, RIT, &[IG, RIT], 3)
    };
    review_service(
        FakeWorkflowCallbacks::default(),
        requests,
        directory,
        settings,
    )
}

/// The three fixtures; the download one names the approved request.
fn base_events() -> Vec<Value> {
    let mut download = support::fixture("api-handler/download-data.json");
    download["arguments"]["request"]["egress_request_id"] = Value::String(APPROVED.into());
    vec![
        support::fixture("api-handler/update-request-ig.json"),
        download,
        support::fixture("api-handler/list-requests.json"),
    ]
}

const ARGUMENTS: &[&str] = &[
    "egress_request_id",
    "task_token",
    "ig_reviewer_1_name",
    "ig_reviewer_1_email",
    "ig_reviewer_1_dt",
    "ig_reviewer_1_reason",
    "ig_reviewer_1_decision",
    "rit_reviewer_2_name",
    "rit_reviewer_2_email",
    "rit_reviewer_2_dt",
    "rit_reviewer_2_reason",
    "rit_reviewer_2_decision",
    "workspace_id",
    "download_count",
];

fn paths() -> Vec<Vec<Step>> {
    let mut paths = vec![
        path(&["field"]),
        path(&["identity"]),
        path(&["arguments"]),
        path(&["arguments", "request"]),
        path(&["identity", "groups", "0"]),
    ];
    for f in ["sub", "username", "email", "name", "groups", "issuer"] {
        paths.push(path(&["identity", f]));
    }
    for f in ARGUMENTS {
        paths.push(path(&["arguments", "request", f]));
    }
    paths
}

/// Values the API gives a meaning to, so that generated cases also pass its checks: the
/// decisions in several spellings, reasons around their limits, the groups, ids and handles
/// of the fixtures and of others, another user pool.
fn vocabulary() -> impl Strategy<Value = Value> {
    let words = vec![
        "APPROVED",
        "REJECTED",
        " APPROVED ",
        "approved",
        "MAYBE",
        "",
        IG,
        RIT,
        PARKED,
        APPROVED,
        HANDLE,
        SFN_TOKEN,
        REVIEWER,
        "listRequests",
        "updateRequest",
        "downloadData",
        "https://cognito-idp.eu-west-2.amazonaws.com/eu-west-2_AbCdEfGhI",
        "https://cognito-idp.eu-west-2.amazonaws.com/eu-west-2_Other",
        "https://evil.example.org/eu-west-2_AbCdEfGhI",
    ];
    prop_oneof![
        3 => proptest::sample::select(words).prop_map(|w| Value::String(w.to_string())),
        2 => (
            proptest::sample::select(&[9usize, 10, 11, 1999, 2000, 2001][..]),
            prop_oneof![Just('x'), Just('é'), Just('\n'), Just('\u{7}'), Just(' ')]
        )
            .prop_map(|(n, c)| Value::String(c.to_string().repeat(n))),
        1 => proptest::collection::vec(
            proptest::sample::select(&[IG, RIT, "Admins", ""][..]).prop_map(Value::from),
            0..3
        )
        .prop_map(Value::Array),
    ]
}

fn event() -> impl Strategy<Value = (Value, Vec<Mutation>)> {
    let paths = paths();
    let vocab = (proptest::sample::select(paths.clone()), vocabulary())
        .prop_map(|(p, v)| Mutation::Set(p, v));
    (
        proptest::sample::select(base_events()),
        proptest::collection::vec(prop_oneof![2 => mutation(paths), 3 => vocab], 0..=4),
    )
}

/// A refusal the client caused names what is wrong: a member in backticks, the unknown
/// GraphQL field, or the required justification.
fn names_something(msg: &str) -> bool {
    ARGUMENTS
        .iter()
        .chain(&[
            "field",
            "identity",
            "arguments",
            "request",
            "sub",
            "username",
            "groups",
        ])
        .any(|f| names_field(msg, f))
        || msg.starts_with("unknown GraphQL field")
}

fn check_success(svc: &Service, api: &ApiEvent, client: &Value, result: &Value) -> TestCaseResult {
    let groups = &api.identity.groups;
    match api.field.as_str() {
        "listRequests" => {
            let views = result.as_array().expect("a list");
            prop_assert_eq!(views.len(), 2);
            for v in views {
                let handle = v["task_token"].as_str().unwrap_or("?");
                prop_assert!(handle.is_empty() || handle == HANDLE, "{}", handle);
            }
        }
        "updateRequest" => {
            prop_assert_eq!(result.as_str(), Some(UPDATE_SUCCESS_MESSAGE));
            prop_assert_eq!(api.identity.sub.as_str(), REVIEWER);
            prop_assert!(groups.iter().any(|g| g == IG));
            let item = svc.store.item(PARKED).expect("the request");
            // Who decided is the pool's record of the caller, whatever the client sent.
            prop_assert_eq!(item.ig_reviewer_1_email.as_deref(), Some(POOL_EMAIL));
            prop_assert_eq!(item.ig_reviewer_1_name.as_deref(), Some(POOL_NAME));
            prop_assert_eq!(item.ig_reviewer_1_sub.as_deref(), Some(REVIEWER));
            let sent = |f: &str| client["request"][f].as_str().map(str::trim).unwrap_or("?");
            let decision: Decision = sent("ig_reviewer_1_decision").parse().expect("a decision");
            prop_assert_eq!(item.ig_reviewer_1_decision, Some(decision));
            let reason = item.ig_reviewer_1_reason.clone().unwrap_or_default();
            prop_assert_eq!(reason.as_str(), sent("ig_reviewer_1_reason"));
            prop_assert!((10..=2000).contains(&reason.chars().count()));
            prop_assert!(!reason
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')));
            let expected = match decision {
                Decision::Approved => EgressStatus::IgApproved,
                Decision::Rejected => EgressStatus::Rejected,
            };
            prop_assert_eq!(item.egress_status, expected);
            let completed = svc.workflow.completed();
            prop_assert_eq!(completed.len(), 1);
            prop_assert!(completed.contains_key(SFN_TOKEN));
            prop_assert!(item.sfn_task_token.is_none() && item.review_handle.is_none());
        }
        "downloadData" => {
            prop_assert!(groups.iter().any(|g| g == IG || g == RIT));
            let url = result["presign_url"].as_str().expect("a URL");
            prop_assert!(
                url.contains("approved_egress/ws-1/approved-1/egress_data.zip"),
                "{}",
                url
            );
            let item = svc.store.item(APPROVED).expect("the request");
            prop_assert_eq!(item.download_count, 1);
        }
        other => prop_assert!(false, "{:?} resolved", other),
    }
    Ok(())
}

#[test]
fn when_resolver_payloads_are_hostile_then_the_api_refuses_by_name_and_never_trusts_the_client() {
    let rt = support::runtime();
    support::run(
        "api_event",
        support::cases(support::DEFAULT_CASES, u32::MAX),
        event(),
        |(mut doc, mutations)| {
            for m in &mutations {
                m.apply(&mut doc);
            }
            // The token may only come back when the client itself sent it (echoed in an error).
            let client_sent_token = doc.to_string().contains(SFN_TOKEN);
            let api: ApiEvent = match serde_json::from_value(doc) {
                Ok(api) => api,
                Err(e) => {
                    // api-handler answers `ValidationError` "the resolver payload is not
                    // valid: {e}". The payload is built by our resolver templates, not by the
                    // client; serde names a missing member but not one of the wrong type.
                    let msg = e.to_string();
                    support::tally(if msg.contains('`') {
                        "payload_refused"
                    } else {
                        "payload_refused_no_member_named"
                    });
                    return Ok(());
                }
            };
            let svc = service();
            let before = (svc.store.item(PARKED), svc.store.item(APPROVED));
            let client = api.arguments.clone();
            match rt.block_on(svc.dispatch(api.clone())) {
                Ok(result) => {
                    support::tally("resolved");
                    prop_assert!(
                        client_sent_token || !result.to_string().contains(SFN_TOKEN),
                        "task token leaked"
                    );
                    check_success(&svc, &api, &client, &result)
                }
                Err(err) => {
                    let msg = err.to_string();
                    support::tally_refusal_size(&msg);
                    prop_assert!(
                        client_sent_token || !msg.contains(SFN_TOKEN),
                        "task token leaked: {}",
                        msg
                    );
                    let ty = err.error_type();
                    prop_assert!(
                        ["ValidationError", "NotFound", "Conflict", "Forbidden"].contains(&ty),
                        "{}: {}",
                        ty,
                        msg
                    );
                    if ty == "ValidationError" && !names_something(&msg) {
                        support::tally("refused_validation_no_member_named");
                    } else {
                        support::tally("refused");
                    }
                    prop_assert_eq!(
                        (svc.store.item(PARKED), svc.store.item(APPROVED)),
                        before,
                        "a refusal changed the store"
                    );
                    prop_assert!(svc.workflow.completed().is_empty());
                    Ok(())
                }
            }
        },
    );
}
