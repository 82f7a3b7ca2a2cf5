//! An archive larger than one invocation writes, end to end on the local stack (issue 11).
//!
//! The local stack gives `copy-to-datalake` `ARCHIVE_SLICE_SECONDS=0`: each invocation writes
//! one part, saves its place and answers `complete: false`, and the state machine invokes it
//! again. A request of about 40 MiB therefore takes at least five invocations. Between two of
//! them the router's fault injector fails every `UploadPart` until one invocation has died
//! with a `TransientError`; the state machine retries it and the archive continues from the
//! last checkpoint. The archive is then unzipped and compared byte for byte with what was
//! submitted.
#![cfg(all(feature = "e2e", feature = "e2e-api"))]

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sfn::types::ExecutionStatus;
use e2e_tests::driver::{default_driver, ReviewDriver, Reviewer};
use e2e_tests::fixture::{self, connect, ended, start_execution, submit_as, TIMEOUT};
use e2e_tests::inspect::{self, Archive};
use e2e_tests::stack::{http_get_json, Stack};
use e2e_tests::swb::{Mode, Scenario, Submit};
use e2e_tests::wait;
use serde_json::{json, Value};
use shared::domain::intake::build_workflow_input;
use shared::model::{Decision, ReviewStage};

const MIB: usize = 1024 * 1024;

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 11) as u8)
        .collect()
}

fn faults_url(stack: &Stack) -> String {
    format!("{}/_local/faults", stack.outputs.endpoint)
}

fn faults_on(stack: &Stack, settings: Value) {
    ureq::post(&faults_url(stack))
        .send(settings.to_string())
        .expect("POST /_local/faults");
}

fn faults_off(stack: &Stack) {
    ureq::delete(&faults_url(stack))
        .call()
        .expect("DELETE /_local/faults");
}

/// Parts the saved checkpoint records, `None` while there is none.
async fn checkpointed_parts(stack: &Stack, workspace_id: &str, id: &str) -> Option<usize> {
    let bucket = stack.outputs.bucket("StagingBucket").expect("staging");
    let key = format!(".checkpoints/{workspace_id}/{id}.json");
    let object = inspect::object(stack, bucket, &key, None).await.ok()??;
    let checkpoint: Value = serde_json::from_slice(&object.body).ok()?;
    checkpoint["parts"].as_array().map(Vec::len)
}

