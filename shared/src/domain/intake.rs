//! Intake: validating SWB's egress message and turning it into a workflow input.
//!
//! SWB's message is parsed field by field (rather than by a derive) so that every error names
//! the field that is wrong and why, which is what an admin reading the dead-letter queue
//! needs.

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::{EgressError, Result};
use crate::model::{
    ApprovalMode, SwbEgressMessage, WorkflowConfig, WorkflowInput, WorkflowRequest,
};

/// The project configuration intake applies to every message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeConfig {
    /// The bucket SWB writes snapshot files to; a snapshot anywhere else is refused.
    pub swb_notification_bucket: String,
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
        egress_store_object_list_location: non_empty(&obj, "egress_store_object_list_location")?,
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

/// Validates `raw` and builds the workflow input for it.
pub fn build_workflow_input(raw: &str, config: &IntakeConfig) -> Result<WorkflowInput> {
    let msg = parse_message(raw)?;
    let (bucket, _key) = parse_s3_arn(
        "egress_store_object_list_location",
        &msg.egress_store_object_list_location,
    )?;
    if bucket != config.swb_notification_bucket {
        return Err(EgressError::validation(format!(
            "field `egress_store_object_list_location` points at bucket {bucket:?}, but snapshots \
             are only accepted from the SWB notification bucket {:?}",
            config.swb_notification_bucket
        )));
    }
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
    admin_email: String,
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
        admin_email,
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
    let s = string(obj, field)?;
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

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// The request id becomes the Step Functions execution name (1-80 characters, no
/// whitespace or punctuation) and a path segment.
fn execution_safe_id(obj: &Map<String, Value>, field: &str) -> Result<String> {
    let s = non_empty(obj, field)?;
    if s.len() > 80 || !s.chars().all(is_id_char) {
        return Err(EgressError::validation(format!(
            "field `{field}` must be 1-80 letters, digits, `-` or `_`, got {s:?}"
        )));
    }
    Ok(s)
}

/// The workspace id becomes the first segment of staging and datalake keys.
fn path_safe_id(obj: &Map<String, Value>, field: &str) -> Result<String> {
    let s = non_empty(obj, field)?;
    if s.len() > 128 || !s.chars().all(is_id_char) {
        return Err(EgressError::validation(format!(
            "field `{field}` must be 1-128 letters, digits, `-` or `_`, got {s:?}"
        )));
    }
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
/// `a/` can never match keys of a sibling store `ab/`.
fn store_prefix(obj: &Map<String, Value>, field: &str) -> Result<String> {
    let s = non_empty(obj, field)?;
    if s.starts_with('/') || s.contains('\\') || s.split('/').any(|seg| seg == "..") {
        return Err(EgressError::validation(format!(
            "field `{field}` must be a relative S3 prefix without `..` or `\\`, got {s:?}"
        )));
    }
    Ok(if s.ends_with('/') { s } else { format!("{s}/") })
}

fn timestamp(obj: &Map<String, Value>, field: &str) -> Result<String> {
    let s = non_empty(obj, field)?;
    OffsetDateTime::parse(&s, &Rfc3339).map_err(|_| {
        EgressError::validation(format!(
            "field `{field}` must be an ISO-8601 timestamp like 2024-01-31T09:30:00.000Z, got {s:?}"
        ))
    })?;
    Ok(s)
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

    fn message() -> Value {
        json!({
            "id": "8d3b9a57-4b8e-4a9e-9b7c-1f2d3e4a5b6c",
            "egress_store_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
            "egress_store_name": "covid-analysis-egress",
            "workspace_id": "1637e3f6-5d2c-4d52-9a41-3f1b2c3d4e5f",
            "project_id": "project-alpha",
            "s3_bucketname": "swb-egress-store-123456789012",
            "s3_bucketpath": "1637e3f6-5d2c-4d52-9a41-3f1b2c3d4e5f/",
            "egress_store_object_list_location": "arn:aws:s3:::swb-egress-notify-123456789012/0f8fad5b-d9cb-469f-a165-70867728950e/ver1.json",
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
            workflow: workflow_config(
                "Dual",
                "IGApprover".into(),
                "ResearchITAdmin".into(),
                1_209_600,
                "https://egress.example.org".into(),
                "tre-admin@example.org".into(),
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
        m["s3_bucketpath"] = json!("ws-1");
        let input = build_workflow_input(&m.to_string(), &config()).unwrap();
        assert_eq!(input.request.s3_egress_store_bucket_path, "ws-1/");
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
        assert!(
            workflow_config("both", "a".into(), "b".into(), 1, "u".into(), "e".into()).is_err()
        );
    }
}
