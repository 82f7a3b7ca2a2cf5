//! Operational metrics in CloudWatch Embedded Metric Format (EMF).
//!
//! Each metric event is one JSON object on one line of stdout. Lambda sends stdout to the
//! function's log group, and CloudWatch Logs extracts the metrics from any line that is an
//! EMF document: no `PutMetricData` call, no extra IAM permission, no latency on the request
//! path. The format is written here directly (about a hundred lines) rather than through
//! `metrics_cloudwatch_embedded`: that crate installs a process-global `metrics` recorder and
//! by default pulls in `lambda_http` and `tower` to flush per invocation, while every event
//! here is complete when it happens and is written at once.
//!
//! Specification followed (and checked by the tests below):
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>
//! - the root has `_aws` with `Timestamp` (milliseconds since the epoch) and `CloudWatchMetrics`,
//!   an array of directives `{Namespace, Dimensions: [[key...]...], Metrics: [{Name, Unit}]}`;
//! - every dimension key and metric name is also a root member (dimension values strings,
//!   metric values numbers); other root members are searchable properties, not metrics;
//! - at most 30 keys per dimension set and 100 metrics per directive; dimension values are
//!   non-empty ASCII without control characters, at most 1024 characters.
//!
//! Lines are written raw, not through `tracing` (whose formatter would wrap them in its own
//! JSON and CloudWatch would not see an EMF document). The namespace and the `Project`
//! dimension come from `METRICS_NAMESPACE` and `PROJECT_NAME`, read once at init by
//! [`crate::telemetry::init`] (the template sets both for every function in its `Globals`).

use std::io::Write;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::config::{optional, Env};
use crate::error::{EgressError, Result};
use crate::model::{ApprovalMode, Decision, EgressRequest, Outcome, ReviewStage, SweepReport};

/// Namespace when `METRICS_NAMESPACE` is not set (the template sets this same value).
pub const DEFAULT_NAMESPACE: &str = "TreEgress";
/// `Project` dimension when `PROJECT_NAME` is not set (the local stack).
pub const DEFAULT_PROJECT: &str = "default";

/// The metric names, one place for the code, the dashboard and the alarms (the template gate
/// checks that every metric the template names is one of these).
pub mod names {
    /// A request was accepted at intake and its workflow started (duplicates are not counted).
    pub const REQUESTS_SUBMITTED: &str = "RequestsSubmitted";
    /// A reviewer's decision was recorded (dimensions `Stage`, `Outcome`).
    pub const DECISIONS: &str = "Decisions";
    /// Seconds from the moment a stage began waiting to its decision (`Stage`, `Outcome`).
    pub const TIME_TO_DECISION: &str = "TimeToDecision";
    /// A request ended, by how it ended (`Outcome`).
    pub const REQUESTS_COMPLETED: &str = "RequestsCompleted";
    /// Seconds from submission to the end of the request (`Outcome`).
    pub const TURNAROUND: &str = "Turnaround";
    /// A request failed (dimension `Cause`: the workflow's error name).
    pub const FAILURES: &str = "Failures";
    /// Bytes copied into staging for a request.
    pub const BYTES_STAGED: &str = "BytesStaged";
    /// Files copied into staging for a request.
    pub const FILES_STAGED: &str = "FilesStaged";
    /// Bytes of an approved archive written to the datalake.
    pub const BYTES_ARCHIVED: &str = "BytesArchived";
    /// Archive bytes per second, from the final approval to the archive's completion.
    pub const ARCHIVE_THROUGHPUT: &str = "ArchiveThroughput";
    /// A download link was issued (and counted).
    pub const DOWNLOADS: &str = "Downloads";
    /// Reminders sent to reviewers by one sweep.
    pub const REMINDERS_SENT: &str = "RemindersSent";
    /// Overdue requests escalated to the TRE admin by one sweep.
    pub const REMINDERS_ESCALATED: &str = "RemindersEscalated";
    /// Drift found by one reconciliation sweep (dimension `Kind`).
    pub const DRIFT_FOUND: &str = "DriftFound";
    /// Requests waiting for a review decision, at one sweep.
    pub const WAITING_REQUESTS: &str = "WaitingRequests";
    /// Age in seconds of the oldest request waiting for a decision, at one sweep.
    pub const OLDEST_WAITING_AGE: &str = "OldestWaitingAge";
}

/// Every metric name the service emits.
pub const METRIC_NAMES: &[&str] = &[
    names::REQUESTS_SUBMITTED,
    names::DECISIONS,
    names::TIME_TO_DECISION,
    names::REQUESTS_COMPLETED,
    names::TURNAROUND,
    names::FAILURES,
    names::BYTES_STAGED,
    names::FILES_STAGED,
    names::BYTES_ARCHIVED,
    names::ARCHIVE_THROUGHPUT,
    names::DOWNLOADS,
    names::REMINDERS_SENT,
    names::REMINDERS_ESCALATED,
    names::DRIFT_FOUND,
    names::WAITING_REQUESTS,
    names::OLDEST_WAITING_AGE,
];

