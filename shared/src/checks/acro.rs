//! ACRO's outputs: when a submission holds the `results.json` that ACRO's `finalise()` writes
//! (`{"version", "results": {"<output>": {"status", "type", "files": [{"name", "sdc"}],
//! "exception", "comments", "summary", ...}}}`) with the `checksums/<file>.txt` files it writes
//! beside it (the SHA-256 of each file of the folder, in hex), the checks verify those checksums
//! against the submitted files and import each output's ACRO status and the researcher's
//! exception into the report, so an ACRO user's checked work is shown as such, not redone.
//!
//! A file that changed after ACRO checked it (checksum mismatch) is flagged on that file; a
//! file ACRO names but the submission lacks, an output file without a checksum, and outputs ACRO
//! did not pass are flagged on `results.json`. A `files` entry may also carry its own `sha256`
//! member, used when there is no checksum file.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::policy::Policy;
use super::report::Findings;
use super::rules;
use super::Severity;

/// ACRO's results file name.
pub const RESULTS_FILE: &str = "results.json";
/// Largest ACRO file (results or checksum) read for the check; a larger one is not imported.
pub const MAX_ACRO_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// Outputs imported from one results file.
pub const MAX_OUTPUTS: usize = 1_000;
/// Characters kept of an exception, a comment or a summary.
const MAX_TEXT: usize = 2_000;
/// Paths named in a finding's detail.
const MAX_NAMED: usize = 5;

/// One ACRO output, as imported into the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcroOutput {
    /// The `results.json` it comes from.
    pub results_file: String,
    /// ACRO's id of the output (`output_0`...).
    pub output: String,
    /// ACRO's status: `pass`, `fail` or `review`.
    pub status: String,
    /// ACRO's type of output (`table`, `regression`, `custom`...).
    #[serde(default)]
    pub output_type: String,
    /// Its files, relative to the submission.
    #[serde(default)]
    pub files: Vec<String>,
    /// ACRO's summary of its check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The researcher's reason an exception should be granted (for a `fail` or `review`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
    /// The researcher's comments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comments: Vec<String>,
}

