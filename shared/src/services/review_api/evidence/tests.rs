//! The evidence queries against the in-memory fakes: who may read, where the checks report
//! is found in each phase of a request, and that the evidence pack verifies.

use super::*;
use crate::checks::{FileChecker, Policy, RequestChecker};
use crate::evidence::release::{self, verify_record, ReleaseTarget};
use crate::fakes::{
    approved, caller, directory_of, review_service, review_settings, sample_request,
    FakeReviewService, FakeWorkflowCallbacks, InMemoryObjectStore, LocalSigner,
};
use crate::model::{ApprovalMode, EgressStatus, Manifest, ManifestEntry};
use crate::ports::AuditEvent;

const IG: &str = "IGApprover";
const RIT: &str = "ResearchITAdmin";
const CUSTODIAN: &str = "DataCustodian";
const STAGING: &str = "staging";
const DATALAKE: &str = "datalake";
const ADMIN: &str = "EgressAdmin";

type Service = FakeReviewService;
type Sources = Evidence<EvidenceSources<InMemoryObjectStore, LocalSigner>>;

fn service(requests: Vec<EgressRequest>) -> Service {
    let directory = directory_of(&[
        ("iris", "sub-iris", "iris@example.org", &[IG]),
        ("rita", "sub-rita", "rita@example.org", &[RIT]),
        ("cus", "sub-cus", "custodian@example.org", &[CUSTODIAN]),
        (
            "other",
            "sub-other",
            "other@example.org",
            &["OtherProjectIG"],
        ),
        ("ada", "sub-ada", "admin@example.org", &[ADMIN]),
    ]);
    let settings = review_settings(IG, RIT, &[IG, CUSTODIAN], 3);
    review_service(
        FakeWorkflowCallbacks::default(),
        requests,
        directory,
        settings,
    )
}

fn sources() -> Sources {
    Evidence {
        sources: EvidenceSources {
            objects: InMemoryObjectStore::new()
                .with_bucket(STAGING, false)
                .with_bucket(DATALAKE, false),
            key: LocalSigner::default(),
        },
        staging_bucket: STAGING.into(),
        admin_group: ADMIN.into(),
    }
}

const CSV: &[u8] = b"region,count\nnorth,3\nsouth,250\n";

/// A report with a small-count finding in `counts.csv` and a clean `notes.txt`.
fn report() -> Report {
    let policy = Policy::default();
    let mut request = RequestChecker::new(&policy);
    for (path, data) in [
        ("counts.csv", CSV),
        ("notes.txt", b"all aggregate".as_slice()),
    ] {
        let mut file = FileChecker::new(&policy, path);
        file.feed(data);
        request.add(file.finish());
    }
    request.finish()
}

fn in_review() -> EgressRequest {
    let mut request = sample_request("req-1", ApprovalMode::Single);
    request.checks_verdict = Some("review".into());
    request.checks_summary = Some("review: small counts in counts.csv".into());
    request.checks_policy_version = Some("p-1".into());
    request.checks_mode = Some("advise".into());
    request
}

fn staging_report_key() -> String {
    crate::services::checks::report_key(&StagingLayout::new("ws-1", "req-1").unwrap())
}

fn stage_report(evidence: &Sources) -> Vec<u8> {
    let bytes = serde_json::to_vec_pretty(&report()).unwrap();
    evidence
        .sources
        .objects
        .put_object(STAGING, &staging_report_key(), bytes.clone());
    bytes
}

#[tokio::test]
async fn when_a_reviewer_asks_during_review_then_the_staged_report_lists_the_findings() {
    let svc = service(vec![in_review()]);
    let evidence = sources();
    stage_report(&evidence);
    let view = svc
        .request_checks(&evidence, &caller("iris", &[IG]), "req-1")
        .await
        .unwrap();
    assert_eq!(view.source, "report");
    assert_eq!(view.report_location.as_deref(), Some("staging"));
    assert_eq!(view.files_checked, Some(2));
    let file = view
        .files
        .iter()
        .find(|f| f.path == "counts.csv")
        .expect("the flagged file is listed");
    assert_eq!(file.verdict, "review");
    assert!(file
        .findings
        .iter()
        .any(|f| f.count >= 1 && !f.locations.is_empty()));
    assert!(
        view.files.iter().all(|f| f.path != "notes.txt"),
        "files without findings are not listed"
    );
    assert!(!view.counts_by_rule.is_empty());
    assert!(view.rules_applied.len() > 1);
    // Nothing is audited for a read.
    assert!(svc.audit.events().is_empty());
}

