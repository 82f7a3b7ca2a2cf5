//! The e-mails that tell a researcher their egress request was received, and how it ended.
//!
//! The first says what was submitted (file count, size), what happens next and how long the
//! review may take. The last says what was decided, each stage's reason, what to do next and
//! how to reach the TRE admin. Reviewers' names and e-mails are not disclosed to the researcher: the decision is
//! the review group's, and the reasons are what the researcher needs to act on.

use crate::model::{ApprovalMode, Decision, EgressRequest, Outcome};
use crate::ports::Email;

/// Who and where, for the text of the e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyContext<'a> {
    /// The TRE admin's e-mail, given as the contact.
    pub admin_email: &'a str,
    /// Link to the TRE (SWB or the egress app), when configured.
    pub app_url: &'a str,
    /// Seconds each review stage may wait before the request expires (0: not known).
    pub review_timeout_seconds: u64,
}

/// The recipients: the submitter, else the store owner. Empty when SWB sent neither.
pub fn recipients(request: &EgressRequest) -> Vec<String> {
    request
        .requested_by_email
        .iter()
        .chain(request.store_owner_email.iter())
        .find(|e| !e.trim().is_empty())
        .map(|e| vec![e.trim().to_string()])
        .unwrap_or_default()
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `1 day`, `14 days`, `6 hours`, `90 minutes`: the review period as a person says it.
fn human_duration(seconds: u64) -> String {
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match seconds {
        s if s >= 86_400 && s % 86_400 == 0 => plural(s / 86_400, "day"),
        s if s >= 2 * 86_400 => format!("{:.1} days", s as f64 / 86_400.0),
        s if s >= 3_600 && s % 3_600 == 0 => plural(s / 3_600, "hour"),
        s if s >= 2 * 3_600 => format!("{:.1} hours", s as f64 / 3_600.0),
        s => plural(s.div_ceil(60).max(1), "minute"),
    }
}

/// What happens after a request is received, with the expected review time.
fn received_next(request: &EgressRequest, review_timeout_seconds: u64) -> String {
    let mut next =
        String::from("Your files have been copied, unchanged, into the TRE's secure staging area");
    if request.checks_verdict.is_some() {
        next.push_str(
            " and the automated output checks have run (the reviewers see their results)",
        );
    }
    next.push_str(". The Information Governance reviewers have been notified");
    let dual = request.approval_mode == ApprovalMode::Dual;
    if dual {
        next.push_str("; once they approve, the Research IT reviewers review it too");
    }
    next.push('.');
    if review_timeout_seconds > 0 {
        let stage = human_duration(review_timeout_seconds);
        if dual {
            next.push_str(&format!(
                " Each of the two review stages has up to {stage} to decide, so expect a decision \
                 within {} at the latest.",
                human_duration(2 * review_timeout_seconds)
            ));
        } else {
            next.push_str(&format!(
                " The review has up to {stage}, so expect a decision within {stage} at the latest."
            ));
        }
        next.push_str(
            " A request nobody decides in time expires, and you can then submit it again.",
        );
    }
    next.push_str(
        " You will get another e-mail with the decision and the reviewers' reasons. Your egress \
         store stays locked while the request is under review.",
    );
    next
}

/// The e-mail telling the requester their request was received, or `None` when it has no
/// requester e-mail.
pub fn received_email(request: &EgressRequest, ctx: &NotifyContext<'_>) -> Option<Email> {
    outcome_email(request, Outcome::Received, false, ctx)
}

fn stage_line(
    out: &mut String,
    group: &str,
    decision: Option<Decision>,
    dt: Option<&str>,
    reason: Option<&str>,
) {
    if let Some(decision) = decision {
        out.push_str(&format!("- {group}: {decision}"));
        if let Some(dt) = dt {
            out.push_str(&format!(" ({dt})"));
        }
        out.push('\n');
        if let Some(reason) = reason.filter(|r| !r.trim().is_empty()) {
            out.push_str(&format!("  Reason: {}\n", reason.trim()));
        }
    }
}

/// What is known of the approved archive when a request fails: the e-mail must not say that no
/// data left the TRE when the failure came after the archive was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveState {
    /// The archive was written (the workflow saw `copy-to-datalake` succeed, or the request
    /// records its key).
    Written,
    /// The request was approved, so the archive may have been partly or wholly written by a
    /// step that then failed.
    Possible,
    /// The request never reached final approval: nothing was written to the datalake.
    None,
}

