//! Fakes of the reviewer API's ports: the review side of the in-memory requests table (same
//! conditions as the DynamoDB adapter, atomic under one lock), a user directory, presigned
//! links and a workflow that refuses to resume.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::error::{EgressError, Result};
use crate::model::{EgressRequest, EgressStatus, ReviewStage};
use crate::ports::{
    ClaimOutcome, ClaimedDecision, DecisionClaim, Delivery, DirectoryUser, DownloadCount,
    DownloadLinks, ListIndex, ListPage, ListPosition, ReviewStore, ReviewerDirectory,
    WorkflowCallbacks,
};

use super::InMemoryRequestStore;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn set_reviewer(item: &mut EgressRequest, claim: &DecisionClaim) {
    let (name, email, sub, dt, reason, decision) = match claim.stage {
        ReviewStage::Ig => (
            &mut item.ig_reviewer_1_name,
            &mut item.ig_reviewer_1_email,
            &mut item.ig_reviewer_1_sub,
            &mut item.ig_reviewer_1_dt,
            &mut item.ig_reviewer_1_reason,
            &mut item.ig_reviewer_1_decision,
        ),
        ReviewStage::Rit => (
            &mut item.rit_reviewer_2_name,
            &mut item.rit_reviewer_2_email,
            &mut item.rit_reviewer_2_sub,
            &mut item.rit_reviewer_2_dt,
            &mut item.rit_reviewer_2_reason,
            &mut item.rit_reviewer_2_decision,
        ),
    };
    *name = Some(claim.reviewer_name.clone());
    *email = Some(claim.reviewer_email.clone());
    *sub = Some(claim.reviewer_sub.clone());
    *dt = Some(claim.at.clone());
    *reason = Some(claim.reason.clone());
    *decision = Some(claim.decision);
}

fn clear_reviewer(item: &mut EgressRequest, stage: ReviewStage) {
    match stage {
        ReviewStage::Ig => {
            item.ig_reviewer_1_name = None;
            item.ig_reviewer_1_email = None;
            item.ig_reviewer_1_sub = None;
            item.ig_reviewer_1_dt = None;
            item.ig_reviewer_1_reason = None;
            item.ig_reviewer_1_decision = None;
        }
        ReviewStage::Rit => {
            item.rit_reviewer_2_name = None;
            item.rit_reviewer_2_email = None;
            item.rit_reviewer_2_sub = None;
            item.rit_reviewer_2_dt = None;
            item.rit_reviewer_2_reason = None;
            item.rit_reviewer_2_decision = None;
        }
    }
}

fn stage_sub(item: &EgressRequest, stage: ReviewStage) -> Option<&str> {
    match stage {
        ReviewStage::Ig => item.ig_reviewer_1_sub.as_deref(),
        ReviewStage::Rit => item.rit_reviewer_2_sub.as_deref(),
    }
}

impl ReviewStore for InMemoryRequestStore {
    async fn list_page(
        &self,
        index: &ListIndex,
        after: Option<&ListPosition>,
        limit: u32,
    ) -> Result<ListPage> {
        // The indexes' order: newest submission first (ties by id, as a stable order).
        let order = |r: &EgressRequest| (r.requested_dt.clone(), r.egress_request_id.clone());
        let mut listed: Vec<EgressRequest> = lock(&self.items)
            .values()
            .filter(|r| match index {
                ListIndex::Status(status) => r.egress_status == *status,
                ListIndex::Submitted { since } => since
                    .as_deref()
                    .is_none_or(|s| r.requested_dt.as_str() >= s),
            })
            .filter(|r| {
                after.is_none_or(|p| {
                    order(r) < (p.requested_dt.clone(), p.egress_request_id.clone())
                })
            })
            // As the indexes return them: without the task token.
            .map(|r| EgressRequest {
                sfn_task_token: None,
                pending_task_token: None,
                ..r.clone()
            })
            .collect();
        listed.sort_by_key(|r| std::cmp::Reverse(order(r)));
        let more = listed.len() > limit as usize;
        listed.truncate(limit as usize);
        let read = listed.len() as u64;
        Ok(ListPage {
            next: listed.last().filter(|_| more).map(ListPosition::of),
            requests: listed,
            read,
        })
    }

    async fn get_request(&self, egress_request_id: &str) -> Result<Option<EgressRequest>> {
        Ok(self.item(egress_request_id))
    }

