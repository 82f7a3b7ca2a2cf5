//! The release record verifiers: `egress-verify`'s archive reader and check
//! (`tools/egress-verify`, `shared::evidence::archive_check::check`) on arbitrary archives,
//! manifests and signatures, and `shared::evidence::release::verify_record` (what an API
//! client runs on `requestEvidence`'s answer).
//!
//! Each case starts from a release signed for real (a local P-256 key) and tampers with it:
//! files changed, added, removed; the manifest edited (signed again or not) or made invalid
//! JSON; the signature file swapped, broken, or made of arbitrary JSON; another public key;
//! the archive's bytes damaged. Properties: no panic; an untouched release verifies; every
//! failure is one named kind (`Tamper::name`, the first word of its message) with its own
//! exit code (10 to 19), and `verify_record` fails with one of its named kinds.

use std::collections::BTreeMap;
use std::io::Write as _;

use base64::Engine;
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shared::evidence::archive_check::{self, ArchiveEntry};
use shared::evidence::release::{
    signature_name, signed_statement, verify_record, SIGNATURE_FORMAT, SIGNING_ALGORITHM,
};
use shared::fakes::LocalSigner;
use shared::ports::ReleaseSigner;

use crate::support::{self, hostile_string, hostile_value, mutation, path, Mutation};

/// `egress-verify`'s own code (a binary crate): its archive reader is fuzzed as it is.
#[allow(dead_code)]
#[path = "../../../tools/egress-verify/src/main.rs"]
mod egress_verify;

const ID: &str = "8d3b9a57-4b8e-4a9e-9b7c-1f2d3e4a5b6c";
const MANIFEST: &str = "egress_manifest_8d3b9a57-4b8e-4a9e-9b7c-1f2d3e4a5b6c.json";

fn record(files: &[(String, Vec<u8>)]) -> Value {
    json!({
        "format": "egress-release/v1", "egress_request_id": ID, "project_id": "p",
        "workspace_id": "ws-1", "egress_store_id": "st-1", "submitted_by": "u-1",
        "submitted_by_email": null, "submitted_at": "2024-05-01T10:00:00.000Z",
        "approval_mode": "single",
        "decisions": [{"stage": "IG", "reviewer": "iris", "reviewer_sub": "s",
            "reviewer_email": "iris@example.org", "decision": "APPROVED", "reason": "fine",
            "at": "2024-05-02T10:00:00.000Z"}],
        "checks": null, "policy_versions": {"record": "egress-release/v1"},
        "source_bucket": "swb", "snapshot_location": "s3://swb/x.json",
        "staging_manifest_sha256": "00", "archived_at": "2024-05-03T12:00:00.000Z",
        "audit_chain_head": {"seq": 3, "hash": "ab"},
        "files": files.iter().map(|(p, b)| json!({
            "path": p, "source_key": format!("ws-1/{p}"), "version_id": "v1",
            "size": b.len(), "sha256": hex::encode(Sha256::digest(b)),
        })).collect::<Vec<_>>(),
    })
}

fn signature(signer: &LocalSigner, id: &str, name: &str, record_bytes: &[u8]) -> Vec<u8> {
    let digest = hex::encode(Sha256::digest(record_bytes));
    let rt = support::runtime();
    // KMS (and the local signer) sign at most 4096 bytes: a forger's huge id gets no
    // signature, which the verifiers must refuse like any other.
    let signed = rt
        .block_on(signer.sign(&signed_statement(id, &digest)))
        .unwrap_or(shared::ports::Signed {
            key_id: signer.key_id.clone(),
            signature: Vec::new(),
        });
    serde_json::to_vec(&json!({
        "format": SIGNATURE_FORMAT, "egress_request_id": id, "manifest_name": name,
        "manifest_sha256": digest, "key_id": signed.key_id,
        "signing_algorithm": SIGNING_ALGORITHM,
        "signature": base64::engine::general_purpose::STANDARD.encode(&signed.signature),
    }))
    .expect("JSON")
}

