//! The reviewer API's rules, as plain functions: who may list, decide and download, what a
//! decision records, and how a stored request looks to the TREEHOOSE web app.
//!
//! Security rules (DESIGN.md §5) enforced here:
//! - identity (sub, username, groups) comes from the verified token; e-mail and name from the
//!   user pool; nothing the client sends about the reviewer is used;
//! - a token's groups count only while the pool still grants them ([`PoolStanding`]), so a
//!   reviewer removed from a group is refused at once, not when their token expires;
//! - a federated user's e-mail is trusted when their IdP is configured in the pool; a user of
//!   the pool itself needs a verified e-mail;
//! - the stage is the stored request's current stage, never the caller's groups;
//! - the submitter cannot decide; the Research IT reviewer must differ from the Information
//!   Governance reviewer;
//! - downloads only of final-approved archives, by the download groups, up to a maximum.
//!
//! The orchestration that applies these rules against the ports lives in
//! [`crate::services::review_api`].

use time::OffsetDateTime;

use crate::domain::keys;
use crate::domain::transitions::{final_approval, stages, status_after, status_awaiting};
use crate::error::{EgressError, Result};
use crate::model::{
    ApprovalMode, CallerIdentity, Decision, EgressRequest, EgressStatus, RequestView,
    ReviewOutcome, ReviewStage, UpdateRequestInput,
};
use crate::ports::{iso_millis, DecisionClaim, DirectoryUser, ListFilter};

pub mod federation;
pub mod revoke;

/// What the web app shows when a decision loses a race or reuses an old handle. Kept word
/// for word from the TREEHOOSE backend, whose message the reviewers know.
pub const STALE_REQUEST_MESSAGE: &str =
    "Another user may have updated this request. Please refresh to get the latest data";

/// What a reviewer is told when they try to decide a request that was approved for good (the
/// web app offers Approve/Reject to Research IT on final single-approval requests).
pub const APPROVED_NO_REVIEW_MESSAGE: &str =
    "This request needs no further review: it was approved at its final stage.";

/// What the web app says when the download limit is reached (its own wording).
pub const DOWNLOAD_LIMIT_MESSAGE: &str = "Download limit exceeded. Please contact an administrator";

/// The `updateRequest` result on success (the web app ignores it; the TREEHOOSE backend
/// returned this text).
pub const UPDATE_SUCCESS_MESSAGE: &str = "Request updated successfully";

/// Shortest accepted reason; the web app asks for at least 10 characters too.
pub const REASON_MIN_CHARS: usize = 10;

/// Longest accepted reason: enough for a justification, small enough for an e-mail and a
/// DynamoDB item.
pub const REASON_MAX_CHARS: usize = 2_000;

/// The groups and limits of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewPolicy {
    /// Cognito group deciding the Information Governance stage.
    pub ig_group: String,
    /// Cognito group deciding the Research IT stage.
    pub rit_group: String,
    /// Cognito groups allowed to download approved archives.
    pub download_groups: Vec<String>,
    /// Downloads allowed per request.
    pub max_downloads: u32,
}

impl ReviewPolicy {
    /// The group whose members decide `stage`.
    pub fn group_for(&self, stage: ReviewStage) -> &str {
        match stage {
            ReviewStage::Ig => &self.ig_group,
            ReviewStage::Rit => &self.rit_group,
        }
    }

    /// Every group with access to the API (the two reviewer groups and the download
    /// groups), without duplicates, in that order.
    pub fn api_groups(&self) -> Vec<&str> {
        let mut groups: Vec<&str> = vec![&self.ig_group, &self.rit_group];
        for g in &self.download_groups {
            if !groups.contains(&g.as_str()) {
                groups.push(g);
            }
        }
        groups
    }
}

/// Most download groups a deployment may list (the template's `DownloadGroups` pattern).
pub const MAX_DOWNLOAD_GROUPS: usize = 10;

