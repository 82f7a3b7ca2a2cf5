//! Key mapping between the SWB egress store, the staging bucket and the datalake, and the
//! rules that keep a researcher-controlled key from escaping its place.
//!
//! A snapshot key is a full key under the store prefix (`<workspace_id>/results/a.csv`). The
//! part after the prefix is the file's *relative path*: it names the staged copy
//! (`<workspace_id>/<egress_request_id>/<path>`) and the entry inside the approved zip. Zip
//! extractors write entries to disk by that path, so a path that is absolute, climbs with
//! `..`, uses `\` (a separator on Windows), a drive letter, control characters or empty/`.`
//! segments (which extractors normalise, so two keys could land on one file) is refused
//! before anything is copied (DESIGN.md §5.6). So is a name that misleads or changes once
//! extracted: a component ending in `.` or a space (Windows strips them, so `trailing.`
//! becomes `trailing`), and bidirectional controls or other invisible characters (a
//! right-to-left override makes `evil\u{202E}fdp.exe` read as `evilexe.pdf`).

use std::collections::BTreeMap;

use crate::error::{EgressError, Result};

/// S3's limit on the length of a key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// The file-type label of files without an extension.
pub const NO_EXTENSION: &str = "(none)";

/// Extensions longer than this are not a file type anyone reviews by; they are reported as
/// [`NO_EXTENSION`] so a notification never carries an arbitrary long string.
const MAX_EXTENSION_CHARS: usize = 16;

/// The most file types a [`FileTypeSummary`] names; the rest are counted. The summary travels
/// in the workflow's state and in the reviewers' notification, both of which must stay small
/// whatever the request holds (Step Functions refuses a state above 256 KiB).
pub const MAX_SUMMARY_TYPES: usize = 10;

/// Keys of the staging bucket for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagingLayout {
    prefix: String,
    manifest_key: String,
}

impl StagingLayout {
    /// The layout of `egress_request_id` in `workspace_id`. Both become key segments, so both
    /// must be plain identifiers (letters, digits, `-`, `_`), as intake already enforces.
    pub fn new(workspace_id: &str, egress_request_id: &str) -> Result<Self> {
        check_id("workspace_id", workspace_id)?;
        check_id("egress_request_id", egress_request_id)?;
        Ok(Self {
            prefix: format!("{workspace_id}/{egress_request_id}/"),
            manifest_key: format!(".manifests/{workspace_id}/{egress_request_id}.json"),
        })
    }

    /// `<workspace_id>/<egress_request_id>/`: everything staged for the request.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `.manifests/<workspace_id>/<egress_request_id>.json`. Workspace ids never start with
    /// `.`, so the manifest can never sit under a request's prefix.
    pub fn manifest_key(&self) -> &str {
        &self.manifest_key
    }

    /// The staging key of a file at relative `path`; refuses keys longer than S3 allows.
    pub fn staged_key(&self, path: &str) -> Result<String> {
        let key = format!("{}{path}", self.prefix);
        if key.len() > MAX_KEY_BYTES {
            return Err(EgressError::validation(format!(
                "key {path:?} is too long once staged ({} bytes, S3 allows {MAX_KEY_BYTES})",
                key.len()
            )));
        }
        Ok(key)
    }
}

/// `approved_egress/<workspace_id>/<egress_request_id>/egress_data.zip` (DESIGN.md §2.5).
pub fn archive_key(workspace_id: &str, egress_request_id: &str) -> Result<String> {
    check_id("workspace_id", workspace_id)?;
    check_id("egress_request_id", egress_request_id)?;
    Ok(format!(
        "approved_egress/{workspace_id}/{egress_request_id}/egress_data.zip"
    ))
}

/// The name of the manifest inside the archive: `egress_manifest_<egress_request_id>.json`.
pub fn archive_manifest_name(egress_request_id: &str) -> String {
    format!("egress_manifest_{egress_request_id}.json")
}

/// The prefix of a workspace's egress store in SWB's store bucket: `<workspace_id>/`.
///
/// SWB keys each egress store by its workspace (the store id *is* the workspace id) and gives
/// it this folder (DESIGN.md §2.1), so intake binds a message's prefix to its workspace.
pub fn swb_store_prefix(workspace_id: &str) -> Result<String> {
    check_id("workspace_id", workspace_id)?;
    Ok(format!("{workspace_id}/"))
}

