//! `make chaos` (issue 10): the workflow keeps its promises when AWS misbehaves.
//!
//! Against the local stack and its reviewer API (feature `chaos`, with `e2e` and `e2e-api`):
//! - [`when_a_fifth_of_aws_calls_fail_then_every_promise_holds`]: the edge router's fault
//!   injector (local/egress_local/faults.py) fails `CHAOS_RATE` (default 20%) of the AWS calls
//!   the functions and the Step Functions interpreter make, seeded by `CHAOS_SEED` (printed;
//!   set it to replay), while `CHAOS_REQUESTS` (default 52) requests run: single and dual,
//!   approved, rejected at either stage, expired, and a submitted version missing. Reviewers
//!   decide through GraphQL as the web app does, and click again when the API fails, as a
//!   person would. Once all have ended the faults stop and every promise is checked
//!   ([`e2e_tests::promises`]).
//! - [`when_a_function_is_killed_mid_copy_or_mid_archive_then_the_retry_finishes_the_job`]:
//!   `copy-to-staging` is killed (SIGKILL) while a copy is in flight and `copy-to-datalake`
//!   while its archive upload is open (the router holds the chosen S3 calls for a few seconds
//!   so the kill lands there); the workflow's retry must finish both, with exactly one
//!   archive and no multipart upload left open.
//!
//! The two tests share the router's fault settings: run them one at a time (`make chaos`
//! passes `--test-threads 1`).
#![cfg(all(feature = "e2e", feature = "e2e-api", feature = "chaos"))]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use e2e_tests::driver::{ReviewDriver, Reviewer};
use e2e_tests::fixture;
use e2e_tests::graphql::GraphQlDriver;
use e2e_tests::inspect;
use e2e_tests::promises::{self, Expect, Tracked};
use e2e_tests::stack::{http_get_json, Stack};
use e2e_tests::swb::{self, Mode, Scenario, Submission, Submit};
use e2e_tests::{wait, Context, Result};
use serde_json::{json, Value};
use shared::domain::intake::{build_workflow_input, IntakeConfig};
use shared::model::{ApprovalMode, Decision, ReviewStage, WorkflowConfig};

/// How long one request may take under faults on a busy 2-core machine.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(900);
/// Review timeout of the requests that must expire (started directly, as the e2e test does).
const EXPIRY_SECONDS: u64 = 5;
/// Times a reviewer clicks again after the API failed.
const DECISION_ATTEMPTS: u32 = 10;
/// Submissions prepared at once (each runs the SWB simulator).
const SUBMIT_PARALLEL: usize = 4;

/// One planned request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    ApproveSingle,
    ApproveDual,
    RejectSingle,
    RejectDualAtIg,
    RejectDualAtRit,
    ExpireSingle,
    ExpireDual,
    MissingVersion,
}

impl Plan {
    fn mode(self) -> Mode {
        match self {
            Plan::ApproveDual | Plan::RejectDualAtIg | Plan::RejectDualAtRit | Plan::ExpireDual => {
                Mode::Dual
            }
            _ => Mode::Single,
        }
    }

    fn expect(self) -> Expect {
        match self {
            Plan::ApproveSingle | Plan::ApproveDual => Expect::Approved,
            Plan::RejectSingle | Plan::RejectDualAtIg | Plan::RejectDualAtRit => Expect::Rejected,
            Plan::ExpireSingle | Plan::ExpireDual => Expect::Expired,
            Plan::MissingVersion => Expect::Failed(Some("NotFound".into())),
        }
    }

    /// The decisions reviewers make, in order.
    fn decisions(self) -> Vec<(ReviewStage, Decision)> {
        use Decision::{Approved, Rejected};
        use ReviewStage::{Ig, Rit};
        match self {
            Plan::ApproveSingle => vec![(Ig, Approved)],
            Plan::ApproveDual => vec![(Ig, Approved), (Rit, Approved)],
            Plan::RejectSingle | Plan::RejectDualAtIg => vec![(Ig, Rejected)],
            Plan::RejectDualAtRit => vec![(Ig, Approved), (Rit, Rejected)],
            _ => Vec::new(),
        }
    }
}

