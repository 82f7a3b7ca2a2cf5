//! `make load` (issue 10, part 2): many requests at once, against the local stack and its
//! reviewer API, with the races the workflow must survive.
//!
//! 1. Prepares [`REQUESTS`] submissions as SWB does (small files in SWB's versioned egress
//!    store, the snapshot, the store item `PENDING`; one file changed after the snapshot),
//!    half for the single-approval project and half for the dual one.
//! 2. Publishes every SWB message to its project's SWB topic at once, plus
//!    [`DUPLICATES`] duplicate deliveries of [`DUPLICATED`] of them, shuffled in among the
//!    first deliveries, and waits until every request waits for its IG review.
//! 3. Reviewers decide every request through GraphQL, as the web app does: approvals and
//!    rejections at both stages; for [`CONTESTED`] requests [`RACERS`] reviewers decide the
//!    same request at the same instant (different people, both decisions): exactly one may
//!    win and the others must get the web app's refusal.
//! 4. Waits until every request has ended, then checks the promises (DESIGN.md §8) and
//!    prints a table: throughput, decision latency, per-request latency, the promises.
//!
//! A broken promise makes the run exit non-zero. Not a `#[test]`: a `harness = false`
//! target behind the `load` feature, run by `make load` (mk/71-load.mk) on a stack started
//! with many function instances (`EGRESS_LAMBDA_CONCURRENCY`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sfn::types::ExecutionStatus;
use e2e_tests::graphql::{uuid_like, web_app_decision, Api, ApiUser, Tokens, UPDATE_REQUEST};
use e2e_tests::inspect;
use e2e_tests::promises::{self, Expect, Tracked};
use e2e_tests::stack::Stack;
use e2e_tests::swb::{Marker, Mode, Submission, SubmittedFile, SwbUser};
use e2e_tests::{chain, Context, Result};
use serde_json::{json, Value};
use shared::domain::review::{
    PENDING_DELIVERY_GRACE, STALE_REQUEST_MESSAGE, UPDATE_SUCCESS_MESSAGE,
};
use shared::model::{Decision, EgressRequest, EgressStatus, ReviewStage};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Submissions.
const REQUESTS: usize = 200;
/// Requests delivered more than once.
const DUPLICATED: usize = 20;
/// Extra deliveries of each of them.
const DUPLICATES: usize = 5;
/// Requests decided by several reviewers at the same instant.
const CONTESTED: usize = 10;
/// Concurrent decisions on each contested request.
const RACERS: usize = 20;
/// Calls in flight while preparing, publishing and deciding.
const IN_FLIGHT: usize = 16;
/// How long each phase may take before the run gives up (a lost request shows here).
const PHASE_TIMEOUT: Duration = Duration::from_secs(600);
/// How many times a reviewer reloads a list that failed.
const LIST_ATTEMPTS: u32 = 5;
/// How many times a reviewer clicks again after a decision whose answer was lost (an error
/// that is neither the success nor the web app's refusal: the API's 30 s timeout when the
/// stack is saturated). The decision may have landed or not; the next call settles it.
const DECISION_ATTEMPTS: u32 = 5;
/// How often the scheduled sweep runs while the run waits for every request to end (the
/// template schedules it; the local stack does not, so the run invokes it): it delivers a
/// decision whose call died between its claim and `SendTaskSuccess`.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How often the requests table is read to see requests change state.
const OBSERVE_EVERY: Duration = Duration::from_millis(250);
const REASON: &str = "Aggregate tables only; small cells suppressed.";
const SUBMITTER: (&str, &str) = ("u-researcher-7f3a", "researcher@tre.example.org");
const OWNER: (&str, &str) = ("u-owner-21c9", "store-owner@tre.example.org");

/// What happens to one request.
#[derive(Debug, Clone)]
struct Plan {
    mode: Mode,
    /// Deliveries of its SWB message (1, or 1 + [`DUPLICATES`]).
    deliveries: usize,
    contested: bool,
    /// The IG decision (for a contested request: decided by the race).
    ig: Decision,
    /// The RIT decision, when the request reaches RIT.
    rit: Decision,
}

/// The plan of request `i`: both projects, duplicates and contested requests in each, a few
/// rejections at each stage.
fn plan(i: usize) -> Plan {
    let mode = if i.is_multiple_of(2) {
        Mode::Single
    } else {
        Mode::Dual
    };
    let contested = i % 40 == 3 || i % 40 == 22;
    let duplicated = i < 100 && (i % 10 == 6 || i % 10 == 7);
    let reject = |yes: bool| {
        if yes {
            Decision::Rejected
        } else {
            Decision::Approved
        }
    };
    Plan {
        mode,
        deliveries: if duplicated { 1 + DUPLICATES } else { 1 },
        contested,
        ig: reject(i % 25 == 11),
        rit: reject(i % 30 == 13),
    }
}

/// One request of the run.
#[derive(Debug, Clone)]
struct Request {
    plan: Plan,
    submission: Submission,
}

impl Request {
    fn id(&self) -> &str {
        &self.submission.egress_request_id
    }
}

/// Wall-clock seconds since the Unix epoch: the run's times and Step Functions' stop dates
/// on one scale.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// When the run first saw a request waiting for each stage (the requests table, polled).
#[derive(Debug, Clone, Default)]
struct Seen {
    at_ig: Option<f64>,
    at_rit: Option<f64>,
    last: Option<EgressRequest>,
}

type Observed = Arc<Mutex<HashMap<String, Seen>>>;

/// One `updateRequest` call.
#[derive(Debug, Clone)]
struct DecisionCall {
    id: String,
    stage: ReviewStage,
    reviewer: String,
    decision: Decision,
    seconds: f64,
    returned_at: f64,
    /// `None` when it won; the refusal otherwise.
    refusal: Option<String>,
    /// Attempts before the last whose answer was lost (retried).
    lost_answers: u32,
    contested: bool,
    /// The answer's body (checked for leaks).
    response: String,
}

/// A broken or kept promise.
#[derive(Debug, Clone)]
struct Promise {
    name: String,
    expected: String,
    found: String,
    kept: bool,
    /// Up to a few examples of what broke it.
    examples: Vec<String>,
}

