//! [`ReviewStore`] on the requests table, for the reviewer API.
//!
//! Every write is one conditional `UpdateItem`, so the table itself arbitrates races: of two
//! concurrent decisions on a request only the first matches `review_handle = :handle`, and the
//! download counter can not pass its maximum however many calls arrive at once.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::classify;
use super::dynamodb::DynamoDbRequestStore;
use crate::error::{EgressError, Result};
use crate::model::{EgressRequest, EgressStatus, ReviewStage, RECORD_TYPE};
use crate::ports::{
    ClaimOutcome, ClaimedDecision, DecisionClaim, DownloadCount, ListIndex, ListPage, ListPosition,
    RequestStore, ReviewStore, RevocationClaim, RevocationStore,
};

/// The global secondary index `listRequests` reads (contracts.md): partition key
/// `record_type`, sort key `requested_dt`.
pub const LIST_INDEX: &str = "by-requested-dt";

/// The global secondary index of requests by status (contracts.md): partition key
/// `egress_status`, sort key `requested_dt`. `listRequests` reads the requests a review stage
/// may be waiting on from it, so their number, not the table's, is what that costs.
pub const STATUS_INDEX: &str = "by-status";

/// The attribute prefix of a stage's reviewer fields.
fn prefix(stage: ReviewStage) -> &'static str {
    match stage {
        ReviewStage::Ig => "ig_reviewer_1",
        ReviewStage::Rit => "rit_reviewer_2",
    }
}

const REVIEWER_SUFFIXES: [&str; 6] = ["name", "email", "sub", "dt", "reason", "decision"];

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn parse_item(item: HashMap<String, AttributeValue>, what: &str) -> Result<EgressRequest> {
    serde_dynamo::from_item(item)
        .map_err(|e| EgressError::Internal(format!("{what}: item in an unexpected shape: {e}")))
}

/// When the item `now` (as a failed claim's condition found it) carries exactly `claim`, the
/// item as it was before the claim; `None` when someone else's decision is there.
///
/// The SDK retries a write whose answer was lost (a connection reset, a timeout after
/// DynamoDB applied it); the retry's condition then fails on the claim's own result. Without
/// this the call would report a lost race while its claim stands with the task token pending
/// and no one delivers the decision. The claim is recognised by its reviewer, decision and
/// time (milliseconds) on the stage, with the token still pending. The item before it is
/// rebuilt by undoing the update: the stage's reviewer fields and the pending token go, the
/// status, handle and token come back. Only `updated_by`/`updated_dt` cannot be recovered
/// (the claim overwrote them); they keep the claim's values, which only a roll-back uses.
fn as_landed(
    now: &HashMap<String, AttributeValue>,
    claim: &DecisionClaim,
) -> Option<HashMap<String, AttributeValue>> {
    let p = prefix(claim.stage);
    let text = |name: &str| {
        now.get(name)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
    };
    let ours = text("egress_status") == Some(claim.new_status.as_str())
        && text(&format!("{p}_sub")) == Some(claim.reviewer_sub.as_str())
        && text(&format!("{p}_dt")) == Some(claim.at.as_str())
        && text(&format!("{p}_decision")) == Some(claim.decision.as_str())
        && text("review_handle").is_none()
        && text("sfn_task_token").is_none();
    let token = text("pending_task_token").filter(|_| ours)?.to_string();
    let mut previous = now.clone();
    for suffix in REVIEWER_SUFFIXES {
        previous.remove(&format!("{p}_{suffix}"));
    }
    previous.remove("pending_task_token");
    previous.insert("egress_status".into(), s(claim.awaiting_status.as_str()));
    previous.insert("review_handle".into(), s(&claim.expected_handle));
    previous.insert("sfn_task_token".into(), s(token));
    Some(previous)
}

/// The outcome of a conditional update: `Ok(None)` when the condition failed.
async fn conditional(
    update: UpdateItemFluentBuilder,
    what: &str,
) -> Result<Option<UpdateItemOutput>> {
    match update.send().await {
        Ok(out) => Ok(Some(out)),
        Err(err) => match err.as_service_error() {
            Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(None),
            _ => Err(classify(what, err)),
        },
    }
}

