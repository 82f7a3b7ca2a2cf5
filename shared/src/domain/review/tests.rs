//! The authorization matrix (role × operation × request state) and the other rules of the
//! reviewer API.

use super::*;
use crate::fakes::{approved, parked_at, sample_request};
use crate::model::ApiEvent;
use crate::model::ApprovalMode::{Dual, Single};
use crate::model::ReviewStage::{Ig, Rit};
use time::macros::datetime;

const IG: &str = "IGApprover";
const RIT: &str = "ResearchITAdmin";
const HANDLE: &str = "handle-1";

fn policy() -> ReviewPolicy {
    ReviewPolicy {
        ig_group: IG.into(),
        rit_group: RIT.into(),
        download_groups: vec![IG.into(), RIT.into()],
        max_downloads: 3,
    }
}

fn reviewer(sub: &str, email: &str, groups: &[&str]) -> Reviewer {
    Reviewer {
        sub: sub.into(),
        username: format!("user-{sub}"),
        email: email.into(),
        name: format!("Name {sub}"),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        federated_by: None,
    }
}

/// The roles of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    IgReviewer,
    RitReviewer,
    BothGroups,
    /// In the IG group and the submitter of the request (e-mail in another case).
    SubmitterInIg,
    /// In both groups and the person who made the IG decision of the RIT-stage fixture.
    IgDeciderInBoth,
    /// Signed in, in no group.
    Outsider,
    /// In a group the API does not know.
    OtherGroup,
}

const ROLES: [Role; 7] = [
    Role::IgReviewer,
    Role::RitReviewer,
    Role::BothGroups,
    Role::SubmitterInIg,
    Role::IgDeciderInBoth,
    Role::Outsider,
    Role::OtherGroup,
];

fn as_reviewer(role: Role) -> Reviewer {
    match role {
        Role::IgReviewer => reviewer("sub-ig2", "iris@example.org", &[IG]),
        Role::RitReviewer => reviewer("sub-rit", "rita@example.org", &[RIT]),
        Role::BothGroups => reviewer("sub-both", "bo@example.org", &[IG, RIT]),
        Role::SubmitterInIg => reviewer("sub-res", "Researcher@Example.org", &[IG, RIT]),
        Role::IgDeciderInBoth => reviewer("sub-ig", "ivy@example.org", &[IG, RIT]),
        Role::Outsider => reviewer("sub-out", "out@example.org", &[]),
        Role::OtherGroup => reviewer("sub-oth", "other@example.org", &["Researchers"]),
    }
}

/// The request states of the matrix.
#[derive(Debug, Clone, Copy)]
enum State {
    IgStageDual,
    IgStageSingle,
    RitStage,
    /// PROCESSING, but `record-task-token` has not parked the review yet.
    NotYetParked,
    ApprovedSingle,
    ApprovedDual,
    ApprovedDualLimitReached,
    Rejected,
    Failed,
    Expired,
}

const STATES: [State; 10] = [
    State::IgStageDual,
    State::IgStageSingle,
    State::RitStage,
    State::NotYetParked,
    State::ApprovedSingle,
    State::ApprovedDual,
    State::ApprovedDualLimitReached,
    State::Rejected,
    State::Failed,
    State::Expired,
];

fn request_in(state: State) -> EgressRequest {
    let dual = sample_request("req-1", Dual);
    match state {
        State::IgStageDual => parked_at(dual, Ig, "sfn-token", HANDLE),
        State::IgStageSingle => parked_at(sample_request("req-1", Single), Ig, "sfn-token", HANDLE),
        State::RitStage => parked_at(dual, Rit, "sfn-token", HANDLE),
        State::NotYetParked => dual,
        State::ApprovedSingle => approved(sample_request("req-1", Single), 0),
        State::ApprovedDual => approved(parked_at(dual, Rit, "t", "h"), 1),
        State::ApprovedDualLimitReached => approved(parked_at(dual, Rit, "t", "h"), 3),
        State::Rejected => EgressRequest {
            egress_status: EgressStatus::Rejected,
            ..dual
        },
        State::Failed => EgressRequest {
            egress_status: EgressStatus::Failed,
            ..dual
        },
        State::Expired => EgressRequest {
            egress_status: EgressStatus::Expired,
            ..dual
        },
    }
}

/// Whether `reviewer` may decide `request`, sending `handle`, under [`policy`].
fn authorize(reviewer: &Reviewer, request: &EgressRequest, handle: &str) -> Result<ReviewStage> {
    authorize_decision(&policy(), reviewer, request, handle)
}

