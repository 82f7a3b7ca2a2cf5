//! The reviewer API's wire types: what the AppSync resolver sends (the verified caller, the
//! field and its arguments) and what the TREEHOOSE web app reads back.

use serde::{Deserialize, Deserializer, Serialize};

/// The verified caller, as the resolver template copies it from the token claims.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CallerIdentity {
    /// Cognito `sub`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub sub: String,
    /// Cognito username (`cognito:username` in ID tokens, `username` in access tokens).
    #[serde(default, deserialize_with = "null_as_default")]
    pub username: String,
    /// `email` claim: present in ID tokens only.
    #[serde(default)]
    pub email: Option<String>,
    /// `name` claim: present in ID tokens only, when the pool has the attribute.
    #[serde(default)]
    pub name: Option<String>,
    /// `cognito:groups`; absent (null) when the user is in no group.
    #[serde(default, deserialize_with = "null_as_default")]
    pub groups: Vec<String>,
    /// `iss`: the user pool that issued the (verified) token.
    #[serde(default)]
    pub issuer: Option<String>,
}

fn null_as_default<'de, D, T>(deserializer: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// The payload the resolver templates (`infra/resolvers/`) send to the `api-handler`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiEvent {
    /// The GraphQL field: `listRequests`, `updateRequest` or `downloadData`.
    pub field: String,
    /// The verified caller.
    pub identity: CallerIdentity,
    /// The field's arguments as the client sent them (`{"request": {...}}`).
    #[serde(default)]
    pub arguments: serde_json::Value,
    /// The fields the query selected (AppSync's `$ctx.info.selectionSetList`); absent from
    /// an older resolver, which then gets every field.
    #[serde(default)]
    pub selection: Option<Vec<String>>,
}

/// `updateRequest(request:)`: the web app's `UpdateRequestInput`. Only the decision and the
/// reason of the stored stage are used; names, e-mails, dates and the first-stage decision
/// are accepted for compatibility and ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct UpdateRequestInput {
    pub egress_request_id: String,
    /// The handle `listRequests` returned as `task_token`.
    pub task_token: String,
    #[serde(default)]
    pub ig_reviewer_1_name: Option<String>,
    #[serde(default)]
    pub ig_reviewer_1_email: Option<String>,
    #[serde(default)]
    pub ig_reviewer_1_dt: Option<String>,
    #[serde(default)]
    pub ig_reviewer_1_reason: Option<String>,
    #[serde(default)]
    pub ig_reviewer_1_decision: Option<String>,
    #[serde(default)]
    pub rit_reviewer_2_name: Option<String>,
    #[serde(default)]
    pub rit_reviewer_2_email: Option<String>,
    #[serde(default)]
    pub rit_reviewer_2_dt: Option<String>,
    #[serde(default)]
    pub rit_reviewer_2_reason: Option<String>,
    #[serde(default)]
    pub rit_reviewer_2_decision: Option<String>,
}

/// `downloadData(request:)`: the web app's `DownloadDataInput`. Only the id is used: the
/// workspace and the count are read from the store.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DownloadDataInput {
    /// The request.
    pub egress_request_id: String,
    /// Ignored (the stored workspace is used).
    #[serde(default)]
    pub workspace_id: Option<String>,
    /// Ignored (counted server-side).
    #[serde(default)]
    pub download_count: Option<serde_json::Value>,
}

/// The `request` argument wrapper of both mutations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestArgument<T> {
    /// The input object.
    pub request: T,
}

/// `downloadData`'s result type (`presign_payload`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresignPayload {
    /// The short-lived presigned URL. Never logged.
    pub presign_url: String,
}

impl std::fmt::Debug for PresignPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PresignPayload { presign_url: <redacted> }")
    }
}

/// The GraphQL `Request` type: every field a string, as the web app reads them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct RequestView {
    pub egress_request_id: String,
    pub egress_store_name: String,
    pub swb_egress_store_id: String,
    pub project_id: String,
    pub workspace_id: String,
    pub requested_by: String,
    pub requested_dt: String,
    pub updated_by: String,
    pub updated_dt: String,
    pub egress_status: String,
    pub s3_egress_store_bucket: String,
    pub s3_egress_store_bucket_path: String,
    pub s3_egress_store_object_list_location: String,
    pub s3_swb_object_metadata_version: String,
    /// The opaque review handle (never the Step Functions token); `""` when no stage waits,
    /// because the web app sends it back as a non-null `String!`.
    pub task_token: String,
    pub ig_reviewer_1_name: Option<String>,
    pub ig_reviewer_1_email: Option<String>,
    pub ig_reviewer_1_dt: Option<String>,
    pub ig_reviewer_1_reason: Option<String>,
    pub ig_reviewer_1_decision: Option<String>,
    pub rit_reviewer_2_name: Option<String>,
    pub rit_reviewer_2_email: Option<String>,
    pub rit_reviewer_2_dt: Option<String>,
    pub rit_reviewer_2_reason: Option<String>,
    pub rit_reviewer_2_decision: Option<String>,
    pub current_reviewer_group: Option<String>,
    pub s3_staging_object_metadata_version: Option<String>,
    /// Downloads so far, `"0"` before the first: the web app echoes it back as `String!`.
    pub download_count: String,
    /// `"true"` / `"false"`: the web app calls `toLowerCase()` on it.
    pub is_single_approval_enabled: String,
    /// The output checks' verdict (`pass`, `review`, `block`), once checked. Not a web app
    /// field: only clients that select it see it.
    #[serde(default)]
    pub checks_verdict: Option<String>,
    /// The output checks' summary line: verdict, counts by rule, the worst files.
    #[serde(default)]
    pub checks_summary: Option<String>,
}

/// `revokeRelease(egress_request_id:, reason:)`: an admin withdraws an approved release.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RevokeReleaseInput {
    /// The approved request to revoke.
    #[serde(default)]
    pub egress_request_id: String,
    /// Why; recorded on the item and in the audit trail, and sent to the people told.
    #[serde(default)]
    pub reason: String,
}
