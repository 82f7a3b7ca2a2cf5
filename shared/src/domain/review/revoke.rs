//! Revoking a release (`revokeRelease`), as plain rules: who may revoke, which requests can
//! be revoked, where the archive goes, and who is told.
//!
//! A revocation withdraws an approved release after the fact (a disclosure risk found late):
//! the request becomes `REVOKED`, which [`super::authorize_download`] and the download
//! counter already refuse (they require the final approval), and its archive is moved from
//! `approved_egress/…` to `revoked/approved_egress/…`, outside what the API ever presigns. The
//! signed release record and its signature stay where they are, so the release remains
//! verifiable: it states what was released, and the audit trail states that it was revoked.

use crate::domain::notify;
use crate::domain::transitions::final_approval;
use crate::error::{EgressError, Result};
use crate::model::{EgressRequest, EgressStatus, RevokeReleaseInput};
use crate::ports::{Email, RevocationClaim};

use super::{group_name, validate_reason, ReviewPolicy, Reviewer};

/// The admin group when a deployment does not name one (`AdminGroupName`'s default).
pub const DEFAULT_ADMIN_GROUP: &str = "EgressAdmin";

/// The `revokeRelease` result on success.
pub const REVOKE_SUCCESS_MESSAGE: &str = "Release revoked";

/// Where a revoked archive is kept: the same key under this prefix, which the API never
/// presigns and the reviewers' download permission does not cover.
pub const REVOKED_PREFIX: &str = "revoked/";

impl ReviewPolicy {
    /// The admin group of a deployment (`ADMIN_GROUP`): a [`group_name`] that is neither
    /// review stage's group (an admin may revoke what a stage approved; one group must not
    /// hold both powers). The error names the setting, as [`ReviewPolicy::from_groups`] does.
    pub fn admin_group(&self, raw: &str) -> Result<String> {
        let admin = group_name(raw).ok_or_else(|| {
            EgressError::Config(format!(
                "ADMIN_GROUP has an invalid group name {raw:?}: a letter, then up to 63 \
                 letters, digits, '_' or '-'"
            ))
        })?;
        if admin == self.ig_group || admin == self.rit_group {
            return Err(EgressError::Config(format!(
                "ADMIN_GROUP must differ from the reviewer groups (it is {admin:?}): revoking \
                 a release is not a review stage's power"
            )));
        }
        Ok(admin.to_string())
    }
}

/// The key a revoked archive is moved to.
pub fn revoked_key(archive_key: &str) -> String {
    format!("{REVOKED_PREFIX}{archive_key}")
}

/// `revokeRelease`: may `reviewer` revoke `request` now? Only members of `admin_group` (as
/// the pool grants it now), only a final approval. A request already `REVOKED` is a conflict.
pub fn authorize_revoke(
    admin_group: &str,
    reviewer: &Reviewer,
    request: &EgressRequest,
) -> Result<EgressStatus> {
    if !reviewer.is_in(admin_group) {
        return Err(EgressError::Forbidden(format!(
            "Only members of {admin_group} can revoke a release"
        )));
    }
    let approved = final_approval(request.approval_mode);
    match request.egress_status {
        s if s == approved => Ok(approved),
        EgressStatus::Revoked => Err(EgressError::Conflict(
            "This release has already been revoked".into(),
        )),
        other => Err(EgressError::Conflict(format!(
            "Only an approved release can be revoked; this request is {other}"
        ))),
    }
}

/// Everything `revokeRelease` will write, or why it may not: authorization, then the reason.
pub fn plan_revocation(
    admin_group: &str,
    reviewer: &Reviewer,
    request: &EgressRequest,
    input: &RevokeReleaseInput,
    now_iso: &str,
) -> Result<RevocationClaim> {
    let approved_status = authorize_revoke(admin_group, reviewer, request)?;
    let reason = validate_reason("reason", Some(&input.reason))?;
    Ok(RevocationClaim {
        egress_request_id: request.egress_request_id.clone(),
        approved_status,
        reason,
        revoked_by: reviewer.username.clone(),
        revoked_by_email: reviewer.email.clone(),
        at: now_iso.to_string(),
    })
}