impl ReviewStore for DynamoDbRequestStore {
    async fn list_page(
        &self,
        index: &ListIndex,
        after: Option<&ListPosition>,
        limit: u32,
    ) -> Result<ListPage> {
        let index_name = match index {
            ListIndex::Status(_) => STATUS_INDEX,
            ListIndex::Submitted { .. } => LIST_INDEX,
        };
        let mut query = self
            .client()
            .query()
            .table_name(self.table())
            .index_name(index_name)
            // Newest submission first, as reviewers expect.
            .scan_index_forward(false)
            // `Limit` bounds the items read, so the cost of a page is its length.
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX));
        query = match index {
            ListIndex::Status(status) => query
                .key_condition_expression("egress_status = :st")
                .expression_attribute_values(":st", s(status.as_str())),
            ListIndex::Submitted { since: None } => query
                .key_condition_expression("record_type = :rt")
                .expression_attribute_values(":rt", s(RECORD_TYPE)),
            ListIndex::Submitted { since: Some(since) } => query
                .key_condition_expression("record_type = :rt AND requested_dt >= :since")
                .expression_attribute_values(":rt", s(RECORD_TYPE))
                .expression_attribute_values(":since", s(since)),
        };
        if let Some(p) = after {
            // A GSI's start key is the table's key plus the index's keys.
            let mut key = HashMap::from([
                ("egress_request_id".to_string(), s(&p.egress_request_id)),
                ("requested_dt".to_string(), s(&p.requested_dt)),
            ]);
            match index {
                ListIndex::Status(_) => {
                    key.insert("egress_status".into(), s(p.egress_status.as_str()));
                }
                ListIndex::Submitted { .. } => {
                    key.insert("record_type".into(), s(RECORD_TYPE));
                }
            }
            query = query.set_exclusive_start_key(Some(key));
        }
        let out = query
            .send()
            .await
            .map_err(|e| classify(&format!("Query {index_name}"), e))?;
        let read = u64::try_from(out.scanned_count.max(out.count)).unwrap_or(0);
        let mut requests = Vec::new();
        let mut last: Option<ListPosition> = None;
        for item in out.items.unwrap_or_default() {
            let id = item
                .get("egress_request_id")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            match parse_item(item, "listRequests") {
                Ok(request) => {
                    last = Some(ListPosition::of(&request));
                    requests.push(request);
                }
                // One malformed item must not hide every other request from reviewers.
                Err(e) => {
                    tracing::error!(egress_request_id = %id, error = %e, "request left out of listRequests")
                }
            }
        }
        let more = out.last_evaluated_key.is_some_and(|k| !k.is_empty());
        Ok(ListPage {
            requests,
            read,
            next: last.filter(|_| more),
        })
    }

    async fn get_request(&self, egress_request_id: &str) -> Result<Option<EgressRequest>> {
        RequestStore::get(self, egress_request_id).await
    }

    async fn claim_decision(&self, claim: &DecisionClaim) -> Result<ClaimOutcome> {
        let p = prefix(claim.stage);
        let set = REVIEWER_SUFFIXES
            .iter()
            .map(|suffix| format!("{p}_{suffix} = :{suffix}"))
            .collect::<Vec<_>>()
            .join(", ");
        let update = self
            .update_request_item(&claim.egress_request_id)
            .update_expression(format!(
                "SET {set}, egress_status = :new_status, updated_by = :by, updated_dt = :dt, \
                 pending_task_token = sfn_task_token REMOVE review_handle, sfn_task_token"
            ))
            .condition_expression(
                "review_handle = :handle AND egress_status = :awaiting \
                 AND review_stage = :stage AND attribute_exists(sfn_task_token)",
            )
            .expression_attribute_values(":name", s(&claim.reviewer_name))
            .expression_attribute_values(":email", s(&claim.reviewer_email))
            .expression_attribute_values(":sub", s(&claim.reviewer_sub))
            .expression_attribute_values(":dt", s(&claim.at))
            .expression_attribute_values(":reason", s(&claim.reason))
            .expression_attribute_values(":decision", s(claim.decision.as_str()))
            .expression_attribute_values(":new_status", s(claim.new_status.as_str()))
            .expression_attribute_values(":by", s(&claim.reviewer_username))
            .expression_attribute_values(":handle", s(&claim.expected_handle))
            .expression_attribute_values(":awaiting", s(claim.awaiting_status.as_str()))
            .expression_attribute_values(":stage", s(claim.stage.as_str()))
            // The old item carries the task token the update moves: read and taken in one
            // atomic step, so only the winner of the claim holds it; it stays on the item as
            // `pending_task_token` until the delivery is settled, so a winner that dies
            // before delivering does not take the decision with it.
            .return_values(ReturnValue::AllOld)
            // A failed condition returns the item as it is, so a claim that failed only
            // because it had already landed is told from one a concurrent decision won.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let what = format!(
            "recording the {} decision on {}",
            claim.stage, claim.egress_request_id
        );
        let previous = match update.send().await {
            Ok(out) => out.attributes.ok_or_else(|| {
                EgressError::Internal(format!("{what}: no previous item returned"))
            })?,
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    match failed.item().and_then(|now| as_landed(now, claim)) {
                        Some(previous) => {
                            tracing::warn!(
                                egress_request_id = %claim.egress_request_id,
                                stage = %claim.stage,
                                "the claim had already landed (a retried write whose answer was lost): it is this call's"
                            );
                            previous
                        }
                        None => return Ok(ClaimOutcome::Lost),
                    }
                }
                _ => return Err(classify(&what, err)),
            },
        };
        Ok(ClaimOutcome::Won(Box::new(ClaimedDecision {
            previous: parse_item(previous, &what)?,
        })))
    }

    async fn release_decision(
        &self,
        claim: &DecisionClaim,
        claimed: &ClaimedDecision,
    ) -> Result<bool> {
        let p = prefix(claim.stage);
        let previous = &claimed.previous;
        let (Some(handle), Some(token)) = (&previous.review_handle, &previous.sfn_task_token)
        else {
            return Err(EgressError::Internal(
                "cannot roll back a claim of an item that had no review task".into(),
            ));
        };
        let remove = REVIEWER_SUFFIXES
            .iter()
            .map(|suffix| format!("{p}_{suffix}"))
            .collect::<Vec<_>>()
            .join(", ");
        let update = self
            .update_request_item(&claim.egress_request_id)
            .update_expression(format!(
                "SET egress_status = :prev_status, review_handle = :handle, sfn_task_token = :token, \
                 updated_by = :prev_by, updated_dt = :prev_dt REMOVE {remove}, pending_task_token"
            ))
            .condition_expression(format!(
                "egress_status = :new_status AND attribute_not_exists(review_handle) \
                 AND {p}_sub = :sub AND updated_dt = :at"
            ))
            .expression_attribute_values(":prev_status", s(previous.egress_status.as_str()))
            .expression_attribute_values(":handle", s(handle))
            .expression_attribute_values(":token", s(token))
            .expression_attribute_values(":prev_by", s(&previous.updated_by))
            .expression_attribute_values(":prev_dt", s(&previous.updated_dt))
            .expression_attribute_values(":new_status", s(claim.new_status.as_str()))
            .expression_attribute_values(":sub", s(&claim.reviewer_sub))
            .expression_attribute_values(":at", s(&claim.at));
        let what = format!(
            "rolling back the {} decision on {}",
            claim.stage, claim.egress_request_id
        );
        Ok(conditional(update, &what).await?.is_some())
    }

    async fn settle_decision(&self, egress_request_id: &str) -> Result<()> {
        let update = self
            .update_request_item(egress_request_id)
            .update_expression("REMOVE pending_task_token")
            // Never creates an item.
            .condition_expression("attribute_exists(egress_request_id)");
        // A request that is gone has nothing left to settle.
        conditional(
            update,
            &format!("settling the decision on {egress_request_id}"),
        )
        .await
        .map(|_| ())
    }

    async fn count_download(
        &self,
        egress_request_id: &str,
        final_status: EgressStatus,
        max_downloads: u32,
    ) -> Result<DownloadCount> {
        let update = self
            .update_request_item(egress_request_id)
            .update_expression("SET download_count = if_not_exists(download_count, :zero) + :one")
            .condition_expression(
                "egress_status = :final AND attribute_exists(archive_key) \
                 AND (attribute_not_exists(download_count) OR download_count < :max)",
            )
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":final", s(final_status.as_str()))
            .expression_attribute_values(":max", AttributeValue::N(max_downloads.to_string()))
            .return_values(ReturnValue::UpdatedNew);
        let what = format!("counting a download of {egress_request_id}");
        match conditional(update, &what).await? {
            Some(out) => out
                .attributes
                .as_ref()
                .and_then(|a| a.get("download_count"))
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<u32>().ok())
                .map(DownloadCount::Counted)
                .ok_or_else(|| EgressError::Internal(format!("{what}: no new count returned"))),
            None => Ok(match RequestStore::get(self, egress_request_id).await? {
                None => DownloadCount::Missing,
                Some(found) if found.download_count >= max_downloads => DownloadCount::LimitReached,
                Some(found) => DownloadCount::Unavailable(found.egress_status),
            }),
        }
    }
}

