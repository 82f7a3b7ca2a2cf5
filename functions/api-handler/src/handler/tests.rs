//! The handler against the fixtures in `events/api-handler/` (what the resolver templates
//! send) and in-memory fakes.

use super::*;
use lambda_runtime::Context;
use serde_json::json;
use shared::fakes::{
    approved, directory_of, parked_at, review_service, review_settings, sample_request,
    FakeReviewService, FakeWorkflowCallbacks, InMemoryObjectStore, LocalSigner, RecordingMailer,
};
use shared::model::{
    ApprovalMode, Decision, DownloadDataInput, EgressRequest, EgressStatus, RequestArgument,
    ReviewStage, UpdateRequestInput,
};
use shared::ports::DirectoryUser;
use shared::services::review_api::evidence::EvidenceSources;
use shared::services::review_api::revoke::Revocation;
use shared::services::review_api::ReviewSettings;

const REQUEST_ID: &str = "8d3b9a57-4b8e-4a9e-9b7c-1f2d3e4a5b6c";
const IG_SUB: &str = "7d1f0c4e-2b8a-4c61-9f3e-5a6b7c8d9e01";
const RIT_SUB: &str = "a4c2e9b1-5d3f-4e7a-8b6c-9d0e1f2a3b45";
const IG_HANDLE: &str = "3c9e2f4a-61b7-4d8e-a0f1-2b3c4d5e6f70";
const RIT_HANDLE: &str = "e1d2c3b4-a596-4877-8695-a4b3c2d1e0f9";
const TOKEN: &str = "AQCEAAAAKgAAAAMAAAAAAAAAA-secret";

type Service = FakeReviewService;