/// What is done to a signed release.
#[derive(Debug, Clone)]
enum Change {
    /// A data file's bytes replaced.
    EditFile(usize, Vec<u8>),
    /// A file added to the archive.
    AddFile(String, Vec<u8>),
    /// A file removed from the archive.
    RemoveFile(usize),
    /// The record changed (and signed again when true: a forger's own key signs nothing
    /// the given public key accepts, but a re-signature by the real key must verify).
    EditRecord(Mutation, bool),
    /// The record's bytes replaced by arbitrary text.
    RecordText(String),
    /// The signature file's JSON changed.
    EditSignature(Mutation),
    /// The signature file replaced by arbitrary bytes.
    SignatureBytes(Vec<u8>),
    /// The signature file removed.
    RemoveSignature,
    /// A second manifest added.
    SecondManifest,
    /// The record renamed.
    RenameRecord(String),
    /// Verified under another key, or an unreadable one.
    Key(u8),
}

fn change() -> impl Strategy<Value = Change> {
    let mut record_paths = vec![
        path(&["egress_request_id"]),
        path(&["files"]),
        path(&["decisions"]),
    ];
    for f in ["path", "size", "sha256"] {
        record_paths.push(path(&["files", "0", f]));
        record_paths.push(path(&["files", "1", f]));
    }
    for f in ["audit_chain_head", "archived_at", "format"] {
        record_paths.push(path(&[f]));
    }
    let sig_paths: Vec<_> = [
        "format",
        "egress_request_id",
        "manifest_name",
        "manifest_sha256",
        "key_id",
        "signing_algorithm",
        "signature",
    ]
    .iter()
    .map(|f| path(&[f]))
    .collect();
    prop_oneof![
        (0usize..4, proptest::collection::vec(any::<u8>(), 0..32))
            .prop_map(|(i, b)| Change::EditFile(i, b)),
        (
            prop_oneof![3 => "[a-z]{1,8}/[a-z]{1,8}\\.csv", 1 => hostile_string()],
            proptest::collection::vec(any::<u8>(), 0..32)
        )
            .prop_map(|(n, b)| Change::AddFile(n, b)),
        (0usize..4).prop_map(Change::RemoveFile),
        (mutation(record_paths), any::<bool>()).prop_map(|(m, s)| Change::EditRecord(m, s)),
        prop_oneof![hostile_string(), any::<String>()].prop_map(Change::RecordText),
        mutation(sig_paths).prop_map(Change::EditSignature),
        proptest::collection::vec(any::<u8>(), 0..200).prop_map(Change::SignatureBytes),
        Just(Change::RemoveSignature),
        Just(Change::SecondManifest),
        prop_oneof![
            Just("egress_manifest_x.json".to_string()),
            Just("manifest.json".to_string()),
            hostile_string()
        ]
        .prop_map(Change::RenameRecord),
        prop_oneof![Just(0u8), Just(8u8), Just(9u8)].prop_map(Change::Key),
    ]
}

/// A release as `egress-verify` reads it.
struct Release {
    entries: Vec<(String, Vec<u8>)>,
    pem: String,
}

