//! Intake: SWB's egress message (`shared::domain::intake::build_workflow_input`) and the SNS
//! envelope around it (what `start-workflow` receives, through
//! `shared::services::intake::Intake::start` per record, as its handler does).

use std::collections::BTreeSet;

use aws_lambda_events::event::sns::SnsEvent;
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use serde_json::{json, Value};
use shared::domain::intake::{
    build_workflow_input, parse_message, workflow_config, IntakeConfig, MAX_FIELD_CHARS,
};
use shared::fakes::FakeWorkflowStarter;
use shared::model::WorkflowInput;
use shared::ports::StartOutcome;
use shared::services::intake::Intake;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::support::{
    self, hostile_string, mutation, names_field, path, text_damage, Mutation, Step, TextDamage,
};

const NOTIFY: &str = "swb-egress-notify-123456789012";
const STORE: &str = "swb-egress-store-123456789012";

/// Every member of SWB's message (DESIGN.md §2.1).
const FIELDS: &[&str] = &[
    "id",
    "egress_store_id",
    "egress_store_name",
    "workspace_id",
    "project_id",
    "s3_bucketname",
    "s3_bucketpath",
    "egress_store_object_list_location",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
    "created_by_email",
    "updated_by_email",
    "status",
    "ver",
];

fn config() -> IntakeConfig {
    IntakeConfig {
        swb_notification_bucket: NOTIFY.into(),
        swb_egress_store_bucket: STORE.into(),
        workflow: workflow_config(
            "dual",
            "InformationGovernance".into(),
            "ResearchIT".into(),
            86_400,
            "https://egress.example.org".into(),
        )
        .expect("a valid workflow configuration"),
    }
}

/// The SWB message inside the SNS fixture.
fn fixture_message() -> Value {
    let event = support::fixture("start-workflow/sns-egress-request.json");
    let text = event["Records"][0]["Sns"]["Message"]
        .as_str()
        .expect("the fixture's Message is a string");
    serde_json::from_str(text).expect("the fixture's Message is JSON")
}

fn timestamp() -> impl Strategy<Value = String> {
    (
        1970i32..2100,
        1u8..=12,
        1u8..=28,
        0u8..24,
        0u8..60,
        0u8..60,
        0u16..1000,
    )
        .prop_map(|(y, mo, d, h, mi, s, ms)| {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
        })
}

/// Free text as SWB may send it: printable, any script, not blank.
fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-zA-Z0-9 ._@()-]{1,40}", "\\PC{1,40}"]
        .prop_filter("not blank", |s| !s.trim().is_empty())
}

/// `Some(None)` is JSON null, `None` an absent member.
fn email() -> impl Strategy<Value = Option<Option<String>>> {
    prop_oneof![
        Just(None),
        Just(Some(None)),
        Just(Some(Some(String::new()))),
        "[a-z0-9._+-]{1,16}@[a-z0-9-]{1,16}\\.[a-z]{2,6}".prop_map(|e| Some(Some(e))),
    ]
}

/// A message as real SWB would send it, with every value drawn at random and the bindings
/// kept (store = workspace, prefix `<ws>/`, snapshot `<ws>/<name>-ver<ver>.json`).
fn valid_message() -> impl Strategy<Value = Value> {
    (
        "[a-zA-Z0-9_-]{1,80}",
        "[a-zA-Z0-9_-]{1,128}",
        (text(), text(), text(), text()),
        (timestamp(), timestamp()),
        (email(), email()),
        1u32..=u32::MAX,
        any::<bool>(),
    )
        .prop_map(
            |(
                id,
                ws,
                (name, project, created_by, updated_by),
                (c_at, u_at),
                (c_mail, u_mail),
                ver,
                slash,
            )| {
                let mut m = json!({
                    "id": id,
                    "egress_store_id": ws,
                    "egress_store_name": name,
                    "workspace_id": ws,
                    "project_id": project,
                    "s3_bucketname": STORE,
                    "s3_bucketpath": if slash { format!("{ws}/") } else { ws.clone() },
                    "egress_store_object_list_location":
                        format!("arn:aws:s3:::{NOTIFY}/{ws}/{name}-ver{ver}.json"),
                    "created_at": c_at,
                    "updated_at": u_at,
                    "created_by": created_by,
                    "updated_by": updated_by,
                    "status": "PENDING",
                    "ver": ver,
                });
                for (field, mail) in [("created_by_email", c_mail), ("updated_by_email", u_mail)] {
                    if let Some(mail) = mail {
                        m[field] = mail.map(Value::String).unwrap_or(Value::Null);
                    }
                }
                m
            },
        )
}

fn message_paths() -> Vec<Vec<Step>> {
    FIELDS.iter().map(|f| path(&[f])).collect()
}

