//! Findings, per-file and per-request reports, and the bounded summary stored on the request.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use std::collections::BTreeSet;

use super::acro::{self, AcroOutput};
use super::policy::{Mode, Policy};
use super::rules::{self, Rule};
use super::Severity;

/// Locations kept per rule and file: enough to find the cells, bounded whatever the file.
pub const MAX_LOCATIONS: usize = 5;

/// Where a finding is: line (or table row) and column (byte column, or field number), from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// Line, or row of a table (the header is row 1).
    pub line: u64,
    /// Byte column in the line, or field number in the row.
    pub column: u64,
}

/// One rule's findings in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable rule id ([`rules`]).
    pub rule: String,
    /// Severity from the policy.
    pub severity: Severity,
    /// Plain English: what the rule found.
    pub message: String,
    /// How many times it was found.
    pub count: u64,
    /// The first locations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<Location>,
    /// The shape of the first value, never the value (`### ### ####`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<String>,
    /// Extra detail that is not personal data (a threshold, column names, entry counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Collects one file's findings, merged per rule.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    by_rule: BTreeMap<&'static str, Finding>,
}

impl Findings {
    /// Records `count` occurrences of `rule`.
    pub(crate) fn add(
        &mut self,
        rule: Rule,
        severity: Severity,
        count: u64,
        location: Option<Location>,
        sample: Option<String>,
    ) {
        let f = self.by_rule.entry(rule.id).or_insert_with(|| Finding {
            rule: rule.id.to_string(),
            severity,
            message: rule.message.to_string(),
            count: 0,
            locations: Vec::new(),
            sample: None,
            detail: None,
        });
        f.count = f.count.saturating_add(count);
        if let Some(loc) = location {
            if f.locations.len() < MAX_LOCATIONS {
                f.locations.push(loc);
            }
        }
        if f.sample.is_none() {
            f.sample = sample;
        }
    }

    /// Sets the detail of `rule`'s finding (which must have been added).
    pub(crate) fn detail(&mut self, rule: Rule, detail: String) {
        if let Some(f) = self.by_rule.get_mut(rule.id) {
            f.detail = Some(detail);
        }
    }

    pub(crate) fn has(&self, rule: Rule) -> bool {
        self.by_rule.contains_key(rule.id)
    }

    pub(crate) fn into_vec(self) -> Vec<Finding> {
        self.by_rule.into_values().collect()
    }
}

/// The worst severity of `findings` (pass when none).
pub fn verdict_of(findings: &[Finding]) -> Severity {
    findings
        .iter()
        .map(|f| f.severity)
        .max()
        .unwrap_or(Severity::Pass)
}

/// One checked file (or archive entry, whose path is `archive.zip!/entry`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileReport {
    /// Path relative to the submission.
    pub path: String,
    /// Bytes read.
    pub bytes: u64,
    /// What the content is, from its magic bytes (`text`, `application/zip`...).
    pub detected_type: String,
    /// The worst finding.
    pub verdict: Severity,
    /// The findings, one per rule.
    #[serde(default)]
    pub findings: Vec<Finding>,
}

/// Files per verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VerdictCounts {
    /// Files without findings that matter.
    pub pass: u64,
    /// Files for a reviewer's look.
    pub review: u64,
    /// Files that must not leave.
    pub block: u64,
}

/// The thresholds the report was made with, stated so a reader knows what "small" meant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesApplied {
    /// Policy version.
    pub policy_version: String,
    /// `advise` or `enforce`.
    pub mode: Mode,
    /// Small-count threshold (counts above 0 and below it).
    pub small_count_threshold: u64,
    /// Whether zeros were flagged.
    pub flag_zeros: bool,
    /// Per-file limit in bytes.
    pub max_file_bytes: u64,
    /// Per-request limit in bytes.
    pub max_request_bytes: u64,
    /// Every rule id checked.
    pub rules: Vec<String>,
}

