//! What the reconciliation sweep needs beyond the workflow's ports: the requests and SWB's
//! store as a whole, the executions, open multipart uploads, and the SNS topics.

use std::future::Future;

use time::OffsetDateTime;

use crate::error::Result;
use crate::model::{EgressRequest, EgressStatus, ExecutionInfo, NoticeMarks, SwbStoreItem};

/// The conditional record of one notice, written before it is sent: only the sweep whose
/// write wins sends it, so concurrent sweeps never send a notice twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeClaim<'a> {
    /// The request.
    pub egress_request_id: &'a str,
    /// `reminder`, `escalation` or `expiry_warning` (selects the attributes).
    pub kind: &'a str,
    /// The stage's handle, which the request must still carry (no notice after a decision).
    pub handle: &'a str,
    /// The status the stage waits in, which the request must still have.
    pub awaiting_status: EgressStatus,
    /// The mark's handle as read (`None`: the mark was never written).
    pub previous_handle: Option<&'a str>,
    /// The reminder count as read (reminders only).
    pub previous_count: u32,
    /// The count to record (reminders only).
    pub count: u32,
    /// Now, ISO-8601.
    pub at: &'a str,
}

/// How a request is ended by a repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestEnd<'a> {
    /// The request.
    pub egress_request_id: &'a str,
    /// The status it must still have (read by the sweep).
    pub from: EgressStatus,
    /// The status it takes (`FAILED` or `EXPIRED`).
    pub to: EgressStatus,
    /// Error name and cause, for `FAILED`.
    pub failure: Option<(&'a str, &'a str)>,
    /// Now, ISO-8601.
    pub at: &'a str,
}

/// The requests table and SWB's store table, as the sweep reads and repairs them.
pub trait SweepStore: Send + Sync {
    /// Every request with `status` (all pages of the `by-status` index; the index does not
    /// carry the sweep's marks).
    fn with_status(
        &self,
        status: EgressStatus,
    ) -> impl Future<Output = Result<Vec<EgressRequest>>> + Send;

    /// The requests with `status` submitted at or after `since` (ISO-8601): the index read
    /// with a bound on its sort key, so its cost follows the window, not the table.
    fn with_status_since(
        &self,
        status: EgressStatus,
        since: &str,
    ) -> impl Future<Output = Result<Vec<EgressRequest>>> + Send;

    /// Removes a claimed decision's pending task token once Step Functions answered its
    /// delivery, if the request still holds that token; `Ok(false)` otherwise.
    fn settle_decision(
        &self,
        egress_request_id: &str,
        task_token: &str,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// One request with the sweep's marks (strongly consistent), if it exists.
    fn marked(
        &self,
        egress_request_id: &str,
    ) -> impl Future<Output = Result<Option<(EgressRequest, NoticeMarks)>>> + Send;

    /// Records a notice if, atomically, the request still waits on the same stage and the
    /// mark is as read. `Ok(false)` when the condition failed (a decision, or another sweep).
    fn claim_notice(&self, claim: &NoticeClaim<'_>) -> impl Future<Output = Result<bool>> + Send;

    /// Ends a request if it still has `end.from`; `Ok(false)` otherwise.
    fn end_request(&self, end: &RequestEnd<'_>) -> impl Future<Output = Result<bool>> + Send;

    /// Every item of SWB's store table whose `status` is `PROCESSING`.
    fn processing_stores(&self) -> impl Future<Output = Result<Vec<SwbStoreItem>>> + Send;

    /// Sets the store's status to `to` and removes the lock, if the store still holds `lock`
    /// and is `PROCESSING`; `Ok(false)` otherwise.
    fn release_store(
        &self,
        store_id: &str,
        lock: &str,
        to: &str,
    ) -> impl Future<Output = Result<bool>> + Send;
}

/// The workflow's executions.
pub trait Executions: Send + Sync {
    /// The execution named `name` (the request id), or `None` when none exists.
    fn describe(&self, name: &str) -> impl Future<Output = Result<Option<ExecutionInfo>>> + Send;
}

/// An open multipart upload, as `ListMultipartUploads` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedUpload {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// S3's id of the upload.
    pub upload_id: String,
    /// When it was started.
    pub initiated: OffsetDateTime,
}

/// Listing the open multipart uploads of a bucket (aborting is
/// [`super::ObjectStore::abort_multipart`]).
pub trait UploadListing: Send + Sync {
    /// Every open upload of `bucket` (all pages).
    fn open_uploads(&self, bucket: &str) -> impl Future<Output = Result<Vec<ListedUpload>>> + Send;
}

/// Publishing to an SNS topic (the reviewers' and the admin's).
pub trait Publisher: Send + Sync {
    /// Publishes `message` with `subject` to `topic_arn`; returns the message id.
    fn publish(
        &self,
        topic_arn: &str,
        subject: &str,
        message: &str,
    ) -> impl Future<Output = Result<String>> + Send;
}
