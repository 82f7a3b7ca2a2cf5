//! Inputs and outputs of every workflow step.
//!
//! The state machine (`statemachine/egress_workflow.asl.json`) builds these payloads and
//! reads these results; the golden tests deserialize every fixture in `events/` into these
//! types so a drift between the ASL and the code fails a test.
//!
//! Every result lands in the workflow's state, which Step Functions caps at 256 KiB (and on
//! AWS a `States.DataLimitExceeded` escapes `States.ALL`). So no result carries a list that
//! grows with the request: counts, ids and bounded summaries only; lists of files live in the
//! staging manifest (DESIGN.md §8.6). `tests/tests/output_bounds.rs` holds each result of a
//! 100,000-file request under [`MAX_STEP_OUTPUT_BYTES`].

use serde::{Deserialize, Serialize};

use super::request::{ApprovalMode, Decision, ReviewStage};

/// The size every step result stays under whatever the request, serialized: a small fraction
/// of Step Functions' 256 KiB state limit, so the state as a whole stays far below it.
pub const MAX_STEP_OUTPUT_BYTES: usize = 8 * 1024;

/// The input of one workflow execution, built by `start-workflow`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowInput {
    /// The request as the workflow saves it.
    pub request: WorkflowRequest,
    /// Project configuration captured at intake, so a running execution is not affected by
    /// a later configuration change.
    pub config: WorkflowConfig,
}

/// The request fields the workflow needs, normalised from the SWB message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowRequest {
    /// SWB submission id; also the execution name.
    pub egress_request_id: String,
    /// SWB egress store id.
    pub swb_egress_store_id: String,
    /// SWB egress store display name.
    pub egress_store_name: String,
    /// SWB workspace id.
    pub workspace_id: String,
    /// SWB project id.
    pub project_id: String,
    /// SWB user id of the submitter.
    pub requested_by: String,
    /// Who is told the outcome: the submitter's e-mail, else the store owner's; empty when
    /// SWB sent neither (then only the admin is told).
    pub requested_by_email: String,
    /// The store owner's e-mail, or empty.
    pub store_owner_email: String,
    /// Submission time (SWB `updated_at`).
    pub requested_dt: String,
    /// SWB egress store bucket.
    pub s3_egress_store_bucket: String,
    /// Store prefix, always ending in `/`.
    pub s3_egress_store_bucket_path: String,
    /// `arn:aws:s3:::bucket/key` of the snapshot file.
    pub s3_egress_store_object_list_location: String,
    /// Snapshot version.
    pub s3_swb_object_metadata_version: u32,
}

/// Configuration captured at intake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowConfig {
    /// `single` or `dual`.
    pub approval_mode: ApprovalMode,
    /// Kept for the web app.
    pub is_single_approval_enabled: bool,
    /// Cognito group of Information Governance reviewers.
    pub ig_reviewer_group: String,
    /// Cognito group of Research IT reviewers.
    pub rit_reviewer_group: String,
    /// Seconds a stage may wait for a decision before the request expires.
    pub review_timeout_seconds: u64,
    /// Where reviewers open the web app (used in notifications).
    pub app_url: String,
}

/// `copy-to-staging` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagingInput {
    /// The request.
    pub egress_request_id: String,
    /// SWB workspace id (first segment of the staging prefix).
    pub workspace_id: String,
    /// SWB egress store bucket.
    pub s3_egress_store_bucket: String,
    /// Store prefix inside that bucket.
    pub s3_egress_store_bucket_path: String,
    /// `arn:aws:s3:::bucket/key` of the snapshot file.
    pub s3_egress_store_object_list_location: String,
}

/// `copy-to-staging` output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagingResult {
    /// Files staged (folder markers excluded).
    pub file_count: u64,
    /// Bytes staged.
    pub total_bytes: u64,
    /// A bounded summary of the file types, for the reviewers' notification: the ten most
    /// common lower-case extensions (at most 16 ASCII letters or digits each; `(none)` for
    /// files without one), most files first, then ` +N other` when there are more, e.g.
    /// `csv, png, (none)`. A string because the workflow interpolates it with `States.Format`.
    pub file_types: String,
    /// Distinct file types in all.
    #[serde(default)]
    pub file_type_count: u64,
    /// Staging bucket.
    pub staging_bucket: String,
    /// `<workspace_id>/<egress_request_id>/`.
    pub staging_prefix: String,
    /// Key of the manifest in the staging bucket.
    pub manifest_key: String,
}

/// One staged file in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Path relative to the store prefix; the path inside the archive.
    pub path: String,
    /// Source key in the SWB egress store bucket.
    pub source_key: String,
    /// Source version id (the one submitted).
    pub version_id: String,
    /// Bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
}