/// `n` requests in a fixed mix: about a third approved single, a fifth approved dual, the
/// rest rejected at either stage, expired or missing a version.
fn plans(n: usize) -> Vec<Plan> {
    const MIX: [Plan; 13] = [
        Plan::ApproveSingle,
        Plan::ApproveDual,
        Plan::RejectSingle,
        Plan::ApproveSingle,
        Plan::ExpireSingle,
        Plan::RejectDualAtRit,
        Plan::ApproveSingle,
        Plan::MissingVersion,
        Plan::ApproveDual,
        Plan::RejectDualAtIg,
        Plan::ApproveSingle,
        Plan::ExpireDual,
        Plan::ApproveDual,
    ];
    (0..n).map(|i| MIX[i % MIX.len()]).collect()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The router's fault injector: `POST`, `GET` and `DELETE /_local/faults`.
struct Faults {
    url: String,
}

impl Faults {
    fn new(stack: &Stack) -> Self {
        Self {
            url: format!("{}/_local/faults", stack.outputs.endpoint),
        }
    }

    fn set(&self, settings: Value) -> Result<Value> {
        let mut response = ureq::post(&self.url)
            .send(settings.to_string())
            .context("POST /_local/faults")?;
        serde_json::from_slice(&response.body_mut().read_to_vec()?).context("fault report")
    }

    fn report(&self) -> Result<Value> {
        http_get_json(&self.url)
    }

    fn off(&self) -> Result<Value> {
        let mut response = ureq::delete(&self.url)
            .call()
            .context("DELETE /_local/faults")?;
        serde_json::from_slice(&response.body_mut().read_to_vec()?).context("fault report")
    }

    /// Calls of `operation` (`s3:CopyObject`) the injector has seen since it was set.
    fn calls(&self, operation: &str) -> Result<u64> {
        Ok(self.report()?["calls"][operation].as_u64().unwrap_or(0))
    }
}

/// Submits as SWB does; an expiring request is prepared and started directly with a short
/// review timeout (the project's is days).
async fn start(stack: &Stack, plan: Plan) -> Result<Submission> {
    let expire = matches!(plan, Plan::ExpireSingle | Plan::ExpireDual);
    let submit = Submit {
        mode: plan.mode(),
        scenario: if plan == Plan::MissingVersion {
            Scenario::MissingVersion
        } else {
            Scenario::Standard
        },
        publish_times: if expire { 0 } else { 1 },
    };
    let outputs = stack.outputs.clone();
    let s = tokio::task::spawn_blocking(move || swb::submit(&outputs, &submit))
        .await
        .context("the SWB simulator task")??;
    if expire {
        let approval_mode = match plan.mode() {
            Mode::Single => ApprovalMode::Single,
            Mode::Dual => ApprovalMode::Dual,
        };
        let config = IntakeConfig {
            swb_notification_bucket: stack.outputs.bucket("SwbNotificationBucket")?.to_string(),
            swb_egress_store_bucket: stack.outputs.bucket("SwbEgressStoreBucket")?.to_string(),
            workflow: WorkflowConfig {
                approval_mode,
                is_single_approval_enabled: approval_mode == ApprovalMode::Single,
                ig_reviewer_group: stack.outputs.project.ig_reviewer_group.clone(),
                rit_reviewer_group: stack.outputs.project.rit_reviewer_group.clone(),
                review_timeout_seconds: EXPIRY_SECONDS,
                app_url: stack.outputs.project.app_url.clone(),
            },
        };
        let input = build_workflow_input(&s.message_json(), &config)
            .map_err(|e| anyhow::anyhow!("intake refused the simulator's message: {e}"))?;
        stack
            .sfn
            .start_execution()
            .state_machine_arn(&stack.outputs.state_machine_arn)
            .name(&s.egress_request_id)
            .input(serde_json::to_string(&input)?)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("starting {}: {}", s.egress_request_id, e2e_tests::chain(&e))
            })?;
    }
    Ok(s)
}

/// Decides `stage` as a reviewer would: waits for the request to await it, decides through
/// GraphQL, and clicks again when the API failed, until the request has moved on. Returns
/// how many attempts the API refused or failed.
async fn decide(
    stack: &Stack,
    driver: &GraphQlDriver,
    id: &str,
    stage: ReviewStage,
    decision: Decision,
) -> Result<u32> {
    let reviewer = match stage {
        ReviewStage::Ig => Reviewer::ig(stack),
        ReviewStage::Rit => Reviewer::rit(stack),
    };
    inspect::awaiting_review(stack, id, stage, REQUEST_TIMEOUT).await?;
    let mut failures = 0;
    let mut last = String::new();
    for attempt in 1..=DECISION_ATTEMPTS {
        let result = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(driver.decide(
                id,
                &reviewer,
                decision,
                "chaos: decided under injected faults",
            ))
        });
        match result {
            Ok(()) => return Ok(failures),
            Err(err) => {
                failures += 1;
                last = format!("{err:#}");
            }
        }
        tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
        // Still (or again, after a retried task) awaiting this stage: click again. Moved on:
        // a failed-looking attempt did land.
        if inspect::awaiting_review(stack, id, stage, Duration::from_secs(20))
            .await
            .is_err()
        {
            return Ok(failures);
        }
    }
    Err(anyhow::anyhow!(
        "{id}: the {stage} decision failed {DECISION_ATTEMPTS} times, last: {last}"
    ))
}

