//! `check-outputs`: the automated output checks of a staged request (issue 12).
//!
//! Reads the staging manifest and the checks `copy-to-staging` made as it staged
//! ([`StagedChecks`]: taken over for the same request, policy and bytes), streams each other
//! staged file once through the engine of [`crate::checks`] (bounded memory whatever its
//! size), verifies ACRO's checksums against the manifest's SHA-256 when ACRO's `results.json`
//! is submitted, waits (bounded) for the malware scanner's `GuardDutyMalwareScanStatus` tag on
//! every staged object when the scanner is on, writes the report (per file and overall) as
//! JSON next to the manifest, audits the verdict and returns a bounded summary for the
//! workflow, which stores it on the request, shows it to the reviewers, and in `enforce` mode
//! rejects a request a finding blocks.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::OnceLock;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use serde_json::json;

use super::readahead::{ReadAhead, Segment};
use super::{step_audit, Step};
use crate::checks::{
    self, acro, rules, FileChecker, MalwareScan, Mode, Policy, ProjectPolicies, Report,
    RequestChecker, Severity,
};
use crate::domain::keys::StagingLayout;
use crate::error::{EgressError, Result};
use crate::model::{ChecksInput, ChecksResult, Manifest, ManifestEntry};
use crate::ports::{get_bytes_if_any, AuditLog, Clock, Destination, ObjectRef, ObjectStore};

/// Who the audit trail names for this step.
pub const ACTOR: &str = "system:check-outputs";

/// Largest manifest read (the staging step writes one entry per file, ~300 bytes each).
const MAX_MANIFEST_BYTES: u64 = 256 * 1024 * 1024;
/// Longest rejection reason handed to the workflow (and the researcher's e-mail).
const MAX_REASON_CHARS: usize = 2_000;
/// The tag GuardDuty Malware Protection for S3 sets on each object it scanned.
pub const MALWARE_SCAN_TAG: &str = "GuardDutyMalwareScanStatus";
/// Time between two rounds of reading the staged objects' tags.
pub const MALWARE_POLL: Duration = Duration::from_secs(2);
/// Time between two rounds of tag reads while the content is still being checked: a long
/// check of a large request does not multiply the reads of tags that have not come.
pub const MALWARE_POLL_DURING_CONTENT: Duration = Duration::from_secs(10);
/// Tag reads in flight at once. Two requests per file (its content and its tag) against
/// staging's one copy per file, 8 at a time: the check step keeps far more round trips in
/// flight so that it costs a fraction of staging on a store that serves them in parallel.
const TAG_READS: usize = 64;
/// Staged files read ahead of the checker at once, at most (small files, each read whole):
/// a request of many small files is bound by round trips, not bytes, so they overlap.
const CHECK_READS: usize = 64;
/// Bytes read ahead of the checker, at most: a run of files is read `READ_AHEAD_BYTES / its
/// largest file` at a time (between 1 and [`CHECK_READS`]).
const READ_AHEAD_BYTES: u64 = 32 * 1024 * 1024;
/// Files up to this size are read ahead in runs of their own; up to [`READ_AHEAD_FILE_BYTES`]
/// in runs of their own too, fewer at a time. One a little larger does not slow a run of
/// tiny ones.
const SMALL_FILE_BYTES: u64 = 512 * 1024;
/// Largest file read whole ahead of the checker; larger ones are read when their turn comes,
/// one at a time, with nothing else read ahead meanwhile (no response left unread while a
/// large file takes minutes).
const READ_AHEAD_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// How a larger file is read: in ranges of 8 MiB, up to 8 requests in flight and 32 MiB
/// fetched ahead of the checker (the archive's read-ahead). One S3 response streams more
/// slowly than the checker takes bytes with its table on a second thread; S3's performance
/// guidelines advise byte-range fetches of 8-16 MB in parallel for throughput.
const LARGE_FILE_READS: ReadAhead = ReadAhead {
    bytes: READ_AHEAD_BYTES,
    requests: 8,
    range_size: 8 * 1024 * 1024,
};

/// Reads `object` of `size` bytes in ranges fetched several at once ([`LARGE_FILE_READS`])
/// and hands each chunk to `feed` in order; returns the bytes read, one more than `size` when
/// the object is larger.
pub(crate) async fn read_in_ranges<O: ObjectStore>(
    objects: &O,
    object: &ObjectRef,
    size: u64,
    mut feed: impl FnMut(&[u8]),
) -> Result<u64> {
    let segments = LARGE_FILE_READS
        .ranges(size, 0)
        .into_iter()
        .map(|(range, whole)| {
            Ok(Segment {
                entry: 0,
                object: object.clone(),
                range,
                whole,
            })
        });
    let mut fetched = pin!(LARGE_FILE_READS.fetch(objects, segments));
    let mut read = 0u64;
    while let Some(segment) = fetched.next().await {
        for chunk in segment?.chunks {
            read += chunk.len() as u64;
            feed(&chunk);
        }
    }
    Ok(read)
}

/// How a staged file is read: 0 and 1 ahead of the checker (small, middling), 2 streamed.
fn read_class(size: u64) -> u8 {
    match size {
        s if s <= SMALL_FILE_BYTES => 0,
        s if s <= READ_AHEAD_FILE_BYTES => 1,
        _ => 2,
    }
}

/// Reads in flight for a run of files whose largest is `largest` bytes.
fn reads_at_once(largest: u64) -> usize {
    let fit = READ_AHEAD_BYTES / largest.max(1);
    usize::try_from(fit)
        .unwrap_or(CHECK_READS)
        .clamp(1, CHECK_READS)
}