/// A group name as the template's group parameters allow it: a letter, then up to 63 ASCII
/// letters, digits, `_` or `-`. One rule for the template, this crate, the deploy gate's schema
/// renderer and the local API's (all tested against `infra/fixtures/group-lists.json`); it
/// also keeps a name safe to write into the schema's `@aws_auth` lists.
pub fn group_name(raw: &str) -> Option<&str> {
    let mut chars = raw.chars();
    let ok = raw.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    ok.then_some(raw)
}

impl ReviewPolicy {
    /// The policy of a deployment from its group settings (`IG_REVIEWER_GROUP`,
    /// `RIT_REVIEWER_GROUP`, `DOWNLOAD_GROUPS`): each a [`group_name`], the two stages' groups
    /// different, the download groups empty (the two reviewer groups) or 1 to
    /// [`MAX_DOWNLOAD_GROUPS`] names separated by commas, kept in order without duplicates.
    /// The error names the setting at fault.
    pub fn from_groups(ig: &str, rit: &str, download: &str, max_downloads: u32) -> Result<Self> {
        let name = |var: &str, raw: &str| {
            group_name(raw).map(str::to_string).ok_or_else(|| {
                EgressError::Config(format!(
                    "{var} has an invalid group name {raw:?}: a letter, then up to 63 letters, \
                     digits, '_' or '-'"
                ))
            })
        };
        let ig_group = name("IG_REVIEWER_GROUP", ig)?;
        let rit_group = name("RIT_REVIEWER_GROUP", rit)?;
        if ig_group == rit_group {
            return Err(EgressError::Config(format!(
                "RIT_REVIEWER_GROUP must differ from IG_REVIEWER_GROUP (both are {ig_group:?}): \
                 one group cannot hold both approval stages"
            )));
        }
        let mut download_groups: Vec<String> = Vec::new();
        if download.is_empty() {
            download_groups = vec![ig_group.clone(), rit_group.clone()];
        } else {
            for raw in download.split(',') {
                let g = name("DOWNLOAD_GROUPS", raw)?;
                if !download_groups.contains(&g) {
                    download_groups.push(g);
                }
            }
            if download.split(',').count() > MAX_DOWNLOAD_GROUPS {
                return Err(EgressError::Config(format!(
                    "DOWNLOAD_GROUPS lists more than {MAX_DOWNLOAD_GROUPS} groups"
                )));
            }
        }
        Ok(Self {
            ig_group,
            rit_group,
            download_groups,
            max_downloads,
        })
    }
}

/// A reviewer: the verified token identity completed by the user pool's current record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewer {
    /// Cognito `sub`.
    pub sub: String,
    /// Cognito username.
    pub username: String,
    /// E-mail (user pool).
    pub email: String,
    /// Display name: the pool's `name`, else the e-mail (what the web app used as a name).
    pub name: String,
    /// The token's groups that the pool still grants now ([`PoolStanding::groups`]).
    pub groups: Vec<String>,
    /// The configured identity provider the user signs in through, when federated.
    pub federated_by: Option<String>,
}

/// What the user pool says about the caller at the time of the call, beyond their record.
///
/// Group membership is re-read on every decision and download, because a token names the
/// groups of its sign-in for up to an hour: for users of the pool, their pool groups now
/// (`AdminListGroupsForUser`); for federated users, whose token groups the
/// `pre-token-generation` trigger derives from their IdP groups, the same mapping applied to
/// the IdP groups the pool holds now (`custom:idp_groups`). The API acts only on groups that
/// are both in the token and granted now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolStanding {
    /// The identity provider, configured in the pool, that the user's `identities` name:
    /// the authority for their e-mail. `None` for users of the pool itself.
    pub federated_by: Option<String>,
    /// The groups the pool grants now.
    pub groups: Vec<String>,
}

impl Reviewer {
    /// True when the reviewer is a member of `group` (exact, case-sensitive, as Cognito).
    pub fn is_in(&self, group: &str) -> bool {
        in_group(&self.groups, group)
    }
}