/// Every dimension key the service uses (`Project` is on every metric).
pub const DIMENSION_KEYS: &[&str] = &["Project", "Stage", "Outcome", "Cause", "Kind"];

/// A CloudWatch unit (the subset we use; the names are CloudWatch's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// `Count`.
    Count,
    /// `Seconds`.
    Seconds,
    /// `Bytes`.
    Bytes,
    /// `Bytes/Second`.
    BytesPerSecond,
}

impl Unit {
    /// The name CloudWatch expects.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Seconds => "Seconds",
            Unit::Bytes => "Bytes",
            Unit::BytesPerSecond => "Bytes/Second",
        }
    }
}

/// Where the metrics go: the namespace and the deployment's `Project` dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// CloudWatch namespace.
    pub namespace: String,
    /// Value of the `Project` dimension on every metric (the template's `ProjectName`).
    pub project: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            namespace: DEFAULT_NAMESPACE.to_string(),
            project: DEFAULT_PROJECT.to_string(),
        }
    }
}

/// The variables [`MetricsConfig::from_env`] reads (both optional).
pub const VARIABLES: &[&str] = &["METRICS_NAMESPACE", "PROJECT_NAME"];

impl MetricsConfig {
    /// `METRICS_NAMESPACE` and `PROJECT_NAME`, each defaulted when unset; a value CloudWatch
    /// would refuse fails naming its variable.
    pub fn from_env(env: &impl Env) -> Result<Self> {
        let namespace =
            optional(env, "METRICS_NAMESPACE").unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
        // CloudWatch: 1-255 characters, not starting with ':' and not `AWS/` (reserved).
        if namespace.len() > 255
            || namespace.starts_with(':')
            || namespace.starts_with("AWS/")
            || !namespace.chars().all(|c| c.is_ascii_graphic() || c == ' ')
        {
            return Err(EgressError::Config(format!(
                "METRICS_NAMESPACE: {namespace:?} is not a CloudWatch namespace for custom metrics"
            )));
        }
        let project = optional(env, "PROJECT_NAME").unwrap_or_else(|| DEFAULT_PROJECT.to_string());
        if clean_value(&project) != project {
            return Err(EgressError::Config(format!(
                "PROJECT_NAME: {project:?} is not a CloudWatch dimension value (printable ASCII, at most 1024 characters)"
            )));
        }
        Ok(Self { namespace, project })
    }
}

static CONFIG: OnceLock<MetricsConfig> = OnceLock::new();

/// Sets where every later metric goes. The first call wins (init runs once per process).
pub fn init(config: MetricsConfig) {
    // A second init (a test, or a main calling telemetry twice) keeps the first: harmless.
    let _ = CONFIG.set(config);
}

fn config() -> &'static MetricsConfig {
    CONFIG.get_or_init(MetricsConfig::default)
}

/// A dimension value CloudWatch accepts: printable ASCII (others become `?`), at most 1024
/// characters, never empty.
fn clean_value(value: &str) -> String {
    let cleaned: String = value
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(1024)
        .collect();
    if cleaned.is_empty() {
        "none".to_string()
    } else {
        cleaned
    }
}

