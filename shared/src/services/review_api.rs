//! The reviewer API's three operations (`listRequests`, `updateRequest`, `downloadData`),
//! applying the rules of [`crate::domain::review`] against the ports; the read-only evidence
//! queries (`requestChecks`, `requestEvidence`, `releaseSigningKey`) are in [`evidence`].
//!
//! Every decision and download, and every refusal of one, is appended to the request's
//! audit trail. Task tokens and presigned URLs are never logged nor audited.
//!
//! When `SendTaskSuccess` fails after a decision was claimed, the claim is rolled back
//! (conditionally, see [`ReviewStore::release_decision`]) so that the request does not show a
//! decision the workflow never received and the stage can be decided again; the caller is
//! told the decision was not recorded.

use std::time::Duration;

use serde_json::{json, Value};

use crate::domain::listing;
use crate::domain::review::federation::{linked_identities, mapped_groups, IdpGroupMap};
use crate::domain::review::{
    authorize_download, authorize_list, is_stalled_claim, list_filter, plan_decision, request_view,
    resolve_reviewer, review_outcome, stored_outcome, user_pool_id, PoolStanding, ReviewPolicy,
    Reviewer, DOWNLOAD_LIMIT_MESSAGE, STALE_REQUEST_MESSAGE, UPDATE_SUCCESS_MESSAGE,
};
use crate::domain::transitions::final_approval;
use crate::error::{EgressError, Result};
use crate::model::{
    ApiEvent, CallerIdentity, DownloadDataInput, EgressRequest, PresignPayload, RequestArgument,
    ReviewStage, UpdateRequestInput,
};
use crate::ports::{
    AuditEvent, AuditLog, ClaimOutcome, ClaimedDecision, Clock, DecisionClaim, Delivery,
    DirectoryUser, DownloadCount, DownloadLinks, ListPosition, ReviewStore, ReviewerDirectory,
    WorkflowCallbacks,
};

pub use crate::domain::review::PENDING_DELIVERY_GRACE;

/// One page of `listRequests`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Listed {
    /// The requests, each with the selected fields only.
    pub items: Vec<Value>,
    /// Items read from the table's indexes for this page.
    pub read: u64,
    /// Bytes of the page as JSON.
    pub bytes: usize,
    /// True when the byte cap, not the limit, ended the page.
    pub truncated: bool,
}

/// Longest presigned URL lifetime the API will issue, whatever the configuration says.
pub const MAX_URL_EXPIRY: Duration = Duration::from_secs(3_600);

/// Configuration of the reviewer API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewSettings {
    /// Groups and limits.
    pub policy: ReviewPolicy,
    /// Datalake bucket holding the approved archives.
    pub datalake_bucket: String,
    /// Lifetime of presigned download URLs (at most [`MAX_URL_EXPIRY`]).
    pub url_expiry: Duration,
    /// `listRequests` leaves out requests not updated for this many days (0 = no limit),
    /// except those still in review.
    pub list_max_age_days: u32,
    /// The reviewer user pool, when configured; otherwise the verified token's issuer names
    /// it (see [`user_pool_id`]).
    pub user_pool_id: Option<String>,
    /// The user-pool attribute holding a federated user's IdP groups (`IDP_GROUP_CLAIM`).
    pub idp_group_claim: String,
    /// IdP group → reviewer group (`IDP_GROUP_MAP`), the mapping `pre-token-generation`
    /// applies at sign-in, applied again to the stored IdP groups at each decision.
    pub idp_group_map: IdpGroupMap,
}

/// The capabilities the reviewer API needs.
#[derive(Debug)]
pub struct ReviewService<S, D, W, A, L, C> {
    /// The requests table.
    pub store: S,
    /// The user pool.
    pub directory: D,
    /// Step Functions, to resume the parked workflow.
    pub workflow: W,
    /// The audit trail.
    pub audit: A,
    /// Presigned URLs.
    pub links: L,
    /// The server clock.
    pub clock: C,
    /// Configuration.
    pub settings: ReviewSettings,
}