/// The user pool to look the caller up in: the one named by the verified token's issuer
/// (`https://cognito-idp.<region>.amazonaws.com/<pool id>`). When the deployment configures
/// its pool, the issuer must name that pool.
pub fn user_pool_id(issuer: Option<&str>, configured: Option<&str>) -> Result<String> {
    let from_issuer = match issuer {
        None => None,
        Some(iss) => {
            let pool = iss
                .strip_prefix("https://cognito-idp.")
                .and_then(|rest| rest.split_once(".amazonaws.com/"))
                .map(|(_, pool)| pool)
                .filter(|pool| {
                    pool.split_once('_').is_some_and(|(region, id)| {
                        !region.is_empty()
                            && !id.is_empty()
                            && pool
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    })
                })
                .ok_or_else(|| {
                    forbidden("The caller's token was not issued by a Cognito user pool")
                })?;
            Some(pool.to_string())
        }
    };
    match (from_issuer, configured) {
        (Some(pool), Some(expected)) if pool != expected => Err(forbidden(
            "The caller's token was issued by another user pool",
        )),
        (Some(pool), _) => Ok(pool),
        (None, Some(expected)) => Ok(expected.to_string()),
        (None, None) => Err(forbidden("The caller's token names no user pool")),
    }
}

fn in_group(groups: &[String], group: &str) -> bool {
    groups.iter().any(|g| g == group)
}

fn forbidden(msg: impl Into<String>) -> EgressError {
    EgressError::Forbidden(msg.into())
}

fn stage_name(stage: ReviewStage) -> &'static str {
    match stage {
        ReviewStage::Ig => "Information Governance",
        ReviewStage::Rit => "Research IT",
    }
}

/// Completes the token identity with the user pool's record of the same user and their
/// [`PoolStanding`]. Refuses a deleted, disabled or replaced user (a token outlives those
/// changes by up to an hour), and a user without a trustworthy e-mail, because separation of
/// duties compares e-mails: users of the pool need `email_verified=true`; for federated
/// users the IdP vouches for the e-mail it maps (Cognito leaves their `email_verified` false
/// unless the IdP sends it).
pub fn resolve_reviewer(
    caller: &CallerIdentity,
    user: Option<&DirectoryUser>,
    standing: &PoolStanding,
) -> Result<Reviewer> {
    if caller.sub.trim().is_empty() || caller.username.trim().is_empty() {
        return Err(forbidden("The caller's identity is incomplete"));
    }
    let user = user.ok_or_else(|| forbidden("Your user account no longer exists"))?;
    if user.sub != caller.sub {
        return Err(forbidden(
            "Your sign-in belongs to a user account that no longer exists; please sign in again",
        ));
    }
    if !user.enabled {
        return Err(forbidden("Your user account is disabled"));
    }
    if standing.federated_by.is_none() && user.email_verified != Some(true) {
        return Err(forbidden(
            "Your e-mail address is not verified; reviewers need a verified e-mail address",
        ));
    }
    let email = user
        .email
        .clone()
        .or_else(|| caller.email.clone())
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
        .ok_or_else(|| forbidden("Your user account has no e-mail address; reviewers need one"))?;
    let name = user
        .name
        .clone()
        .or_else(|| caller.name.clone())
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| email.clone());
    let groups = caller
        .groups
        .iter()
        .filter(|g| in_group(&standing.groups, g))
        .cloned()
        .collect();
    Ok(Reviewer {
        sub: caller.sub.clone(),
        username: caller.username.clone(),
        email,
        name,
        groups,
        federated_by: standing.federated_by.clone(),
    })
}

/// `listRequests`: members of any API group.
pub fn authorize_list(policy: &ReviewPolicy, groups: &[String]) -> Result<()> {
    if policy.api_groups().iter().any(|g| in_group(groups, g)) {
        Ok(())
    } else {
        Err(forbidden(
            "You are not authorised to access this application",
        ))
    }
}