/// What `role` plans when sending `sent` for `request` (at time `t`).
fn plan(role: Role, request: &EgressRequest, sent: &UpdateRequestInput) -> Result<DecisionClaim> {
    plan_decision(&policy(), &as_reviewer(role), request, sent, "t")
}

/// What an operation gives, by error name.
fn verdict<T>(result: Result<T>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.error_type(),
    }
}

fn input(stage: ReviewStage, decision: &str) -> UpdateRequestInput {
    let mut input = UpdateRequestInput {
        egress_request_id: "req-1".into(),
        task_token: HANDLE.into(),
        ..Default::default()
    };
    match stage {
        Ig => {
            input.ig_reviewer_1_decision = Some(decision.into());
            input.ig_reviewer_1_reason = Some("Only aggregate statistics".into());
        }
        Rit => {
            input.rit_reviewer_2_decision = Some(decision.into());
            input.rit_reviewer_2_reason = Some("Checked: no identifiers".into());
        }
    }
    input
}

/// Decides with the fields the web app sends for the stage the caller thinks applies: the
/// stored stage when the request is parked, else IG.
fn decide(role: Role, state: State) -> &'static str {
    let request = request_in(state);
    let stage = request.review_stage.unwrap_or(Ig);
    verdict(plan_decision(
        &policy(),
        &as_reviewer(role),
        &request,
        &input(stage, "APPROVED"),
        "2024-05-03T12:00:00.000Z",
    ))
}

fn download(role: Role, state: State) -> &'static str {
    verdict(authorize_download(
        &policy(),
        &as_reviewer(role).groups,
        &request_in(state),
    ))
}

fn list(role: Role) -> &'static str {
    verdict(authorize_list(&policy(), &as_reviewer(role).groups))
}

#[test]
fn when_each_role_decides_in_each_state_then_the_matrix_holds() {
    use Role::*;
    use State::*;
    // Stale (Conflict) for every state without a parked review, to every reviewer; the
    // outsider and unknown groups are Forbidden before the state is even looked at.
    let expected = |role: Role, state: State| -> &'static str {
        match (role, state) {
            (Outsider | OtherGroup, _) => "Forbidden",
            (
                _,
                NotYetParked
                | ApprovedSingle
                | ApprovedDual
                | ApprovedDualLimitReached
                | Rejected
                | Failed
                | Expired,
            ) => "Conflict",
            (SubmitterInIg, _) => "Forbidden",
            (IgReviewer, IgStageDual | IgStageSingle) => "ok",
            (IgReviewer, RitStage) => "Forbidden",
            (RitReviewer, IgStageDual | IgStageSingle) => "Forbidden",
            (RitReviewer, RitStage) => "ok",
            (BothGroups, IgStageDual | IgStageSingle | RitStage) => "ok",
            (IgDeciderInBoth, IgStageDual | IgStageSingle) => "ok",
            (IgDeciderInBoth, RitStage) => "Forbidden",
        }
    };
    for role in ROLES {
        for state in STATES {
            assert_eq!(
                decide(role, state),
                expected(role, state),
                "decide: {role:?} × {state:?}"
            );
        }
    }
}

#[test]
fn when_each_role_downloads_in_each_state_then_the_matrix_holds() {
    use Role::*;
    use State::*;
    let expected = |role: Role, state: State| -> &'static str {
        match (role, state) {
            (Outsider | OtherGroup, _) => "Forbidden",
            (_, ApprovedSingle | ApprovedDual) => "ok",
            (_, ApprovedDualLimitReached) => "Conflict",
            // In review, rejected, failed, expired: nothing to download.
            _ => "Conflict",
        }
    };
    for role in ROLES {
        for state in STATES {
            assert_eq!(
                download(role, state),
                expected(role, state),
                "download: {role:?} × {state:?}"
            );
        }
    }
}

#[test]
fn when_each_role_lists_then_only_api_groups_see_requests() {
    for role in ROLES {
        let expected = match role {
            Role::Outsider | Role::OtherGroup => "Forbidden",
            _ => "ok",
        };
        assert_eq!(list(role), expected, "list: {role:?}");
    }
}

#[test]
fn when_download_groups_are_restricted_then_other_reviewers_are_forbidden() {
    let policy = ReviewPolicy {
        download_groups: vec![IG.into()],
        ..policy()
    };
    let request = request_in(State::ApprovedDual);
    let rit = as_reviewer(Role::RitReviewer);
    assert_eq!(
        verdict(authorize_download(&policy, &rit.groups, &request)),
        "Forbidden"
    );
    let ig = as_reviewer(Role::IgReviewer);
    assert_eq!(
        verdict(authorize_download(&policy, &ig.groups, &request)),
        "ok"
    );
}