/// The report of a request: every file, the request-level findings, the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Policy version (also in `rules_applied`), for a quick look.
    pub policy_version: String,
    /// The worst verdict of any file or request-level finding.
    pub verdict: Severity,
    /// Files (and archive entries) checked.
    pub files_checked: u64,
    /// Bytes read.
    pub bytes_checked: u64,
    /// Files per verdict.
    pub files_by_verdict: VerdictCounts,
    /// Occurrences per rule id, all files together.
    pub counts_by_rule: BTreeMap<String, u64>,
    /// Findings about the request as a whole (its total size).
    #[serde(default)]
    pub request_findings: Vec<Finding>,
    /// What was applied.
    pub rules_applied: RulesApplied,
    /// Each file's report.
    pub files: Vec<FileReport>,
    /// The outputs of ACRO's `results.json` files in the submission: ACRO's status of each and
    /// the researcher's exceptions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acro_outputs: Vec<AcroOutput>,
}

/// A file among the worst, for notifications and the request item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorstFile {
    /// Its path.
    pub path: String,
    /// Its verdict.
    pub verdict: Severity,
    /// The rules that fired, worst first.
    pub rules: Vec<String>,
}

/// How many worst files a summary names.
pub const MAX_WORST_FILES: usize = 5;

/// The bounded summary stored on the request and shown in notifications and the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The verdict.
    pub verdict: Severity,
    /// Policy version.
    pub policy_version: String,
    /// `advise` or `enforce`.
    pub mode: Mode,
    /// Files checked.
    pub files_checked: u64,
    /// Files per verdict.
    pub files_by_verdict: VerdictCounts,
    /// Occurrences per rule.
    pub counts_by_rule: BTreeMap<String, u64>,
    /// The worst files (block first), at most [`MAX_WORST_FILES`].
    pub worst_files: Vec<WorstFile>,
}

fn shorten(path: &str) -> String {
    const MAX: usize = 200;
    if path.chars().count() <= MAX {
        path.to_string()
    } else {
        let tail: String = path
            .chars()
            .rev()
            .take(MAX)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}

impl Report {
    /// The bounded summary of this report.
    pub fn summary(&self) -> Summary {
        let mut worst: Vec<&FileReport> = self
            .files
            .iter()
            .filter(|f| f.verdict > Severity::Pass)
            .collect();
        // Block before review, then the most findings first; stable for equal files.
        worst.sort_by(|a, b| {
            b.verdict.cmp(&a.verdict).then_with(|| {
                let n = |f: &FileReport| f.findings.iter().map(|x| x.count).sum::<u64>();
                n(b).cmp(&n(a))
            })
        });
        Summary {
            verdict: self.verdict,
            policy_version: self.policy_version.clone(),
            mode: self.rules_applied.mode,
            files_checked: self.files_checked,
            files_by_verdict: self.files_by_verdict,
            counts_by_rule: self.counts_by_rule.clone(),
            worst_files: worst
                .into_iter()
                .take(MAX_WORST_FILES)
                .map(|f| {
                    let mut fs: Vec<&Finding> = f
                        .findings
                        .iter()
                        .filter(|x| x.severity > Severity::Pass)
                        .collect();
                    fs.sort_by_key(|x| std::cmp::Reverse(x.severity));
                    WorstFile {
                        path: shorten(&f.path),
                        verdict: f.verdict,
                        rules: fs.iter().map(|x| x.rule.clone()).collect(),
                    }
                })
                .collect(),
        }
    }

    /// The report as text, as the CLI prints it.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "Output checks: {} (policy {}, mode {})\n",
            self.verdict.as_str().to_uppercase(),
            self.policy_version,
            self.rules_applied.mode.as_str()
        ));
        out.push_str(&format!(
            "{} file(s), {} bytes: {} pass, {} review, {} block. Small counts: above 0 and below {}{}.\n",
            self.files_checked,
            self.bytes_checked,
            self.files_by_verdict.pass,
            self.files_by_verdict.review,
            self.files_by_verdict.block,
            self.rules_applied.small_count_threshold,
            if self.rules_applied.flag_zeros { ", zeros flagged" } else { "" },
        ));
        let finding_lines = |out: &mut String, findings: &[Finding]| {
            for f in findings {
                out.push_str(&format!(
                    "  [{}] {} x{}: {}",
                    f.severity, f.rule, f.count, f.message
                ));
                if !f.locations.is_empty() {
                    let locs: Vec<String> = f
                        .locations
                        .iter()
                        .map(|l| format!("{}:{}", l.line, l.column))
                        .collect();
                    out.push_str(&format!(" at {}", locs.join(", ")));
                }
                if let Some(s) = &f.sample {
                    out.push_str(&format!(" (shape {s})"));
                }
                if let Some(d) = &f.detail {
                    out.push_str(&format!(" ({d})"));
                }
                out.push('\n');
            }
        };
        if !self.request_findings.is_empty() {
            out.push_str("Request:\n");
            finding_lines(&mut out, &self.request_findings);
        }
        for file in &self.files {
            out.push_str(&format!(
                "{} {} ({}, {} bytes)\n",
                file.verdict.as_str().to_uppercase(),
                file.path,
                file.detected_type,
                file.bytes
            ));
            finding_lines(&mut out, &file.findings);
        }
        if !self.acro_outputs.is_empty() {
            out.push_str("ACRO outputs:\n");
            for o in &self.acro_outputs {
                out.push_str(&format!(
                    "  {} {} ({}): {}",
                    o.status.to_uppercase(),
                    o.output,
                    o.output_type,
                    o.files.join(", ")
                ));
                if let Some(e) = &o.exception {
                    out.push_str(&format!("; exception requested: {e}"));
                }
                out.push('\n');
            }
        }
        out
    }
}

