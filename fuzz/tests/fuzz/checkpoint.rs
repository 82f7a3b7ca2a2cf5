//! The archive continuation checkpoint (`.checkpoints/<workspace>/<request>.json` in the
//! staging bucket, `shared::services::archive`'s private `Checkpoint`), read back by the next
//! invocation of `copy-to-datalake`. It is the service's own file, but a corrupted or edited
//! one must not produce a wrong archive: whatever the checkpoint holds, the step either
//! writes the archive every file intact (read back with the `zip` crate, CRCs checked, bytes
//! equal to the staged files) or fails with a named `EgressError`; never a panic.
//!
//! The checkpoint is private, so the target drives the whole step against the in-memory fakes
//! (`ArchiveStep::until`, a bounded invocation, which reads the checkpoint first) with a
//! checkpoint that fits the archive (same manifest, size and part size, an open upload) and
//! hostile members, or arbitrary JSON.

use std::io::Read as _;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shared::domain::keys::{self, StagingLayout};
use shared::error::ERROR_TYPES;
use shared::fakes::{InMemoryAuditLog, InMemoryObjectStore, InMemoryRequestStore};
use shared::model::{ArchiveInput, EgressStatus, Manifest, ManifestEntry};
use shared::ports::{Destination, FixedClock, ObjectStore};
use shared::services::archive::{ArchiveSettings, ArchiveStep};
use shared::services::Step;
use shared::testdata::request;
use time::macros::datetime;

use crate::support::{self, hostile_string, hostile_value, mutation, path, Mutation};

const ID: &str = "req-checkpoint";
const PART: u64 = 5 * 1024 * 1024;

type TestStep =
    ArchiveStep<InMemoryObjectStore, InMemoryRequestStore, InMemoryAuditLog, FixedClock>;

fn workspace() -> String {
    request(ID, EgressStatus::IgApproved).workspace_id
}

fn files() -> Vec<(String, Vec<u8>)> {
    vec![
        ("a/empty".into(), Vec::new()),
        ("a/first.csv".into(), b"n,count\n1,20\n".to_vec()),
        (
            "b/last.bin".into(),
            (0..3000u32).map(|i| (i * 7) as u8).collect(),
        ),
    ]
}

/// A fresh step with the files staged; returns it and the manifest's bytes.
fn staged() -> (TestStep, Vec<u8>) {
    let objects = InMemoryObjectStore::new()
        .with_bucket("staging", false)
        .with_bucket("datalake", false);
    let layout = StagingLayout::new(&workspace(), ID).expect("a layout");
    let mut entries = Vec::new();
    for (path, data) in files() {
        objects.put_object(
            "staging",
            &layout.staged_key(&path).expect("a key"),
            data.clone(),
        );
        entries.push(ManifestEntry {
            path: path.clone(),
            source_key: path,
            version_id: "v1".into(),
            size: data.len() as u64,
            sha256: hex::encode(Sha256::digest(&data)),
        });
    }
    let manifest = serde_json::to_vec(&Manifest {
        egress_request_id: ID.into(),
        workspace_id: workspace(),
        source_bucket: "egress".into(),
        snapshot_location: "arn:aws:s3:::notify/s.json".into(),
        files: entries,
    })
    .expect("JSON");
    objects.put_object("staging", layout.manifest_key(), manifest.clone());
    let mut settings = ArchiveSettings::new("staging", "datalake", "dkms", PART);
    settings.staging_kms_key_arn = "skms".into();
    let step = ArchiveStep {
        objects,
        requests: InMemoryRequestStore::with([request(ID, EgressStatus::IgApproved)]),
        audit: InMemoryAuditLog::default(),
        clock: FixedClock(datetime!(2024-03-05 14:30:00 UTC)),
        settings,
    };
    (step, manifest)
}

fn input() -> ArchiveInput {
    ArchiveInput {
        egress_request_id: ID.into(),
        workspace_id: workspace(),
    }
}

/// The archive's size, from an uninterrupted run (the same for every run of these files).
fn archive_size() -> u64 {
    let (step, _) = staged();
    let rt = support::runtime();
    rt.block_on(step.run(&input())).expect("an archive").size
}

fn paths() -> Vec<Vec<support::Step>> {
    let mut p: Vec<_> = [
        "version",
        "upload_id",
        "manifest_sha256",
        "archive_size",
        "part_size",
        "modified",
        "parts",
        "position",
    ]
    .iter()
    .map(|f| path(&[f]))
    .collect();
    for f in ["at", "entry", "data_done", "crc32", "sha256_state", "crcs"] {
        p.push(path(&["position", f]));
    }
    p
}

