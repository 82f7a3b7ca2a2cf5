//! The promises every long suite (`make chaos`, `make load`) checks after its run (issue 10,
//! DESIGN.md §8), against the local stack's real state.
//!
//! A suite records what it submitted and what it expects of each request ([`Tracked`]), plus
//! the response bodies it received that must carry no secret, then calls [`check`] once every
//! request has ended. The [`Report`] has one row per promise (how many requests or lines were
//! checked, how many broke it, the first examples); suites print [`Report::table`] and fail
//! when [`Report::broken`] is not empty.
//!
//! Reads only: the requests table, SWB's egress store table, the staging and datalake
//! buckets (object versions and open multipart uploads), the state machine's executions and
//! their histories, the audit table, and the stack's own logs (`.local-stack/logs/`).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;

use aws_sdk_sfn::types::{ExecutionStatus, HistoryEventType};
use shared::model::{Decision, EgressRequest, EgressStatus};

use crate::inspect::{self, Archive};
use crate::stack::Stack;
use crate::swb::{Mode, Submission};
use crate::verify;
use crate::{Context, Result};

/// What a suite expects of one request's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Approved by every stage its mode needs: `IGAPPROVED` (single) or `RITAPPROVED` (dual),
    /// with an archive whose bytes are the submitted versions.
    Approved,
    /// Rejected at some stage.
    Rejected,
    /// Approved or rejected, whichever decision won (contested requests of `make load`).
    Decided,
    /// Nobody decided within the review timeout.
    Expired,
    /// The workflow failed; `Some(error)` names the error it must fail with
    /// (`failure_error`), `None` accepts any named error.
    Failed(Option<String>),
}

/// One request a suite submitted, and what it expects of it.
#[derive(Debug, Clone)]
pub struct Tracked {
    /// The submission as the SWB simulator reported it.
    pub submission: Submission,
    /// Its approval mode (the project it was published to).
    pub mode: Mode,
    /// The outcome it must reach.
    pub expect: Expect,
}

/// One promise's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The promise, as the issue states it (short).
    pub promise: &'static str,
    /// How many things (requests, buckets, log files, responses) were checked against it.
    pub checked: usize,
    /// How many broke it.
    pub broken: usize,
    /// The first few breaches, each naming the request or file.
    pub examples: Vec<String>,
}

/// How many breaches each row keeps as examples.
const EXAMPLES: usize = 3;

impl Row {
    fn new(promise: &'static str) -> Self {
        Self {
            promise,
            checked: 0,
            broken: 0,
            examples: Vec::new(),
        }
    }

    fn pass(&mut self) {
        self.checked += 1;
    }

    fn fail(&mut self, example: String) {
        self.checked += 1;
        self.broken += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(example);
        }
    }

    fn record(&mut self, breach: Option<String>) {
        match breach {
            None => self.pass(),
            Some(example) => self.fail(example),
        }
    }
}

/// The promises' rows, in the order.
pub const TERMINAL: &str = "one terminal state matching what happened, none PROCESSING";
/// SWB's store item.
pub const SWB: &str = "SWB store not PROCESSING after the end, PROCESSED only with an archive";
/// Staging cleaned up.
pub const STAGING: &str = "no staged object left behind";
/// Multipart uploads.
pub const MULTIPART: &str = "no incomplete multipart upload left open";
/// Archives.
pub const ARCHIVE: &str = "an archive only when approved, exactly one, bytes = submitted versions";
/// Executions.
pub const EXECUTIONS: &str = "exactly one execution per request id";
/// Decisions.
pub const DECISIONS: &str = "exactly one decision per decided stage";
/// Audit.
pub const AUDIT: &str = "the audit trail has every step once";
/// Leaks.
pub const LEAKS: &str = "no task token, presigned URL or secret in a log line or response";

/// The promise report of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// One row per promise.
    pub rows: Vec<Row>,
    /// Requests checked, by the status they ended in.
    pub outcomes: BTreeMap<String, usize>,
}

impl Report {
    /// The promises that broke.
    pub fn broken(&self) -> Vec<&Row> {
        self.rows.iter().filter(|r| r.broken > 0).collect()
    }

