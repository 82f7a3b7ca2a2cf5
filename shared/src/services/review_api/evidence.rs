//! The reviewer API's read-only evidence queries (issues 12 and 13): `requestChecks` (the
//! per-file findings of the output checks), `requestEvidence` (the signed release record, the
//! check summary, the audit chain with its verification, the downloads) and
//! `releaseSigningKey` (the public half of the key that signs release records).
//!
//! Who may read: the output checks, the reviewer groups (IG, RIT); the evidence pack and the
//! key, every API group (reviewers and download groups) and the admin group (`ADMIN_GROUP`,
//! who answer auditors and may revoke a release, so must see what they revoke). As for decisions and downloads, the
//! token's groups are a first gate (a caller in none of them learns nothing, not even whether
//! the request exists) and the user pool's current groups decide, so a reviewer removed from a
//! group is refused at once; a refusal after the request was found is audited.
//!
//! Where the checks report is: in the staging area beside the manifest while the request is
//! in review (`check-outputs` writes it), and beside the approved archive once released
//! (`evidence::release` copies it there and signs its digest). After a rejection or an expiry
//! the staging area is cleaned up and only the summary on the request remains, which is what
//! is served then (`source: "summary"`).
//!
//! Every answer is bounded whatever the request: at most [`MAX_FILES`] files with findings and
//! [`MAX_EVENTS`] audit events are listed (the flags say when more exist; the verification
//! always covers the whole chain). Finding evidence is the checks' own: masked shapes, line
//! and column, counts, never a sensitive value.

use std::future::Future;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ReviewService;
use crate::checks::{Finding, Report};
use crate::domain::keys::{self, StagingLayout};
use crate::domain::review::ReviewPolicy;
use crate::error::{EgressError, Result};
use crate::evidence::chain::{self, ChainBreak, ChainReport};
use crate::evidence::release::{
    beside, checks_report_name, signature_name, ReleaseChecks, ReleaseSignature,
    MAX_CHECKS_REPORT_BYTES,
};
use crate::model::{ApiEvent, CallerIdentity, EgressRequest};
use crate::ports::{
    AuditLog, Clock, DownloadLinks, ObjectRef, ObjectStore, ReleaseSigner, ReviewStore,
    ReviewerDirectory, WorkflowCallbacks,
};

/// Most files with findings one `requestChecks` answer lists (worst first).
pub const MAX_FILES: usize = 2_000;
/// Most audit events one `requestEvidence` answer lists (oldest first).
pub const MAX_EVENTS: usize = 1_000;
/// Largest release record or signature file read.
const MAX_RECORD_BYTES: u64 = 256 * 1024 * 1024;
/// GraphQL `Int` is a signed 32-bit integer: larger counts are shown as its maximum.
const GRAPHQL_INT_MAX: u64 = i32::MAX as u64;

const CHECKS_READ: &str = "checks_read";
const EVIDENCE_READ: &str = "evidence_read";

/// What the evidence queries read: small objects (the checks report, the release record and
/// its signature) and the release signing key's public half.
pub trait EvidenceStore: Send + Sync {
    /// The bytes of `at`, `None` when it does not exist; larger than `max_bytes` is refused.
    fn read(
        &self,
        at: &ObjectRef,
        max_bytes: u64,
    ) -> impl Future<Output = Result<Option<Bytes>>> + Send;

    /// The release signing key's public half as PEM (`PUBLIC KEY`, SubjectPublicKeyInfo).
    fn release_public_key(&self) -> impl Future<Output = Result<String>> + Send;
}

/// [`EvidenceStore`] on an [`ObjectStore`] and the release key (KMS in production: the API
/// only ever calls `GetPublicKey` on it).
#[derive(Debug, Clone)]
pub struct EvidenceSources<O, K> {
    /// S3.
    pub objects: O,
    /// The release signing key.
    pub key: K,
}

impl<O: ObjectStore, K: ReleaseSigner> EvidenceStore for EvidenceSources<O, K> {
    async fn read(&self, at: &ObjectRef, max_bytes: u64) -> Result<Option<Bytes>> {
        crate::ports::get_bytes_if_any(&self.objects, at, max_bytes).await
    }