/// Whether the ACRO check needs the content of `path`: a `results.json` or a
/// `checksums/<name>.txt`.
pub fn wanted(path: &str) -> bool {
    let mut segments = path.rsplit('/');
    let name = segments.next().unwrap_or(path);
    name == RESULTS_FILE || (name.ends_with(".txt") && segments.next() == Some("checksums"))
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("")
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn text(v: &Value) -> Option<String> {
    let s = v.as_str()?.trim();
    (!s.is_empty()).then(|| s.chars().take(MAX_TEXT).collect())
}

fn named(paths: &[String]) -> String {
    let mut out = paths
        .iter()
        .take(MAX_NAMED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > MAX_NAMED {
        out.push_str(&format!(" and {} more", paths.len() - MAX_NAMED));
    }
    out
}

/// What one results file's check found.
#[derive(Debug, Default)]
pub(crate) struct AcroCheck {
    /// Findings on the results file.
    pub(crate) on_results: Findings,
    /// Submitted files whose content differs from ACRO's checksum.
    pub(crate) mismatched: Vec<String>,
    /// The outputs imported.
    pub(crate) outputs: Vec<AcroOutput>,
}

/// Checks the ACRO folder of `results_path`. `contents` holds the ACRO files read (results and
/// checksums), `digests` the submitted files' SHA-256 (hex), `submitted` every submitted path.
/// `None` when the file is not ACRO's (no `results` object).
pub(crate) fn check(
    policy: &Policy,
    results_path: &str,
    results: &[u8],
    contents: &BTreeMap<String, Vec<u8>>,
    digests: &BTreeMap<String, String>,
    submitted: &BTreeSet<String>,
) -> Option<AcroCheck> {
    let dir = parent(results_path);
    let checksums_dir = join(dir, "checksums");
    let has_checksums = contents
        .keys()
        .any(|k| parent(k) == checksums_dir && k.ends_with(".txt"));
    let mut out = AcroCheck::default();
    let a = &policy.acro;
    let value: Option<Value> = serde_json::from_slice(results).ok();
    let outputs = match value.as_ref().and_then(|v| v.get("results")) {
        Some(Value::Object(outputs)) => outputs,
        Some(_) => {
            unreadable(&mut out, "its results member is not an object");
            return Some(out);
        }
        None if has_checksums => {
            unreadable(&mut out, "not JSON, or no results member");
            return Some(out);
        }
        None => return None,
    };
    // The checksum ACRO recorded for a file of the folder, by its name.
    let recorded = |name: &str| -> Option<String> {
        let raw = contents.get(&join(&checksums_dir, &format!("{name}.txt")))?;
        let hex = std::str::from_utf8(raw).ok()?.trim().to_ascii_lowercase();
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
    };
    let mut verified = BTreeSet::new();
    let mut missing = Vec::new();
    let mut unverified = Vec::new();
    let mut checked = BTreeSet::new();
    let mut verify = |path: String,
                      expected: Option<String>,
                      out: &mut AcroCheck,
                      missing: &mut Vec<String>,
                      unverified: &mut Vec<String>| {
        if !checked.insert(path.clone()) {
            return;
        }
        if !submitted.contains(&path) {
            missing.push(path);
            return;
        }
        match (expected, digests.get(&path)) {
            (Some(want), Some(got)) if want == got.to_ascii_lowercase() => {
                verified.insert(path);
            }
            (Some(_), Some(_)) => out.mismatched.push(path),
            _ => unverified.push(path),
        }
    };
    let (mut failed, mut review, mut excepted) = (0u64, 0u64, 0u64);
    for (id, output) in outputs.iter().take(MAX_OUTPUTS) {
        let status = output
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_ascii_lowercase();
        let mut files = Vec::new();
        for f in output
            .get("files")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (name, own) = match f {
                Value::String(name) => (name.as_str(), None),
                _ => match f.get("name").and_then(Value::as_str) {
                    Some(name) => (
                        name,
                        f.get("sha256")
                            .and_then(Value::as_str)
                            .map(str::to_ascii_lowercase),
                    ),
                    None => continue,
                },
            };
            // ACRO names files by their name in the output folder.
            let name = name.rsplit(['/', '\\']).next().unwrap_or(name);
            let path = join(dir, name);
            files.push(path.clone());
            verify(
                path,
                recorded(name).or(own),
                &mut out,
                &mut missing,
                &mut unverified,
            );
        }
        let exception = output.get("exception").and_then(text);
        match status.as_str() {
            "pass" => {}
            "fail" => failed += 1,
            _ => review += 1,
        }
        if status != "pass" && exception.is_some() {
            excepted += 1;
        }
        let comments = match output.get("comments") {
            Some(Value::Array(items)) => items.iter().filter_map(text).take(20).collect(),
            Some(v) => text(v).into_iter().collect(),
            None => Vec::new(),
        };
        out.outputs.push(AcroOutput {
            results_file: results_path.to_string(),
            output: id.chars().take(200).collect(),
            status,
            output_type: output
                .get("type")
                .and_then(text)
                .unwrap_or_default()
                .chars()
                .take(100)
                .collect(),
            files,
            summary: output.get("summary").and_then(text),
            exception,
            comments,
        });
    }
    // Every checksum ACRO wrote, also for files no output names (results.json itself).
    for key in contents.keys() {
        if parent(key) != checksums_dir {
            continue;
        }
        if let Some(name) = key.rsplit('/').next().and_then(|n| n.strip_suffix(".txt")) {
            verify(
                join(dir, name),
                recorded(name),
                &mut out,
                &mut missing,
                &mut unverified,
            );
        }
    }
    if !missing.is_empty() {
        out.on_results.add(
            rules::ACRO_FILE_MISSING,
            a.file_missing,
            missing.len() as u64,
            None,
            None,
        );
        out.on_results.detail(
            rules::ACRO_FILE_MISSING,
            format!("not submitted: {}", named(&missing)),
        );
    }
    if !unverified.is_empty() {
        out.on_results.add(
            rules::ACRO_UNVERIFIED,
            a.unverified,
            unverified.len() as u64,
            None,
            None,
        );
        out.on_results.detail(
            rules::ACRO_UNVERIFIED,
            format!("no checksum: {}", named(&unverified)),
        );
    }
    if failed + review > 0 {
        out.on_results.add(
            rules::ACRO_OUTPUT_STATUS,
            a.output_not_passed,
            failed + review,
            None,
            None,
        );
        out.on_results.detail(
            rules::ACRO_OUTPUT_STATUS,
            format!("{failed} fail, {review} review; {excepted} with the researcher's exception"),
        );
    }
    if !out.mismatched.is_empty() {
        out.on_results.add(
            rules::ACRO_CHECKSUM_MISMATCH,
            a.checksum_mismatch,
            out.mismatched.len() as u64,
            None,
            None,
        );
        out.on_results.detail(
            rules::ACRO_CHECKSUM_MISMATCH,
            format!("changed since ACRO: {}", named(&out.mismatched)),
        );
    }
    out.on_results.add(
        rules::ACRO_VERIFIED,
        Severity::Pass,
        verified.len() as u64,
        None,
        None,
    );
    out.on_results.detail(
        rules::ACRO_VERIFIED,
        format!(
            "{} output(s) imported, {} file(s) verified",
            out.outputs.len(),
            verified.len()
        ),
    );
    Some(out)
}

fn unreadable(out: &mut AcroCheck, why: &str) {
    out.on_results
        .add(rules::ACRO_UNREADABLE, Severity::Review, 1, None, None);
    out.on_results
        .detail(rules::ACRO_UNREADABLE, why.to_string());
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::checks::{check_bytes, Report, RequestChecker};

    fn hex(data: &[u8]) -> String {
        Sha256::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// An ACRO output folder `acro/` as `finalise()` writes it: each output's CSV, results.json
    /// and `checksums/<name>.txt` for every file. `tamper` changes a file after the checksums.
    fn submission(results: &str, files: &[(&str, &[u8])], tamper: Option<&str>) -> Report {
        let policy = Policy::default();
        let mut all: Vec<(String, Vec<u8>)> = files
            .iter()
            .map(|(n, d)| (format!("acro/{n}"), d.to_vec()))
            .collect();
        all.push(("acro/results.json".into(), results.as_bytes().to_vec()));
        let sums: Vec<(String, Vec<u8>)> = all
            .iter()
            .map(|(p, d)| {
                let name = p.rsplit('/').next().unwrap();
                (format!("acro/checksums/{name}.txt"), hex(d).into_bytes())
            })
            .collect();
        all.extend(sums);
        if let Some(t) = tamper {
            let f = all.iter_mut().find(|(p, _)| p.ends_with(t)).unwrap();
            f.1.extend_from_slice(b"edited,1\n");
        }
        let mut r = RequestChecker::new(&policy);
        for (path, data) in &all {
            r.add(check_bytes(&policy, path, data));
            r.add_digest(path, &hex(data));
            if wanted(path) {
                r.add_acro_content(path, data.clone());
            }
        }
        r.finish()
    }

    const RESULTS: &str = r#"{"version": "0.4.8", "results": {
        "output_0": {"uid": "output_0", "status": "pass", "type": "table",
            "files": [{"name": "output_0_0.csv", "sdc": {}}], "exception": "",
            "comments": [], "summary": "pass"},
        "output_1": {"uid": "output_1", "status": "fail", "type": "table",
            "files": [{"name": "output_1_0.csv", "sdc": {}}],
            "exception": "Cells below 10 are structural: the ward has 3 beds.",
            "comments": ["suppressed in the paper"], "summary": "fail; threshold: 2 cells suppressed"}
    }}"#;

    fn file<'a>(r: &'a Report, path: &str) -> &'a crate::checks::FileReport {
        r.files.iter().find(|f| f.path == path).unwrap()
    }

    #[test]
    fn when_acro_checksums_match_then_the_outputs_are_imported_with_status_and_exception() {
        let r = submission(
            RESULTS,
            &[
                ("output_0_0.csv", b"ward,count\na,120\n"),
                ("output_1_0.csv", b"ward,count\nb,3\n"),
            ],
            None,
        );
        assert_eq!(r.acro_outputs.len(), 2);
        let failed = &r.acro_outputs[1];
        assert_eq!(
            (failed.output.as_str(), failed.status.as_str()),
            ("output_1", "fail")
        );
        assert_eq!(failed.files, ["acro/output_1_0.csv"]);
        assert!(failed.exception.as_deref().unwrap().contains("structural"));
        assert_eq!(
            r.acro_outputs[0].exception, None,
            "an empty exception is none"
        );
        let results = file(&r, "acro/results.json");
        let rules: Vec<(&str, Severity, u64)> = results
            .findings
            .iter()
            .map(|f| (f.rule.as_str(), f.severity, f.count))
            .collect();
        // 2 outputs + results.json itself verified; ACRO's fail is for a reviewer.
        assert_eq!(
            rules,
            [
                ("acro-output-status", Severity::Review, 1),
                ("acro-verified", Severity::Pass, 3)
            ]
        );
        assert!(r
            .to_text()
            .contains("FAIL output_1 (table): acro/output_1_0.csv; exception requested"));
        let back: Report = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn when_a_file_changed_after_acro_then_it_is_blocked_on_that_file() {
        let r = submission(
            RESULTS,
            &[
                ("output_0_0.csv", b"ward,count\na,120\n"),
                ("output_1_0.csv", b"ward,count\nb,30\n"),
            ],
            Some("output_0_0.csv"),
        );
        let changed = file(&r, "acro/output_0_0.csv");
        assert_eq!(changed.verdict, Severity::Block);
        assert!(changed
            .findings
            .iter()
            .any(|f| f.rule == "acro-checksum-mismatch"));
        assert_eq!(r.verdict, Severity::Block);
        let results = file(&r, "acro/results.json");
        let mismatch = results
            .findings
            .iter()
            .find(|f| f.rule == "acro-checksum-mismatch")
            .unwrap();
        assert_eq!(
            mismatch.detail.as_deref(),
            Some("changed since ACRO: acro/output_0_0.csv")
        );
        assert!(file(&r, "acro/output_1_0.csv")
            .findings
            .iter()
            .all(|f| !f.rule.starts_with("acro")));
    }

    #[test]
    fn when_a_named_file_is_missing_or_has_no_checksum_then_it_is_for_review() {
        let policy = Policy::default();
        let results = RESULTS.as_bytes().to_vec();
        let mut r = RequestChecker::new(&policy);
        // Only output_1's file, and no checksums at all.
        for (path, data) in [
            ("acro/results.json", results.as_slice()),
            ("acro/output_1_0.csv", b"ward,count\nb,30\n".as_slice()),
        ] {
            r.add(check_bytes(&policy, path, data));
            r.add_digest(path, &hex(data));
            r.add_acro_content(path, data.to_vec());
        }
        let report = r.finish();
        let f = &file(&report, "acro/results.json").findings;
        let get = |id: &str| f.iter().find(|x| x.rule == id).unwrap();
        assert_eq!(
            get("acro-file-missing").detail.as_deref(),
            Some("not submitted: acro/output_0_0.csv")
        );
        assert_eq!(get("acro-file-unverified").count, 1);
        assert_eq!(get("acro-verified").count, 0);
        assert_eq!(report.verdict, Severity::Review);
    }

    #[test]
    fn when_a_results_json_is_not_acros_then_nothing_is_imported_and_broken_acro_is_flagged() {
        let policy = Policy::default();
        let mut r = RequestChecker::new(&policy);
        let other = br#"{"accuracy": 0.9}"#;
        r.add(check_bytes(&policy, "model/results.json", other));
        r.add_acro_content("model/results.json", other.to_vec());
        let report = r.finish();
        assert!(report.acro_outputs.is_empty());
        assert!(report.files[0].findings.is_empty());

        // Not JSON, beside ACRO's checksums: ACRO's, unreadable.
        let mut r = RequestChecker::new(&policy);
        for (path, data) in [
            ("acro/results.json", b"{not json".as_slice()),
            ("acro/checksums/results.json.txt", b"00".as_slice()),
        ] {
            r.add(check_bytes(&policy, path, data));
            r.add_acro_content(path, data.to_vec());
        }
        let report = r.finish();
        assert_eq!(report.files[0].findings[0].rule, "acro-results-unreadable");
    }

    #[test]
    fn when_paths_are_acro_files_then_they_are_wanted_and_others_not() {
        assert!(wanted("results.json"));
        assert!(wanted("a/b/results.json"));
        assert!(wanted("a/checksums/x.csv.txt"));
        assert!(!wanted("a/checksums.txt"));
        assert!(!wanted("a/my_results.json"));
    }
}