impl Promise {
    fn new(
        name: &str,
        expected: impl ToString,
        found: impl ToString,
        examples: Vec<String>,
    ) -> Self {
        Self {
            name: name.into(),
            expected: expected.to_string(),
            found: found.to_string(),
            kept: examples.is_empty(),
            examples,
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    match run().await {
        Ok(true) => println!("\nload: every promise kept"),
        Ok(false) => {
            println!("\nload: BROKEN PROMISES (see the table above)");
            std::process::exit(1);
        }
        Err(err) => {
            eprintln!("\nload: the run failed: {err:#}");
            std::process::exit(2);
        }
    }
}

async fn run() -> Result<bool> {
    let stack = Stack::connect().await?;
    let api = Api::load()?;
    if api.stack_id != stack.outputs.stack_id {
        return Err(anyhow::anyhow!(
            "the reviewer API does not run on this stack"
        ));
    }
    let concurrency = std::env::var("EGRESS_LAMBDA_CONCURRENCY").unwrap_or_else(|_| "?".into());
    println!(
        "load: {REQUESTS} requests, {DUPLICATED} of them delivered {} times, {CONTESTED} contested by {RACERS} reviewers; instances per function: {concurrency}",
        1 + DUPLICATES
    );
    let tokens = sign_in_all(&api).await?;

    // 1. Prepare as SWB does.
    let started = Instant::now();
    let requests = prepare(&stack).await?;
    println!(
        "load: prepared {} submissions in {:.1}s",
        requests.len(),
        started.elapsed().as_secs_f64()
    );
    let ids: Vec<String> = requests.iter().map(|r| r.id().to_string()).collect();
    let observed: Observed = Arc::new(Mutex::new(HashMap::new()));
    let watcher = tokio::spawn(observe(stack.clone(), ids.clone(), observed.clone()));

    // 2. Publish everything at once; every request must reach its IG review.
    let published = publish(&stack, &requests).await?;
    let deliveries: usize = requests.iter().map(|r| r.plan.deliveries).sum();
    println!(
        "load: published {deliveries} deliveries in {:.2}s",
        published.seconds
    );
    let all_parked = wait_for(
        &observed,
        &ids,
        "every request to await its IG review",
        |s| s.at_ig,
        None,
    )
    .await?;
    let parked_seconds = all_parked - published.started;
    println!("load: all {REQUESTS} await review {parked_seconds:.1}s after the first publication");

    // 3. IG decisions, then RIT decisions of the dual requests IG approved.
    let decide_started = now();
    let mut listed = Vec::new();
    let rows = list_rows(&api, &tokens["ig"], &mut listed).await?;
    let mut calls = decide_stage(&api, &tokens, &requests, &rows, ReviewStage::Ig).await?;
    // Who decided is what the table says (a call whose answer was lost may have won).
    let ig_winners = winners(&calls, &stored_requests(&stack).await?);
    let mut swept_at_ig = 0;
    let rit_requests: Vec<Request> = requests
        .iter()
        .filter(|r| {
            r.plan.mode == Mode::Dual && ig_winners.get(r.id()) == Some(&Decision::Approved)
        })
        .cloned()
        .collect();
    let at_rit: Vec<String> = rit_requests.iter().map(|r| r.id().to_string()).collect();
    println!(
        "load: {} IG decision calls in {:.1}s; {} dual requests go to RIT",
        calls.len(),
        now() - decide_started,
        at_rit.len()
    );
    wait_for(
        &observed,
        &at_rit,
        "the IG-approved dual requests to await RIT",
        |s| s.at_rit,
        Some((&stack, &mut swept_at_ig)),
    )
    .await?;
    let rows = list_rows(&api, &tokens["rit"], &mut listed).await?;
    calls.extend(decide_stage(&api, &tokens, &rit_requests, &rows, ReviewStage::Rit).await?);
    let decide_seconds = now() - decide_started;

    // 4. Every request ends.
    let (ended, swept_at_end) = wait_for_executions(&stack, &ids).await?;
    // 5. The scheduled sweep's last run: a decision whose call died after delivering it but
    // before auditing and settling it still holds its token once the request has ended.
    let swept_after_end = sweep_pending(&stack, &ids).await?;
    let swept = swept_at_ig + swept_at_end + swept_after_end;
    watcher.abort();
    let all_ended = ended
        .values()
        .filter_map(|e| e.stopped)
        .fold(f64::MIN, f64::max);
    let total_seconds = all_ended - published.started;
    println!("load: every execution ended {total_seconds:.1}s after the first publication; checking the promises");

    let seen = observed
        .lock()
        .map_err(|_| anyhow::anyhow!("observations poisoned"))?
        .clone();
    let stored = stored_requests(&stack).await?;
    let promises = check(&stack, &requests, &calls, &stored).await?;
    // The promises, checked by the shared checker (tests/src/promises.rs).
    let tracked: Vec<Tracked> = requests
        .iter()
        .map(|r| Tracked {
            submission: r.submission.clone(),
            mode: r.plan.mode,
            expect: match expected_end(r, &calls, &stored) {
                Some(EgressStatus::Rejected) => Expect::Rejected,
                Some(EgressStatus::IgApproved | EgressStatus::RitApproved) => Expect::Approved,
                _ => Expect::Decided,
            },
        })
        .collect();
    let mut responses: Vec<String> = calls.iter().map(|c| c.response.clone()).collect();
    responses.extend(listed);
    let report = promises::check(&stack, &tracked, &responses).await?;

    // The table.
    let mut out = String::new();
    let won = calls.iter().filter(|c| c.refusal.is_none()).count();
    let line = |out: &mut String, k: &str, v: String| {
        let _ = writeln!(out, "{k:<46} {v:>18}");
    };
    let _ = writeln!(out, "\n== make load: results ==");
    line(
        &mut out,
        "requests / SWB deliveries published",
        format!("{REQUESTS} / {deliveries}"),
    );
    line(
        &mut out,
        "publication window (s)",
        format!("{:.2}", published.seconds),
    );
    line(
        &mut out,
        "first publication to all parked at IG (s)",
        format!("{parked_seconds:.1}"),
    );
    line(
        &mut out,
        "submissions/s to all parked",
        format!("{:.2}", REQUESTS as f64 / parked_seconds),
    );
    line(
        &mut out,
        "decision calls (won / refused)",
        format!("{won} / {}", calls.len() - won),
    );
    line(
        &mut out,
        "decision phase, RIT wait included (s)",
        format!("{decide_seconds:.1}"),
    );
    line(
        &mut out,
        "decisions/s (calls / won)",
        format!(
            "{:.1} / {:.1}",
            calls.len() as f64 / decide_seconds,
            won as f64 / decide_seconds
        ),
    );
    line(
        &mut out,
        "first publication to all ended (s)",
        format!("{total_seconds:.1}"),
    );
    line(
        &mut out,
        "end-to-end requests/s",
        format!("{:.2}", REQUESTS as f64 / total_seconds),
    );
    let stats = |v: Vec<f64>| -> String {
        let (p50, p95, max) = percentiles(v);
        format!("{p50:.2} / {p95:.2} / {max:.2}")
    };
    let latency = |pick: &dyn Fn(&DecisionCall) -> bool| -> String {
        stats(
            calls
                .iter()
                .filter(|c| pick(c))
                .map(|c| c.seconds)
                .collect(),
        )
    };
    line(
        &mut out,
        "decision answers lost, clicked again",
        format!(
            "{} on {} calls",
            calls.iter().map(|c| c.lost_answers).sum::<u32>(),
            calls.iter().filter(|c| c.lost_answers > 0).count()
        ),
    );
    line(
        &mut out,
        "stalled decisions the sweep recovered",
        format!("{swept} ({swept_after_end} after the end)"),
    );
    let _ = writeln!(out, "{:<46} {:>18}", "latency (s)", "p50 / p95 / max");
    line(&mut out, "updateRequest, every call", latency(&|_| true));
    line(
        &mut out,
        "updateRequest, uncontested",
        latency(&|c| !c.contested),
    );
    line(
        &mut out,
        &format!("updateRequest, contested ({RACERS} at once)"),
        latency(&|c| c.contested),
    );
    let effect: Vec<f64> = calls
        .iter()
        .filter(|c| c.refusal.is_none())
        .filter_map(|c| {
            let next = match (c.stage, c.decision) {
                (ReviewStage::Ig, Decision::Approved) if at_rit.contains(&c.id) => {
                    seen.get(&c.id)?.at_rit?
                }
                _ => ended.get(&c.id)?.stopped?,
            };
            Some((next - c.returned_at).max(0.0))
        })
        .collect();
    line(
        &mut out,
        "decision answered to next state/end",
        stats(effect),
    );
    let intake: Vec<f64> = requests
        .iter()
        .filter_map(|r| Some(seen.get(r.id())?.at_ig? - published.first[r.id()]))
        .collect();
    line(
        &mut out,
        "publication to parked at IG (poll 0.25s)",
        stats(intake),
    );
    let end_to_end: Vec<f64> = requests
        .iter()
        .filter_map(|r| Some(ended.get(r.id())?.stopped? - published.first[r.id()]))
        .collect();
    line(
        &mut out,
        "publication to execution end, per request",
        stats(end_to_end),
    );
    let _ = writeln!(
        out,
        "\n{:<36} {:>10} {:>12}  kept",
        "promise", "expected", "found"
    );
    for p in &promises {
        let _ = writeln!(
            out,
            "{:<36} {:>10} {:>12}  {}",
            p.name,
            p.expected,
            p.found,
            if p.kept { "yes" } else { "NO" }
        );
        for e in p.examples.iter().take(5) {
            let _ = writeln!(out, "    {e}");
        }
    }
    let _ = writeln!(
        out,
        "\npromise checker (tests/src/promises.rs):\n{}",
        report.table()
    );
    println!("{out}");
    Ok(promises.iter().all(|p| p.kept) && report.broken().is_empty())
}

// -- preparing and publishing ---------------------------------------------------------------

/// SWB's timestamps: ISO-8601 in UTC with milliseconds and `Z`.
fn iso_millis(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// A random UUID-shaped id (SWB's ids are UUIDs).
fn uuid() -> String {
    let hex = uuid_like();
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// The researcher's files: small, different per request.
fn files(seed: &str) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "results/summary.csv",
            format!("id,count\n1,{}\n2,{}\n", seed.len(), &seed[..8]).into_bytes(),
        ),
        (
            "results/tables/table1.csv",
            b"group,n,mean\nA,120,3.41\nB,98,3.77\n".to_vec(),
        ),
        (
            "notes/readme.txt",
            format!("Method notes for {seed} (UTF-8: cohort \u{2026})\n").into_bytes(),
        ),
        (
            "results/model.json",
            format!("{{\"seed\":\"{seed}\",\"age\":0.031}}").into_bytes(),
        ),
    ]
}

/// Prepares every submission, [`IN_FLIGHT`] at a time.
async fn prepare(stack: &Stack) -> Result<Vec<Request>> {
    let limit = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut set = JoinSet::new();
    for i in 0..REQUESTS {
        let stack = stack.clone();
        let limit = limit.clone();
        set.spawn(async move {
            let _permit = limit.acquire_owned().await?;
            let plan = plan(i);
            let submission = submission(&stack)
                .await
                .context(format!("preparing submission {i}"))?;
            Ok::<_, anyhow::Error>((i, Request { plan, submission }))
        });
    }
    let mut out = Vec::new();
    while let Some(joined) = set.join_next().await {
        out.push(joined??);
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, r)| r).collect())
}

