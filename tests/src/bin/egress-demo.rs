//! `make demo`: one egress request, from SWB submission to an approved archive in the
//! datalake, against the running local stack, showing each step as it happens.
//!
//! Usage: `egress-demo [--mode single|dual]` (the stack must be up: `make stack-up`).
//! Exits 0 when every check passed, 1 otherwise.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use e2e_tests::driver::{ReviewDriver, Reviewer};
use e2e_tests::graphql::GraphQlDriver;
use e2e_tests::inspect::{self, Archive};
use e2e_tests::stack::Stack;
use e2e_tests::swb::{self, Mode, Submit};
use e2e_tests::{verify, wait, Context, Result};
use shared::model::{Decision, EgressStatus, ReviewStage};

const STEP_TIMEOUT: Duration = Duration::from_secs(180);

struct Progress {
    started: Instant,
    step: u32,
}

impl Progress {
    fn step(&mut self, title: &str) {
        self.step += 1;
        println!();
        println!(
            "[{:6.1}s] {}. {title}",
            self.started.elapsed().as_secs_f64(),
            self.step
        );
    }

    fn info(&self, text: impl AsRef<str>) {
        for line in text.as_ref().lines() {
            println!("          {line}");
        }
    }
}

fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn parse_mode() -> Result<Mode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["--mode", "single"] => Ok(Mode::Single),
        ["--mode", "dual"] => Ok(Mode::Dual),
        _ => Err(anyhow::anyhow!("usage: egress-demo [--mode single|dual]")),
    }
}

