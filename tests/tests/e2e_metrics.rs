//! Metrics and the early e-mail, end to end on the local stack (feature `e2e`; the decisions
//! and the download go through the reviewer GraphQL API, which `make test-e2e` starts).
//!
//! The local Lambda service writes each function's stdout to `.local-stack/logs/lambda-<profile>.log`,
//! as Lambda writes it to the function's log group; CloudWatch would extract a metric from
//! every line that is an Embedded Metric Format document. These tests read those lines for
//! their own request (`egress_request_id` is a property of every request-scoped document) and
//! check the values against what the test itself submitted, decided and downloaded. The local
//! stack does not set `METRICS_NAMESPACE` / `PROJECT_NAME`, so the defaults apply.
#![cfg(feature = "e2e")]

use std::time::Instant;

use aws_sdk_sfn::types::ExecutionStatus;
use e2e_tests::driver::{default_driver, ReviewDriver, Reviewer};
use e2e_tests::fixture::{self, ended, TIMEOUT};
use e2e_tests::inspect::{self, SentEmail};
use e2e_tests::stack::Stack;
use e2e_tests::swb::{Mode, Scenario, Submit};
use e2e_tests::wait;
use serde_json::Value;
use shared::model::{Decision, ReviewStage};

/// Every EMF document the local functions wrote about request `id`, in order.
fn metric_docs(stack: &Stack, id: &str) -> Vec<Value> {
    let mut docs = Vec::new();
    for service in ["lambda-single", "lambda-dual"] {
        let Some(path) = stack.outputs.logs.get(service) else {
            continue;
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        docs.extend(
            text.lines()
                .filter(|line| line.contains("\"_aws\"") && line.contains(id))
                .filter_map(|line| serde_json::from_str::<Value>(line.trim()).ok())
                .filter(|doc| doc.get("_aws").is_some() && doc["egress_request_id"] == id),
        );
    }
    docs
}

/// The documents carrying metric `name`.
fn carrying<'a>(docs: &'a [Value], name: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d.get(name).is_some()).collect()
}

/// The one document carrying `name`, declared with `unit` in the default namespace.
fn one<'a>(docs: &'a [Value], name: &str, unit: &str) -> &'a Value {
    let found = carrying(docs, name);
    assert_eq!(found.len(), 1, "one {name} line: {found:#?}");
    let doc = found[0];
    let directive = &doc["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(
        directive["Namespace"],
        shared::metrics::DEFAULT_NAMESPACE,
        "{doc}"
    );
    assert!(
        directive["Metrics"]
            .as_array()
            .expect("Metrics")
            .iter()
            .any(|m| m["Name"] == name && m["Unit"] == unit),
        "{name} is declared in {unit}: {doc}"
    );
    assert_eq!(doc["Project"], shared::metrics::DEFAULT_PROJECT, "{doc}");
    assert_eq!(directive["Dimensions"][0][0], "Project", "{doc}");
    let at = doc["_aws"]["Timestamp"].as_i64().expect("Timestamp in ms");
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    assert!(
        (now - 600_000..=now + 1_000).contains(&at),
        "a current timestamp: {doc}"
    );
    doc
}

fn number(doc: &Value, name: &str) -> f64 {
    doc[name]
        .as_f64()
        .unwrap_or_else(|| panic!("{name} is a number: {doc}"))
}

/// The metric documents of `id` once one carries `last`.
async fn docs_once(stack: &Stack, id: &str, last: &str) -> Vec<Value> {
    wait::until(
        &format!("a {last} metric line for {id}"),
        TIMEOUT,
        || async {
            let docs = metric_docs(stack, id);
            Ok(docs.iter().any(|d| d.get(last).is_some()).then_some(docs))
        },
    )
    .await
    .expect("the metric line is written")
}

async fn received_email(stack: &Stack, id: &str) -> SentEmail {
    wait::until("the received e-mail", TIMEOUT, || async {
        Ok(inspect::emails_about(stack, id)?
            .into_iter()
            .find(|m| m.subject.starts_with("Egress request received")))
    })
    .await
    .expect("the requester is told the request was received")
}

