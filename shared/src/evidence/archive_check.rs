//! The offline check behind `egress-verify`: an archive's files against its signed release
//! record, and the record's signature against the release public key. No AWS, no network.

use std::collections::BTreeMap;

use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::release::{
    signature_name, signed_statement, ReleaseRecord, ReleaseSignature, SIGNING_ALGORITHM,
};

/// One file of the archive as read: its name, size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveEntry {
    /// Path inside the archive.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

/// Why an archive does not verify, one name per kind of tampering.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Tamper {
    /// A file's bytes differ from the manifest.
    #[error("FileChanged: {path} has {size} bytes with SHA-256 {sha256}; the manifest says {expected_size} bytes with SHA-256 {expected_sha256}")]
    FileChanged {
        /// The file.
        path: String,
        /// What was found.
        size: u64,
        /// What was found.
        sha256: String,
        /// What the manifest records.
        expected_size: u64,
        /// What the manifest records.
        expected_sha256: String,
    },
    /// A file that the manifest does not list.
    #[error("FileAdded: {path} is in the archive but not in the manifest")]
    FileAdded {
        /// The file.
        path: String,
    },
    /// A file the manifest lists is missing.
    #[error("FileMissing: {path} is in the manifest but not in the archive")]
    FileMissing {
        /// The file.
        path: String,
    },
    /// The manifest's bytes are not the ones that were signed.
    #[error("ManifestEdited: the manifest's SHA-256 is {found}, the signature covers {signed}")]
    ManifestEdited {
        /// SHA-256 of the manifest found.
        found: String,
        /// SHA-256 the signature covers.
        signed: String,
    },
    /// The signature belongs to another release.
    #[error("SignatureSwapped: the signature is for {signed_for}, the manifest is {manifest_of}")]
    SignatureSwapped {
        /// What the signature file names.
        signed_for: String,
        /// What the manifest is.
        manifest_of: String,
    },
    /// The signature does not verify under the given public key.
    #[error("SignatureInvalid: {0}")]
    SignatureInvalid(String),
    /// No manifest, or more than one.
    #[error("ManifestMissing: {0}")]
    ManifestMissing(String),
    /// No signature beside the manifest.
    #[error("SignatureMissing: {0} is not in the archive")]
    SignatureMissing(String),
    /// The manifest or signature cannot be read.
    #[error("ManifestUnreadable: {0}")]
    ManifestUnreadable(String),
    /// The public key cannot be read.
    #[error("BadPublicKey: {0}")]
    BadPublicKey(String),
}

impl Tamper {
    /// The stable name (the first word of the message).
    pub fn name(&self) -> &'static str {
        match self {
            Tamper::FileChanged { .. } => "FileChanged",
            Tamper::FileAdded { .. } => "FileAdded",
            Tamper::FileMissing { .. } => "FileMissing",
            Tamper::ManifestEdited { .. } => "ManifestEdited",
            Tamper::SignatureSwapped { .. } => "SignatureSwapped",
            Tamper::SignatureInvalid(_) => "SignatureInvalid",
            Tamper::ManifestMissing(_) => "ManifestMissing",
            Tamper::SignatureMissing(_) => "SignatureMissing",
            Tamper::ManifestUnreadable(_) => "ManifestUnreadable",
            Tamper::BadPublicKey(_) => "BadPublicKey",
        }
    }

    /// The process exit code `egress-verify` uses for it (distinct per kind, never 0).
    pub fn exit_code(&self) -> u8 {
        match self {
            Tamper::FileChanged { .. } => 10,
            Tamper::FileAdded { .. } => 11,
            Tamper::FileMissing { .. } => 12,
            Tamper::ManifestEdited { .. } => 13,
            Tamper::SignatureSwapped { .. } => 14,
            Tamper::SignatureInvalid(_) => 15,
            Tamper::ManifestMissing(_) => 16,
            Tamper::SignatureMissing(_) => 17,
            Tamper::ManifestUnreadable(_) => 18,
            Tamper::BadPublicKey(_) => 19,
        }
    }
}

/// What a successful check verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// The request.
    pub egress_request_id: String,
    /// The manifest's file name.
    pub manifest_name: String,
    /// SHA-256 of the manifest.
    pub manifest_sha256: String,
    /// The signing key named by the signature file.
    pub key_id: String,
    /// Files checked (each: bytes and SHA-256).
    pub files: usize,
    /// Their total size.
    pub total_bytes: u64,
    /// The reviewer decisions the record carries: `stage decision by email at`.
    pub decisions: Vec<String>,
    /// The audit chain head the record quotes (`seq:hash`).
    pub audit_chain_head: Option<String>,
    /// When the archive was written.
    pub archived_at: String,
}

/// Whether `name` is a release manifest's name.
pub fn is_manifest_name(name: &str) -> bool {
    name.starts_with("egress_manifest_") && name.ends_with(".json") && !name.contains('/')
}