const DECISION: &str = "decision";
const DOWNLOAD: &str = "download";

fn outcome_of(err: &EgressError) -> &'static str {
    match err {
        EgressError::Forbidden(_) | EgressError::Conflict(_) | EgressError::Validation(_) => {
            "refused"
        }
        _ => "failed",
    }
}

/// The new download count, or the web app's wording for why there is none.
fn counted(egress_request_id: &str, outcome: DownloadCount) -> Result<u32> {
    match outcome {
        DownloadCount::Counted(count) => Ok(count),
        DownloadCount::LimitReached => Err(EgressError::Conflict(DOWNLOAD_LIMIT_MESSAGE.into())),
        DownloadCount::Unavailable(status) => Err(EgressError::Conflict(format!(
            "The request is no longer available for download (it is {status})"
        ))),
        DownloadCount::Missing => Err(EgressError::NotFound(format!(
            "Egress request {egress_request_id} was not found"
        ))),
    }
}

fn arguments<T: serde::de::DeserializeOwned>(field: &str, value: Value) -> Result<T> {
    serde_path_to_error::deserialize::<_, RequestArgument<T>>(value)
        .map(|a| a.request)
        .map_err(|e| {
            EgressError::validation(format!(
                "invalid arguments for {field}: at {}: {}",
                e.path(),
                e.inner()
            ))
        })
}