/// `check-outputs` with its ports.
#[derive(Debug)]
pub struct ChecksStep<O, A, C> {
    /// The staging bucket.
    pub objects: O,
    /// The audit trail.
    pub audit: A,
    /// The server clock.
    pub clock: C,
    /// The staging bucket.
    pub staging_bucket: String,
    /// Its KMS key (the report is encrypted like the manifest).
    pub staging_kms_key_arn: String,
    /// The policies (a default and per project), validated at cold start.
    pub policies: ProjectPolicies,
    /// How long to wait for the malware scanner's tags once the content is checked; `None`
    /// when the scanner is off (no `GuardDutyMalwareScanStatus` is awaited).
    pub malware_wait: Option<Duration>,
}

/// `.manifests/<ws>/<id>.checks.json`: beside the manifest, outside the request's prefix so a
/// submitted file can never collide with it.
pub fn report_key(layout: &StagingLayout) -> String {
    let manifest = layout.manifest_key();
    let stem = manifest.strip_suffix(".json").unwrap_or(manifest);
    format!("{stem}.checks.json")
}

/// `.manifests/<ws>/<id>.staged-checks.json`: the content checks `copy-to-staging` made of
/// the files it read while staging them ([`StagedChecks`]), beside the manifest.
pub fn staged_checks_key(layout: &StagingLayout) -> String {
    let manifest = layout.manifest_key();
    let stem = manifest.strip_suffix(".json").unwrap_or(manifest);
    format!("{stem}.staged-checks.json")
}

/// Files up to this size are checked by `copy-to-staging` as it stages them: it reads the
/// listed version whole, checks it and writes it with its SHA-256 (S3 verifies it), one read
/// and one write where a `CopyObject` and, in this step, a second read were. A larger one is
/// copied by S3 and read in ranges to be checked meanwhile ([`checked_while_copied`]).
pub const CHECKED_WHILE_STAGED_BYTES: u64 = READ_AHEAD_FILE_BYTES;

/// Whether `copy-to-staging` checks the file at `path` of `size` bytes as it stages it by
/// reading it whole and writing it: a small file that ACRO's rules do not need whole at the
/// end (its results and checksums).
pub fn checked_while_staged(path: &str, size: u64) -> bool {
    size <= CHECKED_WHILE_STAGED_BYTES && !acro::wanted(path)
}

/// Whether `copy-to-staging` checks the file at `path` of `size` bytes while S3 copies it
/// (a larger file, up to `single_copy` bytes: one `CopyObject` whose SHA-256 the bytes read
/// must match): read in ranges several at once, as this step would read the staged copy.
pub fn checked_while_copied(path: &str, size: u64, single_copy: u64) -> bool {
    size > CHECKED_WHILE_STAGED_BYTES && size <= single_copy && !acro::wanted(path)
}

/// A policy's fingerprint: SHA-256 of its JSON, so checks made under a policy whose rules
/// changed since (a redeploy between the two steps) are not reused even if its version
/// string did not change.
pub fn policy_fingerprint(policy: &Policy) -> String {
    use sha2::Digest;
    let json = serde_json::to_vec(policy).unwrap_or_default();
    hex::encode(sha2::Sha256::digest(json))
}

/// The content checks made while staging, for `check-outputs` to take over instead of
/// reading the files again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StagedChecks {
    /// The request.
    pub egress_request_id: String,
    /// The policy's version.
    pub policy_version: String,
    /// [`policy_fingerprint`] of the policy the files were checked under.
    pub policy_sha256: String,
    /// One entry per file checked, in path order.
    pub files: Vec<StagedFileChecks>,
}

/// One file's checks, made from the bytes whose SHA-256 is `sha256`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StagedFileChecks {
    /// Path inside the submission.
    pub path: String,
    /// SHA-256 (hex) of the bytes checked: the same as the manifest's for the file, else the
    /// checks are not taken over.
    pub sha256: String,
    /// The file's reports (the file first, then the entries of an archive).
    pub reports: Vec<checks::FileReport>,
}

impl StagedChecks {
    /// The reports to take over, by path: those made for this request, under `policy`, of
    /// the bytes the manifest records. Anything else is checked again.
    fn usable<'a>(
        &'a self,
        egress_request_id: &str,
        policy: &Policy,
        manifest: &[ManifestEntry],
    ) -> HashMap<&'a str, &'a [checks::FileReport]> {
        if self.egress_request_id != egress_request_id
            || self.policy_sha256 != policy_fingerprint(policy)
        {
            return HashMap::new();
        }
        let recorded: HashMap<&str, &str> = manifest
            .iter()
            .map(|f| (f.path.as_str(), f.sha256.as_str()))
            .collect();
        self.files
            .iter()
            .filter(|f| {
                recorded.get(f.path.as_str()) == Some(&f.sha256.as_str()) && !f.reports.is_empty()
            })
            .map(|f| (f.path.as_str(), f.reports.as_slice()))
            .collect()
    }
}

/// What the researcher is told when the checks reject the request: each blocking file and
/// the rules that blocked it, bounded.
pub fn rejection_reason(report: &Report) -> String {
    let mut out = format!(
        "Automated output checks (policy {}) blocked this request:",
        report.policy_version
    );
    let mut shown = 0;
    let blocking = report
        .files
        .iter()
        .filter(|f| f.verdict == Severity::Block)
        .map(|f| (f.path.as_str(), &f.findings))
        .chain(
            (!report.request_findings.is_empty())
                .then_some(("(the request as a whole)", &report.request_findings)),
        );
    let total = report.files_by_verdict.block;
    for (path, findings) in blocking {
        let why: Vec<String> = findings
            .iter()
            .filter(|x| x.severity == Severity::Block)
            .map(|x| format!("{} ({}x): {}", x.rule, x.count, x.message))
            .collect();
        if why.is_empty() {
            continue;
        }
        let line = format!(" {path}: {};", why.join(" "));
        if out.chars().count() + line.chars().count() > MAX_REASON_CHARS {
            break;
        }
        out.push_str(&line);
        shown += 1;
    }
    if (shown as u64) < total {
        out.push_str(&format!(" and {} other file(s).", total - shown as u64));
    }
    out
}