fn build(files: &[(String, Vec<u8>)], changes: &[Change]) -> Release {
    let signer = LocalSigner::default();
    let mut files = files.to_vec();
    let mut record_value = record(&files);
    let mut record_bytes = serde_json::to_vec(&record_value).expect("JSON");
    let mut manifest = MANIFEST.to_string();
    let mut sig = signature(&signer, ID, &manifest, &record_bytes);
    let mut sig_present = true;
    let mut extra_manifest = false;
    let mut pem = signer.pem();
    for c in changes {
        match c {
            Change::EditFile(i, b) if !files.is_empty() => {
                let n = files.len();
                files[i % n].1 = b.clone();
            }
            Change::AddFile(n, b) => files.push((n.clone(), b.clone())),
            Change::RemoveFile(i) if !files.is_empty() => {
                let n = files.len();
                files.remove(i % n);
            }
            Change::EditRecord(m, resign) => {
                m.apply(&mut record_value);
                record_bytes = serde_json::to_vec(&record_value).expect("JSON");
                if *resign {
                    let id = record_value["egress_request_id"]
                        .as_str()
                        .unwrap_or_default();
                    sig = signature(&signer, id, &manifest, &record_bytes);
                }
            }
            Change::RecordText(t) => record_bytes = t.clone().into_bytes(),
            Change::EditSignature(m) => {
                if let Ok(mut v) = serde_json::from_slice::<Value>(&sig) {
                    m.apply(&mut v);
                    sig = serde_json::to_vec(&v).expect("JSON");
                }
            }
            Change::SignatureBytes(b) => sig = b.clone(),
            Change::RemoveSignature => sig_present = false,
            Change::SecondManifest => extra_manifest = true,
            Change::RenameRecord(n) => manifest = n.clone(),
            Change::Key(0) => {
                pem = "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n".into()
            }
            Change::Key(seed) => pem = LocalSigner::new(*seed).pem(),
            _ => {}
        }
    }
    let mut entries = files;
    entries.push((manifest.clone(), record_bytes));
    if sig_present {
        entries.push((signature_name(&manifest), sig));
    }
    if extra_manifest {
        entries.push(("egress_manifest_other.json".into(), b"{}".to_vec()));
    }
    Release { entries, pem }
}

fn check_tamper(result: &Result<archive_check::Verified, archive_check::Tamper>) -> TestCaseResult {
    if let Err(t) = result {
        let msg = t.to_string();
        prop_assert!(msg.starts_with(t.name()), "{}", msg);
        prop_assert!((10..=19).contains(&t.exit_code()));
        support::tally(t.name());
    } else {
        support::tally("verified");
    }
    Ok(())
}

fn files() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    proptest::collection::btree_map(
        "[a-z]{1,8}/[a-z0-9]{1,8}\\.(csv|txt)",
        proptest::collection::vec(any::<u8>(), 0..64),
        0..4,
    )
    .prop_map(|m| m.into_iter().collect())
}

#[test]
fn when_a_release_is_tampered_with_then_the_check_names_what_and_never_panics() {
    support::run(
        "release_check",
        support::cases(support::DEFAULT_CASES, u32::MAX),
        (files(), proptest::collection::vec(change(), 0..3)),
        |(files, changes)| {
            let release = build(&files, &changes);
            let entries: Vec<ArchiveEntry> = release
                .entries
                .iter()
                .map(|(n, b)| ArchiveEntry {
                    name: n.clone(),
                    size: b.len() as u64,
                    sha256: hex::encode(Sha256::digest(b)),
                })
                .collect();
            let small: BTreeMap<String, Vec<u8>> = release
                .entries
                .iter()
                .filter(|(n, _)| archive_check::is_manifest_name(n) || n.ends_with(".json.sig"))
                .cloned()
                .collect();
            let result = archive_check::check(&entries, &small, &release.pem);
            if changes.is_empty() {
                prop_assert!(result.is_ok(), "an untouched release: {:?}", result);
            }
            check_tamper(&result)?;
            // The record and its signature alone, as an API client checks them.
            let manifest = release
                .entries
                .iter()
                .find(|(n, _)| archive_check::is_manifest_name(n));
            if let Some((name, bytes)) = manifest {
                let sig = small
                    .get(&signature_name(name))
                    .cloned()
                    .unwrap_or_default();
                match verify_record(bytes, &sig, &release.pem) {
                    Ok(_) => support::tally("record_verified"),
                    Err(e) => {
                        let kind = e.split(':').next().unwrap_or_default();
                        prop_assert!(
                            [
                                "BadPublicKey",
                                "SignatureUnreadable",
                                "SignatureSwapped",
                                "ManifestEdited",
                                "SignatureInvalid"
                            ]
                            .contains(&kind),
                            "{}",
                            e
                        );
                    }
                }
            }
            Ok(())
        },
    );
}

/// Damage to the archive's bytes.
#[derive(Debug, Clone)]
enum ZipDamage {
    Truncate(u16),
    Overwrite(u16, Vec<u8>),
    Field(u16, u32),
    Replace(Vec<u8>),
}

