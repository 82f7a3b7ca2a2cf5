//! Builders of realistic model values for tests (feature `mocks`).

use crate::model::{ApprovalMode, EgressRequest, EgressStatus, RECORD_TYPE};

/// A request as the workflow saves it, in `status`, single-approval mode.
pub fn request(id: &str, status: EgressStatus) -> EgressRequest {
    EgressRequest {
        egress_request_id: id.to_string(),
        record_type: RECORD_TYPE.to_string(),
        egress_store_name: "covid-analysis-egress".into(),
        swb_egress_store_id: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
        project_id: "project-alpha".into(),
        workspace_id: "1637e3f6-5d2c-4d52-9a41-3f1b2c3d4e5f".into(),
        requested_by: "u-submitter".into(),
        requested_by_email: Some("submitter@example.org".into()),
        store_owner_email: Some("owner@example.org".into()),
        requested_dt: "2024-03-02T08:00:00.000Z".into(),
        updated_by: "u-submitter".into(),
        updated_dt: "2024-03-02T08:00:00.000Z".into(),
        egress_status: status,
        s3_egress_store_bucket: "swb-egress-store".into(),
        s3_egress_store_bucket_path: "1637e3f6-5d2c-4d52-9a41-3f1b2c3d4e5f/".into(),
        s3_egress_store_object_list_location:
            "arn:aws:s3:::swb-egress-notify/0f8fad5b-d9cb-469f-a165-70867728950e/ver1.json".into(),
        s3_swb_object_metadata_version: 1,
        approval_mode: ApprovalMode::Single,
        is_single_approval_enabled: true,
        review_stage: None,
        current_reviewer_group: None,
        sfn_task_token: None,
        review_handle: None,
        pending_task_token: None,
        ig_reviewer_1_name: None,
        ig_reviewer_1_email: None,
        ig_reviewer_1_sub: None,
        ig_reviewer_1_dt: None,
        ig_reviewer_1_reason: None,
        ig_reviewer_1_decision: None,
        rit_reviewer_2_name: None,
        rit_reviewer_2_email: None,
        rit_reviewer_2_sub: None,
        rit_reviewer_2_dt: None,
        rit_reviewer_2_reason: None,
        rit_reviewer_2_decision: None,
        s3_staging_object_metadata_version: None,
        staging_manifest_key: None,
        staged_file_count: None,
        staged_total_bytes: None,
        staged_file_types: None,
        archive_key: None,
        download_count: 0,
        failure_error: None,
        failure_cause: None,
        checks_verdict: None,
        checks_summary: None,
        checks_policy_version: None,
        checks_mode: None,
        checks_report_key: None,
        checks_rejection_reason: None,
    }
}

/// The same request in dual-approval mode.
pub fn dual_request(id: &str, status: EgressStatus) -> EgressRequest {
    EgressRequest {
        approval_mode: ApprovalMode::Dual,
        is_single_approval_enabled: false,
        ..request(id, status)
    }
}
