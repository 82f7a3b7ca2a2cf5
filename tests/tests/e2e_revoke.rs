//! End to end: revoking a release (issue 14) on the local stack. A request approved through
//! the reviewer API is revoked by the TRE admin over GraphQL: it shows `REVOKED`, a reviewer's
//! download is refused, the archive is gone from its key (kept under `revoked/`), the signed
//! release record stays, the reason is in the audit chain, the requester and the reviewer are
//! told, a second revocation is a conflict, and a reviewer cannot revoke.
#![cfg(all(feature = "e2e", feature = "e2e-api"))]

use aws_sdk_sfn::types::ExecutionStatus;
use e2e_tests::driver::{default_driver, ReviewDriver, Reviewer};
use e2e_tests::fixture::{ended, parked, setup, submit};
use e2e_tests::graphql::web_app_download;
use e2e_tests::inspect;
use e2e_tests::swb::Mode;
use serde_json::json;
use shared::adapters::dynamodb::DynamoDbAuditLog;
use shared::evidence::chain;
use shared::model::{Decision, EgressStatus, ReviewStage};
use shared::ports::AuditLog;

const REVOKE: &str = "mutation($id: String!, $reason: String!) { \
    revokeRelease(egress_request_id: $id, reason: $reason) }";
const DOWNLOAD: &str = "mutation DownloadData($request: DownloadDataInput!) { \
    downloadData(request: $request) { presign_url } }";
const REASON: &str = "Identifiable data found after release (e2e revoke test)";
const EVIDENCE: &str = "query($id: String!) { requestEvidence(egress_request_id: $id) { \
    egress_status audit_chain { valid events { action outcome } } } }";

#[tokio::test]
async fn when_an_admin_revokes_an_approved_release_then_downloads_stop_and_the_archive_leaves_its_key(
) {
    let (stack, api) = setup().await;
    let s = submit(&stack, Mode::Single);
    let id = s.egress_request_id.clone();
    parked(&stack, &id, ReviewStage::Ig).await;
    default_driver(&stack)
        .decide(
            &id,
            &Reviewer::ig(&stack),
            Decision::Approved,
            "aggregate outputs only, revoke test",
        )
        .await
        .expect("the decision is accepted");
    let end = ended(&stack, &id).await;
    assert_eq!(end.status, ExecutionStatus::Succeeded, "{end:?}");

    let bucket = stack.outputs.bucket("DatalakeBucket").expect("datalake");
    let key = inspect::archive_key(&s.workspace_id, &id);
    let archive = inspect::object(&stack, bucket, &key, None)
        .await
        .expect("readable")
        .expect("the approved archive is in the datalake");
    let token_of = |role: &str| {
        let user = api.user(role).expect("seeded").clone();
        api.sign_in(&user).expect("signs in").access
    };
    let ig = token_of("ig");
    let admin = token_of("admin");
    let vars = json!({ "id": id, "reason": REASON });

    // A reviewer is not an admin: refused by the schema's first gate, nothing changes.
    let refused = api.call(Some(&ig), REVOKE, vars.clone()).expect("answers");
    assert!(refused.error().is_some(), "{:?}", refused.body);
    let row = api.row(&ig, &id).expect("listed");
    assert_eq!(row["egress_status"], "IGAPPROVED");

    let done = api
        .call(Some(&admin), REVOKE, vars.clone())
        .expect("answers");
    assert!(done.error().is_none(), "{:?}", done.body);
    assert_eq!(done.data("revokeRelease"), "Release revoked");

    // The request shows REVOKED and a download is refused at once.
    let row = api.row(&ig, &id).expect("listed");
    assert_eq!(row["egress_status"], "REVOKED", "{row}");
    let download = api
        .call(
            Some(&ig),
            DOWNLOAD,
            json!({ "request": web_app_download(&row) }),
        )
        .expect("answers");
    let error = download.error().expect("the download is refused");
    assert!(error.contains("REVOKED"), "{error}");
    assert!(download.data("downloadData").is_null());
    let stored = inspect::request(&stack, &id)
        .await
        .expect("readable")
        .expect("stored");
    assert_eq!(stored.egress_status, EgressStatus::Revoked);

    // The archive left its key (every version) and is kept, byte for byte, under revoked/.
    assert!(
        inspect::object(&stack, bucket, &key, None)
            .await
            .expect("readable")
            .is_none(),
        "the archive is gone from {key}"
    );
    let kept = inspect::object(&stack, bucket, &format!("revoked/{key}"), None)
        .await
        .expect("readable")
        .expect("the archive is kept under revoked/");
    assert_eq!(kept.body, archive.body);
    assert_eq!(kept.server_side_encryption.as_deref(), Some("aws:kms"));

    // The reason is in the audit chain, which still verifies.
    let audit = DynamoDbAuditLog::new(
        stack.dynamodb.clone(),
        stack.outputs.table("AuditTable").expect("audit table"),
    );
    let trail = audit.trail(&id).await.expect("trail");
    assert!(chain::verify(&trail).valid);
    let revoked = trail
        .events
        .iter()
        .map(|e| &e.event)
        .find(|e| e.action == "revoked" && e.outcome == "success")
        .expect("the revocation is audited");
    assert_eq!(revoked.detail["reason"], REASON);
    assert_eq!(revoked.detail["moved_to"], format!("revoked/{key}"));

    // The admin reads the evidence of what they revoked: the status, the verified chain
    // ending in the revocation, and the signing key.
    let evidence = api
        .call(Some(&admin), EVIDENCE, json!({ "id": id }))
        .expect("answers");
    assert!(evidence.error().is_none(), "{:?}", evidence.body);
    let pack = evidence.data("requestEvidence");
    assert_eq!(pack["egress_status"], "REVOKED", "{pack}");
    assert_eq!(pack["audit_chain"]["valid"], true, "{pack}");
    assert!(
        pack["audit_chain"]["events"]
            .as_array()
            .is_some_and(|events| events.iter().any(|e| e["action"] == "revoked")),
        "{pack}"
    );
    let key_pem = api
        .call(Some(&admin), "query { releaseSigningKey }", json!({}))
        .expect("answers");
    assert!(key_pem.error().is_none(), "{:?}", key_pem.body);
    assert!(key_pem
        .data("releaseSigningKey")
        .as_str()
        .is_some_and(|pem| pem.starts_with("-----BEGIN PUBLIC KEY-----")));

    // The requester and the reviewer who approved are told.
    let told: Vec<_> = inspect::emails_about(&stack, &id)
        .expect("the mail log")
        .into_iter()
        .filter(|m| m.subject.starts_with("Egress release revoked"))
        .collect();
    let reviewer_email = Reviewer::ig(&stack).email.clone();
    assert!(
        told.iter().any(|m| m.recipients.contains(&reviewer_email)),
        "{told:?}"
    );
    assert!(
        told.iter().any(|m| !m.recipients.contains(&reviewer_email)),
        "the requester has their own e-mail: {told:?}"
    );
    assert!(told.iter().all(|m| m.text.contains(REASON)));

    // Once only.
    let again = api.call(Some(&admin), REVOKE, vars).expect("answers");
    let error = again.error().expect("a second revocation is refused");
    assert!(error.contains("already been revoked"), "{error}");
}
