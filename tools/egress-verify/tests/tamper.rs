//! `egress-verify` on a signed archive and on tampered copies: each tampering exits non-zero
//! with its own named error.

// Test code: a failed setup step should panic where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use shared::evidence::release::{build_record, sign_record, signature_name};
use shared::fakes::LocalSigner;
use shared::model::{EgressStatus, Manifest, ManifestEntry};

const FILES: &[(&str, &[u8])] = &[
    ("results/table.csv", b"a,b\n1,2\n"),
    ("README.md", b"# out\n"),
];

fn entry(path: &str, data: &[u8]) -> ManifestEntry {
    ManifestEntry {
        path: path.into(),
        source_key: format!("ws-1/{path}"),
        version_id: "v1".into(),
        size: data.len() as u64,
        sha256: hex::encode(Sha256::digest(data)),
    }
}

/// The record and signature of request `id` over FILES, signed by `signer`.
async fn release(id: &str, signer: &LocalSigner) -> (String, Vec<u8>, Vec<u8>) {
    let manifest = Manifest {
        egress_request_id: id.into(),
        workspace_id: "ws-1".into(),
        source_bucket: "swb".into(),
        snapshot_location: "arn:aws:s3:::n/s.json".into(),
        files: FILES.iter().map(|(p, d)| entry(p, d)).collect(),
    };
    let request = shared::testdata::request(id, EgressStatus::IgApproved);
    let record = build_record(
        &request,
        &manifest,
        "abc",
        "2026-01-01T00:00:00.000Z",
        None,
        None,
    );
    let bytes = serde_json::to_vec_pretty(&record).unwrap();
    let name = format!("egress_manifest_{id}.json");
    let sig = sign_record(signer, id, &name, &bytes).await.unwrap();
    (name, bytes, serde_json::to_vec_pretty(&sig).unwrap())
}

fn write_zip(path: &Path, entries: &[(String, Vec<u8>)]) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in entries {
        zip.start_file(name.as_str(), options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap();
}

struct Case {
    dir: PathBuf,
    key: PathBuf,
}

impl Case {
    fn new(name: &str, signer: &LocalSigner) -> Self {
        let dir = std::env::temp_dir().join(format!("egress-verify-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("release.pem");
        std::fs::write(&key, signer.pem()).unwrap();
        Self { dir, key }
    }

    /// Runs the CLI on `entries`: (exit code, stdout, stderr).
    fn verify(&self, entries: &[(String, Vec<u8>)]) -> (i32, String, String) {
        let zip = self.dir.join("archive.zip");
        write_zip(&zip, entries);
        let out = Command::new(env!("CARGO_BIN_EXE_egress-verify"))
            .arg(&zip)
            .arg(&self.key)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }
}

async fn genuine(id: &str, signer: &LocalSigner) -> Vec<(String, Vec<u8>)> {
    let (name, record, sig) = release(id, signer).await;
    let mut entries: Vec<(String, Vec<u8>)> = FILES
        .iter()
        .map(|(p, d)| (p.to_string(), d.to_vec()))
        .collect();
    entries.push((signature_name(&name), sig));
    entries.push((name, record));
    entries
}

#[tokio::test]
async fn when_nothing_was_changed_then_it_prints_what_it_verified_and_exits_zero() {
    let signer = LocalSigner::default();
    let case = Case::new("genuine", &signer);
    let (code, out, err) = case.verify(&genuine("req-1", &signer).await);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("signature valid"), "{out}");
    assert!(out.contains("2 files"), "{out}");
    assert!(out.contains("req-1"), "{out}");
}

fn assert_fails(result: (i32, String, String), name: &str, code: i32) {
    let (got, out, err) = result;
    assert_eq!(got, code, "{name}: {out}{err}");
    assert!(
        err.contains(&format!("NOT VERIFIED: {name}:")),
        "{name}: {err}"
    );
}

#[tokio::test]
async fn when_a_byte_of_a_file_changed_then_file_changed() {
    let signer = LocalSigner::default();
    let case = Case::new("byte", &signer);
    let mut entries = genuine("req-1", &signer).await;
    entries[0].1[0] ^= 1;
    assert_fails(case.verify(&entries), "FileChanged", 10);
}

#[tokio::test]
async fn when_a_file_was_added_then_file_added() {
    let signer = LocalSigner::default();
    let case = Case::new("added", &signer);
    let mut entries = genuine("req-1", &signer).await;
    entries.push(("extra.csv".into(), b"x".to_vec()));
    assert_fails(case.verify(&entries), "FileAdded", 11);
}

#[tokio::test]
async fn when_a_file_was_dropped_then_file_missing() {
    let signer = LocalSigner::default();
    let case = Case::new("dropped", &signer);
    let mut entries = genuine("req-1", &signer).await;
    entries.remove(1);
    assert_fails(case.verify(&entries), "FileMissing", 12);
}

#[tokio::test]
async fn when_the_manifest_was_edited_then_manifest_edited() {
    let signer = LocalSigner::default();
    let case = Case::new("manifest", &signer);
    let mut entries = genuine("req-1", &signer).await;
    let manifest = entries.last_mut().unwrap();
    // Edit a recorded digest to match a changed file: the signature no longer covers it.
    let text = String::from_utf8(manifest.1.clone()).unwrap();
    manifest.1 = text.replace("\"IG\"", "\"RIT\"").into_bytes();
    assert_fails(case.verify(&entries), "ManifestEdited", 13);
}

#[tokio::test]
async fn when_the_signature_of_another_release_was_put_in_then_signature_swapped() {
    let signer = LocalSigner::default();
    let case = Case::new("swapped", &signer);
    let mut entries = genuine("req-1", &signer).await;
    let other = genuine("req-2", &signer).await;
    let sig_index = entries
        .iter()
        .position(|(n, _)| n.ends_with(".sig"))
        .unwrap();
    entries[sig_index].1 = other
        .iter()
        .find(|(n, _)| n.ends_with(".sig"))
        .unwrap()
        .1
        .clone();
    assert_fails(case.verify(&entries), "SignatureSwapped", 14);
}

#[tokio::test]
async fn when_signed_by_another_key_then_signature_invalid() {
    let signer = LocalSigner::default();
    let case = Case::new("otherkey", &signer);
    let forged = genuine("req-1", &LocalSigner::new(9)).await;
    assert_fails(case.verify(&forged), "SignatureInvalid", 15);
}
