//! What to stage for a snapshot, decided before anything is copied.
//!
//! Every listed key is checked first, so an unsafe key fails the step with nothing copied
//! (DESIGN.md §5.6); the plan then names, per file, the exact source version and the staging
//! key. The manifest built from the staged files is sorted by path, so re-running the step
//! for a request writes the same bytes.

use std::collections::BTreeMap;

use super::keys::{self, StagingLayout};
use crate::error::{EgressError, Result};
use crate::model::{Manifest, ManifestEntry, Snapshot, StagingResult};

/// One file to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCopy {
    /// Full source key in the egress store bucket.
    pub source_key: String,
    /// The version submitted.
    pub version_id: String,
    /// Size the snapshot lists.
    pub listed_size: u64,
    /// Path relative to the store prefix (the archive entry name).
    pub path: String,
    /// Key of the staged copy.
    pub staged_key: String,
}

/// The copies for `snapshot`: folder markers skipped, every key validated against
/// `store_prefix`, sorted by path.
///
/// Refused (`ValidationError` naming the key): an unsafe key, a key listed twice, a path
/// equal to the archive's manifest name, a missing version id, or no file at all.
pub fn plan(
    snapshot: &Snapshot,
    store_prefix: &str,
    layout: &StagingLayout,
    egress_request_id: &str,
) -> Result<Vec<PlannedCopy>> {
    let prefix = keys::store_prefix(store_prefix)?;
    let reserved = keys::archive_manifest_name(egress_request_id);
    let mut by_path: BTreeMap<&str, PlannedCopy> = BTreeMap::new();
    for object in &snapshot.objects {
        if object.is_folder_marker() {
            continue;
        }
        let path = keys::relative_path(&prefix, &object.key)?;
        if path == reserved {
            return Err(EgressError::validation(format!(
                "key {:?} collides with the name the archive reserves for its manifest",
                object.key
            )));
        }
        if object.version_id.trim().is_empty() {
            return Err(EgressError::validation(format!(
                "key {:?} is listed without a VersionId",
                object.key
            )));
        }
        let planned = PlannedCopy {
            source_key: object.key.clone(),
            version_id: object.version_id.clone(),
            listed_size: object.size,
            path: path.to_string(),
            staged_key: layout.staged_key(path)?,
        };
        if by_path.insert(path, planned).is_some() {
            return Err(EgressError::validation(format!(
                "key {:?} is listed more than once in the snapshot",
                object.key
            )));
        }
    }
    if by_path.is_empty() {
        return Err(EgressError::validation("snapshot lists no files"));
    }
    Ok(by_path.into_values().collect())
}

/// The manifest of a request, entries sorted by path.
pub fn manifest(
    egress_request_id: &str,
    workspace_id: &str,
    source_bucket: &str,
    snapshot_location: &str,
    mut files: Vec<ManifestEntry>,
) -> Manifest {
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Manifest {
        egress_request_id: egress_request_id.to_string(),
        workspace_id: workspace_id.to_string(),
        source_bucket: source_bucket.to_string(),
        snapshot_location: snapshot_location.to_string(),
        files,
    }
}

/// The step's result for a written manifest.
pub fn result(manifest: &Manifest, staging_bucket: &str, layout: &StagingLayout) -> StagingResult {
    StagingResult {
        file_count: manifest.files.len() as u64,
        total_bytes: manifest.files.iter().map(|f| f.size).sum(),
        file_types: keys::file_types(manifest.files.iter().map(|f| f.path.as_str())),
        staging_bucket: staging_bucket.to_string(),
        staging_prefix: layout.prefix().to_string(),
        manifest_key: layout.manifest_key().to_string(),
    }
}