/// One submission as SWB makes it (local/egress_local/swb.py, with fewer and smaller files).
async fn submission(stack: &Stack) -> Result<Submission> {
    let o = &stack.outputs;
    let bucket = o.bucket("SwbEgressStoreBucket")?.to_string();
    let notify_bucket = o.bucket("SwbNotificationBucket")?;
    let request_id = uuid();
    let workspace_id = uuid();
    let store_id = workspace_id.clone();
    let project_id = "proj-covid-outcomes";
    let store_name = format!("covid-outcomes-{}-egress-store", &workspace_id[..8]);
    let prefix = format!("{workspace_id}/");
    let created_at = time::OffsetDateTime::now_utc();
    let put = |key: String, body: Vec<u8>| {
        let s3 = stack.s3.clone();
        let bucket = bucket.clone();
        async move {
            s3.put_object()
                .bucket(&bucket)
                .key(&key)
                .body(body.into())
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("putting s3://{bucket}/{key}: {}", chain(&e)))
        }
    };
    // The store's folder marker, then the files; the snapshot lists the marker and the files.
    let owner = json!({"DisplayName": "swb-egress", "ID": "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a"});
    let marker = put(prefix.clone(), Vec::new()).await?;
    let now = iso_millis(time::OffsetDateTime::now_utc());
    let mut objects = vec![json!({
        "Key": prefix, "LastModified": now, "ETag": marker.e_tag().unwrap_or_default(), "Size": 0,
        "StorageClass": "STANDARD", "VersionId": marker.version_id().unwrap_or_default(), "Owner": owner,
    })];
    let mut submitted = Vec::new();
    for (path, body) in files(&request_id) {
        let out = put(format!("{prefix}{path}"), body.clone()).await?;
        let version_id = out
            .version_id()
            .context("the SWB store is versioned")?
            .to_string();
        objects.push(json!({
            "Key": format!("{prefix}{path}"), "LastModified": now, "ETag": out.e_tag().unwrap_or_default(),
            "Size": body.len(), "StorageClass": "STANDARD", "VersionId": version_id, "Owner": owner,
        }));
        submitted.push(SubmittedFile {
            key: format!("{prefix}{path}"),
            path: path.to_string(),
            version_id,
            size: body.len() as u64,
            sha256: inspect::sha256_hex(&body),
        });
    }
    objects.sort_by(|a, b| a["Key"].as_str().cmp(&b["Key"].as_str()));
    submitted.sort_by(|a, b| a.path.cmp(&b.path));
    let snapshot_key = format!("{store_id}/{store_name}-ver1.json");
    stack
        .s3
        .put_object()
        .bucket(notify_bucket)
        .key(&snapshot_key)
        .content_type("application/json")
        .body(
            json!({ "objects": objects })
                .to_string()
                .into_bytes()
                .into(),
        )
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("putting the snapshot: {}", chain(&e)))?;
    // After the snapshot the researcher changes a file: the archive must hold the snapshot's.
    put(
        format!("{prefix}results/model.json"),
        b"{\"changed\":\"after submission\"}".to_vec(),
    )
    .await?;
    let updated_at = time::OffsetDateTime::now_utc();
    let s = |v: &str| AttributeValue::S(v.to_string());
    stack
        .dynamodb
        .put_item()
        .table_name(o.table("SwbEgressStoreTable")?)
        .item("id", s(&store_id))
        .item("status", s("PENDING"))
        .item("egressStoreName", s(&store_name))
        .item("workspaceId", s(&workspace_id))
        .item("projectId", s(project_id))
        .item("s3BucketName", s(&bucket))
        .item("s3BucketPath", s(&prefix))
        .item("createdBy", s(OWNER.0))
        .item("createdAt", s(&iso_millis(created_at)))
        .item("updatedBy", s(SUBMITTER.0))
        .item("updatedAt", s(&iso_millis(updated_at)))
        .item("ver", AttributeValue::N("1".into()))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("putting the SWB store item: {}", chain(&e)))?;
    // SWB's message, field for field (DESIGN.md §2.1, local/egress_local/swb.py).
    let message = json!({
        "id": request_id,
        "egress_store_id": store_id,
        "egress_store_name": store_name,
        "workspace_id": workspace_id,
        "project_id": project_id,
        "s3_bucketname": bucket,
        "s3_bucketpath": prefix,
        "egress_store_object_list_location": format!("arn:aws:s3:::{notify_bucket}/{snapshot_key}"),
        "created_at": iso_millis(created_at),
        "updated_at": iso_millis(updated_at),
        "created_by": OWNER.0,
        "updated_by": SUBMITTER.0,
        "created_by_email": OWNER.1,
        "updated_by_email": SUBMITTER.1,
        "status": "PENDING",
        "ver": 1,
    });
    Ok(Submission {
        egress_request_id: request_id,
        egress_store_id: store_id,
        workspace_id,
        project_id: project_id.into(),
        bucket,
        prefix: prefix.clone(),
        folder_markers: vec![Marker { key: prefix }],
        snapshot_location: message["egress_store_object_list_location"]
            .as_str()
            .unwrap_or_default()
            .into(),
        snapshot_objects: objects.len() as u64,
        published_message_ids: Vec::new(),
        message,
        files: submitted,
        changed_after_snapshot: Vec::new(),
        missing_versions: Vec::new(),
        clashing_keys: Vec::new(),
        submitter: SwbUser {
            id: SUBMITTER.0.into(),
            email: SUBMITTER.1.into(),
        },
        owner: SwbUser {
            id: OWNER.0.into(),
            email: OWNER.1.into(),
        },
    })
}