#[tokio::test]
async fn when_an_archive_outlasts_an_invocation_then_it_continues_survives_a_crash_and_is_byte_exact(
) {
    let stack = connect().await;
    // Prepared as SWB does, then two large files join the snapshot before the workflow starts.
    let s = submit_as(
        &stack,
        &Submit {
            mode: Mode::Single,
            scenario: Scenario::Standard,
            publish_times: 0,
        },
    );
    let large = [
        ("large/first.bin", pattern(23 * MIB + 5, 1)),
        ("large/second.bin", pattern(15 * MIB, 2)),
    ];
    let mut listed = Vec::new();
    for (path, data) in &large {
        let key = format!("{}{path}", s.prefix);
        let put = stack
            .s3
            .put_object()
            .bucket(&s.bucket)
            .key(&key)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .expect("large file uploaded");
        listed.push(json!({
            "Key": key,
            "VersionId": put.version_id().expect("versioned"),
            "Size": data.len(),
        }));
    }
    let (snapshot_bucket, snapshot_key) = s
        .snapshot_location
        .trim_start_matches("arn:aws:s3:::")
        .split_once('/')
        .expect("bucket/key");
    let snapshot = inspect::object(&stack, snapshot_bucket, snapshot_key, None)
        .await
        .expect("readable")
        .expect("the snapshot exists");
    let mut snapshot: Value = serde_json::from_slice(&snapshot.body).expect("json");
    snapshot["objects"]
        .as_array_mut()
        .expect("objects")
        .extend(listed);
    stack
        .s3
        .put_object()
        .bucket(snapshot_bucket)
        .key(snapshot_key)
        .body(ByteStream::from(snapshot.to_string().into_bytes()))
        .send()
        .await
        .expect("snapshot rewritten");
    let input = build_workflow_input(&s.message.to_string(), &fixture::intake_config(&stack, 600))
        .expect("the message passes intake");
    start_execution(&stack, &input).await;

    let id = &s.egress_request_id;
    fixture::parked(&stack, id, ReviewStage::Ig).await;
    default_driver(&stack)
        .decide(
            id,
            &Reviewer::ig(&stack),
            Decision::Approved,
            "approved for release",
        )
        .await
        .expect("approved");

    // After the first continuation, every UploadPart fails until one invocation has died.
    wait::until("a first continuation", TIMEOUT, || async {
        Ok(checkpointed_parts(&stack, &s.workspace_id, id)
            .await
            .filter(|&n| n >= 1))
    })
    .await
    .expect("the archive continues");
    faults_on(
        &stack,
        json!({"rate": 1.0, "services": ["s3"], "operations": ["s3:UploadPart"],
               "kinds": ["internal"], "callers": ["functions"], "seed": 11}),
    );
    let arn = stack.outputs.execution_arn(id);
    let crashed = wait::until("an invocation dies", TIMEOUT, || async {
        let events = inspect::history(&stack, &arn).await?;
        let failures = inspect::task_failures(&events);
        Ok(failures
            .iter()
            .any(|f| f == "TransientError")
            .then_some(failures))
    })
    .await;
    faults_off(&stack);
    let failures = crashed.expect("an injected failure ends one invocation");
    let report = http_get_json(&faults_url(&stack)).expect("fault report");
    assert!(
        report["faults_total"].as_u64().unwrap_or(0) >= 1,
        "{report}"
    );

    let end = ended(&stack, id).await;
    assert_eq!(end.status, ExecutionStatus::Succeeded, "{end:?}");
    let events = inspect::history(&stack, &arn).await.expect("history");
    let invocations = inspect::states_entered(&events)
        .iter()
        .filter(|s| *s == "CopyToDatalake")
        .count();
    assert!(
        invocations >= 5,
        "{invocations} invocations of CopyToDatalake (at least three continuations and a crash)"
    );
    assert!(!failures.is_empty());

    let bucket = stack.outputs.bucket("DatalakeBucket").expect("datalake");
    let key = inspect::archive_key(&s.workspace_id, id);
    let archived = inspect::object(&stack, bucket, &key, None)
        .await
        .expect("readable")
        .expect("the archive exists");
    let archive = Archive::read(&archived.body).expect("a valid zip");
    for (path, data) in &large {
        assert!(
            archive.entries.get(*path) == Some(data),
            "{path} differs in the archive"
        );
    }
    for file in &s.files {
        let submitted = inspect::object(&stack, &s.bucket, &file.key, Some(&file.version_id))
            .await
            .expect("readable")
            .expect("the submitted version");
        assert_eq!(
            archive.entries.get(&file.path),
            Some(&submitted.body),
            "{}",
            file.path
        );
    }
    // Beside the files: the manifest, and the signed release record (evidence) after it.
    let manifest = format!("egress_manifest_{id}.json");
    assert!(archive.entries.contains_key(&manifest), "the manifest");
    let others: Vec<&String> = archive
        .entries
        .keys()
        .filter(|name| {
            !s.files.iter().any(|f| &f.path == *name)
                && !large.iter().any(|(path, _)| path == name)
                && **name != manifest
        })
        .collect();
    assert!(
        others.iter().all(|name| name.starts_with("egress_")),
        "only the service's own records beside the files: {others:?}"
    );
    assert_eq!(
        checkpointed_parts(&stack, &s.workspace_id, id).await,
        None,
        "the checkpoint is removed"
    );
    let staged = inspect::staged_keys(&stack, &s.workspace_id, id)
        .await
        .expect("listable");
    assert!(staged.is_empty(), "staging removed: {staged:?}");
}
