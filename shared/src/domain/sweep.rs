//! The sweep's rules, as plain functions: which notices a waiting request is due, and what
//! counts as drift and what repairs it.
//!
//! Time is passed in (the service reads its `Clock`), and every threshold is in seconds, so a
//! test can run the whole policy in seconds while a deployment counts in days.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::domain::transitions::{final_approval, status_awaiting};
use crate::model::{
    ApprovalMode, EgressRequest, EgressStatus, ExecutionInfo, ExecutionStatus, NoticeMarks,
    ReviewStage, SwbStoreItem,
};

/// When reminders, escalations and expiry warnings fall due, in seconds since the stage
/// started waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReminderPolicy {
    /// First reminder to the stage's reviewers after this long.
    pub remind_after: u64,
    /// Then one every this long.
    pub remind_every: u64,
    /// The TRE admin is told the request is overdue after this long.
    pub escalate_after: u64,
    /// The requester is warned this long before the review timeout.
    pub warn_before_expiry: u64,
    /// The workflow's review timeout (the same value `start-workflow` gives it).
    pub review_timeout: u64,
}

/// A notice to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// Remind the stage's reviewers.
    Reminder,
    /// Tell the TRE admin the request is overdue.
    Escalation,
    /// Tell the requester the request is about to expire.
    ExpiryWarning,
}

impl NoticeKind {
    /// The name used in the audit trail and the sweep's report.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Reminder => "reminder",
            NoticeKind::Escalation => "escalation",
            NoticeKind::ExpiryWarning => "expiry_warning",
        }
    }
}

/// A notice due on a waiting request, with what the conditional record of it must find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueNotice {
    /// What to send.
    pub kind: NoticeKind,
    /// The stage waiting.
    pub stage: ReviewStage,
    /// The stage's handle: the record is conditional on the request still carrying it.
    pub handle: String,
    /// The status the stage waits in: the record is conditional on it too.
    pub awaiting_status: EgressStatus,
    /// The handle the mark held when read (`None`: never written).
    pub previous_handle: Option<String>,
    /// The reminder count held when read (for this kind's mark; 0 for the others).
    pub previous_count: u32,
    /// The new count (the reminder's number; 1 for the other kinds).
    pub number: u32,
    /// How long the stage has waited, in seconds.
    pub waited: u64,
    /// Seconds left before the review timeout expires the request.
    pub remaining: u64,
}

/// The stage `request` waits on, with its handle: `None` unless a stage is recorded, its
/// handle present and the status the one that stage waits in (a decided, expired or failed
/// request waits on nothing).
pub fn waiting_stage(request: &EgressRequest) -> Option<(ReviewStage, &str)> {
    let stage = request.review_stage?;
    let handle = request.review_handle.as_deref()?;
    if request.egress_status != status_awaiting(stage) {
        return None;
    }
    if stage == ReviewStage::Rit && request.approval_mode != ApprovalMode::Dual {
        return None;
    }
    Some((stage, handle))
}

/// Parses an ISO-8601 instant of the table.
pub fn parse_instant(value: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(value, &Rfc3339).ok()
}

fn seconds_between(from: OffsetDateTime, to: OffsetDateTime) -> u64 {
    u64::try_from((to - from).whole_seconds()).unwrap_or(0)
}

