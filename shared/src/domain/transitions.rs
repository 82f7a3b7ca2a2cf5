//! The life of a request: which status follows which, per approval mode.
//!
//! `PROCESSING` → `IGAPPROVED` → `RITAPPROVED` (dual) or `IGAPPROVED` final (single);
//! `REJECTED` at either stage; `FAILED` and `EXPIRED` from any non-final status. The contract
//! tests (tests/tests/contracts.rs) check the state machine's Choice and Save states against
//! these functions.

use crate::error::{EgressError, Result};
use crate::model::{ApprovalMode, Decision, EgressStatus, ReviewStage};

/// What the workflow does after a stage is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Wait for another stage.
    AwaitReview(ReviewStage),
    /// Approved for good: write the archive.
    Approve,
    /// Rejected: clean up staging, let the researcher revise.
    Reject,
}

/// The stages a mode goes through, in order.
pub fn stages(mode: ApprovalMode) -> &'static [ReviewStage] {
    match mode {
        ApprovalMode::Single => &[ReviewStage::Ig],
        ApprovalMode::Dual => &[ReviewStage::Ig, ReviewStage::Rit],
    }
}

/// The status a request must have for `stage` to be decided.
pub fn status_awaiting(stage: ReviewStage) -> EgressStatus {
    match stage {
        ReviewStage::Ig => EgressStatus::Processing,
        ReviewStage::Rit => EgressStatus::IgApproved,
    }
}

/// The status a decision at `stage` leads to.
pub fn status_after(stage: ReviewStage, decision: Decision) -> EgressStatus {
    match (stage, decision) {
        (_, Decision::Rejected) => EgressStatus::Rejected,
        (ReviewStage::Ig, Decision::Approved) => EgressStatus::IgApproved,
        (ReviewStage::Rit, Decision::Approved) => EgressStatus::RitApproved,
    }
}

/// What follows a decision at `stage` in `mode`. A RIT decision in single mode is refused.
pub fn next_step(mode: ApprovalMode, stage: ReviewStage, decision: Decision) -> Result<NextStep> {
    match (mode, stage, decision) {
        (ApprovalMode::Single, ReviewStage::Rit, _) => Err(EgressError::Conflict(
            "a Research IT decision is not part of single-approval mode".into(),
        )),
        (_, _, Decision::Rejected) => Ok(NextStep::Reject),
        (ApprovalMode::Single, ReviewStage::Ig, Decision::Approved) => Ok(NextStep::Approve),
        (ApprovalMode::Dual, ReviewStage::Ig, Decision::Approved) => {
            Ok(NextStep::AwaitReview(ReviewStage::Rit))
        }
        (ApprovalMode::Dual, ReviewStage::Rit, Decision::Approved) => Ok(NextStep::Approve),
    }
}

/// The status that means "approved for good" in `mode`.
pub fn final_approval(mode: ApprovalMode) -> EgressStatus {
    match mode {
        ApprovalMode::Single => EgressStatus::IgApproved,
        ApprovalMode::Dual => EgressStatus::RitApproved,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ApprovalMode::*;
    use Decision::Approved;
    use EgressStatus::*;
    use ReviewStage::*;

    #[test]
    fn when_single_mode_ig_approves_then_the_request_is_approved_for_good() {
        assert_eq!(next_step(Single, Ig, Approved).unwrap(), NextStep::Approve);
        assert_eq!(status_after(Ig, Approved), IgApproved);
        assert_eq!(final_approval(Single), IgApproved);
    }

    #[test]
    fn when_dual_mode_ig_approves_then_research_it_reviews_next() {
        assert_eq!(
            next_step(Dual, Ig, Approved).unwrap(),
            NextStep::AwaitReview(Rit)
        );
        assert_eq!(status_awaiting(Rit), IgApproved);
    }

    #[test]
    fn when_dual_mode_rit_approves_then_the_request_is_approved_for_good() {
        assert_eq!(next_step(Dual, Rit, Approved).unwrap(), NextStep::Approve);
        assert_eq!(status_after(Rit, Approved), RitApproved);
        assert_eq!(final_approval(Dual), RitApproved);
    }

    #[test]
    fn when_either_stage_rejects_then_the_request_is_rejected() {
        for (mode, stage) in [(Single, Ig), (Dual, Ig), (Dual, Rit)] {
            assert_eq!(
                next_step(mode, stage, Decision::Rejected).unwrap(),
                NextStep::Reject
            );
            assert_eq!(
                status_after(stage, Decision::Rejected),
                EgressStatus::Rejected
            );
        }
    }

    #[test]
    fn when_a_rit_decision_arrives_in_single_mode_then_it_is_a_conflict() {
        let err = next_step(Single, Rit, Approved).unwrap_err();
        assert_eq!(err.error_type(), "Conflict");
    }

    #[test]
    fn when_listing_stages_then_dual_adds_research_it_after_ig() {
        assert_eq!(stages(Single), &[Ig]);
        assert_eq!(stages(Dual), &[Ig, Rit]);
    }
}