impl Summary {
    /// One line for a notification or the request item: verdict, counts by rule and the worst
    /// files. At most about 1 KiB whatever the request.
    pub fn line(&self) -> String {
        let counts: Vec<String> = self
            .counts_by_rule
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        let worst: Vec<String> = self
            .worst_files
            .iter()
            .map(|w| {
                format!(
                    "{} ({}: {})",
                    shorten_short(&w.path),
                    w.verdict,
                    w.rules.join(" ")
                )
            })
            .collect();
        let mut line = format!(
            "{} ({} file(s): {} pass, {} review, {} block; policy {}, {})",
            self.verdict.as_str().to_uppercase(),
            self.files_checked,
            self.files_by_verdict.pass,
            self.files_by_verdict.review,
            self.files_by_verdict.block,
            self.policy_version,
            self.mode.as_str()
        );
        if !counts.is_empty() {
            line.push_str(&format!("; findings: {}", counts.join(", ")));
        }
        if !worst.is_empty() {
            line.push_str(&format!("; worst files: {}", worst.join("; ")));
        }
        line
    }
}

fn shorten_short(path: &str) -> String {
    const MAX: usize = 80;
    if path.chars().count() <= MAX {
        path.to_string()
    } else {
        let n = path.chars().count();
        format!("…{}", path.chars().skip(n - MAX).collect::<String>())
    }
}

/// The staging bucket's malware scanner's result for one file (GuardDuty Malware Protection
/// for S3's `GuardDutyMalwareScanStatus` tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MalwareScan {
    /// `NO_THREATS_FOUND`.
    NoThreats,
    /// `THREATS_FOUND`.
    ThreatsFound,
    /// No result before the wait ended.
    NotFinished,
    /// A scan that could not be made (`UNSUPPORTED`, `ACCESS_DENIED`, `FAILED`, or unknown).
    NotScanned(String),
}

impl MalwareScan {
    /// The result a tag value stands for.
    pub fn from_tag(value: &str) -> Self {
        match value {
            "NO_THREATS_FOUND" => Self::NoThreats,
            "THREATS_FOUND" => Self::ThreatsFound,
            other => Self::NotScanned(other.chars().take(64).collect()),
        }
    }
}

/// Gathers the file reports of one request and makes its [`Report`].
#[derive(Debug)]
pub struct RequestChecker<'p> {
    policy: &'p Policy,
    files: Vec<FileReport>,
    top_level_bytes: u64,
    /// Submitted (top-level) paths.
    submitted: BTreeSet<String>,
    /// SHA-256 (hex) of submitted files, for ACRO's checksums.
    digests: BTreeMap<String, String>,
    /// ACRO files' contents (results and checksums), bounded.
    acro_contents: BTreeMap<String, Vec<u8>>,
    acro_bytes: u64,
    /// Malware scan results by path.
    scans: BTreeMap<String, MalwareScan>,
}

/// Most bytes of ACRO files kept for one request.
const MAX_ACRO_BYTES: u64 = 4 * acro::MAX_ACRO_FILE_BYTES;