/// What was staged for a request; stored in the staging bucket and inside the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The request.
    pub egress_request_id: String,
    /// SWB workspace id.
    pub workspace_id: String,
    /// Source bucket.
    pub source_bucket: String,
    /// Snapshot the files came from.
    pub snapshot_location: String,
    /// One entry per file, sorted by path.
    pub files: Vec<ManifestEntry>,
}

/// `record-task-token` input (the `.waitForTaskToken` payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordTaskTokenInput {
    /// `$$.Task.Token`. Never logged.
    pub task_token: String,
    /// The request.
    pub egress_request_id: String,
    /// The stage now waiting.
    pub stage: ReviewStage,
    /// The group whose members may decide it.
    pub reviewer_group: String,
}

impl std::fmt::Display for RecordTaskTokenInput {
    /// Redacts the token, so the payload can appear in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RecordTaskTokenInput {{ egress_request_id: {}, stage: {}, reviewer_group: {}, task_token: <redacted> }}",
            self.egress_request_id, self.stage, self.reviewer_group
        )
    }
}

/// `record-task-token` output (ignored by the workflow: the task completes through
/// `SendTaskSuccess`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordTaskTokenOutput {
    /// The request.
    pub egress_request_id: String,
    /// The stage now waiting.
    pub stage: ReviewStage,
}

/// The task output the API sends with `SendTaskSuccess`, built server-side from the
/// verified caller and the stored request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewOutcome {
    /// The stage decided.
    pub stage: ReviewStage,
    /// The decision.
    pub decision: Decision,
    /// Reviewer's username (from the token); the request's `updated_by`.
    pub reviewer: String,
    /// Reviewer's display name (from the user pool); the stage's `*_reviewer_*_name`.
    pub reviewer_name: String,
    /// Reviewer's Cognito `sub`; the stage's `*_reviewer_*_sub` (separation of duties).
    pub reviewer_sub: String,
    /// Reviewer's e-mail (from the token).
    pub reviewer_email: String,
    /// When (server clock, ISO-8601).
    pub decided_at: String,
    /// The reviewer's reason.
    pub reason: String,
}

/// `handle-rejection` input: also used for clean-up on expiry and failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupInput {
    /// The request.
    pub egress_request_id: String,
    /// SWB workspace id.
    pub workspace_id: String,
}

/// `handle-rejection` output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupResult {
    /// Objects (all versions) deleted from staging.
    pub deleted_objects: u64,
}

/// `copy-to-datalake` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveInput {
    /// The request.
    pub egress_request_id: String,
    /// SWB workspace id.
    pub workspace_id: String,
}

/// `copy-to-datalake` output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveResult {
    /// Datalake bucket.
    pub bucket: String,
    /// `approved_egress/<workspace_id>/<egress_request_id>/egress_data.zip`.
    pub key: String,
    /// Archive size in bytes.
    pub size: u64,
    /// Files in the archive (the manifest excluded).
    pub file_count: u64,
    /// Staged objects removed after the upload completed.
    pub deleted_staged_objects: u64,
    /// False when the invocation ran out of time and saved its place (`size` is then the
    /// bytes written so far): the state machine invokes the step again.
    pub complete: bool,
}

/// What `notify-requester` tells the requester: that the request was received, or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Outcome {
    /// Received and staged; now waiting for review (not an end: the early e-mail).
    Received,
    /// Approved; the archive is in the datalake.
    Approved,
    /// Rejected by a reviewer.
    Rejected,
    /// No decision in time.
    Expired,
    /// The workflow failed.
    Failed,
}

/// `notify-requester` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyInput {
    /// The request (the rest is read from the store).
    pub egress_request_id: String,
    /// How it ended.
    pub outcome: Outcome,
    /// On the failure path: whether `copy-to-datalake` had written the approved archive
    /// before the failure (the workflow's `$.archive`), so the e-mail does not claim that no
    /// data left the TRE. Absent (false) on the other outcomes.
    #[serde(default)]
    pub archive_written: bool,
    /// Where the researcher opens the TRE: the workflow's `$.config.app_url`, so the one
    /// source is `start-workflow`'s `APP_URL`. Empty (no link) when not configured.
    #[serde(default)]
    pub app_url: String,
    /// Seconds each review stage may wait (the workflow's `$.config.review_timeout_seconds`),
    /// for the received e-mail's expected review time. Absent (0) on the other outcomes.
    #[serde(default)]
    pub review_timeout_seconds: u64,
}

/// `notify-requester` output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyResult {
    /// Whom the e-mail went to; empty when the request has no requester e-mail.
    pub recipients: Vec<String>,
    /// SES message id, when sent.
    pub message_id: Option<String>,
}
