//! Fakes of the sweep's ports: the two tables, the executions, open uploads and SNS.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::error::Result;
use crate::model::{EgressRequest, ExecutionInfo, NoticeMarks, SwbStoreItem};
use crate::ports::{
    Executions, ListedUpload, NoticeClaim, Publisher, RequestEnd, SweepStore, UploadListing,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The requests table (with the sweep's marks) and SWB's store table, in memory, with the
/// DynamoDB adapter's conditions.
#[derive(Debug, Default)]
pub struct InMemorySweepStore {
    /// Requests and their marks, by id.
    pub requests: Mutex<BTreeMap<String, (EgressRequest, NoticeMarks)>>,
    /// SWB store items, by id.
    pub stores: Mutex<BTreeMap<String, SwbStoreItem>>,
}

impl InMemorySweepStore {
    /// Inserts or replaces a request (marks kept).
    pub fn put(&self, request: EgressRequest) {
        let mut items = lock(&self.requests);
        let marks = items
            .remove(&request.egress_request_id)
            .map(|(_, m)| m)
            .unwrap_or_default();
        items.insert(request.egress_request_id.clone(), (request, marks));
    }

    /// Inserts or replaces an SWB store item.
    pub fn put_store(&self, store: SwbStoreItem) {
        lock(&self.stores).insert(store.id.clone(), store);
    }

    /// A copy of a request and its marks.
    pub fn get(&self, id: &str) -> Option<(EgressRequest, NoticeMarks)> {
        lock(&self.requests).get(id).cloned()
    }

    /// A copy of an SWB store item.
    pub fn store(&self, id: &str) -> Option<SwbStoreItem> {
        lock(&self.stores).get(id).cloned()
    }
}

impl SweepStore for InMemorySweepStore {
    async fn with_status(&self, status: crate::model::EgressStatus) -> Result<Vec<EgressRequest>> {
        Ok(lock(&self.requests)
            .values()
            .filter(|(r, _)| r.egress_status == status)
            .map(|(r, _)| r.clone())
            .collect())
    }

    async fn with_status_since(
        &self,
        status: crate::model::EgressStatus,
        since: &str,
    ) -> Result<Vec<EgressRequest>> {
        Ok(lock(&self.requests)
            .values()
            .filter(|(r, _)| r.egress_status == status && r.requested_dt.as_str() >= since)
            .map(|(r, _)| r.clone())
            .collect())
    }

    async fn settle_decision(&self, id: &str, task_token: &str) -> Result<bool> {
        let mut items = lock(&self.requests);
        match items.get_mut(id) {
            Some((r, _)) if r.pending_task_token.as_deref() == Some(task_token) => {
                r.pending_task_token = None;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn marked(&self, id: &str) -> Result<Option<(EgressRequest, NoticeMarks)>> {
        Ok(self.get(id))
    }

    async fn claim_notice(&self, c: &NoticeClaim<'_>) -> Result<bool> {
        let mut items = lock(&self.requests);
        let Some((r, m)) = items.get_mut(c.egress_request_id) else {
            return Ok(false);
        };
        if r.review_handle.as_deref() != Some(c.handle) || r.egress_status != c.awaiting_status {
            return Ok(false);
        }
        let (handle, count, dt) = match c.kind {
            "reminder" => (
                &mut m.reminder_handle,
                Some(&mut m.reminders_sent),
                &mut m.last_reminded_dt,
            ),
            "escalation" => (&mut m.escalation_handle, None, &mut m.escalated_dt),
            _ => (&mut m.expiry_warning_handle, None, &mut m.expiry_warned_dt),
        };
        if handle.as_deref() != c.previous_handle {
            return Ok(false);
        }
        if let Some(count) = count {
            if c.previous_handle.is_some() && *count != c.previous_count {
                return Ok(false);
            }
            *count = c.count;
        }
        *handle = Some(c.handle.to_string());
        *dt = Some(c.at.to_string());
        Ok(true)
    }

    async fn end_request(&self, e: &RequestEnd<'_>) -> Result<bool> {
        let mut items = lock(&self.requests);
        let Some((r, _)) = items.get_mut(e.egress_request_id) else {
            return Ok(false);
        };
        if r.egress_status != e.from {
            return Ok(false);
        }
        r.egress_status = e.to;
        if let Some((error, cause)) = e.failure {
            r.failure_error = Some(error.to_string());
            r.failure_cause = Some(cause.to_string());
        }
        r.sfn_task_token = None;
        r.review_handle = None;
        r.updated_dt = e.at.to_string();
        Ok(true)
    }

    async fn processing_stores(&self) -> Result<Vec<SwbStoreItem>> {
        Ok(lock(&self.stores)
            .values()
            .filter(|s| s.status.as_deref() == Some("PROCESSING"))
            .cloned()
            .collect())
    }

    async fn release_store(&self, store_id: &str, lock_id: &str, to: &str) -> Result<bool> {
        let mut stores = lock(&self.stores);
        let Some(s) = stores.get_mut(store_id) else {
            return Ok(false);
        };
        if s.lock.as_deref() != Some(lock_id) || s.status.as_deref() != Some("PROCESSING") {
            return Ok(false);
        }
        s.status = Some(to.to_string());
        s.lock = None;
        Ok(true)
    }
}

/// Executions by name.
#[derive(Debug, Default)]
pub struct FakeExecutions {
    /// The executions.
    pub executions: Mutex<BTreeMap<String, ExecutionInfo>>,
}

impl FakeExecutions {
    /// Sets how execution `name` stands.
    pub fn set(&self, name: &str, info: ExecutionInfo) {
        lock(&self.executions).insert(name.to_string(), info);
    }
}

impl Executions for FakeExecutions {
    async fn describe(&self, name: &str) -> Result<Option<ExecutionInfo>> {
        Ok(lock(&self.executions).get(name).cloned())
    }
}

/// A fixed list of open uploads (abort them through the object store).
#[derive(Debug, Default)]
pub struct FakeUploadListing {
    /// The uploads listed.
    pub uploads: Mutex<Vec<ListedUpload>>,
}

impl UploadListing for FakeUploadListing {
    async fn open_uploads(&self, bucket: &str) -> Result<Vec<ListedUpload>> {
        Ok(lock(&self.uploads)
            .iter()
            .filter(|u| u.bucket == bucket)
            .cloned()
            .collect())
    }
}

/// Keeps what was published: (topic, subject, message).
#[derive(Debug, Default)]
pub struct RecordingPublisher {
    /// Every publication.
    pub published: Mutex<Vec<(String, String, String)>>,
}

impl RecordingPublisher {
    /// A copy of the publications.
    pub fn all(&self) -> Vec<(String, String, String)> {
        lock(&self.published).clone()
    }
}

impl Publisher for RecordingPublisher {
    async fn publish(&self, topic_arn: &str, subject: &str, message: &str) -> Result<String> {
        let mut p = lock(&self.published);
        p.push((
            topic_arn.to_string(),
            subject.to_string(),
            message.to_string(),
        ));
        Ok(format!("message-{}", p.len()))
    }
}
