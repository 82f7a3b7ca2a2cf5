//! `make bench-e2e-staging`: staging and `listRequests` on the local stack, against their
//! limits, with the figures the README's performance table shows.
//!
//! Staging: `BENCH_STAGING_FILES` (1,000) objects of 1-32 KiB are staged by the real
//! `StagingStep` (S3 and DynamoDB adapters, `COPY_CONCURRENCY` 8) and, as the baseline, by
//! one `CopyObject` per object, one at a time; both at loopback and with a fixed latency
//! added to every S3/DynamoDB call by the router's fault injector
//! (`POST /_local/faults {"latency_ms": ..}`; calls marked as the harness's are never slowed,
//! so the setup is not).
//!
//! `listRequests`: the requests table is bulk-loaded (`BatchWriteItem`) to 10,000 and then
//! 100,000 requests (1% awaiting IG), and the reviewer API's list service reads the default
//! page (the web app's query: no arguments, all 29 fields) through the DynamoDB adapter:
//! latency, bytes returned, items read (DynamoDB's `ScannedCount`, summed over the queries).
//!
//! A program with its own output (harness = false); it needs a running stack.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use aws_sdk_s3::primitives::ByteStream;
use e2e_tests::stack::Stack;
use tokio::task::JoinSet;
use serde_json::json;
use shared::adapters::dynamodb::{DynamoDbAuditLog, DynamoDbRequestStore};
use shared::adapters::s3::S3ObjectStore;
use shared::domain::review::federation::IdpGroupMap;
use shared::domain::review::ReviewPolicy;
use shared::fakes::{FakeDownloadLinks, FakeWorkflowCallbacks, InMemoryAuditLog, InMemoryDirectory};
use shared::model::{CallerIdentity, EgressStatus, ReviewStage, StagingInput};
use shared::ports::SystemClock;
use shared::services::review_api::{ReviewService, ReviewSettings};
use shared::services::staging::{StagingSettings, StagingStep};
use shared::services::Step;

const WORKSPACE: &str = "ws-bench";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// SDK clients as a function has them: not marked as the harness, so the router slows them.
fn function_clients(stack: &Stack) -> (aws_sdk_s3::Client, aws_sdk_dynamodb::Client) {
    let mut builder = stack.sdk.clone().into_builder();
    builder.set_app_name(None);
    let sdk = builder.build();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    (s3, aws_sdk_dynamodb::Client::new(&sdk))
}

fn set_latency(stack: &Stack, latency_ms: u64) -> Result<()> {
    let url = format!("{}/_local/faults", stack.outputs.endpoint);
    let body = json!({"rate": 0, "latency_ms": latency_ms, "services": ["s3", "dynamodb"],
                      "callers": ["functions"]});
    ureq::post(&url)
        .header("content-type", "application/json")
        .send(body.to_string())
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("POST {url}: {e}"))
}

/// 1-32 KiB, deterministic.
fn size_of(i: usize) -> usize {
    1024 + (i * 7919 % 31) * 1024 + i % 1024
}

struct Staged {
    snapshot_location: String,
    keys: Vec<(String, String)>,
}

async fn upload_objects(stack: &Stack, files: usize) -> Result<Staged> {
    let egress = stack.outputs.bucket("SwbEgressStoreBucket")?.to_string();
    let notify = stack.outputs.bucket("SwbNotificationBucket")?.to_string();
    let mut keys: Vec<(usize, String, String)> = Vec::with_capacity(files);
    for chunk in (0..files).collect::<Vec<_>>().chunks(32) {
        let mut set = JoinSet::new();
        for &i in chunk {
            let (s3, egress) = (stack.s3.clone(), egress.clone());
            set.spawn(async move {
                let key = format!("{WORKSPACE}/bench/d{:02}/file-{i:05}.csv", i % 17);
                let out = s3
                    .put_object()
                    .bucket(&egress)
                    .key(&key)
                    .body(ByteStream::from(vec![b'a' + (i % 26) as u8; size_of(i)]))
                    .send()
                    .await
                    .context("PutObject")?;
                Ok::<_, anyhow::Error>((i, key, out.version_id().unwrap_or_default().to_string()))
            });
        }
        while let Some(done) = set.join_next().await {
            keys.push(done??);
        }
    }
    let objects: Vec<serde_json::Value> = keys
        .iter()
        .map(|(i, k, v)| {
            json!({"Key": k, "VersionId": v, "Size": size_of(*i), "ETag": "\"x\"",
                   "StorageClass": "STANDARD", "LastModified": "2024-05-01T00:00:00.000Z"})
        })
        .collect();
    let keys: Vec<(String, String)> = keys.into_iter().map(|(_, k, v)| (k, v)).collect();
    let snapshot_key = format!("{WORKSPACE}/bench-egress-store-ver1.json");
    stack
        .s3
        .put_object()
        .bucket(&notify)
        .key(&snapshot_key)
        .body(ByteStream::from(serde_json::to_vec(&json!({ "objects": objects }))?))
        .send()
        .await
        .context("PutObject snapshot")?;
    Ok(Staged {
        snapshot_location: format!("arn:aws:s3:::{notify}/{snapshot_key}"),
        keys,
    })
}

