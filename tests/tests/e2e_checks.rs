//! End to end: the automated output checks (issue 12) on the local stack. A submission with a
//! small-count table, a file of synthetic NHS numbers, the EICAR test file and a clean file:
//! the report beside the manifest, the verdict on the request and in the API, the reviewers'
//! notification, `advise` (the single-approval project) passing to review and `enforce` (the
//! dual-approval project) rejecting automatically with the files and reasons e-mailed. And the
//! reviewer API's `requestChecks` and `requestEvidence` on such a request, before and after its
//! approval.
#![cfg(all(feature = "e2e", feature = "e2e-api"))]

use std::time::Duration;

use e2e_tests::fixture::{parked, setup, stored, succeeded, TIMEOUT};
use e2e_tests::inspect;
use e2e_tests::stack::Stack;
use e2e_tests::swb::{self, Mode, Scenario, Submission, Submit};
use e2e_tests::wait;
use serde_json::{json, Value};
use shared::checks::Report;
use shared::model::{EgressRequest, EgressStatus, ReviewStage};

fn submit(stack: &Stack, mode: Mode) -> Submission {
    let mut how = Submit::new(mode);
    how.scenario = Scenario::OutputChecks;
    swb::submit(&stack.outputs, &how).expect("the SWB simulator submits")
}

async fn report(stack: &Stack, s: &Submission) -> Report {
    let bucket = stack.outputs.bucket("StagingBucket").expect("staging");
    let key = format!(
        ".manifests/{}/{}.checks.json",
        s.workspace_id, s.egress_request_id
    );
    let object = inspect::object(stack, bucket, &key, None)
        .await
        .expect("readable")
        .expect("the report is written beside the manifest");
    assert_eq!(object.server_side_encryption.as_deref(), Some("aws:kms"));
    serde_json::from_slice(&object.body).expect("the report is JSON")
}

fn file<'a>(report: &'a Report, path: &str) -> &'a shared::checks::FileReport {
    report
        .files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("{path} checked: {report:?}"))
}

fn rules(report: &Report, path: &str) -> Vec<String> {
    file(report, path)
        .findings
        .iter()
        .map(|f| f.rule.clone())
        .collect()
}

/// A dual-approval (`enforce`) submission, once its execution succeeded with the request
/// rejected by the checks.
async fn rejected_under_enforce() -> (Stack, Submission, EgressRequest) {
    let (stack, _api) = setup().await;
    let s = submit(&stack, Mode::Dual);
    succeeded(&stack, &s.egress_request_id).await;
    let request = stored(&stack, &s.egress_request_id).await;
    assert_eq!(request.egress_status, EgressStatus::Rejected);
    (stack, s, request)
}