#[test]
fn when_a_download_only_group_is_configured_then_its_members_may_list() {
    let policy = ReviewPolicy {
        download_groups: vec![IG.into(), "DataCustodian".into()],
        ..policy()
    };
    assert_eq!(policy.api_groups(), vec![IG, RIT, "DataCustodian"]);
    assert!(authorize_list(&policy, &["DataCustodian".to_string()]).is_ok());
}

#[test]
fn when_group_names_differ_only_in_case_or_by_substring_then_they_do_not_match() {
    for groups in [
        vec!["igapprover"],
        vec!["IGApprover-old"],
        vec!["IGApprove"],
    ] {
        let groups: Vec<String> = groups.into_iter().map(String::from).collect();
        assert!(authorize_list(&policy(), &groups).is_err(), "{groups:?}");
    }
}

#[test]
fn when_the_limit_is_reached_then_the_web_apps_message_is_returned() {
    let err = authorize_download(
        &policy(),
        &as_reviewer(Role::IgReviewer).groups,
        &request_in(State::ApprovedDualLimitReached),
    )
    .unwrap_err();
    assert_eq!(err, EgressError::Conflict(DOWNLOAD_LIMIT_MESSAGE.into()));
}

#[test]
fn when_the_archive_is_not_written_yet_then_the_download_is_a_conflict() {
    let mut request = request_in(State::ApprovedSingle);
    request.archive_key = None;
    let err = authorize_download(&policy(), &[IG.to_string()], &request).unwrap_err();
    assert_eq!(err.error_type(), "Conflict");
    assert!(err.to_string().contains("not ready"), "{err}");
}

#[test]
fn when_the_recorded_archive_is_outside_the_layout_then_it_is_not_presigned() {
    let mut request = request_in(State::ApprovedSingle);
    request.archive_key = Some("approved_egress/other-ws/req-1/egress_data.zip".into());
    let err = authorize_download(&policy(), &[IG.to_string()], &request).unwrap_err();
    assert_eq!(err.error_type(), "InternalError");
}

#[test]
fn when_the_handle_is_stale_then_the_web_apps_message_is_returned() {
    let request = request_in(State::IgStageDual);
    let mut stale = input(Ig, "APPROVED");
    stale.task_token = "handle-0".into();
    let err = plan(Role::IgReviewer, &request, &stale).unwrap_err();
    assert_eq!(err, EgressError::Conflict(STALE_REQUEST_MESSAGE.into()));
    // Sending the Step Functions token itself is no better than any other wrong handle.
    stale.task_token = "sfn-token".into();
    let err = plan(Role::IgReviewer, &request, &stale).unwrap_err();
    assert_eq!(err, EgressError::Conflict(STALE_REQUEST_MESSAGE.into()));
}

#[test]
fn when_a_decision_is_planned_then_identity_and_time_come_from_the_server() {
    let request = request_in(State::IgStageDual);
    let mut forged = input(Ig, "APPROVED");
    forged.ig_reviewer_1_name = Some("Someone Else".into());
    forged.ig_reviewer_1_email = Some("someone@else.org".into());
    forged.ig_reviewer_1_dt = Some("Wed, 01 Jan 2020 00:00:00 GMT".into());
    let reviewer = as_reviewer(Role::IgReviewer);
    let claim = plan_decision(
        &policy(),
        &reviewer,
        &request,
        &forged,
        "2024-05-03T12:00:00.000Z",
    )
    .unwrap();
    assert_eq!(claim.stage, Ig);
    assert_eq!(claim.decision, Decision::Approved);
    assert_eq!(claim.reviewer_name, reviewer.name);
    assert_eq!(claim.reviewer_email, reviewer.email);
    assert_eq!(claim.reviewer_sub, reviewer.sub);
    assert_eq!(claim.reviewer_username, reviewer.username);
    assert_eq!(claim.at, "2024-05-03T12:00:00.000Z");
    assert_eq!(claim.expected_handle, HANDLE);
    assert_eq!(claim.awaiting_status, EgressStatus::Processing);
    assert_eq!(claim.new_status, EgressStatus::IgApproved);
    let outcome = review_outcome(&claim);
    assert_eq!(outcome.reviewer, reviewer.username);
    assert_eq!(outcome.reviewer_email, reviewer.email);
    assert_eq!(outcome.decided_at, "2024-05-03T12:00:00.000Z");
}

