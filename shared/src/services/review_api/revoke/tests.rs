//! `revokeRelease` against the in-memory fakes: who may revoke what, and every effect of a
//! revocation (status, archive moved, audit, e-mails), once.

use super::*;
use crate::fakes::{
    approved, caller, directory_of, parked_at, review_service, review_settings, sample_request,
    FakeReviewService, FakeWorkflowCallbacks, InMemoryObjectStore, RecordingMailer,
};
use crate::model::{ApprovalMode, DownloadDataInput, ReviewStage};

const IG: &str = "IGApprover";
const RIT: &str = "ResearchITAdmin";
const ADMIN: &str = "EgressAdmin";
const KEY: &str = "approved_egress/ws-1/req-1/egress_data.zip";
const RECORD: &str = "approved_egress/ws-1/req-1/release_record.json";

type Service = FakeReviewService;

fn service(requests: Vec<EgressRequest>) -> Service {
    let directory = directory_of(&[
        ("ada", "sub-ada", "ada@example.org", &[ADMIN]),
        ("iris", "sub-iris", "iris@example.org", &[IG]),
    ]);
    let settings = review_settings(IG, RIT, &[IG, RIT], 3);
    review_service(
        FakeWorkflowCallbacks::default(),
        requests,
        directory,
        settings,
    )
}

fn revocation() -> Revocation<InMemoryObjectStore, RecordingMailer> {
    let objects = InMemoryObjectStore::new().with_bucket("datalake", true);
    objects.put_object("datalake", KEY, "zip v1");
    objects.put_object("datalake", KEY, "zip v2");
    objects.put_object("datalake", RECORD, "{}");
    Revocation {
        objects,
        mailer: RecordingMailer::default(),
        admin_group: ADMIN.into(),
        datalake_kms_key_arn: "arn:aws:kms:eu-west-2:1:key/datalake".into(),
    }
}

fn released(mode: ApprovalMode) -> EgressRequest {
    let mut r = approved(sample_request("req-1", mode), 1);
    r.ig_reviewer_1_email = Some("iris@example.org".into());
    if mode == ApprovalMode::Dual {
        r.rit_reviewer_2_email = Some("rita@example.org".into());
    }
    r
}

fn input() -> RevokeReleaseInput {
    RevokeReleaseInput {
        egress_request_id: "req-1".into(),
        reason: "Identifiable data found after release".into(),
    }
}

#[tokio::test]
async fn when_an_admin_revokes_an_approved_release_then_it_is_revoked_moved_audited_and_told() {
    let svc = service(vec![released(ApprovalMode::Dual)]);
    let rev = revocation();
    let result = svc
        .revoke_release(&rev, &caller("ada", &[ADMIN]), input())
        .await
        .unwrap();
    assert_eq!(result, REVOKE_SUCCESS_MESSAGE);

    let item = svc.store.item("req-1").unwrap();
    assert_eq!(item.egress_status, EgressStatus::Revoked);
    assert_eq!(item.updated_by, "ada");

    let keys = rev.objects.keys("datalake");
    assert!(!keys.contains(&KEY.to_string()), "{keys:?}");
    assert!(keys.contains(&format!("revoked/{KEY}")), "{keys:?}");
    assert!(
        keys.contains(&RECORD.to_string()),
        "the release record stays"
    );
    let copy = rev
        .objects
        .object("datalake", &format!("revoked/{KEY}"))
        .unwrap();
    assert_eq!(&copy.data[..], b"zip v2", "the current version is kept");
    // Every version of the original is gone (no delete marker left to undo).
    assert_eq!(rev.objects.version_count("datalake"), 2);

    let event = svc.audit.events().pop().unwrap();
    assert_eq!(
        (event.action.as_str(), event.outcome.as_str()),
        ("revoked", "success")
    );
    assert_eq!(event.actor, "ada");
    assert_eq!(
        event.detail["reason"],
        "Identifiable data found after release"
    );
    assert_eq!(event.detail["status_before"], "RITAPPROVED");
    assert_eq!(event.detail["moved_to"], format!("revoked/{KEY}"));

    let sent = rev.mailer.sent();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0].to, vec!["researcher@example.org"]);
    assert!(
        !sent[0].text.contains("ada@example.org"),
        "the admin is not named to the requester"
    );
    assert_eq!(sent[1].to, vec!["iris@example.org", "rita@example.org"]);
    assert!(sent
        .iter()
        .all(|m| m.text.contains("Identifiable data found after release")));
}