impl RevocationStore for DynamoDbRequestStore {
    async fn claim_revocation(&self, claim: &RevocationClaim) -> Result<bool> {
        let update = self
            .update_request_item(&claim.egress_request_id)
            .update_expression(
                "SET egress_status = :revoked, updated_by = :by, updated_dt = :at, \
                 revoked_by = :by, revoked_dt = :at, revoked_reason = :reason",
            )
            .condition_expression("egress_status = :approved")
            .expression_attribute_values(":revoked", s(EgressStatus::Revoked.as_str()))
            .expression_attribute_values(":approved", s(claim.approved_status.as_str()))
            .expression_attribute_values(":by", s(&claim.revoked_by))
            .expression_attribute_values(":at", s(&claim.at))
            .expression_attribute_values(":reason", s(&claim.reason));
        let what = format!("revoking {}", claim.egress_request_id);
        Ok(conditional(update, &what).await?.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{approved, parked_at, sample_request};
    use crate::model::{ApprovalMode, Decision};
    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::operation::query::QueryOutput;
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};

    /// The `requests` table over a client that answers with `rule`.
    pub(super) fn store_answering(rule: &Rule) -> DynamoDbRequestStore {
        DynamoDbRequestStore::new(mock_client!(aws_sdk_dynamodb, [rule]), "requests")
    }

    /// `req-1` in dual mode, parked at RIT with `sfn-token` behind `handle-1`.
    fn parked_at_rit() -> EgressRequest {
        let dual = sample_request("req-1", ApprovalMode::Dual);
        parked_at(dual, ReviewStage::Rit, "sfn-token", "handle-1")
    }

    fn item(request: &EgressRequest) -> HashMap<String, AttributeValue> {
        serde_dynamo::to_item(request).unwrap()
    }

    pub(super) fn condition_failed() -> UpdateItemError {
        UpdateItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .message("The conditional request failed")
                .build(),
        )
    }