#[test]
fn when_the_client_resends_a_first_stage_decision_then_it_is_ignored() {
    // The web app resends `ig_reviewer_1_decision` at the RIT stage; a forged REJECTED (or
    // APPROVED on a rejected request) must change nothing.
    let request = request_in(State::RitStage);
    let mut sent = input(Rit, "APPROVED");
    sent.ig_reviewer_1_decision = Some("REJECTED".into());
    let claim = plan(Role::RitReviewer, &request, &sent).unwrap();
    assert_eq!(claim.stage, Rit);
    assert_eq!(claim.new_status, EgressStatus::RitApproved);
}

#[test]
fn when_a_reviewer_sends_the_other_stages_fields_then_the_decision_is_missing() {
    let request = request_in(State::IgStageDual);
    let err = plan(Role::BothGroups, &request, &input(Rit, "APPROVED")).unwrap_err();
    assert_eq!(err.error_type(), "ValidationError");
    assert!(err.to_string().contains("ig_reviewer_1_decision"), "{err}");
}

#[test]
fn when_rejecting_then_the_status_is_rejected_at_either_stage() {
    for (state, role, stage) in [
        (State::IgStageDual, Role::IgReviewer, Ig),
        (State::RitStage, Role::RitReviewer, Rit),
    ] {
        let claim = plan(role, &request_in(state), &input(stage, "REJECTED")).unwrap();
        assert_eq!(claim.new_status, EgressStatus::Rejected, "{state:?}");
        assert_eq!(claim.decision, Decision::Rejected);
    }
}

#[test]
fn when_the_decision_value_is_not_exact_then_it_is_refused() {
    for value in ["approved", "APPROVE", "YES", ""] {
        let err = decision_input(Ig, &input(Ig, value)).unwrap_err();
        assert_eq!(err.error_type(), "ValidationError", "{value}");
        assert!(
            err.to_string().contains("\"APPROVED\" or \"REJECTED\""),
            "{err}"
        );
    }
}

#[test]
fn when_the_reason_is_too_short_too_long_or_has_control_characters_then_it_is_refused() {
    let too_long = "x".repeat(REASON_MAX_CHARS + 1);
    for (reason, expect) in [
        (None, "min 10"),
        (Some("   short  "), "min 10"),
        (Some(too_long.as_str()), "too long"),
        (Some("Fine reason\u{7}bell"), "control"),
    ] {
        let mut sent = input(Ig, "APPROVED");
        sent.ig_reviewer_1_reason = reason.map(String::from);
        let err = decision_input(Ig, &sent).unwrap_err();
        assert_eq!(err.error_type(), "ValidationError");
        assert!(err.to_string().contains(expect), "{reason:?}: {err}");
    }
    let exact = "y".repeat(REASON_MAX_CHARS);
    assert_eq!(validate_reason("r", Some(&exact)).unwrap(), exact);
    assert_eq!(
        validate_reason("r", Some("  line one\nline two  ")).unwrap(),
        "line one\nline two"
    );
}

#[test]
fn when_the_store_owner_or_submitter_username_decides_then_it_is_forbidden() {
    let request = request_in(State::IgStageDual);
    let owner = reviewer("sub-own", "OWNER@example.org", &[IG]);
    assert_eq!(verdict(authorize(&owner, &request, HANDLE)), "Forbidden");
    let mut same_username = reviewer("sub-x", "x@example.org", &[IG]);
    same_username.username = "u-researcher".into();
    assert_eq!(
        verdict(authorize(&same_username, &request, HANDLE)),
        "Forbidden"
    );
}

#[test]
fn when_the_ig_reviewer_uses_a_second_account_with_the_same_email_then_rit_is_forbidden() {
    let request = request_in(State::RitStage);
    let second = reviewer("sub-other-account", "IVY@example.org", &[RIT]);
    assert_eq!(verdict(authorize(&second, &request, HANDLE)), "Forbidden");
}

#[test]
fn when_the_rit_stage_lacks_an_ig_approval_then_it_is_a_conflict() {
    let mut request = request_in(State::RitStage);
    request.ig_reviewer_1_sub = None;
    assert_eq!(
        verdict(authorize(&as_reviewer(Role::RitReviewer), &request, HANDLE)),
        "Conflict"
    );
}

#[test]
fn when_a_rit_stage_is_parked_in_single_mode_then_it_is_not_decidable() {
    let request = parked_at(sample_request("req-1", Single), Rit, "t", HANDLE);
    assert_eq!(awaiting_stage(&request), None);
}

