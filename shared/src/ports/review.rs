//! What the reviewer API needs from the outside world: the requests table as reviewers use
//! it, the user directory, and presigned download links.
//!
//! The workflow functions use [`super::RequestStore`]; the API has its own port because its
//! writes are different in kind: each one is a conditional claim that must be atomic
//! (exactly one of two concurrent decisions wins, the download counter never passes its
//! maximum), and its lists read one page of the `by-status` or `by-requested-dt` index at a
//! time.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use crate::error::Result;
use crate::model::{Decision, EgressRequest, EgressStatus, ReviewStage};

/// Which requests `listRequests` returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListFilter {
    /// When set, requests last updated before this ISO-8601 instant are left out, unless
    /// they still await a review (see [`crate::domain::review::is_listed`]).
    pub updated_since: Option<String>,
}

/// Which index a page of `listRequests` is read from, newest submission first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListIndex {
    /// The requests that have this status (`by-status` index): those a review stage may be
    /// waiting on.
    Status(EgressStatus),
    /// Every request (`by-requested-dt` index), submitted at or after `since` when given.
    Submitted {
        /// ISO-8601 instant; `None` lists all.
        since: Option<String>,
    },
}

/// Where a listing stands: the keys of the last request read, as the index orders them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPosition {
    /// The request.
    pub egress_request_id: String,
    /// Its submission time (the indexes' sort key).
    pub requested_dt: String,
    /// Its status (the `by-status` partition).
    pub egress_status: EgressStatus,
}

impl ListPosition {
    /// The position of `request`.
    pub fn of(request: &EgressRequest) -> Self {
        Self {
            egress_request_id: request.egress_request_id.clone(),
            requested_dt: request.requested_dt.clone(),
            egress_status: request.egress_status,
        }
    }
}

/// One page read from a list index.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListPage {
    /// The requests of the page, newest submission first (without the task token).
    pub requests: Vec<EgressRequest>,
    /// Items the store read for this page (DynamoDB's `ScannedCount`).
    pub read: u64,
    /// Where the next page starts; `None` when the index has no more.
    pub next: Option<ListPosition>,
}

/// A decision to record, built by [`crate::domain::review::plan_decision`] from the
/// verified caller, the stored request and the server clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionClaim {
    /// The request.
    pub egress_request_id: String,
    /// The stage decided (the stored request's current stage).
    pub stage: ReviewStage,
    /// The handle the request must still carry: a stale or reused handle loses the claim.
    pub expected_handle: String,
    /// The status the request must still have.
    pub awaiting_status: EgressStatus,
    /// The status the decision leads to.
    pub new_status: EgressStatus,
    /// The decision.
    pub decision: Decision,
    /// The reviewer's reason.
    pub reason: String,
    /// Display name of the reviewer (directory), stored as `<stage>_name`.
    pub reviewer_name: String,
    /// E-mail of the reviewer (directory), stored as `<stage>_email`.
    pub reviewer_email: String,
    /// Cognito `sub` of the reviewer, stored as `<stage>_sub` (separation of duties).
    pub reviewer_sub: String,
    /// Cognito username of the reviewer, stored as `updated_by`.
    pub reviewer_username: String,
    /// Server time of the decision, ISO-8601; stored as `<stage>_dt` and `updated_dt`.
    pub at: String,
}

/// The request as it was just before a successful claim. It carries the Step Functions task
/// token that the claim removed from the item: the only copy the API ever holds.
pub struct ClaimedDecision {
    /// The item before the update.
    pub previous: EgressRequest,
}

impl std::fmt::Debug for ClaimedDecision {
    /// Never prints the item: it holds the task token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ClaimedDecision {{ egress_request_id: {}, task_token: <redacted> }}",
            self.previous.egress_request_id
        )
    }
}

/// What a decision claim came to.
#[derive(Debug)]
pub enum ClaimOutcome {
    /// The claim won: the request is decided and its task token is ours.
    Won(Box<ClaimedDecision>),
    /// The request no longer carries the expected handle, status or task: another
    /// decision, an expiry or a failure got there first.
    Lost,
}

/// What counting a download came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadCount {
    /// Counted; the new count.
    Counted(u32),
    /// The request has been downloaded `max_downloads` times already.
    LimitReached,
    /// The request is not (or no longer) a downloadable final approval; it has this status.
    Unavailable(EgressStatus),
    /// There is no such request.
    Missing,
}

/// The requests table as the reviewer API uses it.
pub trait ReviewStore: Send + Sync {
    /// One page of at most `limit` requests of `index`, newest submission first, after
    /// `after` when given. Reads at most `limit` items.
    fn list_page(
        &self,
        index: &ListIndex,
        after: Option<&ListPosition>,
        limit: u32,
    ) -> impl Future<Output = Result<ListPage>> + Send;

    /// One request by id (strongly consistent), if it exists.
    fn get_request(
        &self,
        egress_request_id: &str,
    ) -> impl Future<Output = Result<Option<EgressRequest>>> + Send;