async fn put_request(stack: &Stack, id: &str) -> Result<()> {
    let mut request = shared::testdata::request(id, EgressStatus::Processing);
    request.workspace_id = WORKSPACE.into();
    let item: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> =
        serde_dynamo::to_item(&request)?;
    stack
        .dynamodb
        .put_item()
        .table_name(stack.outputs.table("RequestsTable")?)
        .set_item(Some(item))
        .send()
        .await
        .context("PutItem request")?;
    Ok(())
}

/// The real step, as `copy-to-staging` runs it.
async fn run_step(stack: &Stack, staged: &Staged, run: &str) -> Result<Duration> {
    let id = format!("bench-{run}");
    put_request(stack, &id).await?;
    let (s3, dynamodb) = function_clients(stack);
    let step = StagingStep {
        objects: S3ObjectStore::new(s3),
        requests: DynamoDbRequestStore::new(dynamodb.clone(), stack.outputs.table("RequestsTable")?),
        audit: DynamoDbAuditLog::new(dynamodb, stack.outputs.table("AuditTable")?),
        clock: SystemClock,
        settings: StagingSettings::new(
            stack.outputs.bucket("StagingBucket")?,
            &stack.outputs.keys.get("StagingKey").context("StagingKey")?.arn,
            8,
        ),
    };
    let started = Instant::now();
    let result = step
        .run(&StagingInput {
            egress_request_id: id,
            workspace_id: WORKSPACE.into(),
            s3_egress_store_bucket: stack.outputs.bucket("SwbEgressStoreBucket")?.into(),
            s3_egress_store_bucket_path: format!("{WORKSPACE}/"),
            s3_egress_store_object_list_location: staged.snapshot_location.clone(),
        })
        .await?;
    anyhow::ensure!(result.file_count as usize == staged.keys.len(), "staged {}", result.file_count);
    Ok(started.elapsed())
}

/// The baseline: one `CopyObject` per object, one at a time, nothing else.
async fn copy_one_at_a_time(stack: &Stack, staged: &Staged, run: &str) -> Result<Duration> {
    let (s3, _) = function_clients(stack);
    let egress = stack.outputs.bucket("SwbEgressStoreBucket")?;
    let staging = stack.outputs.bucket("StagingBucket")?;
    let kms = &stack.outputs.keys.get("StagingKey").context("StagingKey")?.arn;
    let started = Instant::now();
    for (key, version) in &staged.keys {
        s3.copy_object()
            .bucket(staging)
            .key(format!("baseline-{run}/{key}"))
            .copy_source(format!("{egress}/{key}?versionId={version}"))
            .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
            .ssekms_key_id(kms)
            .send()
            .await
            .context("CopyObject")?;
    }
    Ok(started.elapsed())
}

async fn bench_staging(stack: &Stack) -> Result<()> {
    let files = env_usize("BENCH_STAGING_FILES", 1000);
    let staged = upload_objects(stack, files).await?;
    let bytes: usize = (0..files).map(size_of).sum();
    println!("staging {files} objects of 1-32 KiB ({:.1} MiB), COPY_CONCURRENCY 8", bytes as f64 / 1048576.0);
    println!("| added latency per request | our step | one CopyObject per object, one at a time | ratio |");
    println!("|---|---|---|---|");
    for latency in [0u64, 20] {
        set_latency(stack, latency)?;
        let step = run_step(stack, &staged, &format!("l{latency}")).await;
        let baseline = copy_one_at_a_time(stack, &staged, &format!("l{latency}")).await;
        set_latency(stack, 0)?;
        let (step, baseline) = (step?, baseline?);
        println!(
            "| {latency} ms | {:.2} s | {:.2} s | {:.1}x |",
            step.as_secs_f64(),
            baseline.as_secs_f64(),
            baseline.as_secs_f64() / step.as_secs_f64()
        );
    }
    Ok(())
}

