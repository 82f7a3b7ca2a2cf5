//! `sweep`: reminders and escalation for waiting review stages, and the reconciliation of
//! drift between the requests, their executions, SWB's store and the buckets.
//!
//! One scheduled run looks at everything; an admin may run it on demand, as a dry run, or for
//! a few requests only ([`SweepRequest`]). Each notice is recorded on the request with a
//! conditional write *before* it is sent (a lost race sends nothing; a failed send is
//! reported and tried again at the next interval), and every repair is a conditional write on
//! the state the sweep read, so running the sweep twice, or two at once, repairs once.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use crate::domain::keys::StagingLayout;
use crate::domain::review::{
    decided_since, is_stalled_claim, pending_stage, PENDING_DELIVERY_GRACE,
};
use crate::domain::sweep::{
    archive_owner, escalation_text, expiry_warning_text, is_ended, is_final_approval, notices_due,
    reminder_text, request_drift, staged_owner, store_verdict, upload_is_stale, upload_owner,
    DriftKind, DueNotice, NoticeKind, ReminderPolicy, RequestRepair, StoreVerdict,
};
use crate::error::Result;
use crate::model::{
    DriftReport, EgressRequest, EgressStatus, ExecutionStatus, NoticeReport, ReviewStage,
    SweepReport, SweepRequest,
};
use crate::ports::{
    iso_millis, AuditEvent, AuditLog, Clock, Delivery, Email, Executions, Mailer, MultipartUpload,
    NoticeClaim, ObjectRef, ObjectStore, Publisher, RequestEnd, SweepStore, UploadListing,
    WorkflowCallbacks,
};
use crate::services::review_api::deliver_claimed;

/// Who the audit trail names for the sweep.
pub const ACTOR: &str = "system:sweep";

/// Where the sweep sends and looks.
#[derive(Debug, Clone)]
pub struct SweepSettings {
    /// When notices fall due.
    pub policy: ReminderPolicy,
    /// Information Governance reviewers' topic (the workflow's `NotifyIgReviewers`).
    pub ig_topic_arn: String,
    /// Research IT reviewers' topic.
    pub rit_topic_arn: String,
    /// The TRE admin's topic.
    pub admin_topic_arn: String,
    /// The TRE admin's e-mail, given to requesters as the contact.
    pub admin_email: String,
    /// The web app, named in reminders.
    pub app_url: String,
    /// The staging bucket.
    pub staging_bucket: String,
    /// The datalake bucket (approved archives).
    pub datalake_bucket: String,
    /// Open multipart uploads older than this (seconds) are aborted.
    pub stale_upload_after: u64,
}

/// The sweep with its ports.
#[derive(Debug)]
pub struct SweepService<St, Ex, W, O, U, A, P, M, C> {
    /// The requests and SWB's store.
    pub store: St,
    /// The workflow's executions.
    pub executions: Ex,
    /// Resuming an execution with a stalled decision.
    pub workflow: W,
    /// The buckets.
    pub objects: O,
    /// Open multipart uploads.
    pub uploads: U,
    /// The audit trail.
    pub audit: A,
    /// SNS.
    pub publisher: P,
    /// SES.
    pub mailer: M,
    /// The server clock.
    pub clock: C,
    /// Configuration.
    pub settings: SweepSettings,
}

/// The statuses a request may wait or be in flight in.
const OPEN_STATUSES: [EgressStatus; 3] = [
    EgressStatus::Processing,
    EgressStatus::IgApproved,
    EgressStatus::RitApproved,
];

/// What the sweep collects while it runs.
struct Run {
    report: SweepReport,
    act: bool,
    repair: bool,
    scope: Option<BTreeSet<String>>,
}

impl Run {
    fn in_scope(&self, id: &str) -> bool {
        self.scope.as_ref().is_none_or(|s| s.contains(id))
    }

    fn drift(
        &mut self,
        kind: DriftKind,
        id: Option<&str>,
        subject: impl Into<String>,
        action: &str,
        detail: impl Into<String>,
    ) {
        *self
            .report
            .drift_by_kind
            .entry(kind.as_str().to_string())
            .or_default() += 1;
        self.report.counts.drift_found += 1;
        match action {
            "repaired" => self.report.counts.drift_repaired += 1,
            "failed" => self.report.counts.failures += 1,
            _ => {}
        }
        self.report.drift.push(DriftReport {
            kind: kind.as_str().to_string(),
            egress_request_id: id.map(str::to_string),
            subject: subject.into(),
            action: action.to_string(),
            detail: detail.into(),
        });
    }
}

