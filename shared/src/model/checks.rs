//! The `check-outputs` step's input and output (issue 12).

use serde::{Deserialize, Serialize};

/// `check-outputs` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksInput {
    /// The request.
    pub egress_request_id: String,
    /// SWB workspace id (first segment of the staging prefix).
    pub workspace_id: String,
    /// SWB project id: selects the project's policy (absent: the default policy).
    #[serde(default)]
    pub project_id: String,
}

/// `check-outputs` output: bounded whatever the request (the per-file report is in S3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksResult {
    /// `pass`, `review` or `block`.
    pub verdict: String,
    /// One line for notifications and the request item: verdict, counts by rule, the worst
    /// files (at most about 1.5 KiB).
    pub summary: String,
    /// The policy's version.
    pub policy_version: String,
    /// `advise` or `enforce`.
    pub mode: String,
    /// Files (and archive entries) checked.
    pub files_checked: u64,
    /// Key of the JSON report in the staging bucket, next to the manifest.
    pub report_key: String,
    /// True when the policy is `enforce` and a finding blocks: the workflow rejects the
    /// request with [`rejection_reason`](Self::rejection_reason).
    pub auto_reject: bool,
    /// What the researcher is told on an automatic rejection: which files and why (at most
    /// about 2 KiB); empty otherwise.
    pub rejection_reason: String,
    /// Files the malware scanner tagged `THREATS_FOUND`: the workflow alerts the admin.
    #[serde(default)]
    pub malware_threats: u64,
}
