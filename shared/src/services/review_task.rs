//! `record-task-token`: park a review stage and remember its task token server-side.

use super::Step;
use crate::domain::transitions::status_awaiting;
use crate::error::{EgressError, Result};
use crate::model::{RecordTaskTokenInput, RecordTaskTokenOutput, ReviewStage};
use crate::ports::{Clock, PendingReview, RequestStore};

/// `record-task-token` with its ports, as a [`Step`].
#[derive(Debug)]
pub struct ReviewTaskStep<S, C> {
    /// The requests table.
    pub store: S,
    /// The server clock.
    pub clock: C,
}

impl<S: RequestStore, C: Clock> Step for ReviewTaskStep<S, C> {
    type Input = RecordTaskTokenInput;
    type Output = RecordTaskTokenOutput;
    const FAILED: &'static str = "review stage could not be recorded";

    /// Stores the task token, stage and group on the request with a fresh opaque handle for
    /// the web app. The token itself is never logged nor returned.
    async fn run(&self, input: &RecordTaskTokenInput) -> Result<RecordTaskTokenOutput> {
        for (field, value) in [
            ("task_token", &input.task_token),
            ("egress_request_id", &input.egress_request_id),
            ("reviewer_group", &input.reviewer_group),
        ] {
            if value.trim().is_empty() {
                return Err(EgressError::validation(format!(
                    "field `{field}` must not be empty"
                )));
            }
        }
        // A fresh handle per stage: a decision sent with the previous stage's handle is stale.
        let handle = uuid::Uuid::new_v4().to_string();
        let at = self.clock.now_iso();
        let recorded = self
            .store
            .record_pending_review(&PendingReview {
                egress_request_id: &input.egress_request_id,
                stage: input.stage,
                awaiting_status: status_awaiting(input.stage),
                reviewer_group: &input.reviewer_group,
                task_token: &input.task_token,
                review_handle: &handle,
                at: &at,
            })
            .await;
        match recorded {
            Ok(()) => {
                tracing::info!(stage = %input.stage, "review stage waiting for a decision")
            }
            Err(e) if e.error_type() == "Conflict" && self.decided_since(input).await? => {
                // An earlier attempt's write landed (its answer was lost and the SDK retried)
                // and a reviewer has since decided this stage: the decision is on its way to
                // this task, or already delivered. Failing here would fail the workflow under
                // a decision that was made.
                tracing::warn!(
                    stage = %input.stage,
                    "review stage already recorded and decided since (a retried write whose answer was lost)"
                );
            }
            Err(e) => return Err(e),
        }
        Ok(RecordTaskTokenOutput {
            egress_request_id: input.egress_request_id.clone(),
            stage: input.stage,
        })
    }
}

