//! Intake: validating SWB's egress message and turning it into a workflow input.
//!
//! SWB's message is parsed field by field (rather than by a derive) so that every error names
//! the field that is wrong and why, which is what an admin reading the dead-letter queue
//! needs.
//!
//! A well-formed message is not enough: its data must belong to it. Whoever can publish to the
//! topic could otherwise send workspace A's request carrying workspace B's prefix and
//! snapshot, and reviewers would approve B's files as A's. So intake binds every location to
//! the request, as real SWB writes them (DESIGN.md §2.1): the store is the workspace's
//! (`egress_store_id` = `workspace_id`), its prefix is `<workspace_id>/` in the configured
//! store bucket, and the snapshot is `<egress_store_id>/<egress_store_name>-ver<ver>.json` in
//! the configured notification bucket. Staging then refuses any listed key outside that
//! prefix.

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::keys;
use crate::error::{EgressError, Result};
use crate::model::{
    ApprovalMode, SwbEgressMessage, WorkflowConfig, WorkflowInput, WorkflowRequest,
};

/// The longest value of a free-text field (names, ids, timestamps): a message is copied
/// into the workflow's state, which must stay small whatever SWB sends (DESIGN.md §8.6).
pub const MAX_FIELD_CHARS: usize = 256;

/// The longest snapshot location: an ARN prefix, a bucket name and a key built from
/// bounded fields.
const MAX_LOCATION_CHARS: usize = 1024;

/// The project configuration intake applies to every message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeConfig {
    /// The bucket SWB writes snapshot files to; a snapshot anywhere else is refused.
    pub swb_notification_bucket: String,
    /// SWB's egress store bucket; a message naming any other source bucket is refused.
    pub swb_egress_store_bucket: String,
    /// The workflow settings captured into each execution.
    pub workflow: WorkflowConfig,
}