/// The notices `request` is due at `now`. The stage's wait started at `updated_dt`, which
/// `record-task-token` sets when the stage parks and which nothing writes again until a
/// decision (the sweep's own marks leave it alone).
pub fn notices_due(
    request: &EgressRequest,
    marks: &NoticeMarks,
    policy: &ReminderPolicy,
    now: OffsetDateTime,
) -> Vec<DueNotice> {
    let Some((stage, handle)) = waiting_stage(request) else {
        return Vec::new();
    };
    let Some(since) = parse_instant(&request.updated_dt) else {
        return Vec::new();
    };
    let waited = seconds_between(since, now);
    // At the timeout the workflow expires the request: nobody is told to act on it any more.
    if waited >= policy.review_timeout {
        return Vec::new();
    }
    let remaining = policy.review_timeout - waited;
    let due = |kind, previous_handle: &Option<String>, previous_count, number| DueNotice {
        kind,
        stage,
        handle: handle.to_string(),
        awaiting_status: request.egress_status,
        previous_handle: previous_handle.clone(),
        previous_count,
        number,
        waited,
        remaining,
    };
    let mut out = Vec::new();
    let this_stage = |h: &Option<String>| h.as_deref() == Some(handle);

    let sent = if this_stage(&marks.reminder_handle) {
        marks.reminders_sent
    } else {
        0
    };
    let last = marks
        .last_reminded_dt
        .as_deref()
        .and_then(parse_instant)
        .filter(|_| sent > 0);
    let reminder_due = waited >= policy.remind_after
        && match last {
            None => true,
            Some(last) => seconds_between(last, now) >= policy.remind_every.max(1),
        };
    if reminder_due {
        out.push(due(
            NoticeKind::Reminder,
            &marks.reminder_handle,
            marks.reminders_sent,
            sent + 1,
        ));
    }
    if waited >= policy.escalate_after && !this_stage(&marks.escalation_handle) {
        out.push(due(NoticeKind::Escalation, &marks.escalation_handle, 0, 1));
    }
    let warn_from = policy
        .review_timeout
        .saturating_sub(policy.warn_before_expiry);
    if waited >= warn_from && !this_stage(&marks.expiry_warning_handle) {
        out.push(due(
            NoticeKind::ExpiryWarning,
            &marks.expiry_warning_handle,
            0,
            1,
        ));
    }
    out
}

/// The kinds of drift the sweep looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DriftKind {
    /// A request in flight with no execution at all.
    ProcessingWithoutExecution,
    /// An execution that ended while its request was left short of a terminal status.
    ExecutionEndedWithoutStatus,
    /// SWB's egress store `PROCESSING` with no request of ours in flight.
    SwbStoreStuck,
    /// Staged objects of a request that has ended.
    StagedAfterEnd,
    /// A multipart upload left open too long.
    StaleMultipartUpload,
    /// A final approval without its archive.
    ApprovedWithoutArchive,
    /// An archive without a final approval.
    ArchiveWithoutApproval,
    /// A decision claimed by an API call that died before it resumed the workflow (the
    /// request shows it made; the execution still waits for it).
    StalledDecision,
}

impl DriftKind {
    /// The name used in the report, the audit trail and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::ProcessingWithoutExecution => "processing_without_execution",
            DriftKind::ExecutionEndedWithoutStatus => "execution_ended_without_status",
            DriftKind::SwbStoreStuck => "swb_store_stuck",
            DriftKind::StagedAfterEnd => "staged_after_end",
            DriftKind::StaleMultipartUpload => "stale_multipart_upload",
            DriftKind::ApprovedWithoutArchive => "approved_without_archive",
            DriftKind::ArchiveWithoutApproval => "archive_without_approval",
            DriftKind::StalledDecision => "stalled_decision",
        }
    }
}

/// True when `request` has reached the end of its workflow: rejected, expired, failed, or
/// finally approved (IG in single mode, RIT in dual mode).
pub fn is_ended(request: &EgressRequest) -> bool {
    match request.egress_status {
        EgressStatus::Rejected
        | EgressStatus::Expired
        | EgressStatus::Failed
        | EgressStatus::Revoked => true,
        status => status == final_approval(request.approval_mode),
    }
}

/// True when `request` is finally approved.
pub fn is_final_approval(request: &EgressRequest) -> bool {
    request.egress_status == final_approval(request.approval_mode)
}

/// What to do about a request whose execution is not running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestRepair {
    /// Mark it `FAILED` with this error and cause, then release its SWB store and delete its
    /// staged data, as the workflow's failure path does.
    Fail {
        /// The error name recorded.
        error: String,
        /// The cause recorded.
        cause: String,
    },
    /// Mark it `EXPIRED` (the execution ended on the review timeout), then release and clean
    /// up as the expiry path does.
    Expire,
    /// Report only: the right terminal status cannot be told safely.
    ReportOnly(String),
}