    async fn release_public_key(&self) -> Result<String> {
        self.key.public_key_pem().await
    }
}

/// The evidence queries' sources and settings, beside the [`ReviewService`] whose rules and
/// ports they share.
#[derive(Debug, Clone)]
pub struct Evidence<E> {
    /// Objects and the release key.
    pub sources: E,
    /// The staging bucket (the checks report of a request in review).
    pub staging_bucket: String,
    /// The admin group (`ADMIN_GROUP`): its members read the evidence pack and the key as the
    /// API groups do.
    pub admin_group: String,
}

/// One rule's occurrences, all files together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleCount {
    /// Rule id.
    pub rule: String,
    /// Occurrences (at most 2^31 - 1).
    pub count: u64,
}

/// GraphQL `Finding`: one rule's findings in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingView {
    /// Rule id.
    pub rule: String,
    /// `pass`, `review` or `block`.
    pub severity: String,
    /// Plain English.
    pub message: String,
    /// Occurrences (at most 2^31 - 1).
    pub count: u64,
    /// The first locations, `line:column`.
    pub locations: Vec<String>,
    /// The shape of the first value (`### ### ####`), never the value.
    pub sample: Option<String>,
    /// A threshold, column names, entry counts.
    pub detail: Option<String>,
}

/// GraphQL `FileFindings`: one checked file with findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFindingsView {
    /// Path relative to the submission (`archive.zip!/entry` inside an archive).
    pub path: String,
    /// Bytes read (a string: GraphQL `Int` is 32-bit).
    pub bytes: String,
    /// What the content is, from its magic bytes.
    pub detected_type: String,
    /// The file's worst finding.
    pub verdict: String,
    /// One per rule.
    pub findings: Vec<FindingView>,
}

/// GraphQL `ChecksReport`: `requestChecks`' answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksView {
    /// The request.
    pub egress_request_id: String,
    /// `report` (the full report, see `report_location`), `summary` (only the request's
    /// stored summary remains) or `none` (not checked).
    pub source: String,
    /// `staging` or `release` when `source` is `report`.
    pub report_location: Option<String>,
    /// SHA-256 of the report's bytes (the release record signs it once released).
    pub report_sha256: Option<String>,
    /// `pass`, `review` or `block`.
    pub verdict: Option<String>,
    /// The one-line summary shown in notifications.
    pub summary: Option<String>,
    /// The checks policy's version.
    pub policy_version: Option<String>,
    /// `advise` or `enforce`.
    pub mode: Option<String>,
    /// Files (and archive entries) checked.
    pub files_checked: Option<u64>,
    /// Bytes read (a string: GraphQL `Int` is 32-bit).
    pub bytes_checked: Option<String>,
    /// Files per verdict.
    pub files_pass: Option<u64>,
    /// Files per verdict.
    pub files_review: Option<u64>,
    /// Files per verdict.
    pub files_block: Option<u64>,
    /// Occurrences per rule.
    pub counts_by_rule: Vec<RuleCount>,
    /// The small-count threshold applied (counts above 0 and below it).
    pub small_count_threshold: Option<u64>,
    /// Whether zeros were flagged.
    pub flag_zeros: Option<bool>,
    /// Every rule id checked.
    pub rules_applied: Vec<String>,
    /// Findings about the request as a whole.
    pub request_findings: Vec<FindingView>,
    /// The files with findings, worst first.
    pub files: Vec<FileFindingsView>,
    /// True when more files had findings than [`MAX_FILES`].
    pub files_truncated: bool,
}

/// GraphQL `ChecksSummary`: the checks as the evidence pack states them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksSummaryView {
    /// `pass`, `review` or `block`.
    pub verdict: Option<String>,
    /// The checks policy's version.
    pub policy_version: Option<String>,
    /// `advise` or `enforce`.
    pub mode: Option<String>,
    /// The one-line summary.
    pub summary: Option<String>,
    /// Files checked.
    pub files_checked: Option<u64>,
    /// Files per verdict.
    pub files_pass: Option<u64>,
    /// Files per verdict.
    pub files_review: Option<u64>,
    /// Files per verdict.
    pub files_block: Option<u64>,
    /// Occurrences per rule.
    pub counts_by_rule: Vec<RuleCount>,
    /// SHA-256 of the full report, as the signed record states it.
    pub report_sha256: Option<String>,
}