impl<O: ObjectStore, A: AuditLog, C: Clock> ChecksStep<O, A, C> {
    /// Reads every staged object's scan tag, in rounds [`MALWARE_POLL`] apart, until each has
    /// one or `wait` has passed since the content checks ended (`content_done`); objects
    /// still without one are [`MalwareScan::NotFinished`]. Runs beside the content checks, so
    /// the tag reads cost no time of their own when the scanner has finished: it started on
    /// each object when staging wrote it.
    async fn malware_scans(
        &self,
        mut pending: Vec<(String, ObjectRef)>,
        wait: Duration,
        content_done: &OnceLock<tokio::time::Instant>,
    ) -> Result<Vec<(String, MalwareScan)>> {
        let mut done = Vec::with_capacity(pending.len());
        loop {
            let rounds: Vec<Result<(String, ObjectRef, Option<String>)>> =
                futures::stream::iter(pending.drain(..))
                    .map(|(path, object)| async move {
                        let tags = self.objects.get_tags(&object).await?;
                        let status = tags.get(MALWARE_SCAN_TAG).cloned();
                        Ok((path, object, status))
                    })
                    .buffered(TAG_READS)
                    .collect()
                    .await;
            for read in rounds {
                match read? {
                    (path, _, Some(status)) => done.push((path, MalwareScan::from_tag(&status))),
                    (path, object, None) => pending.push((path, object)),
                }
            }
            let now = tokio::time::Instant::now();
            let deadline = content_done.get().map(|at| *at + wait);
            if pending.is_empty() || deadline.is_some_and(|d| now >= d) {
                break;
            }
            let pause = match deadline {
                Some(d) => MALWARE_POLL.min(d - now),
                None => MALWARE_POLL_DURING_CONTENT,
            };
            tokio::time::sleep(pause).await;
        }
        done.extend(
            pending
                .into_iter()
                .map(|(path, _)| (path, MalwareScan::NotFinished)),
        );
        Ok(done)
    }