#[tokio::test]
async fn when_a_caller_is_in_no_reviewer_group_then_checks_are_refused_before_the_request_is_read()
{
    let svc = service(vec![in_review()]);
    let evidence = sources();
    stage_report(&evidence);
    for (who, groups) in [
        ("other", vec!["OtherProjectIG"]),
        ("cus", vec![CUSTODIAN]),
        ("nobody", vec![]),
    ] {
        for id in ["req-1", "no-such-request"] {
            let err = svc
                .request_checks(&evidence, &caller(who, &groups), id)
                .await
                .unwrap_err();
            assert_eq!(err.error_type(), "Forbidden", "{who} {id}: {err}");
        }
    }
    assert!(svc.audit.events().is_empty());
}

#[tokio::test]
async fn when_the_pool_no_longer_grants_the_reviewer_group_then_checks_are_refused_and_audited() {
    let svc = service(vec![in_review()]);
    let evidence = sources();
    stage_report(&evidence);
    // The token still says IG; the pool moved the user to another project's group.
    svc.directory.set_groups("iris", &["OtherProjectIG"]);
    let err = svc
        .request_checks(&evidence, &caller("iris", &[IG]), "req-1")
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "Forbidden");
    let events = svc.audit.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, "checks_read");
    assert_eq!(events[0].outcome, "refused");
}

#[tokio::test]
async fn when_the_request_is_unknown_then_checks_and_evidence_are_not_found() {
    let svc = service(vec![]);
    let evidence = sources();
    let err = svc
        .request_checks(&evidence, &caller("iris", &[IG]), "req-404")
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "NotFound");
    let err = svc
        .request_evidence(&evidence, &caller("iris", &[IG]), "req-404")
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "NotFound");
    let err = svc
        .dispatch_with(
            &evidence,
            ApiEvent {
                field: "requestChecks".into(),
                identity: caller("iris", &[IG]),
                arguments: serde_json::json!({}),
                selection: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "ValidationError");
}

#[tokio::test]
async fn when_the_staging_area_was_cleaned_after_a_rejection_then_only_the_summary_is_served() {
    let mut request = in_review();
    request.egress_status = EgressStatus::Rejected;
    let svc = service(vec![request, sample_request("req-2", ApprovalMode::Single)]);
    let evidence = sources();
    let view = svc
        .request_checks(&evidence, &caller("rita", &[RIT]), "req-1")
        .await
        .unwrap();
    assert_eq!(view.source, "summary");
    assert_eq!(view.verdict.as_deref(), Some("review"));
    assert!(view.files.is_empty());
    let view = svc
        .request_checks(&evidence, &caller("rita", &[RIT]), "req-2")
        .await
        .unwrap();
    assert_eq!(view.source, "none");
}

/// Releases req-1 as `copy-to-datalake` does (record, signature, report copy beside the
/// archive), and records one download. The report stays in the staging area here: the
/// copy beside the archive is served first.
async fn release_it(svc: &Service, evidence: &Sources) -> Vec<u8> {
    let report_bytes = stage_report(evidence);
    prepare_release(svc, evidence).await.unwrap();
    svc.audit
        .append(&AuditEvent {
            egress_request_id: "req-1".into(),
            at: "2024-05-03T12:00:00.000Z".into(),
            actor: "cus".into(),
            actor_email: Some("custodian@example.org".into()),
            action: "download".into(),
            outcome: "success".into(),
            detail: serde_json::json!({"download_count": 1}),
        })
        .await
        .unwrap();
    report_bytes
}

/// `release::prepare` of req-1 with the staged report, signed, beside its archive.
async fn prepare_release(
    svc: &Service,
    evidence: &Sources,
) -> crate::error::Result<release::ReleaseFiles> {
    let request = svc.store.get_request("req-1").await.unwrap().unwrap();
    let manifest = Manifest {
        egress_request_id: "req-1".into(),
        workspace_id: "ws-1".into(),
        source_bucket: "swb".into(),
        snapshot_location: "arn:aws:s3:::n/s.json".into(),
        files: vec![ManifestEntry {
            path: "counts.csv".into(),
            source_key: "ws-1/counts.csv".into(),
            version_id: "v1".into(),
            size: CSV.len() as u64,
            sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(CSV)),
        }],
    };
    let archive_key = keys::archive_key("ws-1", "req-1").unwrap();
    let report_ref = ObjectRef::new(STAGING, staging_report_key());
    let signer = release::SignerHandle::new(evidence.sources.key.clone());
    release::prepare(
        &evidence.sources.objects,
        &svc.audit,
        &svc.clock,
        Some(&signer),
        ReleaseTarget {
            bucket: DATALAKE,
            kms_key_arn: "arn:datalake",
            archive_key: &archive_key,
            checks_report: Some(&report_ref),
        },
        &request,
        &manifest,
        "staging-manifest-sha",
    )
    .await
}