/// GraphQL `SignedRelease`: the release record and its signature, exactly as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseView {
    /// The record's name (`egress_manifest_<id>.json`).
    pub manifest_name: String,
    /// The record's exact bytes as text: the signature is over their SHA-256.
    pub manifest: String,
    /// SHA-256 (hex) of `manifest`'s bytes.
    pub manifest_sha256: String,
    /// The signature file's exact text (what `evidence::release::verify_record` takes).
    pub signature_file: Option<String>,
    /// Base64 of the DER ECDSA signature.
    pub signature: Option<String>,
    /// The KMS key that signed.
    pub signature_key_id: Option<String>,
    /// `ECDSA_SHA_256`.
    pub signing_algorithm: Option<String>,
}

/// GraphQL `ChainBreak`: the first broken link, by its stable name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainBreakView {
    /// `EditedEvent`, `DeletedEvent`, `ReorderedEvents` or `Forked`.
    pub error: String,
    /// Where.
    pub seq: u64,
    /// What the verifier says.
    pub message: String,
}

/// GraphQL `AuditEventView`: one stored event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEventView {
    /// Position in the chain (`None` for events Step Functions wrote itself).
    pub seq: Option<u64>,
    /// Hash of the previous event.
    pub prev_hash: Option<String>,
    /// This event's hash.
    pub hash: Option<String>,
    /// When.
    pub at: String,
    /// Who.
    pub actor: String,
    /// Their e-mail, for a person.
    pub actor_email: Option<String>,
    /// What.
    pub action: String,
    /// `success`, `refused`, `failed` or `unknown`.
    pub outcome: String,
    /// The event's detail as JSON text.
    pub detail: String,
}

/// GraphQL `AuditChain`: the trail and its verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainView {
    /// No broken link.
    pub valid: bool,
    /// Chained events.
    pub length: u64,
    /// The last link's position.
    pub head_seq: Option<u64>,
    /// The last link's hash.
    pub head_hash: Option<String>,
    /// Events without a link (written by Step Functions itself).
    pub unchained: u64,
    /// The first broken link.
    pub first_break: Option<ChainBreakView>,
    /// The events, oldest first.
    pub events: Vec<AuditEventView>,
    /// True when more events exist than [`MAX_EVENTS`].
    pub events_truncated: bool,
}

/// GraphQL `Download`: one download link issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadView {
    /// The reviewer's user name.
    pub who: String,
    /// Their e-mail.
    pub email: Option<String>,
    /// When.
    pub when: String,
}

/// GraphQL `Evidence`: `requestEvidence`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceView {
    /// The request.
    pub egress_request_id: String,
    /// Its status now.
    pub egress_status: String,
    /// SWB project.
    pub project_id: String,
    /// SWB workspace.
    pub workspace_id: String,
    /// The signed release record, once the request is released.
    pub release: Option<ReleaseView>,
    /// The release signing key's public half (PEM).
    pub signing_public_key: String,
    /// The output checks' summary.
    pub checks: Option<ChecksSummaryView>,
    /// The audit trail and its verification.
    pub audit_chain: ChainView,
    /// Every download link issued, oldest first.
    pub downloads: Vec<DownloadView>,
}

/// The `egress_request_id` argument of both queries.
#[derive(Debug, Deserialize)]
struct IdArgument {
    egress_request_id: String,
}

fn id_argument(field: &str, arguments: Value) -> Result<String> {
    serde_json::from_value::<IdArgument>(arguments)
        .map(|a| a.egress_request_id)
        .map_err(|e| EgressError::validation(format!("invalid arguments for {field}: {e}")))
}

fn in_any(groups: &[String], wanted: &[&str]) -> bool {
    groups.iter().any(|g| wanted.contains(&g.as_str()))
}