/// Values the position's members give a meaning to.
fn position_value() -> impl Strategy<Value = (&'static str, Value)> {
    prop_oneof![
        (
            Just("entry"),
            prop_oneof![0u64..8, Just(u64::MAX), Just(usize::MAX as u64)].prop_map(Value::from)
        ),
        (
            Just("data_done"),
            prop_oneof![0u64..4000, Just(u64::MAX), Just(1u64 << 40)].prop_map(Value::from)
        ),
        (Just("crc32"), any::<u32>().prop_map(Value::from)),
        (
            Just("sha256_state"),
            prop_oneof![
                "[0-9a-f]{0,160}",
                Just("00".repeat(40)),
                Just("ff".repeat(40)),
                Just("ff".repeat(112)),
                hostile_string(),
            ]
            .prop_map(Value::from)
        ),
        (
            Just("crcs"),
            prop_oneof!["([0-9a-f]{8}){0,4}", "[0-9a-zA-Z]{0,32}", hostile_string()]
                .prop_map(Value::from)
        ),
        (Just("modified"), any::<u32>().prop_map(Value::from)),
    ]
}

#[derive(Debug, Clone)]
enum Doc {
    /// A checkpoint that fits, with these position members set.
    Fitting(Vec<(&'static str, Value)>, Vec<Mutation>),
    /// Arbitrary JSON or text.
    Any(Value),
    Text(String),
}

fn doc() -> impl Strategy<Value = Doc> {
    prop_oneof![
        6 => (
            proptest::collection::vec(position_value(), 0..4),
            proptest::collection::vec(mutation(paths()), 0..2),
        )
            .prop_map(|(p, m)| Doc::Fitting(p, m)),
        1 => hostile_value().prop_map(Doc::Any),
        1 => prop_oneof![hostile_string(), any::<String>()].prop_map(Doc::Text),
    ]
}

#[test]
fn when_the_archive_checkpoint_is_hostile_then_the_archive_is_intact_or_refused() {
    let size = archive_size();
    let rt = support::runtime();
    let expected: Vec<(String, Vec<u8>)> = files();
    support::run(
        "archive_checkpoint",
        support::cases(support::DEFAULT_CASES, u32::MAX),
        doc(),
        |doc| {
            let (step, manifest) = staged();
            let upload = rt
                .block_on(step.objects.create_multipart(&Destination::new(
                    "datalake",
                    keys::archive_key(&workspace(), ID).expect("a key"),
                    "dkms",
                )))
                .expect("an upload");
            let body = match doc {
                Doc::Fitting(position, mutations) => {
                    let mut v = json!({
                        "version": 1, "upload_id": upload.upload_id,
                        "manifest_sha256": hex::encode(Sha256::digest(&manifest)),
                        "archive_size": size, "part_size": PART, "modified": 0x5865_7000u32,
                        "parts": [],
                        "position": {"at": 0, "entry": 0, "data_done": 0, "crc32": 0,
                            "sha256_state": hex::encode(sha256_start()), "crcs": ""},
                    });
                    for (k, val) in position {
                        if k == "modified" {
                            v[k] = val;
                        } else {
                            v["position"][k] = val;
                        }
                    }
                    for m in &mutations {
                        m.apply(&mut v);
                    }
                    v.to_string().into_bytes()
                }
                Doc::Any(v) => v.to_string().into_bytes(),
                Doc::Text(t) => t.into_bytes(),
            };
            step.objects.put_object(
                "staging",
                &format!(".checkpoints/{}/{ID}.json", workspace()),
                body,
            );
            let deadline = SystemTime::now() + Duration::from_secs(3600);
            match rt.block_on(step.until(deadline).run(&input())) {
                Ok(result) if result.complete => {
                    let key = keys::archive_key(&workspace(), ID).expect("a key");
                    let data = step
                        .objects
                        .object("datalake", &key)
                        .expect("the archive")
                        .data;
                    prop_assert_eq!(data.len() as u64, result.size);
                    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(data.to_vec()))
                        .map_err(|e| TestCaseError::fail(format!("not a zip: {e}")))?;
                    for (name, content) in &expected {
                        let mut entry = zip
                            .by_name(name)
                            .map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
                        let mut read = Vec::new();
                        // The zip crate checks each entry's CRC-32 as it reads it.
                        entry
                            .read_to_end(&mut read)
                            .map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
                        prop_assert_eq!(&read, content, "{} changed", name);
                    }
                    support::tally("archived_intact");
                }
                Ok(_) => support::tally("stopped"),
                Err(err) => {
                    prop_assert!(ERROR_TYPES.contains(&err.error_type()));
                    support::tally(err.error_type());
                }
            }
            Ok(())
        },
    );
}

/// The serialised state of a fresh SHA-256 (what `Position::start` saves).
fn sha256_start() -> Vec<u8> {
    use sha2::digest::common::hazmat::SerializableState;
    Sha256::default().serialize().to_vec()
}
