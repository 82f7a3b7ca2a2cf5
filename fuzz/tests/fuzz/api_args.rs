//! The reviewer API's newer arguments, through the same path as `api-handler`
//! (`serde_json::from_value::<ApiEvent>`, then `ReviewService::dispatch_all`) against the
//! in-memory fakes: `listRequests`' `limit` and `nextToken` and the selection set list,
//! `requestChecks` / `requestEvidence`'s `egress_request_id`, `releaseSigningKey`, and
//! `revokeRelease`'s `egress_request_id` and `reason`.
//!
//! Properties: no panic; every refusal is `ValidationError`, `NotFound`, `Conflict` or
//! `Forbidden`, a `ValidationError` naming the argument; a refusal changes no request; a page
//! holds at most `limit` requests with only the selected fields and no task token; a
//! revocation happens only for an admin, on the approved request, with a valid reason.

use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use serde_json::{json, Value};
use shared::domain::listing::{DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT};
use shared::fakes::{
    approved, directory_of, parked_at, review_service, review_settings, sample_request,
    FakeReviewService, FakeWorkflowCallbacks, InMemoryObjectStore, LocalSigner, RecordingMailer,
};
use shared::model::{ApiEvent, ApprovalMode, EgressStatus, ReviewStage};
use shared::services::review_api::evidence::{Evidence, EvidenceSources};
use shared::services::review_api::revoke::Revocation;
use shared::services::review_api::ReviewSettings;

use crate::support::{self, hostile_string, hostile_value, names_field};

const IG: &str = "InformationGovernance";
const RIT: &str = "ResearchIT";
const ADMIN: &str = "EgressAdmin";
const PARKED: &str = "8d3b9a57-4b8e-4a9e-9b7c-1f2d3e4a5b6c";
const APPROVED: &str = "approved-1";
const SFN_TOKEN: &str = "AQCEAAAAKgAAAAMAAAAAAAAAAS-secret-sfn-task-token";
const ARCHIVE: &str = "approved_egress/ws-1/approved-1/egress_data.zip";

type Service = FakeReviewService;

fn service() -> Service {
    let directory = directory_of(&[
        ("iris", "sub-iris", "iris@example.org", &[IG]),
        ("ada", "sub-ada", "ada@example.org", &[ADMIN]),
    ]);
    let requests = [
        parked_at(
            sample_request(PARKED, ApprovalMode::Dual),
            ReviewStage::Ig,
            SFN_TOKEN,
            "handle-1",
        ),
        approved(sample_request(APPROVED, ApprovalMode::Single), 0),
    ];
    let settings = ReviewSettings {
        user_pool_id: None,
        ..review_settings(IG, RIT, &[IG, RIT], 3)
    };
    review_service(
        FakeWorkflowCallbacks::default(),
        requests,
        directory,
        settings,
    )
}

fn evidence() -> Evidence<EvidenceSources<InMemoryObjectStore, LocalSigner>> {
    Evidence {
        sources: EvidenceSources {
            objects: InMemoryObjectStore::new(),
            key: LocalSigner::default(),
        },
        staging_bucket: "staging".into(),
        admin_group: ADMIN.into(),
    }
}

fn revocation() -> Revocation<InMemoryObjectStore, RecordingMailer> {
    let objects = InMemoryObjectStore::new().with_bucket("datalake", true);
    objects.put_object("datalake", ARCHIVE, "zip");
    Revocation {
        objects,
        mailer: RecordingMailer::default(),
        admin_group: ADMIN.into(),
        datalake_kms_key_arn: "arn:aws:kms:eu-west-2:1:key/datalake".into(),
    }
}

const FIELDS: &[&str] = &[
    "listRequests",
    "requestChecks",
    "requestEvidence",
    "releaseSigningKey",
    "revokeRelease",
];

/// An argument value: meaningful ones (ids, limits at their bounds, reasons around their
/// length limits) and hostile ones.
fn argument(name: &'static str) -> BoxedStrategy<Value> {
    let meaningful = match name {
        "limit" => prop_oneof![
            proptest::sample::select(&[0i64, 1, 2, 999, 1000, 1001, -1, i64::MAX, i64::MIN][..])
                .prop_map(Value::from),
            Just(json!(1.5)),
            Just(json!("10")),
        ]
        .boxed(),
        "reason" => prop_oneof![
            proptest::sample::select(&[0usize, 9, 10, 11, 1999, 2000, 2001][..])
                .prop_map(|n| Value::String("r".repeat(n))),
            Just(json!("Identifiable data found after release")),
            Just(json!("reason\u{7}with a bell")),
        ]
        .boxed(),
        _ => proptest::sample::select(vec![PARKED, APPROVED, "missing-1", "", " ", SFN_TOKEN])
            .prop_map(Value::from)
            .boxed(),
    };
    prop_oneof![
        4 => meaningful,
        1 => hostile_string().prop_map(Value::String),
        1 => hostile_value(),
    ]
    .boxed()
}

fn arguments() -> impl Strategy<Value = Value> {
    let members = vec!["limit", "nextToken", "egress_request_id", "reason"];
    (
        proptest::collection::vec(
            (proptest::sample::select(members), any::<bool>())
                .prop_flat_map(|(m, on)| argument(m).prop_map(move |v| (m, v, on))),
            0..4,
        ),
        prop_oneof![6 => Just(None), 1 => hostile_value().prop_map(Some)],
        any::<bool>(),
        proptest::option::of(("x_[a-z]{1,6}", hostile_value())),
    )
        .prop_map(|(members, whole, wrapped, extra)| {
            if let Some(w) = whole {
                return w;
            }
            let mut obj = serde_json::Map::new();
            for (m, v, on) in members {
                if on {
                    obj.insert(m.to_string(), v);
                }
            }
            if let Some((k, v)) = extra {
                obj.insert(k, v);
            }
            // The web app's mutations wrap their input in `request`.
            if wrapped {
                json!({ "request": obj })
            } else {
                Value::Object(obj)
            }
        })
}

