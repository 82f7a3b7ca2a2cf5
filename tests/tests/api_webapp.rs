//! What the TREEHOOSE web app shows, end to end over GraphQL (feature `e2e-api`).
//!
//! The app (src/components/egress/EgressRequestList.js and columnHeaders.js of
//! HicResearch/treehoose-egress-app-frontend) shows these `listRequests` fields as people:
//! `requested_by` ("Researcher", "Requested By"), `updated_by` ("Updated By"),
//! `ig_reviewer_1_email` and `rit_reviewer_2_email` ("Reviewed by"); and these as dates:
//! `requested_dt` ("Date Requested"), `updated_dt` ("Date", "Date Updated"),
//! `ig_reviewer_1_dt` and `rit_reviewer_2_dt` ("Date Reviewed"). The Research IT section
//! appears only in dual mode. Every person field must be an e-mail, never a SWB user id or a
//! Cognito uuid (those stay in the store and the audit trail), and every date ISO-8601 in
//! UTC with milliseconds and `Z`, as AWS writes them, including those the state machine
//! writes from `$$.State.EnteredTime` (moto runs through `egress_local.moto_launcher`).
#![cfg(all(feature = "e2e", feature = "e2e-api"))]

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sfn::types::ExecutionStatus;
use e2e_tests::fixture::{submit, TIMEOUT};
use e2e_tests::graphql::{web_app_decision, Api, ApiUser};
use e2e_tests::inspect;
use e2e_tests::stack::Stack;
use e2e_tests::swb::Mode;
use serde_json::Value;
use shared::model::{Decision, EgressRequest, ReviewStage};

const REASON: &str = "Aggregate tables only; nothing identifying.";

/// The fields the app shows as a person, in single mode and additionally in dual mode.
const PERSON_FIELDS: [&str; 3] = ["requested_by", "updated_by", "ig_reviewer_1_email"];
const PERSON_FIELDS_DUAL: [&str; 1] = ["rit_reviewer_2_email"];
/// The fields the app shows as a date, in single mode and additionally in dual mode.
const DATE_FIELDS: [&str; 3] = ["requested_dt", "updated_dt", "ig_reviewer_1_dt"];
const DATE_FIELDS_DUAL: [&str; 1] = ["rit_reviewer_2_dt"];

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn is_aws_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (hex), anywhere in `s`.
fn holds_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 36 {
        return false;
    }
    (0..=b.len() - 36).any(|start| {
        b[start..start + 36]
            .iter()
            .enumerate()
            .all(|(i, c)| match i {
                8 | 13 | 18 | 23 => *c == b'-',
                _ => c.is_ascii_hexdigit(),
            })
    })
}

fn is_email(s: &str) -> bool {
    matches!(s.split_once('@'), Some((local, domain)) if !local.is_empty() && domain.contains('.'))
}

#[test]
fn when_the_checks_see_examples_then_they_tell_dates_uuids_and_emails_apart() {
    assert!(is_aws_timestamp("2026-12-01T20:07:43.123Z"));
    assert!(!is_aws_timestamp("2026-12-01T20:07:43.123456+00:00"));
    assert!(!is_aws_timestamp("2026-12-01T20:07:43Z"));
    assert!(!is_aws_timestamp("Tue, 01 Dec 2026 20:07:43 GMT"));
    assert!(holds_uuid("0c6e1f4a-9a52-4c1e-bb0e-0d9a1f3c2b7e"));
    assert!(!holds_uuid("ivy@tre.example.org"));
    assert!(is_email("ivy@tre.example.org"));
    assert!(!is_email("u-researcher-7f3a"));
}

struct Seen {
    stack: Stack,
    api: Api,
}

impl Seen {
    async fn new() -> Self {
        let stack = Stack::connect()
            .await
            .expect("the local stack is up (make test-e2e-api starts it)");
        let api = Api::load().expect("the reviewer API is up (make test-e2e-api starts it)");
        assert_eq!(
            api.stack_id, stack.outputs.stack_id,
            "the API runs on this stack"
        );
        Self { stack, api }
    }

    fn user(&self, role: &str) -> ApiUser {
        self.api.user(role).expect("seeded").clone()
    }

    /// The row the app lists for `id`, signed in as `user` (SRP, as the app does).
    fn row(&self, user: &ApiUser, id: &str) -> Value {
        let tokens = self.api.sign_in(user).expect("signs in with SRP");
        self.api.row(&tokens.access, id).expect("listed")
    }

