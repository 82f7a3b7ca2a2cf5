//! The key rules (`shared::domain::keys`): a researcher-controlled S3 key becomes a staging
//! key and a zip entry name, so whatever is accepted must be a safe relative path
//! (DESIGN.md §5.6).

use proptest::prelude::*;
use shared::domain::keys::{
    archive_key, check_relative_path, file_type, relative_path, store_prefix, StagingLayout,
    MAX_KEY_BYTES, NO_EXTENSION,
};

use crate::support::{self, fragment, hostile_string};

/// The store prefix of the staging fixture's workspace.
pub const PREFIX: &str = "1637e3f6-5d2c-4d52-9a41-3f1b2c3d4e5f/";

/// One path segment: mostly ordinary names, often a traversal or hostile piece.
pub fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-zA-Z0-9 _.()-]{1,16}",
        1 => Just("..".to_string()),
        1 => Just(".".to_string()),
        1 => Just(String::new()),
        1 => "[a-zA-Z]:[a-z]{0,4}",
        2 => proptest::collection::vec(fragment(), 1..4).prop_map(|v| v.concat()),
        1 => any::<String>(),
        1 => (1usize..400).prop_map(|n| "a".repeat(n)),
    ]
}

/// A key as a snapshot may list it: usually under `prefix`, made of hostile segments.
pub fn key_under(prefix: &'static str) -> impl Strategy<Value = String> {
    let start = prop_oneof![
        8 => Just(prefix.to_string()),
        1 => Just(String::new()),
        1 => Just(format!("/{prefix}")),
        1 => Just(prefix.trim_end_matches('/').to_string()),
        1 => Just(format!("x{prefix}")),
        1 => hostile_string(),
    ];
    (
        start,
        proptest::collection::vec(segment(), 1..6),
        any::<bool>(),
    )
        .prop_map(|(start, segments, trailing)| {
            let mut key = format!("{start}{}", segments.join("/"));
            if trailing {
                key.push('/');
            }
            key
        })
}

/// The rules of DESIGN.md §5.6, written from the specification rather than from the code:
/// why `rel` is not a safe relative path, if it is not.
pub fn spec_violation(rel: &str) -> Option<&'static str> {
    let mut chars = rel.chars();
    let drive =
        matches!((chars.next(), chars.next()), (Some(l), Some(':')) if l.is_ascii_alphabetic());
    if rel.is_empty() {
        Some("empty")
    } else if rel.starts_with('/') {
        Some("absolute")
    } else if rel.contains('\\') {
        Some("backslash")
    } else if rel.chars().any(char::is_control) {
        Some("control character")
    } else if drive {
        Some("drive letter")
    } else if rel
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        Some("empty, `.` or `..` segment")
    } else {
        None
    }
}

#[test]
fn when_keys_are_hostile_then_only_safe_relative_paths_are_accepted() {
    let layout = StagingLayout::new("1637e3f6-5d2c-4d52-9a41-3f1b2c3d4e5f", "req-1").unwrap();
    support::run(
        "keys_relative_path",
        support::cases(support::DEFAULT_CASES, u32::MAX),
        key_under(PREFIX),
        |key| {
            let spec = key
                .strip_prefix(PREFIX)
                .map_or(Some("outside the prefix"), spec_violation);
            match relative_path(PREFIX, &key) {
                Ok(rel) => {
                    support::tally("accepted");
                    prop_assert!(spec.is_none(), "accepted although {:?}: {:?}", spec, key);
                    prop_assert_eq!(format!("{PREFIX}{rel}"), key.clone());
                    prop_assert!(check_relative_path(rel).is_ok());
                    match layout.staged_key(rel) {
                        Ok(staged) => {
                            prop_assert!(staged.len() <= MAX_KEY_BYTES);
                            prop_assert_eq!(staged, format!("{}{rel}", layout.prefix()));
                        }
                        Err(err) => {
                            prop_assert_eq!(err.error_type(), "ValidationError");
                            prop_assert!(support::quotes(&err.to_string(), rel), "{}", err);
                            prop_assert!(layout.prefix().len() + rel.len() > MAX_KEY_BYTES);
                        }
                    }
                }
                Err(err) => {
                    support::tally("refused");
                    prop_assert_eq!(err.error_type(), "ValidationError");
                    prop_assert!(
                        support::quotes(&err.to_string(), &key),
                        "the refusal does not name the key: {}",
                        err
                    );
                }
            }
            Ok(())
        },
    );
}

#[test]
fn when_store_prefixes_ids_and_names_are_hostile_then_keys_stay_inside_their_place() {
    let input = (
        prop_oneof![key_under(PREFIX), hostile_string()],
        prop_oneof![3 => "[a-zA-Z0-9_-]{1,130}", 1 => hostile_string()],
        prop_oneof![3 => "[a-zA-Z0-9_-]{1,130}", 1 => hostile_string()],
    );
    support::run(
        "keys_prefix_layout_type",
        support::cases(support::DEFAULT_CASES, u32::MAX),
        input,
        |(raw, ws, req)| {
            match store_prefix(&raw) {
                Ok(p) => {
                    support::tally("prefix_accepted");
                    prop_assert!(p.ends_with('/') && p.starts_with(raw.as_str()));
                    prop_assert!(!p.starts_with('/') && !p.contains('\\'));
                    prop_assert!(!p.chars().any(char::is_control));
                    prop_assert!(!p.split('/').any(|s| s == ".."), "{:?}", p);
                    prop_assert_eq!(store_prefix(&p), Ok(p.clone()), "not idempotent");
                }
                Err(err) => {
                    prop_assert_eq!(err.error_type(), "ValidationError");
                    prop_assert!(support::quotes(&err.to_string(), &raw), "{}", err);
                }
            }
            let is_id = |s: &str| {
                !s.is_empty()
                    && s.len() <= 128
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            };
            match (StagingLayout::new(&ws, &req), archive_key(&ws, &req)) {
                (Ok(layout), Ok(archive)) => {
                    support::tally("layout_accepted");
                    prop_assert!(is_id(&ws) && is_id(&req), "{:?} {:?}", ws, req);
                    prop_assert_eq!(layout.prefix(), format!("{ws}/{req}/"));
                    prop_assert_eq!(layout.manifest_key(), format!(".manifests/{ws}/{req}.json"));
                    prop_assert_eq!(
                        archive,
                        format!("approved_egress/{ws}/{req}/egress_data.zip")
                    );
                }
                (Err(a), Err(b)) => {
                    prop_assert!(!is_id(&ws) || !is_id(&req));
                    for err in [a, b] {
                        prop_assert_eq!(err.error_type(), "ValidationError");
                        let msg = err.to_string();
                        prop_assert!(
                            msg.contains("`workspace_id`") || msg.contains("`egress_request_id`"),
                            "{}",
                            msg
                        );
                    }
                }
                (a, b) => prop_assert!(false, "layout {:?} and archive key {:?} disagree", a, b),
            }
            let t = file_type(&raw);
            prop_assert!(
                t == NO_EXTENSION
                    || (!t.is_empty()
                        && !t.contains(['/', '.', '\\'])
                        && !t.chars().any(|c| c.is_control() || c.is_whitespace())),
                "file type {:?} of {:?}",
                t,
                raw
            );
            Ok(())
        },
    );
}