    /// The report as a plain-text table (promise, checked, broken, first examples).
    pub fn table(&self) -> String {
        let mut out = String::new();
        let width = self.rows.iter().map(|r| r.promise.len()).max().unwrap_or(7);
        let _ = writeln!(
            out,
            "{:<width$}  {:>7}  {:>6}  first examples",
            "promise", "checked", "broken"
        );
        for row in &self.rows {
            let _ = writeln!(
                out,
                "{:<width$}  {:>7}  {:>6}  {}",
                row.promise,
                row.checked,
                row.broken,
                row.examples.join(" | ")
            );
        }
        let outcomes: Vec<String> = self
            .outcomes
            .iter()
            .map(|(status, n)| format!("{status} {n}"))
            .collect();
        let _ = writeln!(out, "requests by outcome: {}", outcomes.join(", "));
        out
    }

    /// Fails (with the table) when any promise broke.
    pub fn ensure_kept(&self) -> Result<()> {
        if self.broken().is_empty() {
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "{} promise(s) broken:\n{}",
                self.broken().len(),
                self.table()
            ))
        }
    }
}

/// Everything read about one request.
struct Observed {
    tracked: Tracked,
    request: Option<EgressRequest>,
    swb_status: Option<String>,
    staged: Vec<String>,
    archive_versions: usize,
    archive_check: Option<std::result::Result<(), String>>,
    audit: Vec<inspect::AuditLine>,
    task_tokens: Vec<String>,
    execution_ended: bool,
}

/// How many requests are read at once (the stack serves a handful of calls in parallel).
const CONCURRENCY: usize = 8;

/// Checks every promise for `tracked` (all ended) and the `responses` the suite received
/// (bodies that must carry no task token, presigned URL or secret).
pub async fn check(stack: &Stack, tracked: &[Tracked], responses: &[String]) -> Result<Report> {
    let executions = executions_by_name(stack).await?;
    let uploads = open_uploads(stack).await?;

    let mut observed = Vec::with_capacity(tracked.len());
    for chunk in tracked.chunks(CONCURRENCY) {
        let mut set = tokio::task::JoinSet::new();
        for (i, t) in chunk.iter().enumerate() {
            let stack = stack.clone();
            let t = t.clone();
            set.spawn(async move { (i, observe(&stack, t).await) });
        }
        let mut batch: Vec<(usize, Result<Observed>)> = Vec::new();
        while let Some(joined) = set.join_next().await {
            batch.push(joined.context("a promise check task panicked")?);
        }
        batch.sort_by_key(|(i, _)| *i);
        for (_, o) in batch {
            observed.push(o?);
        }
    }

    let mut terminal = Row::new(TERMINAL);
    let mut swb = Row::new(SWB);
    let mut staging = Row::new(STAGING);
    let mut multipart = Row::new(MULTIPART);
    let mut archive = Row::new(ARCHIVE);
    let mut execution_row = Row::new(EXECUTIONS);
    let mut decisions = Row::new(DECISIONS);
    let mut audit = Row::new(AUDIT);
    let mut outcomes = BTreeMap::new();
    let mut secrets: Vec<String> = secret_values(stack);

    for o in &observed {
        let id = &o.tracked.submission.egress_request_id;
        let status = o.request.as_ref().map(|r| r.egress_status);
        *outcomes
            .entry(status.map_or("MISSING".to_string(), |s| s.to_string()))
            .or_insert(0) += 1;
        terminal.record(terminal_breach(o).map(|b| format!("{id}: {b}")));
        swb.record(swb_breach(o).map(|b| format!("{id}: {b}")));
        staging.record(
            (!o.staged.is_empty())
                .then(|| format!("{id}: {} left: {:?}", o.staged.len(), first(&o.staged))),
        );
        let open: Vec<&String> = uploads.iter().filter(|k| k.contains(id.as_str())).collect();
        multipart.record((!open.is_empty()).then(|| format!("{id}: open upload(s) {open:?}")));
        archive.record(archive_breach(o).map(|b| format!("{id}: {b}")));
        let runs = executions.get(id.as_str()).copied().unwrap_or(0);
        execution_row.record(match (runs, o.execution_ended) {
            (1, true) => None,
            (1, false) => Some(format!("{id}: its execution is still running")),
            (n, _) => Some(format!("{id}: {n} executions")),
        });
        decisions.record(decision_breach(o).map(|b| format!("{id}: {b}")));
        audit.record(audit_breach(o).map(|b| format!("{id}: {b}")));
        secrets.extend(o.task_tokens.iter().cloned());
    }
    // Uploads open under no tracked request's key are also left behind by someone.
    let strays: Vec<&String> = uploads
        .iter()
        .filter(|k| {
            !observed
                .iter()
                .any(|o| k.contains(o.tracked.submission.egress_request_id.as_str()))
        })
        .collect();
    if !strays.is_empty() {
        multipart.fail(format!(
            "open upload(s) of no tracked request: {:?}",
            first(&strays)
        ));
    }

    let leaks = leak_row(stack, &secrets, responses)?;
    Ok(Report {
        rows: vec![
            terminal,
            swb,
            staging,
            multipart,
            archive,
            execution_row,
            decisions,
            audit,
            leaks,
        ],
        outcomes,
    })
}