/// Parses and validates one SNS `Message`.
pub fn parse_message(raw: &str) -> Result<SwbEgressMessage> {
    let value: Value = serde_json::from_str(raw)
        .map_err(|e| EgressError::validation(format!("SNS message is not valid JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(EgressError::validation("SNS message is not a JSON object"));
    };
    let msg = SwbEgressMessage {
        id: execution_safe_id(&obj, "id")?,
        egress_store_id: non_empty(&obj, "egress_store_id")?,
        egress_store_name: non_empty(&obj, "egress_store_name")?,
        workspace_id: path_safe_id(&obj, "workspace_id")?,
        project_id: non_empty(&obj, "project_id")?,
        s3_bucketname: bucket_name(&obj, "s3_bucketname")?,
        s3_bucketpath: store_prefix(&obj, "s3_bucketpath")?,
        egress_store_object_list_location: text(
            &obj,
            "egress_store_object_list_location",
            MAX_LOCATION_CHARS,
        )?,
        created_at: timestamp(&obj, "created_at")?,
        updated_at: timestamp(&obj, "updated_at")?,
        created_by: non_empty(&obj, "created_by")?,
        updated_by: non_empty(&obj, "updated_by")?,
        created_by_email: optional_email(&obj, "created_by_email")?,
        updated_by_email: optional_email(&obj, "updated_by_email")?,
        status: non_empty(&obj, "status")?,
        ver: version(&obj, "ver")?,
    };
    if msg.status != "PENDING" {
        return Err(EgressError::validation(format!(
            "field `status` must be \"PENDING\" for a new egress request, got {:?}",
            msg.status
        )));
    }
    Ok(msg)
}

/// Splits `arn:aws:s3:::bucket/key` into bucket and key.
pub fn parse_s3_arn(field: &str, arn: &str) -> Result<(String, String)> {
    let rest = arn.strip_prefix("arn:aws:s3:::").ok_or_else(|| {
        EgressError::validation(format!(
            "field `{field}` must be an S3 object ARN `arn:aws:s3:::<bucket>/<key>`, got {arn:?}"
        ))
    })?;
    match rest.split_once('/') {
        Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
            Ok((bucket.to_string(), key.to_string()))
        }
        _ => Err(EgressError::validation(format!(
            "field `{field}` must name a bucket and a key (`arn:aws:s3:::<bucket>/<key>`), got {arn:?}"
        ))),
    }
}

/// Checks that the message's store, prefix and snapshot are the request's own (see the
/// module documentation). Each refusal names the field and what was expected.
pub fn check_binding(msg: &SwbEgressMessage, config: &IntakeConfig) -> Result<()> {
    if msg.egress_store_id != msg.workspace_id {
        return Err(EgressError::validation(format!(
            "field `egress_store_id` must equal `workspace_id` {:?} (SWB keys each egress store \
             by its workspace), got {:?}",
            msg.workspace_id, msg.egress_store_id
        )));
    }
    if msg.s3_bucketname != config.swb_egress_store_bucket {
        return Err(EgressError::validation(format!(
            "field `s3_bucketname` must be the SWB egress store bucket {:?}, got {:?}",
            config.swb_egress_store_bucket, msg.s3_bucketname
        )));
    }
    let prefix = keys::swb_store_prefix(&msg.workspace_id)?;
    if msg.s3_bucketpath != prefix {
        return Err(EgressError::validation(format!(
            "field `s3_bucketpath` must be the workspace's egress store prefix {prefix:?}, got {:?}",
            msg.s3_bucketpath
        )));
    }
    let field = "egress_store_object_list_location";
    let (bucket, key) = parse_s3_arn(field, &msg.egress_store_object_list_location)?;
    if bucket != config.swb_notification_bucket {
        return Err(EgressError::validation(format!(
            "field `{field}` points at bucket {bucket:?}, but snapshots are only accepted from \
             the SWB notification bucket {:?}",
            config.swb_notification_bucket
        )));
    }
    let expected = keys::swb_snapshot_key(&msg.egress_store_id, &msg.egress_store_name, msg.ver);
    if key != expected {
        return Err(EgressError::validation(format!(
            "field `{field}` must name the snapshot SWB writes for version {} of egress store {:?}, \
             key {expected:?}, got key {key:?}",
            msg.ver, msg.egress_store_id
        )));
    }
    Ok(())
}

/// Validates `raw`, checks that its data belongs to it ([`check_binding`]) and builds the
/// workflow input for it.
pub fn build_workflow_input(raw: &str, config: &IntakeConfig) -> Result<WorkflowInput> {
    let msg = parse_message(raw)?;
    check_binding(&msg, config)?;
    let requested_by_email = msg
        .updated_by_email
        .clone()
        .or_else(|| msg.created_by_email.clone())
        .unwrap_or_default();
    Ok(WorkflowInput {
        request: WorkflowRequest {
            egress_request_id: msg.id,
            swb_egress_store_id: msg.egress_store_id,
            egress_store_name: msg.egress_store_name,
            workspace_id: msg.workspace_id,
            project_id: msg.project_id,
            requested_by: msg.updated_by,
            requested_by_email,
            store_owner_email: msg.created_by_email.unwrap_or_default(),
            requested_dt: msg.updated_at,
            s3_egress_store_bucket: msg.s3_bucketname,
            s3_egress_store_bucket_path: msg.s3_bucketpath,
            s3_egress_store_object_list_location: msg.egress_store_object_list_location,
            s3_swb_object_metadata_version: msg.ver,
        },
        config: config.workflow.clone(),
    })
}

/// Builds the intake configuration, normalising the approval mode once.
pub fn workflow_config(
    approval_mode: &str,
    ig_reviewer_group: String,
    rit_reviewer_group: String,
    review_timeout_seconds: u64,
    app_url: String,
) -> Result<WorkflowConfig> {
    let approval_mode: ApprovalMode = approval_mode.parse()?;
    if review_timeout_seconds == 0 {
        return Err(EgressError::validation(
            "review timeout must be at least one second",
        ));
    }
    Ok(WorkflowConfig {
        approval_mode,
        is_single_approval_enabled: approval_mode == ApprovalMode::Single,
        ig_reviewer_group,
        rit_reviewer_group,
        review_timeout_seconds,
        app_url,
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn string<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a str> {
    match obj.get(field) {
        None => Err(EgressError::validation(format!(
            "field `{field}` is missing"
        ))),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(EgressError::validation(format!(
            "field `{field}` must be a string, got {}",
            type_name(other)
        ))),
    }
}

fn non_empty(obj: &Map<String, Value>, field: &str) -> Result<String> {
    text(obj, field, MAX_FIELD_CHARS)
}

/// A non-empty string without control characters, at most `max_chars` long.
fn text(obj: &Map<String, Value>, field: &str, max_chars: usize) -> Result<String> {
    let s = string(obj, field)?;
    if s.chars().count() > max_chars {
        return Err(EgressError::validation(format!(
            "field `{field}` is longer than {max_chars} characters"
        )));
    }
    if s.trim().is_empty() {
        return Err(EgressError::validation(format!(
            "field `{field}` must not be empty"
        )));
    }
    if s.chars().any(char::is_control) {
        return Err(EgressError::validation(format!(
            "field `{field}` contains control characters"
        )));
    }
    Ok(s.to_string())
}

/// The request id becomes the Step Functions execution name (1-80 characters, no
/// whitespace or punctuation) and a path segment.
fn execution_safe_id(obj: &Map<String, Value>, field: &str) -> Result<String> {
    let s = non_empty(obj, field)?;
    if !keys::is_safe_id(&s, 80) {
        return Err(EgressError::validation(format!(
            "field `{field}` must be 1-80 letters, digits, `-` or `_`, got {s:?}"
        )));
    }
    Ok(s)
}

/// The workspace id becomes the first segment of staging and datalake keys.
fn path_safe_id(obj: &Map<String, Value>, field: &str) -> Result<String> {
    let s = non_empty(obj, field)?;
    keys::check_id(field, &s)?;
    Ok(s)
}

fn bucket_name(obj: &Map<String, Value>, field: &str) -> Result<String> {
    let s = non_empty(obj, field)?;
    let ok = (3..=63).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        return Err(EgressError::validation(format!(
            "field `{field}` is not a valid S3 bucket name: {s:?}"
        )));
    }
    Ok(s)
}

/// SWB writes `<workspace_id>/`; the trailing slash is added when missing so that
/// `a/` can never match keys of a sibling store `ab/` (the rule of [`keys::store_prefix`]).
fn store_prefix(obj: &Map<String, Value>, field: &str) -> Result<String> {
    let s = non_empty(obj, field)?;
    keys::store_prefix(&s).map_err(|_| {
        EgressError::validation(format!(
            "field `{field}` must be a relative S3 prefix without `..` or `\\`, got {s:?}"
        ))
    })
}

fn timestamp(obj: &Map<String, Value>, field: &str) -> Result<String> {
    let s = non_empty(obj, field)?;
    let at = OffsetDateTime::parse(&s, &Rfc3339).map_err(|_| {
        EgressError::validation(format!(
            "field `{field}` must be an ISO-8601 timestamp like 2024-01-31T09:30:00.000Z, got {s:?}"
        ))
    })?;
    // Stored and shown as every other date of the service: UTC, milliseconds, `Z` (real SWB
    // already sends that; an offset or another precision would sort and display apart).
    Ok(crate::ports::iso_millis(at))
}

fn optional_email(obj: &Map<String, Value>, field: &str) -> Result<Option<String>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim();
            let valid = s.len() <= 254
                && !s.chars().any(|c| c.is_whitespace() || c.is_control())
                && matches!(s.split_once('@'), Some((local, domain)) if !local.is_empty() && domain.contains('.') && !domain.contains('@'));
            if valid {
                Ok(Some(s.to_string()))
            } else {
                Err(EgressError::validation(format!(
                    "field `{field}` is not a valid e-mail address: {s:?}"
                )))
            }
        }
        Some(other) => Err(EgressError::validation(format!(
            "field `{field}` must be a string, got {}",
            type_name(other)
        ))),
    }
}