/// The key SWB writes snapshot `ver` of a store to, in its notification bucket:
/// `<egress_store_id>/<egress_store_name>-ver<ver>.json` (DESIGN.md §2.1).
pub fn swb_snapshot_key(egress_store_id: &str, egress_store_name: &str, ver: u32) -> String {
    format!("{egress_store_id}/{egress_store_name}-ver{ver}.json")
}

/// Normalises a store prefix the way intake does: relative, ending in `/`.
pub fn store_prefix(raw: &str) -> Result<String> {
    if raw.is_empty()
        || raw.starts_with('/')
        || raw.contains('\\')
        || raw.chars().any(char::is_control)
        || raw.split('/').any(|seg| seg == "..")
    {
        return Err(EgressError::validation(format!(
            "store prefix {raw:?} must be a non-empty relative S3 prefix without `..` or `\\`"
        )));
    }
    Ok(if raw.ends_with('/') {
        raw.to_string()
    } else {
        format!("{raw}/")
    })
}

/// The path of `key` relative to `prefix` (as returned by [`store_prefix`]), checked with
/// [`check_relative_path`]. The error names the key.
pub fn relative_path<'k>(prefix: &str, key: &'k str) -> Result<&'k str> {
    let rel = key.strip_prefix(prefix).ok_or_else(|| {
        EgressError::validation(format!(
            "unsafe key {key:?}: it is outside the egress store prefix {prefix:?}"
        ))
    })?;
    check_relative_path(rel)
        .map_err(|why| EgressError::validation(format!("unsafe key {key:?}: {why}")))?;
    Ok(rel)
}

