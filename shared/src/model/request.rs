//! The egress request as this service stores it, and its vocabulary: statuses, approval
//! modes, review stages and decisions.
//!
//! Attribute names follow the TREEHOOSE web app's `Request` type (DESIGN.md §2.4) so the API
//! maps items to GraphQL with no renaming; the server-only attributes (the Step Functions
//! task token, reviewer subs, the audit of staging) are never returned to a client as such.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::EgressError;

/// The constant partition key of the `listRequests` index: one project per table, so all
/// requests share it and the index sort key orders them by submission time.
pub const RECORD_TYPE: &str = "EGRESS_REQUEST";

/// `egress_status` values (DESIGN.md §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EgressStatus {
    /// Submitted and not yet decided (shown as pending by the web app).
    Processing,
    /// Approved by Information Governance (final in single mode).
    #[serde(rename = "IGAPPROVED")]
    IgApproved,
    /// Approved by Research IT (final in dual mode).
    #[serde(rename = "RITAPPROVED")]
    RitApproved,
    /// Rejected at either stage.
    Rejected,
    /// The workflow failed; staged data was cleaned up and SWB returned to `PENDING`.
    Failed,
    /// No decision within the review timeout.
    Expired,
    /// An approved release withdrawn by an admin (`revokeRelease`): no longer downloadable,
    /// its archive moved out of the downloadable location.
    Revoked,
}

impl EgressStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EgressStatus::Processing => "PROCESSING",
            EgressStatus::IgApproved => "IGAPPROVED",
            EgressStatus::RitApproved => "RITAPPROVED",
            EgressStatus::Rejected => "REJECTED",
            EgressStatus::Failed => "FAILED",
            EgressStatus::Expired => "EXPIRED",
            EgressStatus::Revoked => "REVOKED",
        }
    }
}

impl fmt::Display for EgressStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EgressStatus {
    type Err = EgressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "PROCESSING" => EgressStatus::Processing,
            "IGAPPROVED" => EgressStatus::IgApproved,
            "RITAPPROVED" => EgressStatus::RitApproved,
            "REJECTED" => EgressStatus::Rejected,
            "FAILED" => EgressStatus::Failed,
            "EXPIRED" => EgressStatus::Expired,
            "REVOKED" => EgressStatus::Revoked,
            other => {
                return Err(EgressError::validation(format!(
                    "unknown egress_status {other:?}"
                )))
            }
        })
    }
}

/// How many approvals a project needs. Normalised once, at intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalMode {
    /// Information Governance only.
    Single,
    /// Information Governance, then Research IT.
    Dual,
}

impl ApprovalMode {
    /// The wire name (`single` / `dual`).
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalMode::Single => "single",
            ApprovalMode::Dual => "dual",
        }
    }
}

impl FromStr for ApprovalMode {
    type Err = EgressError;

    /// Case-insensitive; surrounding blanks ignored; anything else is refused by name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "single" => Ok(ApprovalMode::Single),
            "dual" => Ok(ApprovalMode::Dual),
            _ => Err(EgressError::validation(format!(
                "approval mode {s:?} is not valid: expected \"single\" or \"dual\""
            ))),
        }
    }
}

impl fmt::Display for ApprovalMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The review stage a request waits at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ReviewStage {
    /// Information Governance, the first group.
    Ig,
    /// Research IT, the second group (dual mode only).
    Rit,
}

impl ReviewStage {
    /// The wire name (`IG` / `RIT`).
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStage::Ig => "IG",
            ReviewStage::Rit => "RIT",
        }
    }
}

impl fmt::Display for ReviewStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reviewer's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Decision {
    /// Let the data out.
    Approved,
    /// Keep it in.
    Rejected,
}

impl Decision {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approved => "APPROVED",
            Decision::Rejected => "REJECTED",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Decision {
    type Err = EgressError;

    /// Exact (upper case) values only, as the web app sends them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "APPROVED" => Ok(Decision::Approved),
            "REJECTED" => Ok(Decision::Rejected),
            _ => Err(EgressError::validation(format!(
                "decision {s:?} is not valid: expected \"APPROVED\" or \"REJECTED\""
            ))),
        }
    }
}