/// The reviewers who approved `request` (their e-mails as recorded by their decisions),
/// without duplicates.
pub fn reviewer_recipients(request: &EgressRequest) -> Vec<String> {
    let mut to: Vec<String> = Vec::new();
    for email in [&request.ig_reviewer_1_email, &request.rit_reviewer_2_email]
        .into_iter()
        .flatten()
    {
        let email = email.trim();
        if !email.is_empty() && !to.iter().any(|t| t.eq_ignore_ascii_case(email)) {
            to.push(email.to_string());
        }
    }
    to
}

/// The e-mails telling the requester and the reviewers who approved the release that it was
/// revoked, and why. The requester's does not name the admin (as the outcome e-mail names no
/// reviewer); the reviewers' does. Either is left out when it has nobody to go to.
pub fn revocation_emails(request: &EgressRequest, claim: &RevocationClaim) -> Vec<Email> {
    let name = &request.egress_store_name;
    let id = &request.egress_request_id;
    let subject = format!("Egress release revoked: {name}");
    let mut emails = Vec::new();
    let requester = notify::recipients(request);
    if !requester.is_empty() {
        emails.push(Email {
            to: requester,
            subject: subject.clone(),
            text: format!(
                "Your egress request {id} ({name}) had been approved; its release has been \
                 REVOKED by the TRE administrators on {at}.\n\nReason:\n{reason}\n\nThe approved \
                 archive can no longer be downloaded. Contact the TRE admin if you have \
                 questions.\n",
                at = claim.at,
                reason = claim.reason,
            ),
            html: None,
        });
    }
    let reviewers = reviewer_recipients(request);
    if !reviewers.is_empty() {
        emails.push(Email {
            to: reviewers,
            subject,
            text: format!(
                "The release of egress request {id} ({name}), which you reviewed, has been \
                 REVOKED by {by} on {at}.\n\nReason:\n{reason}\n\nThe archive is no longer \
                 downloadable: it was moved out of the approved location. The signed release \
                 record and the audit trail are kept.\n",
                by = claim.revoked_by_email,
                at = claim.at,
                reason = claim.reason,
            ),
            html: None,
        });
    }
    emails
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::review::authorize_download;
    use crate::fakes::{approved, sample_request};
    use crate::model::ApprovalMode::{Dual, Single};

    fn policy() -> ReviewPolicy {
        ReviewPolicy::from_groups("IG", "RIT", "", 3).unwrap()
    }

    fn admin(groups: &[&str]) -> Reviewer {
        Reviewer {
            sub: "sub-ada".into(),
            username: "ada".into(),
            email: "ada@example.org".into(),
            name: "Ada".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            federated_by: None,
        }
    }

    fn input(reason: &str) -> RevokeReleaseInput {
        RevokeReleaseInput {
            egress_request_id: "req-1".into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn when_the_admin_group_is_invalid_or_a_reviewer_group_then_the_setting_is_named() {
        assert_eq!(policy().admin_group("EgressAdmin").unwrap(), "EgressAdmin");
        for bad in [
            "",
            "1Admin",
            "Egress Admin",
            "IG",
            "RIT",
            "a\"]) @aws_api_key #",
        ] {
            let err = policy().admin_group(bad).unwrap_err();
            assert_eq!(err.error_type(), "ConfigError");
            assert!(err.to_string().starts_with("ADMIN_GROUP "), "{bad}: {err}");
        }
    }

    #[test]
    fn when_each_status_is_revoked_then_only_the_final_approval_of_its_mode_is_accepted() {
        let ada = admin(&["EgressAdmin"]);
        for (mode, status, ok) in [
            (Single, EgressStatus::IgApproved, true),
            (Dual, EgressStatus::RitApproved, true),
            (Dual, EgressStatus::IgApproved, false),
            (Single, EgressStatus::Processing, false),
            (Single, EgressStatus::Rejected, false),
            (Single, EgressStatus::Expired, false),
            (Single, EgressStatus::Failed, false),
            (Single, EgressStatus::Revoked, false),
        ] {
            let mut r = sample_request("req-1", mode);
            r.egress_status = status;
            let got = authorize_revoke("EgressAdmin", &ada, &r);
            assert_eq!(got.is_ok(), ok, "{mode:?} {status}: {got:?}");
            if let Err(err) = got {
                assert_eq!(err.error_type(), "Conflict");
            }
        }
    }

    #[test]
    fn when_a_reviewer_not_in_the_admin_group_revokes_then_it_is_forbidden() {
        let r = approved(sample_request("req-1", Single), 0);
        let err = authorize_revoke("EgressAdmin", &admin(&["IG", "RIT"]), &r).unwrap_err();
        assert_eq!(err.error_type(), "Forbidden");
        // Exact, case-sensitive names, as Cognito's.
        let err = authorize_revoke("EgressAdmin", &admin(&["egressadmin"]), &r).unwrap_err();
        assert_eq!(err.error_type(), "Forbidden");
    }

    #[test]
    fn when_a_revocation_is_planned_then_the_reason_is_checked_and_identity_is_the_servers() {
        let r = approved(sample_request("req-1", Dual), 0);
        let ada = admin(&["EgressAdmin"]);
        let err = plan_revocation("EgressAdmin", &ada, &r, &input("short"), "t").unwrap_err();
        assert_eq!(err.error_type(), "ValidationError");
        let claim = plan_revocation(
            "EgressAdmin",
            &ada,
            &r,
            &input("  Identifiable data found  "),
            "2024-05-03T12:00:00.000Z",
        )
        .unwrap();
        assert_eq!(claim.approved_status, EgressStatus::RitApproved);
        assert_eq!(claim.reason, "Identifiable data found");
        assert_eq!(claim.revoked_by, "ada");
        assert_eq!(claim.revoked_by_email, "ada@example.org");
    }

    #[test]
    fn when_a_release_is_revoked_then_a_download_is_refused_whatever_the_group() {
        let mut r = approved(sample_request("req-1", Single), 0);
        r.egress_status = EgressStatus::Revoked;
        let err = authorize_download(&policy(), &["IG".to_string()], &r).unwrap_err();
        assert_eq!(err.error_type(), "Conflict");
        assert!(err.to_string().contains("REVOKED"), "{err}");
    }

    #[test]
    fn when_the_revoked_key_is_made_then_it_leaves_the_approved_prefix() {
        let key = "approved_egress/ws-1/req-1/egress_data.zip";
        assert_eq!(revoked_key(key), format!("revoked/{key}"));
        assert!(!revoked_key(key).starts_with("approved_egress/"));
    }

    #[test]
    fn when_nobody_is_recorded_then_no_email_is_made_and_reviewers_are_deduplicated() {
        let mut r = approved(sample_request("req-1", Dual), 0);
        r.requested_by_email = None;
        r.store_owner_email = None;
        let claim = plan_revocation(
            "EgressAdmin",
            &admin(&["EgressAdmin"]),
            &r,
            &input("Identifiable data found"),
            "t",
        )
        .unwrap();
        assert!(revocation_emails(&r, &claim).is_empty());
        r.ig_reviewer_1_email = Some("Iris@example.org".into());
        r.rit_reviewer_2_email = Some("iris@example.org ".into());
        let emails = revocation_emails(&r, &claim);
        assert_eq!(emails.len(), 1);
        assert_eq!(emails[0].to, vec!["Iris@example.org"]);
        assert!(emails[0].text.contains("ada@example.org"));
    }
}