/// A drift of a request against its execution, and its repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestDrift {
    /// The kind.
    pub kind: DriftKind,
    /// What to do.
    pub repair: RequestRepair,
}

/// The drift of `request` given its execution (`None`: no execution by its name exists).
/// Nothing while the execution runs; nothing when the request has ended already, except a
/// failed execution whose request still reads as approved without an archive (that is
/// [`DriftKind::ApprovedWithoutArchive`], reported elsewhere).
pub fn request_drift(
    request: &EgressRequest,
    execution: Option<&ExecutionInfo>,
) -> Option<RequestDrift> {
    if is_ended(request) {
        return None;
    }
    let Some(execution) = execution else {
        return Some(RequestDrift {
            kind: DriftKind::ProcessingWithoutExecution,
            repair: RequestRepair::Fail {
                error: "ExecutionMissing".into(),
                cause: format!(
                    "the request was {} with no workflow execution; the reconciliation sweep ended it",
                    request.egress_status
                ),
            },
        });
    };
    let repair = match execution.status {
        ExecutionStatus::Running => return None,
        ExecutionStatus::Failed
        | ExecutionStatus::TimedOut
        | ExecutionStatus::Aborted
        | ExecutionStatus::PendingRedrive => RequestRepair::Fail {
            error: execution
                .error
                .clone()
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| format!("Execution{:?}", execution.status)),
            cause: format!(
                "the workflow execution ended {:?} while the request was {}: {}; the reconciliation sweep ended it",
                execution.status,
                request.egress_status,
                execution.cause.as_deref().unwrap_or("no cause recorded")
            ),
        },
        ExecutionStatus::Succeeded => {
            if execution
                .output
                .as_deref()
                .is_some_and(|o| o.contains("States.Timeout"))
            {
                RequestRepair::Expire
            } else {
                RequestRepair::ReportOnly(format!(
                    "the execution succeeded but the request is still {}; its outcome cannot be told from the execution",
                    request.egress_status
                ))
            }
        }
    };
    Some(RequestDrift {
        kind: DriftKind::ExecutionEndedWithoutStatus,
        repair,
    })
}

/// What to do with an SWB store item found `PROCESSING`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreVerdict {
    /// Its request is in flight: leave it.
    InFlight,
    /// Release it to this status (`PENDING`, or `PROCESSED` when its request was approved
    /// with an archive), conditional on the lock still being `lock`.
    Release {
        /// The lock it must still hold.
        lock: String,
        /// The status to set.
        to: &'static str,
    },
    /// No lock: SWB rewrote the item and nobody can tell whose it is. Report only.
    Unowned,
}

/// The verdict on `store` (`PROCESSING`), given the request its lock names (`None` when no
/// such request exists) and whether that request's execution is running.
pub fn store_verdict(
    store: &SwbStoreItem,
    owner: Option<&EgressRequest>,
    owner_running: bool,
) -> StoreVerdict {
    let Some(lock) = store.lock.clone() else {
        return StoreVerdict::Unowned;
    };
    if owner_running {
        return StoreVerdict::InFlight;
    }
    match owner {
        Some(r) if !is_ended(r) => StoreVerdict::InFlight,
        Some(r) if is_final_approval(r) && r.archive_key.is_some() => StoreVerdict::Release {
            lock,
            to: "PROCESSED",
        },
        _ => StoreVerdict::Release {
            lock,
            to: "PENDING",
        },
    }
}

/// The workspace and request of a staging key (`<ws>/<req>/...`, or the manifest, the checks
/// report or the checks made while staging under
/// `.manifests/<ws>/<req>.json|.checks.json|.staged-checks.json`); `None` for anything else
/// (the archive checkpoints, keys of another shape).
pub fn staged_owner(key: &str) -> Option<(&str, &str)> {
    if let Some(rest) = key.strip_prefix(".manifests/") {
        let (ws, file) = rest.split_once('/')?;
        let req = file
            .strip_suffix(".staged-checks.json")
            .or_else(|| file.strip_suffix(".checks.json"))
            .or_else(|| file.strip_suffix(".json"))?;
        return Some((ws, req)).filter(|(w, r)| !w.is_empty() && !r.is_empty());
    }
    if key.starts_with('.') {
        return None;
    }
    let mut parts = key.splitn(3, '/');
    let ws = parts.next()?;
    let req = parts.next()?;
    parts.next()?;
    Some((ws, req)).filter(|(w, r)| !w.is_empty() && !r.is_empty())
}