#[tokio::test]
async fn when_the_reports_copy_cannot_be_written_then_no_record_names_it_and_a_rerun_writes_both() {
    // The record and the report's copy are written side by side with the signing; the record
    // must never exist without the copy it names, or a re-run would reuse that record and
    // leave the archive's report missing.
    let svc = service(vec![released()]);
    let evidence = sources();
    stage_report(&evidence);
    let archive_key = keys::archive_key("ws-1", "req-1").unwrap();
    let copy_key = release::beside(&archive_key, &release::checks_report_name("req-1"));
    let record_key = release::beside(&archive_key, &keys::archive_manifest_name("req-1"));
    let objects = &evidence.sources.objects;
    objects.deny_put(&copy_key);
    assert!(prepare_release(&svc, &evidence).await.is_err());
    assert!(objects.object(DATALAKE, &record_key).is_none());
    assert!(objects.object(DATALAKE, &copy_key).is_none());

    objects.allow_put(&copy_key);
    prepare_release(&svc, &evidence).await.unwrap();
    assert!(objects.object(DATALAKE, &record_key).is_some());
    assert!(objects.object(DATALAKE, &copy_key).is_some());
}

fn released() -> EgressRequest {
    let mut request = approved(in_review(), 1);
    request.ig_reviewer_1_decision = Some(crate::model::Decision::Approved);
    request
}

#[tokio::test]
async fn when_released_then_the_report_beside_the_archive_is_served_and_the_record_signs_it() {
    let svc = service(vec![released()]);
    let evidence = sources();
    let report_bytes = release_it(&svc, &evidence).await;
    let view = svc
        .request_checks(&evidence, &caller("iris", &[IG]), "req-1")
        .await
        .unwrap();
    assert_eq!(view.report_location.as_deref(), Some("release"));
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&report_bytes));
    assert_eq!(view.report_sha256.as_deref(), Some(sha.as_str()));
    assert!(view.files.iter().any(|f| f.path == "counts.csv"));

    let pack = svc
        .request_evidence(&evidence, &caller("cus", &[CUSTODIAN]), "req-1")
        .await
        .unwrap();
    let release = pack.release.expect("the signed record");
    let signed = verify_record(
        release.manifest.as_bytes(),
        release.signature_file.as_deref().unwrap().as_bytes(),
        &pack.signing_public_key,
    )
    .expect("the record verifies under the served key");
    assert_eq!(signed.egress_request_id, "req-1");
    assert_eq!(
        release.signature.as_deref(),
        Some(signed.signature.as_str())
    );
    // The record states the checks, bound to the report's digest, and the checks policy.
    let record: Value = serde_json::from_str(&release.manifest).unwrap();
    assert_eq!(record["checks"]["report_sha256"], sha.as_str());
    assert_eq!(record["checks"]["verdict"], "review");
    assert!(record["checks"]["counts_by_rule"].is_object());
    assert!(record["policy_versions"]["checks_policy"].is_string());
    let checks = pack.checks.expect("the checks summary");
    assert_eq!(checks.report_sha256.as_deref(), Some(sha.as_str()));
    assert_eq!(checks.files_checked, Some(2));
    assert!(pack.audit_chain.valid, "{:?}", pack.audit_chain.first_break);
    assert!(pack.audit_chain.length >= 2);
    assert!(pack
        .audit_chain
        .events
        .iter()
        .any(|e| e.action == "release_signed"));
    assert_eq!(pack.downloads.len(), 1);
    assert_eq!(pack.downloads[0].who, "cus");
    // Another key does not verify the record.
    let other = LocalSigner::new(3).pem();
    let err = verify_record(
        release.manifest.as_bytes(),
        release.signature_file.as_deref().unwrap().as_bytes(),
        &other,
    )
    .unwrap_err();
    assert!(err.starts_with("SignatureInvalid"), "{err}");
    let mut edited = release.manifest.clone();
    edited = edited.replacen("\"review\"", "\"pass\"", 1);
    let err = verify_record(
        edited.as_bytes(),
        release.signature_file.as_deref().unwrap().as_bytes(),
        &pack.signing_public_key,
    )
    .unwrap_err();
    assert!(err.starts_with("ManifestEdited"), "{err}");
}