#[tokio::test]
async fn when_advised_then_the_findings_reach_the_report_the_request_the_notification_and_the_api()
{
    let (stack, api) = setup().await;
    let s = submit(&stack, Mode::Single);
    let request = parked(&stack, &s.egress_request_id, ReviewStage::Ig).await;
    assert_eq!(request.checks_verdict.as_deref(), Some("block"));
    assert_eq!(request.checks_mode.as_deref(), Some("advise"));
    assert_eq!(request.checks_policy_version.as_deref(), Some("local-1"));
    let summary = request.checks_summary.clone().expect("summary stored");
    assert!(summary.starts_with("BLOCK"), "{summary}");
    for rule in [
        "pii-nhs-number 3",
        "malware-signature 1",
        "table-small-counts",
    ] {
        assert!(summary.contains(rule), "{rule} in {summary}");
    }
    assert!(request.checks_rejection_reason.is_none());

    let report = report(&stack, &s).await;
    assert_eq!(rules(&report, "checks/patients.txt"), ["pii-nhs-number"]);
    // The signature rule and the malware scanner's tag (the local stand-in for GuardDuty).
    assert_eq!(
        rules(&report, "checks/eicar.txt"),
        ["malware-scan", "malware-signature"]
    );
    assert_eq!(
        rules(&report, "checks/small_counts.csv"),
        ["table-small-counts"]
    );
    let small = &file(&report, "checks/small_counts.csv").findings[0];
    assert_eq!(small.count, 2, "4 and 7 are below 10; 120 is not");
    assert!(file(&report, "checks/clean.txt").findings.is_empty());
    // 9 MiB: read in ranges and its table parsed on a thread of its own; its one small count
    // is on its last line, so found only if every range was checked, in order.
    let large = file(&report, "checks/large_table.csv");
    assert_eq!(large.bytes, 13 + 943_719 * 10 + 7);
    assert_eq!(
        rules(&report, "checks/large_table.csv"),
        ["table-small-counts"]
    );
    assert_eq!(large.findings[0].count, 1);
    // Every file was checked by copy-to-staging as it staged it (the 9 MiB table while S3
    // copied it), and check-outputs took those checks over: the trail says so.
    let trail = shared::adapters::dynamodb_audit::DynamoDbAuditLog::new(
        stack.dynamodb.clone(),
        stack.outputs.table("AuditTable").expect("audit table"),
    );
    let events = shared::ports::AuditLog::trail(&trail, &s.egress_request_id)
        .await
        .expect("the trail")
        .events;
    let checked = events
        .iter()
        .find(|e| e.event.action == "output_checks")
        .expect("the checks audited");
    assert_eq!(
        checked.event.detail["checked_while_staged"],
        json!(request.staged_file_count.expect("staged files counted")),
        "{:?}",
        checked.event.detail
    );
    assert_eq!(
        (
            large.findings[0].locations[0].line,
            large.findings[0].locations[0].column
        ),
        (943_721, 2)
    );
    assert_eq!(report.rules_applied.small_count_threshold, 10);
    let json = serde_json::to_string(&report).unwrap();
    assert!(
        !json.contains("9423464939"),
        "an NHS number never appears in the report"
    );

    let published = wait::until("the IG notification", TIMEOUT, || async {
        let p = inspect::publications_about(&stack, "IgNotificationTopic", &s.egress_request_id)
            .await?;
        Ok(p.into_iter().next())
    })
    .await
    .expect("IG reviewers are notified");
    assert!(
        published.message.contains("Output checks: BLOCK"),
        "{}",
        published.message
    );
    assert!(
        published.message.contains("checks/eicar.txt"),
        "{}",
        published.message
    );

    let user = api.user("ig").expect("seeded").clone();
    let token = api.sign_in(&user).expect("signs in").access;
    let answer = api
        .call(
            Some(&token),
            "query { listRequests { egress_request_id checks_verdict checks_summary } }",
            json!({}),
        )
        .expect("the API answers");
    assert!(answer.error().is_none(), "{:?}", answer.body);
    let rows = answer
        .data("listRequests")
        .as_array()
        .cloned()
        .unwrap_or_default();
    let row: &Value = rows
        .iter()
        .find(|r| r["egress_request_id"] == s.egress_request_id.as_str())
        .expect("listed");
    assert_eq!(row["checks_verdict"], "block");
    assert_eq!(row["checks_summary"], summary.as_str());
}

#[tokio::test]
async fn when_enforced_and_a_file_blocks_then_the_request_is_rejected_and_the_researcher_told_why()
{
    let (stack, s, request) = rejected_under_enforce().await;
    assert_eq!(request.checks_mode.as_deref(), Some("enforce"));
    assert!(
        request.ig_reviewer_1_decision.is_none(),
        "no reviewer decided"
    );
    let reason = request.checks_rejection_reason.clone();
    let reason = reason.expect("reason stored");
    assert!(reason.contains("checks/eicar.txt: "), "{reason}");
    assert!(reason.contains("malware-signature"), "{reason}");
    assert!(
        reason.contains("checks/patients.txt: pii-nhs-number"),
        "{reason}"
    );
    assert!(!reason.contains("clean.txt"), "{reason}");
    let status = inspect::swb_status(&stack, &s.egress_store_id)
        .await
        .expect("readable");
    assert_eq!(status.as_deref(), Some("PENDING"), "SWB is released");
    let staged = inspect::staged_keys(&stack, &s.workspace_id, &s.egress_request_id)
        .await
        .expect("listable");
    assert!(staged.is_empty(), "staged copies deleted: {staged:?}");
    let email = wait::until("the rejection e-mail", Duration::from_secs(60), || async {
        Ok(inspect::emails_about(&stack, &s.egress_request_id)?
            .into_iter()
            .find(|m| m.subject.contains("rejected")))
    })
    .await
    .expect("the researcher is e-mailed");
    assert!(
        email
            .text
            .contains("Rejected automatically by the output checks"),
        "{}",
        email.text
    );
    assert!(email.text.contains("checks/eicar.txt"), "{}", email.text);
    assert!(!email.text.contains("9423464939"));
}