impl<St, Ex, W, O, U, A, P, M, C> SweepService<St, Ex, W, O, U, A, P, M, C>
where
    St: SweepStore,
    Ex: Executions,
    W: WorkflowCallbacks,
    O: ObjectStore,
    U: UploadListing,
    A: AuditLog,
    P: Publisher,
    M: Mailer,
    C: Clock,
{
    /// Runs one sweep. Errors reading a source fail the sweep (nothing sensible can be said
    /// without it); errors of one notice or one repair are counted and reported, and the
    /// sweep goes on with the rest.
    pub async fn run(&self, request: &SweepRequest) -> Result<SweepReport> {
        let mut run = Run {
            report: SweepReport {
                dry_run: request.dry_run,
                repair: request.repair && !request.dry_run,
                at: self.clock.now_iso(),
                ..SweepReport::default()
            },
            act: !request.dry_run,
            repair: request.repair && !request.dry_run,
            scope: request
                .egress_request_ids
                .as_ref()
                .map(|ids| ids.iter().cloned().collect()),
        };
        let open = self.open_requests(&run).await?;
        self.remind(&mut run, &open).await?;
        self.deliver_stalled(&mut run, &open).await?;
        self.reconcile_requests(&mut run, &open).await?;
        self.reconcile_stores(&mut run).await?;
        self.reconcile_staging(&mut run).await?;
        self.reconcile_uploads(&mut run).await?;
        self.reconcile_archives(&mut run, &open).await?;
        self.report_to_admin(&run).await;
        if !run.report.dry_run && run.scope.is_none() {
            crate::metrics::swept(&run.report, &open, self.clock.now());
        }
        tracing::info!(
            dry_run = run.report.dry_run,
            repair = run.report.repair,
            waiting = run.report.counts.waiting,
            reminders = run.report.counts.reminders,
            escalations = run.report.counts.escalations,
            expiry_warnings = run.report.counts.expiry_warnings,
            drift_found = run.report.counts.drift_found,
            drift_repaired = run.report.counts.drift_repaired,
            failures = run.report.counts.failures,
            "sweep done"
        );
        Ok(run.report)
    }

    /// The requests that may be waiting or in flight (statuses `PROCESSING`, `IGAPPROVED`,
    /// `RITAPPROVED`), from the status index, or by id when the sweep is scoped.
    async fn open_requests(&self, run: &Run) -> Result<Vec<EgressRequest>> {
        let mut out = Vec::new();
        match &run.scope {
            Some(ids) => {
                for id in ids {
                    if let Some((r, _)) = self.store.marked(id).await? {
                        if OPEN_STATUSES.contains(&r.egress_status) {
                            out.push(r);
                        }
                    }
                }
            }
            None => {
                for status in OPEN_STATUSES {
                    out.extend(self.store.with_status(status).await?);
                }
            }
        }
        Ok(out)
    }

    async fn remind(&self, run: &mut Run, open: &[EgressRequest]) -> Result<()> {
        let now = self.clock.now();
        for listed in open {
            if crate::domain::sweep::waiting_stage(listed).is_none() {
                continue;
            }
            // The index holds neither the marks nor necessarily the latest write.
            let Some((request, marks)) = self.store.marked(&listed.egress_request_id).await? else {
                continue;
            };
            if crate::domain::sweep::waiting_stage(&request).is_none() {
                continue;
            }
            run.report.counts.waiting += 1;
            for notice in notices_due(&request, &marks, &self.settings.policy, now) {
                let outcome = self.notice(run, &request, &notice).await;
                run.report.notices.push(NoticeReport {
                    egress_request_id: request.egress_request_id.clone(),
                    kind: notice.kind.as_str().to_string(),
                    stage: notice.stage.as_str().to_string(),
                    number: notice.number,
                    outcome: outcome.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Records, then sends, one notice; returns its outcome.
    async fn notice(
        &self,
        run: &mut Run,
        request: &EgressRequest,
        notice: &DueNotice,
    ) -> &'static str {
        if !run.act {
            return "due";
        }
        let at = self.clock.now_iso();
        let claim = NoticeClaim {
            egress_request_id: &request.egress_request_id,
            kind: notice.kind.as_str(),
            handle: &notice.handle,
            awaiting_status: notice.awaiting_status,
            previous_handle: notice.previous_handle.as_deref(),
            previous_count: notice.previous_count,
            count: notice.number,
            at: &at,
        };
        match self.store.claim_notice(&claim).await {
            Ok(true) => {}
            Ok(false) => return "lost",
            Err(err) => {
                tracing::error!(egress_request_id = %request.egress_request_id, error_type = err.error_type(), error = %err, "notice not recorded");
                run.report.counts.failures += 1;
                return "failed";
            }
        }
        let sent = match notice.kind {
            NoticeKind::Reminder => {
                let (subject, message) = reminder_text(request, notice, &self.settings.app_url);
                let topic = match notice.stage {
                    ReviewStage::Ig => &self.settings.ig_topic_arn,
                    ReviewStage::Rit => &self.settings.rit_topic_arn,
                };
                self.publisher
                    .publish(topic, &subject, &message)
                    .await
                    .map(|_| ())
            }
            NoticeKind::Escalation => {
                let (subject, message) = escalation_text(request, notice);
                self.publisher
                    .publish(&self.settings.admin_topic_arn, &subject, &message)
                    .await
                    .map(|_| ())
            }
            NoticeKind::ExpiryWarning => {
                let to = crate::domain::notify::recipients(request);
                if to.is_empty() {
                    Ok(())
                } else {
                    let (subject, text) =
                        expiry_warning_text(request, notice, &self.settings.admin_email);
                    self.mailer
                        .send(&Email {
                            to,
                            subject,
                            text,
                            html: None,
                        })
                        .await
                        .map(|_| ())
                }
            }
        };
        let (outcome, detail) = match &sent {
            Ok(()) => {
                match notice.kind {
                    NoticeKind::Reminder => run.report.counts.reminders += 1,
                    NoticeKind::Escalation => run.report.counts.escalations += 1,
                    NoticeKind::ExpiryWarning => run.report.counts.expiry_warnings += 1,
                }
                (
                    "success",
                    json!({ "stage": notice.stage.as_str(), "number": notice.number, "waited_seconds": notice.waited }),
                )
            }
            Err(err) => {
                run.report.counts.failures += 1;
                (
                    "failed",
                    json!({ "stage": notice.stage.as_str(), "number": notice.number, "error_type": err.error_type(), "error": err.to_string() }),
                )
            }
        };
        self.audit_event(
            &request.egress_request_id,
            notice.kind.as_str(),
            outcome,
            detail,
        )
        .await;
        if sent.is_ok() {
            "sent"
        } else {
            "failed"
        }
    }

    async fn audit_event(&self, id: &str, action: &str, outcome: &str, detail: serde_json::Value) {
        let event = AuditEvent {
            egress_request_id: id.to_string(),
            at: self.clock.now_iso(),
            actor: ACTOR.to_string(),
            actor_email: None,
            action: action.to_string(),
            outcome: outcome.to_string(),
            detail,
        };
        // Best effort: the sweep's report says what happened whatever the trail accepts.
        if let Err(err) = self.audit.append(&event).await {
            tracing::error!(egress_request_id = id, action, error = %err, "sweep event not audited");
        }
    }

    async fn running(&self, id: &str) -> Result<bool> {
        Ok(self
            .executions
            .describe(id)
            .await?
            .is_some_and(|e| e.status == ExecutionStatus::Running))
    }

    /// Delivers the decisions whose API call died after claiming them, and audits those whose
    /// call died after delivering them but before settling (the workflow has moved on: its
    /// later writes make the decision no longer the last write). Candidates are the open
    /// requests and those rejected within two review timeouts (a claim is made while a stage
    /// waits, and a request waits at most that long) with a decision made within that
    /// window; each is read again (the index does not carry the pending token) and, when it
    /// still holds a pending token older than [`PENDING_DELIVERY_GRACE`], delivered. Delivering
    /// is idempotent (a decision already taken is refused by Step Functions, and then only
    /// audited, once per stage), so two sweeps, or a sweep and an API call, deliver once.
    async fn deliver_stalled(&self, run: &mut Run, open: &[EgressRequest]) -> Result<()> {
        let now = self.clock.now();
        let window = time::Duration::seconds(
            i64::try_from(self.settings.policy.review_timeout.saturating_mul(2))
                .unwrap_or(i64::MAX / 2),
        ) + PENDING_DELIVERY_GRACE;
        let since = iso_millis(now - window);
        let rejected = self
            .store
            .with_status_since(EgressStatus::Rejected, &since)
            .await?;
        for listed in open.iter().chain(&rejected) {
            let id = listed.egress_request_id.as_str();
            if !run.in_scope(id) || !decided_since(listed, now - window) {
                continue;
            }
            let Some((request, _)) = self.store.marked(id).await? else {
                continue;
            };
            if !is_stalled_claim(&request, now) {
                continue;
            }
            let kind = DriftKind::StalledDecision;
            let what = format!(
                "the {} decision claimed at {} was never delivered to the workflow",
                pending_stage(&request)
                    .map(|s| s.as_str())
                    .unwrap_or("review"),
                request.updated_dt
            );
            if !run.repair {
                run.drift(kind, Some(id), id, "reported", what.clone());
                self.audit_drift(run, id, kind, "reported", &what).await;
                continue;
            }
            let (action, detail) = match deliver_claimed(
                &self.workflow,
                &self.audit,
                &self.clock,
                &request,
                ACTOR,
            )
            .await
            {
                Ok(Some(delivery)) => {
                    let token = request.pending_task_token.as_deref().unwrap_or_default();
                    if let Err(e) = self.store.settle_decision(id, token).await {
                        tracing::warn!(egress_request_id = id, error = %e, "the delivered decision's token could not be settled");
                    }
                    match delivery {
                        Delivery::Delivered => ("repaired", format!("{what}: delivered")),
                        Delivery::NoLongerWaiting => (
                            "already_repaired",
                            format!("{what}: the workflow no longer waits for it"),
                        ),
                    }
                }
                Ok(None) => ("reported", format!("{what}: no complete decision stored")),
                Err(e) => ("failed", format!("{what}: {e}")),
            };
            run.drift(kind, Some(id), id, action, detail.clone());
            self.audit_drift(run, id, kind, action, &detail).await;
        }
        Ok(())
    }

    async fn reconcile_requests(&self, run: &mut Run, open: &[EgressRequest]) -> Result<()> {
        for request in open {
            let id = request.egress_request_id.as_str();
            let execution = self.executions.describe(id).await?;
            let Some(drift) = request_drift(request, execution.as_ref()) else {
                continue;
            };
            let (to, failure) = match &drift.repair {
                RequestRepair::Fail { error, cause } => {
                    (EgressStatus::Failed, Some((error.clone(), cause.clone())))
                }
                RequestRepair::Expire => (EgressStatus::Expired, None),
                RequestRepair::ReportOnly(why) => {
                    run.drift(drift.kind, Some(id), id, "reported", why.clone());
                    self.audit_drift(run, id, drift.kind, "reported", why).await;
                    continue;
                }
            };
            let what = format!(
                "request {} would end {to}{}",
                request.egress_status,
                failure
                    .as_ref()
                    .map(|(e, c)| format!(" ({e}: {c})"))
                    .unwrap_or_default()
            );
            if !run.repair {
                run.drift(drift.kind, Some(id), id, "reported", what.clone());
                self.audit_drift(run, id, drift.kind, "reported", &what)
                    .await;
                continue;
            }
            let at = self.clock.now_iso();
            let ended = self
                .store
                .end_request(&RequestEnd {
                    egress_request_id: id,
                    from: request.egress_status,
                    to,
                    failure: failure.as_ref().map(|(e, c)| (e.as_str(), c.as_str())),
                    at: &at,
                })
                .await;
            let (action, detail) = match ended {
                Ok(true) => {
                    let mut detail = format!("{} -> {to}", request.egress_status);
                    // As the failure and expiry paths do: release SWB's store if this request
                    // holds it, and delete what was staged (with the proof of deletion).
                    match self
                        .store
                        .release_store(&request.swb_egress_store_id, id, "PENDING")
                        .await
                    {
                        Ok(true) => detail.push_str("; SWB egress store released to PENDING"),
                        Ok(false) => {}
                        Err(e) => detail.push_str(&format!("; SWB store not released: {e}")),
                    }
                    match self.clean_staged(&request.workspace_id, id).await {
                        Ok(n) => {
                            detail.push_str(&format!("; {n} staged object version(s) deleted"))
                        }
                        Err(e) => detail.push_str(&format!("; staged data not deleted: {e}")),
                    }
                    ("repaired", detail)
                }
                Ok(false) => (
                    "already_repaired",
                    "the request changed since it was read".into(),
                ),
                Err(e) => ("failed", e.to_string()),
            };
            run.drift(drift.kind, Some(id), id, action, detail.clone());
            self.audit_drift(run, id, drift.kind, action, &detail).await;
        }
        Ok(())
    }

    async fn audit_drift(&self, run: &Run, id: &str, kind: DriftKind, action: &str, detail: &str) {
        // A dry run writes nothing, not even to the audit trail.
        if run.act {
            self.audit_event(
                id,
                "sweep",
                if action == "failed" {
                    "failed"
                } else {
                    "success"
                },
                json!({ "drift": kind.as_str(), "action": action, "detail": detail }),
            )
            .await;
        }
    }

    async fn clean_staged(&self, workspace_id: &str, id: &str) -> Result<u64> {
        let layout = StagingLayout::new(workspace_id, id)?;
        crate::services::cleanup::delete_staged_proved(
            &self.objects,
            &self.audit,
            &self.clock,
            ACTOR,
            id,
            &self.settings.staging_bucket,
            &layout,
        )
        .await
    }

    async fn reconcile_stores(&self, run: &mut Run) -> Result<()> {
        for store in self.store.processing_stores().await? {
            if let Some(scope) = &run.scope {
                if !store.lock.as_ref().is_some_and(|l| scope.contains(l)) {
                    continue;
                }
            }
            let (owner, running) = match &store.lock {
                Some(lock) => (
                    self.store.marked(lock).await?.map(|(r, _)| r),
                    self.running(lock).await?,
                ),
                None => (None, false),
            };
            let subject = format!("SWB egress store {}", store.id);
            match store_verdict(&store, owner.as_ref(), running) {
                StoreVerdict::InFlight => {}
                StoreVerdict::Unowned => {
                    run.drift(
                        DriftKind::SwbStoreStuck,
                        None,
                        subject,
                        "reported",
                        "PROCESSING without our lock (SWB rewrote the item): check whether a request is in flight",
                    );
                }
                StoreVerdict::Release { lock, to } => {
                    let why = match &owner {
                        None => format!("locked by request {lock}, which does not exist"),
                        Some(r) => {
                            format!("locked by request {lock}, which is {}", r.egress_status)
                        }
                    };
                    let (action, detail) = if !run.repair {
                        ("reported", format!("{why}; would be released to {to}"))
                    } else {
                        match self.store.release_store(&store.id, &lock, to).await {
                            Ok(true) => ("repaired", format!("{why}; released to {to}")),
                            Ok(false) => ("already_repaired", format!("{why}; changed since read")),
                            Err(e) => ("failed", format!("{why}; {e}")),
                        }
                    };
                    run.drift(
                        DriftKind::SwbStoreStuck,
                        Some(&lock),
                        subject,
                        action,
                        detail.clone(),
                    );
                    self.audit_drift(run, &lock, DriftKind::SwbStoreStuck, action, &detail)
                        .await;
                }
            }
        }
        Ok(())
    }

    async fn reconcile_staging(&self, run: &mut Run) -> Result<()> {
        let bucket = self.settings.staging_bucket.clone();
        let mut owners: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut continuation: Option<String> = None;
        loop {
            let page = self
                .objects
                .list_objects(&bucket, "", continuation.as_deref())
                .await?;
            for o in &page.objects {
                if let Some((ws, req)) = staged_owner(&o.key) {
                    if run.in_scope(req) {
                        *owners.entry((ws.to_string(), req.to_string())).or_default() += 1;
                    }
                }
            }
            match page.next {
                Some(next) => continuation = Some(next),
                None => break,
            }
        }
        for ((ws, id), objects) in owners {
            let Some((request, _)) = self.store.marked(&id).await? else {
                run.drift(
                    DriftKind::StagedAfterEnd,
                    Some(&id),
                    format!("s3://{bucket}/{ws}/{id}/"),
                    "reported",
                    format!("{objects} staged object(s) of a request that does not exist"),
                );
                continue;
            };
            if !is_ended(&request) || self.running(&id).await? {
                continue;
            }
            let subject = format!("s3://{bucket}/{ws}/{id}/");
            let why = format!(
                "{objects} staged object(s) of a request that is {}",
                request.egress_status
            );
            // An approval whose archive is missing keeps its staged copy: it may be the only one.
            let archived = match (&request.archive_key, is_final_approval(&request)) {
                (_, false) => true,
                (None, true) => false,
                (Some(key), true) => self
                    .objects
                    .head(&ObjectRef::new(&self.settings.datalake_bucket, key))
                    .await?
                    .is_some(),
            };
            let (action, detail) = if !archived {
                ("reported", format!("{why}; kept: its archive is missing"))
            } else if !run.repair {
                ("reported", why)
            } else {
                match self.clean_staged(&ws, &id).await {
                    Ok(n) => (
                        "repaired",
                        format!("{why}; {n} version(s) deleted with proof"),
                    ),
                    Err(e) => ("failed", format!("{why}; {e}")),
                }
            };
            run.drift(
                DriftKind::StagedAfterEnd,
                Some(&id),
                subject,
                action,
                detail.clone(),
            );
            self.audit_drift(run, &id, DriftKind::StagedAfterEnd, action, &detail)
                .await;
        }
        Ok(())
    }

    async fn reconcile_uploads(&self, run: &mut Run) -> Result<()> {
        let now = self.clock.now();
        // The staging bucket is this project's alone; the datalake may be shared, so only the
        // archives' uploads there (`approved_egress/<ws>/<id>/egress_data.zip`) are ours.
        let buckets = [
            (self.settings.staging_bucket.clone(), false),
            (self.settings.datalake_bucket.clone(), true),
        ];
        for (bucket, shared) in buckets {
            for upload in self.uploads.open_uploads(&bucket).await? {
                let owner = match shared {
                    true => match archive_owner(&upload.key) {
                        Some((_, id)) => Some(id.to_string()),
                        None => continue,
                    },
                    false => upload_owner(&upload.key).map(str::to_string),
                };
                if run.scope.is_some() && !owner.as_deref().is_some_and(|o| run.in_scope(o)) {
                    continue;
                }
                if !upload_is_stale(upload.initiated, now, self.settings.stale_upload_after) {
                    continue;
                }
                let subject = format!(
                    "s3://{}/{} upload {}",
                    upload.bucket, upload.key, upload.upload_id
                );
                let why = format!(
                    "multipart upload open since {}",
                    crate::ports::iso_millis(upload.initiated)
                );
                let (action, detail) = if !run.repair {
                    ("reported", why)
                } else {
                    match self
                        .objects
                        .abort_multipart(&MultipartUpload {
                            bucket: upload.bucket.clone(),
                            key: upload.key.clone(),
                            upload_id: upload.upload_id.clone(),
                        })
                        .await
                    {
                        Ok(()) => ("repaired", format!("{why}; aborted")),
                        // Gone meanwhile (completed or aborted by its writer): nothing to do.
                        Err(crate::EgressError::NotFound(_)) => {
                            ("already_repaired", format!("{why}; no longer open"))
                        }
                        Err(e) => ("failed", format!("{why}; {e}")),
                    }
                };
                run.drift(
                    DriftKind::StaleMultipartUpload,
                    owner.as_deref(),
                    subject,
                    action,
                    detail.clone(),
                );
                if let Some(owner) = &owner {
                    self.audit_drift(run, owner, DriftKind::StaleMultipartUpload, action, &detail)
                        .await;
                }
            }
        }
        Ok(())
    }

    async fn reconcile_archives(&self, run: &mut Run, open: &[EgressRequest]) -> Result<()> {
        let bucket = self.settings.datalake_bucket.clone();
        // Final approvals whose workflow has finished must have their archive.
        for request in open.iter().filter(|r| is_final_approval(r)) {
            let id = &request.egress_request_id;
            if self.running(id).await? {
                continue;
            }
            let present = match &request.archive_key {
                Some(key) => self
                    .objects
                    .head(&ObjectRef::new(&bucket, key))
                    .await?
                    .is_some(),
                None => false,
            };
            if !present {
                let detail = format!(
                    "{} with {}",
                    request.egress_status,
                    request
                        .archive_key
                        .as_deref()
                        .map(|k| format!("archive_key {k} missing from the datalake"))
                        .unwrap_or_else(|| "no archive recorded".into())
                );
                run.drift(
                    DriftKind::ApprovedWithoutArchive,
                    Some(id),
                    id.clone(),
                    "reported",
                    detail.clone(),
                );
                self.audit_drift(
                    run,
                    id,
                    DriftKind::ApprovedWithoutArchive,
                    "reported",
                    &detail,
                )
                .await;
            }
        }
        // Archives must belong to a final approval (a failure after the archive keeps it for
        // the admin: reported here until the admin decides).
        let mut continuation: Option<String> = None;
        loop {
            let page = self
                .objects
                .list_objects(&bucket, "approved_egress/", continuation.as_deref())
                .await?;
            for o in &page.objects {
                let Some((_, id)) = archive_owner(&o.key) else {
                    continue;
                };
                if !run.in_scope(id) {
                    continue;
                }
                let request = self.store.marked(id).await?.map(|(r, _)| r);
                let approved = request.as_ref().is_some_and(is_final_approval);
                if !approved {
                    let detail = match &request {
                        None => "an archive of a request that does not exist".to_string(),
                        Some(r) => format!("an archive of a request that is {}", r.egress_status),
                    };
                    run.drift(
                        DriftKind::ArchiveWithoutApproval,
                        Some(id),
                        format!("s3://{bucket}/{}", o.key),
                        "reported",
                        detail.clone(),
                    );
                    if request.is_some() {
                        self.audit_drift(
                            run,
                            id,
                            DriftKind::ArchiveWithoutApproval,
                            "reported",
                            &detail,
                        )
                        .await;
                    }
                }
            }
            match page.next {
                Some(next) => continuation = Some(next),
                None => break,
            }
        }
        Ok(())
    }

    /// One message to the admin topic when drift was found (or a notice or repair failed).
    async fn report_to_admin(&self, run: &Run) {
        let r = &run.report;
        if r.drift.is_empty() && r.counts.failures == 0 {
            return;
        }
        let subject = format!(
            "Egress sweep{}: {} drift found, {} repaired, {} failure(s)",
            if r.dry_run { " (dry run)" } else { "" },
            r.counts.drift_found,
            r.counts.drift_repaired,
            r.counts.failures
        );
        // Bounded: SNS messages are limited to 256 KB; the sweep's result has the full list.
        const MAX_LINES: usize = 50;
        let mut message = format!("{subject}.\n");
        for d in r.drift.iter().take(MAX_LINES) {
            message.push_str(&format!(
                "- {} [{}] {}: {}\n",
                d.kind, d.action, d.subject, d.detail
            ));
        }
        if r.drift.len() > MAX_LINES {
            message.push_str(&format!(
                "... and {} more (see the sweep's log)\n",
                r.drift.len() - MAX_LINES
            ));
        }
        if let Err(err) = self
            .publisher
            .publish(&self.settings.admin_topic_arn, &subject, &message)
            .await
        {
            tracing::error!(error = %err, "sweep report not published to the admin topic");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{
        parked_at, sample_request, FakeExecutions, FakeUploadListing, FakeWorkflowCallbacks,
        InMemoryAuditLog, InMemoryObjectStore, InMemorySweepStore, RecordingMailer,
        RecordingPublisher,
    };
    use crate::model::{ApprovalMode, Decision, ExecutionInfo, SwbStoreItem};
    use crate::ports::{Destination, FixedClock, ListedUpload};
    use time::macros::datetime;

    type Service = SweepService<
        InMemorySweepStore,
        FakeExecutions,
        FakeWorkflowCallbacks,
        InMemoryObjectStore,
        FakeUploadListing,
        InMemoryAuditLog,
        RecordingPublisher,
        RecordingMailer,
        FixedClock,
    >;

    /// The stage parked at 09:00; `seconds` later.
    fn service(seconds: i64) -> Service {
        SweepService {
            store: InMemorySweepStore::default(),
            executions: FakeExecutions::default(),
            workflow: FakeWorkflowCallbacks::default(),
            objects: InMemoryObjectStore::new()
                .with_bucket("staging", true)
                .with_bucket("datalake", false),
            uploads: FakeUploadListing::default(),
            audit: InMemoryAuditLog::default(),
            publisher: RecordingPublisher::default(),
            mailer: RecordingMailer::default(),
            clock: FixedClock(
                datetime!(2024-05-01 09:00:00 UTC) + time::Duration::seconds(seconds),
            ),
            settings: SweepSettings {
                policy: ReminderPolicy {
                    remind_after: 100,
                    remind_every: 50,
                    escalate_after: 300,
                    warn_before_expiry: 100,
                    review_timeout: 1000,
                },
                ig_topic_arn: "arn:ig".into(),
                rit_topic_arn: "arn:rit".into(),
                admin_topic_arn: "arn:admin".into(),
                admin_email: "admin@example.org".into(),
                app_url: "https://app".into(),
                staging_bucket: "staging".into(),
                datalake_bucket: "datalake".into(),
                stale_upload_after: 86_400,
            },
        }
    }

    fn waiting(id: &str) -> EgressRequest {
        let mut r = parked_at(
            sample_request(id, ApprovalMode::Single),
            ReviewStage::Ig,
            "t",
            "h-1",
        );
        r.updated_dt = "2024-05-01T09:00:00.000Z".into();
        r
    }

    fn execution(status: ExecutionStatus) -> ExecutionInfo {
        ExecutionInfo {
            status,
            error: None,
            cause: None,
            output: None,
        }
    }

    fn running() -> ExecutionInfo {
        execution(ExecutionStatus::Running)
    }

    const REPAIR: SweepRequest = SweepRequest {
        dry_run: false,
        repair: true,
        egress_request_ids: None,
    };

    const DRY_RUN: SweepRequest = SweepRequest {
        dry_run: true,
        ..REPAIR
    };

    fn store_status(s: &Service, id: &str) -> Option<String> {
        s.store.store(id).unwrap().status
    }

    fn to(topic: &str, s: &Service) -> usize {
        s.publisher
            .all()
            .iter()
            .filter(|(t, _, _)| t == topic)
            .count()
    }

    #[tokio::test]
    async fn when_a_stage_is_due_a_reminder_then_it_is_sent_once_and_recorded() {
        let s = service(120);
        s.store.put(waiting("req-1"));
        s.executions.set("req-1", running());
        let report = s.run(&REPAIR).await.unwrap();
        assert_eq!(report.counts.reminders, 1);
        assert_eq!(to("arn:ig", &s), 1);
        let (_, marks) = s.store.get("req-1").unwrap();
        assert_eq!(
            (marks.reminder_handle.as_deref(), marks.reminders_sent),
            (Some("h-1"), 1)
        );
        // A second sweep at the same instant sends nothing.
        let again = s.run(&REPAIR).await.unwrap();
        assert_eq!(again.counts.reminders, 0);
        assert_eq!(to("arn:ig", &s), 1);
        assert!(s
            .audit
            .events()
            .iter()
            .any(|e| e.action == "reminder" && e.outcome == "success"));
        assert!(report.drift.is_empty());
    }

    #[tokio::test]
    async fn when_overdue_and_near_expiry_then_admin_and_requester_are_told_once() {
        let s = service(950);
        s.store.put(waiting("req-1"));
        s.executions.set("req-1", running());
        let report = s.run(&SweepRequest::default()).await.unwrap();
        assert_eq!(
            (
                report.counts.reminders,
                report.counts.escalations,
                report.counts.expiry_warnings
            ),
            (1, 1, 1)
        );
        assert_eq!(to("arn:admin", &s), 1);
        assert_eq!(s.mailer.sent().len(), 1);
        assert!(s.mailer.sent()[0].subject.contains("expires"));
        s.run(&SweepRequest::default()).await.unwrap();
        assert_eq!((to("arn:admin", &s), s.mailer.sent().len()), (1, 1));
    }

    #[tokio::test]
    async fn when_the_request_was_decided_then_no_notice_is_sent() {
        let s = service(950);
        let mut r = waiting("req-1");
        r.egress_status = EgressStatus::IgApproved;
        r.review_handle = None;
        r.archive_key = Some("approved_egress/ws-1/req-1/egress_data.zip".into());
        s.store.put(r);
        s.executions.set("req-1", running());
        let report = s.run(&REPAIR).await.unwrap();
        assert!(report.notices.is_empty());
        assert!(s.publisher.all().is_empty());
    }

    fn plant_drift(s: &Service) {
        // A request PROCESSING with no execution, holding its store, with a staged file.
        s.store.put(waiting("req-lost"));
        s.store.put_store(SwbStoreItem {
            id: "store-1".into(),
            status: Some("PROCESSING".into()),
            lock: Some("req-lost".into()),
        });
        s.objects
            .put_object("staging", "ws-1/req-lost/a.csv", "a,b\n");
        // A store locked by a request that does not exist.
        s.store.put_store(SwbStoreItem {
            id: "store-2".into(),
            status: Some("PROCESSING".into()),
            lock: Some("ghost".into()),
        });
        // An archive nobody approved.
        s.objects.put_object(
            "datalake",
            "approved_egress/ws-1/ghost/egress_data.zip",
            "zip",
        );
    }

    #[tokio::test]
    async fn when_dry_running_then_drift_is_reported_and_nothing_changes() {
        let s = service(120);
        plant_drift(&s);
        let report = s.run(&DRY_RUN).await.unwrap();
        let kinds: Vec<&str> = report.drift.iter().map(|d| d.kind.as_str()).collect();
        assert!(kinds.contains(&"processing_without_execution"), "{kinds:?}");
        assert!(kinds.contains(&"swb_store_stuck"), "{kinds:?}");
        assert!(kinds.contains(&"archive_without_approval"), "{kinds:?}");
        assert!(report.drift.iter().all(|d| d.action == "reported"));
        assert_eq!(
            s.store.get("req-lost").unwrap().0.egress_status,
            EgressStatus::Processing
        );
        assert_eq!(
            s.store.store("store-2").unwrap().lock.as_deref(),
            Some("ghost")
        );
        assert!(s.objects.object("staging", "ws-1/req-lost/a.csv").is_some());
        assert!(s.audit.events().is_empty());
        assert!(report.notices.iter().all(|n| n.outcome == "due"));
        // The admin still hears what a sweep found.
        assert_eq!(to("arn:admin", &s), 1);
    }

    #[tokio::test]
    async fn when_repairing_then_each_safe_drift_is_repaired_once() {
        let s = service(120);
        plant_drift(&s);
        let report = s.run(&REPAIR).await.unwrap();
        let lost = s.store.get("req-lost").unwrap().0;
        assert_eq!(lost.egress_status, EgressStatus::Failed);
        assert_eq!(lost.failure_error.as_deref(), Some("ExecutionMissing"));
        assert_eq!(store_status(&s, "store-1").as_deref(), Some("PENDING"));
        assert_eq!(store_status(&s, "store-2").as_deref(), Some("PENDING"));
        assert!(s.objects.object("staging", "ws-1/req-lost/a.csv").is_none());
        assert!(s
            .audit
            .events()
            .iter()
            .any(|e| e.action == "deletion_confirmed"));
        // Reported only: the archive stays.
        assert!(s
            .objects
            .object("datalake", "approved_egress/ws-1/ghost/egress_data.zip")
            .is_some());
        assert_eq!(report.counts.drift_repaired, 2);
        // Idempotent: the next sweep finds only what it must not repair.
        let again = s.run(&REPAIR).await.unwrap();
        let kinds: Vec<&str> = again.drift.iter().map(|d| d.kind.as_str()).collect();
        assert_eq!(kinds, vec!["archive_without_approval"]);
    }

    /// A dual request whose IG decision (`decision`) was claimed at 09:00 by a call that died
    /// before delivering it: the token is still pending, the execution still waits.
    fn stalled(id: &str, decision: Decision) -> EgressRequest {
        let mut r = parked_at(
            sample_request(id, ApprovalMode::Dual),
            ReviewStage::Ig,
            &format!("tok-{id}"),
            "h-1",
        );
        r.requested_dt = "2024-05-01T08:50:00.000Z".into();
        r.egress_status = match decision {
            Decision::Approved => EgressStatus::IgApproved,
            Decision::Rejected => EgressStatus::Rejected,
        };
        r.pending_task_token = r.sfn_task_token.take();
        r.review_handle = None;
        r.updated_by = "iris".into();
        r.updated_dt = "2024-05-01T09:00:00.000Z".into();
        r.ig_reviewer_1_name = Some("Iris".into());
        r.ig_reviewer_1_email = Some("iris@example.org".into());
        r.ig_reviewer_1_sub = Some("sub-iris".into());
        r.ig_reviewer_1_dt = Some(r.updated_dt.clone());
        r.ig_reviewer_1_reason = Some("checked".into());
        r.ig_reviewer_1_decision = Some(decision);
        r
    }

    #[tokio::test]
    async fn when_a_claimed_decision_was_never_delivered_then_the_sweep_delivers_it_once() {
        let s = service(120);
        for (id, decision) in [("req-a", Decision::Approved), ("req-r", Decision::Rejected)] {
            s.store.put(stalled(id, decision));
            s.executions.set(id, running());
        }
        let report = s.run(&REPAIR).await.unwrap();
        let stalled: Vec<_> = report
            .drift
            .iter()
            .filter(|d| d.kind == "stalled_decision")
            .collect();
        assert_eq!(stalled.len(), 2, "{:?}", report.drift);
        assert!(
            stalled.iter().all(|d| d.action == "repaired"),
            "{stalled:?}"
        );
        let sent = s.workflow.completed();
        for (id, decision) in [("req-a", "APPROVED"), ("req-r", "REJECTED")] {
            let output: serde_json::Value =
                serde_json::from_str(&sent[&format!("tok-{id}")]).unwrap();
            assert_eq!(output["decision"], decision);
            assert_eq!(output["reviewer"], "iris");
            assert_eq!(s.store.get(id).unwrap().0.pending_task_token, None);
        }
        let decisions: Vec<_> = s
            .audit
            .events()
            .into_iter()
            .filter(|e| e.action == "decision")
            .collect();
        assert_eq!(decisions.len(), 2);
        assert!(decisions.iter().all(|e| e.actor == "iris"
            && e.outcome == "success"
            && e.detail["delivered_by"] == ACTOR));

        // Once: the next sweep finds nothing pending.
        let again = s.run(&REPAIR).await.unwrap();
        assert!(again.drift.iter().all(|d| d.kind != "stalled_decision"));
        assert_eq!(s.workflow.completed().len(), 2);
    }

    /// The call that claimed a decision delivered it and died before auditing it or settling
    /// the token; the workflow then moved on: a rejection saved and ended (`req-r`, single
    /// mode), an IG approval saved and parked at RIT with a new token (`req-d`, dual). The
    /// decision is no longer the requests' last write, yet the sweep audits each once, in
    /// the reviewer's name, and settles the token without touching RIT's.
    #[tokio::test]
    async fn when_a_delivered_decision_was_never_audited_and_the_workflow_moved_on_then_the_sweep_audits_it_once(
    ) {
        let s = service(120);
        let mut rejected = stalled("req-r", Decision::Rejected);
        rejected.approval_mode = ApprovalMode::Single;
        rejected.updated_dt = "2024-05-01T09:00:01.000Z".into();
        let mut at_rit = stalled("req-d", Decision::Approved);
        at_rit.review_stage = Some(ReviewStage::Rit);
        at_rit.sfn_task_token = Some("tok-rit".into());
        at_rit.review_handle = Some("h-rit".into());
        at_rit.updated_dt = "2024-05-01T09:00:02.000Z".into();
        for request in [rejected, at_rit] {
            let id = request.egress_request_id.clone();
            let token = request.pending_task_token.clone().unwrap();
            // Delivered: Step Functions no longer waits for this token.
            s.workflow
                .completed
                .lock()
                .unwrap()
                .insert(token, "{}".into());
            s.executions.set(
                &id,
                execution(if id == "req-r" {
                    ExecutionStatus::Succeeded
                } else {
                    ExecutionStatus::Running
                }),
            );
            s.store.put(request);
        }

        let report = s.run(&REPAIR).await.unwrap();
        let found: Vec<_> = report
            .drift
            .iter()
            .filter(|d| d.kind == "stalled_decision")
            .collect();
        assert_eq!(found.len(), 2, "{:?}", report.drift);
        assert!(
            found
                .iter()
                .all(|d| d.action == "already_repaired" && d.detail.contains("the IG decision")),
            "{found:?}"
        );
        let decisions: Vec<_> = s
            .audit
            .events()
            .into_iter()
            .filter(|e| e.action == "decision")
            .collect();
        assert_eq!(decisions.len(), 2, "{decisions:?}");
        for e in &decisions {
            assert_eq!(e.actor, "sub:sub-iris", "{e:?}");
            assert_eq!(e.outcome, "unknown");
            assert_eq!(e.detail["stage"], "IG");
        }
        for id in ["req-r", "req-d"] {
            assert_eq!(s.store.get(id).unwrap().0.pending_task_token, None);
        }
        let parked = s.store.get("req-d").unwrap().0;
        assert_eq!(parked.sfn_task_token.as_deref(), Some("tok-rit"));
        assert!(!s.workflow.completed().contains_key("tok-rit"));

        // Once: nothing is pending any more.
        let again = s.run(&REPAIR).await.unwrap();
        assert!(again.drift.iter().all(|d| d.kind != "stalled_decision"));
        let audited = s
            .audit
            .events()
            .iter()
            .filter(|e| e.action == "decision")
            .count();
        assert_eq!(audited, 2);
    }

    #[tokio::test]
    async fn when_dry_running_or_the_claim_is_young_then_nothing_is_delivered() {
        // A dry run reports the stalled claim and sends nothing.
        let s = service(120);
        s.store.put(stalled("req-a", Decision::Approved));
        s.executions.set("req-a", running());
        let report = s.run(&DRY_RUN).await.unwrap();
        let found = report
            .drift
            .iter()
            .find(|d| d.kind == "stalled_decision")
            .expect("reported");
        assert_eq!(found.action, "reported");
        assert!(s.workflow.completed().is_empty());
        assert!(s.store.get("req-a").unwrap().0.pending_task_token.is_some());

        // Within the grace, the claiming call may still deliver it: left alone.
        let s = service(30);
        s.store.put(stalled("req-a", Decision::Approved));
        s.executions.set("req-a", running());
        let report = s.run(&REPAIR).await.unwrap();
        assert!(report.drift.iter().all(|d| d.kind != "stalled_decision"));
        assert!(s.workflow.completed().is_empty());
    }

    #[tokio::test]
    async fn when_an_approval_lacks_its_archive_then_its_staged_copy_is_kept() {
        let s = service(10);
        let mut r = sample_request("req-ok", ApprovalMode::Single);
        r.egress_status = EgressStatus::IgApproved;
        s.store.put(r);
        s.objects.put_object("staging", "ws-1/req-ok/a.csv", "a");
        let report = s.run(&REPAIR).await.unwrap();
        let staged = report
            .drift
            .iter()
            .find(|d| d.kind == "staged_after_end")
            .unwrap();
        assert_eq!(staged.action, "reported");
        assert!(s.objects.object("staging", "ws-1/req-ok/a.csv").is_some());
    }

    #[tokio::test]
    async fn when_an_execution_was_stopped_then_its_request_fails_with_the_execution_error() {
        let s = service(10);
        s.store.put(waiting("req-1"));
        s.executions
            .set("req-1", execution(ExecutionStatus::Aborted));
        let report = s.run(&REPAIR).await.unwrap();
        assert_eq!(report.drift[0].kind, "execution_ended_without_status");
        let r = s.store.get("req-1").unwrap().0;
        assert_eq!(r.egress_status, EgressStatus::Failed);
        assert_eq!(r.failure_error.as_deref(), Some("ExecutionAborted"));
    }

    #[tokio::test]
    async fn when_an_upload_is_stale_then_it_is_aborted_and_a_young_one_is_kept() {
        let s = service(2 * 86_400);
        let mut listed = Vec::new();
        for (key, initiated) in [
            ("ws-1/req-1/big.bin", datetime!(2024-05-01 09:00:00 UTC)),
            ("ws-1/req-2/big.bin", datetime!(2024-05-03 08:59:00 UTC)),
        ] {
            let destination = Destination::new("staging", key, "arn:key");
            let upload = s.objects.create_multipart(&destination).await.unwrap();
            listed.push(ListedUpload {
                bucket: "staging".into(),
                key: upload.key,
                upload_id: upload.upload_id,
                initiated,
            });
        }
        let young = listed[1].upload_id.clone();
        *s.uploads.uploads.lock().unwrap() = listed;
        let report = s.run(&REPAIR).await.unwrap();
        assert_eq!(report.drift_by_kind.get("stale_multipart_upload"), Some(&1));
        assert_eq!(s.objects.open_uploads(), vec![young]);
    }

    #[tokio::test]
    async fn when_the_datalake_holds_another_writers_stale_upload_then_only_the_archives_are_swept()
    {
        let s = service(2 * 86_400);
        let mut listed = Vec::new();
        for key in [
            "approved_egress/ws-1/req-1/egress_data.zip",
            "other-team/exports/big.parquet",
        ] {
            let destination = Destination::new("datalake", key, "arn:key");
            let upload = s.objects.create_multipart(&destination).await.unwrap();
            listed.push(ListedUpload {
                bucket: "datalake".into(),
                key: upload.key,
                upload_id: upload.upload_id,
                initiated: datetime!(2024-05-01 09:00:00 UTC),
            });
        }
        let foreign = listed[1].upload_id.clone();
        *s.uploads.uploads.lock().unwrap() = listed;
        let report = s.run(&REPAIR).await.unwrap();
        assert_eq!(report.drift_by_kind.get("stale_multipart_upload"), Some(&1));
        assert_eq!(s.objects.open_uploads(), vec![foreign]);
    }

    #[tokio::test]
    async fn when_scoped_then_other_requests_are_left_alone() {
        let s = service(120);
        plant_drift(&s);
        let report = s
            .run(&SweepRequest {
                dry_run: false,
                repair: true,
                egress_request_ids: Some(vec!["ghost".into()]),
            })
            .await
            .unwrap();
        assert_eq!(
            s.store.get("req-lost").unwrap().0.egress_status,
            EgressStatus::Processing
        );
        assert_eq!(store_status(&s, "store-2").as_deref(), Some("PENDING"));
        assert!(report.notices.is_empty());
    }
}