    fn claim() -> DecisionClaim {
        DecisionClaim {
            egress_request_id: "req-1".into(),
            stage: ReviewStage::Rit,
            expected_handle: "handle-1".into(),
            awaiting_status: EgressStatus::IgApproved,
            new_status: EgressStatus::RitApproved,
            decision: Decision::Approved,
            reason: "No identifiers present".into(),
            reviewer_name: "Rita".into(),
            reviewer_email: "rita@example.org".into(),
            reviewer_sub: "sub-rita".into(),
            reviewer_username: "rita".into(),
            at: "2024-05-03T12:00:00.000Z".into(),
        }
    }

    fn value<'a>(
        values: Option<&'a HashMap<String, AttributeValue>>,
        name: &str,
    ) -> Option<&'a str> {
        values?.get(name)?.as_s().ok().map(String::as_str)
    }

    #[tokio::test]
    async fn when_a_decision_is_claimed_then_one_conditional_update_sets_reviewer_and_removes_the_token(
    ) {
        let parked = parked_at_rit();
        let old = item(&parked);
        let update = mock!(aws_sdk_dynamodb::Client::update_item)
            .match_requests(|r| {
                let expr = r.update_expression().unwrap_or_default();
                let cond = r.condition_expression().unwrap_or_default();
                let v = r.expression_attribute_values();
                expr.contains("rit_reviewer_2_sub = :sub")
                    && expr.contains("rit_reviewer_2_decision = :decision")
                    && expr.contains("REMOVE review_handle, sfn_task_token")
                    && expr.contains("pending_task_token = sfn_task_token")
                    && !expr.contains("ig_reviewer_1")
                    && cond.contains("review_handle = :handle")
                    && cond.contains("egress_status = :awaiting")
                    && value(v, ":handle") == Some("handle-1")
                    && value(v, ":awaiting") == Some("IGAPPROVED")
                    && value(v, ":new_status") == Some("RITAPPROVED")
                    && value(v, ":email") == Some("rita@example.org")
                    && value(v, ":decision") == Some("APPROVED")
                    && r.return_values() == Some(&ReturnValue::AllOld)
            })
            .then_output(move || {
                UpdateItemOutput::builder()
                    .set_attributes(Some(old.clone()))
                    .build()
            });
        let ClaimOutcome::Won(claimed) = store_answering(&update)
            .claim_decision(&claim())
            .await
            .unwrap()
        else {
            panic!("the claim was lost")
        };
        assert_eq!(update.num_calls(), 1);
        assert_eq!(
            claimed.previous.sfn_task_token.as_deref(),
            Some("sfn-token")
        );
        assert!(
            !format!("{claimed:?}").contains("sfn-token"),
            "Debug redacts the token"
        );
    }

    #[tokio::test]
    async fn when_a_delivery_is_settled_then_the_pending_token_is_removed_without_creating_an_item()
    {
        let update = mock!(aws_sdk_dynamodb::Client::update_item)
            .match_requests(|r| {
                r.update_expression() == Some("REMOVE pending_task_token")
                    && r.condition_expression() == Some("attribute_exists(egress_request_id)")
                    && r.key().unwrap()["egress_request_id"].as_s().unwrap() == "req-1"
            })
            .then_output(|| UpdateItemOutput::builder().build());
        let gone = mock!(aws_sdk_dynamodb::Client::update_item).then_error(condition_failed);
        let store = store_answering(&update);
        store.settle_decision("req-1").await.unwrap();
        assert_eq!(update.num_calls(), 1);
        let store = store_answering(&gone);
        store.settle_decision("req-1").await.unwrap();
    }

    /// The item after `claim()` landed on a request parked at RIT with `sfn-token`.
    fn claimed_item(reviewer_sub: &str, at: &str) -> HashMap<String, AttributeValue> {
        let mut request = parked_at_rit();
        request.egress_status = EgressStatus::RitApproved;
        request.review_handle = None;
        request.sfn_task_token = None;
        request.pending_task_token = Some("sfn-token".into());
        request.rit_reviewer_2_sub = Some(reviewer_sub.into());
        request.rit_reviewer_2_dt = Some(at.into());
        request.rit_reviewer_2_decision = Some(Decision::Approved);
        request.rit_reviewer_2_email = Some("rita@example.org".into());
        request.updated_dt = at.into();
        item(&request)
    }

    fn condition_failed_on(now: HashMap<String, AttributeValue>) -> UpdateItemError {
        UpdateItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .message("The conditional request failed")
                .set_item(Some(now))
                .build(),
        )
    }

    #[tokio::test]
    async fn when_the_claims_answer_was_lost_and_the_retry_finds_it_landed_then_the_claim_is_won() {
        // The first attempt landed but its answer was lost; the SDK's retry fails its
        // condition on the claim's own result.
        let now = claimed_item("sub-rita", "2024-05-03T12:00:00.000Z");
        let update = mock!(aws_sdk_dynamodb::Client::update_item)
            .match_requests(|r| {
                r.return_values_on_condition_check_failure()
                    == Some(&ReturnValuesOnConditionCheckFailure::AllOld)
            })
            .then_error(move || condition_failed_on(now.clone()));
        let ClaimOutcome::Won(claimed) = store_answering(&update)
            .claim_decision(&claim())
            .await
            .unwrap()
        else {
            panic!("the call's own landed claim was reported lost")
        };
        let before = &claimed.previous;
        assert_eq!(before.sfn_task_token.as_deref(), Some("sfn-token"));
        assert_eq!(before.review_handle.as_deref(), Some("handle-1"));
        assert_eq!(before.egress_status, EgressStatus::IgApproved);
        assert_eq!(before.pending_task_token, None);
        assert_eq!(before.rit_reviewer_2_sub, None);
        assert_eq!(before.rit_reviewer_2_decision, None);
    }

    #[tokio::test]
    async fn when_another_reviewers_claim_is_found_then_the_claim_is_lost() {
        for now in [
            // Another reviewer, same millisecond.
            claimed_item("sub-other", "2024-05-03T12:00:00.000Z"),
            // The same reviewer's earlier decision (another call).
            claimed_item("sub-rita", "2024-05-03T11:59:59.999Z"),
        ] {
            let update = mock!(aws_sdk_dynamodb::Client::update_item)
                .then_error(move || condition_failed_on(now.clone()));
            let outcome = store_answering(&update)
                .claim_decision(&claim())
                .await
                .unwrap();
            assert!(matches!(outcome, ClaimOutcome::Lost), "{outcome:?}");
        }
    }

    #[tokio::test]
    async fn when_a_concurrent_decision_won_then_the_claim_is_lost() {
        let update = mock!(aws_sdk_dynamodb::Client::update_item).then_error(condition_failed);
        let outcome = store_answering(&update)
            .claim_decision(&claim())
            .await
            .unwrap();
        assert!(matches!(outcome, ClaimOutcome::Lost), "{outcome:?}");
    }

    #[tokio::test]
    async fn when_dynamodb_is_throttling_then_the_claim_is_transient() {
        let update = mock!(aws_sdk_dynamodb::Client::update_item)
            .then_http_response(|| {
                aws_smithy_runtime_api::http::Response::new(
                    aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
                    aws_smithy_types::body::SdkBody::from(
                        r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"slow down"}"#,
                    ),
                )
            });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&update], |c| c
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled()));
        let err = DynamoDbRequestStore::new(client, "requests")
            .claim_decision(&claim())
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "TransientError");
    }

    #[tokio::test]
    async fn when_rolling_back_then_status_handle_and_token_are_restored_only_if_the_claim_is_current(
    ) {
        let parked = parked_at_rit();
        let claimed = ClaimedDecision { previous: parked };
        let restore = mock!(aws_sdk_dynamodb::Client::update_item)
            .match_requests(|r| {
                let expr = r.update_expression().unwrap_or_default();
                let cond = r.condition_expression().unwrap_or_default();
                let v = r.expression_attribute_values();
                expr.contains("REMOVE rit_reviewer_2_name")
                    && cond.contains("attribute_not_exists(review_handle)")
                    && cond.contains("rit_reviewer_2_sub = :sub")
                    && value(v, ":prev_status") == Some("IGAPPROVED")
                    && value(v, ":handle") == Some("handle-1")
                    && value(v, ":token") == Some("sfn-token")
            })
            .then_output(|| UpdateItemOutput::builder().build());
        let store = store_answering(&restore);
        assert!(store.release_decision(&claim(), &claimed).await.unwrap());

        let moved_on = mock!(aws_sdk_dynamodb::Client::update_item).then_error(condition_failed);
        let store = store_answering(&moved_on);
        assert!(!store.release_decision(&claim(), &claimed).await.unwrap());
    }

    #[tokio::test]
    async fn when_downloading_then_the_count_is_incremented_atomically_below_the_maximum() {
        let update = mock!(aws_sdk_dynamodb::Client::update_item)
            .match_requests(|r| {
                let cond = r.condition_expression().unwrap_or_default();
                let v = r.expression_attribute_values();
                r.update_expression()
                    == Some("SET download_count = if_not_exists(download_count, :zero) + :one")
                    && cond.contains("download_count < :max")
                    && cond.contains("attribute_exists(archive_key)")
                    && v.and_then(|v| v.get(":max"))
                        .and_then(|m| m.as_n().ok())
                        .map(String::as_str)
                        == Some("3")
                    && value(v, ":final") == Some("IGAPPROVED")
            })
            .then_output(|| {
                UpdateItemOutput::builder()
                    .attributes("download_count", AttributeValue::N("2".into()))
                    .build()
            });
        let count = store_answering(&update)
            .count_download("req-1", EgressStatus::IgApproved, 3)
            .await
            .unwrap();
        assert_eq!(count, DownloadCount::Counted(2));
    }

    /// What counting a download (of at most 3) gives when its condition fails and the
    /// request is then read as `now`.
    async fn count_refused_with(now: &EgressRequest) -> DownloadCount {
        let update = mock!(aws_sdk_dynamodb::Client::update_item).then_error(condition_failed);
        let now = item(now);
        let get = mock!(aws_sdk_dynamodb::Client::get_item)
            .then_output(move || GetItemOutput::builder().set_item(Some(now.clone())).build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&update, &get]);
        DynamoDbRequestStore::new(client, "requests")
            .count_download("req-1", EgressStatus::IgApproved, 3)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn when_the_download_limit_is_reached_then_the_limit_is_reported() {
        let exhausted = approved(sample_request("req-1", ApprovalMode::Single), 3);
        let outcome = count_refused_with(&exhausted).await;
        assert_eq!(outcome, DownloadCount::LimitReached);
    }

    #[tokio::test]
    async fn when_the_request_is_not_approved_then_the_download_is_unavailable_with_its_status() {
        let in_review = sample_request("req-1", ApprovalMode::Single);
        let outcome = count_refused_with(&in_review).await;
        assert_eq!(
            outcome,
            DownloadCount::Unavailable(EgressStatus::Processing)
        );
    }

    #[tokio::test]
    async fn when_listing_recent_requests_then_one_bounded_page_of_the_submission_index_is_read() {
        let newer = sample_request("req-2", ApprovalMode::Single);
        let page = item(&newer);
        let query = mock!(aws_sdk_dynamodb::Client::query)
            .match_requests(|r| {
                r.index_name() == Some(LIST_INDEX)
                    && r.scan_index_forward() == Some(false)
                    && r.limit() == Some(50)
                    && r.key_condition_expression()
                        == Some("record_type = :rt AND requested_dt >= :since")
                    && value(r.expression_attribute_values(), ":rt") == Some(RECORD_TYPE)
                    && value(r.expression_attribute_values(), ":since")
                        == Some("2024-04-01T00:00:00.000Z")
                    && r.filter_expression().is_none()
                    && r.exclusive_start_key().is_some_and(|k| {
                        k.get("egress_request_id") == Some(&AttributeValue::S("req-9".into()))
                            && k.get("record_type") == Some(&AttributeValue::S(RECORD_TYPE.into()))
                            && k.get("requested_dt")
                                == Some(&AttributeValue::S("2024-05-03T00:00:00.000Z".into()))
                            && k.len() == 3
                    })
            })
            .then_output(move || {
                QueryOutput::builder()
                    .items(page.clone())
                    .scanned_count(1)
                    .count(1)
                    .last_evaluated_key("egress_request_id", AttributeValue::S("req-2".into()))
                    .build()
            });
        let client = mock_client!(aws_sdk_dynamodb, [&query]);
        let after = ListPosition {
            egress_request_id: "req-9".into(),
            requested_dt: "2024-05-03T00:00:00.000Z".into(),
            egress_status: EgressStatus::Rejected,
        };
        let listed = DynamoDbRequestStore::new(client, "requests")
            .list_page(
                &ListIndex::Submitted {
                    since: Some("2024-04-01T00:00:00.000Z".into()),
                },
                Some(&after),
                50,
            )
            .await
            .unwrap();
        assert_eq!(listed.requests.len(), 1);
        assert_eq!(listed.read, 1);
        assert_eq!(listed.next, Some(ListPosition::of(&newer)));
        assert_eq!(query.num_calls(), 1);
    }

    #[tokio::test]
    async fn when_listing_a_status_then_the_status_index_is_read_and_malformed_items_are_skipped() {
        let good = item(&sample_request("req-1", ApprovalMode::Single));
        let mut bad = HashMap::new();
        bad.insert(
            "egress_request_id".to_string(),
            AttributeValue::S("req-bad".into()),
        );
        let query = mock!(aws_sdk_dynamodb::Client::query)
            .match_requests(|r| {
                r.index_name() == Some(STATUS_INDEX)
                    && r.key_condition_expression() == Some("egress_status = :st")
                    && value(r.expression_attribute_values(), ":st") == Some("PROCESSING")
                    && r.exclusive_start_key().is_none()
                    && r.limit() == Some(10)
            })
            .then_output(move || {
                QueryOutput::builder()
                    .items(bad.clone())
                    .items(good.clone())
                    .scanned_count(2)
                    .count(2)
                    .build()
            });
        let listed = store_answering(&query)
            .list_page(&ListIndex::Status(EgressStatus::Processing), None, 10)
            .await
            .unwrap();
        assert_eq!(listed.requests.len(), 1);
        assert_eq!(listed.requests[0].egress_request_id, "req-1");
        assert_eq!(listed.read, 2);
        assert_eq!(
            listed.next, None,
            "no LastEvaluatedKey: the index is exhausted"
        );
    }
}

