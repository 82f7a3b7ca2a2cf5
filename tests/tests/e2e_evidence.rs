//! Evidence anyone can verify, end to end against the local stack (feature `e2e`): an
//! approved request's archive carries a release record signed by moto's KMS that
//! `egress-verify`'s check accepts with the stack's public key; tampered copies fail with
//! their named errors; the request's audit chain verifies; staging's deletion is proved in
//! the chain.
#![cfg(feature = "e2e")]

use std::collections::BTreeMap;

use aws_sdk_sfn::types::ExecutionStatus;
use e2e_tests::driver::{default_driver, ReviewDriver, Reviewer};
use e2e_tests::fixture::{self, ended, TIMEOUT};
use e2e_tests::inspect::{self, Archive};
use e2e_tests::swb::{Mode, Submit};
use shared::adapters::dynamodb::DynamoDbAuditLog;
use shared::adapters::kms::KmsReleaseSigner;
use shared::evidence::archive_check::{self, ArchiveEntry, Tamper};
use shared::evidence::chain;
use shared::model::{Decision, ReviewStage};
use shared::ports::{AuditLog, ReleaseSigner};

fn entries(archive: &Archive) -> (Vec<ArchiveEntry>, BTreeMap<String, Vec<u8>>) {
    let list = archive
        .entries
        .iter()
        .map(|(name, data)| ArchiveEntry {
            name: name.clone(),
            size: data.len() as u64,
            sha256: inspect::sha256_hex(data),
        })
        .collect();
    (list, archive.entries.clone())
}

fn check(archive: &Archive, pem: &str) -> Result<archive_check::Verified, Tamper> {
    let (list, small) = entries(archive);
    archive_check::check(&list, &small, pem)
}

#[tokio::test]
async fn when_a_request_is_approved_then_its_archive_verifies_tampering_is_named_and_the_chain_holds(
) {
    let stack = fixture::connect().await;
    let s = fixture::submit_as(&stack, &Submit::new(Mode::Single));
    let ig = Reviewer::ig(&stack);
    inspect::awaiting_review(&stack, &s.egress_request_id, ReviewStage::Ig, TIMEOUT)
        .await
        .expect("awaits IG");
    default_driver(&stack)
        .decide(
            &s.egress_request_id,
            &ig,
            Decision::Approved,
            "aggregate outputs only, evidence test",
        )
        .await
        .expect("the decision is accepted");
    let end = ended(&stack, &s.egress_request_id).await;
    assert_eq!(end.status, ExecutionStatus::Succeeded, "{end:?}");

    // The archive as a recipient downloads it, and the key as the stack publishes it.
    let bucket = stack.outputs.bucket("DatalakeBucket").expect("datalake");
    let key = inspect::archive_key(&s.workspace_id, &s.egress_request_id);
    let object = inspect::object(&stack, bucket, &key, None)
        .await
        .expect("readable")
        .expect("the archive is in the datalake");
    let archive = Archive::read(&object.body).expect("a valid zip");
    let key_arn = &stack.outputs.keys["ReleaseSigningKey"].arn;
    let pem = KmsReleaseSigner::from_config(&stack.sdk, key_arn.clone())
        .public_key_pem()
        .await
        .expect("the public key");

    let verified = check(&archive, &pem).expect("the genuine archive verifies");
    assert_eq!(verified.egress_request_id, s.egress_request_id);
    assert_eq!(verified.files, s.files.len());
    assert!(
        verified.decisions[0].contains("APPROVED"),
        "{:?}",
        verified.decisions
    );
    assert!(
        verified.audit_chain_head.is_some(),
        "the record quotes the chain head"
    );

    let manifest_name = verified.manifest_name.clone();
    let first_file = s.files[0].path.clone();
    let tampered = |change: &dyn Fn(&mut Archive)| {
        let mut copy = archive.clone();
        change(&mut copy);
        check(&copy, &pem)
            .expect_err("tampering is detected")
            .name()
    };
    assert_eq!(
        tampered(&|a| a.entries.get_mut(&first_file).unwrap().push(b'!')),
        "FileChanged"
    );
    assert_eq!(
        tampered(&|a| {
            a.entries.insert("extra.csv".into(), b"x".to_vec());
        }),
        "FileAdded"
    );
    assert_eq!(
        tampered(&|a| {
            a.entries.remove(&first_file);
        }),
        "FileMissing"
    );
    assert_eq!(
        tampered(&|a| a.entries.get_mut(&manifest_name).unwrap().insert(1, b' ')),
        "ManifestEdited"
    );
    let other_key = shared::fakes::LocalSigner::new(3).pem();
    assert_eq!(
        check(&archive, &other_key).expect_err("another key").name(),
        "SignatureInvalid"
    );

    // The chain: intact, and it holds the signature and the proof of staging's deletion.
    let audit = DynamoDbAuditLog::new(
        stack.dynamodb.clone(),
        stack.outputs.table("AuditTable").expect("audit table"),
    );
    let trail = audit.trail(&s.egress_request_id).await.expect("trail");
    let report = chain::verify(&trail);
    assert!(report.valid, "{report:?}");
    let actions: Vec<&str> = trail
        .events
        .iter()
        .filter(|e| e.link.is_some())
        .map(|e| e.event.action.as_str())
        .collect();
    for expected in [
        "staged",
        "decision",
        "release_signed",
        "deletion_proof",
        "deletion_confirmed",
        "archived",
    ] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
    let proved: Vec<String> = trail
        .events
        .iter()
        .filter(|e| e.event.action == "deletion_proof")
        .flat_map(|e| {
            e.event.detail["objects"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|o| o["sha256"].as_str().map(str::to_string))
        .collect();
    for file in &s.files {
        assert!(
            proved.contains(&file.sha256),
            "the deletion proof names {}",
            file.path
        );
    }
}
