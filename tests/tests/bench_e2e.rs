//! `make bench-e2e-staging`: staging and `listRequests` on the local stack, against their
//! limits, with the figures the README's performance table shows.
//!
//! Staging: `BENCH_STAGING_FILES` (1,000) objects of 1-32 KiB are staged by the real
//! `StagingStep` (S3 and DynamoDB adapters, `COPY_CONCURRENCY` 8; `BENCH_STAGING_REPEAT` (3)
//! rounds, then the medians) and, as the baseline, by
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
//! A program with its own output (harness = false); it needs a running stack. With
//! `BENCH_ENDPOINT` set it runs against a bare moto server instead (buckets `bench-egress`,
//! `bench-notify`, `bench-staging`, tables `bench-requests` with both indexes and
//! `bench-audit`, KMS key `BENCH_KMS_KEY`): the added latency is then a sleep before every S3
//! call of the step (an `ObjectStore` wrapper) and of the baseline, not the router's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use aws_sdk_s3::primitives::ByteStream;
use e2e_tests::stack::Stack;
use serde_json::json;
use shared::adapters::dynamodb::{DynamoDbAuditLog, DynamoDbRequestStore};
use shared::adapters::s3::S3ObjectStore;
use shared::checks::ProjectPolicies;
use shared::domain::review::federation::IdpGroupMap;
use shared::domain::review::ReviewPolicy;
use shared::fakes::{
    Delayed, FakeDownloadLinks, FakeWorkflowCallbacks, InMemoryAuditLog, InMemoryDirectory,
    InMemoryObjectStore, InMemoryRequestStore,
};
use shared::model::{CallerIdentity, ChecksInput, EgressStatus, ReviewStage, StagingInput};
use shared::ports::SystemClock;
use shared::services::checks::{ChecksStep, MALWARE_SCAN_TAG};
use shared::services::review_api::{ReviewService, ReviewSettings};
use shared::services::staging::{StagingSettings, StagingStep};
use shared::services::Step;
use tokio::task::JoinSet;

const WORKSPACE: &str = "ws-bench";

/// Where the benchmark runs: the stack's names, or a bare moto server's.
struct Target {
    /// Marked as the harness (never slowed by the router).
    s3: aws_sdk_s3::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    /// As a function has them (slowed by the router).
    fn_s3: aws_sdk_s3::Client,
    fn_dynamodb: aws_sdk_dynamodb::Client,
    requests: String,
    audit: String,
    egress: String,
    notify: String,
    staging: String,
    kms: String,
    ig: String,
    rit: String,
    /// The router's endpoint, when latency is injected there.
    router: Option<String>,
}

impl Target {
    async fn new() -> Result<Self> {
        if let Ok(endpoint) = std::env::var("BENCH_ENDPOINT") {
            let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("eu-west-2"))
                .endpoint_url(endpoint)
                .credentials_provider(aws_sdk_s3::config::Credentials::new(
                    "bench", "bench", None, None, "bench",
                ))
                .load()
                .await;
            let s3 = aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&sdk)
                    .force_path_style(true)
                    .build(),
            );
            let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
            return Ok(Self {
                fn_s3: s3.clone(),
                fn_dynamodb: dynamodb.clone(),
                s3,
                dynamodb,
                requests: "bench-requests".into(),
                audit: "bench-audit".into(),
                egress: "bench-egress".into(),
                notify: "bench-notify".into(),
                staging: "bench-staging".into(),
                kms: std::env::var("BENCH_KMS_KEY").context("BENCH_KMS_KEY")?,
                ig: "IGApprover".into(),
                rit: "ResearchITAdmin".into(),
                router: None,
            });
        }
        let stack = Stack::connect().await?;
        let (fn_s3, fn_dynamodb) = function_clients(&stack);
        let o = &stack.outputs;
        Ok(Self {
            s3: stack.s3.clone(),
            dynamodb: stack.dynamodb.clone(),
            fn_s3,
            fn_dynamodb,
            requests: o.table("RequestsTable")?.into(),
            audit: o.table("AuditTable")?.into(),
            egress: o.bucket("SwbEgressStoreBucket")?.into(),
            notify: o.bucket("SwbNotificationBucket")?.into(),
            staging: o.bucket("StagingBucket")?.into(),
            kms: o.keys.get("StagingKey").context("StagingKey")?.arn.clone(),
            ig: o.project.ig_reviewer_group.clone(),
            rit: o.project.rit_reviewer_group.clone(),
            router: Some(o.endpoint.clone()),
        })
    }
}

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