fn caller(sub: &str, username: &str) -> CallerIdentity {
    CallerIdentity {
        sub: sub.into(),
        username: username.into(),
        email: None,
        name: None,
        groups: vec![IG.into()],
        issuer: None,
    }
}

fn user(sub: &str) -> DirectoryUser {
    DirectoryUser {
        sub: sub.into(),
        email: Some("iris@example.org".into()),
        email_verified: Some(true),
        name: None,
        enabled: true,
        ..Default::default()
    }
}

/// A user of the pool itself, still in the groups their token names.
fn native() -> PoolStanding {
    PoolStanding {
        federated_by: None,
        groups: vec![IG.into(), RIT.into()],
    }
}

/// A federated user whose IdP is configured in the pool and whose IdP groups map to IG.
fn federated() -> PoolStanding {
    PoolStanding {
        federated_by: Some("corp-saml".into()),
        groups: vec![IG.into()],
    }
}

#[test]
fn when_resolving_then_email_comes_from_the_pool_and_groups_from_the_token() {
    let reviewer = resolve_reviewer(&caller("s1", "iris"), Some(&user("s1")), &native()).unwrap();
    assert_eq!(reviewer.email, "iris@example.org");
    assert_eq!(
        reviewer.name, "iris@example.org",
        "name falls back to the e-mail"
    );
    assert_eq!(reviewer.groups, vec![IG.to_string()]);
    let named = DirectoryUser {
        name: Some("Iris Reviewer".into()),
        ..user("s1")
    };
    assert_eq!(
        resolve_reviewer(&caller("s1", "iris"), Some(&named), &native())
            .unwrap()
            .name,
        "Iris Reviewer"
    );
}

#[test]
fn when_the_user_is_gone_disabled_replaced_unverified_or_without_email_then_forbidden() {
    let c = caller("s1", "iris");
    let cases: Vec<(Option<DirectoryUser>, &str)> = vec![
        (None, "no longer exists"),
        (Some(user("s2")), "sign in again"),
        (
            Some(DirectoryUser {
                enabled: false,
                ..user("s1")
            }),
            "disabled",
        ),
        (
            Some(DirectoryUser {
                email_verified: Some(false),
                ..user("s1")
            }),
            "not verified",
        ),
        (
            Some(DirectoryUser {
                email: None,
                ..user("s1")
            }),
            "no e-mail",
        ),
    ];
    for (u, expect) in cases {
        let err = resolve_reviewer(&c, u.as_ref(), &native()).unwrap_err();
        assert_eq!(err.error_type(), "Forbidden");
        assert!(err.to_string().contains(expect), "{expect}: {err}");
    }
    let err = resolve_reviewer(&caller("", "iris"), Some(&user("")), &native()).unwrap_err();
    assert_eq!(err.error_type(), "Forbidden");
}

#[test]
fn when_a_native_user_has_an_unverified_or_unknown_email_then_forbidden() {
    for verified in [Some(false), None] {
        let unverified = DirectoryUser {
            email_verified: verified,
            ..user("s1")
        };
        let err =
            resolve_reviewer(&caller("s1", "iris"), Some(&unverified), &native()).unwrap_err();
        assert_eq!(err.error_type(), "Forbidden", "{verified:?}");
        assert!(err.to_string().contains("not verified"), "{err}");
    }
}

#[test]
fn when_a_federated_user_has_an_unverified_email_then_their_idp_vouches_for_it() {
    // Cognito leaves `email_verified` false for SAML/OIDC users unless the IdP maps it.
    let jane = DirectoryUser {
        email: Some("jane@example.org".into()),
        email_verified: Some(false),
        identities: Some(
            r#"[{"providerName":"corp-saml","providerType":"SAML","userId":"jane@example.org"}]"#
                .into(),
        ),
        ..user("s1")
    };
    let reviewer = resolve_reviewer(
        &caller("s1", "corp-saml_jane@example.org"),
        Some(&jane),
        &federated(),
    )
    .unwrap();
    assert_eq!(reviewer.email, "jane@example.org");
    assert_eq!(reviewer.federated_by.as_deref(), Some("corp-saml"));
    assert_eq!(reviewer.groups, vec![IG.to_string()]);
}