/// The workspace and request of a datalake archive key
/// (`approved_egress/<ws>/<req>/egress_data.zip`).
pub fn archive_owner(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("approved_egress/")?;
    let rest = rest.strip_suffix("/egress_data.zip")?;
    let (ws, req) = rest.split_once('/')?;
    Some((ws, req)).filter(|(w, r)| !w.is_empty() && !r.is_empty() && !r.contains('/'))
}

/// The request a multipart upload key belongs to, whether in staging or in the datalake.
pub fn upload_owner(key: &str) -> Option<&str> {
    archive_owner(key)
        .or_else(|| staged_owner(key))
        .map(|(_, req)| req)
}

/// True when an upload initiated at `initiated` has been open for at least `max_age` seconds.
pub fn upload_is_stale(initiated: OffsetDateTime, now: OffsetDateTime, max_age: u64) -> bool {
    seconds_between(initiated, now) >= max_age
}

/// The reviewers' reminder: subject and message (no task token, no personal identifier
/// beyond what the stage's first notification already named).
pub fn reminder_text(
    request: &EgressRequest,
    notice: &DueNotice,
    app_url: &str,
) -> (String, String) {
    let stage = stage_name(notice.stage);
    (
        format!(
            "Reminder {}: egress request {} awaits {stage} review",
            notice.number, request.egress_request_id
        ),
        format!(
            "Egress request {} (project {}, workspace {}, egress store {}) has been waiting for {stage} review for {}. \
             It expires without a decision in {}. Review it at {app_url}",
            request.egress_request_id,
            request.project_id,
            request.workspace_id,
            request.egress_store_name,
            human_duration(notice.waited),
            human_duration(notice.remaining),
        ),
    )
}

/// The TRE admin's overdue alert.
pub fn escalation_text(request: &EgressRequest, notice: &DueNotice) -> (String, String) {
    let stage = stage_name(notice.stage);
    (
        format!(
            "Egress request {} is overdue at {stage} review",
            request.egress_request_id
        ),
        format!(
            "Egress request {} (project {}, workspace {}, egress store {}, requested by {}) has waited {} for {stage} \
             review (group {}); it expires in {}. The reviewers have been reminded.",
            request.egress_request_id,
            request.project_id,
            request.workspace_id,
            request.egress_store_name,
            request.requested_by,
            human_duration(notice.waited),
            request.current_reviewer_group.as_deref().unwrap_or("unknown"),
            human_duration(notice.remaining),
        ),
    )
}

/// The requester's warning that their request is about to expire.
pub fn expiry_warning_text(
    request: &EgressRequest,
    notice: &DueNotice,
    admin_email: &str,
) -> (String, String) {
    (
        format!(
            "Your egress request {} expires in {}",
            request.egress_request_id,
            human_duration(notice.remaining)
        ),
        format!(
            "Your egress request {} from egress store {} (workspace {}) still awaits {} review and will expire \
             without a decision in {}. An expired request releases the egress store so you can submit again. \
             If the review is urgent, contact the TRE admin at {admin_email}.",
            request.egress_request_id,
            request.egress_store_name,
            request.workspace_id,
            stage_name(notice.stage),
            human_duration(notice.remaining),
        ),
    )
}

fn stage_name(stage: ReviewStage) -> &'static str {
    match stage {
        ReviewStage::Ig => "Information Governance",
        ReviewStage::Rit => "Research IT",
    }
}