fn first<T: std::fmt::Debug>(items: &[T]) -> Vec<&T> {
    items.iter().take(EXAMPLES).collect()
}

async fn observe(stack: &Stack, tracked: Tracked) -> Result<Observed> {
    let s = &tracked.submission;
    let id = s.egress_request_id.as_str();
    let request = inspect::request(stack, id).await?;
    let swb_status = inspect::swb_status(stack, &s.egress_store_id).await?;
    let staged = inspect::staged_keys(stack, &s.workspace_id, id).await?;
    let datalake = stack.outputs.bucket("DatalakeBucket")?;
    let key = inspect::archive_key(&s.workspace_id, id);
    let versions = stack
        .s3
        .list_object_versions()
        .bucket(datalake)
        .prefix(&key)
        .send()
        .await
        .context(format!("listing archive versions of {key}"))?;
    let archive_versions = versions
        .versions()
        .iter()
        .filter(|v| v.key() == Some(key.as_str()))
        .count();
    let archive_check = if archive_versions > 0 {
        Some(match inspect::object(stack, datalake, &key, None).await? {
            None => Err("listed but unreadable".to_string()),
            Some(object) => match Archive::read(&object.body) {
                Err(err) => Err(format!("not a zip: {err:#}")),
                Ok(archive) => verify::archive_holds_submission(stack, s, &archive)
                    .await
                    .map_err(|err| format!("{err:#}")),
            },
        })
    } else {
        None
    };
    let audit = inspect::audit_lines(stack, id).await?;
    let arn = stack.outputs.execution_arn(id);
    let (task_tokens, execution_ended) = match stack
        .sfn
        .describe_execution()
        .execution_arn(&arn)
        .send()
        .await
    {
        Ok(out) => {
            let events = inspect::history(stack, &arn).await?;
            (
                task_tokens_in(&events),
                out.status != ExecutionStatus::Running,
            )
        }
        Err(_) => (Vec::new(), false),
    };
    Ok(Observed {
        tracked,
        request,
        swb_status,
        staged,
        archive_versions,
        archive_check,
        audit,
        task_tokens,
        execution_ended,
    })
}

/// The task tokens the execution handed to `record-task-token` (its history's scheduled
/// Lambda parameters name them).
fn task_tokens_in(events: &[aws_sdk_sfn::types::HistoryEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.r#type() == &HistoryEventType::TaskScheduled)
        .filter_map(|e| e.task_scheduled_event_details())
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d.parameters()).ok())
        .filter_map(|p| {
            p.pointer("/Payload/task_token")
                .and_then(|t| t.as_str())
                .map(str::to_string)
        })
        .filter(|t| t.len() >= 16)
        .collect()
}

fn terminal_breach(o: &Observed) -> Option<String> {
    let Some(request) = &o.request else {
        return Some("no request item".into());
    };
    let status = request.egress_status;
    let expected_approval = match o.tracked.mode {
        Mode::Single => EgressStatus::IgApproved,
        Mode::Dual => EgressStatus::RitApproved,
    };
    let ok = match &o.tracked.expect {
        Expect::Approved => status == expected_approval,
        Expect::Rejected => status == EgressStatus::Rejected,
        Expect::Decided => status == expected_approval || status == EgressStatus::Rejected,
        Expect::Expired => status == EgressStatus::Expired,
        Expect::Failed(error) => {
            status == EgressStatus::Failed
                && match error {
                    Some(name) => request.failure_error.as_deref() == Some(name.as_str()),
                    None => true,
                }
        }
    };
    if !ok {
        return Some(format!(
            "expected {:?}, ended {status} ({} {})",
            o.tracked.expect,
            request.failure_error.as_deref().unwrap_or(""),
            request
                .failure_cause
                .as_deref()
                .map(clip)
                .unwrap_or_default()
        ));
    }
    if status == EgressStatus::Failed
        && (request.failure_error.as_deref().unwrap_or("").is_empty()
            || request.failure_cause.as_deref().unwrap_or("").is_empty())
    {
        return Some("FAILED without a named error and cause".into());
    }
    if request.sfn_task_token.is_some() {
        return Some(format!("ended {status} but still holds a task token"));
    }
    None
}