/// When the deliveries were published.
struct Published {
    /// The first publication.
    started: f64,
    /// Each request's first delivery.
    first: HashMap<String, f64>,
    /// First to last publication answered.
    seconds: f64,
}

/// Publishes every delivery, `2 * IN_FLIGHT` at a time, duplicates shuffled in among the
/// first deliveries.
async fn publish(stack: &Stack, requests: &[Request]) -> Result<Published> {
    let sns = aws_sdk_sns::Client::new(&stack.sdk);
    // First deliveries in order, then each duplicate placed after its first delivery at a
    // spread of positions, so duplicates arrive while the first is still being handled.
    let mut order: Vec<(usize, usize)> = (0..requests.len()).map(|i| (i, 0)).collect();
    for (i, r) in requests.iter().enumerate() {
        for d in 1..r.plan.deliveries {
            let at = (i + 1 + d * 3).min(order.len());
            order.insert(at, (i, d));
        }
    }
    let limit = Arc::new(Semaphore::new(IN_FLIGHT * 2));
    let mut set = JoinSet::new();
    let started = now();
    for (i, delivery) in order {
        let r = &requests[i];
        let topic = stack
            .outputs
            .topic(if r.plan.mode == Mode::Single {
                "SwbEgressTopic"
            } else {
                "SwbEgressTopicDual"
            })?
            .to_string();
        let message = r.submission.message_json();
        let id = r.id().to_string();
        let sns = sns.clone();
        let permit = limit.clone().acquire_owned().await?;
        set.spawn(async move {
            let _permit = permit;
            let at = now();
            sns.publish()
                .topic_arn(topic)
                .message(message)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("publishing {id}: {}", chain(&e)))?;
            Ok::<_, anyhow::Error>((id, delivery, at))
        });
    }
    let mut first = HashMap::new();
    while let Some(joined) = set.join_next().await {
        let (id, delivery, at) = joined??;
        if delivery == 0 {
            first.insert(id, at);
        }
    }
    Ok(Published {
        started,
        first,
        seconds: now() - started,
    })
}