#[test]
fn when_the_pool_no_longer_grants_a_token_group_then_the_reviewer_is_not_in_it() {
    let mut token = caller("s1", "iris");
    token.groups = vec![IG.into(), RIT.into()];
    let removed_from_ig = PoolStanding {
        federated_by: None,
        groups: vec![RIT.into(), "SomethingElse".into()],
    };
    let reviewer = resolve_reviewer(&token, Some(&user("s1")), &removed_from_ig).unwrap();
    assert_eq!(reviewer.groups, vec![RIT.to_string()], "token ∩ pool");
    // Nor does the pool add a group the token does not carry.
    token.groups = vec![];
    let reviewer = resolve_reviewer(&token, Some(&user("s1")), &native()).unwrap();
    assert!(reviewer.groups.is_empty());
    let err = authorize(&reviewer, &request_in(State::IgStageDual), HANDLE).unwrap_err();
    assert_eq!(err.error_type(), "Forbidden");
}

#[test]
fn when_a_request_has_ended_then_a_decision_is_refused_saying_it_needs_no_review() {
    // The web app shows Approve/Reject to Research IT on final single-approval requests,
    // and sends back the empty handle `listRequests` gave it.
    let rit = as_reviewer(Role::RitReviewer);
    let err = authorize(&rit, &request_in(State::ApprovedSingle), "").unwrap_err();
    assert_eq!(
        err,
        EgressError::Conflict(APPROVED_NO_REVIEW_MESSAGE.into())
    );
    assert!(!err.to_string().contains("Another user"), "{err}");
    for (state, says) in [
        (State::ApprovedDual, "approved at its final stage"),
        (State::Rejected, "rejected"),
        (State::Expired, "expired"),
        (State::Failed, "failed"),
    ] {
        let err = authorize(&rit, &request_in(state), "").unwrap_err();
        assert_eq!(err.error_type(), "Conflict");
        let text = err.to_string();
        assert!(
            text.starts_with("This request needs no further review"),
            "{state:?}: {text}"
        );
        assert!(text.contains(says), "{state:?}: {text}");
    }
    // Whoever held the handle of the stage that just closed lost a race: the stale message.
    let err = authorize(&rit, &request_in(State::ApprovedSingle), HANDLE).unwrap_err();
    assert_eq!(err, EgressError::Conflict(STALE_REQUEST_MESSAGE.into()));
    // A request that will be reviewed but is not parked yet is still just stale.
    let err = authorize(&rit, &request_in(State::NotYetParked), "").unwrap_err();
    assert_eq!(err, EgressError::Conflict(STALE_REQUEST_MESSAGE.into()));
}

#[test]
fn when_viewed_then_the_submitter_and_last_writer_are_shown_by_email() {
    let mut request = request_in(State::IgStageDual);
    request.store_owner_email = Some("owner@example.org".into());
    let view = request_view(&request);
    assert_eq!(view.requested_by, "researcher@example.org");
    assert_eq!(view.updated_by, "researcher@example.org");

    // Without the submitter's e-mail: the store owner's, then the SWB id.
    request.requested_by_email = None;
    assert_eq!(request_view(&request).requested_by, "owner@example.org");
    request.store_owner_email = Some("  ".into());
    assert_eq!(request_view(&request).requested_by, "u-researcher");

    // After a decision, the reviewer's username is shown as their e-mail.
    let mut decided = request_in(State::RitStage);
    decided.updated_by = "7d1f0c4e-reviewer-uuid".into();
    assert_eq!(request_view(&decided).updated_by, "ivy@example.org");
    decided.rit_reviewer_2_email = Some("rita@example.org".into());
    assert_eq!(request_view(&decided).updated_by, "rita@example.org");
    // The workflow's own name stays as it is.
    decided.updated_by = "system:egress-workflow".into();
    assert_eq!(request_view(&decided).updated_by, "system:egress-workflow");
    // The store keeps the ids.
    assert_eq!(request.requested_by, "u-researcher");
}

#[test]
fn when_viewed_then_task_token_is_the_handle_and_every_field_is_a_string() {
    let request = request_in(State::IgStageSingle);
    let view = request_view(&request);
    assert_eq!(view.task_token, HANDLE);
    assert_ne!(view.task_token, "sfn-token");
    assert_eq!(view.download_count, "0");
    assert_eq!(view.is_single_approval_enabled, "true");
    assert_eq!(view.s3_swb_object_metadata_version, "1");
    assert_eq!(view.egress_status, "PROCESSING");
    let json = serde_json::to_value(&view).unwrap();
    let fields = json.as_object().unwrap();
    assert_eq!(
        fields.len(),
        31,
        "the web app's 29 fields and the output checks' checks_verdict and checks_summary"
    );
    let text = json.to_string();
    assert!(
        !text.contains("sfn-token"),
        "the task token must never be listed"
    );
    assert!(
        !text.contains("_sub"),
        "reviewer subs are not part of the view"
    );

    let finished = request_view(&request_in(State::ApprovedDual));
    assert_eq!(finished.task_token, "", "no handle once no stage waits");
    assert_eq!(finished.download_count, "1");
    assert_eq!(finished.is_single_approval_enabled, "false");
    assert_eq!(finished.ig_reviewer_1_decision.as_deref(), Some("APPROVED"));
}