/// A valid message (the fixture or a random one), 0-3 field mutations and, one case in
/// eight, damage to the text.
fn hostile_message() -> impl Strategy<Value = (Value, Vec<Mutation>, Option<TextDamage>)> {
    (
        prop_oneof![1 => Just(fixture_message()), 3 => valid_message()],
        proptest::collection::vec(mutation(message_paths()), 0..=3),
        prop_oneof![7 => Just(None), 1 => text_damage(FIELDS.to_vec()).prop_map(Some)],
    )
}

fn render(base: &Value, mutations: &[Mutation], damage: &Option<TextDamage>) -> String {
    let mut doc = base.clone();
    for m in mutations {
        m.apply(&mut doc);
    }
    let text = doc.to_string();
    match damage {
        Some(d) => d.apply(&text),
        None => text,
    }
}

/// The fields whose error may name another: the bindings of DESIGN.md §2.1.
fn related(field: &str) -> &'static [&'static str] {
    match field {
        "workspace_id" => &["workspace_id", "egress_store_id"],
        "egress_store_name" => &["egress_store_name", "egress_store_object_list_location"],
        "ver" => &["ver", "egress_store_object_list_location"],
        _ => &[],
    }
}

fn is_extra(m: &Mutation) -> bool {
    m.field().is_some_and(|f| f.starts_with("x_extra_"))
}