fn selection() -> impl Strategy<Value = Option<Value>> {
    let names = vec![
        "egress_request_id",
        "egress_status",
        "task_token",
        "workspace_id",
        "checks",
        "checks/verdict",
        "__typename",
        "",
    ];
    prop_oneof![
        2 => Just(None),
        3 => proptest::collection::vec(
            prop_oneof![3 => proptest::sample::select(names).prop_map(str::to_string), 1 => hostile_string()],
            0..6
        )
        .prop_map(|v| Some(json!(v))),
        1 => hostile_value().prop_map(Some),
    ]
}

fn identity() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"sub": "sub-iris", "username": "iris", "groups": [IG]})),
        Just(json!({"sub": "sub-ada", "username": "ada", "groups": [ADMIN]})),
        Just(json!({"sub": "sub-ada", "username": "ada", "groups": [IG]})),
        Just(json!({"sub": "sub-eve", "username": "eve", "groups": [ADMIN]})),
        Just(json!({"sub": "sub-x", "username": "x", "groups": null})),
    ]
}

fn names_the_argument(msg: &str) -> bool {
    [
        "limit",
        "nextToken",
        "egress_request_id",
        "reason",
        "request",
        "selection",
    ]
    .iter()
    .any(|f| names_field(msg, f) || msg.contains(f))
        || msg.starts_with("unknown GraphQL field")
        || msg.starts_with("invalid arguments for")
}

fn check_ok(
    svc: &Service,
    field: &str,
    args: &Value,
    selection: Option<&[String]>,
    caller_groups: &[String],
    result: &Value,
) -> TestCaseResult {
    prop_assert!(!result.to_string().contains(SFN_TOKEN), "task token leaked");
    match field {
        "listRequests" => {
            let items = result.as_array().expect("a page");
            let limit = args
                .get("limit")
                .and_then(Value::as_u64)
                .unwrap_or(u64::from(DEFAULT_LIST_LIMIT));
            prop_assert!(items.len() as u64 <= limit.min(u64::from(MAX_LIST_LIMIT)));
            if let Some(sel) = selection {
                for item in items {
                    for k in item.as_object().expect("an object").keys() {
                        prop_assert!(sel.contains(k), "{} not selected", k);
                    }
                }
            }
        }
        "revokeRelease" => {
            prop_assert!(caller_groups.iter().any(|g| g == ADMIN));
            let item = svc.store.item(APPROVED).expect("the request");
            prop_assert_eq!(item.egress_status, EgressStatus::Revoked);
            let reason = args["reason"]
                .as_str()
                .unwrap_or_default()
                .trim()
                .to_string();
            prop_assert!(
                (10..=2000).contains(&reason.chars().count()),
                "{:?}",
                reason
            );
        }
        _ => {}
    }
    Ok(())
}

#[test]
fn when_new_api_arguments_are_hostile_then_they_are_refused_by_name_and_change_nothing() {
    let rt = support::runtime();
    support::run(
        "api_arguments",
        support::cases(support::DEFAULT_CASES, u32::MAX),
        (
            prop_oneof![9 => proptest::sample::select(FIELDS).prop_map(Value::from), 1 => hostile_value()],
            identity(),
            arguments(),
            selection(),
        ),
        |(field, identity, arguments, selection)| {
            let mut doc = json!({"field": field, "identity": identity, "arguments": arguments});
            if let Some(s) = selection {
                doc["selection"] = s;
            }
            let api: ApiEvent = match serde_json::from_value(doc) {
                Ok(api) => api,
                Err(_) => {
                    // Built by the resolver templates, not the client (see `api.rs`).
                    support::tally("payload_refused");
                    return Ok(());
                }
            };
            let svc = service();
            let ev = evidence();
            let rev = revocation();
            let before = (svc.store.item(PARKED), svc.store.item(APPROVED));
            let field = api.field.clone();
            let args = api.arguments.clone();
            let selection = api.selection.clone();
            let groups = api.identity.groups.clone();
            match rt.block_on(svc.dispatch_all(&ev, &rev, api)) {
                Ok(result) => {
                    support::tally(match field.as_str() {
                        "listRequests" => "resolved_listRequests",
                        "requestChecks" => "resolved_requestChecks",
                        "requestEvidence" => "resolved_requestEvidence",
                        "releaseSigningKey" => "resolved_releaseSigningKey",
                        "revokeRelease" => "resolved_revokeRelease",
                        _ => "resolved_other",
                    });
                    check_ok(&svc, &field, &args, selection.as_deref(), &groups, &result)
                }
                Err(err) => {
                    let msg = err.to_string();
                    support::tally_refusal_size(&msg);
                    prop_assert!(!msg.contains(SFN_TOKEN) || args.to_string().contains(SFN_TOKEN));
                    let ty = err.error_type();
                    prop_assert!(
                        ["ValidationError", "NotFound", "Conflict", "Forbidden"].contains(&ty),
                        "{}: {}",
                        ty,
                        msg
                    );
                    if ty == "ValidationError" {
                        prop_assert!(names_the_argument(&msg), "{}", msg);
                    }
                    support::tally(ty);
                    prop_assert_eq!(
                        (svc.store.item(PARKED), svc.store.item(APPROVED)),
                        before,
                        "a refusal changed a request"
                    );
                    Ok(())
                }
            }
        },
    );
}