#[test]
fn when_listed_from_the_index_without_the_task_token_then_the_handle_is_still_shown() {
    // The list index does not project `sfn_task_token`; the web app must still get the
    // handle it sends back with its decision.
    let mut listed = request_in(State::IgStageSingle);
    listed.sfn_task_token = None;
    assert_eq!(request_view(&listed).task_token, HANDLE);
    assert_eq!(awaiting_stage(&listed), None, "deciding needs the token");
    let mut not_parked = request_in(State::NotYetParked);
    not_parked.review_handle = Some(HANDLE.into());
    not_parked.review_stage = Some(Rit);
    assert_eq!(
        request_view(&not_parked).task_token,
        "",
        "RIT does not await in PROCESSING"
    );
}

#[test]
fn when_an_age_limit_is_set_then_old_finished_requests_are_not_listed_but_reviews_are() {
    let filter = list_filter(datetime!(2024-06-30 12:00:00 UTC), 30);
    assert_eq!(
        filter.updated_since.as_deref(),
        Some("2024-05-31T12:00:00.000Z")
    );
    let old_rejected = EgressRequest {
        updated_dt: "2024-05-01T00:00:00.000Z".into(),
        ..request_in(State::Rejected)
    };
    assert!(!is_listed(&old_rejected, &filter));
    let recent_rejected = EgressRequest {
        updated_dt: "2024-06-29T00:00:00.000Z".into(),
        ..old_rejected.clone()
    };
    assert!(is_listed(&recent_rejected, &filter));
    for state in [State::IgStageDual, State::RitStage, State::NotYetParked] {
        assert!(
            is_listed(&request_in(state), &filter),
            "{state:?} is in review"
        );
    }
    assert!(!is_listed(&request_in(State::ApprovedSingle), &filter));
    assert_eq!(
        list_filter(datetime!(2024-06-30 12:00:00 UTC), 0),
        ListFilter::default()
    );
    assert!(is_listed(&old_rejected, &ListFilter::default()));
}

#[test]
fn when_the_resolver_payload_has_null_claims_then_it_deserializes_to_empty_values() {
    let event: ApiEvent = serde_json::from_value(serde_json::json!({
        "field": "listRequests",
        "identity": {"sub": "s", "username": "u", "email": null, "name": null, "groups": null},
        "arguments": {}
    }))
    .unwrap();
    assert!(event.identity.groups.is_empty());
    assert_eq!(event.identity.email, None);
}

#[test]
fn when_the_issuer_names_a_user_pool_then_that_pool_is_used_and_must_match_the_configured_one() {
    let iss = "https://cognito-idp.eu-west-2.amazonaws.com/eu-west-2_AbC123";
    assert_eq!(user_pool_id(Some(iss), None).unwrap(), "eu-west-2_AbC123");
    assert_eq!(
        user_pool_id(Some(iss), Some("eu-west-2_AbC123")).unwrap(),
        "eu-west-2_AbC123"
    );
    assert_eq!(
        user_pool_id(None, Some("eu-west-2_AbC123")).unwrap(),
        "eu-west-2_AbC123"
    );
    for (issuer, configured) in [
        (Some(iss), Some("eu-west-2_Other")),
        (Some("https://evil.example.org/eu-west-2_AbC123"), None),
        (Some("https://cognito-idp.eu-west-2.amazonaws.com/"), None),
        (
            Some("https://cognito-idp.eu-west-2.amazonaws.com/nounderscore"),
            None,
        ),
        (
            Some("https://cognito-idp.eu-west-2.amazonaws.com/eu-west-2_a/../x"),
            None,
        ),
        (None, None),
    ] {
        let err = user_pool_id(issuer, configured).unwrap_err();
        assert_eq!(err.error_type(), "Forbidden", "{issuer:?} {configured:?}");
    }
}