    /// Streams each staged file once through the engine, in manifest order. Runs of files up
    /// to [`READ_AHEAD_FILE_BYTES`] are read whole ahead of the checker, as many at once as
    /// [`READ_AHEAD_BYTES`] allows (at most [`CHECK_READS`]); a larger file is read on its own,
    /// in ranges fetched several at once ([`LARGE_FILE_READS`]) and checked in order. The
    /// checker itself runs one file at a time, so its memory is one file's whatever the
    /// request, plus the read-ahead.
    ///
    /// A file `copy-to-staging` already checked (`prechecked`, by path) is not read: its
    /// reports are taken over in its place in the manifest's order.
    async fn check_content<'p>(
        &self,
        policy: &'p Policy,
        files: &[ManifestEntry],
        staged: &[(String, ObjectRef)],
        prechecked: &HashMap<&str, &[checks::FileReport]>,
    ) -> Result<RequestChecker<'p>> {
        let mut request = RequestChecker::new(policy);
        let entries: Vec<(&ManifestEntry, &ObjectRef)> =
            files.iter().zip(staged.iter().map(|(_, o)| o)).collect();
        let taken_over = |file: &ManifestEntry| {
            prechecked
                .get(file.path.as_str())
                .filter(|_| !acro::wanted(&file.path))
        };
        let class = |file: &ManifestEntry| match taken_over(file) {
            Some(_) => u8::MAX,
            None => read_class(file.size),
        };
        for run in entries.chunk_by(|a, b| class(a.0) == class(b.0)) {
            if taken_over(run[0].0).is_some() {
                for (file, _) in run {
                    if let Some(reports) = taken_over(file) {
                        request.add(reports.to_vec());
                    }
                    request.add_digest(&file.path, &file.sha256);
                }
                continue;
            }
            let largest = run.iter().map(|(f, _)| f.size).max().unwrap_or(0);
            let max = largest.min(READ_AHEAD_FILE_BYTES);
            let ahead = read_class(largest) < 2;
            let mut reads = futures::stream::iter(run.iter().copied())
                .map(|(_, object)| async move {
                    if !ahead {
                        return Ok(None);
                    }
                    match self.objects.get_bytes(object, max).await {
                        Ok(body) => Ok(Some(body)),
                        // Grown since the manifest was written: streamed whole below.
                        Err(EgressError::Validation(_)) => Ok(None),
                        Err(e) => Err(e),
                    }
                })
                .buffered(reads_at_once(largest));
            for (file, object) in run {
                let read = reads.next().await.ok_or_else(|| {
                    EgressError::Internal("a staged file's read was lost".into())
                })??;
                let mut checker = FileChecker::new(policy, &file.path)
                    .with_table_thread(read.is_none() && checks::table_thread_pays(file.size));
                match &read {
                    Some(body) => checker.feed(body),
                    // A large file: its ranges, several at once, fed in order.
                    None if !ahead => {
                        read_in_ranges(&self.objects, object, file.size, |chunk| {
                            checker.feed(chunk)
                        })
                        .await?;
                    }
                    // A small file grown since the manifest was written: all of it.
                    None => {
                        let mut stream = self.objects.get_stream(object).await?;
                        while let Some(chunk) = stream.try_next().await? {
                            checker.feed(&chunk);
                        }
                    }
                }
                request.add(checker.finish());
                request.add_digest(&file.path, &file.sha256);
                if acro::wanted(&file.path) && file.size <= acro::MAX_ACRO_FILE_BYTES {
                    // ACRO's results and checksums: small files, already read or read again.
                    let content = match read {
                        Some(body) => body,
                        None => {
                            self.objects
                                .get_bytes(object, acro::MAX_ACRO_FILE_BYTES)
                                .await?
                        }
                    };
                    request.add_acro_content(&file.path, content.to_vec());
                }
            }
        }
        Ok(request)
    }

    /// The result, the report, and how many files' checks were taken over from staging.
    async fn check(&self, input: &ChecksInput) -> Result<(ChecksResult, Report, u64)> {
        let layout = StagingLayout::new(&input.workspace_id, &input.egress_request_id)?;
        let policy = self.policies.for_project(&input.project_id);
        // The manifest, and what copy-to-staging checked as it staged (absent when it checked
        // nothing, or for a request staged before it did), read at once.
        let manifest_ref = ObjectRef::new(&self.staging_bucket, layout.manifest_key());
        let staged_checks_ref = ObjectRef::new(&self.staging_bucket, staged_checks_key(&layout));
        let (manifest_bytes, staged_checks) = tokio::try_join!(
            self.objects.get_bytes(&manifest_ref, MAX_MANIFEST_BYTES),
            get_bytes_if_any(&self.objects, &staged_checks_ref, MAX_MANIFEST_BYTES),
        )?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes).map_err(|e| {
            EgressError::Internal(format!("the staging manifest is not readable: {e}"))
        })?;
        let staged = manifest
            .files
            .iter()
            .map(|file| {
                let key = layout.staged_key(&file.path)?;
                Ok((file.path.clone(), ObjectRef::new(&self.staging_bucket, key)))
            })
            .collect::<Result<Vec<_>>>()?;
        let staged_checks = staged_checks.and_then(|bytes| {
            match serde_json::from_slice::<StagedChecks>(&bytes) {
                Ok(checks) => Some(checks),
                Err(e) => {
                    // Not trusted, not fatal: every file is then checked here.
                    tracing::warn!(error = %e, "the checks made while staging are unreadable");
                    None
                }
            }
        });
        let prechecked = staged_checks
            .as_ref()
            .map(|c| c.usable(&input.egress_request_id, policy, &manifest.files))
            .unwrap_or_default();
        let taken_over = manifest
            .files
            .iter()
            .filter(|f| prechecked.contains_key(f.path.as_str()) && !acro::wanted(&f.path))
            .count() as u64;
        // The content checks and the scan tags' reads run side by side (one task); the scan's
        // wait only starts counting once the content is checked.
        let content_done = OnceLock::new();
        let content = async {
            let checked = self
                .check_content(policy, &manifest.files, &staged, &prechecked)
                .await;
            let _ = content_done.set(tokio::time::Instant::now());
            checked
        };
        let scans = async {
            match self.malware_wait {
                Some(wait) => self
                    .malware_scans(staged.clone(), wait, &content_done)
                    .await
                    .map(Some),
                None => Ok(None),
            }
        };
        let (mut request, scans) = tokio::try_join!(content, scans)?;
        for (path, scan) in scans.into_iter().flatten() {
            request.add_malware_scan(&path, scan);
        }
        let report = request.finish();
        let body = serde_json::to_vec_pretty(&report).map_err(|e| {
            EgressError::Internal(format!("the checks report cannot be serialised: {e}"))
        })?;
        let key = report_key(&layout);
        self.objects
            .put_bytes(
                &Destination::new(&self.staging_bucket, &key, &self.staging_kms_key_arn)
                    .with_content_type("application/json"),
                body.into(),
            )
            .await?;
        let auto_reject = policy.mode == Mode::Enforce && report.verdict == Severity::Block;
        let result = ChecksResult {
            verdict: report.verdict.as_str().to_string(),
            summary: report.summary().line(),
            policy_version: report.policy_version.clone(),
            mode: policy.mode.as_str().to_string(),
            files_checked: report.files_checked,
            report_key: key,
            auto_reject,
            rejection_reason: if auto_reject {
                rejection_reason(&report)
            } else {
                String::new()
            },
            malware_threats: report
                .files
                .iter()
                .filter(|f| f.findings.iter().any(|x| x.rule == rules::MALWARE_SCAN.id))
                .count() as u64,
        };
        Ok((result, report, taken_over))
    }
}

impl<O: ObjectStore, A: AuditLog, C: Clock> Step for ChecksStep<O, A, C> {
    type Input = ChecksInput;
    type Output = ChecksResult;
    const FAILED: &'static str = "the output checks failed";