#[tokio::test]
async fn when_an_audit_event_is_edited_then_the_evidence_names_the_first_broken_link() {
    let svc = service(vec![released()]);
    let evidence = sources();
    release_it(&svc, &evidence).await;
    {
        let mut events = svc.audit.events.lock().unwrap();
        events[0].detail = serde_json::json!({"edited": true});
    }
    let pack = svc
        .request_evidence(&evidence, &caller("iris", &[IG]), "req-1")
        .await
        .unwrap();
    assert!(!pack.audit_chain.valid);
    let broken = pack.audit_chain.first_break.expect("a break");
    assert_eq!(broken.error, "EditedEvent");
    assert_eq!(broken.seq, 1);
}

#[tokio::test]
async fn when_a_caller_outside_the_api_groups_asks_for_evidence_or_the_key_then_forbidden() {
    let svc = service(vec![released()]);
    let evidence = sources();
    for id in ["req-1", "no-such-request"] {
        let err = svc
            .request_evidence(&evidence, &caller("other", &["OtherProjectIG"]), id)
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "Forbidden");
    }
    let err = svc
        .release_signing_key(&evidence, &caller("other", &["OtherProjectIG"]))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "Forbidden");
    let pem = svc
        .release_signing_key(&evidence, &caller("rita", &[RIT]))
        .await
        .unwrap();
    assert_eq!(pem, LocalSigner::default().pem());
}

#[tokio::test]
async fn when_an_admin_asks_for_evidence_or_the_key_then_both_are_served_until_they_leave_the_group(
) {
    let svc = service(vec![released()]);
    let evidence = sources();
    let ada = caller("ada", &[ADMIN]);
    let pack = svc
        .request_evidence(&evidence, &ada, "req-1")
        .await
        .unwrap();
    assert_eq!(pack.egress_request_id, "req-1");
    assert!(pack.audit_chain.valid);
    assert_eq!(
        svc.release_signing_key(&evidence, &ada).await.unwrap(),
        LocalSigner::default().pem()
    );
    // The admins cannot read the per-file findings (reviewers only).
    let err = svc
        .request_checks(&evidence, &ada, "req-1")
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "Forbidden");

    // The pool decides, not the token: removed from the group, refused (and audited).
    svc.directory.set_groups("ada", &[]);
    let err = svc
        .request_evidence(&evidence, &ada, "req-1")
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "Forbidden");
    let refusal = svc.audit.events().pop().expect("the refusal is audited");
    assert_eq!(
        (
            refusal.actor.as_str(),
            refusal.action.as_str(),
            refusal.outcome.as_str()
        ),
        ("ada", "evidence_read", "refused")
    );
}

#[tokio::test]
async fn when_dispatched_then_the_evidence_fields_answer_and_the_others_reach_the_web_apps_operations(
) {
    let svc = service(vec![in_review()]);
    let evidence = sources();
    stage_report(&evidence);
    let event = |field: &str, arguments: Value| ApiEvent {
        field: field.into(),
        identity: caller("iris", &[IG]),
        arguments,
        selection: None,
    };
    let id = serde_json::json!({"egress_request_id": "req-1"});
    let checks = svc
        .dispatch_with(&evidence, event("requestChecks", id.clone()))
        .await
        .unwrap();
    assert_eq!(checks["source"], "report");
    assert!(checks["files"][0]["findings"][0]["rule"].is_string());
    let pack = svc
        .dispatch_with(&evidence, event("requestEvidence", id))
        .await
        .unwrap();
    assert!(pack["release"].is_null(), "not released yet");
    assert_eq!(pack["checks"]["verdict"], "review");
    let key = svc
        .dispatch_with(&evidence, event("releaseSigningKey", Value::Null))
        .await
        .unwrap();
    assert!(key
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----"));
    let listed = svc
        .dispatch_with(&evidence, event("listRequests", Value::Null))
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
}