fn approved(o: &Observed) -> bool {
    o.request.as_ref().is_some_and(|r| {
        matches!(
            r.egress_status,
            EgressStatus::IgApproved | EgressStatus::RitApproved
        )
    })
}

fn swb_breach(o: &Observed) -> Option<String> {
    match o.swb_status.as_deref() {
        Some("PROCESSING") => Some("SWB store still PROCESSING".into()),
        Some("PROCESSED") if o.archive_versions == 0 => {
            Some("SWB store PROCESSED without an archive".into())
        }
        Some("PROCESSED") if !approved(o) => Some("SWB store PROCESSED but not approved".into()),
        _ => None,
    }
}

fn archive_breach(o: &Observed) -> Option<String> {
    if !approved(o) {
        return (o.archive_versions > 0).then(|| {
            format!(
                "{} archive version(s) of a request that was not approved",
                o.archive_versions
            )
        });
    }
    if o.archive_versions != 1 {
        return Some(format!(
            "approved with {} archive versions",
            o.archive_versions
        ));
    }
    match &o.archive_check {
        Some(Err(err)) => Some(clip(err)),
        _ => None,
    }
}

fn decision_breach(o: &Observed) -> Option<String> {
    let request = o.request.as_ref()?;
    let stored: Vec<Decision> = [
        request.ig_reviewer_1_decision,
        request.rit_reviewer_2_decision,
    ]
    .into_iter()
    .flatten()
    .collect();
    let audited = o
        .audit
        .iter()
        // A decision that stands: delivered (`success`), or claimed and sent but unconfirmed
        // by Step Functions (`unknown`, e.g. a call that died after delivering it). The API
        // audits each stage's standing decision once.
        .filter(|l| l.action == "decision" && matches!(l.outcome.as_str(), "success" | "unknown"))
        .count();
    let expected = match (request.egress_status, o.tracked.mode) {
        (EgressStatus::IgApproved, _) => Some(1),
        (EgressStatus::RitApproved, _) => Some(2),
        (EgressStatus::Rejected, Mode::Single) => Some(1),
        (EgressStatus::Rejected, Mode::Dual) => Some(
            if request.ig_reviewer_1_decision == Some(Decision::Approved) {
                2
            } else {
                1
            },
        ),
        (EgressStatus::Expired, _) => None,
        _ => None,
    };
    if audited != stored.len() {
        return Some(format!(
            "{audited} decision(s) audited, {} stored ({:?})",
            stored.len(),
            stored
        ));
    }
    match expected {
        Some(n) if n != stored.len() => Some(format!(
            "ended {} with {} decision(s) stored, expected {n}",
            request.egress_status,
            stored.len()
        )),
        _ => None,
    }
}

/// Each step's successful audit line, at most once; the steps an outcome implies, exactly once.
fn audit_breach(o: &Observed) -> Option<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for line in o.audit.iter().filter(|l| l.outcome == "success") {
        *counts.entry(line.action.as_str()).or_insert(0) += 1;
    }
    let status = o.request.as_ref().map(|r| r.egress_status);
    let mut required = vec!["submitted"];
    match status {
        Some(EgressStatus::IgApproved | EgressStatus::RitApproved) => {
            required.extend(["staged", "archived"])
        }
        Some(EgressStatus::Rejected) => required.extend(["staged", "cleanup"]),
        Some(EgressStatus::Expired) => required.extend(["staged", "expired", "cleanup"]),
        _ => {}
    }
    for action in &required {
        if counts.get(action).copied().unwrap_or(0) != 1 {
            return Some(format!(
                "{action} audited {} time(s), expected once",
                counts.get(action).copied().unwrap_or(0)
            ));
        }
    }
    // Decisions are counted per stage by the decisions promise; a deletion proof is chunked
    // (one event per 200 objects) and a re-run of a clean-up proves what it still deleted.
    counts
        .iter()
        .find(|(action, n)| !matches!(**action, "decision" | "deletion_proof") && **n > 1)
        .map(|(action, n)| format!("{action} audited {n} times"))
}