fn version(obj: &Map<String, Value>, field: &str) -> Result<u32> {
    match obj.get(field) {
        None => Err(EgressError::validation(format!(
            "field `{field}` is missing"
        ))),
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|v| *v >= 1)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| {
                EgressError::validation(format!(
                    "field `{field}` must be a positive integer, got {n}"
                ))
            }),
        Some(other) => Err(EgressError::validation(format!(
            "field `{field}` must be a positive integer, got {}",
            type_name(other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const WS_A: &str = "1637e3f6-5d2c-4d52-9a41-3f1b2c3d4e5f";
    const WS_B: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

    /// A message as real SWB sends it: the store id is the workspace id, the prefix is
    /// `<workspace_id>/`, the snapshot `<store id>/<store name>-ver<ver>.json`.
    fn message() -> Value {
        json!({
            "id": "8d3b9a57-4b8e-4a9e-9b7c-1f2d3e4a5b6c",
            "egress_store_id": WS_A,
            "egress_store_name": "covid-analysis-egress-store",
            "workspace_id": WS_A,
            "project_id": "project-alpha",
            "s3_bucketname": "swb-egress-store-123456789012",
            "s3_bucketpath": format!("{WS_A}/"),
            "egress_store_object_list_location": format!("arn:aws:s3:::swb-egress-notify-123456789012/{WS_A}/covid-analysis-egress-store-ver1.json"),
            "created_at": "2024-03-01T10:15:30.123Z",
            "updated_at": "2024-03-02T08:00:00.000Z",
            "created_by": "u-owner",
            "updated_by": "u-submitter",
            "created_by_email": "owner@example.org",
            "updated_by_email": "submitter@example.org",
            "status": "PENDING",
            "ver": 1
        })
    }

    fn config() -> IntakeConfig {
        IntakeConfig {
            swb_notification_bucket: "swb-egress-notify-123456789012".into(),
            swb_egress_store_bucket: "swb-egress-store-123456789012".into(),
            workflow: workflow_config(
                "Dual",
                "IGApprover".into(),
                "ResearchITAdmin".into(),
                1_209_600,
                "https://egress.example.org".into(),
            )
            .unwrap(),
        }
    }

    fn err_of(v: &Value) -> String {
        let err = build_workflow_input(&v.to_string(), &config()).unwrap_err();
        assert_eq!(err.error_type(), "ValidationError");
        err.to_string()
    }

    #[test]
    fn when_the_message_is_valid_then_the_input_carries_request_and_config() {
        let input = build_workflow_input(&message().to_string(), &config()).unwrap();
        assert_eq!(
            input.request.egress_request_id,
            "8d3b9a57-4b8e-4a9e-9b7c-1f2d3e4a5b6c"
        );
        assert_eq!(input.request.requested_by, "u-submitter");
        assert_eq!(input.request.requested_by_email, "submitter@example.org");
        assert_eq!(input.request.store_owner_email, "owner@example.org");
        assert_eq!(input.request.requested_dt, "2024-03-02T08:00:00.000Z");
        assert_eq!(input.request.s3_swb_object_metadata_version, 1);
        assert_eq!(input.config.approval_mode, ApprovalMode::Dual);
        assert!(!input.config.is_single_approval_enabled);
    }

    #[test]
    fn when_each_required_field_is_missing_then_the_error_names_it() {
        let required = [
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
            "status",
            "ver",
        ];
        for field in required {
            let mut m = message();
            m.as_object_mut().unwrap().remove(field);
            let text = err_of(&m);
            assert!(
                text.contains(&format!("`{field}` is missing")),
                "{field}: {text}"
            );
        }
    }

    #[test]
    fn when_a_field_has_the_wrong_type_then_the_error_names_field_and_type() {
        for (field, value, expect) in [
            ("id", json!(42), "must be a string, got a number"),
            ("workspace_id", json!(null), "must be a string, got null"),
            (
                "ver",
                json!("1"),
                "must be a positive integer, got a string",
            ),
            ("ver", json!(0), "must be a positive integer, got 0"),
            ("ver", json!(1.5), "must be a positive integer"),
            (
                "updated_by_email",
                json!(7),
                "must be a string, got a number",
            ),
            (
                "s3_bucketpath",
                json!(["a"]),
                "must be a string, got an array",
            ),
        ] {
            let mut m = message();
            m[field] = value;
            let text = err_of(&m);
            assert!(
                text.contains(field) && text.contains(expect),
                "{field}: {text}"
            );
        }
    }

    #[test]
    fn when_values_are_malformed_then_they_are_refused_by_name() {
        for (field, value) in [
            ("id", "has space"),
            ("id", "a/b"),
            ("workspace_id", "../etc"),
            ("workspace_id", ".hidden"),
            ("s3_bucketname", "Not_A_Bucket"),
            ("s3_bucketpath", "/abs/"),
            ("s3_bucketpath", "a/../b/"),
            ("created_at", "yesterday"),
            ("updated_by_email", "not-an-email"),
            ("egress_store_name", "  "),
            ("project_id", "p\u{0007}"),
        ] {
            let mut m = message();
            m[field] = json!(value);
            let text = err_of(&m);
            assert!(text.contains(field), "{field}={value:?}: {text}");
        }
    }

    #[test]
    fn when_the_status_is_not_pending_then_the_message_is_refused() {
        let mut m = message();
        m["status"] = json!("PROCESSED");
        assert!(err_of(&m).contains("status"));
    }

    #[test]
    fn when_the_snapshot_is_not_an_s3_arn_in_the_notification_bucket_then_it_is_refused() {
        for (value, expect) in [
            ("s3://bucket/key", "must be an S3 object ARN"),
            ("arn:aws:s3:::bucket-only", "must name a bucket and a key"),
            (
                "arn:aws:s3:::other-bucket/key.json",
                "only accepted from the SWB notification bucket",
            ),
        ] {
            let mut m = message();
            m["egress_store_object_list_location"] = json!(value);
            let text = err_of(&m);
            assert!(text.contains(expect), "{value}: {text}");
        }
    }

    #[test]
    fn when_the_message_is_not_a_json_object_then_it_is_refused() {
        assert!(parse_message("not json")
            .unwrap_err()
            .to_string()
            .contains("not valid JSON"));
        assert!(parse_message("[1]")
            .unwrap_err()
            .to_string()
            .contains("not a JSON object"));
    }

    #[test]
    fn when_older_swb_sends_no_emails_then_the_request_has_no_requester_email() {
        let mut m = message();
        m.as_object_mut().unwrap().remove("created_by_email");
        m.as_object_mut().unwrap().remove("updated_by_email");
        let input = build_workflow_input(&m.to_string(), &config()).unwrap();
        assert_eq!(input.request.requested_by_email, "");
    }

    #[test]
    fn when_only_the_owner_email_is_present_then_it_is_the_requester_email() {
        let mut m = message();
        m.as_object_mut().unwrap().remove("updated_by_email");
        let input = build_workflow_input(&m.to_string(), &config()).unwrap();
        assert_eq!(input.request.requested_by_email, "owner@example.org");
    }

    #[test]
    fn when_the_store_prefix_lacks_a_slash_then_one_is_added() {
        let mut m = message();
        m["s3_bucketpath"] = json!(WS_A);
        let input = build_workflow_input(&m.to_string(), &config()).unwrap();
        assert_eq!(
            input.request.s3_egress_store_bucket_path,
            format!("{WS_A}/")
        );
    }

    /// Workspace A's message carrying workspace B's prefix and snapshot: accepted before,
    /// A's archive then held B's files.
    #[test]
    fn when_a_message_carries_another_workspaces_prefix_and_snapshot_then_it_is_refused() {
        let mut m = message();
        m["s3_bucketpath"] = json!(format!("{WS_B}/"));
        m["egress_store_object_list_location"] = json!(format!(
            "arn:aws:s3:::swb-egress-notify-123456789012/{WS_B}/b-egress-store-ver3.json"
        ));
        let text = err_of(&m);
        assert!(
            text.contains("`s3_bucketpath`") && text.contains(&format!("\"{WS_A}/\"")),
            "{text}"
        );
    }

    #[test]
    fn when_the_prefix_is_not_the_workspaces_then_the_error_names_the_expected_prefix() {
        for prefix in [
            format!("{WS_B}/"),
            format!("{WS_A}/sub/"),
            "shared/".to_string(),
            format!("x{WS_A}/"),
        ] {
            let mut m = message();
            m["s3_bucketpath"] = json!(prefix);
            let text = err_of(&m);
            assert!(
                text.contains("field `s3_bucketpath` must be the workspace's egress store prefix")
                    && text.contains(&format!("{WS_A}/")),
                "{prefix}: {text}"
            );
        }
    }

    #[test]
    fn when_the_store_is_not_the_workspaces_then_it_is_refused() {
        let mut m = message();
        m["egress_store_id"] = json!(WS_B);
        let text = err_of(&m);
        assert!(
            text.contains("field `egress_store_id` must equal `workspace_id`")
                && text.contains(WS_A)
                && text.contains(WS_B),
            "{text}"
        );
    }

    #[test]
    fn when_the_source_bucket_is_not_the_configured_store_bucket_then_it_is_refused() {
        let mut m = message();
        m["s3_bucketname"] = json!("someone-elses-bucket");
        let text = err_of(&m);
        assert!(
            text.contains("field `s3_bucketname` must be the SWB egress store bucket")
                && text.contains("swb-egress-store-123456789012")
                && text.contains("someone-elses-bucket"),
            "{text}"
        );
    }

    #[test]
    fn when_the_snapshot_key_is_not_the_stores_snapshot_of_this_version_then_it_is_refused() {
        let bucket = "arn:aws:s3:::swb-egress-notify-123456789012";
        for key in [
            format!("{WS_B}/covid-analysis-egress-store-ver1.json"),
            format!("{WS_A}/covid-analysis-egress-store-ver2.json"),
            format!("{WS_A}/other-egress-store-ver1.json"),
            format!("{WS_A}/x/../covid-analysis-egress-store-ver1.json"),
            "covid-analysis-egress-store-ver1.json".to_string(),
            format!("{WS_A}/ver1.json"),
        ] {
            let mut m = message();
            m["egress_store_object_list_location"] = json!(format!("{bucket}/{key}"));
            let text = err_of(&m);
            assert!(
                text.contains("field `egress_store_object_list_location` must name the snapshot")
                    && text.contains(&format!("{WS_A}/covid-analysis-egress-store-ver1.json")),
                "{key}: {text}"
            );
        }
    }

    #[test]
    fn when_a_later_version_is_submitted_then_its_own_snapshot_is_accepted() {
        let mut m = message();
        m["ver"] = json!(7);
        m["egress_store_object_list_location"] = json!(format!(
            "arn:aws:s3:::swb-egress-notify-123456789012/{WS_A}/covid-analysis-egress-store-ver7.json"
        ));
        let input = build_workflow_input(&m.to_string(), &config()).unwrap();
        assert_eq!(input.request.s3_swb_object_metadata_version, 7);
    }

    #[test]
    fn when_a_field_is_implausibly_long_then_it_is_refused_by_name() {
        for field in ["project_id", "egress_store_name", "created_by"] {
            let mut m = message();
            m[field] = json!("x".repeat(MAX_FIELD_CHARS + 1));
            let text = err_of(&m);
            assert!(
                text.contains(&format!("field `{field}` is longer than")),
                "{field}: {text}"
            );
        }
    }

    #[test]
    fn when_every_field_is_as_long_as_allowed_then_the_workflow_input_stays_small() {
        let long = "x".repeat(MAX_FIELD_CHARS);
        let mut m = message();
        for field in [
            "project_id",
            "created_by",
            "updated_by",
            "egress_store_name",
        ] {
            m[field] = json!(long);
        }
        m["egress_store_object_list_location"] = json!(format!(
            "arn:aws:s3:::swb-egress-notify-123456789012/{WS_A}/{long}-ver1.json"
        ));
        let input = build_workflow_input(&m.to_string(), &config()).unwrap();
        let size = serde_json::to_vec(&input).unwrap().len();
        assert!(size <= 8 * 1024, "workflow input of {size} bytes");
    }

    #[test]
    fn when_parsing_the_approval_mode_then_case_and_blanks_are_ignored() {
        for (raw, mode) in [
            ("single", ApprovalMode::Single),
            ("SINGLE", ApprovalMode::Single),
            (" Dual ", ApprovalMode::Dual),
            ("dual", ApprovalMode::Dual),
        ] {
            assert_eq!(raw.parse::<ApprovalMode>().unwrap(), mode);
        }
    }

    #[test]
    fn when_the_approval_mode_is_invalid_then_the_error_says_what_is_allowed() {
        for raw in ["", "double", "singles", "2"] {
            let err = raw.parse::<ApprovalMode>().unwrap_err();
            assert_eq!(err.error_type(), "ValidationError");
            assert!(err.to_string().contains("\"single\" or \"dual\""), "{err}");
        }
        assert!(workflow_config("both", "a".into(), "b".into(), 1, "u".into()).is_err());
    }

    #[test]
    fn when_a_timestamp_has_an_offset_or_another_precision_then_it_is_stored_in_utc_millis() {
        let mut obj = Map::new();
        obj.insert(
            "t".into(),
            Value::String("2024-01-31T10:30:00+01:00".into()),
        );
        assert_eq!(timestamp(&obj, "t").unwrap(), "2024-01-31T09:30:00.000Z");
        obj.insert(
            "t".into(),
            Value::String("2024-01-31T09:30:00.123456Z".into()),
        );
        assert_eq!(timestamp(&obj, "t").unwrap(), "2024-01-31T09:30:00.123Z");
    }
}