    async fn claim_decision(&self, claim: &DecisionClaim) -> Result<ClaimOutcome> {
        let mut items = lock(&self.items);
        let Some(item) = items.get_mut(&claim.egress_request_id).filter(|item| {
            item.review_handle.as_deref() == Some(claim.expected_handle.as_str())
                && item.egress_status == claim.awaiting_status
                && item.review_stage == Some(claim.stage)
                && item.sfn_task_token.is_some()
        }) else {
            return Ok(ClaimOutcome::Lost);
        };
        let previous = item.clone();
        set_reviewer(item, claim);
        item.egress_status = claim.new_status;
        item.updated_by = claim.reviewer_username.clone();
        item.updated_dt = claim.at.clone();
        item.review_handle = None;
        item.pending_task_token = item.sfn_task_token.take();
        Ok(ClaimOutcome::Won(Box::new(ClaimedDecision { previous })))
    }

    async fn release_decision(
        &self,
        claim: &DecisionClaim,
        claimed: &ClaimedDecision,
    ) -> Result<bool> {
        let mut items = lock(&self.items);
        let Some(item) = items.get_mut(&claim.egress_request_id) else {
            return Ok(false);
        };
        let still_ours = item.egress_status == claim.new_status
            && item.review_handle.is_none()
            && stage_sub(item, claim.stage) == Some(claim.reviewer_sub.as_str())
            && item.updated_dt == claim.at;
        if !still_ours {
            return Ok(false);
        }
        clear_reviewer(item, claim.stage);
        item.egress_status = claimed.previous.egress_status;
        item.review_handle = claimed.previous.review_handle.clone();
        item.sfn_task_token = claimed.previous.sfn_task_token.clone();
        item.pending_task_token = None;
        item.updated_by = claimed.previous.updated_by.clone();
        item.updated_dt = claimed.previous.updated_dt.clone();
        Ok(true)
    }

    async fn settle_decision(&self, egress_request_id: &str) -> Result<()> {
        if let Some(item) = lock(&self.items).get_mut(egress_request_id) {
            item.pending_task_token = None;
        }
        Ok(())
    }

    async fn count_download(
        &self,
        egress_request_id: &str,
        final_status: EgressStatus,
        max_downloads: u32,
    ) -> Result<DownloadCount> {
        let mut items = lock(&self.items);
        let Some(item) = items.get_mut(egress_request_id) else {
            return Ok(DownloadCount::Missing);
        };
        // The same order as the DynamoDB adapter, which reads the item after a failed
        // condition: the limit first, then the status.
        if item.download_count >= max_downloads {
            return Ok(DownloadCount::LimitReached);
        }
        if item.egress_status != final_status || item.archive_key.is_none() {
            return Ok(DownloadCount::Unavailable(item.egress_status));
        }
        item.download_count += 1;
        Ok(DownloadCount::Counted(item.download_count))
    }
}

/// A user pool in memory: users, their group memberships and the pool's identity providers.
#[derive(Debug, Default)]
pub struct InMemoryDirectory {
    /// Users by username.
    pub users: Mutex<HashMap<String, DirectoryUser>>,
    /// Pool groups by username (none when absent).
    pub groups: Mutex<HashMap<String, Vec<String>>>,
    /// Names of the pool's identity providers.
    pub providers: Mutex<Vec<String>>,
}

impl InMemoryDirectory {
    /// A directory holding `users` (username, user), members of no group.
    pub fn with(users: impl IntoIterator<Item = (String, DirectoryUser)>) -> Self {
        Self {
            users: Mutex::new(users.into_iter().collect()),
            ..Self::default()
        }
    }

    /// Adds or replaces a user.
    pub fn put(&self, username: &str, user: DirectoryUser) {
        lock(&self.users).insert(username.to_string(), user);
    }

    /// Makes `username` a member of exactly `groups`.
    pub fn set_groups(&self, username: &str, groups: &[&str]) {
        lock(&self.groups).insert(
            username.to_string(),
            groups.iter().map(|g| g.to_string()).collect(),
        );
    }

    /// Configures an identity provider called `name`.
    pub fn add_provider(&self, name: &str) {
        lock(&self.providers).push(name.to_string());
    }
}

impl ReviewerDirectory for InMemoryDirectory {
    async fn user(&self, _user_pool_id: &str, username: &str) -> Result<Option<DirectoryUser>> {
        // Yields once, like the network call it stands for, so that concurrent API calls
        // interleave between reading a request and claiming it.
        tokio::task::yield_now().await;
        Ok(lock(&self.users).get(username).cloned())
    }