/// Why `path` cannot be used as a relative path (staging suffix and zip entry name), if it
/// cannot.
pub fn check_relative_path(path: &str) -> std::result::Result<(), String> {
    if path.is_empty() {
        return Err("the path relative to the store prefix is empty".into());
    }
    if path.starts_with('/') {
        return Err("it is an absolute path".into());
    }
    if path.contains('\\') {
        return Err("it contains a backslash, a path separator on Windows".into());
    }
    if let Some(c) = path.chars().find(|c| c.is_control()) {
        return Err(format!("it contains the control character {:?}", c));
    }
    if looks_like_drive(path) {
        return Err("it starts with a Windows drive letter".into());
    }
    if let Some(c) = path.chars().find(|c| invisible(*c)) {
        return Err(format!(
            "it contains the invisible character U+{:04X} ({}), which makes a name read as \
             something else",
            u32::from(c),
            if bidi_control(c) {
                "a bidirectional text control"
            } else {
                "a format character"
            }
        ));
    }
    for segment in path.split('/') {
        match segment {
            "" => return Err("it contains an empty path segment (`//` or a trailing `/`)".into()),
            "." => return Err("it contains a `.` path segment".into()),
            ".." => return Err("it contains a `..` path segment".into()),
            s if s.ends_with('.') || s.ends_with(' ') => {
                return Err(format!(
                    "the name {s:?} ends in a dot or a space, which Windows removes on \
                     extraction (it would become another name)"
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Bidirectional text controls: embeddings, overrides, isolates and the implicit marks.
fn bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Characters that show nothing (or reorder what is shown) in a file name: the bidirectional
/// controls, Unicode's format characters (general category Cf: zero-width spaces and joiners,
/// the byte-order mark, the soft hyphen, invisible operators, tags...), the line and
/// paragraph separators, and the Hangul fillers that render as blanks.
fn invisible(c: char) -> bool {
    bidi_control(c)
        || matches!(
            c,
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08E2}'
                | '\u{115F}'..='\u{1160}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
        )
}

/// `C:` or `c:foo` at the start: Windows extractors treat it as a drive.
fn looks_like_drive(path: &str) -> bool {
    let mut chars = path.chars();
    matches!((chars.next(), chars.next()), (Some(l), Some(':')) if l.is_ascii_alphabetic())
}

/// The file type of a path: its lower-case extension, or [`NO_EXTENSION`] (no dot, a dot
/// file such as `.bashrc`, a trailing dot, or an implausibly long or odd extension). A type
/// is at most 16 ASCII letters or digits, so it is safe in any notification.
pub fn file_type(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rfind('.') {
        Some(dot) if dot > 0 => {
            let ext = &name[dot + 1..];
            let plausible = !ext.is_empty()
                && ext.len() <= MAX_EXTENSION_CHARS
                && ext.chars().all(|c| c.is_ascii_alphanumeric());
            if plausible {
                ext.to_lowercase()
            } else {
                NO_EXTENSION.to_string()
            }
        }
        _ => NO_EXTENSION.to_string(),
    }
}

/// A bounded summary of the file types of a request: the [`MAX_SUMMARY_TYPES`] most common
/// types (most files first, then by name) and how many other types there are. The full list
/// of files is in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTypeSummary {
    /// The most common types, each as [`file_type`] returns it.
    pub shown: Vec<String>,
    /// Distinct types not shown.
    pub others: u64,
}

impl FileTypeSummary {
    /// Summarises the types of `paths`.
    pub fn of<'a>(paths: impl IntoIterator<Item = &'a str>) -> Self {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for path in paths {
            *counts.entry(file_type(path)).or_default() += 1;
        }
        let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let others = ranked.len().saturating_sub(MAX_SUMMARY_TYPES) as u64;
        ranked.truncate(MAX_SUMMARY_TYPES);
        Self {
            shown: ranked.into_iter().map(|(t, _)| t).collect(),
            others,
        }
    }

    /// Distinct types in all.
    pub fn distinct(&self) -> u64 {
        self.shown.len() as u64 + self.others
    }
}

impl std::fmt::Display for FileTypeSummary {
    /// `csv, png, (none)`, or `csv, png, ... +3 other` when there are more than
    /// [`MAX_SUMMARY_TYPES`].
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown.join(", "))?;
        if self.others > 0 {
            write!(f, " +{} other", self.others)?;
        }
        Ok(())
    }
}

/// Identifiers that become key segments: 1-128 letters, digits, `-` or `_`.
/// True when `value` is 1-`max_len` letters, digits, `-` or `_`: safe as a key segment
/// and as a Step Functions execution name.
pub fn is_safe_id(value: &str, max_len: usize) -> bool {
    !value.is_empty()
        && value.len() <= max_len
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Refuses an id that is not safe as the segment of a key ([`is_safe_id`], 128 at most).
pub fn check_id(field: &str, value: &str) -> Result<()> {
    if is_safe_id(value, 128) {
        Ok(())
    } else {
        Err(EgressError::validation(format!(
            "field `{field}` must be 1-128 letters, digits, `-` or `_`, got {value:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "ws-1/";

    fn unsafe_reason(key: &str) -> String {
        let err = relative_path(PREFIX, key).unwrap_err();
        assert_eq!(err.error_type(), "ValidationError");
        let text = err.to_string();
        assert!(
            text.contains(&format!("{key:?}")),
            "error must name the key: {text}"
        );
        text
    }

    #[test]
    fn when_a_key_is_under_the_prefix_then_its_relative_path_keeps_folders() {
        assert_eq!(relative_path(PREFIX, "ws-1/a.csv").unwrap(), "a.csv");
        assert_eq!(
            relative_path(PREFIX, "ws-1/results/2024/table 1.csv").unwrap(),
            "results/2024/table 1.csv"
        );
        assert_eq!(
            relative_path(PREFIX, "ws-1/ünïcødé/ß.txt").unwrap(),
            "ünïcødé/ß.txt"
        );
        // Dots inside names are fine; only whole `.`/`..` segments are not.
        assert_eq!(relative_path(PREFIX, "ws-1/a..b/..c").unwrap(), "a..b/..c");
    }

    #[test]
    fn when_a_key_is_mapped_then_the_staged_key_is_under_workspace_and_request() {
        let layout = StagingLayout::new("ws-1", "req-9").unwrap();
        let rel = relative_path(PREFIX, "ws-1/results/a.csv").unwrap();
        assert_eq!(layout.staged_key(rel).unwrap(), "ws-1/req-9/results/a.csv");
        assert_eq!(layout.prefix(), "ws-1/req-9/");
        assert_eq!(layout.manifest_key(), ".manifests/ws-1/req-9.json");
    }

    #[test]
    fn when_the_same_name_is_in_two_folders_then_the_staged_keys_differ() {
        let layout = StagingLayout::new("ws-1", "req-9").unwrap();
        let a = layout
            .staged_key(relative_path(PREFIX, "ws-1/a/data.csv").unwrap())
            .unwrap();
        let b = layout
            .staged_key(relative_path(PREFIX, "ws-1/b/data.csv").unwrap())
            .unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn when_a_key_has_a_dotdot_segment_then_it_is_unsafe() {
        for key in ["ws-1/../other/a.csv", "ws-1/a/../../b", "ws-1/.."] {
            assert!(unsafe_reason(key).contains("`..`"), "{key}");
        }
    }

    #[test]
    fn when_a_key_has_a_dot_segment_then_it_is_unsafe() {
        assert!(unsafe_reason("ws-1/./a.csv").contains("`.`"));
    }

    #[test]
    fn when_the_relative_path_is_absolute_then_it_is_unsafe() {
        assert!(unsafe_reason("ws-1//etc/passwd").contains("absolute"));
    }

    #[test]
    fn when_a_key_has_a_backslash_then_it_is_unsafe() {
        assert!(unsafe_reason("ws-1/..\\..\\evil.bat").contains("backslash"));
        assert!(unsafe_reason("ws-1/a\\b.txt").contains("backslash"));
    }

    #[test]
    fn when_a_key_has_control_characters_then_it_is_unsafe() {
        for key in [
            "ws-1/a\nb.csv",
            "ws-1/a\0.csv",
            "ws-1/\u{7f}x",
            "ws-1/a\u{85}b",
            "ws-1/\tx",
        ] {
            assert!(unsafe_reason(key).contains("control character"), "{key:?}");
        }
    }

    #[test]
    fn when_a_key_is_outside_the_store_prefix_then_it_is_unsafe() {
        for key in ["other/a.csv", "ws-10/a.csv", "a.csv", "/ws-1/a.csv"] {
            assert!(unsafe_reason(key).contains("outside"), "{key}");
        }
    }

    #[test]
    fn when_a_key_has_empty_segments_then_it_is_unsafe() {
        assert!(unsafe_reason("ws-1/a//b.csv").contains("empty path segment"));
        assert!(unsafe_reason("ws-1/a/b/").contains("empty path segment"));
    }

    #[test]
    fn when_the_relative_path_is_empty_then_it_is_unsafe() {
        assert!(unsafe_reason("ws-1/").contains("empty"));
    }

    #[test]
    fn when_a_name_ends_in_a_dot_or_a_space_then_it_is_unsafe() {
        for key in [
            "ws-1/trailing.",
            "ws-1/trailing ",
            "ws-1/dir./a.csv",
            "ws-1/dir /a.csv",
        ] {
            assert!(
                unsafe_reason(key).contains("ends in a dot or a space"),
                "{key:?}"
            );
        }
        // Dots and spaces elsewhere in a name are ordinary.
        assert!(relative_path(PREFIX, "ws-1/a. b/.c d.csv").is_ok());
    }

    #[test]
    fn when_a_name_holds_a_bidirectional_control_then_it_is_unsafe() {
        for c in [
            '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}',
            '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}',
        ] {
            let key = format!("ws-1/invoice{c}fdp.exe");
            let text = unsafe_reason(&key);
            assert!(
                text.contains("bidirectional") && text.contains(&format!("U+{:04X}", u32::from(c))),
                "{text}"
            );
        }
    }

    #[test]
    fn when_a_name_holds_an_invisible_format_character_then_it_is_unsafe() {
        for c in [
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{2028}',
            '\u{3164}',
            '\u{E0041}',
        ] {
            let key = format!("ws-1/da{c}ta/a.csv");
            assert!(unsafe_reason(&key).contains("invisible"), "{key:?}");
        }
    }

    #[test]
    fn when_a_path_starts_with_a_drive_letter_then_it_is_unsafe() {
        assert!(unsafe_reason("ws-1/C:/Windows/x.dll").contains("drive"));
        assert!(unsafe_reason("ws-1/c:x.dll").contains("drive"));
        // A colon later in a name is an ordinary character.
        assert_eq!(relative_path(PREFIX, "ws-1/ab:c.txt").unwrap(), "ab:c.txt");
    }

    #[test]
    fn when_a_staged_key_would_exceed_s3s_limit_then_it_is_refused() {
        let layout = StagingLayout::new("ws-1", "req-9").unwrap();
        let long = "a".repeat(MAX_KEY_BYTES);
        let err = layout.staged_key(&long).unwrap_err();
        assert!(err.to_string().contains("too long"));
        assert!(layout.staged_key(&"a".repeat(MAX_KEY_BYTES - 11)).is_ok());
    }

    #[test]
    fn when_ids_are_not_plain_identifiers_then_the_layout_is_refused() {
        for (ws, req) in [
            ("", "r"),
            ("w", ""),
            ("../w", "r"),
            ("w", "r/x"),
            (".w", "r"),
        ] {
            let err = StagingLayout::new(ws, req).unwrap_err();
            assert_eq!(err.error_type(), "ValidationError", "{ws:?} {req:?}");
            assert!(archive_key(ws, req).is_err());
        }
    }

    #[test]
    fn when_the_archive_key_is_built_then_it_follows_the_datalake_layout() {
        assert_eq!(
            archive_key("ws-1", "req-9").unwrap(),
            "approved_egress/ws-1/req-9/egress_data.zip"
        );
        assert_eq!(archive_manifest_name("req-9"), "egress_manifest_req-9.json");
    }

    #[test]
    fn when_a_store_prefix_lacks_its_slash_then_it_is_added() {
        assert_eq!(store_prefix("ws-1").unwrap(), "ws-1/");
        assert_eq!(store_prefix("ws-1/").unwrap(), "ws-1/");
        for bad in ["", "/ws", "a/../b", "a\\b"] {
            assert!(store_prefix(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn when_extracting_file_types_then_extensions_are_lower_case_and_dotfiles_have_none() {
        assert_eq!(file_type("a/b/Report.CSV"), "csv");
        assert_eq!(file_type("archive.tar.gz"), "gz");
        assert_eq!(file_type("README"), NO_EXTENSION);
        assert_eq!(file_type("dir.d/README"), NO_EXTENSION);
        assert_eq!(file_type(".bashrc"), NO_EXTENSION);
        assert_eq!(file_type("trailing."), NO_EXTENSION);
        assert_eq!(file_type("x.thisextensionistoolong"), NO_EXTENSION);
        assert_eq!(file_type("x.a b"), NO_EXTENSION);
        assert_eq!(file_type("x.tar_gz"), NO_EXTENSION);
        assert_eq!(file_type("x.ĉsv"), NO_EXTENSION);
        assert_eq!(file_type("x.{}"), NO_EXTENSION);
    }

    #[test]
    fn when_there_are_few_types_then_the_summary_names_them_most_common_first() {
        let summary = FileTypeSummary::of(["a.png", "b.csv", "c.csv", "README", "d.PNG", "e.csv"]);
        assert_eq!(summary.to_string(), "csv, png, (none)");
        assert_eq!((summary.distinct(), summary.others), (3, 0));
    }

    #[test]
    fn when_there_are_many_types_then_the_summary_names_ten_and_counts_the_rest() {
        let paths: Vec<String> = (0..14_000)
            .map(|i| format!("dicom/1.2.840.10008.5.1.4.1.1.{i}"))
            .chain(["a.csv".to_string(), "b.csv".to_string()])
            .collect();
        let summary = FileTypeSummary::of(paths.iter().map(String::as_str));
        assert_eq!(summary.shown.len(), MAX_SUMMARY_TYPES);
        assert_eq!(summary.shown[0], "csv");
        assert_eq!(summary.others, 14_001 - MAX_SUMMARY_TYPES as u64);
        assert_eq!(summary.distinct(), 14_001);
        let text = summary.to_string();
        assert!(text.ends_with(" +13991 other"), "{text}");
        assert!(text.len() < 250, "{text}");
    }
}