impl<S, D, W, A, L, C> ReviewService<S, D, W, A, L, C>
where
    S: ReviewStore,
    D: ReviewerDirectory,
    W: WorkflowCallbacks,
    A: AuditLog,
    L: DownloadLinks,
    C: Clock,
{
    /// Runs the operation the resolver asked for and returns its GraphQL result.
    pub async fn dispatch(&self, event: ApiEvent) -> Result<Value> {
        let to_value = |v: Result<Value, serde_json::Error>| {
            v.map_err(|e| EgressError::Internal(format!("result cannot be serialized: {e}")))
        };
        match event.field.as_str() {
            "listRequests" => {
                let listed = self
                    .list_requests(
                        &event.identity,
                        &event.arguments,
                        event.selection.as_deref(),
                    )
                    .await?;
                Ok(Value::Array(listed.items))
            }
            "updateRequest" => {
                let input = arguments(&event.field, event.arguments)?;
                Ok(Value::String(
                    self.update_request(&event.identity, input).await?,
                ))
            }
            "downloadData" => {
                let input = arguments(&event.field, event.arguments)?;
                let payload = self.download_data(&event.identity, input).await?;
                to_value(serde_json::to_value(payload))
            }
            other => Err(EgressError::validation(format!(
                "unknown GraphQL field {other:?}"
            ))),
        }
    }

    /// `listRequests`: one page for members of an API group (see [`crate::domain::listing`]):
    /// the requests awaiting the caller's review groups, then the others newest first, with
    /// the selected fields only, bounded in count and bytes. Each index read is one `Query`
    /// bounded by what the page still needs, so the read cost follows the page, not the table.
    pub async fn list_requests(
        &self,
        caller: &CallerIdentity,
        arguments: &Value,
        selection: Option<&[String]>,
    ) -> Result<Listed> {
        if let Err(err) = authorize_list(&self.settings.policy, &caller.groups) {
            tracing::warn!(username = %caller.username, "listRequests refused: not in an API group");
            return Err(err);
        }
        let args = listing::list_arguments(arguments)?;
        let since = list_filter(self.clock.now(), self.settings.list_max_age_days).updated_since;
        let stages = listing::caller_stages(&self.settings.policy, &caller.groups);
        let phases = listing::phases(&stages);
        let (mut phase, mut after) = match &args.next_token {
            None => (0, None),
            Some(id) => {
                let last = self.store.get_request(id).await?.ok_or_else(|| {
                    EgressError::validation(format!(
                        "listRequests nextToken {id:?} is not the id of a listed request"
                    ))
                })?;
                let phase = listing::phase_of(&phases, &last, &stages);
                // A recent page only holds requests submitted since `since`: one that ended
                // before it (a request listed as awaiting, decided since) has nothing after
                // it, and DynamoDB refuses a start key outside the key condition.
                let before_window = phases.get(phase) == Some(&listing::Phase::Recent)
                    && since
                        .as_deref()
                        .is_some_and(|s| last.requested_dt.as_str() < s);
                match before_window {
                    true => (phases.len(), None),
                    false => (phase, Some(ListPosition::of(&last))),
                }
            }
        };
        let mut listed = Listed::default();
        // `[` and `]`, and one comma per item but the first: each item counts its length + 1.
        let mut bytes = 1usize;
        'phases: while let Some(&current) = phases.get(phase) {
            let index = listing::index_of(current, since.as_deref());
            loop {
                let want = args.limit - listed.items.len() as u32;
                let page = self.store.list_page(&index, after.as_ref(), want).await?;
                listed.read += page.read;
                for request in &page.requests {
                    if !listing::accepts(current, request, &stages) {
                        continue;
                    }
                    let item = listing::project(&request_view(request), selection)?;
                    let size = item.to_string().len() + 1;
                    if bytes + size > listing::MAX_LIST_BYTES {
                        listed.truncated = true;
                        break 'phases;
                    }
                    bytes += size;
                    listed.items.push(item);
                    if listed.items.len() as u32 == args.limit {
                        break 'phases;
                    }
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            phase += 1;
            after = None;
        }
        listed.bytes = bytes;
        tracing::info!(
            count = listed.items.len(),
            read = listed.read,
            bytes,
            truncated = listed.truncated,
            "listRequests"
        );
        Ok(listed)
    }

    /// `updateRequest`: records the caller's decision on the request's current stage and
    /// resumes the workflow with the server-side task token.
    pub async fn update_request(
        &self,
        caller: &CallerIdentity,
        input: UpdateRequestInput,
    ) -> Result<String> {
        let request = self.existing(&input.egress_request_id).await?;
        // The stage may have been claimed by a call that died before it resumed the workflow
        // (its function timed out): deliver that decision now, so the request does not wait
        // for one already shown as made. This caller then gets the usual answer.
        self.deliver_stalled(&request).await;
        let reviewer = self.reviewer(caller, &request, DECISION).await?;
        let claim = match plan_decision(
            &self.settings.policy,
            &reviewer,
            &request,
            &input,
            &self.clock.now_iso(),
        ) {
            Ok(claim) => claim,
            Err(err) => {
                return Err(self
                    .refuse(&request, caller, Some(&reviewer), DECISION, err)
                    .await)
            }
        };
        let claimed = self.store.claim_decision(&claim).await.and_then(|outcome| {
            match outcome {
                ClaimOutcome::Won(claimed) => Ok(claimed),
                // The web app's wording for a decision that lost a race or came too late.
                ClaimOutcome::Lost => Err(EgressError::Conflict(STALE_REQUEST_MESSAGE.into())),
            }
        });
        let claimed = match claimed {
            Ok(claimed) => claimed,
            Err(err) => {
                return Err(self
                    .refuse(&request, caller, Some(&reviewer), DECISION, err)
                    .await)
            }
        };
        let token = claimed.previous.sfn_task_token.clone().unwrap_or_default();
        let resumed = match serde_json::to_string(&review_outcome(&claim)) {
            Ok(output) if !token.is_empty() => self.workflow.send_success(&token, &output).await,
            Ok(_) => Err(EgressError::Internal(
                "the claimed request carried no task token".into(),
            )),
            Err(e) => Err(EgressError::Internal(format!("decision output: {e}"))),
        };
        match resumed {
            Ok(Delivery::Delivered) => {}
            // Step Functions says the task is no longer waiting. Either the review timed out
            // (the workflow's expiry path then marks the request EXPIRED) or an SDK retry
            // arrived after an earlier attempt had already delivered this decision. In both
            // cases releasing the claim would be wrong: in the second it would erase a
            // decision the workflow is acting on.
            Ok(Delivery::NoLongerWaiting) => {
                let refused = self.unconfirmed(&request, caller, &reviewer, &claim).await;
                self.settle(&claim.egress_request_id).await;
                return Err(refused);
            }
            Err(err) => {
                return Err(self
                    .roll_back(&request, caller, &reviewer, &claim, &claimed, err)
                    .await)
            }
        }
        tracing::info!(
            egress_request_id = %claim.egress_request_id,
            stage = %claim.stage,
            decision = %claim.decision,
            reviewer = %reviewer.username,
            "decision recorded and workflow resumed"
        );
        crate::metrics::decision(&request, claim.stage, claim.decision, &claim.at);
        self.record_decision(
            &request,
            caller,
            &reviewer,
            claim.stage,
            "success",
            json!({
                "stage": claim.stage,
                "decision": claim.decision,
                "reason": claim.reason,
                "status_after": claim.new_status,
            }),
        )
        .await
        .unwrap_or_else(|e| {
            // The decision stands (the workflow has it and records it too); an auditor still
            // finds it on the item and in the execution history.
            tracing::error!(error = %e, "decision made but not appended to the audit trail");
        });
        // Settled only once audited: a call that dies in between leaves the token pending, and
        // whoever finds it stalled (the next call, the sweep) delivers and audits it, once.
        self.settle(&claim.egress_request_id).await;
        Ok(UPDATE_SUCCESS_MESSAGE.to_string())
    }

    /// `downloadData`: a short-lived presigned URL of the approved archive, counted
    /// server-side. The client's workspace id and count are ignored.
    pub async fn download_data(
        &self,
        caller: &CallerIdentity,
        input: DownloadDataInput,
    ) -> Result<PresignPayload> {
        let request = self.existing(&input.egress_request_id).await?;
        let reviewer = self.reviewer(caller, &request, DOWNLOAD).await?;
        let key = match authorize_download(&self.settings.policy, &reviewer.groups, &request) {
            Ok(key) => key,
            Err(err) => {
                return Err(self
                    .refuse(&request, caller, Some(&reviewer), DOWNLOAD, err)
                    .await)
            }
        };
        let expiry = self.settings.url_expiry.min(MAX_URL_EXPIRY);
        // Presign first (no network): if it fails, no download is counted.
        let url = match self
            .links
            .presign_get(&self.settings.datalake_bucket, &key, expiry)
            .await
        {
            Ok(url) => url,
            Err(err) => {
                return Err(self
                    .refuse(&request, caller, Some(&reviewer), DOWNLOAD, err)
                    .await)
            }
        };
        let count = match self
            .store
            .count_download(
                &request.egress_request_id,
                final_approval(request.approval_mode),
                self.settings.policy.max_downloads,
            )
            .await
            .and_then(|outcome| counted(&request.egress_request_id, outcome))
        {
            Ok(count) => count,
            Err(err) => {
                return Err(self
                    .refuse(&request, caller, Some(&reviewer), DOWNLOAD, err)
                    .await)
            }
        };
        // No unaudited download: without the audit record the URL is not handed out.
        self.record(
            &request,
            caller,
            Some(&reviewer),
            DOWNLOAD,
            "success",
            json!({
                "download_count": count,
                "max_downloads": self.settings.policy.max_downloads,
                "url_expiry_seconds": expiry.as_secs(),
                "key": key,
            }),
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "download counted but not audited; URL withheld");
            EgressError::Transient(
                "The download could not be recorded in the audit trail; please try again".into(),
            )
        })?;
        tracing::info!(
            egress_request_id = %request.egress_request_id,
            reviewer = %reviewer.username,
            download_count = count,
            "download link issued"
        );
        crate::metrics::download(&request.egress_request_id);
        Ok(PresignPayload { presign_url: url })
    }

    async fn existing(&self, egress_request_id: &str) -> Result<EgressRequest> {
        if egress_request_id.trim().is_empty() {
            return Err(EgressError::validation("`egress_request_id` is required"));
        }
        self.store
            .get_request(egress_request_id)
            .await?
            .ok_or_else(|| {
                EgressError::NotFound(format!("Egress request {egress_request_id} was not found"))
            })
    }

    async fn reviewer(
        &self,
        caller: &CallerIdentity,
        request: &EgressRequest,
        action: &str,
    ) -> Result<Reviewer> {
        let pool = match user_pool_id(
            caller.issuer.as_deref(),
            self.settings.user_pool_id.as_deref(),
        ) {
            Ok(pool) => pool,
            Err(err) => return Err(self.refuse(request, caller, None, action, err).await),
        };
        let found = if caller.username.trim().is_empty() {
            Ok((None, PoolStanding::default()))
        } else {
            self.current_user(&pool, &caller.username).await
        };
        let resolved =
            found.and_then(|(user, standing)| resolve_reviewer(caller, user.as_ref(), &standing));
        match resolved {
            Ok(reviewer) => Ok(reviewer),
            Err(err) => Err(self.refuse(request, caller, None, action, err).await),
        }
    }

    /// The caller's pool record and [`PoolStanding`] now. Federated: the first linked
    /// identity whose provider the pool still has; their groups are their stored IdP groups
    /// mapped as at sign-in. Anyone else: their pool groups.
    async fn current_user(
        &self,
        pool: &str,
        username: &str,
    ) -> Result<(Option<DirectoryUser>, PoolStanding)> {
        let Some(user) = self.directory.user(pool, username).await? else {
            return Ok((None, PoolStanding::default()));
        };
        let mut federated_by = None;
        for identity in linked_identities(user.identities.as_deref())? {
            if self
                .directory
                .has_identity_provider(pool, &identity.provider_name)
                .await?
            {
                federated_by = Some(identity.provider_name);
                break;
            }
        }
        let groups = match federated_by {
            Some(_) => mapped_groups(
                user.custom_attributes
                    .get(&self.settings.idp_group_claim)
                    .map(String::as_str),
                &self.settings.idp_group_map,
            ),
            None => self.directory.groups(pool, username).await?,
        };
        Ok((
            Some(user),
            PoolStanding {
                federated_by,
                groups,
            },
        ))
    }

    /// Audits a refused or failed action and gives back its error.
    async fn refuse(
        &self,
        request: &EgressRequest,
        caller: &CallerIdentity,
        reviewer: Option<&Reviewer>,
        action: &str,
        err: EgressError,
    ) -> EgressError {
        let outcome = outcome_of(&err);
        tracing::warn!(
            egress_request_id = %request.egress_request_id,
            username = %caller.username,
            action,
            outcome,
            error_type = err.error_type(),
            error = %err,
            "reviewer action not carried out"
        );
        let detail = json!({ "error_type": err.error_type(), "message": err.to_string() });
        if let Err(e) = self
            .record(request, caller, reviewer, action, outcome, detail)
            .await
        {
            tracing::error!(error = %e, "refusal not appended to the audit trail");
        }
        err
    }

    /// The claim stands but the workflow did not confirm it took the decision: audited as
    /// `unknown`, and the reviewer is asked to refresh.
    async fn unconfirmed(
        &self,
        request: &EgressRequest,
        caller: &CallerIdentity,
        reviewer: &Reviewer,
        claim: &DecisionClaim,
    ) -> EgressError {
        tracing::warn!(
            egress_request_id = %claim.egress_request_id,
            stage = %claim.stage,
            "decision recorded, but the review task was no longer waiting"
        );
        let detail = json!({
            "stage": claim.stage,
            "decision": claim.decision,
            "error_type": "Conflict",
            "message": "the review task is no longer waiting for a decision",
            "claim_released": false,
        });
        if let Err(e) = self
            .record_decision(request, caller, reviewer, claim.stage, "unknown", detail)
            .await
        {
            tracing::error!(error = %e, "unconfirmed decision not appended to the audit trail");
        }
        EgressError::Conflict(
            "Your decision was recorded, but the workflow reported that this review is no \
             longer waiting (it may have expired, or already received your decision). Please \
             refresh to get the latest data"
                .into(),
        )
    }

    async fn roll_back(
        &self,
        request: &EgressRequest,
        caller: &CallerIdentity,
        reviewer: &Reviewer,
        claim: &DecisionClaim,
        claimed: &ClaimedDecision,
        err: EgressError,
    ) -> EgressError {
        let released = match self.store.release_decision(claim, claimed).await {
            Ok(released) => released,
            Err(e) => {
                tracing::error!(error = %e, "the decision claim could not be rolled back");
                false
            }
        };
        tracing::error!(
            egress_request_id = %claim.egress_request_id,
            stage = %claim.stage,
            error_type = err.error_type(),
            error = %err,
            released,
            "the workflow could not be resumed"
        );
        let detail = json!({
            "stage": claim.stage,
            "decision": claim.decision,
            "error_type": err.error_type(),
            "message": err.to_string(),
            "claim_released": released,
        });
        if let Err(e) = self
            .record(request, caller, Some(reviewer), DECISION, "failed", detail)
            .await
        {
            tracing::error!(error = %e, "failed decision not appended to the audit trail");
        }
        let message = "Your decision could not be passed to the workflow and has not been recorded";
        match err {
            EgressError::Transient(_) => {
                EgressError::Transient(format!("{message}. Please try again"))
            }
            _ => EgressError::Internal(format!(
                "{message}. Please try again or contact an administrator"
            )),
        }
    }

    /// Removes a claimed decision's pending token once Step Functions answered its delivery
    /// (best effort: a token left behind is only delivered again, and refused).
    async fn settle(&self, egress_request_id: &str) {
        if let Err(e) = self.store.settle_decision(egress_request_id).await {
            tracing::warn!(egress_request_id, error = %e, "the delivered decision's token could not be settled");
        }
    }

    /// [`Self::deliver_pending`] for a request whose claim is older than
    /// [`PENDING_DELIVERY_GRACE`] (a younger one may still be delivered by its own call). Best
    /// effort: a failure leaves the token pending for the next call.
    async fn deliver_stalled(&self, request: &EgressRequest) {
        if is_stalled_claim(request, self.clock.now()) {
            if let Err(e) = self.deliver_pending(request).await {
                tracing::warn!(
                    egress_request_id = %request.egress_request_id,
                    error = %e,
                    "the stalled decision could not be delivered yet"
                );
            }
        }
    }

    /// Delivers the decision claimed on `request` whose delivery is still pending (the call
    /// that claimed it died, or timed out, between the claim and `SendTaskSuccess`): sends the
    /// outcome stored by the claim with the pending token, settles it and audits the
    /// decision. Idempotent: a decision already delivered is refused by Step Functions as no
    /// longer waiting. Returns `None` when nothing is pending.
    pub async fn deliver_pending(&self, request: &EgressRequest) -> Result<Option<Delivery>> {
        let delivery =
            deliver_claimed(&self.workflow, &self.audit, &self.clock, request, "api").await?;
        if delivery.is_some() {
            self.settle(&request.egress_request_id).await;
        }
        Ok(delivery)
    }

    /// Audits the decision of `stage` that stands (delivered, or unconfirmed), once per
    /// stage: a recovery of the same decision does not audit it twice.
    async fn record_decision(
        &self,
        request: &EgressRequest,
        caller: &CallerIdentity,
        reviewer: &Reviewer,
        stage: ReviewStage,
        outcome: &str,
        detail: Value,
    ) -> Result<()> {
        let event = self.event(request, caller, Some(reviewer), DECISION, outcome, detail);
        self.audit
            .append_once(&event, &decision_once(stage))
            .await
            .map(|_| ())
    }

    async fn record(
        &self,
        request: &EgressRequest,
        caller: &CallerIdentity,
        reviewer: Option<&Reviewer>,
        action: &str,
        outcome: &str,
        detail: Value,
    ) -> Result<()> {
        let event = self.event(request, caller, reviewer, action, outcome, detail);
        self.audit.append(&event).await
    }

    fn event(
        &self,
        request: &EgressRequest,
        caller: &CallerIdentity,
        reviewer: Option<&Reviewer>,
        action: &str,
        outcome: &str,
        detail: Value,
    ) -> AuditEvent {
        let actor_email = reviewer
            .map(|r| r.email.clone())
            .or_else(|| caller.email.clone());
        AuditEvent {
            egress_request_id: request.egress_request_id.clone(),
            at: self.clock.now_iso(),
            actor: if caller.username.is_empty() {
                format!("sub:{}", caller.sub)
            } else {
                caller.username.clone()
            },
            actor_email,
            action: action.to_string(),
            outcome: outcome.to_string(),
            detail,
        }
    }
}

