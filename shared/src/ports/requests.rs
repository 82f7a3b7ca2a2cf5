//! The requests table, as the workflow functions use it.

use std::future::Future;

use crate::error::Result;
use crate::model::{EgressRequest, EgressStatus, ReviewStage, StagingResult};

/// The server-side state of a review stage, written when the workflow parks on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingReview<'a> {
    /// The request.
    pub egress_request_id: &'a str,
    /// The stage now waiting.
    pub stage: ReviewStage,
    /// The status the request must have for this stage to wait (the write is conditional).
    pub awaiting_status: EgressStatus,
    /// The group whose members may decide it.
    pub reviewer_group: &'a str,
    /// The Step Functions task token (server-only).
    pub task_token: &'a str,
    /// A fresh opaque handle for the web app.
    pub review_handle: &'a str,
    /// Now, ISO-8601.
    pub at: &'a str,
}

/// Reads and updates request items for the workflow steps.
pub trait RequestStore: Send + Sync {
    /// The request, if it exists.
    fn get(
        &self,
        egress_request_id: &str,
    ) -> impl Future<Output = Result<Option<EgressRequest>>> + Send;

    /// Stores the task token, stage, group and handle. Fails with `NotFound` when the
    /// request does not exist (never creates an item).
    fn record_pending_review(
        &self,
        pending: &PendingReview<'_>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Records what was staged. Fails with `NotFound` when the request does not exist.
    fn record_staging(
        &self,
        egress_request_id: &str,
        staging: &StagingResult,
        manifest_version: Option<&str>,
        at: &str,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Records where the approved archive was written.
    fn record_archive(
        &self,
        egress_request_id: &str,
        archive_key: &str,
        at: &str,
    ) -> impl Future<Output = Result<()>> + Send;
}