fn is_id(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// What every refusal must be: a `ValidationError` naming a field of the message (or saying
/// the message as a whole is not a JSON object); with one field changed, naming that field.
fn check_refusal(
    err: &shared::EgressError,
    mutations: &[Mutation],
    damage: &Option<TextDamage>,
) -> TestCaseResult {
    prop_assert_eq!(err.error_type(), "ValidationError", "{}", err);
    let msg = err.to_string();
    support::tally_refusal_size(&msg);
    let named = FIELDS.iter().any(|f| names_field(&msg, f));
    prop_assert!(
        named || msg.starts_with("SNS message is not"),
        "refusal names no field: {}",
        msg
    );
    // A value nested past serde_json's recursion limit makes the whole text unreadable.
    if damage.is_none() && mutations.len() == 1 && !msg.starts_with("SNS message is not") {
        if let Some(f) = mutations[0].field().filter(|f| FIELDS.contains(f)) {
            let mut expected = vec![f];
            expected.extend(related(f));
            prop_assert!(
                expected.iter().any(|e| names_field(&msg, e)),
                "one field changed ({}) but the refusal names another: {}",
                f,
                msg
            );
        }
    }
    Ok(())
}

/// What every accepted message must satisfy: the rules of intake and the bindings, a small
/// workflow input, and round trips of the input and of the parsed message.
fn check_accepted(raw: &str, input: &WorkflowInput) -> TestCaseResult {
    let r = &input.request;
    prop_assert!(is_id(&r.egress_request_id, 80), "{:?}", r.egress_request_id);
    prop_assert!(is_id(&r.workspace_id, 128), "{:?}", r.workspace_id);
    prop_assert_eq!(&r.swb_egress_store_id, &r.workspace_id);
    prop_assert_eq!(&r.s3_egress_store_bucket, STORE);
    prop_assert_eq!(
        &r.s3_egress_store_bucket_path,
        &format!("{}/", r.workspace_id)
    );
    prop_assert_eq!(
        &r.s3_egress_store_object_list_location,
        &format!(
            "arn:aws:s3:::{NOTIFY}/{}/{}-ver{}.json",
            r.workspace_id, r.egress_store_name, r.s3_swb_object_metadata_version
        )
    );
    prop_assert!(r.s3_swb_object_metadata_version >= 1);
    for (name, value) in [
        ("egress_store_name", &r.egress_store_name),
        ("project_id", &r.project_id),
        ("requested_by", &r.requested_by),
        ("requested_dt", &r.requested_dt),
        ("requested_by_email", &r.requested_by_email),
        ("store_owner_email", &r.store_owner_email),
    ] {
        prop_assert!(!value.chars().any(char::is_control), "{name} {value:?}");
        prop_assert!(value.chars().count() <= MAX_FIELD_CHARS, "{name} too long");
    }
    for mail in [&r.requested_by_email, &r.store_owner_email] {
        prop_assert!(
            mail.is_empty() || (mail.matches('@').count() == 1 && !mail.contains(' ')),
            "{mail:?}"
        );
    }
    prop_assert!(OffsetDateTime::parse(&r.requested_dt, &Rfc3339).is_ok());
    let encoded = serde_json::to_string(input).expect("a workflow input serialises");
    prop_assert!(
        encoded.len() <= 8 * 1024,
        "workflow input of {} bytes",
        encoded.len()
    );
    let decoded: WorkflowInput = serde_json::from_str(&encoded).expect("and parses back");
    prop_assert_eq!(&decoded, input);
    let msg = parse_message(raw).expect("an accepted message parses");
    let again = parse_message(&serde_json::to_string(&msg).expect("serialises"));
    prop_assert_eq!(again.as_ref(), Ok(&msg));
    Ok(())
}

#[test]
fn when_swb_messages_are_hostile_then_intake_refuses_by_field_or_accepts_only_valid_ones() {
    let cfg = config();
    support::run(
        "intake_swb_message",
        support::cases(support::DEFAULT_CASES, u32::MAX),
        hostile_message(),
        |(base, mutations, damage)| {
            let raw = render(&base, &mutations, &damage);
            match build_workflow_input(&raw, &cfg) {
                Err(err) => {
                    support::tally("refused");
                    let unreadable = err.to_string().starts_with("SNS message is not");
                    prop_assert!(
                        damage.is_some() || unreadable || !mutations.iter().all(is_extra),
                        "a valid message with only unknown members added was refused: {}",
                        err
                    );
                    check_refusal(&err, &mutations, &damage)
                }
                Ok(input) => {
                    support::tally("accepted");
                    check_accepted(&raw, &input)
                }
            }
        },
    );
}

fn envelope_paths() -> Vec<Vec<Step>> {
    let mut paths = vec![path(&["Records"]), path(&["Records", "0"])];
    for f in ["EventSource", "EventVersion", "EventSubscriptionArn", "Sns"] {
        paths.push(path(&["Records", "0", f]));
    }
    for f in [
        "Type",
        "MessageId",
        "TopicArn",
        "Subject",
        "Message",
        "Timestamp",
        "SignatureVersion",
        "Signature",
        "SigningCertUrl",
        "UnsubscribeUrl",
        "MessageAttributes",
    ] {
        paths.push(path(&["Records", "0", "Sns", f]));
    }
    paths
}

/// An SNS event of 0-5 records, each carrying a hostile or valid message (duplicates
/// included, as SNS delivers at least once), with 0-2 envelope mutations.
fn hostile_envelope() -> impl Strategy<Value = (Value, Vec<Mutation>)> {
    let record = support::fixture("start-workflow/sns-egress-request.json")["Records"][0].clone();
    let messages = proptest::collection::vec(
        prop_oneof![
            2 => hostile_message().prop_map(|(b, m, d)| render(&b, &m, &d)),
            1 => Just(fixture_message().to_string()),
            1 => hostile_string(),
        ],
        0..=5,
    );
    (
        messages,
        proptest::collection::vec(mutation(envelope_paths()), 0..=2),
    )
        .prop_map(move |(messages, mutations)| {
            let records = messages
                .into_iter()
                .map(|m| {
                    let mut r = record.clone();
                    r["Sns"]["Message"] = Value::String(m);
                    r
                })
                .collect();
            (json!({ "Records": Value::Array(records) }), mutations)
        })
}

#[test]
fn when_sns_envelopes_are_hostile_then_each_record_starts_once_or_is_refused_by_field() {
    let cfg = config();
    let rt = support::runtime();
    support::run(
        "intake_sns_envelope",
        support::cases(support::DEFAULT_CASES, u32::MAX),
        hostile_envelope(),
        |(mut doc, mutations)| {
            for m in &mutations {
                m.apply(&mut doc);
            }
            let raw = doc.to_string();
            // What lambda_runtime does before the handler runs. A failure here is the
            // runtime's own `DeserializeError` (it names the JSON path), not ours.
            let Ok(event) = serde_json::from_str::<SnsEvent>(&raw) else {
                support::tally("envelope_refused_by_runtime");
                return Ok(());
            };
            let intake = Intake {
                starter: FakeWorkflowStarter::default(),
                config: cfg.clone(),
            };
            let mut started = BTreeSet::new();
            for record in &event.records {
                match rt.block_on(intake.start(&record.sns.message)) {
                    Ok(s) => {
                        support::tally("record_started");
                        let first = started.insert(s.egress_request_id.clone());
                        match s.outcome {
                            StartOutcome::Started { .. } => prop_assert!(first, "started twice"),
                            StartOutcome::AlreadyExists => prop_assert!(!first, "not a duplicate"),
                        }
                    }
                    Err(err) => {
                        support::tally("record_refused");
                        check_refusal(&err, &[], &None)?
                    }
                }
            }
            let executions = intake.starter.executions();
            prop_assert_eq!(executions.len(), started.len());
            for (name, input) in executions {
                let input: WorkflowInput = serde_json::from_str(&input).expect("workflow input");
                prop_assert_eq!(&input.request.egress_request_id, &name);
            }
            Ok(())
        },
    );
}