/// One EMF document: metrics that share a timestamp and dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    timestamp_ms: i128,
    namespace: String,
    dimensions: Vec<(&'static str, String)>,
    rollup: bool,
    metrics: Vec<(&'static str, Unit, f64)>,
    properties: Vec<(&'static str, String)>,
}

impl Document {
    /// A document at `at` in `config`'s namespace, with its `Project` dimension.
    pub fn new(config: &MetricsConfig, at: OffsetDateTime) -> Self {
        Self {
            timestamp_ms: at.unix_timestamp_nanos() / 1_000_000,
            namespace: config.namespace.clone(),
            dimensions: vec![("Project", clean_value(&config.project))],
            rollup: false,
            metrics: Vec::new(),
            properties: Vec::new(),
        }
    }

    /// Adds a dimension (its value cleaned to what CloudWatch accepts).
    pub fn dimension(mut self, key: &'static str, value: &str) -> Self {
        self.dimensions.push((key, clean_value(value)));
        self
    }

    /// Also publishes the metrics under `Project` alone, so a total exists beside the
    /// per-dimension series (what the dashboard's totals and the alarms read).
    pub fn rollup(mut self) -> Self {
        self.rollup = true;
        self
    }

    /// Adds a metric. A value that is not finite is dropped: JSON has no NaN and CloudWatch
    /// refuses infinities.
    pub fn metric(mut self, name: &'static str, unit: Unit, value: f64) -> Self {
        if value.is_finite() {
            self.metrics.push((name, unit, value));
        }
        self
    }

    /// Adds a property: searchable in CloudWatch Logs Insights, not a metric.
    pub fn property(mut self, key: &'static str, value: &str) -> Self {
        self.properties.push((key, value.to_string()));
        self
    }

    /// The document as JSON, or `None` when it has no metric.
    pub fn to_value(&self) -> Option<Value> {
        if self.metrics.is_empty() {
            return None;
        }
        let keys: Vec<&str> = self.dimensions.iter().map(|(k, _)| *k).collect();
        let mut sets = vec![json!(keys)];
        if self.rollup && keys.len() > 1 {
            sets.push(json!(["Project"]));
        }
        let definitions: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, unit, _)| json!({ "Name": name, "Unit": unit.as_str() }))
            .collect();
        let mut root = Map::new();
        // Properties first: a dimension or a metric of the same name wins.
        for (key, value) in &self.properties {
            root.insert((*key).to_string(), json!(value));
        }
        for (key, value) in &self.dimensions {
            root.insert((*key).to_string(), json!(value));
        }
        for (name, _, value) in &self.metrics {
            root.insert((*name).to_string(), json!(value));
        }
        root.insert(
            "_aws".to_string(),
            json!({
                "Timestamp": self.timestamp_ms as i64,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": sets,
                    "Metrics": definitions,
                }],
            }),
        );
        Some(Value::Object(root))
    }

    /// The document as one line of JSON (no newline), or `None` when it has no metric.
    pub fn to_line(&self) -> Option<String> {
        self.to_value().map(|v| v.to_string())
    }
}

/// Writes `doc` as one line of stdout, in one write so concurrent log lines cannot split it.
pub fn emit(doc: &Document) {
    let Some(mut line) = doc.to_line() else {
        return;
    };
    #[cfg(any(test, feature = "mocks"))]
    if capture::push(&line) {
        return;
    }
    line.push('\n');
    let mut out = std::io::stdout().lock();
    // A metric that cannot be written must never fail the request it measures.
    let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
}

fn parse_time(iso: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(iso.trim(), &Rfc3339).ok()
}

/// Seconds from `from` to `to` (ISO-8601), when both parse and `to` is not earlier.
fn seconds_between(from: &str, to: OffsetDateTime) -> Option<f64> {
    let seconds = (to - parse_time(from)?).as_seconds_f64();
    (seconds >= 0.0).then_some(seconds)
}

fn request_doc(at: OffsetDateTime, egress_request_id: &str) -> Document {
    Document::new(config(), at).property("egress_request_id", egress_request_id)
}

/// `RequestsSubmitted`: a request's workflow started (start-workflow).
pub fn requests_submitted(egress_request_id: &str) {
    emit(
        &request_doc(OffsetDateTime::now_utc(), egress_request_id).metric(
            names::REQUESTS_SUBMITTED,
            Unit::Count,
            1.0,
        ),
    );
}

/// When a stage began waiting: IG at submission, RIT at the IG decision.
fn stage_started(request: &EgressRequest, stage: ReviewStage) -> Option<&str> {
    match stage {
        ReviewStage::Ig => Some(request.requested_dt.as_str()),
        ReviewStage::Rit => request.ig_reviewer_1_dt.as_deref(),
    }
}

/// The `Decisions` / `TimeToDecision` document of a decision taken at `decided_at`.
pub fn decision_doc(
    request: &EgressRequest,
    stage: ReviewStage,
    decision: Decision,
    decided_at: &str,
    now: OffsetDateTime,
) -> Document {
    let waited = parse_time(decided_at)
        .and_then(|at| seconds_between(stage_started(request, stage)?, at))
        .unwrap_or(f64::NAN);
    request_doc(now, &request.egress_request_id)
        .dimension("Stage", stage.as_str())
        .dimension("Outcome", decision.as_str())
        .rollup()
        .metric(names::DECISIONS, Unit::Count, 1.0)
        .metric(names::TIME_TO_DECISION, Unit::Seconds, waited)
}

/// `Decisions` and `TimeToDecision`: a reviewer decided `stage` of `request` at `decided_at`
/// (the reviewer API, once the workflow has the decision).
pub fn decision(request: &EgressRequest, stage: ReviewStage, decision: Decision, decided_at: &str) {
    emit(&decision_doc(
        request,
        stage,
        decision,
        decided_at,
        OffsetDateTime::now_utc(),
    ));
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Received => "RECEIVED",
        Outcome::Approved => "APPROVED",
        Outcome::Rejected => "REJECTED",
        Outcome::Expired => "EXPIRED",
        Outcome::Failed => "FAILED",
    }
}