/// The stage `request` waits at, if a review task is parked on it: `review_stage` set by
/// `record-task-token`, the status that stage awaits, a stage the approval mode has, and a
/// handle and a task token present.
pub fn awaiting_stage(request: &EgressRequest) -> Option<ReviewStage> {
    listed_stage(request).filter(|_| request.sfn_task_token.is_some())
}

/// The stage `request` waits at as `listRequests` can tell: the same as [`awaiting_stage`]
/// without the task token, which the list index does not project (the token is read only
/// by the strongly consistent `GetItem` of a decision).
pub fn listed_stage(request: &EgressRequest) -> Option<ReviewStage> {
    let stage = request.review_stage?;
    let ready = request.egress_status == status_awaiting(stage)
        && stages(request.approval_mode).contains(&stage)
        && request.review_handle.is_some();
    ready.then_some(stage)
}

fn same_email(a: &str, b: Option<&str>) -> bool {
    b.is_some_and(|b| !b.trim().is_empty() && a.trim().eq_ignore_ascii_case(b.trim()))
}

/// True when `reviewer` submitted `request` or owns its egress store.
pub fn is_submitter(reviewer: &Reviewer, request: &EgressRequest) -> bool {
    same_email(&reviewer.email, request.requested_by_email.as_deref())
        || same_email(&reviewer.email, request.store_owner_email.as_deref())
        || reviewer
            .username
            .trim()
            .eq_ignore_ascii_case(request.requested_by.trim())
}

/// True when the request names its submitter's or store owner's e-mail, the identity a
/// reviewer can be compared with.
pub fn submitter_known(request: &EgressRequest) -> bool {
    [&request.requested_by_email, &request.store_owner_email]
        .iter()
        .any(|e| e.as_deref().is_some_and(|e| !e.trim().is_empty()))
}