fn clip(text: &str) -> String {
    let mut out: String = text.chars().take(160).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// Executions of the stack's state machine, counted by name.
async fn executions_by_name(stack: &Stack) -> Result<HashMap<String, usize>> {
    let mut counts = HashMap::new();
    for e in inspect::executions(stack).await? {
        *counts.entry(e.name().to_string()).or_insert(0) += 1;
    }
    Ok(counts)
}

/// Keys of every multipart upload open in the staging and datalake buckets.
pub async fn open_uploads(stack: &Stack) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    for logical in ["StagingBucket", "DatalakeBucket"] {
        let bucket = stack.outputs.bucket(logical)?;
        let (mut key_marker, mut id_marker) = (None, None);
        loop {
            let out = stack
                .s3
                .list_multipart_uploads()
                .bucket(bucket)
                .set_key_marker(key_marker)
                .set_upload_id_marker(id_marker)
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "listing multipart uploads of {bucket}: {}",
                        crate::chain(&e)
                    )
                })?;
            keys.extend(
                out.uploads()
                    .iter()
                    .filter_map(|u| u.key().map(|k| format!("s3://{bucket}/{k}"))),
            );
            if out.is_truncated() != Some(true) {
                break;
            }
            key_marker = out.next_key_marker().map(str::to_string);
            id_marker = out.next_upload_id_marker().map(str::to_string);
        }
    }
    Ok(keys)
}

/// Secrets no log line or response may carry: the stack's secret key and the seeded users'
/// passwords (`api.json`, when the API runs).
fn secret_values(stack: &Stack) -> Vec<String> {
    let mut secrets: Vec<String> = stack
        .outputs
        .aws_env
        .get("AWS_SECRET_ACCESS_KEY")
        .into_iter()
        .cloned()
        .collect();
    if let Ok(api) = crate::graphql::Api::load() {
        secrets.extend(api.users.values().map(|u| u.password.clone()));
    }
    secrets.retain(|s| s.len() >= 8);
    secrets
}

/// Markers of a presigned URL or a bearer token, whatever its value.
const LEAK_MARKERS: [&str; 3] = ["X-Amz-Signature", "X-Amz-Credential", "eyJraWQi"];

/// Logs of the stack's own processes: the functions (`watch-*`), the router and the API.
/// moto's access log is AWS's side (it logs the request lines it serves, presigned GETs
/// included), not a log of ours.
pub fn stack_logs(stack: &Stack) -> Vec<PathBuf> {
    let dir = stack.outputs.state_dir.join("logs");
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .filter(|p| p.file_name().is_none_or(|n| n != "moto.log"))
                .collect()
        })
        .unwrap_or_default();
    logs.sort();
    logs
}

fn leak_in(text: &str, secrets: &[String]) -> Option<String> {
    if let Some(marker) = LEAK_MARKERS.iter().find(|m| text.contains(**m)) {
        return Some((*marker).to_string());
    }
    secrets
        .iter()
        .find(|s| text.contains(s.as_str()))
        .map(|s| format!("a secret ({}…)", s.chars().take(6).collect::<String>()))
}

fn leak_row(stack: &Stack, secrets: &[String], responses: &[String]) -> Result<Row> {
    let mut row = Row::new(LEAKS);
    for path in stack_logs(stack) {
        let bytes = std::fs::read(&path).context(format!("reading {}", path.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        let breach = text.lines().enumerate().find_map(|(n, line)| {
            leak_in(line, secrets).map(|what| format!("{}:{}: {what}", path.display(), n + 1))
        });
        row.record(breach);
    }
    for (i, body) in responses.iter().enumerate() {
        row.record(leak_in(body, secrets).map(|what| format!("response {i}: {what}")));
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_a_line_carries_a_presigned_url_or_a_secret_then_it_is_a_leak() {
        let secrets = vec!["local-stack-not-a-real-secret".to_string()];
        assert_eq!(
            leak_in("GET /b/k?X-Amz-Signature=abc", &secrets).as_deref(),
            Some("X-Amz-Signature")
        );
        assert!(leak_in("key local-stack-not-a-real-secret", &secrets).is_some());
        assert!(leak_in("invoke copy-to-staging -> 200", &secrets).is_none());
    }

    #[test]
    fn when_a_row_breaks_more_than_three_times_then_it_keeps_three_examples() {
        let mut row = Row::new(TERMINAL);
        row.pass();
        for i in 0..5 {
            row.fail(format!("r{i}"));
        }
        assert_eq!((row.checked, row.broken, row.examples.len()), (6, 5, 3));
        let report = Report {
            rows: vec![row],
            outcomes: BTreeMap::new(),
        };
        assert_eq!(report.broken().len(), 1);
        assert!(report.ensure_kept().is_err());
        assert!(report.table().contains("r0 | r1 | r2"));
    }
}