/// The reviewer API's evidence queries (issues 12 and 13) over GraphQL with real tokens: a
/// reviewer reads the per-file findings while the request waits and after its approval, and
/// the evidence pack: the signed release record (stating the checks), a valid audit chain, the
/// download, and a signature that verifies under the public key the API serves (which is the
/// stack's KMS key). Someone outside the reviewer groups is refused.
#[tokio::test]
async fn when_a_reviewer_queries_checks_and_evidence_after_approval_then_findings_chain_and_signature_hold(
) {
    use e2e_tests::driver::{default_driver, ReviewDriver, Reviewer};
    use shared::adapters::kms::KmsReleaseSigner;
    use shared::evidence::release::verify_record;
    use shared::model::Decision;
    use shared::ports::ReleaseSigner;

    const CHECKS: &str = "query($id: String!) { requestChecks(egress_request_id: $id) { \
        egress_request_id source report_location report_sha256 verdict policy_version mode \
        files_checked files_block counts_by_rule { rule count } small_count_threshold \
        files { path verdict findings { rule severity count locations sample message } } } }";
    const EVIDENCE: &str = "query($id: String!) { requestEvidence(egress_request_id: $id) { \
        egress_request_id egress_status signing_public_key \
        release { manifest_name manifest manifest_sha256 signature_file signature signature_key_id signing_algorithm } \
        checks { verdict policy_version report_sha256 counts_by_rule { rule count } } \
        audit_chain { valid length head_seq head_hash first_break { error seq } events { seq action outcome } } \
        downloads { who email when } } }";

    let (stack, api) = setup().await;
    let s = submit(&stack, Mode::Single);
    parked(&stack, &s.egress_request_id, ReviewStage::Ig).await;
    let token_of = |role: &str| {
        let user = api.user(role).expect("seeded").clone();
        api.sign_in(&user).expect("signs in").access
    };
    let ig = token_of("ig");
    let vars = json!({ "id": s.egress_request_id });
    let ask = |token: &str, query: &str, field: &str| {
        let answer = api
            .call(Some(token), query, vars.clone())
            .expect("the API answers");
        assert!(answer.error().is_none(), "{field}: {:?}", answer.body);
        answer.data(field).clone()
    };

    // In review: the report beside the manifest, every flagged file with its findings.
    let checks = ask(&ig, CHECKS, "requestChecks");
    assert_eq!(checks["source"], "report", "{checks}");
    assert_eq!(checks["report_location"], "staging");
    assert_eq!(checks["verdict"], "block");
    assert_eq!(checks["small_count_threshold"], 10);
    let files = checks["files"].as_array().expect("files");
    let file = |path: &str| {
        files
            .iter()
            .find(|f| f["path"] == path)
            .unwrap_or_else(|| panic!("{path} in {checks}"))
            .clone()
    };
    let nhs = file("checks/patients.txt");
    assert_eq!(nhs["findings"][0]["rule"], "pii-nhs-number");
    assert_eq!(nhs["findings"][0]["count"], 3);
    assert!(!nhs["findings"][0]["locations"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(file("checks/eicar.txt")["verdict"], "block");
    assert!(
        files.iter().all(|f| f["path"] != "checks/clean.txt"),
        "a clean file has no findings to list"
    );
    assert!(
        !checks.to_string().contains("9423464939"),
        "an NHS number never reaches the API"
    );

    // Outside the reviewer groups: refused, whatever the request.
    let outsider = token_of("outsider");
    let refused = api
        .call(Some(&outsider), CHECKS, vars.clone())
        .expect("the API answers");
    assert!(refused.error().is_some(), "{:?}", refused.body);
    assert!(refused.data("requestChecks").is_null());

    // Approve and download as reviewers do; the release is signed by the stack's key.
    let driver = default_driver(&stack);
    driver
        .decide(
            &s.egress_request_id,
            &Reviewer::ig(&stack),
            Decision::Approved,
            "aggregate outputs reviewed, evidence test",
        )
        .await
        .expect("the decision is accepted");
    succeeded(&stack, &s.egress_request_id).await;
    driver
        .download(&s.egress_request_id, &Reviewer::ig(&stack))
        .await
        .expect("the archive downloads");

    // Released: the findings are still served, from the copy the signed record binds.
    let checks = ask(&ig, CHECKS, "requestChecks");
    assert_eq!(checks["report_location"], "release", "{checks}");
    assert!(checks["files"].as_array().is_some_and(|f| !f.is_empty()));

    let pack = ask(&ig, EVIDENCE, "requestEvidence");
    assert_eq!(pack["egress_status"], "IGAPPROVED");
    let pem = pack["signing_public_key"].as_str().expect("the key");
    let key_arn = &stack.outputs.keys["ReleaseSigningKey"].arn;
    let stack_pem = KmsReleaseSigner::from_config(&stack.sdk, key_arn.clone())
        .public_key_pem()
        .await
        .expect("the stack's public key");
    assert_eq!(pem, stack_pem, "the API serves the stack's release key");
    let served_key = ask(&ig, "query { releaseSigningKey }", "releaseSigningKey");
    assert_eq!(served_key, pem);
    let release = &pack["release"];
    let manifest = release["manifest"].as_str().expect("the signed record");
    let signed = verify_record(
        manifest.as_bytes(),
        release["signature_file"]
            .as_str()
            .expect("the signature")
            .as_bytes(),
        pem,
    )
    .expect("the record's signature verifies under the served key");
    assert_eq!(signed.egress_request_id, s.egress_request_id);
    assert_eq!(release["signature"], signed.signature.as_str());
    assert_eq!(release["signature_key_id"], signed.key_id.as_str());
    let record: Value = serde_json::from_str(manifest).expect("JSON");
    assert_eq!(record["checks"]["verdict"], "block");
    assert_eq!(record["checks"]["report_sha256"], checks["report_sha256"]);
    assert_eq!(record["policy_versions"]["checks_policy"], "local-1");
    assert_eq!(pack["checks"]["report_sha256"], checks["report_sha256"]);

    let chain = &pack["audit_chain"];
    assert_eq!(chain["valid"], true, "{chain}");
    assert!(chain["first_break"].is_null());
    let actions: Vec<&str> = chain["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for expected in ["output_checks", "decision", "release_signed", "download"] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
    let downloads = pack["downloads"].as_array().expect("downloads");
    assert_eq!(downloads.len(), 1, "{downloads:?}");
    assert!(downloads[0]["when"].is_string());

    // The record's bytes as served are the archive's: a one-byte edit no longer verifies.
    let edited = manifest.replacen("\"block\"", "\"pass\"", 1);
    let err = verify_record(
        edited.as_bytes(),
        release["signature_file"].as_str().unwrap().as_bytes(),
        pem,
    )
    .unwrap_err();
    assert!(err.starts_with("ManifestEdited"), "{err}");
}

/// The malware scanner (issue 12): the local stack's stand-in for GuardDuty Malware Protection
/// for S3 tags each staged object as it is written; `check-outputs` waits for the tags, and
/// under `enforce` the EICAR file's `THREATS_FOUND` alone is enough to reject the request,
/// named in the reason the researcher gets, while the clean files' `NO_THREATS_FOUND` adds
/// nothing.
#[tokio::test]
async fn when_the_scanner_tags_the_eicar_file_threats_found_under_enforce_then_the_request_is_rejected_naming_the_scan(
) {
    let (stack, s, request) = rejected_under_enforce().await;
    let reason = request.checks_rejection_reason.clone();
    let reason = reason.expect("reason stored");
    assert!(
        reason
            .contains("checks/eicar.txt: malware-scan (1x): The staging bucket's malware scanner"),
        "{reason}"
    );
    let summary = request.checks_summary.clone().expect("summary stored");
    assert!(
        summary.contains("malware-scan 1"),
        "only the EICAR file: {summary}"
    );
    assert!(
        !summary.contains("malware-scan-not-finished"),
        "every staged object was tagged in time: {summary}"
    );
    let alert = wait::until("the admin's malware alert", TIMEOUT, || async {
        let p =
            inspect::publications_about(&stack, "AdminAlertTopic", &s.egress_request_id).await?;
        Ok(p.into_iter().find(|m| {
            m.message
                .contains("malware scanner found threats in 1 staged file")
        }))
    })
    .await
    .expect("the admin is alerted");
    assert!(
        alert.message.contains("checks/eicar.txt"),
        "{}",
        alert.message
    );
}