#[tokio::test]
async fn when_a_release_was_revoked_then_a_download_is_refused() {
    let svc = service(vec![released(ApprovalMode::Single)]);
    let rev = revocation();
    svc.revoke_release(&rev, &caller("ada", &[ADMIN]), input())
        .await
        .unwrap();
    let err = svc
        .download_data(
            &caller("iris", &[IG]),
            DownloadDataInput {
                egress_request_id: "req-1".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "Conflict");
    assert!(err.to_string().contains("REVOKED"), "{err}");
    assert!(svc.links.issued().is_empty());
}

#[tokio::test]
async fn when_a_release_is_revoked_twice_then_the_second_is_a_conflict_and_changes_nothing() {
    let svc = service(vec![released(ApprovalMode::Single)]);
    let rev = revocation();
    let ada = caller("ada", &[ADMIN]);
    svc.revoke_release(&rev, &ada, input()).await.unwrap();
    let err = svc.revoke_release(&rev, &ada, input()).await.unwrap_err();
    assert_eq!(err.error_type(), "Conflict");
    assert!(err.to_string().contains("already been revoked"), "{err}");
    assert_eq!(rev.mailer.sent().len(), 2, "nobody is told twice");
    let last = svc.audit.events().pop().unwrap();
    assert_eq!(
        (last.action.as_str(), last.outcome.as_str()),
        ("revoked", "refused")
    );
}

#[tokio::test]
async fn when_a_non_admin_revokes_then_it_is_forbidden_and_nothing_changes() {
    let svc = service(vec![released(ApprovalMode::Single)]);
    let rev = revocation();
    // Not in the admin group at all.
    let err = svc
        .revoke_release(&rev, &caller("iris", &[IG]), input())
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "Forbidden");
    // A token naming the admin group that the pool no longer grants.
    let err = svc
        .revoke_release(&rev, &caller("iris", &[IG, ADMIN]), input())
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "Forbidden");
    assert_eq!(
        svc.audit.events().pop().unwrap().outcome,
        "refused",
        "a refusal on a found request is audited"
    );
    assert_eq!(
        svc.store.item("req-1").unwrap().egress_status,
        EgressStatus::IgApproved
    );
    assert!(rev.objects.keys("datalake").contains(&KEY.to_string()));
    assert!(rev.mailer.sent().is_empty());
}

#[tokio::test]
async fn when_the_request_is_not_a_final_approval_then_it_cannot_be_revoked() {
    // Dual mode: IGAPPROVED is only half way.
    let mut half = released(ApprovalMode::Dual);
    half.egress_status = EgressStatus::IgApproved;
    let waiting = parked_at(
        sample_request("req-2", ApprovalMode::Single),
        ReviewStage::Ig,
        "token",
        "handle",
    );
    let svc = service(vec![half, waiting]);
    let rev = revocation();
    let ada = caller("ada", &[ADMIN]);
    for id in ["req-1", "req-2"] {
        let err = svc
            .revoke_release(
                &rev,
                &ada,
                RevokeReleaseInput {
                    egress_request_id: id.into(),
                    ..input()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "Conflict", "{id}");
        assert!(
            err.to_string().contains("Only an approved release"),
            "{err}"
        );
    }
    assert!(rev.objects.keys("datalake").contains(&KEY.to_string()));
}

#[tokio::test]
async fn when_the_reason_is_too_short_then_it_is_a_validation_error() {
    let svc = service(vec![released(ApprovalMode::Single)]);
    let rev = revocation();
    let err = svc
        .revoke_release(
            &rev,
            &caller("ada", &[ADMIN]),
            RevokeReleaseInput {
                reason: "bad".into(),
                ..input()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "ValidationError");
    assert_eq!(
        svc.store.item("req-1").unwrap().egress_status,
        EgressStatus::IgApproved
    );
}

#[tokio::test]
async fn when_the_move_fails_then_the_release_stays_revoked_and_a_second_call_finishes_it() {
    let svc = service(vec![released(ApprovalMode::Single)]);
    let rev = revocation();
    rev.objects.deny_delete(KEY);
    let ada = caller("ada", &[ADMIN]);
    let err = svc.revoke_release(&rev, &ada, input()).await.unwrap_err();
    assert_eq!(err.error_type(), "InternalError");
    assert!(
        err.to_string().contains("call revokeRelease again"),
        "{err}"
    );
    assert_eq!(
        svc.store.item("req-1").unwrap().egress_status,
        EgressStatus::Revoked
    );
    let event = svc.audit.events().pop().unwrap();
    assert_eq!(event.detail["archive_moved"], false);

    assert!(rev.objects.keys("datalake").contains(&KEY.to_string()));
    // The same datalake once deletes are allowed again: the original and the partial copy.
    let fresh = revocation();
    fresh
        .objects
        .put_object("datalake", &format!("revoked/{KEY}"), "zip v2");
    let done = svc.revoke_release(&fresh, &ada, input()).await.unwrap();
    assert_eq!(done, REVOKE_SUCCESS_MESSAGE);
    assert!(!fresh.objects.keys("datalake").contains(&KEY.to_string()));
    let err = svc.revoke_release(&fresh, &ada, input()).await.unwrap_err();
    assert_eq!(err.error_type(), "Conflict", "complete now");
}

#[tokio::test]
async fn when_dispatched_then_revoke_release_takes_top_level_arguments() {
    let svc = service(vec![released(ApprovalMode::Single)]);
    let rev = revocation();
    let evidence = crate::services::review_api::evidence::Evidence {
        sources: crate::services::review_api::evidence::EvidenceSources {
            objects: InMemoryObjectStore::new(),
            key: crate::fakes::LocalSigner::default(),
        },
        staging_bucket: "staging".into(),
        admin_group: ADMIN.into(),
    };
    let event = ApiEvent {
        field: "revokeRelease".into(),
        identity: caller("ada", &[ADMIN]),
        arguments: serde_json::json!({
            "egress_request_id": "req-1",
            "reason": "Identifiable data found after release",
        }),
        selection: None,
    };
    let out = svc.dispatch_all(&evidence, &rev, event).await.unwrap();
    assert_eq!(out, Value::String(REVOKE_SUCCESS_MESSAGE.into()));
}