    /// Records the decision in one conditional write: the item must still carry
    /// `expected_handle` and `awaiting_status`; the write sets the reviewer fields, the new
    /// status, `updated_by`/`updated_dt`, removes `review_handle`, and moves `sfn_task_token`
    /// to `pending_task_token` (kept until [`ReviewStore::settle_decision`]).
    /// Returns the item as it was before, or [`ClaimOutcome::Lost`] when the condition fails.
    fn claim_decision(
        &self,
        claim: &DecisionClaim,
    ) -> impl Future<Output = Result<ClaimOutcome>> + Send;

    /// Undoes a claim whose workflow could not be resumed, so the stage can be decided again:
    /// restores status, handle, token, `updated_by`/`updated_dt` from `claimed.previous` and
    /// removes the reviewer fields. Conditional on the claim still being the latest write; if
    /// the workflow moved on meanwhile (expiry, failure), nothing is changed and `Ok(false)`
    /// is returned.
    fn release_decision(
        &self,
        claim: &DecisionClaim,
        claimed: &ClaimedDecision,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Removes `pending_task_token` once Step Functions has answered the decision's delivery
    /// (delivered, or the task no longer waits), so it is never delivered again.
    fn settle_decision(&self, egress_request_id: &str) -> impl Future<Output = Result<()>> + Send;

    /// Adds one to `download_count` if, atomically, the request has `final_status`, has an
    /// archive and has been downloaded fewer than `max_downloads` times; otherwise says why not.
    fn count_download(
        &self,
        egress_request_id: &str,
        final_status: EgressStatus,
        max_downloads: u32,
    ) -> impl Future<Output = Result<DownloadCount>> + Send;
}

/// A user as the user pool knows them now (not as the token said at sign-in).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirectoryUser {
    /// Cognito `sub`; must match the token's.
    pub sub: String,
    /// The `email` attribute, if set.
    pub email: Option<String>,
    /// `email_verified`, when the pool reports it.
    pub email_verified: Option<bool>,
    /// The `name` attribute, if set.
    pub name: Option<String>,
    /// False when an administrator disabled the user (their tokens stay valid until they
    /// expire; the API refuses them at once).
    pub enabled: bool,
    /// The `identities` attribute (JSON), set by Cognito alone for users linked to an
    /// external identity provider; see [`crate::domain::review::federation::linked_identities`].
    pub identities: Option<String>,
    /// The user's `custom:*` attributes, by full name (the IdP groups of a federated user
    /// among them).
    pub custom_attributes: BTreeMap<String, String>,
}

/// The user pool, to read who a caller is at the time of the call.
///
/// The web app calls the API with the Cognito *access* token, which carries no e-mail; the
/// API needs the reviewer's e-mail for separation of duties and for the record.
pub trait ReviewerDirectory: Send + Sync {
    /// The user called `username` in the pool `user_pool_id`, if they exist.
    fn user(
        &self,
        user_pool_id: &str,
        username: &str,
    ) -> impl Future<Output = Result<Option<DirectoryUser>>> + Send;

    /// The pool groups `username` is a member of now (all pages). A group an administrator
    /// removed the user from is gone from this list at once, while the user's tokens keep
    /// naming it until they expire.
    fn groups(
        &self,
        user_pool_id: &str,
        username: &str,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// True when the pool has an identity provider called `provider_name`.
    fn has_identity_provider(
        &self,
        user_pool_id: &str,
        provider_name: &str,
    ) -> impl Future<Output = Result<bool>> + Send;
}

/// Presigned URLs for the approved archives.
pub trait DownloadLinks: Send + Sync {
    /// A presigned `GET` of `bucket`/`key` valid for `expires_in`. Never logged.
    fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        expires_in: Duration,
    ) -> impl Future<Output = Result<String>> + Send;
}

/// A revocation to record, built by [`crate::domain::review::revoke::plan_revocation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationClaim {
    /// The request.
    pub egress_request_id: String,
    /// The final approval the request must still have (a second revocation, or one racing
    /// it, finds `REVOKED` and loses).
    pub approved_status: EgressStatus,
    /// The admin's reason, stored as `revoked_reason`.
    pub reason: String,
    /// Cognito username of the admin, stored as `revoked_by` and `updated_by`.
    pub revoked_by: String,
    /// E-mail of the admin (directory), for the record and the reviewers' e-mail.
    pub revoked_by_email: String,
    /// Server time, ISO-8601; stored as `revoked_dt` and `updated_dt`.
    pub at: String,
}

/// The requests table as `revokeRelease` writes it.
pub trait RevocationStore: Send + Sync {
    /// Sets `egress_status` to `REVOKED` and records who, when and why, in one conditional
    /// write: the item must still have `claim.approved_status`. `Ok(false)` when it has not
    /// (already revoked, or not approved).
    fn claim_revocation(
        &self,
        claim: &RevocationClaim,
    ) -> impl Future<Output = Result<bool>> + Send;
}