fn set_latency(t: &Target, latency_ms: u64) -> Result<()> {
    let Some(router) = &t.router else {
        return Ok(());
    };
    let url = format!("{router}/_local/faults");
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

/// Deterministic bytes that are not text (xorshift; zeros included), as a binary output.
fn binary_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A generated aggregate table of exactly `len` bytes: a count column (one count in 40
/// below 10, so the small-count rule has findings), a rate, text columns; no personal data.
fn csv_bytes(len: usize, seed: usize) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::with_capacity(len + 128);
    out.extend_from_slice(b"area,year,sex,age_band,count,rate_per_1000,note\n");
    let mut row = seed;
    while out.len() < len {
        let count = if row % 40 == 7 {
            row % 9 + 1
        } else {
            10 + row * 7 % 990
        };
        // Writing to a Vec cannot fail.
        let _ = writeln!(
            out,
            "area-{:03},{},{},{}-{},{},{}.{},aggregated over the reporting period",
            row % 317,
            2000 + row % 24,
            ["female", "male"][row % 2],
            row % 9 * 10,
            row % 9 * 10 + 9,
            count,
            row % 97,
            row % 10
        );
        row += 1;
    }
    out.truncate(len);
    out
}

/// The staging phase's objects: `files` objects of 1-32 KiB, one in four a CSV table.
fn small_files(files: usize) -> Vec<(String, Vec<u8>)> {
    (0..files)
        .map(|i| {
            let dir = i % 17;
            if i % 4 == 0 {
                (
                    format!("bench/d{dir:02}/table-{i:05}.csv"),
                    csv_bytes(size_of(i), i),
                )
            } else {
                (
                    format!("bench/d{dir:02}/file-{i:05}.parquet"),
                    binary_bytes(size_of(i), i as u64),
                )
            }
        })
        .collect()
}

struct Staged {
    snapshot_location: String,
    keys: Vec<(String, String)>,
    bytes: u64,
}

/// Puts `files` (paths relative to the workspace) into the egress store and a snapshot
/// listing them (`set` names the snapshot) into the notification bucket.
async fn upload_files(t: &Target, set: &str, files: Vec<(String, Vec<u8>)>) -> Result<Staged> {
    let egress = t.egress.clone();
    let notify = t.notify.clone();
    let mut listed: Vec<(usize, String, String, usize)> = Vec::with_capacity(files.len());
    let mut files = files.into_iter().enumerate().peekable();
    while files.peek().is_some() {
        let mut set_ = JoinSet::new();
        for (i, (path, body)) in files.by_ref().take(32) {
            let (s3, egress) = (t.s3.clone(), egress.clone());
            set_.spawn(async move {
                let key = format!("{WORKSPACE}/{path}");
                let size = body.len();
                let out = s3
                    .put_object()
                    .bucket(&egress)
                    .key(&key)
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .context("PutObject")?;
                let version = out.version_id().unwrap_or_default().to_string();
                Ok::<_, anyhow::Error>((i, key, version, size))
            });
        }
        while let Some(done) = set_.join_next().await {
            listed.push(done??);
        }
    }
    listed.sort();
    let objects: Vec<serde_json::Value> = listed
        .iter()
        .map(|(_, k, v, size)| {
            json!({"Key": k, "VersionId": v, "Size": size, "ETag": "\"x\"",
                   "StorageClass": "STANDARD", "LastModified": "2024-05-01T00:00:00.000Z"})
        })
        .collect();
    let bytes = listed.iter().map(|(_, _, _, size)| *size as u64).sum();
    let keys: Vec<(String, String)> = listed.into_iter().map(|(_, k, v, _)| (k, v)).collect();
    let snapshot_key = format!("{WORKSPACE}/bench-{set}-egress-store-ver1.json");
    t.s3.put_object()
        .bucket(&notify)
        .key(&snapshot_key)
        .body(ByteStream::from(serde_json::to_vec(
            &json!({ "objects": objects }),
        )?))
        .send()
        .await
        .context("PutObject snapshot")?;
    Ok(Staged {
        snapshot_location: format!("arn:aws:s3:::{notify}/{snapshot_key}"),
        keys,
        bytes,
    })
}

async fn put_request(t: &Target, id: &str) -> Result<()> {
    let mut request = shared::testdata::request(id, EgressStatus::Processing);
    request.workspace_id = WORKSPACE.into();
    let item: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> =
        serde_dynamo::to_item(&request)?;
    t.dynamodb
        .put_item()
        .table_name(&t.requests)
        .set_item(Some(item))
        .send()
        .await
        .context("PutItem request")?;
    Ok(())
}

/// The real step, as `copy-to-staging` runs it, copying only (the copy's own figure).
async fn run_step(t: &Target, staged: &Staged, run: &str, delay: Duration) -> Result<Duration> {
    run_staging(t, staged, run, delay, None).await
}

/// The real step; with `checks`, checking the small files as it stages them, as the
/// deployed function does.
async fn run_staging(
    t: &Target,
    staged: &Staged,
    run: &str,
    delay: Duration,
    checks: Option<ProjectPolicies>,
) -> Result<Duration> {
    let id = format!("bench-{run}");
    put_request(t, &id).await?;
    let step = StagingStep {
        objects: Delayed {
            inner: Arc::new(S3ObjectStore::new(t.fn_s3.clone())),
            delay,
        },
        requests: DynamoDbRequestStore::new(t.fn_dynamodb.clone(), &t.requests),
        audit: DynamoDbAuditLog::new(t.fn_dynamodb.clone(), &t.audit),
        clock: SystemClock,
        settings: match checks {
            Some(policies) => StagingSettings::new(&t.staging, &t.kms, 8).with_checks(policies),
            None => StagingSettings::new(&t.staging, &t.kms, 8),
        },
    };
    let started = Instant::now();
    let result = step
        .run(&StagingInput {
            egress_request_id: id,
            workspace_id: WORKSPACE.into(),
            s3_egress_store_bucket: t.egress.clone(),
            s3_egress_store_bucket_path: format!("{WORKSPACE}/"),
            s3_egress_store_object_list_location: staged.snapshot_location.clone(),
        })
        .await?;
    anyhow::ensure!(
        result.file_count as usize == staged.keys.len(),
        "staged {}",
        result.file_count
    );
    Ok(started.elapsed())
}

/// The baseline: one `CopyObject` per object, one at a time, nothing else.
async fn copy_one_at_a_time(
    t: &Target,
    staged: &Staged,
    run: &str,
    delay: Duration,
) -> Result<Duration> {
    let started = Instant::now();
    for (key, version) in &staged.keys {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        t.fn_s3
            .copy_object()
            .bucket(&t.staging)
            .key(format!("baseline-{run}/{key}"))
            .copy_source(format!("{}/{key}?versionId={version}", t.egress))
            .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
            .ssekms_key_id(&t.kms)
            .send()
            .await
            .context("CopyObject")?;
    }
    Ok(started.elapsed())
}

async fn bench_staging(t: &Target) -> Result<()> {
    let files = env_usize("BENCH_STAGING_FILES", 1000);
    let staged = upload_files(t, "small", small_files(files)).await?;
    println!(
        "staging {files} objects of 1-32 KiB ({:.1} MiB), COPY_CONCURRENCY 8",
        staged.bytes as f64 / 1048576.0
    );
    println!("| added latency per request | our step | one CopyObject per object, one at a time | ratio |");
    println!("|---|---|---|---|");
    let rounds = env_usize("BENCH_STAGING_REPEAT", 3).max(1);
    let mut medians = Vec::new();
    for latency in [0u64, 20] {
        // The router adds the latency on the stack; a bare moto server gets it in-process.
        let delay = match t.router {
            Some(_) => Duration::ZERO,
            None => Duration::from_millis(latency),
        };
        let mut runs = Vec::new();
        for round in 0..rounds {
            set_latency(t, latency)?;
            let run = format!("l{latency}r{round}");
            let step = run_step(t, &staged, &run, delay).await;
            let baseline = copy_one_at_a_time(t, &staged, &run, delay).await;
            set_latency(t, 0)?;
            let (step, baseline) = (step?.as_secs_f64(), baseline?.as_secs_f64());
            println!(
                "| {latency} ms | {step:.2} s | {baseline:.2} s | {:.1}x |",
                baseline / step
            );
            runs.push((step, baseline, baseline / step));
        }
        medians.push((latency, runs));
    }
    if rounds > 1 {
        // Each round runs the step and the baseline back to back: the median of the paired
        // ratios, with their range, is what this machine's drift disturbs least.
        println!();
        println!("median of {rounds} rounds (ratio: median of the paired ratios [min-max])");
        println!("| added latency per request | our step | one CopyObject per object, one at a time | ratio |");
        println!("|---|---|---|---|");
        for (latency, runs) in medians {
            let col = |f: fn(&(f64, f64, f64)) -> f64| runs.iter().map(f).collect::<Vec<_>>();
            let ratios = col(|r| r.2);
            println!(
                "| {latency} ms | {:.2} s | {:.2} s | {:.1}x [{:.1}-{:.1}] |",
                median(&col(|r| r.0)),
                median(&col(|r| r.1)),
                median(&ratios),
                ratios.iter().copied().fold(f64::INFINITY, f64::min),
                ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            );
        }
    }
    Ok(())
}

/// The median of `values` (0 when empty).
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The real check step, as `check-outputs` runs it (the function's adapters, the default
/// policy), on the request `run_step` staged as `bench-{run}`; `scan` reads the malware
/// scanner's tags too (the harness tagged every staged object, so nothing is waited for).
async fn run_checks(t: &Target, run: &str, delay: Duration, scan: bool) -> Result<Duration> {
    let step = ChecksStep {
        objects: Delayed {
            inner: Arc::new(S3ObjectStore::new(t.fn_s3.clone())),
            delay,
        },
        audit: DynamoDbAuditLog::new(t.fn_dynamodb.clone(), &t.audit),
        clock: SystemClock,
        staging_bucket: t.staging.clone(),
        staging_kms_key_arn: t.kms.clone(),
        policies: ProjectPolicies::default(),
        malware_wait: scan.then_some(Duration::from_secs(60)),
    };
    let input = ChecksInput {
        egress_request_id: format!("bench-{run}"),
        workspace_id: WORKSPACE.into(),
        project_id: "bench-project".into(),
    };
    let started = Instant::now();
    let result = step.run(&input).await?;
    let took = started.elapsed();
    anyhow::ensure!(
        !result.summary.contains("malware-scan-not-finished"),
        "a scan tag was missing: {}",
        result.summary
    );
    eprintln!("checks {run} (scan tags {scan}): {}", result.summary);
    Ok(took)
}

/// Tags every staged object of `bench-{run}` as the malware scanner would (untimed: the
/// scanner's own latency is GuardDuty's, not the step's).
async fn tag_staged(t: &Target, run: &str) -> Result<()> {
    let prefix = format!("{WORKSPACE}/bench-{run}/");
    let mut keys = Vec::new();
    let mut pages =
        t.s3.list_objects_v2()
            .bucket(&t.staging)
            .prefix(&prefix)
            .into_paginator()
            .send();
    while let Some(page) = pages.next().await {
        keys.extend(
            page.context("ListObjectsV2 staging")?
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
    }
    anyhow::ensure!(!keys.is_empty(), "nothing staged under {prefix}");
    for chunk in keys.chunks(32) {
        let mut set = JoinSet::new();
        for key in chunk.iter().cloned() {
            let (s3, bucket) = (t.s3.clone(), t.staging.clone());
            set.spawn(async move {
                let tag = aws_sdk_s3::types::Tag::builder()
                    .key(MALWARE_SCAN_TAG)
                    .value("NO_THREATS_FOUND")
                    .build()?;
                s3.put_object_tagging()
                    .bucket(bucket)
                    .key(key)
                    .tagging(aws_sdk_s3::types::Tagging::builder().tag_set(tag).build()?)
                    .send()
                    .await
                    .context("PutObjectTagging")?;
                Ok::<_, anyhow::Error>(())
            });
        }
        while let Some(done) = set.join_next().await {
            done??;
        }
    }
    Ok(())
}

/// The large request of the checks phase: one CSV of `BENCH_CHECKS_CSV_MIB` (256) MiB and
/// `BENCH_CHECKS_BINARIES` (3) binaries of `BENCH_CHECKS_BINARY_MIB` (4) MiB.
fn large_files() -> Vec<(String, Vec<u8>)> {
    let mib = 1024 * 1024;
    let mut files = vec![(
        "large/table.csv".to_string(),
        csv_bytes(env_usize("BENCH_CHECKS_CSV_MIB", 256) * mib, 0),
    )];
    for i in 0..env_usize("BENCH_CHECKS_BINARIES", 3) {
        files.push((
            format!("large/model-{i}.parquet"),
            binary_bytes(env_usize("BENCH_CHECKS_BINARY_MIB", 4) * mib, 1 + i as u64),
        ));
    }
    files
}

/// Issue 12's figure: the checks must not add more than 25% to the staging time of the same
/// request. Each request is staged twice with the real step: copying only, then checked by
/// the real check step (the checks as a step after staging); and checking its small files
/// as it stages them (as deployed), then the check step, which takes those checks over and
/// reads the rest. Both with the scanner off (content only) and with the scan tags read, at
/// loopback and 20 ms added. What the checks add: the staging that checks less the staging
/// that copies, plus the check step after it.
async fn bench_checks(t: &Target) -> Result<()> {
    let files = env_usize("BENCH_STAGING_FILES", 1000);
    let requests = [
        (
            "small",
            format!("{files} objects of 1-32 KiB, one in four CSV"),
            small_files(files),
        ),
        (
            "large",
            format!(
                "one {} MiB CSV and {} binaries of {} MiB",
                env_usize("BENCH_CHECKS_CSV_MIB", 256),
                env_usize("BENCH_CHECKS_BINARIES", 3),
                env_usize("BENCH_CHECKS_BINARY_MIB", 4)
            ),
            large_files(),
        ),
    ];
    let rounds = env_usize("BENCH_CHECKS_ROUNDS", 3).max(1);
    println!();
    println!("output checks against staging, the same request (target: the checks add <= 25% to staging); medians of {rounds} rounds");
    println!("| request | added latency per request | staging (copies) | check step after it: content; + scan tags (share) | staging that checks | check step after it: content; + scan tags | added by the checks: staging that checks + its check step - staging (share [min-max]) | target <= 25% |");
    println!("|---|---|---|---|---|---|---|---|");
    for (set, label, content) in requests {
        let staged = upload_files(t, set, content).await?;
        let label = format!("{label} ({:.1} MiB)", staged.bytes as f64 / 1048576.0);
        for latency in [0u64, 20] {
            // Per round: staging, content, tags; copying only, then checking as it stages.
            let mut cells: [Vec<f64>; 6] = Default::default();
            let (mut added, mut step_shares) = (Vec::new(), Vec::new());
            for round in 0..rounds {
                let mut timings = Vec::new();
                for checking in [false, true] {
                    let mode = if checking { "fold" } else { "step" };
                    let run = format!("checks-{set}-l{latency}-{mode}-r{round}");
                    let policies = checking.then(ProjectPolicies::default);
                    timings.push(checked_request(t, &staged, &run, latency, policies).await?);
                }
                let [(plain, after_plain, scanned_plain), (folded, after_fold, scanned_fold)] =
                    [timings[0], timings[1]];
                let secs = [
                    plain,
                    after_plain,
                    scanned_plain,
                    folded,
                    after_fold,
                    scanned_fold,
                ]
                .map(|d| d.as_secs_f64());
                for (cell, v) in cells.iter_mut().zip(secs) {
                    cell.push(v);
                }
                added.push(secs[3] + secs[5] - secs[0]);
                step_shares.push(secs[2] / secs[0] * 100.0);
                eprintln!("round {round}: {label}, {latency} ms: {secs:.2?}");
            }
            let m: Vec<f64> = cells.iter().map(|c| median(c)).collect();
            let shares: Vec<f64> = added
                .iter()
                .zip(&cells[0])
                .map(|(a, plain)| a / plain * 100.0)
                .collect();
            let share = median(&shares);
            let (lo, hi) = shares
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
            println!(
                "| {label} | {latency} ms | {:.2} s | {:.2} s; {:.2} s ({:.0}%) | {:.2} s | {:.2} s; {:.2} s | {:.2} s ({share:.0}% [{lo:.0}-{hi:.0}%]) | {} |",
                m[0],
                m[1],
                m[2],
                median(&step_shares),
                m[3],
                m[4],
                m[5],
                median(&added),
                if share <= 25.0 { "met" } else { "not met" }
            );
        }
    }
    Ok(())
}

/// Stages `staged` as `bench-{run}` (checking as it stages with `checks`), then times the
/// check step on it, content only, then (every staged object tagged as the scanner would)
/// with the scan tags read: (staging, content, with tags).
async fn checked_request(
    t: &Target,
    staged: &Staged,
    run: &str,
    latency: u64,
    checks: Option<ProjectPolicies>,
) -> Result<(Duration, Duration, Duration)> {
    set_latency(t, latency)?;
    let delay = match t.router {
        Some(_) => Duration::ZERO,
        None => Duration::from_millis(latency),
    };
    let staging = run_staging(t, staged, run, delay, checks).await;
    let content = match &staging {
        Ok(_) => run_checks(t, run, delay, false).await,
        Err(_) => Ok(Duration::ZERO),
    };
    // The scanner's tags are put at loopback, as the scanner would have by then.
    set_latency(t, 0)?;
    let tagged = match (&staging, &content) {
        (Ok(_), Ok(_)) => tag_staged(t, run).await,
        _ => Ok(()),
    };
    set_latency(t, latency)?;
    let scanned = match &tagged {
        Ok(()) => run_checks(t, run, delay, true).await,
        Err(_) => Ok(Duration::ZERO),
    };
    set_latency(t, 0)?;
    let (staging, content, scanned) = (staging?, content?, scanned?);
    tagged?;
    Ok((staging, content, scanned))
}

/// The same two steps on the small request with an in-process store (the fakes' in-memory
/// S3, requests table and audit log) and 20 ms slept before every S3 call: no server work at
/// all, only round trips and our own CPU. A model of a store that serves requests in
/// parallel (as S3 does, unlike moto), not a measurement of S3.
async fn bench_checks_model() -> Result<()> {
    let files = env_usize("BENCH_STAGING_FILES", 1000);
    let store = Arc::new(
        InMemoryObjectStore::new()
            .with_bucket("egress", true)
            .with_bucket("notify", false)
            .with_bucket("staging", true),
    );
    let mut objects = Vec::with_capacity(files);
    let mut bytes = 0;
    for (path, body) in small_files(files) {
        let key = format!("{WORKSPACE}/{path}");
        let size = body.len();
        bytes += size;
        let version = store.put_object("egress", &key, body);
        objects.push(json!({"Key": key, "VersionId": version, "Size": size, "ETag": "\"x\"",
                            "StorageClass": "STANDARD", "LastModified": "2024-05-01T00:00:00.000Z"}));
    }
    store.put_object(
        "notify",
        "snapshot.json",
        serde_json::to_vec(&json!({ "objects": objects }))?,
    );
    let delay = Duration::from_millis(20);
    let mut timings = Vec::new();
    for checking in [false, true] {
        let id = if checking {
            "bench-model-fold"
        } else {
            "bench-model-step"
        };
        let mut request = shared::testdata::request(id, EgressStatus::Processing);
        request.workspace_id = WORKSPACE.into();
        let settings = StagingSettings::new("staging", "k", 8);
        let staging = StagingStep {
            objects: Delayed {
                inner: store.clone(),
                delay,
            },
            requests: InMemoryRequestStore::with([request]),
            audit: InMemoryAuditLog::default(),
            clock: SystemClock,
            settings: match checking {
                true => settings.with_checks(ProjectPolicies::default()),
                false => settings,
            },
        };
        let started = Instant::now();
        staging
            .run(&StagingInput {
                egress_request_id: id.into(),
                workspace_id: WORKSPACE.into(),
                s3_egress_store_bucket: "egress".into(),
                s3_egress_store_bucket_path: format!("{WORKSPACE}/"),
                s3_egress_store_object_list_location: "arn:aws:s3:::notify/snapshot.json".into(),
            })
            .await?;
        let staged = started.elapsed();
        for key in store.keys("staging") {
            store.set_tags("staging", &key, &[(MALWARE_SCAN_TAG, "NO_THREATS_FOUND")]);
        }
        let mut checked = Vec::new();
        for scan in [false, true] {
            let checks = ChecksStep {
                objects: Delayed {
                    inner: store.clone(),
                    delay,
                },
                audit: InMemoryAuditLog::default(),
                clock: SystemClock,
                staging_bucket: "staging".into(),
                staging_kms_key_arn: "k".into(),
                policies: ProjectPolicies::default(),
                malware_wait: scan.then_some(Duration::from_secs(60)),
            };
            let started = Instant::now();
            checks
                .run(&ChecksInput {
                    egress_request_id: id.into(),
                    workspace_id: WORKSPACE.into(),
                    project_id: "bench-project".into(),
                })
                .await?;
            checked.push(started.elapsed());
        }
        timings.push((staged, checked[0], checked[1]));
    }
    let [(plain, after_plain, scanned_plain), (folded, after_fold, scanned_fold)] =
        [timings[0], timings[1]];
    let added = folded.as_secs_f64() + scanned_fold.as_secs_f64() - plain.as_secs_f64();
    let share = added / plain.as_secs_f64() * 100.0;
    println!(
        "| {files} objects of 1-32 KiB, one in four CSV ({:.1} MiB), in-process store (model) | 20 ms | {:.2} s | {:.2} s; {:.2} s ({:.0}%) | {:.2} s | {:.2} s; {:.2} s | {added:.2} s ({share:.0}%) | {} |",
        bytes as f64 / 1048576.0,
        plain.as_secs_f64(),
        after_plain.as_secs_f64(),
        scanned_plain.as_secs_f64(),
        scanned_plain.as_secs_f64() / plain.as_secs_f64() * 100.0,
        folded.as_secs_f64(),
        after_fold.as_secs_f64(),
        scanned_fold.as_secs_f64(),
        if share <= 25.0 { "met" } else { "not met" }
    );
    Ok(())
}

/// Loads the requests table up to `total` requests (`have` already there); 1% await IG.
async fn load_requests(t: &Target, have: usize, total: usize) -> Result<()> {
    let table = t.requests.clone();
    let batches: Vec<Vec<usize>> = (have..total)
        .collect::<Vec<_>>()
        .chunks(25)
        .map(<[usize]>::to_vec)
        .collect();
    for group in batches.chunks(8) {
        let mut set = JoinSet::new();
        for batch in group.iter().cloned() {
            let (db, table) = (t.dynamodb.clone(), table.clone());
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

async fn bench_list(t: &Target) -> Result<()> {
    let ig = t.ig.clone();
    let rit = t.rit.clone();
    let service = ReviewService {
        store: DynamoDbRequestStore::new(t.fn_dynamodb.clone(), &t.requests),
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
    println!(
        "| stored requests | returned | bytes | items read | share of the table read | latency |"
    );
    println!("|---|---|---|---|---|---|");
    let mut have = 0;
    for total in [10_000usize, 100_000] {
        let started = Instant::now();
        load_requests(t, have, total).await?;
        eprintln!(
            "loaded {total} requests in {:.0} s",
            started.elapsed().as_secs_f64()
        );
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
    let t = Target::new().await?;
    let which = std::env::var("BENCH_E2E").unwrap_or_else(|_| "staging,checks,list".into());
    if which.contains("staging") {
        bench_staging(&t).await?;
    }
    if which.contains("checks") {
        bench_checks(&t).await?;
        bench_checks_model().await?;
    }
    if which.contains("list") {
        bench_list(&t).await?;
    }
    Ok(())
}
