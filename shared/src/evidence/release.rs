//! The signed release record: what left the TRE, approved by whom, under which checks.
//!
//! The archive's manifest entry (`egress_manifest_<id>.json`) is a [`ReleaseRecord`]: the
//! staging manifest's fields (so older readers still find `files`) plus the request,
//! project, workspace, submitter, every reviewer decision, the check summary when there is
//! one, the versions of the formats and policies that applied, the archive time and the head
//! of the request's audit chain. Beside it, `egress_manifest_<id>.json.sig` is a
//! [`ReleaseSignature`]: an ECDSA P-256 / SHA-256 signature by the stack's KMS key over the
//! short statement [`signed_statement`] (format, request id, SHA-256 of the record's exact
//! bytes). The same two files are written beside the archive in the datalake, the signature
//! is chained into the audit trail (`release_signed`), and [`super::archive_check`] checks
//! all of it offline.
//!
//! When the output checks ran, the record's `checks` is a [`ReleaseChecks`]: the report's
//! summary (verdict, counts by rule, the worst files, policy version and mode) and the
//! SHA-256 of the full per-file report, which is copied beside the archive
//! (`egress_checks_<id>.json`) before the staging area is cleaned up, so the signature also
//! covers the findings the reviewers saw and the reviewer API can still serve them.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::checks::{Report, Summary};
use crate::domain::keys;
use crate::error::{EgressError, Result};
use crate::evidence::chain::{ChainHead, CHAIN_FORMAT};
use crate::model::{EgressRequest, Manifest, ManifestEntry};
use crate::ports::{
    AuditEvent, AuditLog, Clock, Destination, ObjectRef, ObjectStore, ReleaseSigner, Signed,
};

/// Format of the record.
pub const RECORD_FORMAT: &str = "egress-release/v1";
/// Format of the signature file, and the first line of the signed statement.
pub const SIGNATURE_FORMAT: &str = "egress-release-signature/v1";
/// The only algorithm: KMS `ECDSA_SHA_256` with an `ECC_NIST_P256` key.
pub const SIGNING_ALGORITHM: &str = "ECDSA_SHA_256";
/// Who the audit trail names for signing.
pub const ACTOR: &str = "system:copy-to-datalake";

/// Largest checks report copied beside the archive (a report names every file with at most a
/// few locations per rule: about 1 KiB per flagged file).
pub const MAX_CHECKS_REPORT_BYTES: u64 = 64 * 1024 * 1024;

/// Name of the full checks report beside the archive of `egress_request_id`.
pub fn checks_report_name(egress_request_id: &str) -> String {
    format!("egress_checks_{egress_request_id}.json")
}

/// The output checks as the release record states them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseChecks {
    /// Verdict, policy version and mode, counts per verdict and per rule, the worst files.
    #[serde(flatten)]
    pub summary: Summary,
    /// The full report's name beside the archive ([`checks_report_name`]).
    pub report_name: String,
    /// SHA-256 (hex) of the full report's exact bytes.
    pub report_sha256: String,
}

impl ReleaseChecks {
    /// The record's statement of `report`, whose exact bytes are `report_bytes`.
    pub fn of(egress_request_id: &str, report: &Report, report_bytes: &[u8]) -> Self {
        Self {
            summary: report.summary(),
            report_name: checks_report_name(egress_request_id),
            report_sha256: hex::encode(Sha256::digest(report_bytes)),
        }
    }
}

/// One reviewer decision as released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseDecision {
    /// `IG` or `RIT`.
    pub stage: String,
    /// The reviewer's user name (from the verified token).
    pub reviewer: Option<String>,
    /// The reviewer's user id (`sub`).
    pub reviewer_sub: Option<String>,
    /// The reviewer's e-mail.
    pub reviewer_email: Option<String>,
    /// `APPROVED` or `REJECTED`.
    pub decision: Option<String>,
    /// The reason given.
    pub reason: Option<String>,
    /// When.
    pub at: Option<String>,
}

