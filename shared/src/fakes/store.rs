//! Fakes of the requests table, the audit log and the mailer.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::{EgressError, Result};
use crate::model::{EgressRequest, StagingResult};
use crate::ports::{AuditEvent, AuditLog, Email, Mailer, PendingReview, RequestStore};

/// A requests table in memory, with the same conditions as the DynamoDB adapter.
#[derive(Debug, Default)]
pub struct InMemoryRequestStore {
    /// The items, by id.
    pub items: Mutex<HashMap<String, EgressRequest>>,
}

impl InMemoryRequestStore {
    /// A store holding `requests`.
    pub fn with(requests: impl IntoIterator<Item = EgressRequest>) -> Self {
        let store = Self::default();
        for r in requests {
            store.put(r);
        }
        store
    }

    /// Inserts or replaces an item.
    pub fn put(&self, request: EgressRequest) {
        self.lock()
            .insert(request.egress_request_id.clone(), request);
    }

    /// A copy of an item.
    pub fn item(&self, id: &str) -> Option<EgressRequest> {
        self.lock().get(id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, EgressRequest>> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut EgressRequest) -> Result<()>) -> Result<()> {
        let mut items = self.lock();
        let item = items
            .get_mut(id)
            .ok_or_else(|| EgressError::NotFound(format!("egress request {id} does not exist")))?;
        f(item)
    }
}

impl RequestStore for InMemoryRequestStore {
    async fn get(&self, egress_request_id: &str) -> Result<Option<EgressRequest>> {
        Ok(self.item(egress_request_id))
    }

    async fn record_pending_review(&self, p: &PendingReview<'_>) -> Result<()> {
        self.update(p.egress_request_id, |item| {
            if item.egress_status != p.awaiting_status {
                return Err(EgressError::Conflict(format!(
                    "egress request {} is {} and cannot take this update",
                    p.egress_request_id, item.egress_status
                )));
            }
            item.sfn_task_token = Some(p.task_token.to_string());
            item.review_handle = Some(p.review_handle.to_string());
            item.review_stage = Some(p.stage);
            item.current_reviewer_group = Some(p.reviewer_group.to_string());
            item.updated_dt = p.at.to_string();
            Ok(())
        })
    }

    async fn record_staging(
        &self,
        egress_request_id: &str,
        staging: &StagingResult,
        manifest_version: Option<&str>,
        at: &str,
    ) -> Result<()> {
        self.update(egress_request_id, |item| {
            item.staged_file_count = Some(staging.file_count);
            item.staged_total_bytes = Some(staging.total_bytes);
            item.staged_file_types = Some(staging.file_types.clone());
            item.staging_manifest_key = Some(staging.manifest_key.clone());
            item.s3_staging_object_metadata_version =
                Some(manifest_version.unwrap_or("null").to_string());
            item.updated_dt = at.to_string();
            Ok(())
        })
    }

    async fn record_archive(
        &self,
        egress_request_id: &str,
        archive_key: &str,
        at: &str,
    ) -> Result<()> {
        self.update(egress_request_id, |item| {
            item.archive_key = Some(archive_key.to_string());
            item.updated_dt = at.to_string();
            Ok(())
        })
    }
}

/// An audit log in memory, chained like the real one.
#[derive(Debug, Default)]
pub struct InMemoryAuditLog {
    /// Events in append order.
    pub events: Mutex<Vec<AuditEvent>>,
    /// Each event's link, in the same order.
    pub links: Mutex<Vec<crate::evidence::chain::ChainLink>>,
    /// `(request, once key)` of the events appended with [`AuditLog::append_once`].
    pub once: Mutex<std::collections::HashSet<(String, String)>>,
}

impl InMemoryAuditLog {
    /// A copy of the events.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl AuditLog for InMemoryAuditLog {
    async fn append(&self, event: &AuditEvent) -> Result<()> {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        let head = events
            .iter()
            .zip(links.iter())
            .rev()
            .find(|(e, _)| e.egress_request_id == event.egress_request_id)
            .map(|(_, l)| crate::ports::ChainHead {
                seq: l.seq,
                hash: l.hash.clone(),
            });
        links.push(crate::evidence::chain::next_link(event, head.as_ref()));
        events.push(event.clone());
        Ok(())
    }

    async fn append_once(&self, event: &AuditEvent, once: &str) -> Result<crate::ports::Appended> {
        let fresh = self
            .once
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((event.egress_request_id.clone(), once.to_string()));
        if !fresh {
            return Ok(crate::ports::Appended::Already);
        }
        self.append(event).await?;
        Ok(crate::ports::Appended::Now)
    }

    async fn trail(&self, egress_request_id: &str) -> Result<crate::ports::AuditTrail> {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        let mut trail = crate::ports::AuditTrail::default();
        for (i, (event, link)) in events.iter().zip(links.iter()).enumerate() {
            if event.egress_request_id == egress_request_id {
                trail.locks.push(crate::ports::ChainHead {
                    seq: link.seq,
                    hash: link.hash.clone(),
                });
                trail.events.push(crate::evidence::chain::StoredEvent {
                    event_key: format!("{}#{i:06}", event.at),
                    event: event.clone(),
                    link: Some(link.clone()),
                });
            }
        }
        Ok(trail)
    }

    async fn head(&self, egress_request_id: &str) -> Result<Option<crate::ports::ChainHead>> {
        Ok(self.trail(egress_request_id).await?.locks.pop())
    }
}

/// A mailer that records what it was asked to send.
#[derive(Debug, Default)]
pub struct RecordingMailer {
    /// E-mails in send order.
    pub sent: Mutex<Vec<Email>>,
}

impl RecordingMailer {
    /// A copy of the e-mails sent.
    pub fn sent(&self) -> Vec<Email> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Mailer for RecordingMailer {
    async fn send(&self, email: &Email) -> Result<String> {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        sent.push(email.clone());
        Ok(format!("message-{}", sent.len()))
    }
}