    async fn run(&self, input: &ChecksInput) -> Result<ChecksResult> {
        let outcome = self.check(input).await.map(|(result, report, taken_over)| {
            tracing::info!(
                verdict = %result.verdict,
                files = result.files_checked,
                checked_while_staged = taken_over,
                auto_reject = result.auto_reject,
                "output checks done"
            );
            (result, report, taken_over)
        });
        let (result, _, _) = step_audit::audited(
            &self.audit,
            &self.clock,
            &input.egress_request_id,
            ACTOR,
            "output_checks",
            outcome,
            |(result, report, taken_over)| {
                json!({
                    "verdict": result.verdict,
                    "policy_version": result.policy_version,
                    "mode": result.mode,
                    "files_checked": result.files_checked,
                    // Submitted files whose content copy-to-staging checked as it staged them.
                    "checked_while_staged": taken_over,
                    "files_by_verdict": report.files_by_verdict,
                    "counts_by_rule": report.counts_by_rule,
                    "report_key": result.report_key,
                    "auto_reject": result.auto_reject,
                })
            },
        )
        .await?;
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Policy;
    use crate::fakes::{Delayed, InMemoryAuditLog, InMemoryObjectStore};
    use crate::model::ManifestEntry;
    use crate::ports::FixedClock;
    use std::sync::Arc;
    use time::macros::datetime;

    const STAGING: &str = "staging";

    fn step(policy: Policy) -> ChecksStep<InMemoryObjectStore, InMemoryAuditLog, FixedClock> {
        let policies = ProjectPolicies {
            default: policy,
            projects: Default::default(),
        };
        ChecksStep {
            objects: InMemoryObjectStore::new().with_bucket(STAGING, false),
            audit: InMemoryAuditLog::default(),
            clock: FixedClock(datetime!(2024-03-03 09:00:00 UTC)),
            staging_bucket: STAGING.into(),
            staging_kms_key_arn: "arn:aws:kms:eu-west-2:1:key/k".into(),
            policies,
            malware_wait: None,
        }
    }

    fn stage(
        s: &ChecksStep<InMemoryObjectStore, InMemoryAuditLog, FixedClock>,
        files: &[(&str, &[u8])],
    ) {
        stage_into(&s.objects, files);
    }

    fn stage_into(objects: &InMemoryObjectStore, files: &[(&str, &[u8])]) {
        let layout = StagingLayout::new("ws-1", "req-1").unwrap();
        let mut entries = Vec::new();
        for (path, data) in files {
            objects.put_object(STAGING, &layout.staged_key(path).unwrap(), data.to_vec());
            entries.push(ManifestEntry {
                path: path.to_string(),
                source_key: format!("ws-1/{path}"),
                version_id: "v1".into(),
                size: data.len() as u64,
                sha256: {
                    use sha2::Digest;
                    sha2::Sha256::digest(data)
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect()
                },
            });
        }
        let manifest = Manifest {
            egress_request_id: "req-1".into(),
            workspace_id: "ws-1".into(),
            source_bucket: "swb".into(),
            snapshot_location: "arn:aws:s3:::n/s.json".into(),
            files: entries,
        };
        objects.put_object(
            STAGING,
            layout.manifest_key(),
            serde_json::to_vec(&manifest).unwrap(),
        );
    }

    fn input() -> ChecksInput {
        ChecksInput {
            egress_request_id: "req-1".into(),
            workspace_id: "ws-1".into(),
            project_id: "proj-1".into(),
        }
    }

    fn eicar() -> Vec<u8> {
        let mut s = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$".to_vec();
        s.extend_from_slice(b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*");
        s
    }

    #[tokio::test]
    async fn when_a_small_staged_file_is_larger_than_its_manifest_says_then_all_of_it_is_checked() {
        let s = step(Policy::default());
        stage(&s, &[("a.txt", b"mean 3.2\n")]);
        let layout = StagingLayout::new("ws-1", "req-1").unwrap();
        let mut grown = b"mean 3.2\n".to_vec();
        grown.extend_from_slice(&eicar());
        s.objects
            .put_object(STAGING, &layout.staged_key("a.txt").unwrap(), grown);
        let out = s.run(&input()).await.unwrap();
        assert_eq!(
            out.verdict, "block",
            "the bytes past the manifest's size are checked"
        );
    }

    #[tokio::test]
    async fn when_a_staged_file_blocks_in_enforce_mode_then_the_step_asks_for_rejection_naming_it()
    {
        let policy = Policy::from_json(r#"{"version":"p-2","mode":"enforce"}"#).unwrap();
        let s = step(policy);
        let eicar = eicar();
        stage(&s, &[("clean.txt", b"mean 3.2\n"), ("x/eicar.txt", &eicar)]);
        let out = s.run(&input()).await.unwrap();
        assert_eq!(out.verdict, "block");
        assert!(out.auto_reject);
        assert!(
            out.rejection_reason
                .contains("x/eicar.txt: malware-signature"),
            "{}",
            out.rejection_reason
        );
        assert!(!out.rejection_reason.contains("clean.txt"));
        assert_eq!(out.report_key, ".manifests/ws-1/req-1.checks.json");
        let stored = s.objects.object(STAGING, &out.report_key).unwrap();
        assert_eq!(
            stored.kms_key_arn.as_deref(),
            Some("arn:aws:kms:eu-west-2:1:key/k")
        );
        let report: Report = serde_json::from_slice(&stored.data).unwrap();
        assert_eq!(report.files.len(), 2);
        assert_eq!(report.policy_version, "p-2");
        let events = s.audit.events();
        assert_eq!(events.last().unwrap().action, "output_checks");
        assert_eq!(events.last().unwrap().detail["verdict"], "block");
        assert!(serde_json::to_vec(&out).unwrap().len() < crate::model::MAX_STEP_OUTPUT_BYTES);
    }

    #[tokio::test]
    async fn when_the_policy_advises_then_a_block_goes_to_review_without_rejection() {
        let s = step(Policy::default());
        let eicar = eicar();
        stage(&s, &[("eicar.txt", &eicar)]);
        let out = s.run(&input()).await.unwrap();
        assert_eq!(out.verdict, "block");
        assert!(!out.auto_reject);
        assert!(out.rejection_reason.is_empty());
        assert!(
            out.summary.starts_with("BLOCK (1 file(s)"),
            "{}",
            out.summary
        );
    }

    #[tokio::test]
    async fn when_the_request_is_cleaned_up_then_the_report_goes_with_the_staged_files() {
        let s = step(Policy::default());
        stage(&s, &[("a.txt", b"x\n")]);
        let out = s.run(&input()).await.unwrap();
        assert!(s.objects.object(STAGING, &out.report_key).is_some());
        let cleanup = crate::model::CleanupInput {
            egress_request_id: "req-1".into(),
            workspace_id: "ws-1".into(),
        };
        let s = crate::services::cleanup::CleanupStep {
            objects: s.objects,
            audit: s.audit,
            clock: s.clock,
            staging_bucket: STAGING.into(),
        };
        s.run(&cleanup).await.unwrap();
        assert!(s.objects.object(STAGING, &out.report_key).is_none());
    }

    #[tokio::test]
    async fn when_the_manifest_is_missing_then_the_step_fails_and_audits_it() {
        let s = step(Policy::default());
        let err = s.run(&input()).await.unwrap_err();
        assert_eq!(err.error_type(), "NotFound");
        assert_eq!(s.audit.events()[0].outcome, "failed");
    }

    fn staged(key_path: &str) -> String {
        StagingLayout::new("ws-1", "req-1")
            .unwrap()
            .staged_key(key_path)
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn when_the_scanner_finds_a_threat_under_enforce_then_the_file_blocks_and_is_named() {
        let policy = Policy::from_json(r#"{"version":"p-3","mode":"enforce"}"#).unwrap();
        let mut s = step(policy);
        s.malware_wait = Some(Duration::from_secs(30));
        stage(
            &s,
            &[("clean.txt", b"mean 3.2\n"), ("payload.bin", b"\x01\x02")],
        );
        s.objects.set_tags(
            STAGING,
            &staged("clean.txt"),
            &[(MALWARE_SCAN_TAG, "NO_THREATS_FOUND")],
        );
        s.objects.set_tags(
            STAGING,
            &staged("payload.bin"),
            &[(MALWARE_SCAN_TAG, "THREATS_FOUND")],
        );
        let out = s.run(&input()).await.unwrap();
        assert_eq!(out.verdict, "block");
        assert!(out.auto_reject);
        assert!(
            out.rejection_reason.contains("payload.bin: malware-scan"),
            "{}",
            out.rejection_reason
        );
        assert!(!out.rejection_reason.contains("clean.txt"));
        assert_eq!(out.malware_threats, 1, "the workflow alerts the admin");
        let stored = s.objects.object(STAGING, &out.report_key).unwrap();
        let report: Report = serde_json::from_slice(&stored.data).unwrap();
        assert!(
            report.files[0].findings.is_empty(),
            "NO_THREATS_FOUND adds nothing"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn when_a_tag_arrives_during_the_wait_then_it_is_used_and_a_missing_one_is_not_finished()
    {
        let mut s = step(Policy::default());
        s.malware_wait = Some(Duration::from_secs(20));
        stage(&s, &[("late.txt", b"x\n"), ("never.txt", b"y\n")]);
        let started = tokio::time::Instant::now();
        let request = input();
        let (out, _) = tokio::join!(s.run(&request), async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            s.objects.set_tags(
                STAGING,
                &staged("late.txt"),
                &[(MALWARE_SCAN_TAG, "THREATS_FOUND")],
            );
        });
        let out = out.unwrap();
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(20) && waited < Duration::from_secs(23),
            "{waited:?}"
        );
        let report: Report =
            serde_json::from_slice(&s.objects.object(STAGING, &out.report_key).unwrap().data)
                .unwrap();
        let rules = |path: &str| -> Vec<(String, Severity, Option<String>)> {
            report
                .files
                .iter()
                .find(|f| f.path == path)
                .unwrap()
                .findings
                .iter()
                .map(|f| (f.rule.clone(), f.severity, f.detail.clone()))
                .collect()
        };
        assert_eq!(
            rules("late.txt"),
            [(
                "malware-scan".into(),
                Severity::Block,
                Some("GuardDutyMalwareScanStatus THREATS_FOUND".into())
            )]
        );
        assert_eq!(
            rules("never.txt"),
            [(
                "malware-scan-not-finished".into(),
                Severity::Review,
                Some("scan not finished".into())
            )]
        );
        assert!(!out.auto_reject, "advise");
    }

    #[tokio::test(start_paused = true)]
    async fn when_every_tag_is_there_then_the_step_does_not_wait_and_an_unsupported_scan_is_for_review(
    ) {
        let mut s = step(Policy::default());
        s.malware_wait = Some(Duration::from_secs(300));
        stage(&s, &[("a.txt", b"x\n")]);
        s.objects.set_tags(
            STAGING,
            &staged("a.txt"),
            &[(MALWARE_SCAN_TAG, "UNSUPPORTED")],
        );
        let started = tokio::time::Instant::now();
        let out = s.run(&input()).await.unwrap();
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(out.verdict, "review");
        assert!(
            out.summary.contains("malware-scan-not-finished"),
            "{}",
            out.summary
        );
    }

    #[tokio::test]
    async fn when_the_scanner_is_off_then_no_tag_is_read() {
        let s = step(Policy::default());
        stage(&s, &[("a.txt", b"x\n")]);
        let out = s.run(&input()).await.unwrap();
        assert_eq!(out.verdict, "pass", "{}", out.summary);
    }

    #[tokio::test]
    async fn when_acro_results_are_staged_then_the_manifest_digests_verify_them() {
        use sha2::Digest;
        let hex = |d: &[u8]| -> String {
            sha2::Sha256::digest(d)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        let table = b"ward,count\na,120\n";
        let results = br#"{"version":"0.4.8","results":{"output_0":{"status":"review","type":"custom","files":[{"name":"output_0.csv","sdc":{}}],"exception":"Aggregated to wards."}}}"#;
        let s = step(Policy::default());
        let good = hex(table);
        stage(
            &s,
            &[
                ("acro/output_0.csv", table),
                ("acro/results.json", results),
                ("acro/checksums/output_0.csv.txt", good.as_bytes()),
            ],
        );
        let out = s.run(&input()).await.unwrap();
        let report: Report =
            serde_json::from_slice(&s.objects.object(STAGING, &out.report_key).unwrap().data)
                .unwrap();
        assert_eq!(report.acro_outputs.len(), 1);
        assert_eq!(
            report.acro_outputs[0].exception.as_deref(),
            Some("Aggregated to wards.")
        );
        assert_eq!(report.counts_by_rule.get("acro-verified"), Some(&1));
        assert!(!report.counts_by_rule.contains_key("acro-checksum-mismatch"));

        // The same checksum beside a changed table: blocked on the table.
        let s = step(Policy::default());
        stage(
            &s,
            &[
                ("acro/output_0.csv", b"ward,count\na,3\n"),
                ("acro/results.json", results),
                ("acro/checksums/output_0.csv.txt", good.as_bytes()),
            ],
        );
        let out = s.run(&input()).await.unwrap();
        assert_eq!(out.verdict, "block");
        assert!(
            out.summary
                .contains("acro/output_0.csv (block: acro-checksum-mismatch"),
            "{}",
            out.summary
        );
    }

    /// The in-memory store, with every whole read pending once (as a network call would be),
    /// counting the reads in flight and noting a stream opened while any is.
    #[derive(Default)]
    struct Overlapping {
        inner: InMemoryObjectStore,
        in_flight: std::sync::atomic::AtomicUsize,
        most_in_flight: std::sync::atomic::AtomicUsize,
        streamed_during_reads: std::sync::atomic::AtomicBool,
        /// Each whole read's key and the reads in flight once it started.
        started: std::sync::Mutex<Vec<(String, usize)>>,
    }

    impl ObjectStore for Overlapping {
        async fn head(&self, o: &ObjectRef) -> Result<Option<crate::ports::ObjectHead>> {
            self.inner.head(o).await
        }
        async fn get_bytes(&self, o: &ObjectRef, max: u64) -> Result<bytes::Bytes> {
            use std::sync::atomic::Ordering::SeqCst;
            let now = self.in_flight.fetch_add(1, SeqCst) + 1;
            self.most_in_flight.fetch_max(now, SeqCst);
            self.started.lock().unwrap().push((o.key.clone(), now));
            tokio::task::yield_now().await;
            let out = self.inner.get_bytes(o, max).await;
            self.in_flight.fetch_sub(1, SeqCst);
            out
        }
        async fn get_stream(&self, o: &ObjectRef) -> Result<crate::ports::ByteChunks> {
            use std::sync::atomic::Ordering::SeqCst;
            if self.in_flight.load(SeqCst) > 0 {
                self.streamed_during_reads.store(true, SeqCst);
            }
            self.inner.get_stream(o).await
        }
        async fn get_tags(
            &self,
            o: &ObjectRef,
        ) -> Result<std::collections::BTreeMap<String, String>> {
            self.inner.get_tags(o).await
        }
        async fn put_bytes(&self, d: &Destination, body: bytes::Bytes) -> Result<Option<String>> {
            self.inner.put_bytes(d, body).await
        }
        async fn copy(&self, s: &ObjectRef, d: &Destination) -> Result<()> {
            self.inner.copy(s, d).await
        }
        async fn list_objects(
            &self,
            b: &str,
            p: &str,
            c: Option<&str>,
        ) -> Result<crate::ports::ObjectPage> {
            self.inner.list_objects(b, p, c).await
        }
        async fn create_multipart(&self, d: &Destination) -> Result<crate::ports::MultipartUpload> {
            self.inner.create_multipart(d).await
        }
        async fn upload_part(
            &self,
            u: &crate::ports::MultipartUpload,
            n: i32,
            body: bytes::Bytes,
        ) -> Result<crate::ports::UploadedPart> {
            self.inner.upload_part(u, n, body).await
        }
        async fn upload_part_copy(
            &self,
            u: &crate::ports::MultipartUpload,
            n: i32,
            s: &ObjectRef,
            r: std::ops::Range<u64>,
        ) -> Result<crate::ports::UploadedPart> {
            self.inner.upload_part_copy(u, n, s, r).await
        }
        async fn complete_multipart(
            &self,
            u: &crate::ports::MultipartUpload,
            parts: &[crate::ports::UploadedPart],
        ) -> Result<()> {
            self.inner.complete_multipart(u, parts).await
        }
        async fn abort_multipart(&self, u: &crate::ports::MultipartUpload) -> Result<()> {
            self.inner.abort_multipart(u).await
        }
        async fn list_multipart_uploads(
            &self,
            b: &str,
            p: &str,
        ) -> Result<Vec<crate::ports::OpenUpload>> {
            self.inner.list_multipart_uploads(b, p).await
        }
        async fn list_versions(
            &self,
            b: &str,
            p: &str,
            c: Option<&crate::ports::ListCursor>,
        ) -> Result<crate::ports::VersionPage> {
            self.inner.list_versions(b, p, c).await
        }
        async fn delete_versions(&self, b: &str, o: &[crate::ports::VersionedKey]) -> Result<()> {
            self.inner.delete_versions(b, o).await
        }
    }

    /// The step on `objects` with the default policy and no scanner.
    fn default_step<O: ObjectStore>(objects: O) -> ChecksStep<O, InMemoryAuditLog, FixedClock> {
        ChecksStep {
            objects,
            audit: InMemoryAuditLog::default(),
            clock: FixedClock(datetime!(2024-03-03 09:00:00 UTC)),
            staging_bucket: STAGING.into(),
            staging_kms_key_arn: "k".into(),
            policies: ProjectPolicies::default(),
            malware_wait: None,
        }
    }

    #[tokio::test]
    async fn when_many_small_files_and_a_large_one_are_staged_then_small_ones_are_read_ahead_in_bounds_and_all_reported_in_order(
    ) {
        let objects = Overlapping {
            inner: InMemoryObjectStore::new().with_bucket(STAGING, false),
            ..Overlapping::default()
        };
        // 100 small files, one just above the read-ahead bound with the test signature at its
        // end (found only if it is read whole), 100 more small files, then 10 middling ones.
        let mut large = vec![b'x'; READ_AHEAD_FILE_BYTES as usize];
        large.extend_from_slice(&eicar());
        let middling = vec![b'y'; 4 * 1024 * 1024];
        let names: Vec<String> = (0..211).map(|i| format!("d/f-{i:03}.txt")).collect();
        let files: Vec<(&str, &[u8])> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let body: &[u8] = match i {
                    100 => &large,
                    201.. => &middling,
                    _ => b"mean 3.2\n",
                };
                (n.as_str(), body)
            })
            .collect();
        stage_into(&objects.inner, &files);
        let s = default_step(objects);
        let out = s.run(&input()).await.unwrap();
        use std::sync::atomic::Ordering::SeqCst;
        assert_eq!(s.objects.most_in_flight.load(SeqCst), CHECK_READS);
        let middling_at_once = s
            .objects
            .started
            .lock()
            .unwrap()
            .iter()
            .filter(|(key, _)| key.as_str() >= "ws-1/req-1/d/f-201.txt")
            .map(|(_, n)| *n)
            .max();
        assert_eq!(
            middling_at_once,
            Some(8),
            "4 MiB files: 32 MiB of read-ahead at most"
        );
        assert!(
            !s.objects.streamed_during_reads.load(SeqCst),
            "nothing is read ahead while a large file streams"
        );
        let report: Report = serde_json::from_slice(
            &s.objects
                .inner
                .object(STAGING, &out.report_key)
                .unwrap()
                .data,
        )
        .unwrap();
        let paths: Vec<&str> = report.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, names, "manifest order");
        assert_eq!(report.files[100].verdict, Severity::Block);
        assert!(report
            .files
            .iter()
            .enumerate()
            .all(|(i, f)| i == 100 || f.verdict == Severity::Pass));
        let reads = s
            .objects
            .inner
            .calls()
            .iter()
            .filter(|c| matches!(c, crate::fakes::ObjectCall::Get(_)))
            .count();
        assert_eq!(
            reads,
            2 + 210 + 2,
            "the manifest and the checks made while staging (none), each small file once, the large one in its two 8 MiB ranges"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn when_a_large_file_is_checked_then_its_ranges_are_fetched_at_once_and_checked_in_order()
    {
        // 64 MiB: eight ranges of 8 MiB. The test signature straddles the seam of the first
        // two ranges and a small count sits in the last: found only if every range is checked,
        // in order.
        let range = LARGE_FILE_READS.range_size as usize;
        let mut large = b"region,count\n".to_vec();
        while large.len() < range - 20 {
            large.extend_from_slice(b"north,120\n");
        }
        large.extend_from_slice(&eicar());
        large.extend_from_slice(b"\n");
        while large.len() < 8 * range - 20 {
            large.extend_from_slice(b"south,450\n");
        }
        large.extend_from_slice(b"east,3\n");
        let store = Arc::new(InMemoryObjectStore::new().with_bucket(STAGING, false));
        stage_into(&store, &[("d/big.csv", &large)]);
        let round_trip = Duration::from_millis(20);
        let s = default_step(Delayed {
            inner: store.clone(),
            delay: round_trip,
        });
        let started = tokio::time::Instant::now();
        let out = s.run(&input()).await.unwrap();
        let took = started.elapsed();
        let gets = store
            .calls()
            .iter()
            .filter(|c| matches!(c, crate::fakes::ObjectCall::Get(_)))
            .count();
        assert_eq!(
            gets,
            2 + 8,
            "the manifest and the checks made while staging (none), then the file's eight ranges"
        );
        // The manifest, the eight ranges at once, the report: three round trips, where one
        // range after another would take ten.
        assert_eq!(took, 3 * round_trip);
        let report: Report =
            serde_json::from_slice(&store.object(STAGING, &out.report_key).unwrap().data).unwrap();
        let rules: Vec<&str> = report.files[0]
            .findings
            .iter()
            .map(|f| f.rule.as_str())
            .collect();
        assert!(rules.contains(&"malware-signature"), "{rules:?}");
        assert!(rules.contains(&"table-small-counts"), "{rules:?}");
        assert_eq!(report.files[0].bytes, large.len() as u64);
    }

    #[test]
    fn when_files_are_larger_then_fewer_are_read_ahead_and_never_more_than_the_byte_bound() {
        assert_eq!(reads_at_once(0), CHECK_READS);
        assert_eq!(reads_at_once(32 * 1024), CHECK_READS);
        assert_eq!(reads_at_once(SMALL_FILE_BYTES), 64);
        assert_eq!(reads_at_once(4 * 1024 * 1024), 8);
        assert_eq!(reads_at_once(READ_AHEAD_FILE_BYTES), 4);
        assert_eq!(reads_at_once(u64::MAX), 1);
        assert_eq!(
            [1, SMALL_FILE_BYTES + 1, READ_AHEAD_FILE_BYTES + 1].map(read_class),
            [0, 1, 2]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn when_the_tags_are_read_while_the_content_is_checked_then_the_wait_counts_from_the_end_of_the_content(
    ) {
        let mut s = step(Policy::default());
        s.malware_wait = Some(Duration::from_secs(10));
        stage(&s, &[("a.txt", b"x\n")]);
        let content_done = OnceLock::new();
        let staged = vec![(
            "a.txt".to_string(),
            ObjectRef::new(STAGING, staged("a.txt")),
        )];
        let started = tokio::time::Instant::now();
        let (scans, ()) = tokio::join!(
            s.malware_scans(staged, s.malware_wait.unwrap(), &content_done),
            async {
                // The content takes 30 s: longer than the wait, which has not started yet.
                tokio::time::sleep(Duration::from_secs(30)).await;
                content_done.set(tokio::time::Instant::now()).unwrap();
            }
        );
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(40) && waited < Duration::from_secs(43),
            "{waited:?}"
        );
        assert_eq!(
            scans.unwrap(),
            [("a.txt".to_string(), MalwareScan::NotFinished)]
        );
    }
}