/// Compares two handles in time independent of where they differ.
fn handles_match(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `updateRequest`: may `reviewer` decide `request` now, with the handle the client sent?
/// Returns the stage to decide.
///
/// Order of checks: membership of any reviewer group, then the request's state (a request
/// not waiting for a review is stale to whoever asks), then the stage's group, separation of
/// duties, and last the handle.
pub fn authorize_decision(
    policy: &ReviewPolicy,
    reviewer: &Reviewer,
    request: &EgressRequest,
    client_handle: &str,
) -> Result<ReviewStage> {
    if !reviewer.is_in(&policy.ig_group) && !reviewer.is_in(&policy.rit_group) {
        return Err(forbidden("You are not authorised to update this request"));
    }
    let stage = awaiting_stage(request).ok_or_else(|| not_awaiting(request, client_handle))?;
    let group = policy.group_for(stage);
    if !reviewer.is_in(group) {
        return Err(forbidden(format!(
            "This request is awaiting {} review; only members of {group} can decide it",
            stage_name(stage)
        )));
    }
    if is_submitter(reviewer, request) {
        return Err(forbidden(
            "You submitted this request (or own its egress store) and cannot review it",
        ));
    }
    if !submitter_known(request) {
        // Older SWB releases send no e-mails, and SWB user ids are not reviewer identities:
        // without an e-mail nobody can show the reviewer is not the submitter (DESIGN §5.4).
        return Err(forbidden(
            "This request carries no submitter e-mail, so separation of duties cannot be \
             verified; ask the TRE admin to record the submitter's e-mail on the request",
        ));
    }
    if stage == ReviewStage::Rit {
        if request.ig_reviewer_1_decision != Some(Decision::Approved) {
            return Err(EgressError::Conflict(
                "This request has no Information Governance approval to review".into(),
            ));
        }
        let ig_sub = request.ig_reviewer_1_sub.as_deref().ok_or_else(|| {
            EgressError::Conflict(
                "The Information Governance reviewer of this request is not recorded".into(),
            )
        })?;
        if ig_sub == reviewer.sub
            || same_email(&reviewer.email, request.ig_reviewer_1_email.as_deref())
        {
            return Err(forbidden(
                "You made the Information Governance decision on this request; \
                 a different person must make the Research IT decision",
            ));
        }
    }
    let stored = request.review_handle.as_deref().unwrap_or_default();
    if !handles_match(stored, client_handle.trim()) {
        return Err(EgressError::Conflict(STALE_REQUEST_MESSAGE.to_string()));
    }
    Ok(stage)
}

/// Why `request`, which waits for no review, cannot be decided. A client that sends no
/// handle listed the request after it ended (the list shows `""` when no stage waits), as
/// the web app does when it offers Research IT a final single-approval request: it is told
/// how the request ended. A client that sends a handle saw a stage waiting that another
/// decision has since closed (or a stage not parked yet): it gets the web app's own "stale"
/// message, as the loser of a race always has.
fn not_awaiting(request: &EgressRequest, client_handle: &str) -> EgressError {
    if !client_handle.trim().is_empty() {
        return EgressError::Conflict(STALE_REQUEST_MESSAGE.to_string());
    }
    let ended = match request.egress_status {
        s if s == final_approval(request.approval_mode) => APPROVED_NO_REVIEW_MESSAGE,
        EgressStatus::Rejected => "This request needs no further review: it was rejected.",
        EgressStatus::Expired => "This request needs no further review: its review period expired.",
        EgressStatus::Failed => {
            "This request needs no further review: its workflow failed and it was closed."
        }
        _ => STALE_REQUEST_MESSAGE,
    };
    EgressError::Conflict(ended.to_string())
}

/// Checks a reason: trimmed, [`REASON_MIN_CHARS`]..=[`REASON_MAX_CHARS`] characters, no
/// control characters other than line breaks and tabs.
pub fn validate_reason(field: &str, reason: Option<&str>) -> Result<String> {
    let reason = reason.map(str::trim).unwrap_or_default();
    let len = reason.chars().count();
    if len < REASON_MIN_CHARS {
        return Err(EgressError::validation(format!(
            "A justification is required (min {REASON_MIN_CHARS} characters) in `{field}`"
        )));
    }
    if len > REASON_MAX_CHARS {
        return Err(EgressError::validation(format!(
            "The justification in `{field}` is too long ({len} characters; at most {REASON_MAX_CHARS})"
        )));
    }
    if reason
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(EgressError::validation(format!(
            "The justification in `{field}` contains control characters"
        )));
    }
    Ok(reason.to_string())
}

/// The decision and reason the client gave for `stage` (the other stage's fields ignored).
pub fn decision_input(
    stage: ReviewStage,
    input: &UpdateRequestInput,
) -> Result<(Decision, String)> {
    let (field, decision, reason_field, reason) = match stage {
        ReviewStage::Ig => (
            "ig_reviewer_1_decision",
            input.ig_reviewer_1_decision.as_deref(),
            "ig_reviewer_1_reason",
            input.ig_reviewer_1_reason.as_deref(),
        ),
        ReviewStage::Rit => (
            "rit_reviewer_2_decision",
            input.rit_reviewer_2_decision.as_deref(),
            "rit_reviewer_2_reason",
            input.rit_reviewer_2_reason.as_deref(),
        ),
    };
    let decision = decision
        .ok_or_else(|| {
            EgressError::validation(format!(
                "`{field}` is required: this request is awaiting {} review",
                stage_name(stage)
            ))
        })?
        .trim()
        .parse::<Decision>()
        .map_err(|_| {
            EgressError::validation(format!("`{field}` must be \"APPROVED\" or \"REJECTED\""))
        })?;
    Ok((decision, validate_reason(reason_field, reason)?))
}