/// The release record (the archive's manifest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// [`RECORD_FORMAT`].
    pub format: String,
    /// The request.
    pub egress_request_id: String,
    /// SWB project.
    pub project_id: String,
    /// SWB workspace.
    pub workspace_id: String,
    /// SWB egress store.
    pub egress_store_id: String,
    /// Who submitted (SWB user id).
    pub submitted_by: String,
    /// Their e-mail, when SWB sent it.
    pub submitted_by_email: Option<String>,
    /// When.
    pub submitted_at: String,
    /// `single` or `dual`.
    pub approval_mode: String,
    /// Every reviewer decision, in stage order.
    pub decisions: Vec<ReleaseDecision>,
    /// The automated checks' summary, when the request has one.
    pub checks: Option<serde_json::Value>,
    /// Versions of the formats and policies that applied.
    pub policy_versions: BTreeMap<String, String>,
    /// SWB bucket the files came from.
    pub source_bucket: String,
    /// The snapshot file the request named.
    pub snapshot_location: String,
    /// SHA-256 of the staging manifest this record was built from.
    pub staging_manifest_sha256: String,
    /// Every released file: relative path, size, SHA-256, source key and version id.
    pub files: Vec<ManifestEntry>,
    /// When the archive was written.
    pub archived_at: String,
    /// The request's audit chain head when the archive was written.
    pub audit_chain_head: Option<ChainHead>,
}

/// The signature file beside the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseSignature {
    /// [`SIGNATURE_FORMAT`].
    pub format: String,
    /// The request the signed record belongs to.
    pub egress_request_id: String,
    /// The record's file name inside the archive.
    pub manifest_name: String,
    /// SHA-256 (hex) of the record's exact bytes.
    pub manifest_sha256: String,
    /// The KMS key that signed.
    pub key_id: String,
    /// [`SIGNING_ALGORITHM`].
    pub signing_algorithm: String,
    /// Base64 of the DER signature over [`signed_statement`].
    pub signature: String,
}

/// The bytes that are signed: short (KMS signs raw messages up to 4096 bytes), and binding
/// the record's digest to its request.
pub fn signed_statement(egress_request_id: &str, manifest_sha256: &str) -> Vec<u8> {
    format!("{SIGNATURE_FORMAT}\n{egress_request_id}\n{manifest_sha256}\n").into_bytes()
}

/// Name of the signature file of record `manifest_name`.
pub fn signature_name(manifest_name: &str) -> String {
    format!("{manifest_name}.sig")
}