/// The `RequestsCompleted` / `Turnaround` document (and `Failures`, by the recorded error name,
/// for a failure) of a request that ended as `outcome`.
pub fn completed_doc(
    request: &EgressRequest,
    outcome: Outcome,
    now: OffsetDateTime,
) -> Vec<Document> {
    let turnaround = seconds_between(&request.requested_dt, now).unwrap_or(f64::NAN);
    let mut docs = vec![request_doc(now, &request.egress_request_id)
        .dimension("Outcome", outcome_name(outcome))
        .rollup()
        .metric(names::REQUESTS_COMPLETED, Unit::Count, 1.0)
        .metric(names::TURNAROUND, Unit::Seconds, turnaround)];
    if outcome == Outcome::Failed {
        let cause = request.failure_error.as_deref().unwrap_or("Unknown");
        docs.push(
            request_doc(now, &request.egress_request_id)
                .dimension("Cause", cause)
                .rollup()
                .metric(names::FAILURES, Unit::Count, 1.0),
        );
    }
    docs
}

/// `RequestsCompleted`, `Turnaround` and, for a failure, `Failures` by cause: `request` ended
/// as `outcome` (notify-requester, the last step of every path). `Received` is not an end.
pub fn completed(request: &EgressRequest, outcome: Outcome) {
    if outcome == Outcome::Received {
        return;
    }
    for doc in completed_doc(request, outcome, OffsetDateTime::now_utc()) {
        emit(&doc);
    }
}

/// `BytesStaged` and `FilesStaged`: a request's files were staged (copy-to-staging).
pub fn staged(egress_request_id: &str, bytes: u64, files: u64) {
    emit(
        &request_doc(OffsetDateTime::now_utc(), egress_request_id)
            .metric(names::BYTES_STAGED, Unit::Bytes, bytes as f64)
            .metric(names::FILES_STAGED, Unit::Count, files as f64),
    );
}

/// When the request was finally approved (the archive starts then).
fn approved_at(request: &EgressRequest) -> Option<&str> {
    match request.approval_mode {
        ApprovalMode::Single => request.ig_reviewer_1_dt.as_deref(),
        ApprovalMode::Dual => request.rit_reviewer_2_dt.as_deref(),
    }
}

/// The `BytesArchived` / `ArchiveThroughput` document of an archive of `bytes` completed at
/// `now`. The throughput runs from the final approval, so an archive written over several
/// invocations is measured end to end.
pub fn archived_doc(request: &EgressRequest, bytes: u64, now: OffsetDateTime) -> Document {
    let throughput = approved_at(request)
        .and_then(|from| seconds_between(from, now))
        .filter(|s| *s > 0.0)
        .map_or(f64::NAN, |s| bytes as f64 / s);
    request_doc(now, &request.egress_request_id)
        .metric(names::BYTES_ARCHIVED, Unit::Bytes, bytes as f64)
        .metric(names::ARCHIVE_THROUGHPUT, Unit::BytesPerSecond, throughput)
}

/// `BytesArchived` and `ArchiveThroughput`: the approved archive of `request` is complete
/// (copy-to-datalake).
pub fn archived(request: &EgressRequest, bytes: u64, now: OffsetDateTime) {
    emit(&archived_doc(request, bytes, now));
}

/// `Downloads`: a download link was issued (the reviewer API).
pub fn download(egress_request_id: &str) {
    emit(
        &request_doc(OffsetDateTime::now_utc(), egress_request_id).metric(
            names::DOWNLOADS,
            Unit::Count,
            1.0,
        ),
    );
}

/// `RemindersSent` and `RemindersEscalated` of one reminder sweep (zeros included, so the
/// series has no gaps).
pub fn reminders(sent: u64, escalated: u64) {
    emit(
        &Document::new(config(), OffsetDateTime::now_utc())
            .metric(names::REMINDERS_SENT, Unit::Count, sent as f64)
            .metric(names::REMINDERS_ESCALATED, Unit::Count, escalated as f64),
    );
}

/// `DriftFound` of one kind (e.g. `processing-without-execution`) in one reconciliation sweep;
/// also published under `Project` alone, which the drift alarm reads.
pub fn drift_found(kind: &str, found: u64) {
    emit(
        &Document::new(config(), OffsetDateTime::now_utc())
            .dimension("Kind", kind)
            .rollup()
            .metric(names::DRIFT_FOUND, Unit::Count, found as f64),
    );
}

/// `WaitingRequests` and `OldestWaitingAge` (seconds): the review queue as one sweep saw it.
pub fn queue(waiting: u64, oldest_age_seconds: f64) {
    emit(
        &Document::new(config(), OffsetDateTime::now_utc())
            .metric(names::WAITING_REQUESTS, Unit::Count, waiting as f64)
            .metric(names::OLDEST_WAITING_AGE, Unit::Seconds, oldest_age_seconds),
    );
}