    async fn groups(&self, _user_pool_id: &str, username: &str) -> Result<Vec<String>> {
        tokio::task::yield_now().await;
        Ok(lock(&self.groups)
            .get(username)
            .cloned()
            .unwrap_or_default())
    }

    async fn has_identity_provider(
        &self,
        _user_pool_id: &str,
        provider_name: &str,
    ) -> Result<bool> {
        Ok(lock(&self.providers).iter().any(|p| p == provider_name))
    }
}

/// Presigns fake URLs that name what they grant, and records each call.
#[derive(Debug, Default)]
pub struct FakeDownloadLinks {
    /// (bucket, key, expiry) per call.
    pub issued: Mutex<Vec<(String, String, Duration)>>,
}

impl FakeDownloadLinks {
    /// A copy of the calls.
    pub fn issued(&self) -> Vec<(String, String, Duration)> {
        lock(&self.issued).clone()
    }
}

impl DownloadLinks for FakeDownloadLinks {
    async fn presign_get(&self, bucket: &str, key: &str, expires_in: Duration) -> Result<String> {
        lock(&self.issued).push((bucket.to_string(), key.to_string(), expires_in));
        Ok(format!(
            "https://{bucket}.s3.example/{key}?X-Amz-Expires={}&X-Amz-Signature=fake",
            expires_in.as_secs()
        ))
    }
}

/// A workflow whose `SendTaskSuccess` always fails with the given error (or, when there is
/// none, finds the task no longer waiting), counting the calls.
#[derive(Debug)]
pub struct FailingWorkflowCallbacks {
    /// Makes what every call returns; `None`: the task is no longer waiting.
    pub error: Option<fn() -> EgressError>,
    /// Calls made.
    pub calls: Mutex<u32>,
}

impl FailingWorkflowCallbacks {
    /// Fails every call with `error()`.
    pub fn new(error: fn() -> EgressError) -> Self {
        Self {
            error: Some(error),
            calls: Mutex::new(0),
        }
    }

    /// Every call finds the task no longer waiting (timed out, or already completed).
    pub fn no_longer_waiting() -> Self {
        Self {
            error: None,
            calls: Mutex::new(0),
        }
    }
}

impl WorkflowCallbacks for FailingWorkflowCallbacks {
    async fn send_success(&self, _task_token: &str, _output: &str) -> Result<Delivery> {
        *lock(&self.calls) += 1;
        match self.error {
            Some(error) => Err(error()),
            None => Ok(Delivery::NoLongerWaiting),
        }
    }
}

/// A request as the workflow saves it, submitted by `u-researcher`
/// (`researcher@example.org`), not yet waiting for a review.
pub fn sample_request(egress_request_id: &str, mode: crate::model::ApprovalMode) -> EgressRequest {
    EgressRequest {
        egress_store_name: "study-egress".into(),
        swb_egress_store_id: "store-1".into(),
        project_id: "project-1".into(),
        workspace_id: "ws-1".into(),
        requested_by: "u-researcher".into(),
        requested_by_email: Some("researcher@example.org".into()),
        requested_dt: "2024-05-01T09:00:00.000Z".into(),
        updated_by: "u-researcher".into(),
        updated_dt: "2024-05-01T09:00:00.000Z".into(),
        s3_egress_store_bucket: "swb-egress".into(),
        s3_egress_store_bucket_path: "ws-1/".into(),
        s3_egress_store_object_list_location: "arn:aws:s3:::swb-notify/store-1/ver1.json".into(),
        approval_mode: mode,
        is_single_approval_enabled: mode == crate::model::ApprovalMode::Single,
        s3_staging_object_metadata_version: Some("v-manifest".into()),
        staged_file_count: Some(2),
        staged_total_bytes: Some(42),
        staged_file_types: Some("csv".into()),
        ..crate::testdata::request(egress_request_id, EgressStatus::Processing)
    }
}

/// `request` parked at `stage` with the task `token` and the web app's `handle`; at the
/// Research IT stage it carries an Information Governance approval by `sub-ig`.
pub fn parked_at(
    mut request: EgressRequest,
    stage: ReviewStage,
    token: &str,
    handle: &str,
) -> EgressRequest {
    request.review_stage = Some(stage);
    request.sfn_task_token = Some(token.to_string());
    request.review_handle = Some(handle.to_string());
    match stage {
        ReviewStage::Ig => {
            request.egress_status = EgressStatus::Processing;
            request.current_reviewer_group = Some("IGApprover".into());
        }
        ReviewStage::Rit => {
            request.egress_status = EgressStatus::IgApproved;
            request.current_reviewer_group = Some("ResearchITAdmin".into());
            request.ig_reviewer_1_name = Some("Ivy Governance".into());
            request.ig_reviewer_1_email = Some("ivy@example.org".into());
            request.ig_reviewer_1_sub = Some("sub-ig".into());
            request.ig_reviewer_1_dt = Some("2024-05-02T10:00:00.000Z".into());
            request.ig_reviewer_1_reason = Some("Aggregated outputs only".into());
            request.ig_reviewer_1_decision = Some(crate::model::Decision::Approved);
        }
    }
    request
}