/// Everything `updateRequest` will write, or why it may not: authorization, then the input.
pub fn plan_decision(
    policy: &ReviewPolicy,
    reviewer: &Reviewer,
    request: &EgressRequest,
    input: &UpdateRequestInput,
    now_iso: &str,
) -> Result<DecisionClaim> {
    let stage = authorize_decision(policy, reviewer, request, &input.task_token)?;
    let (decision, reason) = decision_input(stage, input)?;
    Ok(DecisionClaim {
        egress_request_id: request.egress_request_id.clone(),
        stage,
        expected_handle: request.review_handle.clone().unwrap_or_default(),
        awaiting_status: status_awaiting(stage),
        new_status: status_after(stage, decision),
        decision,
        reason,
        reviewer_name: reviewer.name.clone(),
        reviewer_email: reviewer.email.clone(),
        reviewer_sub: reviewer.sub.clone(),
        reviewer_username: reviewer.username.clone(),
        at: now_iso.to_string(),
    })
}

/// The task output `SendTaskSuccess` carries for `claim`.
pub fn review_outcome(claim: &DecisionClaim) -> ReviewOutcome {
    ReviewOutcome {
        stage: claim.stage,
        decision: claim.decision,
        reviewer: claim.reviewer_username.clone(),
        reviewer_name: claim.reviewer_name.clone(),
        reviewer_sub: claim.reviewer_sub.clone(),
        reviewer_email: claim.reviewer_email.clone(),
        decided_at: claim.at.clone(),
        reason: claim.reason.clone(),
    }
}

/// How old a claim with a pending delivery must be before another caller (the next API call
/// on the request, or the sweep) delivers it: longer than the API function's timeout, so the
/// call that claimed it has certainly ended.
pub const PENDING_DELIVERY_GRACE: time::Duration = time::Duration::seconds(60);

/// True when `request` holds a claimed decision whose delivery is still pending and older than
/// [`PENDING_DELIVERY_GRACE`]: the call that claimed it died before `SendTaskSuccess`.
pub fn is_stalled_claim(request: &EgressRequest, now: OffsetDateTime) -> bool {
    request.pending_task_token.is_some()
        && OffsetDateTime::parse(
            &request.updated_dt,
            &time::format_description::well_known::Rfc3339,
        )
        .is_ok_and(|at| now - at > PENDING_DELIVERY_GRACE)
}

/// True when the last write of `request` was a decision on its review stage (the stage's
/// decision time is the request's update time).
pub fn last_write_was_a_decision(request: &EgressRequest) -> bool {
    let decided_at = match request.review_stage {
        Some(ReviewStage::Ig) => request.ig_reviewer_1_dt.as_deref(),
        Some(ReviewStage::Rit) => request.rit_reviewer_2_dt.as_deref(),
        None => None,
    };
    decided_at.is_some_and(|at| at == request.updated_dt)
}

/// True when a review decision of `request` (either stage) was made at or after `since`:
/// the only requests that can still hold a pending claim once the workflow has moved on
/// (its later writes change the update time, so the decision is no longer the last write).
/// Read from the status index, which does not carry the pending token.
pub fn decided_since(request: &EgressRequest, since: OffsetDateTime) -> bool {
    [&request.ig_reviewer_1_dt, &request.rit_reviewer_2_dt]
        .into_iter()
        .flatten()
        .filter_map(|at| {
            OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()
        })
        .any(|at| at >= since)
}

/// The review stage whose claimed decision the pending task token of `request` belongs to:
/// the review stage when its decision is stored (a claim writes both in one update), or IG
/// when the workflow has since moved on to wait for RIT (a claim's token stays until its
/// delivery is settled, and only RIT's own claim replaces it). `None` when no token is
/// pending or no decision is stored for it.
pub fn pending_stage(request: &EgressRequest) -> Option<ReviewStage> {
    request.pending_task_token.as_ref()?;
    match request.review_stage? {
        ReviewStage::Ig => request.ig_reviewer_1_decision.map(|_| ReviewStage::Ig),
        ReviewStage::Rit if request.rit_reviewer_2_decision.is_some() => Some(ReviewStage::Rit),
        ReviewStage::Rit => request.ig_reviewer_1_decision.map(|_| ReviewStage::Ig),
    }
}