/// The documents of one full sweep: `RemindersSent` and `RemindersEscalated`; `DriftFound` by
/// kind, or 0 when none was found (so the drift alarm's series has data); `WaitingRequests`
/// and `OldestWaitingAge`, from when the oldest waiting stage began waiting (as
/// `TimeToDecision` counts it) among the `open` requests.
pub fn swept_docs(
    report: &SweepReport,
    open: &[EgressRequest],
    now: OffsetDateTime,
) -> Vec<Document> {
    let config = config();
    let mut docs = vec![Document::new(config, now)
        .metric(
            names::REMINDERS_SENT,
            Unit::Count,
            report.counts.reminders as f64,
        )
        .metric(
            names::REMINDERS_ESCALATED,
            Unit::Count,
            report.counts.escalations as f64,
        )];
    if report.drift_by_kind.is_empty() {
        docs.push(Document::new(config, now).metric(names::DRIFT_FOUND, Unit::Count, 0.0));
    }
    for (kind, found) in &report.drift_by_kind {
        docs.push(
            Document::new(config, now)
                .dimension("Kind", kind)
                .rollup()
                .metric(names::DRIFT_FOUND, Unit::Count, *found as f64),
        );
    }
    let oldest = open
        .iter()
        .filter_map(|r| {
            let (stage, _) = crate::domain::sweep::waiting_stage(r)?;
            seconds_between(stage_started(r, stage)?, now)
        })
        .fold(0.0, f64::max);
    docs.push(
        Document::new(config, now)
            .metric(
                names::WAITING_REQUESTS,
                Unit::Count,
                report.counts.waiting as f64,
            )
            .metric(names::OLDEST_WAITING_AGE, Unit::Seconds, oldest),
    );
    docs
}

/// Emits [`swept_docs`]: called by the sweep after a full (not dry-run, not scoped) run.
pub fn swept(report: &SweepReport, open: &[EgressRequest], now: OffsetDateTime) {
    for doc in swept_docs(report, open, now) {
        emit(&doc);
    }
}

/// Test support: what this thread emitted, instead of stdout.
#[cfg(any(test, feature = "mocks"))]
pub mod capture {
    use std::cell::RefCell;

    use serde_json::Value;

    thread_local! {
        static LINES: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
    }

    /// From now on, this thread's metric lines are kept (see [`take`]) instead of written.
    pub fn start() {
        LINES.with(|l| *l.borrow_mut() = Some(Vec::new()));
    }

    /// The documents kept since [`start`] (or the last `take`), parsed.
    pub fn take() -> Vec<Value> {
        LINES.with(|l| {
            l.borrow_mut()
                .as_mut()
                .map(std::mem::take)
                .unwrap_or_default()
                .iter()
                .filter_map(|line| serde_json::from_str(line).ok())
                .collect()
        })
    }

    /// The value of metric `name` in the kept documents (without taking them).
    pub fn values(name: &str) -> Vec<f64> {
        LINES.with(|l| {
            l.borrow()
                .iter()
                .flatten()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .filter_map(|v| v.get(name).and_then(Value::as_f64))
                .collect()
        })
    }