impl<S: RequestStore, C: Clock> ReviewTaskStep<S, C> {
    /// Whether this stage of the request was recorded and has been decided since: a decision
    /// claimed with `input`'s task token (the claim moves the token to `pending_task_token`
    /// until the decision is delivered), or one already delivered and settled (no token
    /// left, the stage's decision stored). A stage is recorded once per execution and an
    /// execution is the request's only one, so a decided stage is this task's.
    async fn decided_since(&self, input: &RecordTaskTokenInput) -> Result<bool> {
        let request = self.store.get(&input.egress_request_id).await?;
        Ok(request.is_some_and(|r| {
            let decided = match input.stage {
                ReviewStage::Ig => r.ig_reviewer_1_decision.is_some(),
                ReviewStage::Rit => r.rit_reviewer_2_decision.is_some(),
            };
            let claimed_with_it =
                r.pending_task_token.as_deref() == Some(input.task_token.as_str());
            let settled = r.pending_task_token.is_none() && r.sfn_task_token.is_none() && decided;
            r.review_stage == Some(input.stage) && (claimed_with_it || settled)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::InMemoryRequestStore;
    use crate::model::{EgressStatus, ReviewStage};
    use crate::ports::FixedClock;
    use crate::testdata::request;
    use time::macros::datetime;

    fn input(stage: ReviewStage) -> RecordTaskTokenInput {
        RecordTaskTokenInput {
            task_token: "AQB-token".into(),
            egress_request_id: "req-1".into(),
            stage,
            reviewer_group: "IGApprover".into(),
        }
    }

    const CLOCK: FixedClock = FixedClock(datetime!(2024-05-01 12:00:00 UTC));

    fn step(store: InMemoryRequestStore) -> ReviewTaskStep<InMemoryRequestStore, FixedClock> {
        ReviewTaskStep {
            store,
            clock: CLOCK,
        }
    }

    #[tokio::test]
    async fn when_the_ig_stage_parks_then_token_group_and_a_fresh_handle_are_stored() {
        let step = step(InMemoryRequestStore::with([request(
            "req-1",
            EgressStatus::Processing,
        )]));
        let out = step.run(&input(ReviewStage::Ig)).await.unwrap();
        assert_eq!(out.stage, ReviewStage::Ig);
        let item = step.store.item("req-1").unwrap();
        assert_eq!(item.sfn_task_token.as_deref(), Some("AQB-token"));
        assert_eq!(item.review_stage, Some(ReviewStage::Ig));
        assert_eq!(item.current_reviewer_group.as_deref(), Some("IGApprover"));
        let handle = item.review_handle.unwrap();
        assert!(!handle.is_empty() && handle != "AQB-token");
        assert_eq!(item.updated_dt, "2024-05-01T12:00:00.000Z");
    }

    #[tokio::test]
    async fn when_a_stage_parks_twice_then_the_handle_changes() {
        let step = step(InMemoryRequestStore::with([request(
            "req-1",
            EgressStatus::Processing,
        )]));
        step.run(&input(ReviewStage::Ig)).await.unwrap();
        let first = step.store.item("req-1").unwrap().review_handle;
        step.run(&input(ReviewStage::Ig)).await.unwrap();
        assert_ne!(step.store.item("req-1").unwrap().review_handle, first);
    }

    #[tokio::test]
    async fn when_the_request_does_not_exist_then_it_is_not_found_and_nothing_is_created() {
        let step = step(InMemoryRequestStore::default());
        let err = step.run(&input(ReviewStage::Ig)).await.unwrap_err();
        assert_eq!(err.error_type(), "NotFound");
        assert!(step.store.item("req-1").is_none());
    }

    #[tokio::test]
    async fn when_the_rit_stage_parks_before_ig_approved_then_it_is_a_conflict() {
        let step = step(InMemoryRequestStore::with([request(
            "req-1",
            EgressStatus::Processing,
        )]));
        let err = step.run(&input(ReviewStage::Rit)).await.unwrap_err();
        assert_eq!(err.error_type(), "Conflict");
    }

    #[tokio::test]
    async fn when_a_retried_record_finds_a_decision_claimed_with_its_token_then_it_succeeds() {
        // The first attempt's write landed, its answer was lost, and a reviewer claimed the
        // decision with the token before the SDK's retry: the claim moved the token to
        // `pending_task_token` and the status on.
        let mut decided = request("req-1", EgressStatus::Rejected);
        decided.review_stage = Some(ReviewStage::Ig);
        decided.pending_task_token = Some("AQB-token".into());
        let step = step(InMemoryRequestStore::with([decided]));
        let out = step.run(&input(ReviewStage::Ig)).await.unwrap();
        assert_eq!(out.stage, ReviewStage::Ig);
        let item = step.store.item("req-1").unwrap();
        assert_eq!(item.egress_status, EgressStatus::Rejected);
        assert_eq!(item.sfn_task_token, None, "nothing written back");

        // Another token (another attempt, or another stage's) is still a conflict.
        let mut other = input(ReviewStage::Ig);
        other.task_token = "AQB-other".into();
        assert_eq!(step.run(&other).await.unwrap_err().error_type(), "Conflict");
        let rit = input(ReviewStage::Rit);
        assert_eq!(step.run(&rit).await.unwrap_err().error_type(), "Conflict");
    }

    #[tokio::test]
    async fn when_a_retried_record_finds_its_stage_decided_and_delivered_then_it_succeeds() {
        // As above, but the decision was also delivered and settled before the SDK's retry
        // (chaos seed 5151): no token is left on the item, the stage's decision is.
        let mut decided = request("req-1", EgressStatus::RitApproved);
        decided.review_stage = Some(ReviewStage::Rit);
        decided.ig_reviewer_1_decision = Some(crate::model::Decision::Approved);
        decided.rit_reviewer_2_decision = Some(crate::model::Decision::Approved);
        let retried = step(InMemoryRequestStore::with([decided.clone()]));
        retried.run(&input(ReviewStage::Rit)).await.unwrap();
        assert_eq!(
            retried.store.item("req-1").unwrap(),
            decided,
            "nothing written"
        );

        // The IG stage of the same request was decided too, but it is not the stage last
        // recorded: a record of it now is out of order.
        let ig = input(ReviewStage::Ig);
        assert_eq!(retried.run(&ig).await.unwrap_err().error_type(), "Conflict");

        // A stage recorded but not decided is not this case.
        let mut undecided = request("req-2", EgressStatus::IgApproved);
        undecided.review_stage = Some(ReviewStage::Rit);
        undecided.ig_reviewer_1_decision = Some(crate::model::Decision::Approved);
        undecided.sfn_task_token = Some("AQB-live".into());
        let waiting = self::step(InMemoryRequestStore::with([undecided]));
        let mut rit = input(ReviewStage::Rit);
        rit.egress_request_id = "req-2".into();
        let out = waiting.run(&rit).await;
        assert!(
            out.is_ok(),
            "IGAPPROVED awaits RIT: recorded again: {out:?}"
        );
    }

    #[tokio::test]
    async fn when_the_token_is_empty_then_it_is_a_validation_error() {
        let step = step(InMemoryRequestStore::with([request(
            "req-1",
            EgressStatus::Processing,
        )]));
        let mut bad = input(ReviewStage::Ig);
        bad.task_token = " ".into();
        let err = step.run(&bad).await.unwrap_err();
        assert_eq!(err.error_type(), "ValidationError");
        assert!(err.to_string().contains("task_token"));
    }
}