/// Builds the record of `request`'s release of `manifest`.
pub fn build_record(
    request: &EgressRequest,
    manifest: &Manifest,
    staging_manifest_sha256: &str,
    archived_at: &str,
    audit_chain_head: Option<ChainHead>,
    checks: Option<serde_json::Value>,
) -> ReleaseRecord {
    let mut decisions = vec![ReleaseDecision {
        stage: "IG".into(),
        reviewer: request.ig_reviewer_1_name.clone(),
        reviewer_sub: request.ig_reviewer_1_sub.clone(),
        reviewer_email: request.ig_reviewer_1_email.clone(),
        decision: request
            .ig_reviewer_1_decision
            .map(|d| d.as_str().to_string()),
        reason: request.ig_reviewer_1_reason.clone(),
        at: request.ig_reviewer_1_dt.clone(),
    }];
    if request.rit_reviewer_2_decision.is_some() {
        decisions.push(ReleaseDecision {
            stage: "RIT".into(),
            reviewer: request.rit_reviewer_2_name.clone(),
            reviewer_sub: request.rit_reviewer_2_sub.clone(),
            reviewer_email: request.rit_reviewer_2_email.clone(),
            decision: request
                .rit_reviewer_2_decision
                .map(|d| d.as_str().to_string()),
            reason: request.rit_reviewer_2_reason.clone(),
            at: request.rit_reviewer_2_dt.clone(),
        });
    }
    let approval_mode = serde_json::to_value(request.approval_mode)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let policy_versions = BTreeMap::from([
        ("release_record".to_string(), RECORD_FORMAT.to_string()),
        (
            "release_signature".to_string(),
            SIGNATURE_FORMAT.to_string(),
        ),
        ("audit_chain".to_string(), CHAIN_FORMAT.to_string()),
        (
            "approval_policy".to_string(),
            format!("{approval_mode}-approval"),
        ),
        (
            "swb_snapshot_version".to_string(),
            request.s3_swb_object_metadata_version.to_string(),
        ),
    ]);
    let mut policy_versions = policy_versions;
    if let Some(version) = checks
        .as_ref()
        .and_then(|c| c.get("policy_version"))
        .and_then(|v| v.as_str())
    {
        policy_versions.insert("checks_policy".to_string(), version.to_string());
    }
    ReleaseRecord {
        format: RECORD_FORMAT.into(),
        egress_request_id: request.egress_request_id.clone(),
        project_id: request.project_id.clone(),
        workspace_id: request.workspace_id.clone(),
        egress_store_id: request.swb_egress_store_id.clone(),
        submitted_by: request.requested_by.clone(),
        submitted_by_email: request.requested_by_email.clone(),
        submitted_at: request.requested_dt.clone(),
        approval_mode,
        decisions,
        checks,
        policy_versions,
        source_bucket: manifest.source_bucket.clone(),
        snapshot_location: manifest.snapshot_location.clone(),
        staging_manifest_sha256: staging_manifest_sha256.to_string(),
        files: manifest.files.clone(),
        archived_at: archived_at.to_string(),
        audit_chain_head,
    }
}

/// The signature file of `record_bytes`, signed by `signer`.
pub async fn sign_record(
    signer: &(impl ReleaseSigner + ?Sized),
    egress_request_id: &str,
    manifest_name: &str,
    record_bytes: &[u8],
) -> Result<ReleaseSignature> {
    let manifest_sha256 = hex::encode(Sha256::digest(record_bytes));
    let Signed { key_id, signature } = signer
        .sign(&signed_statement(egress_request_id, &manifest_sha256))
        .await?;
    Ok(ReleaseSignature {
        format: SIGNATURE_FORMAT.into(),
        egress_request_id: egress_request_id.to_string(),
        manifest_name: manifest_name.to_string(),
        manifest_sha256,
        key_id,
        signing_algorithm: SIGNING_ALGORITHM.into(),
        signature: base64::engine::general_purpose::STANDARD.encode(signature),
    })
}

/// A [`ReleaseSigner`] behind a shared pointer, so the archive settings can carry one.
#[derive(Clone)]
pub struct SignerHandle(Arc<dyn DynSigner>);

type SignFuture<'a> = Pin<Box<dyn Future<Output = Result<Signed>> + Send + 'a>>;

/// Object-safe form of [`ReleaseSigner::sign`].
trait DynSigner: Send + Sync {
    fn sign_boxed<'a>(&'a self, message: &'a [u8]) -> SignFuture<'a>;
}

impl<T: ReleaseSigner> DynSigner for T {
    fn sign_boxed<'a>(&'a self, message: &'a [u8]) -> SignFuture<'a> {
        Box::pin(self.sign(message))
    }
}

impl SignerHandle {
    /// Wraps `signer`.
    pub fn new(signer: impl ReleaseSigner + 'static) -> Self {
        Self(Arc::new(signer))
    }
}

impl fmt::Debug for SignerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SignerHandle")
    }
}

impl PartialEq for SignerHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SignerHandle {}

impl ReleaseSigner for SignerHandle {
    async fn sign(&self, message: &[u8]) -> Result<Signed> {
        self.0.sign_boxed(message).await
    }