/// Checks an archive: `entries` are every entry of the zip (names, sizes, SHA-256s), and
/// `small` holds the bytes of the manifest and signature entries.
pub fn check(
    entries: &[ArchiveEntry],
    small: &BTreeMap<String, Vec<u8>>,
    public_key_pem: &str,
) -> Result<Verified, Tamper> {
    let key = VerifyingKey::from_public_key_pem(public_key_pem.trim())
        .map_err(|e| Tamper::BadPublicKey(e.to_string()))?;
    let manifests: Vec<&ArchiveEntry> = entries
        .iter()
        .filter(|e| is_manifest_name(&e.name))
        .collect();
    let [manifest_entry] = manifests.as_slice() else {
        return Err(Tamper::ManifestMissing(format!(
            "expected one egress_manifest_<id>.json at the top of the archive, found {}",
            manifests.len()
        )));
    };
    let manifest_name = manifest_entry.name.clone();
    let sig_name = signature_name(&manifest_name);
    let manifest_bytes = small
        .get(&manifest_name)
        .ok_or_else(|| Tamper::ManifestMissing(manifest_name.clone()))?;
    let sig_bytes = small
        .get(&sig_name)
        .ok_or_else(|| Tamper::SignatureMissing(sig_name.clone()))?;
    let signature: ReleaseSignature = serde_json::from_slice(sig_bytes)
        .map_err(|e| Tamper::ManifestUnreadable(format!("{sig_name}: {e}")))?;
    let manifest_sha256 = hex::encode(Sha256::digest(manifest_bytes));
    // Which release the manifest claims to be, read leniently: an edited manifest must still
    // be reported as edited, not as unreadable.
    let claimed_id = serde_json::from_slice::<serde_json::Value>(manifest_bytes)
        .ok()
        .and_then(|v| v["egress_request_id"].as_str().map(str::to_string))
        .unwrap_or_default();
    if signature.egress_request_id != claimed_id || signature.manifest_name != manifest_name {
        return Err(Tamper::SignatureSwapped {
            signed_for: format!(
                "{} ({})",
                signature.egress_request_id, signature.manifest_name
            ),
            manifest_of: format!("{claimed_id} ({manifest_name})"),
        });
    }
    if signature.manifest_sha256 != manifest_sha256 {
        return Err(Tamper::ManifestEdited {
            found: manifest_sha256,
            signed: signature.manifest_sha256,
        });
    }
    if signature.signing_algorithm != SIGNING_ALGORITHM {
        return Err(Tamper::SignatureInvalid(format!(
            "algorithm {} is not {SIGNING_ALGORITHM}",
            signature.signing_algorithm
        )));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(signature.signature.as_bytes())
        .map_err(|e| Tamper::SignatureInvalid(format!("not base64: {e}")))?;
    let sig = Signature::from_der(&der)
        .map_err(|e| Tamper::SignatureInvalid(format!("not a DER ECDSA signature: {e}")))?;
    key.verify(&signed_statement(&claimed_id, &manifest_sha256), &sig)
        .map_err(|_| {
            Tamper::SignatureInvalid(format!(
                "the signature of {manifest_name} does not verify under this public key"
            ))
        })?;
    let record: ReleaseRecord = serde_json::from_slice(manifest_bytes)
        .map_err(|e| Tamper::ManifestUnreadable(format!("{manifest_name}: {e}")))?;

    let found: BTreeMap<&str, &ArchiveEntry> = entries
        .iter()
        .filter(|e| e.name != manifest_name && e.name != sig_name && !e.name.ends_with('/'))
        .map(|e| (e.name.as_str(), e))
        .collect();
    let mut total_bytes = 0;
    for file in &record.files {
        let Some(entry) = found.get(file.path.as_str()) else {
            return Err(Tamper::FileMissing {
                path: file.path.clone(),
            });
        };
        if entry.size != file.size || entry.sha256 != file.sha256 {
            return Err(Tamper::FileChanged {
                path: file.path.clone(),
                size: entry.size,
                sha256: entry.sha256.clone(),
                expected_size: file.size,
                expected_sha256: file.sha256.clone(),
            });
        }
        total_bytes += entry.size;
    }
    let listed: std::collections::BTreeSet<&str> =
        record.files.iter().map(|f| f.path.as_str()).collect();
    if let Some(extra) = found.keys().find(|name| !listed.contains(*name)) {
        return Err(Tamper::FileAdded {
            path: extra.to_string(),
        });
    }
    Ok(Verified {
        egress_request_id: record.egress_request_id,
        manifest_name,
        manifest_sha256,
        key_id: signature.key_id,
        files: record.files.len(),
        total_bytes,
        decisions: record
            .decisions
            .iter()
            .map(|d| {
                format!(
                    "{} {} by {} at {}",
                    d.stage,
                    d.decision.as_deref().unwrap_or("-"),
                    d.reviewer_email
                        .as_deref()
                        .or(d.reviewer.as_deref())
                        .unwrap_or("-"),
                    d.at.as_deref().unwrap_or("-")
                )
            })
            .collect(),
        audit_chain_head: record
            .audit_chain_head
            .map(|h| format!("{}:{}", h.seq, h.hash)),
        archived_at: record.archived_at,
    })
}
