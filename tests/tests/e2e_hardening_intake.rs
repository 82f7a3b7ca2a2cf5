//! End-to-end tests of the intake and staging hardening (issue 8, defects 2 and 8), against
//! the local stack (feature `e2e`; run by `make test-e2e`, which starts and stops the stack).
//!
//! - A message for workspace A that carries workspace B's prefix or snapshot is refused by
//!   `start-workflow`: no execution, no request, neither SWB store touched.
//! - A submission holding `Data.csv` and `data.csv` (one file once extracted on Windows or
//!   macOS) is refused at staging before anything is copied: the request ends `FAILED` with
//!   both keys named, SWB goes back to `PENDING` and the researcher is told.
#![cfg(feature = "e2e")]

use aws_sdk_sfn::types::ExecutionStatus;
use e2e_tests::fixture::{self, TIMEOUT};
use e2e_tests::inspect;
use e2e_tests::stack::Stack;
use e2e_tests::swb::{self, Mode, Scenario, Submission, Submit};
use e2e_tests::timing::Timer;
use e2e_tests::wait;
use shared::model::EgressStatus;

fn prepared(stack: &Stack) -> Submission {
    swb::submit(
        &stack.outputs,
        &Submit {
            publish_times: 0,
            ..Submit::new(Mode::Single)
        },
    )
    .expect("the SWB simulator prepares a submission")
}

/// Publishes `message` to the single-approval project's SWB topic, as SWB (or anyone allowed
/// to publish there) would, and waits for `start-workflow` to finish with it.
async fn publish_and_wait(stack: &Stack, message: &serde_json::Value) -> inspect::AsyncInvocation {
    let sns = aws_sdk_sns::Client::new(&stack.sdk);
    let published = sns
        .publish()
        .topic_arn(stack.outputs.topic("SwbEgressTopic").expect("topic"))
        .message(message.to_string())
        .send()
        .await
        .expect("published");
    let id = published.message_id().expect("a message id").to_string();
    let mut done = inspect::deliveries_finished(stack, &[id], TIMEOUT)
        .await
        .expect("the delivery finishes");
    assert_eq!(done.len(), 1, "one delivery: {done:?}");
    done.remove(0)
}

#[tokio::test]
async fn when_a_message_for_one_workspace_carries_anothers_data_then_nothing_starts() {
    let timer = Timer::start("intake_cross_workspace_refused");
    let stack = fixture::connect().await;
    let a = prepared(&stack);
    let b = prepared(&stack);
    assert_ne!(a.workspace_id, b.workspace_id);

    let mut prefix_and_snapshot = a.message.clone();
    prefix_and_snapshot["s3_bucketpath"] = serde_json::json!(b.prefix);
    prefix_and_snapshot["egress_store_object_list_location"] =
        serde_json::json!(b.snapshot_location);
    let mut snapshot_only = a.message.clone();
    snapshot_only["egress_store_object_list_location"] = serde_json::json!(b.snapshot_location);

    for (forged, field) in [
        (prefix_and_snapshot, "s3_bucketpath"),
        (snapshot_only, "egress_store_object_list_location"),
    ] {
        let delivery = publish_and_wait(&stack, &forged).await;
        assert_eq!(delivery.function, "start-workflow", "{delivery:?}");
        assert_eq!(
            delivery.state, "error",
            "start-workflow refuses it: {delivery:?}"
        );
        let error = delivery
            .error
            .as_ref()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("ValidationError") && error.contains(field),
            "the refusal names {field}: {error}"
        );
    }

    assert_eq!(
        inspect::executions_named(&stack, &a.egress_request_id)
            .await
            .expect("listable"),
        0,
        "no execution starts"
    );
    assert!(
        inspect::request(&stack, &a.egress_request_id)
            .await
            .expect("readable")
            .is_none(),
        "no request item"
    );
    for s in [&a, &b] {
        assert_eq!(
            fixture::swb_status(&stack, &s.egress_store_id)
                .await
                .as_deref(),
            Some("PENDING"),
            "SWB store {} untouched",
            s.egress_store_id
        );
        let staged = inspect::staged_keys(&stack, &s.workspace_id, &a.egress_request_id)
            .await
            .expect("staging listable");
        assert!(staged.is_empty(), "nothing staged: {staged:?}");
    }
    timer.finish();
}

#[tokio::test]
async fn when_two_files_differ_only_in_case_then_the_request_fails_naming_both_and_nothing_is_staged(
) {
    let timer = Timer::start("staging_name_clash_failed");
    let stack = fixture::connect().await;
    let s = swb::submit(
        &stack.outputs,
        &Submit {
            scenario: Scenario::NameClash,
            ..Submit::new(Mode::Single)
        },
    )
    .expect("the SWB simulator submits");
    assert_eq!(s.clashing_keys.len(), 2, "{:?}", s.clashing_keys);

    let end = inspect::execution_end(
        &stack,
        &stack.outputs.execution_arn(&s.egress_request_id),
        TIMEOUT,
    )
    .await
    .expect("the execution ends");
    assert_eq!(end.status, ExecutionStatus::Failed, "{end:?}");
    assert_eq!(end.error.as_deref(), Some("ValidationError"), "{end:?}");

    let request = inspect::request(&stack, &s.egress_request_id)
        .await
        .expect("readable")
        .expect("the request is stored");
    assert_eq!(request.egress_status, EgressStatus::Failed);
    assert_eq!(request.failure_error.as_deref(), Some("ValidationError"));
    let cause = request.failure_cause.clone().unwrap_or_default();
    for key in &s.clashing_keys {
        assert!(
            cause.contains(key.as_str()),
            "the cause names {key}: {cause}"
        );
    }
    assert!(
        cause.contains("rename"),
        "the cause says what to do: {cause}"
    );
    assert_eq!(request.staged_file_count, None, "staging never completed");

    assert_eq!(
        fixture::swb_status(&stack, &s.egress_store_id)
            .await
            .as_deref(),
        Some("PENDING")
    );
    let staged = inspect::staged_keys(&stack, &s.workspace_id, &s.egress_request_id)
        .await
        .expect("staging listable");
    assert!(staged.is_empty(), "nothing staged: {staged:?}");

    let to = s.submitter.email.clone();
    let id = s.egress_request_id.clone();
    let email = wait::until("the requester's failure e-mail", TIMEOUT, || {
        let (to, id) = (to.clone(), id.clone());
        let stack = &stack;
        async move {
            Ok(inspect::emails_about(stack, &id)?
                .into_iter()
                .find(|m| m.recipients.contains(&to)))
        }
    })
    .await
    .expect("the requester is e-mailed");
    assert!(
        email.text.contains("could not be processed"),
        "{}",
        email.text
    );
    // The researcher is told which files to rename, not only that it failed.
    assert!(
        email.text.contains("What was wrong with the submission"),
        "{}",
        email.text
    );
    for key in &s.clashing_keys {
        let name = key.rsplit('/').next().unwrap_or(key);
        assert!(
            email.text.contains(name),
            "the e-mail names {name}: {}",
            email.text
        );
    }

    let events = inspect::history(&stack, &stack.outputs.execution_arn(&s.egress_request_id))
        .await
        .expect("history");
    assert_eq!(
        inspect::task_failures(&events),
        vec!["ValidationError".to_string()],
        "refused once, not retried"
    );
    let visited = inspect::states_entered(&events);
    assert!(
        !visited
            .iter()
            .any(|v| v == "NotifyIgReviewers" || v == "AwaitIgDecision"),
        "reviewers are never asked: {visited:?}"
    );
    timer.finish();
}