/// `3 days 4 h`, `2 h 5 min`, `40 s`: the largest two units.
pub fn human_duration(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) => format!("{m} min {s} s"),
        (0, _, _) => format!("{h} h {m} min"),
        _ => format!("{d} day(s) {h} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{approved, parked_at, sample_request};
    use time::macros::datetime;
    use time::Duration;

    const POLICY: ReminderPolicy = ReminderPolicy {
        remind_after: 100,
        remind_every: 50,
        escalate_after: 300,
        warn_before_expiry: 100,
        review_timeout: 1000,
    };
    const T0: OffsetDateTime = datetime!(2024-05-01 09:00:00 UTC);

    fn waiting(stage: ReviewStage) -> EgressRequest {
        let mut r = parked_at(
            sample_request("req-1", ApprovalMode::Dual),
            stage,
            "token",
            "handle-1",
        );
        r.updated_dt = "2024-05-01T09:00:00.000Z".into();
        r
    }

    fn kinds(due: &[DueNotice]) -> Vec<NoticeKind> {
        due.iter().map(|d| d.kind).collect()
    }

    fn at(seconds: i64) -> OffsetDateTime {
        T0 + Duration::seconds(seconds)
    }

    #[test]
    fn when_a_release_was_revoked_then_the_request_has_ended() {
        // A revoked request's store lock is no longer in flight: the sweep may release it.
        let mut r = sample_request("req-1", ApprovalMode::Single);
        r.egress_status = EgressStatus::Revoked;
        assert!(is_ended(&r));
        r.egress_status = EgressStatus::Processing;
        assert!(!is_ended(&r));
    }

    #[test]
    fn when_a_stage_has_waited_less_than_the_first_threshold_then_nothing_is_due() {
        let due = notices_due(
            &waiting(ReviewStage::Ig),
            &NoticeMarks::default(),
            &POLICY,
            at(99),
        );
        assert!(due.is_empty());
    }

    #[test]
    fn when_the_first_threshold_passes_then_reminder_1_is_due_from_a_never_written_mark() {
        let due = notices_due(
            &waiting(ReviewStage::Ig),
            &NoticeMarks::default(),
            &POLICY,
            at(100),
        );
        assert_eq!(kinds(&due), vec![NoticeKind::Reminder]);
        assert_eq!(due[0].number, 1);
        assert_eq!(due[0].previous_handle, None);
        assert_eq!(due[0].awaiting_status, EgressStatus::Processing);
        assert_eq!(due[0].handle, "handle-1");
    }

    #[test]
    fn when_a_reminder_was_sent_then_the_next_waits_for_the_interval() {
        let marks = NoticeMarks {
            reminder_handle: Some("handle-1".into()),
            reminders_sent: 1,
            last_reminded_dt: Some("2024-05-01T09:01:40.000Z".into()),
            ..NoticeMarks::default()
        };
        let r = waiting(ReviewStage::Ig);
        assert!(notices_due(&r, &marks, &POLICY, at(149)).is_empty());
        let due = notices_due(&r, &marks, &POLICY, at(150));
        assert_eq!(kinds(&due), vec![NoticeKind::Reminder]);
        assert_eq!((due[0].previous_count, due[0].number), (1, 2));
    }

    #[test]
    fn when_the_marks_belong_to_the_previous_stage_then_the_count_starts_again() {
        let marks = NoticeMarks {
            reminder_handle: Some("ig-handle".into()),
            reminders_sent: 4,
            last_reminded_dt: Some("2024-05-01T09:01:59.000Z".into()),
            escalation_handle: Some("ig-handle".into()),
            ..NoticeMarks::default()
        };
        let due = notices_due(&waiting(ReviewStage::Rit), &marks, &POLICY, at(300));
        assert_eq!(
            kinds(&due),
            vec![NoticeKind::Reminder, NoticeKind::Escalation]
        );
        assert_eq!(due[0].number, 1);
        assert_eq!(due[0].previous_handle.as_deref(), Some("ig-handle"));
        assert_eq!(due[0].previous_count, 4);
        assert_eq!(due[0].awaiting_status, EgressStatus::IgApproved);
    }

    #[test]
    fn when_overdue_then_the_admin_is_told_once_per_stage() {
        let r = waiting(ReviewStage::Ig);
        let due = notices_due(&r, &NoticeMarks::default(), &POLICY, at(300));
        assert!(kinds(&due).contains(&NoticeKind::Escalation));
        let marks = NoticeMarks {
            escalation_handle: Some("handle-1".into()),
            reminder_handle: Some("handle-1".into()),
            reminders_sent: 3,
            last_reminded_dt: Some("2024-05-01T09:05:00.000Z".into()),
            ..NoticeMarks::default()
        };
        assert!(notices_due(&r, &marks, &POLICY, at(320)).is_empty());
    }

    #[test]
    fn when_the_timeout_nears_then_the_requester_is_warned_once_and_not_after_it() {
        let r = waiting(ReviewStage::Ig);
        let marks = NoticeMarks {
            escalation_handle: Some("handle-1".into()),
            reminder_handle: Some("handle-1".into()),
            reminders_sent: 9,
            last_reminded_dt: Some("2024-05-01T09:15:30.000Z".into()),
            ..NoticeMarks::default()
        };
        let due = notices_due(&r, &marks, &POLICY, at(900));
        assert_eq!(kinds(&due), vec![NoticeKind::ExpiryWarning]);
        assert_eq!(due[0].remaining, 100);
        assert!(notices_due(&r, &marks, &POLICY, at(1000)).is_empty());
        let warned = NoticeMarks {
            expiry_warning_handle: Some("handle-1".into()),
            ..marks
        };
        assert!(notices_due(&r, &warned, &POLICY, at(950)).is_empty());
    }

    #[test]
    fn when_the_request_is_decided_then_nothing_is_due() {
        let mut r = waiting(ReviewStage::Ig);
        r.egress_status = EgressStatus::Rejected;
        assert!(notices_due(&r, &NoticeMarks::default(), &POLICY, at(900)).is_empty());
        let mut claimed = waiting(ReviewStage::Ig);
        claimed.review_handle = None;
        assert!(notices_due(&claimed, &NoticeMarks::default(), &POLICY, at(900)).is_empty());
    }

    fn execution(status: ExecutionStatus) -> ExecutionInfo {
        ExecutionInfo {
            status,
            error: Some("States.TaskFailed".into()),
            cause: Some("boom".into()),
            output: None,
        }
    }

    #[test]
    fn when_a_processing_request_has_no_execution_then_it_is_failed() {
        let r = waiting(ReviewStage::Ig);
        let drift = request_drift(&r, None).unwrap();
        assert_eq!(drift.kind, DriftKind::ProcessingWithoutExecution);
        assert!(
            matches!(drift.repair, RequestRepair::Fail { ref error, .. } if error == "ExecutionMissing")
        );
    }

    #[test]
    fn when_the_execution_runs_then_there_is_no_drift() {
        let r = waiting(ReviewStage::Rit);
        assert_eq!(
            request_drift(&r, Some(&execution(ExecutionStatus::Running))),
            None
        );
    }

    #[test]
    fn when_the_execution_was_stopped_then_the_request_is_failed_with_its_error() {
        let r = waiting(ReviewStage::Ig);
        for status in [
            ExecutionStatus::Aborted,
            ExecutionStatus::Failed,
            ExecutionStatus::TimedOut,
        ] {
            let drift = request_drift(&r, Some(&execution(status))).unwrap();
            assert_eq!(drift.kind, DriftKind::ExecutionEndedWithoutStatus);
            match drift.repair {
                RequestRepair::Fail { error, cause } => {
                    assert_eq!(error, "States.TaskFailed");
                    assert!(cause.contains("boom"), "{cause}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn when_the_execution_succeeded_on_a_timeout_then_the_request_expires_else_it_is_reported() {
        let r = waiting(ReviewStage::Ig);
        let mut e = execution(ExecutionStatus::Succeeded);
        e.output = Some(r#"{"failure":{"Error":"States.Timeout"}}"#.into());
        assert_eq!(
            request_drift(&r, Some(&e)).unwrap().repair,
            RequestRepair::Expire
        );
        e.output = Some("{}".into());
        assert!(matches!(
            request_drift(&r, Some(&e)).unwrap().repair,
            RequestRepair::ReportOnly(_)
        ));
    }

    #[test]
    fn when_the_request_has_ended_then_its_execution_does_not_matter() {
        let mut r = sample_request("req-1", ApprovalMode::Single);
        r.egress_status = EgressStatus::IgApproved;
        assert_eq!(request_drift(&r, None), None);
        r.egress_status = EgressStatus::Rejected;
        assert_eq!(
            request_drift(&r, Some(&execution(ExecutionStatus::Failed))),
            None
        );
    }

    fn store(lock: Option<&str>) -> SwbStoreItem {
        SwbStoreItem {
            id: "store-1".into(),
            status: Some("PROCESSING".into()),
            lock: lock.map(str::to_string),
        }
    }

    #[test]
    fn when_the_store_lock_names_no_request_then_it_is_released_to_pending() {
        assert_eq!(
            store_verdict(&store(Some("ghost")), None, false),
            StoreVerdict::Release {
                lock: "ghost".into(),
                to: "PENDING"
            }
        );
    }

    #[test]
    fn when_the_lock_owner_is_in_flight_then_the_store_is_left_alone() {
        let r = waiting(ReviewStage::Ig);
        assert_eq!(
            store_verdict(&store(Some("req-1")), Some(&r), false),
            StoreVerdict::InFlight
        );
        let ended = approved(sample_request("req-1", ApprovalMode::Single), 0);
        assert_eq!(
            store_verdict(&store(Some("req-1")), Some(&ended), true),
            StoreVerdict::InFlight
        );
    }

    #[test]
    fn when_the_owner_was_approved_with_an_archive_then_the_store_is_processed() {
        let ended = approved(sample_request("req-1", ApprovalMode::Single), 0);
        assert_eq!(
            store_verdict(&store(Some("req-1")), Some(&ended), false),
            StoreVerdict::Release {
                lock: "req-1".into(),
                to: "PROCESSED"
            }
        );
    }

    #[test]
    fn when_the_store_has_no_lock_then_it_is_only_reported() {
        assert_eq!(
            store_verdict(&store(None), None, false),
            StoreVerdict::Unowned
        );
    }

    #[test]
    fn when_reading_keys_then_staged_archive_and_upload_owners_are_found() {
        assert_eq!(staged_owner("ws-1/req-1/a/b.csv"), Some(("ws-1", "req-1")));
        assert_eq!(
            staged_owner(".manifests/ws-1/req-1.json"),
            Some(("ws-1", "req-1"))
        );
        assert_eq!(
            staged_owner(".manifests/ws-1/req-1.checks.json"),
            Some(("ws-1", "req-1"))
        );
        assert_eq!(
            staged_owner(".manifests/ws-1/req-1.staged-checks.json"),
            Some(("ws-1", "req-1"))
        );
        assert_eq!(staged_owner(".checkpoints/ws-1/req-1/x"), None);
        assert_eq!(staged_owner("ws-1/req-1"), None);
        assert_eq!(
            archive_owner("approved_egress/ws-1/req-1/egress_data.zip"),
            Some(("ws-1", "req-1"))
        );
        assert_eq!(archive_owner("approved_egress/ws-1/req-1/other.zip"), None);
        assert_eq!(
            upload_owner("approved_egress/ws-1/req-1/egress_data.zip"),
            Some("req-1")
        );
        assert_eq!(upload_owner("ws-1/req-2/big.bin"), Some("req-2"));
    }

    #[test]
    fn when_an_upload_is_older_than_the_limit_then_it_is_stale() {
        assert!(!upload_is_stale(at(0), at(86_399), 86_400));
        assert!(upload_is_stale(at(0), at(86_400), 86_400));
    }

    #[test]
    fn when_texts_are_written_then_they_name_the_request_and_never_the_token() {
        let r = waiting(ReviewStage::Ig);
        let due = &notices_due(&r, &NoticeMarks::default(), &POLICY, at(950))[0];
        for (subject, body) in [
            reminder_text(&r, due, "https://app"),
            escalation_text(&r, due),
            expiry_warning_text(&r, due, "admin@example.org"),
        ] {
            assert!(
                subject.contains("req-1") && body.contains("req-1"),
                "{subject}"
            );
            assert!(!body.contains("token"), "{body}");
        }
        assert_eq!(human_duration(90_000), "1 day(s) 1 h");
        assert_eq!(human_duration(65), "1 min 5 s");
    }
}
