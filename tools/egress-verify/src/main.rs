//! `egress-verify <archive.zip> <release-public-key.pem> [--json]`: checks an approved egress
//! archive offline (no AWS, no network): every file's bytes against the signed release
//! manifest, no file missing or extra, and the manifest's signature under the release key.
//!
//! Exit status: 0 when everything verifies; a distinct non-zero code per kind of tampering
//! (`FileChanged` 10, `FileAdded` 11, `FileMissing` 12, `ManifestEdited` 13,
//! `SignatureSwapped` 14, `SignatureInvalid` 15, `ManifestMissing` 16, `SignatureMissing` 17,
//! `ManifestUnreadable` 18, `BadPublicKey` 19); 2 for usage errors, 3 when a file cannot be
//! read at all.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::process::ExitCode;

use sha2::{Digest, Sha256};
use shared::evidence::archive_check::{self, ArchiveEntry, Verified};

/// Entries kept in memory to parse (the manifest and its signature); data files are hashed
/// as they stream past.
const MAX_SMALL_ENTRY: u64 = 256 * 1024 * 1024;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let paths: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let [archive, key] = paths.as_slice() else {
        eprintln!("usage: egress-verify <archive.zip> <release-public-key.pem> [--json]");
        return ExitCode::from(2);
    };
    let pem = match std::fs::read_to_string(key) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("egress-verify: cannot read the public key {key}: {e}");
            return ExitCode::from(3);
        }
    };
    let (entries, small) = match read_archive(archive) {
        Ok(read) => read,
        Err(e) => {
            eprintln!("egress-verify: cannot read the archive {archive}: {e}");
            return ExitCode::from(3);
        }
    };
    match archive_check::check(&entries, &small, &pem) {
        Ok(verified) => {
            print_verified(&verified, json);
            ExitCode::SUCCESS
        }
        Err(tamper) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "valid": false, "error": tamper.name(), "message": tamper.to_string() })
                );
            }
            eprintln!("egress-verify: NOT VERIFIED: {tamper}");
            ExitCode::from(tamper.exit_code())
        }
    }
}

/// Every entry's name, size and SHA-256, and the bytes of the manifest and signature.
/// An archive as read: its entries in order, and each entry's bytes by name.
type ReadArchive = (Vec<ArchiveEntry>, BTreeMap<String, Vec<u8>>);

/// `pub(crate)`: `fuzz/tests/fuzz/release.rs` includes this file and fuzzes this reader.
pub(crate) fn read_archive(path: &str) -> Result<ReadArchive, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| e.to_string())?;
    let mut entries = Vec::with_capacity(zip.len());
    let mut small = BTreeMap::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| e.to_string())?;
        let name = entry.name().map_err(|e| e.to_string())?.to_string();
        let keep = (archive_check::is_manifest_name(&name) || name.ends_with(".json.sig"))
            && entry.size() <= MAX_SMALL_ENTRY;
        let mut hasher = Sha256::new();
        let mut kept = Vec::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = entry.read(&mut buf).map_err(|e| format!("{name}: {e}"))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
            if keep {
                kept.extend_from_slice(&buf[..n]);
            }
        }
        if keep {
            small.insert(name.clone(), kept);
        }
        entries.push(ArchiveEntry {
            name,
            size,
            sha256: hex::encode(hasher.finalize()),
        });
    }
    Ok((entries, small))
}

fn print_verified(v: &Verified, json: bool) {
    if json {
        let mut value = serde_json::to_value(v).unwrap_or_default();
        value["valid"] = serde_json::Value::Bool(true);
        println!("{value}");
        return;
    }
    println!("signature valid: ECDSA_SHA_256 by {}", v.key_id);
    println!("request:          {}", v.egress_request_id);
    println!(
        "manifest:         {} (SHA-256 {})",
        v.manifest_name, v.manifest_sha256
    );
    println!(
        "files:            {} files, {} bytes: each matches its size and SHA-256 in the manifest; none missing, none extra",
        v.files, v.total_bytes
    );
    for d in &v.decisions {
        println!("decision:         {d}");
    }
    println!("archived at:      {}", v.archived_at);
    println!(
        "audit chain head: {}",
        v.audit_chain_head.as_deref().unwrap_or("(none recorded)")
    );
}