#[tokio::test]
async fn when_a_request_is_approved_and_downloaded_then_each_step_logs_its_metrics_with_the_right_values(
) {
    let stack = fixture::connect().await;
    let started = Instant::now();
    let s = fixture::submit(&stack, Mode::Single);
    let id = s.egress_request_id.clone();
    fixture::parked(&stack, &id, ReviewStage::Ig).await;

    // The early e-mail: before any decision, to the submitter, with what was submitted and
    // the local review timeout (14 days).
    let email = received_email(&stack, &id).await;
    assert!(email.recipients.contains(&s.submitter.email), "{email:?}");
    assert_eq!(email.source, stack.outputs.email.sender);
    for expected in [
        format!("Files submitted: {} (", s.files.len()),
        "has been RECEIVED".to_string(),
        "up to 14 days".to_string(),
        "Information Governance reviewers have been notified".to_string(),
    ] {
        assert!(
            email.text.contains(&expected),
            "{expected:?} in {}",
            email.text
        );
    }
    let staged = fixture::stored(&stack, &id).await;
    assert!(
        staged.ig_reviewer_1_decision.is_none(),
        "received before any decision"
    );

    let driver = default_driver(&stack);
    let ig = Reviewer::ig(&stack);
    driver
        .decide(&id, &ig, Decision::Approved, "Aggregated counts only")
        .await
        .expect("the IG reviewer approves");
    let end = ended(&stack, &id).await;
    assert_eq!(end.status, ExecutionStatus::Succeeded, "{end:?}");
    let archive = driver.download(&id, &ig).await.expect("downloaded");
    let docs = docs_once(&stack, &id, "Downloads").await;
    let elapsed = started.elapsed().as_secs_f64();

    assert_eq!(
        number(
            one(&docs, "RequestsSubmitted", "Count"),
            "RequestsSubmitted"
        ),
        1.0
    );
    let staging = one(&docs, "BytesStaged", "Bytes");
    assert_eq!(number(staging, "BytesStaged"), s.total_bytes() as f64);
    assert_eq!(number(staging, "FilesStaged"), s.files.len() as f64);

    let decision = one(&docs, "Decisions", "Count");
    assert_eq!(number(decision, "Decisions"), 1.0);
    assert_eq!(
        (decision["Stage"].as_str(), decision["Outcome"].as_str()),
        (Some("IG"), Some("APPROVED"))
    );
    let waited = number(decision, "TimeToDecision");
    assert!(
        waited > 0.0 && waited < elapsed + 5.0,
        "waited {waited}s of {elapsed}s"
    );
    assert_eq!(
        decision["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        serde_json::json!([["Project", "Stage", "Outcome"], ["Project"]])
    );

    let archived = one(&docs, "BytesArchived", "Bytes");
    assert_eq!(number(archived, "BytesArchived"), archive.len() as f64);
    let rate = number(archived, "ArchiveThroughput");
    assert!(rate > 0.0, "{archived}");

    let completed = one(&docs, "RequestsCompleted", "Count");
    assert_eq!(completed["Outcome"], "APPROVED");
    let turnaround = number(completed, "Turnaround");
    assert!(
        turnaround >= waited && turnaround < elapsed + 5.0,
        "turnaround {turnaround}s"
    );

    assert_eq!(number(one(&docs, "Downloads", "Count"), "Downloads"), 1.0);
    assert!(carrying(&docs, "Failures").is_empty(), "{docs:#?}");
}

#[tokio::test]
async fn when_a_request_fails_then_its_failure_is_counted_by_cause_and_no_received_email_is_sent() {
    let stack = fixture::connect().await;
    let s = fixture::submit_as(
        &stack,
        &Submit {
            scenario: Scenario::MissingVersion,
            ..Submit::new(Mode::Single)
        },
    );
    let id = s.egress_request_id.clone();
    let end = ended(&stack, &id).await;
    assert_eq!(end.status, ExecutionStatus::Failed, "{end:?}");
    let docs = docs_once(&stack, &id, "Failures").await;
    let request = fixture::stored(&stack, &id).await;
    let failure = one(&docs, "Failures", "Count");
    assert_eq!(number(failure, "Failures"), 1.0);
    assert_eq!(
        failure["Cause"].as_str(),
        request.failure_error.as_deref(),
        "the cause is the recorded error name"
    );
    assert_eq!(failure["Cause"], "NotFound", "a missing version: {failure}");
    assert_eq!(
        one(&docs, "RequestsCompleted", "Count")["Outcome"],
        "FAILED"
    );
    assert!(
        carrying(&docs, "BytesStaged").is_empty(),
        "nothing was staged"
    );
    assert_eq!(carrying(&docs, "RequestsSubmitted").len(), 1);
    // Staging failed: the request never waited for review, so it was never "received".
    let mails = inspect::emails_about(&stack, &id).expect("the mail log");
    assert!(
        mails
            .iter()
            .all(|m| !m.subject.starts_with("Egress request received")),
        "{mails:?}"
    );
    assert!(
        mails
            .iter()
            .any(|m| m.subject.contains("could not be processed")),
        "{mails:?}"
    );
}