    async fn public_key_pem(&self) -> Result<String> {
        Err(EgressError::Internal(
            "the archive's signer handle does not serve the public key".into(),
        ))
    }
}

/// The archive's last entries: the record and (when signed) its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseFiles {
    /// `(name, bytes)` in archive order.
    pub entries: Vec<(String, Vec<u8>)>,
}

/// Where the release is published.
#[derive(Debug, Clone, Copy)]
pub struct ReleaseTarget<'a> {
    /// The datalake bucket.
    pub bucket: &'a str,
    /// Its KMS key.
    pub kms_key_arn: &'a str,
    /// The archive's key; the record and signature go beside it.
    pub archive_key: &'a str,
    /// The output checks' report in the staging area (absent when the checks did not run):
    /// summarised in the record and copied beside the archive.
    pub checks_report: Option<&'a ObjectRef>,
}

/// Key of a file beside the archive.
pub fn beside(archive_key: &str, name: &str) -> String {
    match archive_key.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{name}"),
        None => name.to_string(),
    }
}

/// Builds, signs and publishes the release of `manifest` (once: a re-run of the same
/// staging manifest reuses the record and signature already beside the archive, so a
/// re-written archive carries the same signed bytes), chains the signature into the audit
/// trail, and returns the archive's last entries. [`read`] then [`prepare_from`].
#[allow(clippy::too_many_arguments)]
pub async fn prepare(
    objects: &impl ObjectStore,
    audit: &impl AuditLog,
    clock: &impl Clock,
    signer: Option<&SignerHandle>,
    target: ReleaseTarget<'_>,
    request: &EgressRequest,
    manifest: &Manifest,
    staging_manifest_sha256: &str,
) -> Result<ReleaseFiles> {
    let reads = read(
        objects,
        audit,
        target,
        &request.egress_request_id,
        signer.is_some(),
    )
    .await?;
    prepare_from(
        objects,
        audit,
        clock,
        signer,
        target,
        request,
        manifest,
        staging_manifest_sha256,
        reads,
    )
    .await
}

/// What a release is built from besides the request and its manifest: what an earlier run
/// published beside the archive, the checks report and the audit chain's head.
#[derive(Debug, Clone, Default)]
pub struct ReleaseReads {
    record: Option<Vec<u8>>,
    signature: Option<Vec<u8>>,
    checks_report: Option<Vec<u8>>,
    audit_head: Option<ChainHead>,
}

/// Reads, all at once, what [`prepare_from`] needs (a missing object is `None`). Needs neither
/// the request nor the manifest, so a step can read it alongside them.
pub async fn read(
    objects: &impl ObjectStore,
    audit: &impl AuditLog,
    target: ReleaseTarget<'_>,
    egress_request_id: &str,
    signed: bool,
) -> Result<ReleaseReads> {
    const MAX_RECORD: u64 = 256 * 1024 * 1024;
    let (record_ref, sig_ref) = published_refs(target, egress_request_id);
    let (record, signature, checks_report, audit_head) = futures::try_join!(
        get_if_any(objects, Some(&record_ref), MAX_RECORD),
        get_if_any(objects, signed.then_some(&sig_ref), 64 * 1024),
        get_if_any(objects, target.checks_report, MAX_CHECKS_REPORT_BYTES),
        audit.head(egress_request_id),
    )?;
    Ok(ReleaseReads {
        record,
        signature,
        checks_report,
        audit_head,
    })
}