/// Runs one planned request to its end; returns the failed decision attempts.
async fn drive(stack: Stack, driver: GraphQlDriver, plan: Plan, id: String) -> Result<u32> {
    let mut failures = 0;
    for (stage, decision) in plan.decisions() {
        failures += decide(&stack, &driver, &id, stage, decision).await?;
    }
    inspect::execution_end(&stack, &stack.outputs.execution_arn(&id), REQUEST_TIMEOUT).await?;
    Ok(failures)
}

/// The fault report as table lines: `service:Operation:kind  n`, and the totals.
fn fault_table(report: &Value) -> String {
    let mut out = String::new();
    let faults = report["faults"].as_object().cloned().unwrap_or_default();
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    for (name, n) in &faults {
        let n = n.as_u64().unwrap_or(0);
        out.push_str(&format!("  {name:<48} {n:>5}\n"));
        let kind = name.rsplit(':').next().unwrap_or("?").to_string();
        *by_kind.entry(kind).or_insert(0) += n;
    }
    out.push_str(&format!(
        "  faults {} of {} calls; by kind: {}\n",
        report["faults_total"],
        report["calls_total"],
        by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out
}

fn seed() -> u64 {
    std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() % 1_000_000)
                .unwrap_or(1)
        })
}

/// Writes `text` under `.local-stack/chaos/` for the README and a replay.
fn keep(stack: &Stack, name: &str, text: &str) {
    let dir = stack.outputs.state_dir.join("chaos");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(Path::new(&dir).join(name), text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn when_a_fifth_of_aws_calls_fail_then_every_promise_holds() {
    let (stack, _api) = fixture::setup().await;
    let driver = GraphQlDriver::connect().expect("the reviewer API is up");
    let faults = Faults::new(&stack);
    let seed = seed();
    let rate: f64 = env_or("CHAOS_RATE", 0.2);
    let count: usize = env_or("CHAOS_REQUESTS", 52);
    println!(
        "chaos: seed {seed} (CHAOS_SEED={seed} replays), {rate} of calls fail, {count} requests"
    );
    faults.off().expect("faults off");
    faults
        .set(json!({"rate": rate, "seed": seed}))
        .expect("faults on");
    let started = Instant::now();

    let plans = plans(count);
    let mut submitted: Vec<(Plan, Submission)> = Vec::new();
    for batch in plans.chunks(SUBMIT_PARALLEL) {
        let mut set = tokio::task::JoinSet::new();
        for plan in batch.iter().copied() {
            let stack = stack.clone();
            set.spawn(async move { (plan, start(&stack, plan).await) });
        }
        while let Some(joined) = set.join_next().await {
            let (plan, s) = joined.expect("the submit task");
            submitted.push((plan, s.expect("submitted")));
        }
    }
    let submit_seconds = started.elapsed().as_secs_f64();

    let mut set = tokio::task::JoinSet::new();
    for (plan, s) in &submitted {
        let (stack, driver, plan, id) = (
            stack.clone(),
            driver.clone(),
            *plan,
            s.egress_request_id.clone(),
        );
        set.spawn(async move { (id.clone(), drive(stack, driver, plan, id).await) });
    }
    let mut decision_failures = 0;
    let mut stuck = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined.expect("the request task") {
            (_, Ok(n)) => decision_failures += n,
            (id, Err(err)) => stuck.push(format!("{id}: {err:#}")),
        }
    }
    let run_seconds = started.elapsed().as_secs_f64();
    let report = faults.report().expect("fault report");
    faults.off().expect("faults off");

    let tracked: Vec<Tracked> = submitted
        .iter()
        .map(|(plan, s)| Tracked {
            submission: s.clone(),
            mode: plan.mode(),
            expect: plan.expect(),
        })
        .collect();
    // What the reviewers' app receives must carry no task token or secret either.
    let api = driver.api();
    let responses: Vec<String> = ["ig", "rit"]
        .iter()
        .filter_map(|role| api.user(role).ok())
        .filter_map(|user| api.sign_in(user).ok())
        .filter_map(|tokens| api.list(&tokens.access).ok())
        .map(|rows| Value::Array(rows).to_string())
        .collect();
    let checked = promises::check(&stack, &tracked, &responses)
        .await
        .expect("the promises can be checked");

    let mut plan_counts: BTreeMap<String, usize> = BTreeMap::new();
    for (plan, _) in &submitted {
        *plan_counts.entry(format!("{plan:?}")).or_insert(0) += 1;
    }
    let summary = format!(
        "chaos: seed {seed}, rate {rate}, {count} requests ({}), submitted in {submit_seconds:.0}s, all ended in {run_seconds:.0}s\n\
         decision attempts the API failed (reviewer clicked again): {decision_failures}\n\
         faults injected by service:operation:kind\n{}\n{}",
        plan_counts
            .iter()
            .map(|(p, n)| format!("{p} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        fault_table(&report),
        checked.table()
    );
    println!("{summary}");
    keep(&stack, &format!("run-{seed}.txt"), &summary);
    assert!(stuck.is_empty(), "requests that did not end: {stuck:#?}");
    assert!(
        report["faults_total"].as_u64().unwrap_or(0) > 0,
        "faults were injected: {report}"
    );
    checked.ensure_kept().expect("every promise holds");
}

/// The processes running `function` under `cargo lambda watch` (the function binary).
fn function_processes(function: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        let argv0 = Path::new(std::str::from_utf8(argv0).unwrap_or_default());
        // The debug binary `cargo lambda watch` runs (wherever CARGO_TARGET_DIR puts it).
        if argv0.file_name().is_some_and(|n| n == function)
            && argv0.to_string_lossy().contains("/debug/")
        {
            pids.push(pid);
        }
    }
    pids
}

/// SIGKILLs every process of `function`; how many.
fn kill_function(function: &str) -> usize {
    let pids = function_processes(function);
    for pid in &pids {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    pids.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_a_function_is_killed_mid_copy_or_mid_archive_then_the_retry_finishes_the_job() {
    let (stack, _api) = fixture::setup().await;
    let driver = GraphQlDriver::connect().expect("the reviewer API is up");
    let faults = Faults::new(&stack);
    faults.off().expect("faults off");
    // Hold every copy into staging for 3 s, so the kill lands while one is in flight. A
    // small file is staged by a PutObject of the bytes read and checked, a larger one by a
    // CopyObject.
    faults
        .set(json!({"rate": 0, "latency_ms": 3000, "services": ["s3"], "operations": ["s3:CopyObject", "s3:UploadPartCopy", "s3:PutObject"], "callers": ["functions"]}))
        .expect("latency on copies");
    let s = fixture::submit(&stack, Mode::Single);
    let id = s.egress_request_id.clone();
    wait::until("the second copy into staging", REQUEST_TIMEOUT, || async {
        let copies = faults.calls("s3:CopyObject")? + faults.calls("s3:PutObject")?;
        Ok((copies >= 2).then_some(()))
    })
    .await
    .expect("copy-to-staging copies");
    let killed_copy = kill_function("copy-to-staging");
    println!("chaos: killed {killed_copy} copy-to-staging process(es) mid-copy of {id}");
    faults.off().expect("faults off");
    assert!(killed_copy > 0, "a copy-to-staging process was running");
    inspect::awaiting_review(&stack, &id, ReviewStage::Ig, REQUEST_TIMEOUT)
        .await
        .expect("the retried staging finishes and the request awaits review");

    // Hold every archive part for 3 s, so the kill lands while the upload is open.
    faults
        .set(json!({"rate": 0, "latency_ms": 3000, "services": ["s3"], "operations": ["s3:UploadPart", "s3:CompleteMultipartUpload", "s3:PutObject"], "callers": ["functions"]}))
        .expect("latency on archive writes");
    driver
        .decide(
            &id,
            &Reviewer::ig(&stack),
            Decision::Approved,
            "chaos: kill test",
        )
        .await
        .expect("approved");
    let bucket = stack
        .outputs
        .bucket("DatalakeBucket")
        .expect("datalake")
        .to_string();
    let upload_open = wait::until("the archive upload to open", REQUEST_TIMEOUT, || async {
        let open = promises::open_uploads(&stack).await?;
        Ok(open
            .iter()
            .any(|k| k.starts_with(&format!("s3://{bucket}/")) && k.contains(id.as_str()))
            .then_some(()))
    })
    .await;
    let killed_archive = kill_function("copy-to-datalake");
    println!("chaos: killed {killed_archive} copy-to-datalake process(es) mid-archive of {id}");
    faults.off().expect("faults off");
    upload_open.expect("the archive is written as a multipart upload");
    assert!(killed_archive > 0, "a copy-to-datalake process was running");

    let end = inspect::execution_end(&stack, &stack.outputs.execution_arn(&id), REQUEST_TIMEOUT)
        .await
        .expect("the execution ends");
    let events = inspect::history(&stack, &stack.outputs.execution_arn(&id))
        .await
        .expect("history");
    println!(
        "chaos: {id} ended {:?}; task failures retried: {:?}",
        end.status,
        inspect::task_failures(&events)
    );
    let checked = promises::check(
        &stack,
        &[Tracked {
            submission: s,
            mode: Mode::Single,
            expect: Expect::Approved,
        }],
        &[],
    )
    .await
    .expect("the promises can be checked");
    println!("{}", checked.table());
    keep(&stack, "kill.txt", &checked.table());
    checked
        .ensure_kept()
        .expect("every promise holds after the kills");
}
