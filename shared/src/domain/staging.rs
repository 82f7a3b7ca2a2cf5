//! What to stage for a snapshot, decided before anything is copied.
//!
//! Every listed key is checked first, so an unsafe key fails the step with nothing copied
//! (DESIGN.md §5.6); the plan then names, per file, the exact source version and the staging
//! key. The manifest built from the staged files is sorted by path, so re-running the step
//! for a request writes the same bytes.
//!
//! Names are also checked together: S3 keys are case-sensitive byte strings, but the archive
//! is extracted onto file systems that ignore case (Windows, macOS) or Unicode normal form
//! (macOS), so `Data.csv` and `data.csv`, or `é` written as one code point (NFC) and as `e`
//! plus an accent (NFD), would become one file, one silently replacing the other; and `x`
//! cannot be both a file and a folder. Such a set is refused, naming the keys to rename.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use unicode_normalization::UnicodeNormalization;

use super::keys::{self, FileTypeSummary, StagingLayout};
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
/// equal to the archive's manifest name, a missing version id, no file at all, or names that
/// clash once extracted ([`check_extracted_names`]).
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
    let copies: Vec<PlannedCopy> = by_path.into_values().collect();
    check_extracted_names(&copies, &reserved)?;
    Ok(copies)
}

/// The most clashes one error lists; the rest are counted. The message travels in the
/// workflow's state and the researcher's e-mail, so it stays bounded.
const MAX_CLASHES_LISTED: usize = 10;

/// What a name is once extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameKind {
    File,
    Folder,
}

/// The first name seen in one extracted spelling.
struct SeenName<'a> {
    /// The relative path of the file or folder.
    name: &'a str,
    kind: NameKind,
    /// The key to rename: the file's, or for a folder the first file listed under it;
    /// `None` for the archive's own manifest.
    key: Option<&'a str>,
}

/// The spelling under which names are one file once extracted: NFC, lower-cased.
fn extracted_spelling(name: &str) -> String {
    name.nfc().collect::<String>().to_lowercase()
}

/// Refuses files and folders whose names are one once extracted: equal ignoring case, the
/// same name in two Unicode normal forms, or a file and a folder of the same name (also
/// ignoring case). `reserved` is the name of the archive's own manifest. The error lists the
/// keys of every clash (up to [`MAX_CLASHES_LISTED`]) so the researcher can rename them all
/// at once.
pub fn check_extracted_names(copies: &[PlannedCopy], reserved: &str) -> Result<()> {
    let mut seen: BTreeMap<String, SeenName<'_>> = BTreeMap::new();
    seen.insert(
        extracted_spelling(reserved),
        SeenName {
            name: reserved,
            kind: NameKind::File,
            key: None,
        },
    );
    let mut clashes: Vec<String> = Vec::new();
    let mut clash_count = 0usize;
    // A folder clash is met again for every file under the folder; it is one clash.
    let mut reported: BTreeSet<(&str, &str)> = BTreeSet::new();
    for copy in copies {
        let folders = copy
            .path
            .match_indices('/')
            .map(|(at, _)| (&copy.path[..at], NameKind::Folder));
        for (name, kind) in folders.chain([(copy.path.as_str(), NameKind::File)]) {
            let candidate = SeenName {
                name,
                kind,
                key: Some(&copy.source_key),
            };
            match seen.entry(extracted_spelling(name)) {
                Entry::Vacant(slot) => {
                    slot.insert(candidate);
                }
                Entry::Occupied(prior) => {
                    let prior = prior.get();
                    if prior.name == name && prior.kind == kind {
                        continue; // the same folder again
                    }
                    if !reported.insert((prior.name, name)) {
                        continue;
                    }
                    clash_count += 1;
                    if clashes.len() < MAX_CLASHES_LISTED {
                        clashes.push(describe_clash(prior, &candidate));
                    }
                }
            }
        }
    }
    if clash_count == 0 {
        return Ok(());
    }
    let mut message = format!(
        "{clash_count} name clash(es) once the archive is extracted (on Windows or macOS two \
         such names are one file); rename these files and submit again: {}",
        clashes.join("; ")
    );
    if clash_count > clashes.len() {
        message.push_str(&format!("; and {} more", clash_count - clashes.len()));
    }
    Err(EgressError::validation(message))
}

