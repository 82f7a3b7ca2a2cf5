//! What Service Workbench sends us: the egress SNS message and the snapshot file.
//!
//! Field names are SWB's and must not change (DESIGN.md §2.1, §2.2).

use serde::{Deserialize, Serialize};

/// The JSON carried in the `Message` of each SNS record SWB publishes on egress submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwbEgressMessage {
    /// Uuid of this submission; becomes the egress request id and the execution name.
    pub id: String,
    /// Key of the SWB egress store item.
    pub egress_store_id: String,
    /// Display name of the egress store.
    pub egress_store_name: String,
    /// SWB workspace id.
    pub workspace_id: String,
    /// SWB project id.
    pub project_id: String,
    /// SWB egress store bucket, the source of the copies.
    pub s3_bucketname: String,
    /// Prefix of this store inside that bucket, e.g. `<workspace_id>/`.
    pub s3_bucketpath: String,
    /// `arn:aws:s3:::<bucket>/<key>` of the snapshot file.
    pub egress_store_object_list_location: String,
    /// ISO-8601 with milliseconds and `Z`.
    pub created_at: String,
    /// ISO-8601 with milliseconds and `Z`.
    pub updated_at: String,
    /// SWB user id of the store owner.
    pub created_by: String,
    /// SWB user id of the submitter.
    pub updated_by: String,
    /// Store owner's e-mail; absent in older SWB releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by_email: Option<String>,
    /// Submitter's e-mail; absent in older SWB releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by_email: Option<String>,
    /// `PENDING` at submission.
    pub status: String,
    /// Snapshot version (1, 2, ...).
    pub ver: u32,
}

/// SWB's snapshot file: the exact object versions a researcher submitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// One S3 listing entry per object (and possibly the folder marker).
    pub objects: Vec<SnapshotObject>,
}

/// One S3 listing entry of the snapshot, plus the version id SWB recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SnapshotObject {
    /// Full key under the store prefix; a key ending in `/` is a folder marker.
    pub key: String,
    /// The version submitted. SWB always versions its egress store bucket.
    pub version_id: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
    /// As listed by S3 (quoted).
    #[serde(default, rename = "ETag")]
    pub etag: Option<String>,
    /// As listed by S3.
    #[serde(default)]
    pub last_modified: Option<String>,
    /// As listed by S3.
    #[serde(default)]
    pub storage_class: Option<String>,
    /// As listed by S3; kept opaque.
    #[serde(default)]
    pub owner: Option<serde_json::Value>,
}

impl SnapshotObject {
    /// A folder marker is not a file and is never copied.
    pub fn is_folder_marker(&self) -> bool {
        self.key.ends_with('/')
    }
}