#[cfg(test)]
mod revoke_tests {
    use super::tests::{condition_failed, store_answering};
    use super::*;
    use aws_smithy_mocks::mock;

    fn claim() -> RevocationClaim {
        RevocationClaim {
            egress_request_id: "req-1".into(),
            approved_status: EgressStatus::RitApproved,
            reason: "Identifiable data found".into(),
            revoked_by: "ada".into(),
            revoked_by_email: "ada@example.org".into(),
            at: "2024-05-03T12:00:00.000Z".into(),
        }
    }

    fn value<'a>(v: Option<&'a HashMap<String, AttributeValue>>, name: &str) -> Option<&'a str> {
        v?.get(name)?.as_s().ok().map(String::as_str)
    }

    #[tokio::test]
    async fn when_revoking_then_one_conditional_write_sets_revoked_with_who_when_and_why() {
        let update = mock!(aws_sdk_dynamodb::Client::update_item)
            .match_requests(|r| {
                let v = r.expression_attribute_values();
                r.table_name() == Some("requests")
                    && r.key().and_then(|k| k.get("egress_request_id"))
                        == Some(&AttributeValue::S("req-1".into()))
                    && r.condition_expression() == Some("egress_status = :approved")
                    && r.update_expression()
                        .is_some_and(|u| u.contains("revoked_reason = :reason"))
                    && value(v, ":approved") == Some("RITAPPROVED")
                    && value(v, ":revoked") == Some("REVOKED")
                    && value(v, ":by") == Some("ada")
                    && value(v, ":reason") == Some("Identifiable data found")
                    && r.return_values().is_none()
            })
            .then_output(|| UpdateItemOutput::builder().build());
        let won = store_answering(&update)
            .claim_revocation(&claim())
            .await
            .unwrap();
        assert!(won);
        assert_eq!(update.num_calls(), 1);
    }

    #[tokio::test]
    async fn when_the_request_is_no_longer_approved_then_the_revocation_is_lost_not_an_error() {
        let update = mock!(aws_sdk_dynamodb::Client::update_item).then_error(condition_failed);
        let won = store_answering(&update)
            .claim_revocation(&claim())
            .await
            .unwrap();
        assert!(!won);
    }

    #[tokio::test]
    async fn when_dynamodb_fails_otherwise_then_the_revocation_is_an_error_not_a_loss() {
        let update = mock!(aws_sdk_dynamodb::Client::update_item).then_error(|| {
            UpdateItemError::ProvisionedThroughputExceededException(
                aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException::builder()
                    .message("slow down")
                    .build(),
            )
        });
        let err = store_answering(&update)
            .claim_revocation(&claim())
            .await
            .unwrap_err();
        // Classified by the shared SDK error rules (tested with them); never a lost claim,
        // which the API would report as "already revoked".
        assert!(err.to_string().starts_with("revoking req-1"), "{err}");
    }
}