// -- observing ------------------------------------------------------------------------------

/// Reads the requests table every [`OBSERVE_EVERY`] and records when each request is first
/// seen waiting for each stage and when it is first seen ended.
async fn observe(stack: Stack, ids: Vec<String>, observed: Observed) {
    let ours: HashSet<String> = ids.into_iter().collect();
    loop {
        if let Ok(items) = scan_requests(&stack).await {
            let at = now();
            if let Ok(mut seen) = observed.lock() {
                for item in items
                    .into_iter()
                    .filter(|r| ours.contains(&r.egress_request_id))
                {
                    let s = seen.entry(item.egress_request_id.clone()).or_default();
                    let parked = item.sfn_task_token.is_some();
                    match (item.review_stage, item.egress_status, parked) {
                        (Some(ReviewStage::Ig), EgressStatus::Processing, true) => {
                            s.at_ig.get_or_insert(at);
                        }
                        (Some(ReviewStage::Rit), EgressStatus::IgApproved, true) => {
                            s.at_rit.get_or_insert(at);
                        }
                        _ => {}
                    }
                    s.last = Some(item);
                }
            }
        }
        tokio::time::sleep(OBSERVE_EVERY).await;
    }
}

/// The requests table by request id.
async fn stored_requests(stack: &Stack) -> Result<HashMap<String, EgressRequest>> {
    Ok(scan_requests(stack)
        .await?
        .into_iter()
        .map(|r| (r.egress_request_id.clone(), r))
        .collect())
}

async fn scan_requests(stack: &Stack) -> Result<Vec<EgressRequest>> {
    let table = stack.outputs.table("RequestsTable")?;
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = stack
            .dynamodb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("scanning {table}: {}", chain(&e)))?;
        for item in out.items.unwrap_or_default() {
            if let Ok(r) = serde_dynamo::from_item::<_, EgressRequest>(item) {
                items.push(r);
            }
        }
        start = out.last_evaluated_key;
        if start.is_none() {
            return Ok(items);
        }
    }
}

/// The API's final answer to a decision on a stage that was already decided: the stale
/// wording, or, once a dual-mode request moved on to Research IT, that stage's wording, or
/// (to a reviewer in both groups who made the IG decision) the separation of duties
/// (`shared::domain::review`). Not a lost answer: clicking again gets the same.
fn already_decided(refusal: &str) -> bool {
    refusal == STALE_REQUEST_MESSAGE
        || refusal.starts_with("This request is awaiting ")
        || refusal.starts_with("You made the Information Governance decision on this request")
}

/// Waits until `when` gives a time for every id; returns the latest of those times.
async fn wait_for(
    observed: &Observed,
    ids: &[String],
    what: &str,
    when: impl Fn(&Seen) -> Option<f64>,
    swept: Option<(&Stack, &mut usize)>,
) -> Result<f64> {
    let deadline = Instant::now() + PHASE_TIMEOUT;
    let mut next_sweep = Instant::now() + SWEEP_EVERY;
    let mut swept = swept;
    loop {
        let waiting: Vec<String> = {
            let seen = observed
                .lock()
                .map_err(|_| anyhow::anyhow!("observations poisoned"))?;
            let times: Vec<Option<f64>> =
                ids.iter().map(|id| seen.get(id).and_then(&when)).collect();
            if times.iter().all(Option::is_some) {
                return Ok(times.into_iter().flatten().fold(f64::MIN, f64::max));
            }
            if Instant::now() > deadline {
                let missing: Vec<String> = ids
                    .iter()
                    .filter(|id| seen.get(*id).and_then(&when).is_none())
                    .map(|id| {
                        let state = seen
                            .get(id)
                            .and_then(|s| s.last.as_ref())
                            .map(|r| {
                                format!("{} at {:?}", r.egress_status.as_str(), r.review_stage)
                            })
                            .unwrap_or_else(|| "not stored".into());
                        format!("{id} ({state})")
                    })
                    .collect();
                return Err(anyhow::anyhow!(
                    "timed out after {PHASE_TIMEOUT:?} waiting for {what}: {} of {} missing, e.g. {:?}",
                    missing.len(),
                    ids.len(),
                    &missing[..missing.len().min(5)]
                ));
            }
            ids.iter()
                .filter(|id| seen.get(*id).and_then(&when).is_none())
                .cloned()
                .collect()
        };
        // Past a decision, the sweep's schedule delivers one whose call died after its claim.
        if let Some((stack, delivered)) = swept.as_mut() {
            if Instant::now() > next_sweep {
                **delivered += sweep(stack, waiting).await?;
                next_sweep = Instant::now() + SWEEP_EVERY;
            }
        }
        tokio::time::sleep(OBSERVE_EVERY).await;
    }
}