fn describe_clash(prior: &SeenName<'_>, new: &SeenName<'_>) -> String {
    let key = |n: &SeenName<'_>| match n.key {
        Some(key) => format!("{key:?}"),
        None => format!("the archive's own manifest {:?}", n.name),
    };
    let why = if prior.kind != new.kind {
        let (file, folder) = match prior.kind {
            NameKind::File => (prior, new),
            NameKind::Folder => (new, prior),
        };
        if file.name == folder.name {
            format!("{:?} is both a file and a folder", file.name)
        } else {
            format!(
                "file {:?} and folder {:?} are one name ignoring case",
                file.name, folder.name
            )
        }
    } else if prior.name.nfc().eq(new.name.nfc()) {
        format!(
            "{:?} is the same name in two Unicode normal forms (NFC and NFD)",
            new.name
        )
    } else {
        let what = match new.kind {
            NameKind::File => "names",
            NameKind::Folder => "folder names",
        };
        format!(
            "{what} {:?} and {:?} are equal ignoring case",
            prior.name, new.name
        )
    };
    format!("{} and {}: {why}", key(prior), key(new))
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

/// The error for a listed version whose real size is not the size the snapshot lists.
pub fn size_mismatch(planned: &PlannedCopy, actual: u64) -> EgressError {
    EgressError::Integrity(format!(
        "the snapshot lists {} bytes for key {:?} version {:?}, but that version has {} bytes",
        planned.listed_size, planned.source_key, planned.version_id, actual
    ))
}

/// The error for a listed version that does not exist (the copy's own 404).
pub fn missing_version(planned: &PlannedCopy, source_bucket: &str) -> EgressError {
    EgressError::NotFound(format!(
        "version {:?} of key {:?} listed in the snapshot does not exist in bucket {source_bucket}",
        planned.version_id, planned.source_key
    ))
}

/// Checks that each staged copy of `copies` has the size the snapshot lists, against the
/// sizes a listing of the staging prefix found (`staged`: staged key → size). A copy has the
/// exact size of its source version, so a difference is the snapshot's, reported as
/// [`size_mismatch`]; a copy missing from the listing is an integrity error too.
pub fn check_staged_sizes(
    copies: &[&PlannedCopy],
    staged: &std::collections::HashMap<String, u64>,
) -> Result<()> {
    for planned in copies {
        match staged.get(&planned.staged_key) {
            Some(&size) if size == planned.listed_size => {}
            Some(&size) => return Err(size_mismatch(planned, size)),
            None => {
                return Err(EgressError::Integrity(format!(
                "the staged copy of key {:?} version {:?} is missing from staging after its copy",
                planned.source_key, planned.version_id
            )))
            }
        }
    }
    Ok(())
}