/// Where the archive of `request` stands; `archive_written` is the workflow's own knowledge
/// (`NotifyInput::archive_written`).
pub fn archive_state(request: &EgressRequest, archive_written: bool) -> ArchiveState {
    let approved = |d: Option<Decision>| d == Some(Decision::Approved);
    let finally_approved = approved(request.ig_reviewer_1_decision)
        && (request.approval_mode == ApprovalMode::Single
            || approved(request.rit_reviewer_2_decision));
    if archive_written || request.archive_key.is_some() {
        ArchiveState::Written
    } else if finally_approved {
        ArchiveState::Possible
    } else {
        ArchiveState::None
    }
}

fn failure_next(archive: ArchiveState) -> String {
    let what = match archive {
        ArchiveState::None => "no data has left the TRE",
        ArchiveState::Written => {
            "the approved archive had already been written to the project's data lake, where it \
             is held for the TRE admin to review or delete; it is not released for download"
        }
        ArchiveState::Possible => {
            "the request had been approved and the failure came while its archive was being \
             written to the project's data lake; the TRE admin will check what was written and \
             review or delete it; nothing is released for download"
        }
    };
    format!(
        "Something went wrong while processing it: {what}. The TRE admin has been alerted. \
         Your egress store is unlocked: you can submit it again, and if it fails again please \
         contact the TRE admin."
    )
}

/// Longest excerpt of a failure's message an e-mail carries (the message names keys, and a
/// submission can hold thousands of them).
const MAX_PROBLEM_CHARS: usize = 2_000;

/// What the researcher must fix, when the request failed because of what was submitted: the
/// message of a `ValidationError` (it names the files and why, e.g. two names that are one file
/// once extracted). Other failures are the service's own; their causes stay with the admin.
pub fn submission_problem(request: &EgressRequest) -> Option<String> {
    if request.failure_error.as_deref() != Some("ValidationError") {
        return None;
    }
    let cause = request.failure_cause.as_deref()?;
    // The workflow stores Step Functions' `Cause`: the function's error as JSON.
    let message = serde_json::from_str::<serde_json::Value>(cause)
        .ok()
        .and_then(|v| v.get("errorMessage")?.as_str().map(str::to_string))
        .unwrap_or_else(|| cause.to_string());
    let message: String = message.chars().filter(|c| !c.is_control()).collect();
    let message = message.trim();
    if message.is_empty() {
        return None;
    }
    if message.chars().count() > MAX_PROBLEM_CHARS {
        let cut: String = message.chars().take(MAX_PROBLEM_CHARS).collect();
        return Some(format!("{cut}… (shortened)"));
    }
    Some(message.to_string())
}