    async fn decide(&self, user: &ApiUser, id: &str, stage: ReviewStage) {
        let tokens = self.api.sign_in(user).expect("signs in with SRP");
        let row = self.api.row(&tokens.access, id).expect("listed");
        let answer = self
            .api
            .call(
                Some(&tokens.access),
                e2e_tests::graphql::UPDATE_REQUEST,
                serde_json::json!({
                    "request": web_app_decision(&row, stage, user, Decision::Approved, REASON)
                }),
            )
            .expect("the API answers");
        assert_eq!(answer.error(), None, "{:?}", answer.body);
    }

    async fn stored(&self, id: &str) -> EgressRequest {
        inspect::request(&self.stack, id)
            .await
            .expect("readable")
            .expect("stored")
    }

    async fn ends_succeeded(&self, id: &str) {
        let end =
            inspect::execution_end(&self.stack, &self.stack.outputs.execution_arn(id), TIMEOUT)
                .await
                .expect("the workflow ends");
        assert_eq!(end.status, ExecutionStatus::Succeeded, "{end:?}");
    }

    /// The `at` and `event_key` times of the audit events the state machine wrote.
    async fn audit_times(&self, id: &str) -> Vec<String> {
        let table = self.stack.outputs.table("AuditTable").expect("audit table");
        let out = self
            .stack
            .dynamodb
            .query()
            .table_name(table)
            .key_condition_expression("egress_request_id = :id")
            .expression_attribute_values(":id", AttributeValue::S(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .expect("audit readable");
        out.items()
            .iter()
            .flat_map(|item| {
                let at = item.get("at").and_then(|v| v.as_s().ok()).cloned();
                let key = item
                    .get("event_key")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|k| k.split('#').next().map(str::to_string));
                [at, key].into_iter().flatten()
            })
            .collect()
    }
}

/// Asserts what the app shows of `row`: people as e-mails (never an id), dates as AWS writes
/// them. `ids` are the SWB and Cognito ids that must not show.
fn assert_shown(row: &Value, dual: bool, ids: &[&str]) {
    let people = PERSON_FIELDS
        .iter()
        .chain(if dual { &PERSON_FIELDS_DUAL[..] } else { &[] });
    for field in people {
        let value = row[*field].as_str().unwrap_or_default();
        assert!(
            is_email(value),
            "{field} shows {value:?}, not an e-mail: {row}"
        );
        assert!(!holds_uuid(value), "{field} shows a uuid {value:?}");
        assert!(!ids.contains(&value), "{field} shows the id {value:?}");
    }
    let dates = DATE_FIELDS
        .iter()
        .chain(if dual { &DATE_FIELDS_DUAL[..] } else { &[] });
    for field in dates {
        let value = row[*field].as_str().unwrap_or_default();
        assert!(
            is_aws_timestamp(value),
            "{field} shows {value:?}, not YYYY-MM-DDTHH:MM:SS.mmmZ: {row}"
        );
    }
}

#[tokio::test]
async fn when_a_single_approval_completes_then_the_app_shows_emails_and_aws_dates_and_the_ids_stay_stored(
) {
    let seen = Seen::new().await;
    let s = submit(&seen.stack, Mode::Single);
    let id = s.egress_request_id.as_str();
    let ig = seen.user("ig");
    let ids = [
        s.submitter.id.as_str(),
        s.owner.id.as_str(),
        ig.sub.as_str(),
        ig.username.as_str(),
    ];
    inspect::awaiting_review(&seen.stack, id, ReviewStage::Ig, TIMEOUT)
        .await
        .expect("waits for IG");
    let waiting = seen.row(&ig, id);
    assert_eq!(waiting["requested_by"], s.submitter.email.as_str());
    assert_eq!(waiting["updated_by"], s.submitter.email.as_str());
    for field in ["requested_dt", "updated_dt"] {
        let value = waiting[field].as_str().unwrap_or_default();
        assert!(is_aws_timestamp(value), "{field} while waiting: {value:?}");
    }

    seen.decide(&ig, id, ReviewStage::Ig).await;
    seen.ends_succeeded(id).await;
    let row = seen.row(&ig, id);
    assert_shown(&row, false, &ids);
    assert_eq!(row["requested_by"], s.submitter.email.as_str());
    assert_eq!(row["updated_by"], ig.email.as_str());
    assert_eq!(row["ig_reviewer_1_email"], ig.email.as_str());

    let stored = seen.stored(id).await;
    assert_eq!(
        stored.requested_by, s.submitter.id,
        "the store keeps the SWB id"
    );
    assert_eq!(stored.ig_reviewer_1_sub.as_deref(), Some(ig.sub.as_str()));
    assert!(
        is_aws_timestamp(&stored.updated_dt),
        "{:?}",
        stored.updated_dt
    );
    for at in seen.audit_times(id).await {
        assert!(is_aws_timestamp(&at), "audit time {at:?}");
    }
    let trail = inspect::audit_lines(&seen.stack, id).await.expect("audit");
    assert!(trail
        .iter()
        .any(|l| l.action == "submitted" && l.actor == s.submitter.id));
    assert!(trail
        .iter()
        .any(|l| l.action == "decision" && (l.actor == ig.sub || l.actor == ig.username)));
}

#[tokio::test]
async fn when_a_dual_approval_completes_then_both_reviewers_show_as_emails_with_aws_dates() {
    let seen = Seen::new().await;
    let s = submit(&seen.stack, Mode::Dual);
    let id = s.egress_request_id.as_str();
    let (ig, rit) = (seen.user("ig"), seen.user("rit"));
    let ids = [
        s.submitter.id.as_str(),
        s.owner.id.as_str(),
        ig.sub.as_str(),
        ig.username.as_str(),
        rit.sub.as_str(),
        rit.username.as_str(),
    ];
    inspect::awaiting_review(&seen.stack, id, ReviewStage::Ig, TIMEOUT)
        .await
        .expect("waits for IG");
    seen.decide(&ig, id, ReviewStage::Ig).await;
    inspect::awaiting_review(&seen.stack, id, ReviewStage::Rit, TIMEOUT)
        .await
        .expect("waits for Research IT");
    let between = seen.row(&rit, id);
    assert_shown(&between, false, &ids);
    assert_eq!(between["updated_by"], ig.email.as_str());

    seen.decide(&rit, id, ReviewStage::Rit).await;
    seen.ends_succeeded(id).await;
    let row = seen.row(&ig, id);
    assert_shown(&row, true, &ids);
    assert_eq!(row["requested_by"], s.submitter.email.as_str());
    assert_eq!(row["updated_by"], rit.email.as_str());
    assert_eq!(row["ig_reviewer_1_email"], ig.email.as_str());
    assert_eq!(row["rit_reviewer_2_email"], rit.email.as_str());

    let stored = seen.stored(id).await;
    assert_eq!(stored.requested_by, s.submitter.id);
    assert_eq!(stored.ig_reviewer_1_sub.as_deref(), Some(ig.sub.as_str()));
    assert_eq!(stored.rit_reviewer_2_sub.as_deref(), Some(rit.sub.as_str()));
    for at in seen.audit_times(id).await {
        assert!(is_aws_timestamp(&at), "audit time {at:?}");
    }
}

#[tokio::test]
async fn when_someone_signs_in_with_a_password_flow_or_signs_up_then_cognito_refuses_as_deployed() {
    let seen = Seen::new().await;
    let ig = seen.user("ig");
    let refused = seen
        .api
        .cognito(
            "InitiateAuth",
            serde_json::json!({
                "AuthFlow": "USER_PASSWORD_AUTH",
                "ClientId": seen.api.client_id,
                "AuthParameters": {"USERNAME": ig.email, "PASSWORD": ig.password},
            }),
        )
        .expect_err("the template's client allows SRP and refresh only");
    let text = refused.to_string();
    assert!(text.contains("InvalidParameterException"), "{text}");
    assert!(
        text.contains("USER_PASSWORD_AUTH flow not enabled for this client"),
        "{text}"
    );
    let sign_up = seen
        .api
        .cognito(
            "SignUp",
            serde_json::json!({
                "ClientId": seen.api.client_id,
                "Username": "mallory@evil.example",
                "Password": "Lc-Mallory-Secret-9aZ!",
                "UserAttributes": [{"Name": "email", "Value": "mallory@evil.example"}],
            }),
        )
        .expect_err("the pool lets administrators alone create users");
    assert!(
        sign_up.to_string().contains("NotAuthorizedException"),
        "{sign_up}"
    );
    // SRP (what the app uses) signs in.
    seen.api.sign_in(&ig).expect("SRP signs in");
}