fn zip_damage() -> impl Strategy<Value = ZipDamage> {
    prop_oneof![
        (0u16..=1000).prop_map(ZipDamage::Truncate),
        (0u16..=1000, proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(p, b)| ZipDamage::Overwrite(p, b)),
        (
            0u16..=1000,
            prop_oneof![Just(0u32), Just(u32::MAX), Just(0xFFFF), any::<u32>()]
        )
            .prop_map(|(p, v)| ZipDamage::Field(p, v)),
        proptest::collection::vec(any::<u8>(), 0..256).prop_map(ZipDamage::Replace),
    ]
}

#[test]
fn when_the_archive_bytes_are_hostile_then_egress_verify_reads_or_refuses_and_never_panics() {
    let file = std::env::temp_dir().join(format!("fuzz-egress-verify-{}.zip", std::process::id()));
    let file_name = file.to_string_lossy().to_string();
    support::run(
        "release_archive",
        support::cases(support::DEFAULT_CASES, u32::MAX),
        (
            files(),
            proptest::collection::vec(change(), 0..2),
            proptest::collection::vec(zip_damage(), 0..3),
        ),
        |(files, changes, damages)| {
            let release = build(&files, &changes);
            let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            for (n, b) in &release.entries {
                if w.start_file(n.as_str(), opts).is_ok() {
                    let _ = w.write_all(b);
                }
            }
            let mut bytes = w.finish().map(|c| c.into_inner()).unwrap_or_default();
            for d in &damages {
                let at = |p: &u16, len: usize| len * usize::from(*p.min(&1000)) / 1000;
                match d {
                    ZipDamage::Truncate(p) => bytes.truncate(at(p, bytes.len())),
                    ZipDamage::Overwrite(p, b) => {
                        let i = at(p, bytes.len());
                        for (k, x) in b.iter().enumerate() {
                            if let Some(y) = bytes.get_mut(i + k) {
                                *y = *x;
                            }
                        }
                    }
                    ZipDamage::Field(p, v) => {
                        let i = at(p, bytes.len());
                        if i + 4 <= bytes.len() {
                            bytes[i..i + 4].copy_from_slice(&v.to_le_bytes());
                        }
                    }
                    ZipDamage::Replace(b) => bytes = b.clone(),
                }
            }
            std::fs::write(&file, &bytes).expect("a temporary file");
            match egress_verify::read_archive(&file_name) {
                Ok((entries, small)) => {
                    let result = archive_check::check(&entries, &small, &release.pem);
                    if changes.is_empty() && damages.is_empty() {
                        prop_assert!(result.is_ok(), "an untouched archive: {:?}", result);
                    }
                    check_tamper(&result)?;
                }
                // egress-verify exits 3: "cannot read the archive".
                Err(_) => support::tally("archive_unreadable"),
            }
            Ok(())
        },
    );
    let _ = std::fs::remove_file(&file);
}

/// Arbitrary JSON as the signature file, the record any JSON: `verify_record` names the fault.
#[test]
fn when_a_record_and_signature_are_arbitrary_json_then_verify_record_names_the_fault() {
    let pem = LocalSigner::default().pem();
    support::run(
        "release_verify_record",
        support::cases(support::DEFAULT_CASES, u32::MAX),
        (hostile_value(), hostile_value()),
        |(record, sig)| {
            let r = serde_json::to_vec(&record).expect("JSON");
            let s = serde_json::to_vec(&sig).expect("JSON");
            match verify_record(&r, &s, &pem) {
                Ok(_) => prop_assert!(false, "arbitrary JSON verified"),
                Err(e) => {
                    let kind = e.split(':').next().unwrap_or_default();
                    prop_assert!(
                        [
                            "SignatureUnreadable",
                            "SignatureSwapped",
                            "ManifestEdited",
                            "SignatureInvalid"
                        ]
                        .contains(&kind),
                        "{}",
                        e
                    );
                    support::tally(match kind {
                        "SignatureUnreadable" => "SignatureUnreadable",
                        _ => "refused_later",
                    });
                }
            }
            Ok(())
        },
    );
}