/// The step's result for a written manifest: counts and a bounded summary of the file types,
/// never a list that grows with the request (the full list is the manifest).
pub fn result(manifest: &Manifest, staging_bucket: &str, layout: &StagingLayout) -> StagingResult {
    let types = FileTypeSummary::of(manifest.files.iter().map(|f| f.path.as_str()));
    StagingResult {
        file_count: manifest.files.len() as u64,
        total_bytes: manifest.files.iter().map(|f| f.size).sum(),
        file_types: types.to_string(),
        file_type_count: types.distinct(),
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

    #[test]
    fn when_a_staged_size_differs_or_a_copy_is_missing_then_the_check_names_the_key() {
        let planned = PlannedCopy {
            source_key: "ws/a.csv".into(),
            version_id: "v1".into(),
            listed_size: 5,
            path: "a.csv".into(),
            staged_key: "ws/req/a.csv".into(),
        };
        let sizes = |n: u64| std::collections::HashMap::from([("ws/req/a.csv".to_string(), n)]);
        assert!(check_staged_sizes(&[&planned], &sizes(5)).is_ok());
        let err = check_staged_sizes(&[&planned], &sizes(7)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the snapshot lists 5 bytes for key \"ws/a.csv\" version \"v1\", but that version has 7 bytes"
        );
        let err = check_staged_sizes(&[&planned], &Default::default()).unwrap_err();
        assert_eq!(err.error_type(), "IntegrityError");
        assert!(err.to_string().contains("ws/a.csv"), "{err}");
    }
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

    fn clash_error(keys: &[&str]) -> String {
        let snapshot = Snapshot {
            objects: keys.iter().map(|k| object(k, "v1", 1)).collect(),
        };
        let err = plan(&snapshot, "ws-1/", &layout(), "req-1").unwrap_err();
        assert_eq!(err.error_type(), "ValidationError");
        let text = err.to_string();
        assert!(text.contains("rename these files"), "{text}");
        text
    }

    #[test]
    fn when_two_names_are_equal_ignoring_case_then_the_plan_is_refused_naming_both_keys() {
        let text = clash_error(&["ws-1/Data.csv", "ws-1/data.csv", "ws-1/other.csv"]);
        assert!(
            text.contains(r#""ws-1/Data.csv" and "ws-1/data.csv""#)
                && text.contains("equal ignoring case"),
            "{text}"
        );
        assert!(!text.contains("other.csv"), "{text}");
        let text = clash_error(&["ws-1/dir/ÄRZTE.csv", "ws-1/dir/ärzte.csv"]);
        assert!(text.contains("equal ignoring case"), "{text}");
    }

    #[test]
    fn when_a_name_is_listed_in_two_normal_forms_then_the_plan_is_refused() {
        let nfc = "ws-1/caf\u{e9}.csv";
        let nfd = "ws-1/cafe\u{301}.csv";
        let text = clash_error(&[nfc, nfd]);
        assert!(text.contains("two Unicode normal forms"), "{text}");
        assert!(
            text.contains(&format!("{nfc:?}")) && text.contains(&format!("{nfd:?}")),
            "{text}"
        );
        // Either form alone is fine.
        let snapshot = Snapshot {
            objects: vec![object(nfd, "v1", 1), object("ws-1/cafe.csv", "v1", 1)],
        };
        assert!(plan(&snapshot, "ws-1/", &layout(), "req-1").is_ok());
    }

    #[test]
    fn when_a_name_is_both_a_file_and_a_folder_then_the_plan_is_refused() {
        let text = clash_error(&["ws-1/x", "ws-1/x/y.csv"]);
        assert!(
            text.contains(r#""ws-1/x" and "ws-1/x/y.csv""#)
                && text.contains("\"x\" is both a file and a folder"),
            "{text}"
        );
        let text = clash_error(&["ws-1/a/X", "ws-1/a/x/y.csv"]);
        assert!(
            text.contains("file \"a/X\" and folder \"a/x\" are one name ignoring case"),
            "{text}"
        );
    }

    #[test]
    fn when_folder_names_differ_only_in_case_then_the_clash_is_named_once() {
        let text = clash_error(&["ws-1/Out/1.csv", "ws-1/out/2.csv", "ws-1/out/3.csv"]);
        assert!(text.starts_with("1 name clash(es)"), "{text}");
        assert!(
            text.contains(r#""ws-1/Out/1.csv" and "ws-1/out/2.csv""#)
                && text.contains("folder names \"Out\" and \"out\""),
            "{text}"
        );
    }

    #[test]
    fn when_a_name_differs_from_the_archive_manifest_only_in_case_then_the_plan_is_refused() {
        let text = clash_error(&["ws-1/Egress_Manifest_req-1.json"]);
        assert!(text.contains("the archive's own manifest"), "{text}");
    }

    #[test]
    fn when_there_are_many_clashes_then_the_error_lists_ten_and_counts_the_rest() {
        let keys: Vec<String> = (0..50)
            .flat_map(|i| [format!("ws-1/f{i}.csv"), format!("ws-1/F{i}.csv")])
            .collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let text = clash_error(&keys);
        assert!(text.starts_with("50 name clash(es)"), "{text}");
        assert!(text.ends_with("; and 40 more"), "{text}");
        assert!(text.len() < 2048, "{} bytes", text.len());
    }

    #[test]
    fn when_names_only_look_alike_in_different_folders_then_they_do_not_clash() {
        let snapshot = Snapshot {
            objects: [
                "ws-1/a/data.csv",
                "ws-1/b/Data.csv",
                "ws-1/a/b",
                "ws-1/ab/c",
            ]
            .iter()
            .map(|k| object(k, "v1", 1))
            .collect(),
        };
        assert_eq!(
            plan(&snapshot, "ws-1/", &layout(), "req-1").unwrap().len(),
            4
        );
    }

    #[test]
    fn when_a_name_ends_in_a_dot_or_holds_a_bidi_override_then_the_plan_is_refused() {
        for key in ["ws-1/trailing.", "ws-1/report\u{202E}fdp.exe"] {
            let snapshot = Snapshot {
                objects: vec![object("ws-1/trailing", "v1", 1), object(key, "v1", 1)],
            };
            let err = plan(&snapshot, "ws-1/", &layout(), "req-1").unwrap_err();
            assert_eq!(err.error_type(), "ValidationError");
            assert!(err.to_string().contains(&format!("{key:?}")), "{err}");
        }
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
        assert_eq!(r.file_types, keys::NO_EXTENSION);
        assert_eq!(r.file_type_count, 1);
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