    pub(super) fn push(line: &str) -> bool {
        LINES.with(|l| match l.borrow_mut().as_mut() {
            Some(lines) => {
                lines.push(line.to_string());
                true
            }
            None => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EgressStatus;
    use crate::testdata::{dual_request, request};
    use time::macros::datetime;

    const AT: OffsetDateTime = datetime!(2024-05-01 12:00:00 UTC);

    fn config() -> MetricsConfig {
        MetricsConfig {
            namespace: "TreEgress".into(),
            project: "proj-a".into(),
        }
    }

    /// Checks `doc` against the specification's rules, beyond its exact shape.
    fn assert_valid_emf(doc: &Value) {
        let aws = &doc["_aws"];
        assert!(aws["Timestamp"].is_i64(), "Timestamp is an integer: {doc}");
        let directives = aws["CloudWatchMetrics"].as_array().expect("directives");
        assert!(!directives.is_empty());
        for d in directives {
            let ns = d["Namespace"].as_str().expect("Namespace");
            assert!(!ns.is_empty() && ns.len() <= 255 && !ns.starts_with(':'));
            let metrics = d["Metrics"].as_array().expect("Metrics");
            assert!(!metrics.is_empty() && metrics.len() <= 100);
            for set in d["Dimensions"].as_array().expect("Dimensions") {
                let set = set.as_array().expect("a dimension set is an array");
                assert!(set.len() <= 30);
                for key in set {
                    let value = &doc[key.as_str().expect("key")];
                    let value = value.as_str().expect("a dimension value is a string");
                    assert!(!value.is_empty() && value.len() <= 1024 && value.is_ascii());
                }
            }
            for m in metrics {
                let name = m["Name"].as_str().expect("Name");
                assert!(!name.is_empty() && name.len() <= 255);
                assert!(
                    doc[name].is_number(),
                    "metric {name} is a root number: {doc}"
                );
                let unit = m["Unit"].as_str().expect("Unit");
                assert!(["Count", "Seconds", "Bytes", "Bytes/Second"].contains(&unit));
            }
        }
        assert!(doc.as_object().unwrap().keys().all(|k| !k.is_empty()));
    }

    #[test]
    fn when_a_document_is_written_then_it_is_exactly_the_emf_structure() {
        let doc = Document::new(&config(), AT)
            .dimension("Stage", "IG")
            .dimension("Outcome", "APPROVED")
            .rollup()
            .metric("Decisions", Unit::Count, 1.0)
            .metric("TimeToDecision", Unit::Seconds, 90.5)
            .property("egress_request_id", "req-1");
        let value = doc.to_value().unwrap();
        assert_eq!(
            value,
            json!({
                "_aws": {
                    "Timestamp": 1_714_564_800_000_i64,
                    "CloudWatchMetrics": [{
                        "Namespace": "TreEgress",
                        "Dimensions": [["Project", "Stage", "Outcome"], ["Project"]],
                        "Metrics": [
                            {"Name": "Decisions", "Unit": "Count"},
                            {"Name": "TimeToDecision", "Unit": "Seconds"}
                        ]
                    }]
                },
                "Project": "proj-a",
                "Stage": "IG",
                "Outcome": "APPROVED",
                "Decisions": 1.0,
                "TimeToDecision": 90.5,
                "egress_request_id": "req-1"
            })
        );
        assert_valid_emf(&value);
        let line = doc.to_line().unwrap();
        assert!(!line.contains('\n'), "one line");
        assert_eq!(serde_json::from_str::<Value>(&line).unwrap(), value);
    }

    #[test]
    fn when_a_value_is_not_finite_then_it_is_dropped_and_an_empty_document_is_not_written() {
        let doc = Document::new(&config(), AT)
            .metric("A", Unit::Count, f64::NAN)
            .metric("B", Unit::Seconds, f64::INFINITY);
        assert_eq!(doc.to_value(), None);
        let doc = Document::new(&config(), AT)
            .metric("A", Unit::Count, f64::NAN)
            .metric("B", Unit::Bytes, 3.0);
        let value = doc.to_value().unwrap();
        assert_valid_emf(&value);
        assert!(value.get("A").is_none());
        assert_eq!(
            value["_aws"]["CloudWatchMetrics"][0]["Metrics"],
            json!([{"Name": "B", "Unit": "Bytes"}])
        );
        // Without a second dimension there is no separate roll-up set.
        assert_eq!(
            value["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Project"]])
        );
    }

    #[test]
    fn when_a_dimension_value_is_not_printable_ascii_then_it_is_cleaned() {
        let doc = Document::new(&config(), AT)
            .dimension("Cause", "Fehler\u{e9}\n")
            .dimension("Kind", "   ")
            .metric("Failures", Unit::Count, 1.0);
        let value = doc.to_value().unwrap();
        assert_valid_emf(&value);
        assert_eq!(value["Cause"], "Fehler?");
        assert_eq!(value["Kind"], "none");
        let long = Document::new(&config(), AT)
            .dimension("Cause", &"x".repeat(5000))
            .metric("Failures", Unit::Count, 1.0)
            .to_value()
            .unwrap();
        assert_eq!(long["Cause"].as_str().unwrap().len(), 1024);
    }

    #[test]
    fn when_a_property_shares_a_metric_name_then_the_metric_wins() {
        let value = Document::new(&config(), AT)
            .property("Downloads", "not a number")
            .metric("Downloads", Unit::Count, 1.0)
            .to_value()
            .unwrap();
        assert_valid_emf(&value);
        assert_eq!(value["Downloads"], 1.0);
    }

    #[test]
    fn when_the_environment_is_read_then_defaults_apply_and_bad_values_fail_naming_them() {
        let empty: [(&str, &str); 0] = [];
        assert_eq!(
            MetricsConfig::from_env(&empty).unwrap(),
            MetricsConfig::default()
        );
        let set = [
            ("METRICS_NAMESPACE", "Tre/Egress"),
            ("PROJECT_NAME", "proj-a"),
        ];
        let c = MetricsConfig::from_env(&set).unwrap();
        assert_eq!(
            (c.namespace.as_str(), c.project.as_str()),
            ("Tre/Egress", "proj-a")
        );
        for (name, bad) in [
            ("METRICS_NAMESPACE", "AWS/Lambda"),
            ("METRICS_NAMESPACE", ":x"),
            ("PROJECT_NAME", "caf\u{e9}"),
        ] {
            let err = MetricsConfig::from_env(&[(name, bad)]).unwrap_err();
            assert_eq!(err.error_type(), "ConfigError");
            assert!(err.to_string().contains(name), "{err}");
        }
        let env = crate::config::Recorder::new(set);
        MetricsConfig::from_env(&env).unwrap();
        assert_eq!(env.asked(), VARIABLES);
    }

    #[test]
    fn when_a_stage_is_decided_then_time_to_decision_runs_from_when_the_stage_began_waiting() {
        let mut r = dual_request("req-1", EgressStatus::IgApproved);
        r.requested_dt = "2024-05-01T10:00:00.000Z".into();
        let ig = decision_doc(
            &r,
            ReviewStage::Ig,
            Decision::Approved,
            "2024-05-01T11:30:00.000Z",
            AT,
        )
        .to_value()
        .unwrap();
        assert_valid_emf(&ig);
        assert_eq!(ig["TimeToDecision"], 5400.0);
        assert_eq!(ig["Decisions"], 1.0);
        assert_eq!(
            (ig["Stage"].as_str(), ig["Outcome"].as_str()),
            (Some("IG"), Some("APPROVED"))
        );
        assert_eq!(ig["egress_request_id"], "req-1");
        r.ig_reviewer_1_dt = Some("2024-05-01T11:30:00.000Z".into());
        let rit = decision_doc(
            &r,
            ReviewStage::Rit,
            Decision::Rejected,
            "2024-05-01T11:30:10.500Z",
            AT,
        )
        .to_value()
        .unwrap();
        assert_eq!(rit["TimeToDecision"], 10.5);
        assert_eq!(rit["Outcome"], "REJECTED");
        // An unreadable start time drops the duration, not the decision.
        r.ig_reviewer_1_dt = Some("Tue, 01 May 2024".into());
        let unknown = decision_doc(
            &r,
            ReviewStage::Rit,
            Decision::Approved,
            "2024-05-01T11:30:10.500Z",
            AT,
        )
        .to_value()
        .unwrap();
        assert!(unknown.get("TimeToDecision").is_none());
        assert_eq!(unknown["Decisions"], 1.0);
    }

    #[test]
    fn when_a_request_fails_then_the_failure_is_counted_by_its_cause() {
        let mut r = request("req-1", EgressStatus::Failed);
        r.requested_dt = "2024-05-01T11:00:00.000Z".into();
        r.failure_error = Some("IntegrityError".into());
        let docs: Vec<Value> = completed_doc(&r, Outcome::Failed, AT)
            .iter()
            .map(|d| d.to_value().unwrap())
            .collect();
        assert_eq!(docs.len(), 2);
        docs.iter().for_each(assert_valid_emf);
        assert_eq!(docs[0]["RequestsCompleted"], 1.0);
        assert_eq!(docs[0]["Turnaround"], 3600.0);
        assert_eq!(docs[0]["Outcome"], "FAILED");
        assert_eq!(docs[1]["Failures"], 1.0);
        assert_eq!(docs[1]["Cause"], "IntegrityError");
        assert_eq!(
            docs[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Project", "Cause"], ["Project"]])
        );
        let ok = completed_doc(
            &request("req-2", EgressStatus::IgApproved),
            Outcome::Approved,
            AT,
        );
        assert_eq!(ok.len(), 1, "no failure for an approval");
    }

    #[test]
    fn when_an_archive_completes_then_its_throughput_runs_from_the_final_approval() {
        let mut r = request("req-1", EgressStatus::IgApproved);
        r.ig_reviewer_1_dt = Some("2024-05-01T11:59:50.000Z".into());
        let v = archived_doc(&r, 10_000_000, AT).to_value().unwrap();
        assert_valid_emf(&v);
        assert_eq!(v["BytesArchived"], 10_000_000.0);
        assert_eq!(v["ArchiveThroughput"], 1_000_000.0);
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"][1],
            json!({"Name": "ArchiveThroughput", "Unit": "Bytes/Second"})
        );
        let mut dual = dual_request("req-2", EgressStatus::RitApproved);
        dual.ig_reviewer_1_dt = Some("2024-05-01T11:00:00.000Z".into());
        dual.rit_reviewer_2_dt = None;
        let v = archived_doc(&dual, 5, AT).to_value().unwrap();
        assert!(v.get("ArchiveThroughput").is_none(), "no RIT time, no rate");
    }

    #[test]
    fn when_metrics_are_emitted_then_each_is_one_document_with_the_expected_values() {
        capture::start();
        requests_submitted("req-1");
        staged("req-1", 2048, 3);
        download("req-1");
        reminders(2, 1);
        drift_found("orphaned-staging", 4);
        queue(5, 3600.0);
        let docs = capture::take();
        assert_eq!(docs.len(), 6);
        docs.iter().for_each(assert_valid_emf);
        assert_eq!(docs[0]["RequestsSubmitted"], 1.0);
        assert_eq!(docs[0]["egress_request_id"], "req-1");
        assert_eq!(
            (
                docs[1]["BytesStaged"].as_f64(),
                docs[1]["FilesStaged"].as_f64()
            ),
            (Some(2048.0), Some(3.0))
        );
        assert_eq!(docs[2]["Downloads"], 1.0);
        assert_eq!(
            (
                docs[3]["RemindersSent"].as_f64(),
                docs[3]["RemindersEscalated"].as_f64()
            ),
            (Some(2.0), Some(1.0))
        );
        assert_eq!(
            (docs[4]["DriftFound"].as_f64(), docs[4]["Kind"].as_str()),
            (Some(4.0), Some("orphaned-staging"))
        );
        assert_eq!(
            (
                docs[5]["WaitingRequests"].as_f64(),
                docs[5]["OldestWaitingAge"].as_f64()
            ),
            (Some(5.0), Some(3600.0))
        );
        for doc in &docs {
            for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
            {
                assert!(METRIC_NAMES.contains(&m["Name"].as_str().unwrap()), "{m}");
            }
            for set in doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
                .as_array()
                .unwrap()
            {
                for key in set.as_array().unwrap() {
                    assert!(DIMENSION_KEYS.contains(&key.as_str().unwrap()), "{key}");
                }
            }
        }
    }

    #[test]
    fn when_a_sweep_ends_then_reminders_drift_by_kind_and_the_queue_are_documented() {
        let mut report = SweepReport::default();
        report.counts.reminders = 3;
        report.counts.escalations = 1;
        report.counts.waiting = 2;
        let mut ig = request("req-1", EgressStatus::Processing);
        ig.requested_dt = "2024-05-01T10:00:00.000Z".into();
        ig.review_stage = Some(ReviewStage::Ig);
        ig.review_handle = Some("h-1".into());
        let mut rit = dual_request("req-2", EgressStatus::IgApproved);
        rit.requested_dt = "2024-04-01T10:00:00.000Z".into();
        rit.ig_reviewer_1_dt = Some("2024-05-01T11:00:00.000Z".into());
        rit.review_stage = Some(ReviewStage::Rit);
        rit.review_handle = Some("h-2".into());
        let decided = request("req-3", EgressStatus::IgApproved);
        let values = |docs: Vec<Document>| -> Vec<Value> {
            docs.iter().map(|d| d.to_value().unwrap()).collect()
        };
        let docs = values(swept_docs(&report, &[ig.clone(), rit.clone(), decided], AT));
        docs.iter().for_each(assert_valid_emf);
        assert_eq!(
            (
                docs[0]["RemindersSent"].as_f64(),
                docs[0]["RemindersEscalated"].as_f64()
            ),
            (Some(3.0), Some(1.0))
        );
        assert_eq!(docs[1]["DriftFound"], 0.0, "no drift is a zero, not a gap");
        assert_eq!(docs[2]["WaitingRequests"], 2.0);
        // The IG stage waits since submission (2 h); the RIT stage since the IG decision (1 h).
        assert_eq!(docs[2]["OldestWaitingAge"], 7200.0);
        report
            .drift_by_kind
            .insert("stale-multipart-upload".into(), 2);
        report.drift_by_kind.insert("staged-after-end".into(), 1);
        let docs = values(swept_docs(&report, &[], AT));
        assert_eq!(docs.len(), 4);
        assert_eq!(
            (docs[1]["Kind"].as_str(), docs[1]["DriftFound"].as_f64()),
            (Some("staged-after-end"), Some(1.0))
        );
        assert_eq!(
            (docs[2]["Kind"].as_str(), docs[2]["DriftFound"].as_f64()),
            (Some("stale-multipart-upload"), Some(2.0))
        );
        assert_eq!(
            docs[2]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Project", "Kind"], ["Project"]])
        );
        assert_eq!(docs[3]["OldestWaitingAge"], 0.0, "nobody waits");
    }

    #[test]
    fn when_names_are_listed_then_they_are_unique_and_not_dimension_keys() {
        let mut all: Vec<&str> = METRIC_NAMES.iter().chain(DIMENSION_KEYS).copied().collect();
        all.sort_unstable();
        let before = all.len();
        all.dedup();
        assert_eq!(
            all.len(),
            before,
            "a metric name or dimension key is repeated"
        );
        assert!(!all.contains(&"_aws") && !all.contains(&"egress_request_id"));
    }
}