/// `requestChecks`: members of a reviewer group (Information Governance, Research IT).
pub fn authorize_checks(policy: &ReviewPolicy, groups: &[String]) -> Result<()> {
    if in_any(groups, &[&policy.ig_group, &policy.rit_group]) {
        Ok(())
    } else {
        Err(EgressError::Forbidden(
            "Only reviewers can read the output checks of a request".into(),
        ))
    }
}

/// `requestEvidence` and `releaseSigningKey`: members of any API group (the reviewer groups
/// and the download groups) or of the admin group.
pub fn authorize_evidence(
    policy: &ReviewPolicy,
    admin_group: &str,
    groups: &[String],
) -> Result<()> {
    if in_any(groups, &policy.api_groups()) || in_any(groups, &[admin_group]) {
        Ok(())
    } else {
        Err(EgressError::Forbidden(
            "You are not authorised to read the evidence of egress requests".into(),
        ))
    }
}

fn int(n: u64) -> u64 {
    n.min(GRAPHQL_INT_MAX)
}

fn finding_view(f: &Finding) -> FindingView {
    FindingView {
        rule: f.rule.clone(),
        severity: f.severity.as_str().to_string(),
        message: f.message.clone(),
        count: int(f.count),
        locations: f
            .locations
            .iter()
            .map(|l| format!("{}:{}", l.line, l.column))
            .collect(),
        sample: f.sample.clone(),
        detail: f.detail.clone(),
    }
}

fn rule_counts<'a>(counts: impl IntoIterator<Item = (&'a String, &'a u64)>) -> Vec<RuleCount> {
    counts
        .into_iter()
        .map(|(rule, count)| RuleCount {
            rule: rule.clone(),
            count: int(*count),
        })
        .collect()
}

/// Where a request's checks report was found.
#[derive(Debug, Clone)]
struct FoundReport {
    report: Report,
    sha256: String,
    location: &'static str,
}

/// `requestChecks`' answer from the report (when found) and the request's stored summary.
pub fn checks_view(request: &EgressRequest, report: Option<(&Report, &str, &str)>) -> ChecksView {
    let mut view = ChecksView {
        egress_request_id: request.egress_request_id.clone(),
        source: if request.checks_verdict.is_some() {
            "summary"
        } else {
            "none"
        }
        .to_string(),
        report_location: None,
        report_sha256: None,
        verdict: request.checks_verdict.clone(),
        summary: request.checks_summary.clone(),
        policy_version: request.checks_policy_version.clone(),
        mode: request.checks_mode.clone(),
        files_checked: None,
        bytes_checked: None,
        files_pass: None,
        files_review: None,
        files_block: None,
        counts_by_rule: Vec::new(),
        small_count_threshold: None,
        flag_zeros: None,
        rules_applied: Vec::new(),
        request_findings: Vec::new(),
        files: Vec::new(),
        files_truncated: false,
    };
    let Some((report, sha256, location)) = report else {
        return view;
    };
    let mut flagged: Vec<_> = report
        .files
        .iter()
        .filter(|f| !f.findings.is_empty())
        .collect();
    // Worst first; the report's order (the manifest's) among equals.
    flagged.sort_by_key(|f| std::cmp::Reverse(f.verdict));
    view.files_truncated = flagged.len() > MAX_FILES;
    view.files = flagged
        .into_iter()
        .take(MAX_FILES)
        .map(|f| FileFindingsView {
            path: f.path.clone(),
            bytes: f.bytes.to_string(),
            detected_type: f.detected_type.clone(),
            verdict: f.verdict.as_str().to_string(),
            findings: f.findings.iter().map(finding_view).collect(),
        })
        .collect();
    view.source = "report".into();
    view.report_location = Some(location.to_string());
    view.report_sha256 = Some(sha256.to_string());
    view.verdict = Some(report.verdict.as_str().to_string());
    view.summary = Some(
        request
            .checks_summary
            .clone()
            .unwrap_or_else(|| report.summary().line()),
    );
    view.policy_version = Some(report.policy_version.clone());
    view.mode = Some(report.rules_applied.mode.as_str().to_string());
    view.files_checked = Some(int(report.files_checked));
    view.bytes_checked = Some(report.bytes_checked.to_string());
    view.files_pass = Some(int(report.files_by_verdict.pass));
    view.files_review = Some(int(report.files_by_verdict.review));
    view.files_block = Some(int(report.files_by_verdict.block));
    view.counts_by_rule = rule_counts(&report.counts_by_rule);
    view.small_count_threshold = Some(int(report.rules_applied.small_count_threshold));
    view.flag_zeros = Some(report.rules_applied.flag_zeros);
    view.rules_applied = report.rules_applied.rules.clone();
    view.request_findings = report.request_findings.iter().map(finding_view).collect();
    view
}