/// Merges `extra` findings into `file`'s and recomputes its verdict.
fn attach(file: &mut FileReport, extra: Vec<Finding>) {
    for f in extra {
        match file.findings.iter_mut().find(|x| x.rule == f.rule) {
            Some(x) => x.count = x.count.saturating_add(f.count),
            None => file.findings.push(f),
        }
    }
    file.findings.sort_by(|a, b| a.rule.cmp(&b.rule));
    file.verdict = verdict_of(&file.findings);
}

impl<'p> RequestChecker<'p> {
    /// An empty request under `policy`.
    pub fn new(policy: &'p Policy) -> Self {
        Self {
            policy,
            files: Vec::new(),
            top_level_bytes: 0,
            submitted: BTreeSet::new(),
            digests: BTreeMap::new(),
            acro_contents: BTreeMap::new(),
            acro_bytes: 0,
            scans: BTreeMap::new(),
        }
    }

    /// Adds the reports of one submitted file (the file itself first, then its archive entries).
    pub fn add(&mut self, reports: Vec<FileReport>) {
        if let Some(first) = reports.first() {
            self.top_level_bytes = self.top_level_bytes.saturating_add(first.bytes);
            self.submitted.insert(first.path.clone());
        }
        self.files.extend(reports);
    }

    /// Records a submitted file's SHA-256 (lower-case hex), against which ACRO's checksums
    /// are verified.
    pub fn add_digest(&mut self, path: &str, sha256_hex: &str) {
        self.digests
            .insert(path.to_string(), sha256_hex.to_ascii_lowercase());
    }

    /// Records the content of a file [`acro::wanted`] names (ACRO's results and checksums);
    /// content past [`acro::MAX_ACRO_FILE_BYTES`] (or the request's bound) is not kept.
    pub fn add_acro_content(&mut self, path: &str, content: Vec<u8>) {
        let len = content.len() as u64;
        if acro::wanted(path)
            && len <= acro::MAX_ACRO_FILE_BYTES
            && self.acro_bytes.saturating_add(len) <= MAX_ACRO_BYTES
        {
            self.acro_bytes += len;
            self.acro_contents.insert(path.to_string(), content);
        }
    }

    /// Records the malware scanner's result for a submitted file.
    pub fn add_malware_scan(&mut self, path: &str, scan: MalwareScan) {
        self.scans.insert(path.to_string(), scan);
    }

    fn apply_malware_scans(&mut self) {
        let m = &self.policy.malware;
        for (path, scan) in std::mem::take(&mut self.scans) {
            let mut f = Findings::default();
            match scan {
                MalwareScan::NoThreats => continue,
                MalwareScan::ThreatsFound => {
                    f.add(rules::MALWARE_SCAN, m.threats_found, 1, None, None);
                    f.detail(
                        rules::MALWARE_SCAN,
                        "GuardDutyMalwareScanStatus THREATS_FOUND".into(),
                    );
                }
                MalwareScan::NotFinished => {
                    f.add(
                        rules::MALWARE_SCAN_PENDING,
                        m.scan_not_finished,
                        1,
                        None,
                        None,
                    );
                    f.detail(rules::MALWARE_SCAN_PENDING, "scan not finished".into());
                }
                MalwareScan::NotScanned(status) => {
                    f.add(
                        rules::MALWARE_SCAN_PENDING,
                        m.scan_not_finished,
                        1,
                        None,
                        None,
                    );
                    f.detail(rules::MALWARE_SCAN_PENDING, format!("scan status {status}"));
                }
            }
            if let Some(file) = self.files.iter_mut().find(|x| x.path == path) {
                attach(file, f.into_vec());
            }
        }
    }

    fn apply_acro(&mut self) -> Vec<AcroOutput> {
        let mut outputs = Vec::new();
        let results: Vec<String> = self
            .acro_contents
            .keys()
            .filter(|k| k.rsplit('/').next() == Some(acro::RESULTS_FILE))
            .cloned()
            .collect();
        for path in results {
            let Some(content) = self.acro_contents.get(&path) else {
                continue;
            };
            let Some(check) = acro::check(
                self.policy,
                &path,
                content,
                &self.acro_contents,
                &self.digests,
                &self.submitted,
            ) else {
                continue;
            };
            let p = &self.policy.acro;
            for changed in &check.mismatched {
                let mut f = Findings::default();
                f.add(
                    rules::ACRO_CHECKSUM_MISMATCH,
                    p.checksum_mismatch,
                    1,
                    None,
                    None,
                );
                f.detail(
                    rules::ACRO_CHECKSUM_MISMATCH,
                    format!("ACRO's results: {path}"),
                );
                if let Some(file) = self.files.iter_mut().find(|x| &x.path == changed) {
                    attach(file, f.into_vec());
                }
            }
            if let Some(file) = self.files.iter_mut().find(|x| x.path == path) {
                attach(file, check.on_results.into_vec());
            }
            outputs.extend(check.outputs);
        }
        outputs
    }