/// Waits until every request's execution has ended, running the sweep every [`SWEEP_EVERY`]
/// as its schedule would; their ends by request id, and the decisions the sweep delivered.
async fn wait_for_executions(
    stack: &Stack,
    ids: &[String],
) -> Result<(HashMap<String, Execution>, usize)> {
    let deadline = Instant::now() + PHASE_TIMEOUT;
    let mut next_sweep = Instant::now() + SWEEP_EVERY;
    let mut delivered = 0;
    loop {
        let ended: HashMap<String, Execution> = executions(stack)
            .await?
            .into_iter()
            .filter(|e| e.status != ExecutionStatus::Running && ids.contains(&e.name))
            .map(|e| (e.name.clone(), e))
            .collect();
        let running: Vec<String> = ids
            .iter()
            .filter(|id| !ended.contains_key(*id))
            .cloned()
            .collect();
        if running.is_empty() {
            return Ok((ended, delivered));
        }
        if Instant::now() > deadline {
            return Err(anyhow::anyhow!(
                "{} executions still running after {PHASE_TIMEOUT:?}: {}",
                running.len(),
                running.join(", ")
            ));
        }
        if Instant::now() > next_sweep {
            delivered += sweep(stack, running).await?;
            next_sweep = Instant::now() + SWEEP_EVERY;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Runs the sweep, as its schedule would after the run, on the requests of `ids` that still
/// hold a pending task token, once the grace after their last write has passed; how many
/// stalled decisions it recovered.
async fn sweep_pending(stack: &Stack, ids: &[String]) -> Result<usize> {
    let pending: Vec<EgressRequest> = scan_requests(stack)
        .await?
        .into_iter()
        .filter(|r| r.pending_task_token.is_some() && ids.contains(&r.egress_request_id))
        .collect();
    let Some(last) = pending
        .iter()
        .filter_map(|r| {
            time::OffsetDateTime::parse(
                &r.updated_dt,
                &time::format_description::well_known::Rfc3339,
            )
            .ok()
        })
        .max()
    else {
        return Ok(0);
    };
    let due = last + PENDING_DELIVERY_GRACE + time::Duration::seconds(2);
    let wait = due - time::OffsetDateTime::now_utc();
    println!(
        "load: {} ended request(s) still hold a pending task token; the sweep runs in {:.0}s",
        pending.len(),
        wait.as_seconds_f64().max(0.0)
    );
    if wait.is_positive() {
        tokio::time::sleep(wait.unsigned_abs()).await;
    }
    sweep(
        stack,
        pending.into_iter().map(|r| r.egress_request_id).collect(),
    )
    .await
}

/// Runs the sweep with repairs on `ids` (Lambda `Invoke`, as the schedule does); how many
/// stalled decisions it recovered (delivered, or audited once the workflow had moved on).
async fn sweep(stack: &Stack, ids: Vec<String>) -> Result<usize> {
    let url = format!(
        "{}/2015-03-31/functions/sweep/invocations",
        stack.outputs.endpoint
    );
    let input = json!({ "repair": true, "egress_request_ids": ids }).to_string();
    let report: shared::model::SweepReport = tokio::task::spawn_blocking(move || {
        let mut response = ureq::post(&url).send(input)?;
        if response.headers().get("X-Amz-Function-Error").is_some() {
            let body = response.body_mut().read_to_string()?;
            return Err(anyhow::anyhow!("the sweep failed: {body}"));
        }
        Ok(serde_json::from_slice(&response.body_mut().read_to_vec()?)?)
    })
    .await??;
    Ok(report
        .drift
        .iter()
        .filter(|d| {
            d.kind == "stalled_decision"
                && matches!(d.action.as_str(), "repaired" | "already_repaired")
        })
        .count())
}

/// An execution of the state machine.
#[derive(Debug, Clone)]
struct Execution {
    name: String,
    status: ExecutionStatus,
    /// When it ended (seconds since the epoch).
    stopped: Option<f64>,
}

/// Every execution of the state machine.
async fn executions(stack: &Stack) -> Result<Vec<Execution>> {
    Ok(inspect::executions(stack)
        .await?
        .iter()
        .map(|e| Execution {
            name: e.name().to_string(),
            status: e.status().clone(),
            stopped: e.stop_date().map(|d| d.as_secs_f64()),
        })
        .collect())
}

// -- deciding -------------------------------------------------------------------------------

async fn sign_in_all(api: &Api) -> Result<HashMap<String, (ApiUser, Tokens)>> {
    let mut out = HashMap::new();
    for role in ["ig", "ig2", "both", "rit"] {
        let user = api.user(role)?.clone();
        let api = api.clone();
        let tokens =
            tokio::task::spawn_blocking(move || api.sign_in(&user).map(|t| (user, t))).await??;
        out.insert(role.to_string(), tokens);
    }
    Ok(out)
}

/// `listRequests` as the web app calls it: rows by request id.
async fn list_rows(
    api: &Api,
    (_, tokens): &(ApiUser, Tokens),
    listed: &mut Vec<String>,
) -> Result<HashMap<String, Value>> {
    // A list that fails (on this machine: a call that ran past the API's 30 s timeout while
    // the executions saturate both cores) is what a reviewer reloads; it breaks no promise.
    let mut attempt = 0;
    let rows = loop {
        attempt += 1;
        let (api, access) = (api.clone(), tokens.access.clone());
        match tokio::task::spawn_blocking(move || api.list(&access)).await? {
            Ok(rows) => break rows,
            Err(err) if attempt < LIST_ATTEMPTS => {
                println!("load: listRequests failed ({err:#}); the reviewer reloads (attempt {attempt} of {LIST_ATTEMPTS})");
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
            Err(err) => return Err(err),
        }
    };
    listed.push(Value::Array(rows.clone()).to_string());
    Ok(rows
        .into_iter()
        .filter_map(|r| Some((r["egress_request_id"].as_str()?.to_string(), r)))
        .collect())
}

/// One `updateRequest` as the web app sends it; blocking (the harness's HTTP client).
fn decide_blocking(
    api: &Api,
    role: &str,
    (user, tokens): &(ApiUser, Tokens),
    row: &Value,
    stage: ReviewStage,
    decision: Decision,
    contested: bool,
) -> Result<DecisionCall> {
    let request = web_app_decision(row, stage, user, decision, REASON);
    let mut lost_answers = 0;
    loop {
        let started = Instant::now();
        let answer = match api.call(
            Some(&tokens.access),
            UPDATE_REQUEST,
            json!({ "request": request }),
        ) {
            Ok(answer) => answer,
            // No answer at all (the API's own 408 when the stack is saturated): lost too.
            Err(_) if lost_answers + 1 < DECISION_ATTEMPTS => {
                lost_answers += 1;
                std::thread::sleep(Duration::from_secs(3));
                continue;
            }
            Err(e) => return Err(e),
        };
        let seconds = started.elapsed().as_secs_f64();
        let refusal = match (answer.error(), answer.data("updateRequest").as_str()) {
            (None, Some(UPDATE_SUCCESS_MESSAGE)) => None,
            (Some(error), _) => Some(error),
            (None, other) => Some(format!(
                "unexpected answer {other:?} (HTTP {})",
                answer.status
            )),
        };
        let lost = refusal.as_deref().is_some_and(|e| !already_decided(e));
        if lost && lost_answers + 1 < DECISION_ATTEMPTS {
            lost_answers += 1;
            std::thread::sleep(Duration::from_secs(3));
            continue;
        }
        return Ok(DecisionCall {
            id: row["egress_request_id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            stage,
            reviewer: role.to_string(),
            decision,
            seconds,
            returned_at: now(),
            refusal,
            lost_answers,
            contested,
            response: answer.body.to_string(),
        });
    }
}

/// Decides `stage` of every request: uncontested ones by one reviewer, [`IN_FLIGHT`] at a
/// time; contested ones by [`RACERS`] reviewers released together by a barrier.
async fn decide_stage(
    api: &Api,
    tokens: &HashMap<String, (ApiUser, Tokens)>,
    requests: &[Request],
    rows: &HashMap<String, Value>,
    stage: ReviewStage,
) -> Result<Vec<DecisionCall>> {
    let limit = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut set: JoinSet<Result<Vec<DecisionCall>>> = JoinSet::new();
    for (n, r) in requests.iter().enumerate() {
        let row = rows
            .get(r.id())
            .cloned()
            .context(format!("listRequests does not list {}", r.id()))?;
        let api = api.clone();
        let contested = r.plan.contested && stage == ReviewStage::Ig;
        let permit = limit.clone().acquire_owned().await?;
        if contested {
            let racers: Vec<(String, (ApiUser, Tokens), Decision)> = (0..RACERS)
                .map(|k| {
                    let role = ["ig", "ig2", "both"][k % 3];
                    let decision = if k % 2 == 0 {
                        Decision::Approved
                    } else {
                        Decision::Rejected
                    };
                    (role.to_string(), tokens[role].clone(), decision)
                })
                .collect();
            set.spawn(async move {
                let _permit = permit;
                let barrier = Arc::new(Barrier::new(RACERS));
                let mut threads = JoinSet::new();
                for (role, who, decision) in racers {
                    let (api, row, barrier) = (api.clone(), row.clone(), barrier.clone());
                    threads.spawn_blocking(move || {
                        barrier.wait();
                        decide_blocking(&api, &role, &who, &row, stage, decision, true)
                    });
                }
                let mut calls = Vec::new();
                while let Some(joined) = threads.join_next().await {
                    calls.push(joined??);
                }
                Ok(calls)
            });
        } else {
            let (role, decision) = match stage {
                ReviewStage::Ig => (if n % 2 == 0 { "ig" } else { "ig2" }, r.plan.ig),
                ReviewStage::Rit => ("rit", r.plan.rit),
            };
            let who = tokens[role].clone();
            set.spawn(async move {
                let _permit = permit;
                let call = tokio::task::spawn_blocking(move || {
                    decide_blocking(&api, role, &who, &row, stage, decision, false)
                })
                .await??;
                Ok(vec![call])
            });
        }
    }
    let mut calls = Vec::new();
    while let Some(joined) = set.join_next().await {
        calls.extend(joined??);
    }
    Ok(calls)
}

/// The decision that won each request's stage (the one call that was not refused).
/// The stored decision of `stage` on `stored`, and the e-mail of who made it.
fn stored_decision(stored: &EgressRequest, stage: ReviewStage) -> (Option<Decision>, &str) {
    match stage {
        ReviewStage::Ig => (
            stored.ig_reviewer_1_decision,
            stored.ig_reviewer_1_email.as_deref().unwrap_or_default(),
        ),
        ReviewStage::Rit => (
            stored.rit_reviewer_2_decision,
            stored.rit_reviewer_2_email.as_deref().unwrap_or_default(),
        ),
    }
}

/// The start of the e-mail of the API user of `role` (local/appsync seeds them).
fn email_of(role: &str) -> &'static str {
    match role {
        "ig" => "ig.reviewer@",
        "ig2" => "ig.second@",
        "rit" => "rit.reviewer@",
        _ => "both.reviewer@",
    }
}

/// True when `c` decided its request: it was answered with the success, or its answer was
/// lost (and the retry refused) while the stored decision is its reviewer's own.
fn won_call(c: &DecisionCall, stored: &HashMap<String, EgressRequest>) -> bool {
    if c.refusal.is_none() {
        return true;
    }
    c.lost_answers > 0
        && stored.get(&c.id).is_some_and(|r| {
            let (decision, email) = stored_decision(r, c.stage);
            decision == Some(c.decision) && email.starts_with(email_of(&c.reviewer))
        })
}

/// The decision of each request's stage: its winner's, where a call can claim it.
fn winners(
    calls: &[DecisionCall],
    stored: &HashMap<String, EgressRequest>,
) -> HashMap<String, Decision> {
    calls
        .iter()
        .filter(|c| won_call(c, stored))
        .map(|c| (c.id.clone(), c.decision))
        .collect()
}

// -- the promises ---------------------------------------------------------------------------

fn percentiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.50), at(0.95), v[v.len() - 1])
}

/// What the request's end must be, given who won each stage.
fn expected_end(
    r: &Request,
    calls: &[DecisionCall],
    stored: &HashMap<String, EgressRequest>,
) -> Option<EgressStatus> {
    let won = |stage: ReviewStage| {
        calls
            .iter()
            .find(|c| c.id == r.id() && c.stage == stage && won_call(c, stored))
            .map(|c| c.decision)
    };
    match (r.plan.mode, won(ReviewStage::Ig)?) {
        (_, Decision::Rejected) => Some(EgressStatus::Rejected),
        (Mode::Single, Decision::Approved) => Some(EgressStatus::IgApproved),
        (Mode::Dual, Decision::Approved) => match won(ReviewStage::Rit)? {
            Decision::Approved => Some(EgressStatus::RitApproved),
            Decision::Rejected => Some(EgressStatus::Rejected),
        },
    }
}

async fn check(
    stack: &Stack,
    requests: &[Request],
    calls: &[DecisionCall],
    stored: &HashMap<String, EgressRequest>,
) -> Result<Vec<Promise>> {
    let mut promises = Vec::new();
    let ids: HashSet<&str> = requests.iter().map(Request::id).collect();

    // Exactly one execution per request id; none extra, none running.
    let executions = executions(stack).await?;
    let mut per_name: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &executions {
        *per_name.entry(e.name.as_str()).or_default() += 1;
    }
    let mut bad: Vec<String> = requests
        .iter()
        .filter(|r| per_name.get(r.id()).copied().unwrap_or(0) != 1)
        .map(|r| {
            format!(
                "{}: {} executions",
                r.id(),
                per_name.get(r.id()).copied().unwrap_or(0)
            )
        })
        .collect();
    bad.extend(
        per_name
            .keys()
            .filter(|n| !ids.contains(*n))
            .map(|n| format!("{n}: not a request of this run")),
    );
    let ours = executions
        .iter()
        .filter(|e| ids.contains(e.name.as_str()))
        .count();
    promises.push(Promise::new(
        "executions (one per request id)",
        REQUESTS,
        ours,
        bad,
    ));
    let not_succeeded: Vec<String> = executions
        .iter()
        .filter(|e| ids.contains(e.name.as_str()) && e.status != ExecutionStatus::Succeeded)
        .map(|e| format!("{}: {:?}", e.name, e.status))
        .collect();
    promises.push(Promise::new(
        "executions succeeded",
        REQUESTS,
        ours - not_succeeded.len(),
        not_succeeded,
    ));

    // Duplicate deliveries: every delivery handled, absorbed (one execution, above).
    let invocations = inspect::async_invocations(stack)?;
    let deliveries: usize = requests.iter().map(|r| r.plan.deliveries).sum();
    let starts: Vec<_> = invocations
        .iter()
        .filter(|i| i.function == "start-workflow")
        .collect();
    let unfinished: Vec<String> = starts
        .iter()
        .filter(|i| i.state == "running" || i.state == "retrying")
        .map(|i| format!("still {}: {}", i.state, i.source))
        .collect();
    promises.push(Promise::new(
        "SWB deliveries handled",
        deliveries,
        starts.len() - unfinished.len(),
        unfinished,
    ));
    let failed: Vec<String> = starts
        .iter()
        .filter(|i| i.state == "error")
        .map(|i| format!("{}: {}", i.source, i.error.clone().unwrap_or_default()))
        .collect();
    promises.push(Promise::new(
        "start-workflow errors",
        0,
        failed.len(),
        failed,
    ));

    // 0 lost: each request ended as its winning decisions say.
    let mut lost = Vec::new();
    let mut ended: BTreeMap<&'static str, usize> = BTreeMap::new();
    for r in requests {
        let status = stored.get(r.id()).map(|l| l.egress_status);
        if let Some(s) = status {
            *ended.entry(s.as_str()).or_default() += 1;
        }
        let expected = expected_end(r, calls, stored);
        if status.is_none() || status != expected {
            lost.push(format!(
                "{}: {:?}, expected {:?}",
                r.id(),
                status.map(|s| s.as_str()),
                expected.map(|s| s.as_str())
            ));
        }
    }
    let summary: Vec<String> = ended.iter().map(|(k, v)| format!("{k} {v}")).collect();
    promises.push(Promise::new("lost or wrong end", 0, lost.len(), lost));
    println!("load: ends: {}", summary.join(", "));

    // Contested: exactly one winner, every other racer refused as the web app words it.
    let mut contest = Vec::new();
    let contested: Vec<&Request> = requests.iter().filter(|r| r.plan.contested).collect();
    let mut winners_total = 0;
    for r in &contested {
        let racers: Vec<&DecisionCall> = calls
            .iter()
            .filter(|c| c.id == r.id() && c.contested)
            .collect();
        // At most one racer is told it won; when the winner's answer was lost (and its retry
        // refused), the stored decision must be one of those racers' own.
        let mut won: Vec<&&DecisionCall> = racers.iter().filter(|c| c.refusal.is_none()).collect();
        if won.is_empty() {
            won.extend(racers.iter().filter(|c| won_call(c, stored)).take(1));
        }
        winners_total += won.len();
        if won.len() != 1 || racers.len() != RACERS {
            contest.push(format!(
                "{}: {} winners of {} racers",
                r.id(),
                won.len(),
                racers.len()
            ));
        }
        for c in racers.iter().filter(|c| {
            c.refusal.as_deref().is_some_and(|e| !already_decided(e)) && !won_call(c, stored)
        }) {
            contest.push(format!(
                "{} ({}): refused with {:?}",
                r.id(),
                c.reviewer,
                c.refusal
            ));
        }
        // The stored IG decision is the winner's.
        if let (Some(w), Some(last)) = (won.first(), stored.get(r.id())) {
            let user = email_of(&w.reviewer);
            if last.ig_reviewer_1_decision != Some(w.decision)
                || !last
                    .ig_reviewer_1_email
                    .as_deref()
                    .unwrap_or_default()
                    .starts_with(user)
            {
                contest.push(format!(
                    "{}: stored {:?} by {:?}, the winner was {:?} by {}",
                    r.id(),
                    last.ig_reviewer_1_decision,
                    last.ig_reviewer_1_email,
                    w.decision,
                    w.reviewer
                ));
            }
        }
    }
    promises.push(Promise::new(
        "contested: one winner each",
        format!("{CONTESTED} of {CONTESTED}"),
        format!("{winners_total} winners"),
        contest,
    ));
    let refused: Vec<String> = calls
        .iter()
        .filter(|c| !c.contested && !won_call(c, stored))
        .filter_map(|c| {
            c.refusal
                .as_ref()
                .map(|e| format!("{} {:?} by {}: {e}", c.id, c.stage, c.reviewer))
        })
        .collect();
    promises.push(Promise::new(
        "uncontested decisions refused",
        0,
        refused.len(),
        refused,
    ));

    Ok(promises)
}
