//! The sweep's vocabulary: what an admin (or the schedule) asks of it, what it records on a
//! waiting request, and the report it returns.

use serde::{Deserialize, Serialize};

/// What one sweep invocation is asked to do: the schedule's input, or an admin's.
///
/// `{}` sends the reminders that are due and reports drift; `{"repair": true}` (the schedule)
/// also repairs what is safe; `{"dry_run": true}` sends nothing and changes nothing, it only
/// reports what a sweep would do. `egress_request_ids` limits the sweep to those requests (and
/// to the objects, uploads and store items that belong to them): an admin looking at one case.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepRequest {
    /// Report only: no notice sent, nothing written or deleted.
    #[serde(default)]
    pub dry_run: bool,
    /// Repair the drift that is safe to repair (ignored in a dry run).
    #[serde(default)]
    pub repair: bool,
    /// Only these requests; `None` sweeps everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_request_ids: Option<Vec<String>>,
}

/// What the sweep has recorded on a request item about the notices of its waiting stage.
///
/// Each notice names the stage's `review_handle` (fresh per stage), so marks of an earlier
/// stage count for nothing at the next one and no attribute has to be reset at a decision.
/// These attributes are written only by the sweep, each with a condition on the values read,
/// so two concurrent sweeps cannot both send the same notice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeMarks {
    /// The stage handle the reminder count belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder_handle: Option<String>,
    /// Reminders sent for that stage.
    #[serde(default)]
    pub reminders_sent: u32,
    /// When the last one was sent (ISO-8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reminded_dt: Option<String>,
    /// The stage handle the admin was told about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation_handle: Option<String>,
    /// When the admin was told (ISO-8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated_dt: Option<String>,
    /// The stage handle the requester was warned about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_warning_handle: Option<String>,
    /// When the requester was warned (ISO-8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_warned_dt: Option<String>,
}

/// One notice the sweep sent (or, in a dry run, would have sent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeReport {
    /// The request.
    pub egress_request_id: String,
    /// `reminder`, `escalation` or `expiry_warning`.
    pub kind: String,
    /// The stage waiting (`IG` / `RIT`).
    pub stage: String,
    /// The reminder's number for this stage (1 for the other kinds).
    pub number: u32,
    /// `sent`, `due` (dry run), `lost` (another sweep recorded it first) or `failed`.
    pub outcome: String,
}

/// One drift the sweep found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftReport {
    /// The kind (`crate::domain::sweep::DriftKind` name).
    pub kind: String,
    /// The request concerned, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_request_id: Option<String>,
    /// What was found: a key, a store id, an upload.
    pub subject: String,
    /// What the sweep did: `reported` (not safe to repair, or not asked), `repaired`,
    /// `already_repaired` (another writer got there first) or `failed`.
    pub action: String,
    /// Details for the admin.
    pub detail: String,
}

/// Counts of a sweep, for its result and its metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepCounts {
    /// Requests found waiting on a review stage.
    pub waiting: u64,
    /// Reminders sent.
    pub reminders: u64,
    /// Escalations to the admin sent.
    pub escalations: u64,
    /// Expiry warnings sent to requesters.
    pub expiry_warnings: u64,
    /// Drift found (all kinds).
    pub drift_found: u64,
    /// Drift repaired.
    pub drift_repaired: u64,
    /// Failures (a notice or a repair that failed); the next sweep tries again.
    pub failures: u64,
}

/// The sweep's result: returned to the caller and summarised to the admin topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepReport {
    /// The request was a dry run.
    pub dry_run: bool,
    /// Repairs were made (asked, and not a dry run).
    pub repair: bool,
    /// When the sweep ran (ISO-8601).
    pub at: String,
    /// Counts.
    pub counts: SweepCounts,
    /// Counts of drift by kind.
    pub drift_by_kind: std::collections::BTreeMap<String, u64>,
    /// Each notice.
    pub notices: Vec<NoticeReport>,
    /// Each drift.
    pub drift: Vec<DriftReport>,
}

/// How a Step Functions execution stands (`DescribeExecution`'s `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    /// Still running (or waiting on a review task).
    Running,
    /// Ended in a `Succeed` state.
    Succeeded,
    /// Ended in a `Fail` state or an uncaught error.
    Failed,
    /// Ran past the state machine's own timeout.
    TimedOut,
    /// Stopped by someone (`StopExecution`).
    Aborted,
    /// Failed and waiting for a redrive: as good as ended until someone redrives it.
    PendingRedrive,
}

/// What the sweep needs to know of the execution of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionInfo {
    /// Its status.
    pub status: ExecutionStatus,
    /// The error name of a failed execution.
    pub error: Option<String>,
    /// The cause of a failed execution.
    pub cause: Option<String>,
    /// The final state output of a succeeded execution (bounded by Step Functions at 256 KiB).
    pub output: Option<String>,
}

/// An item of SWB's egress store table, as far as the sweep reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwbStoreItem {
    /// The store id (the table's key).
    pub id: String,
    /// Its `status`.
    pub status: Option<String>,
    /// The request holding it (`egress_request_lock`), when the lock survived SWB's writes.
    pub lock: Option<String>,
}