/// The e-mail for `outcome`, or `None` when the request has no requester e-mail.
/// `archive_written` is what the workflow knows of the approved archive (failures only).
pub fn outcome_email(
    request: &EgressRequest,
    outcome: Outcome,
    archive_written: bool,
    ctx: &NotifyContext<'_>,
) -> Option<Email> {
    let to = recipients(request);
    if to.is_empty() {
        return None;
    }
    let name = &request.egress_store_name;
    let (subject, headline, next) = match outcome {
        Outcome::Received => (
            format!("Egress request received: {name}"),
            "has been RECEIVED and is waiting for review".to_string(),
            received_next(request, ctx.review_timeout_seconds),
        ),
        Outcome::Approved => (
            format!("Egress request approved: {name}"),
            "has been APPROVED".to_string(),
            "The approved files have been packaged into a single archive in the project's data \
             lake. Authorised reviewers can download it from the egress app; ask them or the \
             TRE admin for access."
                .to_string(),
        ),
        Outcome::Rejected => (
            format!("Egress request rejected: {name}"),
            "has been REJECTED".to_string(),
            "No data has left the TRE and the staged copies have been deleted. Your egress store \
             is unlocked: you can revise its contents in Service Workbench, taking the reasons \
             above into account, and submit it again."
                .to_string(),
        ),
        Outcome::Expired => (
            format!("Egress request expired: {name}"),
            "has EXPIRED without a decision".to_string(),
            "No reviewer decided within the review period, so the request was closed and the \
             staged copies deleted. Your egress store is unlocked: you can submit it again."
                .to_string(),
        ),
        Outcome::Failed => (
            format!("Egress request could not be processed: {name}"),
            "could not be processed".to_string(),
            failure_next(archive_state(request, archive_written)),
        ),
    };
    let mut text = String::new();
    text.push_str("Hello,\n\n");
    text.push_str(&format!(
        "Your egress request for \"{name}\" (request {id}, workspace {ws}, project {project}), \
         submitted {dt}, {headline}.\n\n",
        id = request.egress_request_id,
        ws = request.workspace_id,
        project = request.project_id,
        dt = request.requested_dt,
    ));
    if let (Some(count), Some(bytes)) = (request.staged_file_count, request.staged_total_bytes) {
        text.push_str(&format!(
            "Files submitted: {count} ({}).\n",
            human_bytes(bytes)
        ));
        if outcome == Outcome::Received {
            if let Some(types) = request
                .staged_file_types
                .as_deref()
                .filter(|t| !t.trim().is_empty())
            {
                text.push_str(&format!("File types: {}.\n", types.trim()));
            }
        }
        text.push('\n');
    }
    let mut decisions = String::new();
    stage_line(
        &mut decisions,
        "Information Governance",
        request.ig_reviewer_1_decision,
        request.ig_reviewer_1_dt.as_deref(),
        request.ig_reviewer_1_reason.as_deref(),
    );
    stage_line(
        &mut decisions,
        "Research IT",
        request.rit_reviewer_2_decision,
        request.rit_reviewer_2_dt.as_deref(),
        request.rit_reviewer_2_reason.as_deref(),
    );
    if !decisions.is_empty() {
        text.push_str("Review decisions:\n");
        text.push_str(&decisions);
        text.push('\n');
    }
    if outcome == Outcome::Rejected {
        // An automatic rejection by the output checks (enforce mode): which files and why.
        if let Some(reason) = request
            .checks_rejection_reason
            .as_deref()
            .filter(|r| !r.trim().is_empty())
        {
            text.push_str("Rejected automatically by the output checks, before any review:\n");
            text.push_str(reason.trim());
            text.push_str("\n\n");
        }
    }
    if outcome == Outcome::Failed {
        if let Some(problem) = submission_problem(request) {
            text.push_str("What was wrong with the submission: ");
            text.push_str(&problem);
            text.push_str("\n\n");
        }
    }
    text.push_str("What happens next: ");
    text.push_str(&next);
    text.push_str("\n\n");
    if !ctx.app_url.is_empty() {
        text.push_str(&format!("TRE: {}\n", ctx.app_url));
    }
    text.push_str(&format!(
        "Questions? Contact the TRE admin at {}.\n",
        ctx.admin_email
    ));
    Some(Email {
        to,
        subject,
        text,
        html: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EgressStatus;
    use crate::testdata::{dual_request, request};

    const CTX: NotifyContext<'static> = NotifyContext {
        admin_email: "tre-admin@example.org",
        app_url: "https://tre.example.org",
        review_timeout_seconds: 14 * 86_400,
    };

    #[test]
    fn when_a_request_is_received_then_the_email_says_what_was_submitted_and_how_long_review_takes()
    {
        let mut r = request("req-1", EgressStatus::Processing);
        r.staged_file_count = Some(3);
        r.staged_total_bytes = Some(1536);
        r.staged_file_types = Some("csv, txt".into());
        r.checks_verdict = Some("pass".into());
        let email = received_email(&r, &CTX).unwrap();
        assert_eq!(email.to, vec!["submitter@example.org"]);
        assert_eq!(
            email.subject,
            format!("Egress request received: {}", r.egress_store_name)
        );
        for expected in [
            "has been RECEIVED and is waiting for review",
            "req-1",
            "Files submitted: 3 (1.5 KiB).",
            "File types: csv, txt.",
            "automated output checks have run",
            "Information Governance reviewers have been notified",
            "The review has up to 14 days, so expect a decision within 14 days at the latest.",
            "another e-mail with the decision",
            "TRE: https://tre.example.org",
            "tre-admin@example.org",
        ] {
            assert!(
                email.text.contains(expected),
                "missing {expected:?} in\n{}",
                email.text
            );
        }
        assert!(
            !email.text.contains("Research IT"),
            "single mode: one stage"
        );
        assert!(
            !email.text.contains("Review decisions"),
            "nothing decided yet"
        );
    }

    #[test]
    fn when_a_dual_request_is_received_then_both_stages_and_the_total_review_time_are_given() {
        let r = dual_request("req-1", EgressStatus::Processing);
        let ctx = NotifyContext {
            review_timeout_seconds: 7 * 86_400,
            ..CTX
        };
        let email = received_email(&r, &ctx).unwrap();
        assert!(
            email
                .text
                .contains("the Research IT reviewers review it too"),
            "{}",
            email.text
        );
        assert!(
            email.text.contains("Each of the two review stages has up to 7 days to decide, so expect a decision within 14 days at the latest."),
            "{}",
            email.text
        );
        // The review time is not known: no promise is made.
        let unknown = NotifyContext {
            review_timeout_seconds: 0,
            ..CTX
        };
        let email = received_email(&r, &unknown).unwrap();
        assert!(!email.text.contains("at the latest"), "{}", email.text);
        assert!(
            !email.text.contains("Files submitted"),
            "staging not recorded: no count"
        );
    }

    #[test]
    fn when_no_requester_email_is_known_then_no_received_email_is_built() {
        let mut r = request("req-1", EgressStatus::Processing);
        r.requested_by_email = None;
        r.store_owner_email = None;
        assert!(received_email(&r, &CTX).is_none());
    }

    #[test]
    fn when_a_review_period_is_given_then_it_reads_as_a_person_says_it() {
        assert_eq!(human_duration(86_400), "1 day");
        assert_eq!(human_duration(14 * 86_400), "14 days");
        assert_eq!(human_duration(3 * 86_400 + 43_200), "3.5 days");
        assert_eq!(human_duration(6 * 3_600), "6 hours");
        assert_eq!(human_duration(3_600), "1 hour");
        assert_eq!(human_duration(300), "5 minutes");
        assert_eq!(human_duration(90), "2 minutes");
        assert_eq!(human_duration(5_400), "90 minutes");
    }

    #[test]
    fn when_approved_in_dual_mode_then_both_reasons_and_the_admin_contact_are_included() {
        let mut r = dual_request("req-1", EgressStatus::RitApproved);
        r.ig_reviewer_1_decision = Some(Decision::Approved);
        r.ig_reviewer_1_reason = Some("Aggregated, no small counts".into());
        r.ig_reviewer_1_name = Some("Ivy Governance".into());
        r.rit_reviewer_2_decision = Some(Decision::Approved);
        r.rit_reviewer_2_reason = Some("File formats fine".into());
        r.staged_file_count = Some(3);
        r.staged_total_bytes = Some(3 * 1024 * 1024);
        let email = outcome_email(&r, Outcome::Approved, false, &CTX).unwrap();
        assert_eq!(email.to, vec!["submitter@example.org"]);
        assert!(email.subject.contains("approved"));
        for expected in [
            "APPROVED",
            "Aggregated, no small counts",
            "File formats fine",
            "tre-admin@example.org",
            "3 (3.0 MiB)",
            "req-1",
        ] {
            assert!(
                email.text.contains(expected),
                "missing {expected:?} in\n{}",
                email.text
            );
        }
        assert!(
            !email.text.contains("Ivy Governance"),
            "reviewer names stay private"
        );
    }

    #[test]
    fn when_rejected_then_the_researcher_is_told_how_to_resubmit() {
        let mut r = request("req-1", EgressStatus::Rejected);
        r.ig_reviewer_1_decision = Some(Decision::Rejected);
        r.ig_reviewer_1_reason = Some("Contains row-level data".into());
        let email = outcome_email(&r, Outcome::Rejected, false, &CTX).unwrap();
        assert!(email.subject.contains("rejected"));
        assert!(email.text.contains("Contains row-level data"));
        assert!(email.text.contains("submit it again"));
    }

    #[test]
    fn when_the_output_checks_rejected_then_the_email_lists_the_files_and_why() {
        let mut r = request("req-1", EgressStatus::Rejected);
        r.checks_rejection_reason = Some(
            "Automated output checks (policy p-1) blocked this request: out/ids.txt: pii-nhs-number (2x): The file contains NHS numbers.;".into(),
        );
        let email = outcome_email(&r, Outcome::Rejected, false, &CTX).unwrap();
        assert!(
            email
                .text
                .contains("Rejected automatically by the output checks"),
            "{}",
            email.text
        );
        assert!(
            email.text.contains("out/ids.txt: pii-nhs-number (2x)"),
            "{}",
            email.text
        );
        assert!(email.text.contains("submit it again"));
        let plain = request("req-1", EgressStatus::Rejected);
        let email = outcome_email(&plain, Outcome::Rejected, false, &CTX).unwrap();
        assert!(!email.text.contains("output checks"));
    }

    #[test]
    fn when_expired_or_failed_then_the_text_says_so() {
        let r = request("req-1", EgressStatus::Expired);
        let email = outcome_email(&r, Outcome::Expired, false, &CTX).unwrap();
        assert!(email.text.contains("EXPIRED"));
        let email = outcome_email(&r, Outcome::Failed, false, &CTX).unwrap();
        assert!(email.text.contains("could not be processed"));
        assert!(email.text.contains("admin has been alerted"));
        assert!(email.text.contains("no data has left the TRE"));
    }

    #[test]
    fn when_the_submission_was_invalid_then_the_email_says_which_files_to_rename() {
        let mut r = request("req-1", EgressStatus::Failed);
        r.failure_error = Some("ValidationError".into());
        r.failure_cause = Some(
            r#"{"errorType":"ValidationError","errorMessage":"1 name clash(es): rename \"ws/Data.csv\" and \"ws/data.csv\""}"#
                .into(),
        );
        let email = outcome_email(&r, Outcome::Failed, false, &CTX).unwrap();
        assert!(
            email.text.contains(
                "What was wrong with the submission: 1 name clash(es): rename \"ws/Data.csv\" and \"ws/data.csv\""
            ),
            "{}",
            email.text
        );
    }

    #[test]
    fn when_the_failure_was_the_services_own_then_its_cause_is_not_emailed() {
        let mut r = request("req-1", EgressStatus::Failed);
        r.failure_error = Some("TransientError".into());
        r.failure_cause = Some(r#"{"errorMessage":"internal detail"}"#.into());
        let email = outcome_email(&r, Outcome::Failed, false, &CTX).unwrap();
        assert!(!email.text.contains("internal detail"));
        assert!(!email.text.contains("What was wrong"));
    }

    #[test]
    fn when_a_validation_message_is_huge_then_the_email_carries_a_shortened_excerpt() {
        let mut r = request("req-1", EgressStatus::Failed);
        r.failure_error = Some("ValidationError".into());
        r.failure_cause = Some("x".repeat(50_000));
        let problem = submission_problem(&r).unwrap();
        assert!(problem.chars().count() < MAX_PROBLEM_CHARS + 20);
        assert!(problem.ends_with("(shortened)"));
    }

    fn failed_after_approval() -> EgressRequest {
        let mut r = request("req-1", EgressStatus::Failed);
        r.ig_reviewer_1_decision = Some(Decision::Approved);
        r.ig_reviewer_1_reason = Some("Aggregated".into());
        r
    }

    #[test]
    fn when_the_failure_came_after_the_archive_was_written_then_the_email_does_not_say_no_data_left(
    ) {
        // The request records the archive copy-to-datalake wrote before a later step failed.
        let mut r = failed_after_approval();
        r.archive_key = Some("approved_egress/ws/req-1/egress_data.zip".into());
        let email = outcome_email(&r, Outcome::Failed, false, &CTX).unwrap();
        assert!(
            !email.text.to_lowercase().contains("no data has left"),
            "{}",
            email.text
        );
        assert!(
            email.text.contains("already been written"),
            "{}",
            email.text
        );
        assert!(email.text.contains("admin has been alerted"));
        // The workflow saw the archive written even though the request does not record it.
        let r = failed_after_approval();
        let email = outcome_email(&r, Outcome::Failed, true, &CTX).unwrap();
        assert!(
            email.text.contains("already been written"),
            "{}",
            email.text
        );
    }

    #[test]
    fn when_an_approved_request_fails_before_its_archive_is_known_then_the_email_hedges() {
        let r = failed_after_approval();
        let email = outcome_email(&r, Outcome::Failed, false, &CTX).unwrap();
        assert!(!email.text.contains("no data has left"), "{}", email.text);
        assert!(email.text.contains("will check what was written"));
        let mut dual = failed_after_approval();
        dual.approval_mode = ApprovalMode::Dual;
        dual.is_single_approval_enabled = false;
        assert_eq!(
            archive_state(&dual, false),
            ArchiveState::None,
            "RIT never approved"
        );
        dual.rit_reviewer_2_decision = Some(Decision::Approved);
        assert_eq!(archive_state(&dual, false), ArchiveState::Possible);
        dual.rit_reviewer_2_decision = Some(Decision::Rejected);
        assert_eq!(archive_state(&dual, false), ArchiveState::None);
    }

    #[test]
    fn when_only_the_owner_email_is_known_then_the_owner_is_told() {
        let mut r = request("req-1", EgressStatus::Rejected);
        r.requested_by_email = Some(String::new());
        assert_eq!(recipients(&r), vec!["owner@example.org"]);
        r.store_owner_email = None;
        assert!(recipients(&r).is_empty());
        assert!(outcome_email(&r, Outcome::Rejected, false, &CTX).is_none());
    }

    #[test]
    fn when_sizing_then_units_are_human() {
        assert_eq!(human_bytes(12), "12 bytes");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