/// The audit trail's verification and (bounded) events, and the downloads it records.
pub fn chain_view(trail: &chain::AuditTrail) -> (ChainView, Vec<DownloadView>) {
    let ChainReport {
        valid,
        length,
        head,
        unchained,
        first_break,
    } = chain::verify(trail);
    let events = trail
        .events
        .iter()
        .take(MAX_EVENTS)
        .map(|e| AuditEventView {
            seq: e.link.as_ref().map(|l| l.seq),
            prev_hash: e.link.as_ref().map(|l| l.prev_hash.clone()),
            hash: e.link.as_ref().map(|l| l.hash.clone()),
            at: e.event.at.clone(),
            actor: e.event.actor.clone(),
            actor_email: e.event.actor_email.clone(),
            action: e.event.action.clone(),
            outcome: e.event.outcome.clone(),
            detail: chain::canonical_json(&e.event.detail),
        })
        .collect();
    let downloads = trail
        .events
        .iter()
        .filter(|e| e.event.action == "download" && e.event.outcome == "success")
        .map(|e| DownloadView {
            who: e.event.actor.clone(),
            email: e.event.actor_email.clone(),
            when: e.event.at.clone(),
        })
        .collect();
    let view = ChainView {
        valid,
        length,
        head_seq: head.as_ref().map(|h| h.seq),
        head_hash: head.map(|h| h.hash),
        unchained: unchained.len() as u64,
        first_break: first_break.map(|b: ChainBreak| ChainBreakView {
            error: b.name().to_string(),
            seq: match b {
                ChainBreak::EditedEvent { seq }
                | ChainBreak::DeletedEvent { seq }
                | ChainBreak::ReorderedEvents { seq, .. }
                | ChainBreak::Forked { seq } => seq,
            },
            message: b.to_string(),
        }),
        events,
        events_truncated: trail.events.len() > MAX_EVENTS,
    };
    (view, downloads)
}

fn summary_of_item(request: &EgressRequest) -> Option<ChecksSummaryView> {
    request.checks_verdict.as_ref()?;
    Some(ChecksSummaryView {
        verdict: request.checks_verdict.clone(),
        policy_version: request.checks_policy_version.clone(),
        mode: request.checks_mode.clone(),
        summary: request.checks_summary.clone(),
        files_checked: None,
        files_pass: None,
        files_review: None,
        files_block: None,
        counts_by_rule: Vec::new(),
        report_sha256: None,
    })
}

fn summary_of_release(request: &EgressRequest, checks: &ReleaseChecks) -> ChecksSummaryView {
    let s = &checks.summary;
    ChecksSummaryView {
        verdict: Some(s.verdict.as_str().to_string()),
        policy_version: Some(s.policy_version.clone()),
        mode: Some(s.mode.as_str().to_string()),
        summary: Some(request.checks_summary.clone().unwrap_or_else(|| s.line())),
        files_checked: Some(int(s.files_checked)),
        files_pass: Some(int(s.files_by_verdict.pass)),
        files_review: Some(int(s.files_by_verdict.review)),
        files_block: Some(int(s.files_by_verdict.block)),
        counts_by_rule: rule_counts(&s.counts_by_rule),
        report_sha256: Some(checks.report_sha256.clone()),
    }
}

