//! `check-outputs`: the automated output checks of a staged request (issue 12).
//!
//! Reads the staging manifest, streams each staged file once through the engine of
//! [`crate::checks`] (bounded memory whatever its size), verifies ACRO's checksums against the
//! manifest's SHA-256 when ACRO's `results.json` is submitted, waits (bounded) for the malware
//! scanner's `GuardDutyMalwareScanStatus` tag on every staged object when the scanner is on,
//! writes the report (per file and overall) as JSON next to the manifest, audits the verdict
//! and returns a bounded summary for the workflow, which stores it on the request, shows it to
//! the reviewers, and in `enforce` mode rejects a request a finding blocks.

use std::time::Duration;

use futures::StreamExt;

use futures::TryStreamExt;
use serde_json::json;

use super::{step_audit, Step};
use crate::checks::{
    acro, rules, FileChecker, MalwareScan, Mode, ProjectPolicies, Report, RequestChecker, Severity,
};
use crate::domain::keys::StagingLayout;
use crate::error::{EgressError, Result};
use crate::model::{ChecksInput, ChecksResult, Manifest};
use crate::ports::{AuditLog, Clock, Destination, ObjectRef, ObjectStore};

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
/// Tag reads in flight at once.
const TAG_READS: usize = 16;

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
    /// one or `wait` has passed; objects still without one are [`MalwareScan::NotFinished`].
    /// The scanner started on each object when staging wrote it, so by the time the content
    /// checks are done most results are there.
    async fn malware_scans(
        &self,
        mut pending: Vec<(String, ObjectRef)>,
        wait: Duration,
    ) -> Result<Vec<(String, MalwareScan)>> {
        let deadline = tokio::time::Instant::now() + wait;
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
            if pending.is_empty() || now >= deadline {
                break;
            }
            tokio::time::sleep(MALWARE_POLL.min(deadline - now)).await;
        }
        done.extend(
            pending
                .into_iter()
                .map(|(path, _)| (path, MalwareScan::NotFinished)),
        );
        Ok(done)
    }

    async fn check(&self, input: &ChecksInput) -> Result<(ChecksResult, Report)> {
        let layout = StagingLayout::new(&input.workspace_id, &input.egress_request_id)?;
        let policy = self.policies.for_project(&input.project_id);
        let manifest_bytes = self
            .objects
            .get_bytes(
                &ObjectRef::new(&self.staging_bucket, layout.manifest_key()),
                MAX_MANIFEST_BYTES,
            )
            .await?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes).map_err(|e| {
            EgressError::Internal(format!("the staging manifest is not readable: {e}"))
        })?;
        let mut request = RequestChecker::new(policy);
        let mut staged = Vec::with_capacity(manifest.files.len());
        for file in &manifest.files {
            let key = layout.staged_key(&file.path)?;
            let object = ObjectRef::new(&self.staging_bucket, key);
            let mut stream = self.objects.get_stream(&object).await?;
            let mut checker = FileChecker::new(policy, &file.path);
            while let Some(chunk) = stream.try_next().await? {
                checker.feed(&chunk);
            }
            request.add(checker.finish());
            request.add_digest(&file.path, &file.sha256);
            if acro::wanted(&file.path) && file.size <= acro::MAX_ACRO_FILE_BYTES {
                // A second read of a small file: ACRO's results and checksums only.
                let content = self
                    .objects
                    .get_bytes(&object, acro::MAX_ACRO_FILE_BYTES)
                    .await?;
                request.add_acro_content(&file.path, content.to_vec());
            }
            staged.push((file.path.clone(), object));
        }
        if let Some(wait) = self.malware_wait {
            for (path, scan) in self.malware_scans(staged, wait).await? {
                request.add_malware_scan(&path, scan);
            }
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
        Ok((result, report))
    }
}

impl<O: ObjectStore, A: AuditLog, C: Clock> Step for ChecksStep<O, A, C> {
    type Input = ChecksInput;
    type Output = ChecksResult;
    const FAILED: &'static str = "the output checks failed";

    async fn run(&self, input: &ChecksInput) -> Result<ChecksResult> {
        let outcome = self.check(input).await.map(|(result, report)| {
            tracing::info!(
                verdict = %result.verdict,
                files = result.files_checked,
                auto_reject = result.auto_reject,
                "output checks done"
            );
            (result, report)
        });
        let (result, _) = step_audit::audited(
            &self.audit,
            &self.clock,
            &input.egress_request_id,
            ACTOR,
            "output_checks",
            outcome,
            |(result, report)| {
                json!({
                    "verdict": result.verdict,
                    "policy_version": result.policy_version,
                    "mode": result.mode,
                    "files_checked": result.files_checked,
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
    use crate::fakes::{InMemoryAuditLog, InMemoryObjectStore};
    use crate::model::ManifestEntry;
    use crate::ports::FixedClock;
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
        let layout = StagingLayout::new("ws-1", "req-1").unwrap();
        let mut entries = Vec::new();
        for (path, data) in files {
            s.objects
                .put_object(STAGING, &layout.staged_key(path).unwrap(), data.to_vec());
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
        s.objects.put_object(
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
        crate::services::cleanup::run(&s.objects, &s.audit, &s.clock, STAGING, &cleanup)
            .await
            .unwrap();
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
}