/// [`prepare`] from what [`read`] found.
#[allow(clippy::too_many_arguments)]
pub async fn prepare_from(
    objects: &impl ObjectStore,
    audit: &impl AuditLog,
    clock: &impl Clock,
    signer: Option<&SignerHandle>,
    target: ReleaseTarget<'_>,
    request: &EgressRequest,
    manifest: &Manifest,
    staging_manifest_sha256: &str,
    reads: ReleaseReads,
) -> Result<ReleaseFiles> {
    let id = &request.egress_request_id;
    let name = keys::archive_manifest_name(id);
    let sig_name = signature_name(&name);
    let (record_ref, sig_ref) = published_refs(target, id);
    if let Some(files) = published(
        &reads,
        &name,
        &sig_name,
        staging_manifest_sha256,
        signer.is_some(),
    ) {
        return Ok(files);
    }
    let checks = match (&reads.checks_report, target.checks_report) {
        (Some(bytes), Some(report_ref)) => Some(release_checks(report_ref, id, bytes)?),
        _ => None,
    };
    let checks_value = checks
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| EgressError::Internal(format!("release checks: {e}")))?;
    let record = build_record(
        request,
        manifest,
        staging_manifest_sha256,
        &clock.now_iso(),
        reads.audit_head,
        checks_value,
    );
    let record_bytes = serde_json::to_vec_pretty(&record)
        .map_err(|e| EgressError::Internal(format!("release record: {e}")))?;
    // The report's copy is written before the record that names it (a re-run that finds the
    // record reuses it and does not copy again); the record is signed meanwhile.
    let (_, signature) = futures::try_join!(
        async {
            match (&checks, &reads.checks_report) {
                (Some(checks), Some(bytes)) => {
                    let copy = ObjectRef::new(
                        target.bucket,
                        beside(target.archive_key, &checks.report_name),
                    );
                    put(objects, target, &copy, bytes).await
                }
                _ => Ok(()),
            }
        },
        async {
            match signer {
                Some(signer) => sign_record(signer, id, &name, &record_bytes)
                    .await
                    .map(Some),
                None => Ok(None),
            }
        },
    )?;
    let sig_bytes = signature
        .as_ref()
        .map(serde_json::to_vec_pretty)
        .transpose()
        .map_err(|e| EgressError::Internal(format!("release signature: {e}")))?;
    // A re-run reuses the two only when both are there and the signature signs the record.
    futures::try_join!(put(objects, target, &record_ref, &record_bytes), async {
        match &sig_bytes {
            Some(sig) => put(objects, target, &sig_ref, sig).await,
            None => Ok(()),
        }
    })?;
    let mut entries = vec![(name.clone(), record_bytes)];
    if let (Some(signature), Some(sig_bytes)) = (signature, sig_bytes) {
        audit
            .append(&AuditEvent {
                egress_request_id: id.clone(),
                at: clock.now_iso(),
                actor: ACTOR.into(),
                actor_email: None,
                action: "release_signed".into(),
                outcome: "success".into(),
                detail: json!({
                    "manifest_name": name,
                    "manifest_sha256": signature.manifest_sha256,
                    "key_id": signature.key_id,
                    "signing_algorithm": signature.signing_algorithm,
                    "signature": signature.signature,
                    "file_count": record.files.len(),
                    "audit_chain_head": record.audit_chain_head,
                }),
            })
            .await?;
        entries.push((sig_name, sig_bytes));
    }
    Ok(ReleaseFiles { entries })
}

/// The record's statement of the checks report read from `report_ref`.
fn release_checks(
    report_ref: &ObjectRef,
    egress_request_id: &str,
    bytes: &[u8],
) -> Result<ReleaseChecks> {
    let report: Report = serde_json::from_slice(bytes).map_err(|e| {
        EgressError::Integrity(format!(
            "the checks report {} is not valid: {e}",
            report_ref.key
        ))
    })?;
    Ok(ReleaseChecks::of(egress_request_id, &report, bytes))
}