/// The outcome a claimed decision stored on `request` sends to the workflow, when a claim's
/// delivery is still pending (`pending_task_token`, of the [`pending_stage`]): what
/// [`review_outcome`] sent, rebuilt from the reviewer fields the claim wrote. `None` when
/// nothing is pending or no complete decision is stored.
pub fn stored_outcome(request: &EgressRequest) -> Option<ReviewOutcome> {
    let stage = pending_stage(request)?;
    let (name, email, sub, dt, reason, decision) = match stage {
        ReviewStage::Ig => (
            &request.ig_reviewer_1_name,
            &request.ig_reviewer_1_email,
            &request.ig_reviewer_1_sub,
            &request.ig_reviewer_1_dt,
            &request.ig_reviewer_1_reason,
            request.ig_reviewer_1_decision,
        ),
        ReviewStage::Rit => (
            &request.rit_reviewer_2_name,
            &request.rit_reviewer_2_email,
            &request.rit_reviewer_2_sub,
            &request.rit_reviewer_2_dt,
            &request.rit_reviewer_2_reason,
            request.rit_reviewer_2_decision,
        ),
    };
    Some(ReviewOutcome {
        stage,
        decision: decision?,
        // The claim wrote updated_by, but the workflow's later writes replace it; the
        // reviewer's sub names them as surely.
        reviewer: if last_write_was_a_decision(request) && request.review_stage == Some(stage) {
            request.updated_by.clone()
        } else {
            format!("sub:{}", sub.as_deref()?)
        },
        reviewer_name: name.clone()?,
        reviewer_sub: sub.clone()?,
        reviewer_email: email.clone()?,
        decided_at: dt.clone()?,
        reason: reason.clone().unwrap_or_default(),
    })
}

/// `downloadData`: may a member of `groups` download `request` now? Returns the archive key.
pub fn authorize_download(
    policy: &ReviewPolicy,
    groups: &[String],
    request: &EgressRequest,
) -> Result<String> {
    if !policy.download_groups.iter().any(|g| in_group(groups, g)) {
        return Err(forbidden("You are not authorised to download egress data"));
    }
    let approved = final_approval(request.approval_mode);
    if request.egress_status != approved {
        return Err(EgressError::Conflict(format!(
            "Only approved requests can be downloaded; this request is {}",
            request.egress_status
        )));
    }
    let expected = keys::archive_key(&request.workspace_id, &request.egress_request_id).ok();
    match request.archive_key.as_deref() {
        None => Err(EgressError::Conflict(
            "The approved data is not ready for download yet; please try again later".into(),
        )),
        // Only the archive of the contract's layout is ever presigned, whatever the item says.
        Some(key) if Some(key) != expected.as_deref() => Err(EgressError::Internal(format!(
            "egress request {} records an archive outside the datalake layout",
            request.egress_request_id
        ))),
        Some(_) if request.download_count >= policy.max_downloads => {
            Err(EgressError::Conflict(DOWNLOAD_LIMIT_MESSAGE.to_string()))
        }
        Some(key) => Ok(key.to_string()),
    }
}

/// The oldest `updated_dt` `listRequests` shows, when an age limit is set (0 = no limit).
pub fn list_filter(now: OffsetDateTime, max_age_days: u32) -> ListFilter {
    ListFilter {
        updated_since: (max_age_days > 0)
            .then(|| iso_millis(now - time::Duration::days(i64::from(max_age_days)))),
    }
}

/// True when `request` is still in review: such requests are always listed, whatever their
/// age, so that no reviewer loses sight of work waiting for them.
pub fn in_review(request: &EgressRequest) -> bool {
    match request.egress_status {
        EgressStatus::Processing => true,
        EgressStatus::IgApproved => request.approval_mode == ApprovalMode::Dual,
        _ => false,
    }
}

/// True when `request` passes `filter` (the store applies the same rule in its query).
pub fn is_listed(request: &EgressRequest, filter: &ListFilter) -> bool {
    match &filter.updated_since {
        None => true,
        // ISO-8601 UTC strings of one format order like the instants they denote.
        Some(since) => request.updated_dt.as_str() >= since.as_str() || in_review(request),
    }
}