/// Checks a manifest read back from staging before it drives the archive: it must belong to
/// the request, and its paths must be as safe as when they were staged (the staging bucket is
/// ours, but the archive is what leaves the TRE, so it is checked again).
pub fn check_manifest(
    manifest: &Manifest,
    workspace_id: &str,
    egress_request_id: &str,
) -> Result<()> {
    if manifest.egress_request_id != egress_request_id || manifest.workspace_id != workspace_id {
        return Err(EgressError::Integrity(format!(
            "the staging manifest belongs to request {} in workspace {}, not {egress_request_id} in {workspace_id}",
            manifest.egress_request_id, manifest.workspace_id
        )));
    }
    let reserved = keys::archive_manifest_name(egress_request_id);
    let mut previous: Option<&str> = None;
    for entry in &manifest.files {
        keys::check_relative_path(&entry.path).map_err(|why| {
            EgressError::Integrity(format!("manifest path {:?} is unsafe: {why}", entry.path))
        })?;
        if entry.path == reserved {
            return Err(EgressError::validation(format!(
                "file {:?} collides with the archive's manifest name",
                entry.path
            )));
        }
        if previous.is_some_and(|p| p >= entry.path.as_str()) {
            return Err(EgressError::Integrity(format!(
                "manifest paths are not sorted and distinct at {:?}",
                entry.path
            )));
        }
        if entry.sha256.len() != 64 || !entry.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(EgressError::Integrity(format!(
                "manifest entry {:?} has no valid SHA-256",
                entry.path
            )));
        }
        previous = Some(&entry.path);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SnapshotObject;

    fn object(key: &str, version: &str, size: u64) -> SnapshotObject {
        SnapshotObject {
            key: key.into(),
            version_id: version.into(),
            size,
            etag: None,
            last_modified: None,
            storage_class: None,
            owner: None,
        }
    }

    fn layout() -> StagingLayout {
        StagingLayout::new("ws-1", "req-1").unwrap()
    }

    fn entry(path: &str) -> ManifestEntry {
        ManifestEntry {
            path: path.into(),
            source_key: format!("ws-1/{path}"),
            version_id: "v".into(),
            size: 1,
            sha256: "a".repeat(64),
        }
    }

    #[test]
    fn when_planning_then_folder_markers_are_skipped_and_copies_are_sorted_by_path() {
        let snapshot = Snapshot {
            objects: vec![
                object("ws-1/", "null", 0),
                object("ws-1/b/data.csv", "v2", 20),
                object("ws-1/results/", "null", 0),
                object("ws-1/a/data.csv", "v1", 10),
            ],
        };
        let plan = plan(&snapshot, "ws-1/", &layout(), "req-1").unwrap();
        let paths: Vec<_> = plan.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["a/data.csv", "b/data.csv"]);
        assert_eq!(plan[0].staged_key, "ws-1/req-1/a/data.csv");
        assert_eq!(plan[0].version_id, "v1");
        assert_eq!(plan[1].listed_size, 20);
    }

    #[test]
    fn when_one_key_is_unsafe_then_the_whole_plan_is_refused_naming_it() {
        let snapshot = Snapshot {
            objects: vec![object("ws-1/ok.csv", "v1", 1), object("ws-1/../x", "v2", 1)],
        };
        let err = plan(&snapshot, "ws-1/", &layout(), "req-1").unwrap_err();
        assert_eq!(err.error_type(), "ValidationError");
        assert!(err.to_string().contains("\"ws-1/../x\""), "{err}");
    }

    #[test]
    fn when_only_folder_markers_are_listed_then_there_is_nothing_to_stage() {
        let snapshot = Snapshot {
            objects: vec![object("ws-1/", "null", 0)],
        };
        let err = plan(&snapshot, "ws-1/", &layout(), "req-1").unwrap_err();
        assert_eq!(err.to_string(), "snapshot lists no files");
    }

    #[test]
    fn when_a_key_is_listed_twice_then_the_plan_is_refused() {
        let snapshot = Snapshot {
            objects: vec![object("ws-1/a.csv", "v1", 1), object("ws-1/a.csv", "v2", 1)],
        };
        let err = plan(&snapshot, "ws-1/", &layout(), "req-1").unwrap_err();
        assert!(err.to_string().contains("more than once"), "{err}");
    }

    #[test]
    fn when_a_file_is_named_like_the_archive_manifest_then_the_plan_is_refused() {
        let snapshot = Snapshot {
            objects: vec![object("ws-1/egress_manifest_req-1.json", "v1", 1)],
        };
        let err = plan(&snapshot, "ws-1/", &layout(), "req-1").unwrap_err();
        assert!(err.to_string().contains("manifest"), "{err}");
        // The same name in a folder is not the archive's manifest.
        let snapshot = Snapshot {
            objects: vec![object("ws-1/x/egress_manifest_req-1.json", "v1", 1)],
        };
        assert!(plan(&snapshot, "ws-1/", &layout(), "req-1").is_ok());
    }

    #[test]
    fn when_a_version_id_is_missing_then_the_plan_is_refused() {
        let snapshot = Snapshot {
            objects: vec![object("ws-1/a.csv", " ", 1)],
        };
        let err = plan(&snapshot, "ws-1/", &layout(), "req-1").unwrap_err();
        assert!(err.to_string().contains("VersionId"), "{err}");
    }

    #[test]
    fn when_building_the_manifest_then_entries_are_sorted_by_path() {
        let m = manifest(
            "req-1",
            "ws-1",
            "src",
            "arn:aws:s3:::n/k",
            vec![entry("b/z"), entry("a/z"), entry("a")],
        );
        let paths: Vec<_> = m.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a", "a/z", "b/z"]);
        let r = result(&m, "staging", &layout());
        assert_eq!((r.file_count, r.total_bytes), (3, 3));
        assert_eq!(r.file_types, vec![keys::NO_EXTENSION]);
        assert_eq!(r.manifest_key, ".manifests/ws-1/req-1.json");
    }

    #[test]
    fn when_a_manifest_is_checked_then_foreign_unsafe_or_unsorted_ones_are_refused() {
        let good = manifest("req-1", "ws-1", "src", "arn", vec![entry("a"), entry("b")]);
        assert!(check_manifest(&good, "ws-1", "req-1").is_ok());
        assert_eq!(
            check_manifest(&good, "ws-1", "req-2")
                .unwrap_err()
                .error_type(),
            "IntegrityError"
        );

        let mut unsafe_path = good.clone();
        unsafe_path.files[0].path = "../a".into();
        assert!(check_manifest(&unsafe_path, "ws-1", "req-1")
            .unwrap_err()
            .to_string()
            .contains("unsafe"));

        let mut unsorted = good.clone();
        unsorted.files.swap(0, 1);
        assert!(check_manifest(&unsorted, "ws-1", "req-1").is_err());

        let mut duplicate = good.clone();
        duplicate.files[1].path = "a".into();
        assert!(check_manifest(&duplicate, "ws-1", "req-1").is_err());

        let mut colliding = good.clone();
        colliding.files[1].path = "egress_manifest_req-1.json".into();
        let err = check_manifest(&colliding, "ws-1", "req-1").unwrap_err();
        assert_eq!(err.error_type(), "ValidationError");

        let mut bad_hash = good;
        bad_hash.files[0].sha256 = "xyz".into();
        assert!(check_manifest(&bad_hash, "ws-1", "req-1").is_err());
    }
}