fn fixture_text(name: &str) -> String {
    let path = format!(
        "{}/../../events/api-handler/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn fixture(name: &str) -> Value {
    serde_json::from_str(&fixture_text(name)).unwrap()
}

fn service(request: EgressRequest) -> Service {
    let directory = directory_of(&[
        (
            IG_SUB,
            IG_SUB,
            "iris@example.org",
            &["InformationGovernance"],
        ),
        (RIT_SUB, RIT_SUB, "rita@example.org", &["ResearchIT"]),
    ]);
    let settings = ReviewSettings {
        user_pool_id: None,
        ..review_settings(
            "InformationGovernance",
            "ResearchIT",
            &["InformationGovernance", "ResearchIT"],
            3,
        )
    };
    review_service(
        FakeWorkflowCallbacks::default(),
        [request],
        directory,
        settings,
    )
}

fn request() -> EgressRequest {
    sample_request(REQUEST_ID, ApprovalMode::Dual)
}

type Sources = Evidence<EvidenceSources<InMemoryObjectStore, LocalSigner>>;

fn evidence() -> Sources {
    Evidence {
        sources: EvidenceSources {
            objects: InMemoryObjectStore::new()
                .with_bucket("staging", false)
                .with_bucket("datalake", false),
            key: LocalSigner::default(),
        },
        staging_bucket: "staging".into(),
        admin_group: "EgressAdmin".into(),
    }
}

fn revocation() -> Revocation<InMemoryObjectStore, RecordingMailer> {
    Revocation {
        objects: InMemoryObjectStore::new().with_bucket("datalake", true),
        mailer: RecordingMailer::default(),
        admin_group: "EgressAdmin".into(),
        datalake_kms_key_arn: "arn:aws:kms:eu-west-2:1:key/datalake".into(),
    }
}

async fn call(service: &Service, name: &str) -> Result<Value, Diagnostic> {
    handle(
        service,
        &evidence(),
        &revocation(),
        LambdaEvent::new(fixture(name), Context::default()),
    )
    .await
}

#[test]
fn when_each_fixture_is_read_then_it_matches_the_resolver_payload_types() {
    let dir = format!("{}/../../events/api-handler", env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let event: ApiEvent = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        match event.field.as_str() {
            "listRequests" | "releaseSigningKey" => {}
            "requestChecks" | "requestEvidence" => {
                assert!(event.arguments["egress_request_id"].is_string());
            }
            "updateRequest" => {
                serde_json::from_value::<RequestArgument<UpdateRequestInput>>(event.arguments)
                    .unwrap();
            }
            "revokeRelease" => {
                serde_json::from_value::<shared::model::RevokeReleaseInput>(event.arguments)
                    .unwrap();
            }
            "downloadData" => {
                serde_json::from_value::<RequestArgument<DownloadDataInput>>(event.arguments)
                    .unwrap();
            }
            other => panic!("{}: unknown field {other}", path.display()),
        }
        seen += 1;
    }
    assert!(seen >= 5, "expected the api-handler fixtures, found {seen}");
}

#[tokio::test]
async fn when_listing_then_every_field_is_a_string_and_the_task_token_is_the_handle() {
    let svc = service(parked_at(request(), ReviewStage::Ig, TOKEN, IG_HANDLE));
    let listed = call(&svc, "list-requests.json").await.unwrap();
    let rows = listed.as_array().unwrap();
    assert_eq!(rows.len(), 1);
    let row = rows[0].as_object().unwrap();
    // The web app's 29 fields and the output checks' two (issue 12).
    assert_eq!(row.len(), 31);
    assert!(row.contains_key("checks_verdict") && row.contains_key("checks_summary"));
    assert_eq!(row["task_token"], IG_HANDLE);
    assert_eq!(row["download_count"], "0");
    assert_eq!(row["is_single_approval_enabled"], "false");
    assert!(!listed.to_string().contains(TOKEN));
}

#[tokio::test]
async fn when_the_web_app_approves_at_ig_then_the_token_claims_not_its_fields_are_recorded() {
    let svc = service(parked_at(request(), ReviewStage::Ig, TOKEN, IG_HANDLE));
    let result = call(&svc, "update-request-ig.json").await.unwrap();
    assert_eq!(result, json!("Request updated successfully"));
    let item = svc.store.item(REQUEST_ID).unwrap();
    assert_eq!(item.egress_status, EgressStatus::IgApproved);
    assert_eq!(
        item.ig_reviewer_1_email.as_deref(),
        Some("iris@example.org")
    );
    assert_eq!(
        item.ig_reviewer_1_dt.as_deref(),
        Some("2024-05-03T12:00:00.000Z")
    );
    assert_eq!(
        svc.workflow.completed().keys().collect::<Vec<_>>(),
        vec![TOKEN]
    );
}

#[tokio::test]
async fn when_the_web_app_rejects_at_rit_then_the_request_is_rejected() {
    let svc = service(parked_at(request(), ReviewStage::Rit, TOKEN, RIT_HANDLE));
    call(&svc, "update-request-rit.json").await.unwrap();
    let item = svc.store.item(REQUEST_ID).unwrap();
    assert_eq!(item.egress_status, EgressStatus::Rejected);
    assert_eq!(item.rit_reviewer_2_decision, Some(Decision::Rejected));
    assert_eq!(
        item.ig_reviewer_1_decision,
        Some(Decision::Approved),
        "first stage untouched"
    );
}

#[tokio::test]
async fn when_the_web_app_downloads_then_a_presigned_url_is_returned_and_counted() {
    let svc = service(approved(request(), 0));
    let result = call(&svc, "download-data.json").await.unwrap();
    assert!(result["presign_url"]
        .as_str()
        .unwrap()
        .contains("egress_data.zip"));
    assert_eq!(svc.store.item(REQUEST_ID).unwrap().download_count, 1);
}

#[tokio::test]
async fn when_the_caller_has_no_group_then_the_error_is_forbidden() {
    let svc = service(request());
    let err = call(&svc, "no-groups.json").await.unwrap_err();
    assert_eq!(err.error_type, "Forbidden");
}

#[tokio::test]
async fn when_the_payload_is_not_a_resolver_event_then_it_is_a_validation_error() {
    let svc = service(request());
    let err = handle(
        &svc,
        &evidence(),
        &revocation(),
        LambdaEvent::new(json!({"field": 1}), Context::default()),
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_type, "ValidationError");
}

#[tokio::test]
async fn when_a_decision_is_stale_then_the_web_apps_message_reaches_the_runtime() {
    let svc = service(parked_at(
        request(),
        ReviewStage::Ig,
        TOKEN,
        "another-handle",
    ));
    let err = call(&svc, "update-request-ig.json").await.unwrap_err();
    assert_eq!(err.error_type, "Conflict");
    assert!(err
        .error_message
        .starts_with("Another user may have updated this request"));
}

#[tokio::test]
async fn when_a_reviewer_asks_for_checks_and_evidence_then_both_fields_resolve() {
    let mut item = request();
    item.checks_verdict = Some("review".into());
    item.checks_summary = Some("review: 1 file".into());
    let svc = service(item);
    let checks = call(&svc, "request-checks.json").await.unwrap();
    assert_eq!(checks["egress_request_id"], REQUEST_ID);
    assert_eq!(checks["source"], "summary");
    assert_eq!(checks["verdict"], "review");
    let pack = call(&svc, "request-evidence.json").await.unwrap();
    assert_eq!(pack["egress_status"], "PROCESSING");
    assert!(pack["signing_public_key"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----"));
    assert!(pack["audit_chain"]["valid"].as_bool().unwrap());
}

#[tokio::test]
async fn when_an_admin_revokes_through_the_fixture_then_the_request_is_revoked() {
    const ADMIN_SUB: &str = "0b6e2a1c-9d8f-4e3a-8c7b-6a5f4e3d2c1b";
    let svc = service(approved(request(), 0));
    svc.directory.put(
        ADMIN_SUB,
        DirectoryUser {
            sub: ADMIN_SUB.into(),
            email: Some("ada@example.org".into()),
            email_verified: Some(true),
            enabled: true,
            ..Default::default()
        },
    );
    svc.directory.set_groups(ADMIN_SUB, &["EgressAdmin"]);
    let out = call(&svc, "revoke-release.json").await.unwrap();
    assert_eq!(out, json!("Release revoked"));
    assert_eq!(
        svc.store.item(REQUEST_ID).unwrap().egress_status,
        EgressStatus::Revoked
    );
    // The same caller without the admin group in the pool: refused.
    let svc = service(approved(request(), 0));
    let err = call(&svc, "revoke-release.json").await.unwrap_err();
    assert_eq!(err.error_type, "Forbidden");
}