    /// The report.
    pub fn finish(mut self) -> Report {
        self.apply_malware_scans();
        let acro_outputs = self.apply_acro();
        let p = self.policy;
        let mut request = Findings::default();
        if self.top_level_bytes > p.size.max_request_bytes {
            request.add(rules::SIZE_REQUEST, p.size.severity, 1, None, None);
            request.detail(
                rules::SIZE_REQUEST,
                format!(
                    "{} bytes, limit {}",
                    self.top_level_bytes, p.size.max_request_bytes
                ),
            );
        }
        let request_findings = request.into_vec();
        let mut counts_by_rule = BTreeMap::new();
        let mut by_verdict = VerdictCounts::default();
        for f in &self.files {
            match f.verdict {
                Severity::Pass => by_verdict.pass += 1,
                Severity::Review => by_verdict.review += 1,
                Severity::Block => by_verdict.block += 1,
            }
            for x in &f.findings {
                *counts_by_rule.entry(x.rule.clone()).or_insert(0u64) += x.count;
            }
        }
        for x in &request_findings {
            *counts_by_rule.entry(x.rule.clone()).or_insert(0u64) += x.count;
        }
        let verdict = self
            .files
            .iter()
            .map(|f| f.verdict)
            .chain(std::iter::once(verdict_of(&request_findings)))
            .max()
            .unwrap_or(Severity::Pass);
        Report {
            policy_version: p.version.clone(),
            verdict,
            files_checked: self.files.len() as u64,
            bytes_checked: self.top_level_bytes,
            files_by_verdict: by_verdict,
            counts_by_rule,
            request_findings,
            rules_applied: RulesApplied {
                policy_version: p.version.clone(),
                mode: p.mode,
                small_count_threshold: p.tables.small_count_threshold,
                flag_zeros: p.tables.flag_zeros,
                max_file_bytes: p.size.max_file_bytes,
                max_request_bytes: p.size.max_request_bytes,
                rules: rules::ALL.iter().map(|r| r.id.to_string()).collect(),
            },
            files: self.files,
            acro_outputs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::check_bytes;

    #[test]
    fn when_files_add_up_past_the_request_limit_then_the_request_is_flagged() {
        let mut p = Policy::default();
        p.size.max_request_bytes = 10;
        let mut r = RequestChecker::new(&p);
        r.add(check_bytes(&p, "a.txt", b"hello "));
        r.add(check_bytes(&p, "b.txt", b"world!"));
        let report = r.finish();
        assert_eq!(report.request_findings[0].rule, "size-request");
        assert_eq!(report.verdict, Severity::Review);
        let mut p = Policy::default();
        p.size.max_request_bytes = 12;
        let mut r = RequestChecker::new(&p);
        r.add(check_bytes(&p, "a.txt", b"hello "));
        r.add(check_bytes(&p, "b.txt", b"world!"));
        assert_eq!(r.finish().verdict, Severity::Pass, "exactly the limit");
    }

    #[test]
    fn when_a_report_is_summarised_then_block_files_come_first_and_the_line_is_bounded() {
        let p = Policy::default();
        let mut r = RequestChecker::new(&p);
        for i in 0..50 {
            r.add(check_bytes(
                &p,
                &format!("{}/f{i}.sh", "d".repeat(300)),
                b"#!/bin/sh\n",
            ));
        }
        r.add(check_bytes(&p, "nhs.txt", b"id 9434765919\n"));
        let report = r.finish();
        let s = report.summary();
        assert_eq!(s.worst_files.len(), MAX_WORST_FILES);
        assert_eq!(s.worst_files[0].path, "nhs.txt");
        assert_eq!(s.verdict, Severity::Block);
        assert!(s.line().len() < 1_500, "{}", s.line().len());
        assert!(s.line().starts_with("BLOCK (51 file(s)"), "{}", s.line());
        assert!(!s.line().contains("9434765919"));
    }
}