async fn run(p: &mut Progress) -> Result<()> {
    let mode = parse_mode()?;
    let stack = Stack::connect().await?;
    let driver = GraphQlDriver::connect()
        .context("the reviewer GraphQL API is not up; `make demo` starts it with the stack")?;
    p.step("Local stack");
    p.info(format!(
        "endpoint {} (stack {}), state machine {}",
        stack.outputs.endpoint, stack.outputs.stack_id, stack.outputs.state_machine_arn
    ));
    p.info(format!("reviewers act through {}", driver.describe()));

    p.step(&format!(
        "SWB submits an egress request ({} approval project)",
        if mode == Mode::Single {
            "single"
        } else {
            "dual"
        }
    ));
    let submission = swb::submit(&stack.outputs, &Submit::new(mode))?;
    let id = submission.egress_request_id.clone();
    p.info(format!("request   {id}"));
    p.info(format!(
        "workspace {}   project {}",
        submission.workspace_id, submission.project_id
    ));
    p.info(format!(
        "submitted by {} <{}>; snapshot {} ({} entries, folder marker included)",
        submission.submitter.id,
        submission.submitter.email,
        submission.snapshot_location,
        submission.snapshot_objects
    ));
    for f in &submission.files {
        p.info(format!(
            "  {:<34} {:>10}  version {}",
            f.path,
            human_bytes(f.size),
            f.version_id
        ));
    }
    for c in &submission.changed_after_snapshot {
        p.info(format!(
            "then changed after submission: {} (submitted version {}, now {})",
            c.key, c.submitted_version, c.latest_version
        ));
    }

    p.step("Workflow: request saved, SWB egress store locked, files staged, IG notified");
    let awaiting = inspect::awaiting_review(&stack, &id, ReviewStage::Ig, STEP_TIMEOUT).await?;
    let swb_status = inspect::swb_status(&stack, &submission.egress_store_id).await?;
    p.info(format!(
        "egress_status {}   SWB egress store {}",
        awaiting.egress_status,
        swb_status.as_deref().unwrap_or("(missing)")
    ));
    // The automated output checks' verdict line (issue 12), as the reviewers' notification shows it.
    p.info(format!(
        "output checks: {}",
        awaiting.checks_summary.as_deref().unwrap_or("(not run)")
    ));
    let manifest = verify::staging_manifest(&stack, &submission.workspace_id, &id).await?;
    p.info(format!(
        "staged {} file(s), {} (manifest version {}):",
        awaiting.staged_file_count.unwrap_or_default(),
        human_bytes(awaiting.staged_total_bytes.unwrap_or_default()),
        awaiting
            .s3_staging_object_metadata_version
            .as_deref()
            .unwrap_or("-")
    ));
    for f in &manifest.files {
        p.info(format!(
            "  {:<34} {:>10}  sha256 {}",
            f.path,
            human_bytes(f.size),
            f.sha256
        ));
    }
    for n in inspect::publications_about(&stack, "IgNotificationTopic", &id).await? {
        p.info(format!("IG topic: {}", n.message));
    }

    // Issue 14: the researcher is told early, before any decision.
    p.step("Requester e-mailed: request received");
    let received = wait::until("the received e-mail", STEP_TIMEOUT, || async {
        Ok(inspect::emails_about(&stack, &id)?
            .into_iter()
            .find(|m| m.subject.starts_with("Egress request received")))
    })
    .await?;
    p.info(format!("to {}", received.recipients.join(", ")));
    p.info(format!("subject: {}", received.subject));
    for line in received.text.lines().take(8) {
        p.info(format!("  | {line}"));
    }

    let ig = Reviewer::ig(&stack);
    p.step(&format!(
        "{} (Information Governance) approves",
        ig.username
    ));
    driver
        .decide(
            &id,
            &ig,
            Decision::Approved,
            "Aggregated outputs only; small cells suppressed.",
        )
        .await?;
    p.info("decision recorded, workflow resumed");

    if mode == Mode::Dual {
        p.step("Workflow: Research IT notified");
        let awaiting =
            inspect::awaiting_review(&stack, &id, ReviewStage::Rit, STEP_TIMEOUT).await?;
        p.info(format!("egress_status {}", awaiting.egress_status));
        for n in inspect::publications_about(&stack, "RitNotificationTopic", &id).await? {
            p.info(format!("RIT topic: {}", n.message));
        }
        let rit = Reviewer::rit(&stack);
        p.step(&format!("{} (Research IT) approves", rit.username));
        driver
            .decide(
                &id,
                &rit,
                Decision::Approved,
                "No identifiable data; file types acceptable.",
            )
            .await?;
        p.info("decision recorded, workflow resumed");
    }

    p.step("Workflow: archive written to the datalake, SWB told, requester e-mailed");
    let end =
        inspect::execution_end(&stack, &stack.outputs.execution_arn(&id), STEP_TIMEOUT).await?;
    let request = inspect::request(&stack, &id)
        .await?
        .context("the request item is gone")?;
    let swb_status = inspect::swb_status(&stack, &submission.egress_store_id).await?;
    p.info(format!(
        "execution {}   egress_status {}   SWB egress store {}",
        end.status.as_str(),
        request.egress_status,
        swb_status.as_deref().unwrap_or("(missing)")
    ));
    let expected = if mode == Mode::Single {
        EgressStatus::IgApproved
    } else {
        EgressStatus::RitApproved
    };
    if request.egress_status != expected || swb_status.as_deref() != Some("PROCESSED") {
        return Err(anyhow::anyhow!(
            "expected {expected} and SWB PROCESSED; execution error {:?}: {:?}",
            end.error,
            end.cause
        ));
    }
    p.info(format!(
        "archive s3://{}/{}",
        stack.outputs.bucket("DatalakeBucket")?,
        request.archive_key.clone().unwrap_or_default()
    ));

    p.step(&format!(
        "{} downloads the archive (presigned URL)",
        ig.username
    ));
    let bytes = driver.download(&id, &ig).await?;
    let archive = Archive::read(&bytes)?;
    p.info(format!(
        "{} in {} entries:",
        human_bytes(bytes.len() as u64),
        archive.entries.len()
    ));
    for (path, content) in &archive.entries {
        p.info(format!(
            "  {:<44} {:>10}  sha256 {}",
            path,
            human_bytes(content.len() as u64),
            inspect::sha256_hex(content)
        ));
    }
    verify::archive_holds_submission(&stack, &submission, &archive).await?;
    p.info("every file is byte-for-byte the submitted version (the file changed after submission included)");
    evidence(p, &stack, &id, &bytes).await?;
    let staged = inspect::staged_keys(&stack, &submission.workspace_id, &id).await?;
    p.info(format!(
        "staging left behind: {}",
        if staged.is_empty() {
            "nothing".to_string()
        } else {
            staged.join(", ")
        }
    ));

    p.step("E-mails sent");
    let emails = wait::until("the requester's e-mail", STEP_TIMEOUT, || async {
        let found = inspect::emails_about(&stack, &id)?;
        Ok((!found.is_empty()).then_some(found))
    })
    .await?;
    for e in emails {
        p.info(format!("from {} to {}", e.source, e.recipients.join(", ")));
        p.info(format!("subject: {}", e.subject));
        for line in e.text.lines().take(14) {
            p.info(format!("  | {line}"));
        }
    }

    p.step("Audit trail");
    for line in inspect::audit_lines(&stack, &id).await? {
        let who = match &line.actor_email {
            Some(email) => format!("{} ({email})", line.actor),
            None => line.actor.clone(),
        };
        p.info(format!("{:<12} {:<8} by {who}", line.action, line.outcome));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut progress = Progress {
        started: Instant::now(),
        step: 0,
    };
    println!("TRE egress approval: end-to-end demo on the local stack");
    match run(&mut progress).await {
        Ok(()) => {
            println!();
            println!(
                "DEMO SUCCEEDED in {:.1}s: submitted, staged, approved, archived, downloaded and verified.",
                progress.started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            println!();
            println!("DEMO FAILED at step {}: {err:#}", progress.step);
            println!("Logs: .local-stack/logs/ (router.log shows every invocation; watch-*.log the functions)");
            ExitCode::FAILURE
        }
    }
}

/// A recipient's check (`egress-verify` on the downloaded archive with the stack's public
/// key) and the request's audit chain, verified.
async fn evidence(p: &mut Progress, stack: &Stack, id: &str, archive: &[u8]) -> Result<()> {
    use shared::ports::{AuditLog, ReleaseSigner};
    p.step("a recipient checks the archive offline: egress-verify <archive> <public key>");
    let key_arn = &stack
        .outputs
        .keys
        .get("ReleaseSigningKey")
        .context("the stack has no release signing key")?
        .arn;
    let pem = shared::adapters::kms::KmsReleaseSigner::from_config(&stack.sdk, key_arn.clone())
        .public_key_pem()
        .await?;
    let dir = stack.outputs.state_dir.join("demo");
    std::fs::create_dir_all(&dir)?;
    let zip_path = dir.join(format!("{id}.zip"));
    let key_path = dir.join("release-public-key.pem");
    std::fs::write(&zip_path, archive)?;
    std::fs::write(&key_path, &pem)?;
    let bin = e2e_tests::stack::repo_root().join("target/debug/egress-verify");
    let out = std::process::Command::new(&bin)
        .arg(&zip_path)
        .arg(&key_path)
        .output()
        .context(format!(
            "running {} (make build-debug builds it)",
            bin.display()
        ))?;
    p.info(String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        return Err(anyhow::anyhow!(
            "egress-verify refused the archive: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let audit = shared::adapters::dynamodb::DynamoDbAuditLog::new(
        stack.dynamodb.clone(),
        stack.outputs.table("AuditTable")?,
    );
    let report = shared::evidence::chain::verify(&audit.trail(id).await?);
    let head = report
        .head
        .as_ref()
        .map(|h| format!("seq {} hash {}", h.seq, h.hash))
        .unwrap_or_default();
    if !report.valid {
        return Err(anyhow::anyhow!(
            "the audit chain is broken: {:?}",
            report.first_break
        ));
    }
    p.info(format!(
        "audit chain valid: {} chained events, head {head} ({} written by Step Functions itself, unchained)",
        report.length,
        report.unchained.len()
    ));
    Ok(())
}
