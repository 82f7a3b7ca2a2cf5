//! End to end: the automated output checks (issue 12) on the local stack. A submission with a
//! small-count table, a file of synthetic NHS numbers, the EICAR test file and a clean file:
//! the report beside the manifest, the verdict on the request and in the API, the reviewers'
//! notification, `advise` (the single-approval project) passing to review and `enforce` (the
//! dual-approval project) rejecting automatically with the files and reasons e-mailed.
#![cfg(all(feature = "e2e", feature = "e2e-api"))]

use std::time::Duration;

use aws_sdk_sfn::types::ExecutionStatus;
use e2e_tests::fixture::{parked, setup, stored, TIMEOUT};
use e2e_tests::inspect;
use e2e_tests::stack::Stack;
use e2e_tests::swb::{self, Mode, Scenario, Submission, Submit};
use e2e_tests::wait;
use serde_json::{json, Value};
use shared::checks::Report;
use shared::model::{EgressStatus, ReviewStage};

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
    assert_eq!(rules(&report, "checks/eicar.txt"), ["malware-signature"]);
    assert_eq!(
        rules(&report, "checks/small_counts.csv"),
        ["table-small-counts"]
    );
    let small = &file(&report, "checks/small_counts.csv").findings[0];
    assert_eq!(small.count, 2, "4 and 7 are below 10; 120 is not");
    assert!(file(&report, "checks/clean.txt").findings.is_empty());
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
    let (stack, _api) = setup().await;
    let s = submit(&stack, Mode::Dual);
    let end = inspect::execution_end(
        &stack,
        &stack.outputs.execution_arn(&s.egress_request_id),
        TIMEOUT,
    )
    .await
    .expect("the execution ends without a reviewer");
    assert_eq!(end.status, ExecutionStatus::Succeeded, "{end:?}");
    let request = stored(&stack, &s.egress_request_id).await;
    assert_eq!(request.egress_status, EgressStatus::Rejected);
    assert_eq!(request.checks_mode.as_deref(), Some("enforce"));
    assert!(
        request.ig_reviewer_1_decision.is_none(),
        "no reviewer decided"
    );
    let reason = request
        .checks_rejection_reason
        .clone()
        .expect("reason stored");
    assert!(
        reason.contains("checks/eicar.txt: malware-signature"),
        "{reason}"
    );
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