/// Loads the requests table up to `total` requests (`have` already there); 1% await IG.
async fn load_requests(stack: &Stack, have: usize, total: usize) -> Result<()> {
    let table = stack.outputs.table("RequestsTable")?.to_string();
    let batches: Vec<Vec<usize>> = (have..total)
        .collect::<Vec<_>>()
        .chunks(25)
        .map(<[usize]>::to_vec)
        .collect();
    for group in batches.chunks(8) {
        let mut set = JoinSet::new();
        for batch in group.iter().cloned() {
            let (db, table) = (stack.dynamodb.clone(), table.clone());
            set.spawn(async move {
                let mut writes = Vec::new();
                for i in batch {
                    let id = format!("load-{i:06}");
                    let mut r = shared::testdata::request(&id, EgressStatus::Rejected);
                    // One submission a minute, the newest last.
                    let at = time::OffsetDateTime::UNIX_EPOCH
                        + time::Duration::minutes(28_000_000 + i as i64);
                    r.requested_dt = shared::ports::iso_millis(at);
                    r.updated_dt = r.requested_dt.clone();
                    if i % 100 == 0 {
                        r.egress_status = EgressStatus::Processing;
                        r.review_stage = Some(ReviewStage::Ig);
                        r.review_handle = Some(format!("handle-{i}"));
                        r.sfn_task_token = Some("token".into());
                    }
                    let item = serde_dynamo::to_item(&r)?;
                    writes.push(
                        WriteRequest::builder()
                            .put_request(PutRequest::builder().set_item(Some(item)).build()?)
                            .build(),
                    );
                }
                let mut pending = Some(writes);
                while let Some(w) = pending.take() {
                    let out = db
                        .batch_write_item()
                        .request_items(&table, w)
                        .send()
                        .await
                        .context("BatchWriteItem")?;
                    pending = out
                        .unprocessed_items
                        .and_then(|mut u| u.remove(&table))
                        .filter(|w| !w.is_empty());
                }
                Ok::<_, anyhow::Error>(())
            });
        }
        while let Some(done) = set.join_next().await {
            done??;
        }
    }
    Ok(())
}

async fn bench_list(stack: &Stack) -> Result<()> {
    let (_, dynamodb) = function_clients(stack);
    let ig = stack.outputs.project.ig_reviewer_group.clone();
    let rit = stack.outputs.project.rit_reviewer_group.clone();
    let service = ReviewService {
        store: DynamoDbRequestStore::new(dynamodb, stack.outputs.table("RequestsTable")?),
        directory: InMemoryDirectory::default(),
        workflow: FakeWorkflowCallbacks::default(),
        audit: InMemoryAuditLog::default(),
        links: FakeDownloadLinks::default(),
        clock: SystemClock,
        settings: ReviewSettings {
            policy: ReviewPolicy {
                ig_group: ig.clone(),
                rit_group: rit.clone(),
                download_groups: vec![ig.clone(), rit],
                max_downloads: 3,
            },
            datalake_bucket: "unused".into(),
            url_expiry: Duration::from_secs(300),
            list_max_age_days: 0,
            user_pool_id: None,
            idp_group_claim: "custom:idp_groups".into(),
            idp_group_map: IdpGroupMap::default(),
        },
    };
    let caller = CallerIdentity {
        sub: "bench".into(),
        username: "bench".into(),
        groups: vec![ig],
        ..CallerIdentity::default()
    };
    println!();
    println!("listRequests, default page (no arguments, all 29 fields), IG reviewer");
    println!("| stored requests | returned | bytes | items read | share of the table read | latency |");
    println!("|---|---|---|---|---|---|");
    let mut have = 0;
    for total in [10_000usize, 100_000] {
        let started = Instant::now();
        load_requests(stack, have, total).await?;
        eprintln!("loaded {total} requests in {:.0} s", started.elapsed().as_secs_f64());
        have = total;
        // One warm-up call, then the median of five.
        service.list_requests(&caller, &json!({}), None).await?;
        let mut runs = Vec::new();
        let mut last = None;
        for _ in 0..5 {
            let started = Instant::now();
            let listed = service.list_requests(&caller, &json!({}), None).await?;
            runs.push(started.elapsed());
            last = Some(listed);
        }
        runs.sort();
        let listed = last.context("no run")?;
        println!(
            "| {total} | {} | {} | {} | {:.2}% | {:.0} ms |",
            listed.items.len(),
            listed.bytes,
            listed.read,
            listed.read as f64 * 100.0 / total as f64,
            runs[2].as_secs_f64() * 1000.0
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let stack = Stack::connect().await?;
    let which = std::env::var("BENCH_E2E").unwrap_or_else(|_| "staging,list".into());
    if which.contains("staging") {
        bench_staging(&stack).await?;
    }
    if which.contains("list") {
        bench_list(&stack).await?;
    }
    Ok(())
}