/// One item of the requests table.
///
/// Written first by the workflow's `SaveRequest` state (DynamoDB `PutItem`), then updated by
/// the workflow and the API. Optional fields are absent until the step that sets them ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EgressRequest {
    /// Partition key; SWB's submission id.
    pub egress_request_id: String,
    /// Always [`RECORD_TYPE`]; partition key of the `listRequests` index.
    #[serde(default = "default_record_type")]
    pub record_type: String,
    /// SWB egress store display name.
    pub egress_store_name: String,
    /// SWB egress store id (key of the SWB table item).
    pub swb_egress_store_id: String,
    /// SWB project id.
    pub project_id: String,
    /// SWB workspace id.
    pub workspace_id: String,
    /// SWB user id of the submitter.
    pub requested_by: String,
    /// Who to tell about the outcome: the submitter's e-mail, else the store owner's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by_email: Option<String>,
    /// The store owner's e-mail, when SWB sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_owner_email: Option<String>,
    /// Submission time (ISO-8601); sort key of the `listRequests` index.
    pub requested_dt: String,
    /// Last writer: SWB user id at submission, then the reviewer's username.
    pub updated_by: String,
    /// Last update time (ISO-8601).
    pub updated_dt: String,
    /// Current status.
    pub egress_status: EgressStatus,
    /// SWB egress store bucket.
    pub s3_egress_store_bucket: String,
    /// Store prefix inside that bucket.
    pub s3_egress_store_bucket_path: String,
    /// `arn:aws:s3:::bucket/key` of SWB's snapshot file.
    pub s3_egress_store_object_list_location: String,
    /// SWB snapshot version.
    pub s3_swb_object_metadata_version: u32,
    /// `single` or `dual`.
    pub approval_mode: ApprovalMode,
    /// Kept for the web app; derived from `approval_mode`.
    pub is_single_approval_enabled: bool,
    /// The stage awaiting a decision, set by `record-task-token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_stage: Option<ReviewStage>,
    /// The Cognito group whose members may decide the current stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_reviewer_group: Option<String>,
    /// The Step Functions task token of the current stage. Server-only: never returned by
    /// the API, never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sfn_task_token: Option<String>,
    /// The task token of a decision claimed but not yet confirmed delivered to the workflow
    /// (moved here from `sfn_task_token` by the claim, removed once Step Functions answered).
    /// If the API dies between the claim and the delivery, the decision can still be
    /// delivered from it (`ReviewService::deliver_pending`). Server-only, like the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_task_token: Option<String>,
    /// Opaque per-stage handle returned to the web app as `task_token`; the API uses it as
    /// an optimistic-concurrency check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_handle: Option<String>,

    /// First-stage reviewer, from verified token claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ig_reviewer_1_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub ig_reviewer_1_email: Option<String>,
    /// Cognito `sub` of the first-stage reviewer (separation of duties).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ig_reviewer_1_sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub ig_reviewer_1_dt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub ig_reviewer_1_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub ig_reviewer_1_decision: Option<Decision>,

    /// Second-stage reviewer, from verified token claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rit_reviewer_2_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub rit_reviewer_2_email: Option<String>,
    /// Cognito `sub` of the second-stage reviewer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rit_reviewer_2_sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub rit_reviewer_2_dt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub rit_reviewer_2_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub rit_reviewer_2_decision: Option<Decision>,

    /// Version id of the staging manifest object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_staging_object_metadata_version: Option<String>,
    /// Key of the staging manifest in the staging bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging_manifest_key: Option<String>,
    /// Files staged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged_file_count: Option<u64>,
    /// Bytes staged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged_total_bytes: Option<u64>,
    /// The staged file types' bounded summary (`StagingResult::file_types`). Items staged
    /// before the summary held a list of every type; it is read as the list joined.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "summary_or_list"
    )]
    pub staged_file_types: Option<String>,
    /// Datalake key of the approved archive, once written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_key: Option<String>,
    /// Downloads so far; counted server-side.
    #[serde(default)]
    pub download_count: u32,
    /// Error name of a failed workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_error: Option<String>,
    /// Error message of a failed workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_cause: Option<String>,
    /// The output checks' verdict (`pass`, `review` or `block`; the workflow's `SaveChecks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks_verdict: Option<String>,
    /// The checks' one-line summary: verdict, counts by rule, the worst files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks_summary: Option<String>,
    /// The version of the checks' policy that made the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks_policy_version: Option<String>,
    /// `advise` or `enforce`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks_mode: Option<String>,
    /// Key of the checks' JSON report in the staging bucket (beside the manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks_report_key: Option<String>,
    /// Set when the checks rejected the request (enforce mode): which files and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks_rejection_reason: Option<String>,
}

fn default_record_type() -> String {
    RECORD_TYPE.to_string()
}

/// Reads a file-type summary, or the list older items hold, joined with `, `.
fn summary_or_list<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum SummaryOrList {
        Summary(String),
        List(Vec<String>),
    }
    Ok(
        Option::<SummaryOrList>::deserialize(deserializer)?.map(|v| match v {
            SummaryOrList::Summary(s) => s,
            SummaryOrList::List(l) => l.join(", "),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with_types(types: serde_json::Value) -> EgressRequest {
        let mut item =
            serde_json::to_value(crate::testdata::request("req-1", EgressStatus::Processing))
                .unwrap();
        item["staged_file_types"] = types;
        serde_json::from_value(item).unwrap()
    }

    #[test]
    fn when_an_item_holds_the_summary_or_an_older_list_then_both_read_as_the_summary() {
        assert_eq!(
            with_types(json!("csv, png +3 other"))
                .staged_file_types
                .as_deref(),
            Some("csv, png +3 other")
        );
        assert_eq!(
            with_types(json!(["csv", "png"]))
                .staged_file_types
                .as_deref(),
            Some("csv, png")
        );
        assert_eq!(with_types(json!(null)).staged_file_types, None);
    }

    #[test]
    fn when_a_dynamodb_item_holds_an_older_list_then_it_is_read() {
        use aws_sdk_dynamodb::types::AttributeValue;
        let mut item: std::collections::HashMap<String, AttributeValue> =
            serde_dynamo::to_item(crate::testdata::request("req-1", EgressStatus::Processing))
                .unwrap();
        item.insert(
            "staged_file_types".into(),
            AttributeValue::L(vec![AttributeValue::S("csv".into())]),
        );
        let request: EgressRequest = serde_dynamo::from_item(item).unwrap();
        assert_eq!(request.staged_file_types.as_deref(), Some("csv"));
    }
}