/// Checks that `signature_file` (the `.sig` beside a record) signs `record_bytes` under
/// `public_key_pem`: the digest, the request and the ECDSA signature over
/// [`signed_statement`]. What an API client runs on `requestEvidence`'s answer.
pub fn verify_record(
    record_bytes: &[u8],
    signature_file: &[u8],
    public_key_pem: &str,
) -> std::result::Result<ReleaseSignature, String> {
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::DecodePublicKey;
    let key = p256::ecdsa::VerifyingKey::from_public_key_pem(public_key_pem.trim())
        .map_err(|e| format!("BadPublicKey: {e}"))?;
    let signature: ReleaseSignature =
        serde_json::from_slice(signature_file).map_err(|e| format!("SignatureUnreadable: {e}"))?;
    let claimed = serde_json::from_slice::<serde_json::Value>(record_bytes)
        .ok()
        .and_then(|v| v["egress_request_id"].as_str().map(str::to_string))
        .unwrap_or_default();
    if claimed != signature.egress_request_id {
        return Err(format!(
            "SignatureSwapped: the signature is of request {:?}, the record of {claimed:?}",
            signature.egress_request_id
        ));
    }
    let digest = hex::encode(Sha256::digest(record_bytes));
    if signature.manifest_sha256 != digest {
        return Err(format!(
            "ManifestEdited: the record's SHA-256 is {digest}, the signature is over {}",
            signature.manifest_sha256
        ));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(signature.signature.as_bytes())
        .map_err(|e| format!("SignatureInvalid: not base64: {e}"))?;
    let sig = p256::ecdsa::Signature::from_der(&der)
        .map_err(|e| format!("SignatureInvalid: not a DER ECDSA signature: {e}"))?;
    key.verify(
        &signed_statement(&signature.egress_request_id, &digest),
        &sig,
    )
    .map_err(|_| "SignatureInvalid: the signature does not verify under this key".to_string())?;
    Ok(signature)
}

async fn put(
    objects: &impl ObjectStore,
    target: ReleaseTarget<'_>,
    at: &ObjectRef,
    bytes: &[u8],
) -> Result<()> {
    let destination = Destination::new(target.bucket, &at.key, target.kms_key_arn)
        .with_content_type("application/json");
    objects
        .put_bytes(&destination, bytes::Bytes::copy_from_slice(bytes))
        .await
        .map(|_| ())
}

/// Where the record and its signature are published beside the archive.
fn published_refs(target: ReleaseTarget<'_>, egress_request_id: &str) -> (ObjectRef, ObjectRef) {
    let name = keys::archive_manifest_name(egress_request_id);
    let record = ObjectRef::new(target.bucket, beside(target.archive_key, &name));
    let sig = ObjectRef::new(
        target.bucket,
        beside(target.archive_key, &signature_name(&name)),
    );
    (record, sig)
}

/// The object's bytes, `None` when it (or the reference) is absent.
async fn get_if_any(
    objects: &impl ObjectStore,
    at: Option<&ObjectRef>,
    max: u64,
) -> Result<Option<Vec<u8>>> {
    let Some(at) = at else { return Ok(None) };
    let bytes = crate::ports::get_bytes_if_any(objects, at, max).await?;
    Ok(bytes.map(|b| b.to_vec()))
}

/// The record and signature an earlier run published for this staging manifest, if any.
fn published(
    reads: &ReleaseReads,
    name: &str,
    sig_name: &str,
    staging_manifest_sha256: &str,
    signed: bool,
) -> Option<ReleaseFiles> {
    let record_bytes = reads.record.as_ref()?;
    let same = serde_json::from_slice::<ReleaseRecord>(record_bytes)
        .is_ok_and(|r| r.staging_manifest_sha256 == staging_manifest_sha256);
    if !same {
        return None;
    }
    let mut entries = vec![(name.to_string(), record_bytes.clone())];
    if signed {
        let sig_bytes = reads.signature.as_ref()?;
        let matches = serde_json::from_slice::<ReleaseSignature>(sig_bytes)
            .is_ok_and(|s| s.manifest_sha256 == hex::encode(Sha256::digest(record_bytes)));
        if !matches {
            return None;
        }
        entries.push((sig_name.to_string(), sig_bytes.clone()));
    }
    Some(ReleaseFiles { entries })
}
