//! Contract: every step result stays small whatever the request (DESIGN.md §8.6).
//!
//! Step Functions refuses a state above 256 KiB, and on AWS `States.DataLimitExceeded` is not
//! caught by `States.ALL`: a result that grows with the request would leave it `PROCESSING`
//! with SWB locked. Offline (no stack): the real services run on the in-memory fakes for a
//! request of 100,000 files with long names and a distinct extension each (14,000 such
//! DICOM-style names once made a 266 KB `file_types` list), and each serialized result must
//! stay under [`MAX_STEP_OUTPUT_BYTES`].

use serde::Serialize;
use serde_json::json;
use shared::fakes::{InMemoryAuditLog, InMemoryObjectStore, InMemoryRequestStore, RecordingMailer};
use shared::model::{
    ArchiveInput, CleanupInput, EgressRequest, EgressStatus, NotifyInput, Outcome,
    RecordTaskTokenInput, ReviewStage, StagingInput, MAX_STEP_OUTPUT_BYTES,
};
use shared::ports::FixedClock;
use shared::services::notify::NotifyStep;
use shared::services::{archive, cleanup, review_task, staging, Step};
use time::macros::datetime;

const FILES: usize = 100_000;
const CLOCK: FixedClock = FixedClock(datetime!(2024-05-01 12:00:00 UTC));
const KMS: &str = "arn:aws:kms:eu-west-2:123456789012:key/k";
const WS: &str = "ws-1";
const REQ: &str = "req-1";

fn size_of(what: &str, value: &impl Serialize) -> usize {
    let size = serde_json::to_vec(value).expect("serializable").len();
    assert!(
        size <= MAX_STEP_OUTPUT_BYTES,
        "{what} is {size} bytes, above {MAX_STEP_OUTPUT_BYTES}"
    );
    size
}

fn request(status: EgressStatus) -> EgressRequest {
    let mut r = shared::testdata::request(REQ, status);
    r.workspace_id = WS.into();
    r.s3_egress_store_bucket_path = format!("{WS}/");
    r
}

/// A long, distinct name per file with a distinct (valid) extension.
fn path(i: usize) -> String {
    format!(
        "series-{:03}/{}-1.2.840.10008.5.1.4.1.1.{i}.e{i:x}",
        i % 500,
        "long-name".repeat(20)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_request_holds_100000_files_then_every_step_result_stays_small() {
    let objects = InMemoryObjectStore::new()
        .with_bucket("swb-egress", true)
        .with_bucket("swb-notify", false)
        .with_bucket("staging", false)
        .with_bucket("datalake", false);
    let requests = InMemoryRequestStore::with([request(EgressStatus::Processing)]);
    let audit = InMemoryAuditLog::default();

    let listed: Vec<_> = (0..FILES)
        .map(|i| {
            let key = format!("{WS}/{}", path(i));
            let version = objects.put_object("swb-egress", &key, format!("{i}"));
            json!({"Key": key, "VersionId": version, "Size": format!("{i}").len()})
        })
        .collect();
    objects.put_object(
        "swb-notify",
        "ws-1/store-ver1.json",
        serde_json::to_vec(&json!({ "objects": listed })).expect("json"),
    );

    let step = staging::StagingStep {
        objects,
        requests,
        audit,
        clock: CLOCK,
        settings: staging::StagingSettings::new("staging", KMS, 16),
    };
    let staged = step
        .run(&StagingInput {
            egress_request_id: REQ.into(),
            workspace_id: WS.into(),
            s3_egress_store_bucket: "swb-egress".into(),
            s3_egress_store_bucket_path: format!("{WS}/"),
            s3_egress_store_object_list_location: "arn:aws:s3:::swb-notify/ws-1/store-ver1.json"
                .into(),
        })
        .await
        .expect("staged");
    let staging::StagingStep {
        objects,
        requests,
        audit,
        ..
    } = step;
    assert_eq!(staged.file_count, FILES as u64);
    assert_eq!(staged.file_type_count, FILES as u64);
    assert!(
        staged.file_types.ends_with(" +99990 other"),
        "{}",
        staged.file_types
    );
    size_of("StagingResult", &staged);
    let item = requests.item(REQ).expect("stored");
    let recorded = item.staged_file_types.expect("types recorded");
    assert!(recorded.len() < 512, "recorded types: {recorded}");
    for event in audit.events() {
        size_of("the staging audit detail", &event.detail);
    }

    let review = review_task::ReviewTaskStep {
        store: requests,
        clock: CLOCK,
    };
    let waiting = review
        .run(&RecordTaskTokenInput {
            task_token: "t".repeat(1024),
            egress_request_id: REQ.into(),
            stage: ReviewStage::Ig,
            reviewer_group: "IGApprover".into(),
        })
        .await
        .expect("recorded");
    size_of("RecordTaskTokenOutput", &waiting);
    let requests = review.store;

    let mut approved = requests.item(REQ).expect("stored");
    approved.egress_status = EgressStatus::IgApproved;
    requests.put(approved);
    let step = archive::ArchiveStep {
        objects,
        requests,
        audit,
        clock: CLOCK,
        settings: archive::ArchiveSettings::new("staging", "datalake", KMS, 8 * 1024 * 1024),
    };
    let archived = step
        .run(&ArchiveInput {
            egress_request_id: REQ.into(),
            workspace_id: WS.into(),
        })
        .await
        .expect("archived");
    let archive::ArchiveStep {
        objects,
        requests,
        audit,
        ..
    } = step;
    assert_eq!(archived.file_count, FILES as u64);
    size_of("ArchiveResult", &archived);

    // The archive removed the staged copies through the clean-up's own deletion; the
    // rejection path's clean-up result is a count whatever is left.
    assert_eq!(archived.deleted_staged_objects, FILES as u64 + 1);
    let cleanup = cleanup::CleanupStep {
        objects,
        audit,
        clock: CLOCK,
        staging_bucket: "staging".into(),
    };
    let cleaned = cleanup
        .run(&CleanupInput {
            egress_request_id: REQ.into(),
            workspace_id: WS.into(),
        })
        .await
        .expect("cleaned");
    size_of("CleanupResult", &cleaned);

    let notify = NotifyStep {
        store: requests,
        mailer: RecordingMailer::default(),
        admin_email: "admin@example.org".into(),
    };
    let notified = notify
        .run(
            &serde_json::from_value::<NotifyInput>(json!({
                "egress_request_id": REQ,
                "outcome": Outcome::Approved,
                "app_url": "https://egress.example.org",
            }))
            .expect("a notify input"),
        )
        .await
        .expect("notified");
    size_of("NotifyResult", &notified);
}