#[test]
fn when_the_shared_group_fixture_is_applied_then_every_case_gives_its_lists_or_names_its_setting() {
    // The same file is the test of the deploy gate's and the local API's schema renderers.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/fixtures/group-lists.json"
    );
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 15);
    for case in cases {
        let text = |k: &str| case[k].as_str().unwrap().to_string();
        let admin = case
            .get("admin")
            .and_then(|a| a.as_str())
            .unwrap_or(revoke::DEFAULT_ADMIN_GROUP);
        let got = ReviewPolicy::from_groups(&text("ig"), &text("rit"), &text("download"), 3)
            .and_then(|policy| policy.admin_group(admin).map(|a| (policy, a)));
        match case.get("error") {
            Some(var) => {
                let err = got.expect_err(&case.to_string());
                assert_eq!(err.error_type(), "ConfigError");
                assert!(
                    err.to_string().starts_with(var.as_str().unwrap()),
                    "{case}: {err}"
                );
            }
            None => {
                let (policy, admin) = got.unwrap();
                let expect = &case["expect"];
                let strings =
                    |k: &str| -> Vec<String> { serde_json::from_value(expect[k].clone()).unwrap() };
                assert_eq!(
                    vec![policy.ig_group.clone(), policy.rit_group.clone()],
                    strings("ReviewerGroups")
                );
                assert_eq!(policy.download_groups, strings("DownloadGroups"), "{case}");
                assert_eq!(policy.api_groups(), strings("ApiGroups"), "{case}");
                assert_eq!(vec![admin], strings("AdminGroups"), "{case}");
            }
        }
    }
}

/// A dual request whose IG approval was claimed by Iris at 09:00 and is still pending.
fn claimed_at_ig() -> EgressRequest {
    let mut r = parked_at(sample_request("req-1", Dual), Ig, "tok-ig", HANDLE);
    r.egress_status = EgressStatus::IgApproved;
    r.pending_task_token = r.sfn_task_token.take();
    r.review_handle = None;
    r.updated_by = "iris".into();
    r.updated_dt = "2024-05-01T09:00:00.000Z".into();
    r.ig_reviewer_1_name = Some("Iris".into());
    r.ig_reviewer_1_email = Some("iris@example.org".into());
    r.ig_reviewer_1_sub = Some("sub-iris".into());
    r.ig_reviewer_1_dt = Some(r.updated_dt.clone());
    r.ig_reviewer_1_reason = Some("checked".into());
    r.ig_reviewer_1_decision = Some(Decision::Approved);
    r
}

#[test]
fn when_a_claim_is_pending_then_its_stage_and_outcome_are_rebuilt_even_after_the_workflow_moved_on()
{
    // Just claimed: the last write, in the claiming reviewer's name.
    let claimed = claimed_at_ig();
    assert!(last_write_was_a_decision(&claimed));
    assert_eq!(pending_stage(&claimed), Some(Ig));
    let outcome = stored_outcome(&claimed).expect("an outcome");
    assert_eq!((outcome.stage, outcome.reviewer.as_str()), (Ig, "iris"));

    // The workflow saved it and parked at RIT with a new token: the pending token is still
    // IG's, and the reviewer is named by their sub (updated_by is no longer the claim's).
    let mut moved_on = claimed_at_ig();
    moved_on.review_stage = Some(Rit);
    moved_on.sfn_task_token = Some("tok-rit".into());
    moved_on.updated_dt = "2024-05-01T09:00:02.000Z".into();
    assert!(!last_write_was_a_decision(&moved_on));
    assert_eq!(pending_stage(&moved_on), Some(Ig));
    let outcome = stored_outcome(&moved_on).expect("an outcome");
    assert_eq!(outcome.stage, Ig);
    assert_eq!(outcome.reviewer, "sub:sub-iris");
    assert_eq!(outcome.decision, Decision::Approved);

    // Decided at 09:00: within a window from 08:59, not from 09:01.
    assert!(decided_since(&moved_on, datetime!(2024-05-01 08:59:00 UTC)));
    assert!(!decided_since(
        &moved_on,
        datetime!(2024-05-01 09:01:00 UTC)
    ));

    // Nothing pending, or no decision stored for the token: no stage, no outcome.
    let mut settled = claimed_at_ig();
    settled.pending_task_token = None;
    assert_eq!(pending_stage(&settled), None);
    assert!(stored_outcome(&settled).is_none());
    let mut undecided = parked_at(sample_request("req-2", Single), Ig, "tok", HANDLE);
    undecided.pending_task_token = Some("tok".into());
    assert_eq!(pending_stage(&undecided), None);
}