fn to_value<T: Serialize>(value: &T) -> Result<Value> {
    serde_json::to_value(value)
        .map_err(|e| EgressError::Internal(format!("result cannot be serialized: {e}")))
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
    /// [`ReviewService::dispatch`] with the evidence queries (`requestChecks`,
    /// `requestEvidence`, `releaseSigningKey`) answered from `evidence`.
    pub async fn dispatch_with<E: EvidenceStore>(
        &self,
        evidence: &Evidence<E>,
        event: ApiEvent,
    ) -> Result<Value> {
        match event.field.as_str() {
            "requestChecks" => {
                let id = id_argument(&event.field, event.arguments)?;
                to_value(&self.request_checks(evidence, &event.identity, &id).await?)
            }
            "requestEvidence" => {
                let id = id_argument(&event.field, event.arguments)?;
                to_value(
                    &self
                        .request_evidence(evidence, &event.identity, &id)
                        .await?,
                )
            }
            "releaseSigningKey" => Ok(Value::String(
                self.release_signing_key(evidence, &event.identity).await?,
            )),
            _ => self.dispatch(event).await,
        }
    }

    /// `requestChecks`: the per-file findings of the request's output checks, for reviewers.
    pub async fn request_checks<E: EvidenceStore>(
        &self,
        evidence: &Evidence<E>,
        caller: &CallerIdentity,
        egress_request_id: &str,
    ) -> Result<ChecksView> {
        authorize_checks(&self.settings.policy, &caller.groups).inspect_err(|_| {
            tracing::warn!(username = %caller.username, "requestChecks refused: not a reviewer");
        })?;
        let request = self.existing(egress_request_id).await?;
        let reviewer = self.reviewer(caller, &request, CHECKS_READ).await?;
        if let Err(err) = authorize_checks(&self.settings.policy, &reviewer.groups) {
            return Err(self
                .refuse(&request, caller, Some(&reviewer), CHECKS_READ, err)
                .await);
        }
        let found = self.find_report(evidence, &request).await?;
        let view = checks_view(
            &request,
            found
                .as_ref()
                .map(|f| (&f.report, f.sha256.as_str(), f.location)),
        );
        tracing::info!(
            egress_request_id,
            source = %view.source,
            files = view.files.len(),
            "requestChecks"
        );
        Ok(view)
    }

    /// `requestEvidence`: the request's full record, for every API group and the admins.
    pub async fn request_evidence<E: EvidenceStore>(
        &self,
        evidence: &Evidence<E>,
        caller: &CallerIdentity,
        egress_request_id: &str,
    ) -> Result<EvidenceView> {
        authorize_evidence(&self.settings.policy, &evidence.admin_group, &caller.groups).inspect_err(|_| {
            tracing::warn!(username = %caller.username, "requestEvidence refused: not in an API group nor the admin group");
        })?;
        let request = self.existing(egress_request_id).await?;
        let reviewer = self.reviewer(caller, &request, EVIDENCE_READ).await?;
        if let Err(err) = authorize_evidence(
            &self.settings.policy,
            &evidence.admin_group,
            &reviewer.groups,
        ) {
            return Err(self
                .refuse(&request, caller, Some(&reviewer), EVIDENCE_READ, err)
                .await);
        }
        let trail = self.audit.trail(egress_request_id).await?;
        let (audit_chain, downloads) = chain_view(&trail);
        let release = self.release(evidence, &request).await?;
        let released_checks = release
            .as_ref()
            .and_then(|r| serde_json::from_str::<Value>(&r.manifest).ok())
            .and_then(|record| {
                serde_json::from_value::<ReleaseChecks>(record["checks"].clone()).ok()
            });
        let checks = match released_checks {
            Some(checks) => Some(summary_of_release(&request, &checks)),
            None => match self.find_report(evidence, &request).await? {
                Some(found) => {
                    let checks = ReleaseChecks {
                        summary: found.report.summary(),
                        report_name: String::new(),
                        report_sha256: found.sha256,
                    };
                    Some(summary_of_release(&request, &checks))
                }
                None => summary_of_item(&request),
            },
        };
        let signing_public_key = evidence.sources.release_public_key().await?;
        tracing::info!(
            egress_request_id,
            chain_valid = audit_chain.valid,
            released = release.is_some(),
            "requestEvidence"
        );
        Ok(EvidenceView {
            egress_request_id: request.egress_request_id.clone(),
            egress_status: request.egress_status.as_str().to_string(),
            project_id: request.project_id.clone(),
            workspace_id: request.workspace_id.clone(),
            release,
            signing_public_key,
            checks,
            audit_chain,
            downloads,
        })
    }

    /// `releaseSigningKey`: the public key recipients check release records with.
    pub async fn release_signing_key<E: EvidenceStore>(
        &self,
        evidence: &Evidence<E>,
        caller: &CallerIdentity,
    ) -> Result<String> {
        authorize_evidence(&self.settings.policy, &evidence.admin_group, &caller.groups)?;
        evidence.sources.release_public_key().await
    }

    /// The checks report: beside the released archive, else in the staging area.
    async fn find_report<E: EvidenceStore>(
        &self,
        evidence: &Evidence<E>,
        request: &EgressRequest,
    ) -> Result<Option<FoundReport>> {
        let id = &request.egress_request_id;
        let mut places = Vec::new();
        if let Some(archive_key) = self.archive_key_of(request) {
            places.push((
                ObjectRef::new(
                    &self.settings.datalake_bucket,
                    beside(&archive_key, &checks_report_name(id)),
                ),
                "release",
            ));
        }
        // The key is derived, never read from the item: only the report `check-outputs`
        // writes for this request is ever served.
        let layout = StagingLayout::new(&request.workspace_id, id)?;
        places.push((
            ObjectRef::new(
                &evidence.staging_bucket,
                crate::services::checks::report_key(&layout),
            ),
            "staging",
        ));
        for (at, location) in places {
            if let Some(bytes) = evidence.sources.read(&at, MAX_CHECKS_REPORT_BYTES).await? {
                let report: Report = serde_json::from_slice(&bytes).map_err(|e| {
                    EgressError::Integrity(format!(
                        "the checks report {} is not valid: {e}",
                        at.key
                    ))
                })?;
                return Ok(Some(FoundReport {
                    report,
                    sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
                    location,
                }));
            }
        }
        Ok(None)
    }

    /// The archive key of a released request: the contract's layout only, whatever the
    /// item says (as for downloads).
    fn archive_key_of(&self, request: &EgressRequest) -> Option<String> {
        let expected = keys::archive_key(&request.workspace_id, &request.egress_request_id).ok()?;
        (request.archive_key.as_deref() == Some(expected.as_str())).then_some(expected)
    }

    /// The release record and its signature beside the archive, exactly as published.
    async fn release<E: EvidenceStore>(
        &self,
        evidence: &Evidence<E>,
        request: &EgressRequest,
    ) -> Result<Option<ReleaseView>> {
        let Some(archive_key) = self.archive_key_of(request) else {
            return Ok(None);
        };
        let bucket = &self.settings.datalake_bucket;
        let name = keys::archive_manifest_name(&request.egress_request_id);
        let record = ObjectRef::new(bucket, beside(&archive_key, &name));
        let Some(bytes) = evidence.sources.read(&record, MAX_RECORD_BYTES).await? else {
            return Ok(None);
        };
        let sig_at = ObjectRef::new(bucket, beside(&archive_key, &signature_name(&name)));
        let sig_bytes = evidence.sources.read(&sig_at, 64 * 1024).await?;
        let signature = sig_bytes
            .as_ref()
            .and_then(|b| serde_json::from_slice::<ReleaseSignature>(b).ok());
        let text = |b: &[u8], what: &str| {
            String::from_utf8(b.to_vec()).map_err(|e| {
                EgressError::Integrity(format!("the release {what} is not UTF-8: {e}"))
            })
        };
        Ok(Some(ReleaseView {
            manifest_name: name,
            manifest_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
            manifest: text(&bytes, "record")?,
            signature_file: sig_bytes
                .as_ref()
                .map(|b| text(b, "signature"))
                .transpose()?,
            signature: signature.as_ref().map(|s| s.signature.clone()),
            signature_key_id: signature.as_ref().map(|s| s.key_id.clone()),
            signing_algorithm: signature.map(|s| s.signing_algorithm),
        }))
    }
}

#[cfg(test)]
mod tests;