fn non_blank(value: Option<&String>) -> Option<String> {
    value
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// Who submitted `request`, as the web app's "Researcher" column shows it: the submitter's
/// e-mail (SWB's `updated_by_email`, stored as `requested_by_email`), else the store owner's
/// (`created_by_email`), else the SWB user id, which is what the store keeps as
/// `requested_by`.
pub fn submitter_shown(request: &EgressRequest) -> String {
    non_blank(request.requested_by_email.as_ref())
        .or_else(|| non_blank(request.store_owner_email.as_ref()))
        .unwrap_or_else(|| request.requested_by.clone())
}

/// The last writer of `request` as the web app shows it. The store keeps an id there: the
/// submitter's SWB user id until a decision, then the reviewer's Cognito username (a bare
/// uuid in an e-mail-as-username pool), or the workflow's own name. An id with an e-mail on
/// the item is shown as that e-mail: the submitter's, or that of the reviewer who decided
/// last (Research IT decides after Information Governance).
pub fn updated_by_shown(request: &EgressRequest) -> String {
    let by = request.updated_by.trim();
    if by == request.requested_by.trim() {
        return submitter_shown(request);
    }
    if by.starts_with("system:") {
        return request.updated_by.clone();
    }
    non_blank(request.rit_reviewer_2_email.as_ref())
        .or_else(|| non_blank(request.ig_reviewer_1_email.as_ref()))
        .unwrap_or_else(|| request.updated_by.clone())
}

/// How `request` looks to the web app. The Step Functions token and the reviewers' subs are
/// not part of it.
pub fn request_view(request: &EgressRequest) -> RequestView {
    let s = |d: Option<Decision>| d.map(|d| d.as_str().to_string());
    RequestView {
        egress_request_id: request.egress_request_id.clone(),
        egress_store_name: request.egress_store_name.clone(),
        swb_egress_store_id: request.swb_egress_store_id.clone(),
        project_id: request.project_id.clone(),
        workspace_id: request.workspace_id.clone(),
        requested_by: submitter_shown(request),
        requested_dt: request.requested_dt.clone(),
        updated_by: updated_by_shown(request),
        updated_dt: request.updated_dt.clone(),
        egress_status: request.egress_status.as_str().to_string(),
        s3_egress_store_bucket: request.s3_egress_store_bucket.clone(),
        s3_egress_store_bucket_path: request.s3_egress_store_bucket_path.clone(),
        s3_egress_store_object_list_location: request.s3_egress_store_object_list_location.clone(),
        s3_swb_object_metadata_version: request.s3_swb_object_metadata_version.to_string(),
        task_token: listed_stage(request)
            .and(request.review_handle.clone())
            .unwrap_or_default(),
        ig_reviewer_1_name: request.ig_reviewer_1_name.clone(),
        ig_reviewer_1_email: request.ig_reviewer_1_email.clone(),
        ig_reviewer_1_dt: request.ig_reviewer_1_dt.clone(),
        ig_reviewer_1_reason: request.ig_reviewer_1_reason.clone(),
        ig_reviewer_1_decision: s(request.ig_reviewer_1_decision),
        rit_reviewer_2_name: request.rit_reviewer_2_name.clone(),
        rit_reviewer_2_email: request.rit_reviewer_2_email.clone(),
        rit_reviewer_2_dt: request.rit_reviewer_2_dt.clone(),
        rit_reviewer_2_reason: request.rit_reviewer_2_reason.clone(),
        rit_reviewer_2_decision: s(request.rit_reviewer_2_decision),
        current_reviewer_group: request.current_reviewer_group.clone(),
        s3_staging_object_metadata_version: request.s3_staging_object_metadata_version.clone(),
        download_count: request.download_count.to_string(),
        is_single_approval_enabled: request.is_single_approval_enabled.to_string(),
        checks_verdict: request.checks_verdict.clone(),
        checks_summary: request.checks_summary.clone(),
    }
}

#[cfg(test)]
mod tests;