/// The once key of a stage's standing decision in the audit trail.
fn decision_once(stage: ReviewStage) -> String {
    format!("decision:{stage}")
}

/// Delivers the decision claimed on `request` whose delivery is still pending: sends the
/// outcome the claim stored with the pending token and audits the decision in the reviewer's
/// name (`delivered_by`: who found it stalled, `api` or `sweep`). The caller then settles the
/// token. Idempotent: a decision already delivered is refused by Step Functions as no longer
/// waiting (audited with outcome `unknown`). `None` when nothing is pending.
pub(crate) async fn deliver_claimed<W: WorkflowCallbacks, A: AuditLog, C: Clock>(
    workflow: &W,
    audit: &A,
    clock: &C,
    request: &EgressRequest,
    delivered_by: &str,
) -> Result<Option<Delivery>> {
    let (Some(token), Some(outcome)) = (
        request.pending_task_token.as_deref(),
        stored_outcome(request),
    ) else {
        return Ok(None);
    };
    let output = serde_json::to_string(&outcome)
        .map_err(|e| EgressError::Internal(format!("decision output: {e}")))?;
    let delivery = workflow.send_success(token, &output).await?;
    tracing::warn!(
        egress_request_id = %request.egress_request_id,
        stage = %outcome.stage,
        delivered = delivery == Delivery::Delivered,
        delivered_by,
        "a claimed decision whose call died was delivered"
    );
    let (outcome_name, delivery_detail) = match delivery {
        Delivery::Delivered => ("success", "recovered"),
        Delivery::NoLongerWaiting => ("unknown", "no longer waiting"),
    };
    let event = AuditEvent {
        egress_request_id: request.egress_request_id.clone(),
        at: clock.now_iso(),
        actor: outcome.reviewer.clone(),
        actor_email: Some(outcome.reviewer_email.clone()),
        action: DECISION.to_string(),
        outcome: outcome_name.to_string(),
        detail: json!({
            "stage": outcome.stage,
            "decision": outcome.decision,
            "reason": outcome.reason,
            "status_after": request.egress_status,
            "delivery": delivery_detail,
            "delivered_by": delivered_by,
        }),
    };
    if let Err(e) = audit
        .append_once(&event, &decision_once(outcome.stage))
        .await
    {
        tracing::error!(error = %e, "the recovered decision was not appended to the audit trail");
    }
    Ok(Some(delivery))
}

pub mod evidence;
pub mod revoke;

#[cfg(test)]
mod tests;