/// `request` approved for good with its archive written and `downloads` so far.
pub fn approved(mut request: EgressRequest, downloads: u32) -> EgressRequest {
    request.egress_status = crate::domain::transitions::final_approval(request.approval_mode);
    request.archive_key =
        crate::domain::keys::archive_key(&request.workspace_id, &request.egress_request_id).ok();
    request.download_count = downloads;
    request
}

impl crate::ports::RevocationStore for InMemoryRequestStore {
    async fn claim_revocation(&self, claim: &crate::ports::RevocationClaim) -> Result<bool> {
        let mut items = lock(&self.items);
        match items.get_mut(&claim.egress_request_id) {
            Some(item) if item.egress_status == claim.approved_status => {
                item.egress_status = EgressStatus::Revoked;
                item.updated_by = claim.revoked_by.clone();
                item.updated_dt = claim.at.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// The reviewer API on the in-memory fakes, as the unit tests here and in `api-handler`
/// build it (one builder, so a new port or setting is added in one place).
pub type FakeReviewService<W = super::FakeWorkflowCallbacks> =
    crate::services::review_api::ReviewService<
        InMemoryRequestStore,
        InMemoryDirectory,
        W,
        super::InMemoryAuditLog,
        FakeDownloadLinks,
        crate::ports::FixedClock,
    >;

/// A directory of enabled users with verified e-mails, each `(username, sub, email, groups)`.
pub fn directory_of(users: &[(&str, &str, &str, &[&str])]) -> InMemoryDirectory {
    let directory = InMemoryDirectory::with(users.iter().map(|(username, sub, email, _)| {
        (
            username.to_string(),
            DirectoryUser {
                sub: sub.to_string(),
                email: Some(email.to_string()),
                email_verified: Some(true),
                enabled: true,
                ..Default::default()
            },
        )
    }));
    for (username, _, _, groups) in users {
        directory.set_groups(username, groups);
    }
    directory
}

/// The reviewer API's settings for tests: the groups `ig`, `rit` and `download`,
/// `max_downloads` per request, the `datalake` bucket, 300 s URLs, the test pool
/// `eu-west-2_testpool`, no IdP group map.
pub fn review_settings(
    ig: &str,
    rit: &str,
    download: &[&str],
    max_downloads: u32,
) -> crate::services::review_api::ReviewSettings {
    crate::services::review_api::ReviewSettings {
        policy: crate::domain::review::ReviewPolicy {
            ig_group: ig.into(),
            rit_group: rit.into(),
            download_groups: download.iter().map(|g| g.to_string()).collect(),
            max_downloads,
        },
        datalake_bucket: "datalake".into(),
        url_expiry: Duration::from_secs(300),
        list_max_age_days: 0,
        user_pool_id: Some("eu-west-2_testpool".into()),
        idp_group_claim: "custom:idp_groups".into(),
        idp_group_map: Default::default(),
    }
}

/// The reviewer API over `requests` with `workflow`, `directory` and `settings`, its clock
/// at 2024-05-03 12:00 UTC.
pub fn review_service<W>(
    workflow: W,
    requests: impl IntoIterator<Item = EgressRequest>,
    directory: InMemoryDirectory,
    settings: crate::services::review_api::ReviewSettings,
) -> FakeReviewService<W> {
    crate::services::review_api::ReviewService {
        store: InMemoryRequestStore::with(requests),
        directory,
        workflow,
        audit: super::InMemoryAuditLog::default(),
        links: FakeDownloadLinks::default(),
        clock: crate::ports::FixedClock(time::macros::datetime!(2024-05-03 12:00:00 UTC)),
        settings,
    }
}

/// A caller whose token names `username` (sub `sub-<username>`) and `groups`.
pub fn caller(username: &str, groups: &[&str]) -> crate::model::CallerIdentity {
    crate::model::CallerIdentity {
        sub: format!("sub-{username}"),
        username: username.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        ..Default::default()
    }
}
