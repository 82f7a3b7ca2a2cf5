//! [`SweepStore`] on the requests table and SWB's egress store table.
//!
//! Every write is one conditional `UpdateItem` on the state the sweep read, so a repair or a
//! notice record happens once however many sweeps run.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::classify;
use super::dynamodb_review::STATUS_INDEX;
use crate::error::{EgressError, Result};
use crate::model::{EgressRequest, EgressStatus, NoticeMarks, SwbStoreItem};
use crate::ports::{NoticeClaim, RequestEnd, SweepStore};

/// [`SweepStore`] on the requests table and SWB's store table.
#[derive(Debug, Clone)]
pub struct DynamoDbSweepStore {
    client: Client,
    requests_table: String,
    swb_table: String,
}

impl DynamoDbSweepStore {
    /// Wraps `client` for the two tables.
    pub fn new(
        client: Client,
        requests_table: impl Into<String>,
        swb_table: impl Into<String>,
    ) -> Self {
        Self {
            client,
            requests_table: requests_table.into(),
            swb_table: swb_table.into(),
        }
    }

    fn update_request(&self, id: &str) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.requests_table)
            .key("egress_request_id", s(id))
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u32) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// `Ok(false)` when the condition failed.
async fn conditional(update: UpdateItemFluentBuilder, what: &str) -> Result<bool> {
    match update.send().await {
        Ok(_) => Ok(true),
        Err(err) => match err.as_service_error() {
            Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(false),
            _ => Err(classify(what, err)),
        },
    }
}

/// The attributes of each notice's mark: (handle, count, time).
fn mark_attributes(kind: &str) -> Result<(&'static str, &'static str, &'static str)> {
    Ok(match kind {
        "reminder" => ("reminder_handle", "reminders_sent", "last_reminded_dt"),
        "escalation" => ("escalation_handle", "escalations_sent", "escalated_dt"),
        "expiry_warning" => (
            "expiry_warning_handle",
            "expiry_warnings_sent",
            "expiry_warned_dt",
        ),
        other => {
            return Err(EgressError::Internal(format!(
                "unknown notice kind {other:?}"
            )))
        }
    })
}

impl DynamoDbSweepStore {
    /// Every request of the `by-status` index with `status`, submitted at or after `since`
    /// when given (all pages).
    async fn query_status(
        &self,
        status: EgressStatus,
        since: Option<&str>,
    ) -> Result<Vec<EgressRequest>> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.requests_table)
                .index_name(STATUS_INDEX)
                .expression_attribute_values(":st", s(status.as_str()))
                .set_exclusive_start_key(start.take());
            query = match since {
                Some(since) => query
                    .key_condition_expression("egress_status = :st AND requested_dt >= :since")
                    .expression_attribute_values(":since", s(since)),
                None => query.key_condition_expression("egress_status = :st"),
            };
            let page = query
                .send()
                .await
                .map_err(|e| classify(&format!("Query {STATUS_INDEX} {status}"), e))?;
            for item in page.items.unwrap_or_default() {
                match serde_dynamo::from_item::<_, EgressRequest>(item) {
                    Ok(r) => out.push(r),
                    // One malformed item must not stop the sweep of every other request.
                    Err(e) => {
                        tracing::error!(error = %e, "request in an unexpected shape left out of the sweep")
                    }
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }
}

impl SweepStore for DynamoDbSweepStore {
    async fn with_status(&self, status: EgressStatus) -> Result<Vec<EgressRequest>> {
        self.query_status(status, None).await
    }

    async fn with_status_since(
        &self,
        status: EgressStatus,
        since: &str,
    ) -> Result<Vec<EgressRequest>> {
        self.query_status(status, Some(since)).await
    }

    async fn settle_decision(&self, id: &str, task_token: &str) -> Result<bool> {
        let update = self
            .update_request(id)
            .update_expression("REMOVE pending_task_token")
            .condition_expression("pending_task_token = :token")
            .expression_attribute_values(":token", s(task_token));
        conditional(update, &format!("settling the delivered decision of {id}")).await
    }

    async fn marked(&self, id: &str) -> Result<Option<(EgressRequest, NoticeMarks)>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.requests_table)
            .key("egress_request_id", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(&format!("GetItem {id}"), e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let shape = |e: serde_dynamo::Error| {
            EgressError::Internal(format!(
                "egress request {id} is stored in an unexpected shape: {e}"
            ))
        };
        let marks: NoticeMarks = serde_dynamo::from_item(item.clone()).map_err(shape)?;
        let request: EgressRequest = serde_dynamo::from_item(item).map_err(shape)?;
        Ok(Some((request, marks)))
    }

    async fn claim_notice(&self, c: &NoticeClaim<'_>) -> Result<bool> {
        let (handle_attr, count_attr, dt_attr) = mark_attributes(c.kind)?;
        // The mark must be exactly as read: two sweeps that read the same mark race on this
        // condition and only one records (and sends) the notice.
        let previous = match c.previous_handle {
            None => "attribute_not_exists(#mh)".to_string(),
            Some(_) if c.kind == "reminder" => {
                "(#mh = :prev_handle AND (#mc = :prev_count OR attribute_not_exists(#mc)))"
                    .to_string()
            }
            Some(_) => "#mh = :prev_handle".to_string(),
        };
        let mut update = self
            .update_request(c.egress_request_id)
            .update_expression("SET #mh = :handle, #mc = :count, #md = :at")
            .condition_expression(format!(
                "attribute_exists(egress_request_id) AND review_handle = :handle AND egress_status = :awaiting AND {previous}"
            ))
            .expression_attribute_names("#mh", handle_attr)
            .expression_attribute_names("#mc", count_attr)
            .expression_attribute_names("#md", dt_attr)
            .expression_attribute_values(":handle", s(c.handle))
            .expression_attribute_values(":count", n(c.count))
            .expression_attribute_values(":at", s(c.at))
            .expression_attribute_values(":awaiting", s(c.awaiting_status.as_str()));
        if let Some(prev) = c.previous_handle {
            update = update.expression_attribute_values(":prev_handle", s(prev));
            if c.kind == "reminder" {
                update = update.expression_attribute_values(":prev_count", n(c.previous_count));
            }
        }
        conditional(
            update,
            &format!("recording the {} of {}", c.kind, c.egress_request_id),
        )
        .await
    }

    async fn end_request(&self, e: &RequestEnd<'_>) -> Result<bool> {
        let mut update = self
            .update_request(e.egress_request_id)
            .condition_expression("attribute_exists(egress_request_id) AND egress_status = :from")
            .expression_attribute_values(":from", s(e.from.as_str()))
            .expression_attribute_values(":to", s(e.to.as_str()))
            .expression_attribute_values(":by", s(crate::services::sweep::ACTOR))
            .expression_attribute_values(":at", s(e.at));
        // The task token and the web app's handle go too: nothing can resume an ended request.
        update = match e.failure {
            Some((error, cause)) => update
                .update_expression(
                    "SET egress_status = :to, failure_error = :error, failure_cause = :cause, \
                     updated_by = :by, updated_dt = :at REMOVE sfn_task_token, review_handle",
                )
                .expression_attribute_values(":error", s(error))
                .expression_attribute_values(":cause", s(cause)),
            None => update.update_expression(
                "SET egress_status = :to, updated_by = :by, updated_dt = :at \
                 REMOVE sfn_task_token, review_handle",
            ),
        };
        conditional(update, &format!("ending {}", e.egress_request_id)).await
    }

    async fn processing_stores(&self) -> Result<Vec<SwbStoreItem>> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.swb_table)
                .filter_expression("#status = :processing")
                .expression_attribute_names("#id", "id")
                .expression_attribute_names("#status", "status")
                .expression_attribute_names("#lock", "egress_request_lock")
                .expression_attribute_values(":processing", s("PROCESSING"))
                // Placeholders for every name: `status` is a DynamoDB reserved word.
                .projection_expression("#id, #status, #lock")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("Scan SWB egress store table", e))?;
            for item in page.items.unwrap_or_default() {
                let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
                if let Some(id) = text("id") {
                    out.push(SwbStoreItem {
                        id,
                        status: text("status"),
                        lock: text("egress_request_lock"),
                    });
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn release_store(&self, store_id: &str, lock: &str, to: &str) -> Result<bool> {
        let update = self
            .client
            .update_item()
            .table_name(&self.swb_table)
            .key("id", s(store_id))
            .update_expression("SET #status = :to REMOVE #lock")
            .condition_expression(
                "attribute_exists(id) AND #lock = :lock AND #status = :processing",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#lock", "egress_request_lock")
            .expression_attribute_values(":to", s(to))
            .expression_attribute_values(":lock", s(lock))
            .expression_attribute_values(":processing", s("PROCESSING"));
        conditional(update, &format!("releasing SWB egress store {store_id}")).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{parked_at, sample_request};
    use crate::model::{ApprovalMode, ReviewStage};
    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::operation::query::QueryOutput;
    use aws_sdk_dynamodb::operation::scan::ScanOutput;
    use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    fn store(client: Client) -> DynamoDbSweepStore {
        DynamoDbSweepStore::new(client, "requests", "swb")
    }

    fn failed_condition() -> UpdateItemError {
        UpdateItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder().build(),
        )
    }

    fn value<'a>(values: Option<&'a HashMap<String, AttributeValue>>, k: &str) -> Option<&'a str> {
        values?.get(k)?.as_s().ok().map(String::as_str)
    }

    #[tokio::test]
    async fn when_listing_a_status_then_every_page_of_the_status_index_is_read() {
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(sample_request("req-1", ApprovalMode::Single)).unwrap();
        let (first, second) = (item.clone(), item);
        let page1 = mock!(Client::query)
            .match_requests(|r| {
                r.index_name() == Some(STATUS_INDEX) && r.exclusive_start_key().is_none()
            })
            .then_output(move || {
                QueryOutput::builder()
                    .items(first.clone())
                    .last_evaluated_key("egress_request_id", s("req-1"))
                    .build()
            });
        let page2 = mock!(Client::query)
            .match_requests(|r| r.exclusive_start_key().is_some())
            .then_output(move || QueryOutput::builder().items(second.clone()).build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&page1, &page2]);
        let found = store(client)
            .with_status(EgressStatus::Processing)
            .await
            .unwrap();
        assert_eq!(found.len(), 2);
    }

    #[tokio::test]
    async fn when_listing_a_status_since_a_time_then_the_sort_key_bounds_the_query() {
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(sample_request("req-1", ApprovalMode::Single)).unwrap();
        let query = mock!(Client::query)
            .match_requests(|r| {
                r.index_name() == Some(STATUS_INDEX)
                    && r.key_condition_expression()
                        == Some("egress_status = :st AND requested_dt >= :since")
                    && value(r.expression_attribute_values(), ":st") == Some("REJECTED")
                    && value(r.expression_attribute_values(), ":since")
                        == Some("2024-04-01T00:00:00.000Z")
            })
            .then_output(move || QueryOutput::builder().items(item.clone()).build());
        let client = mock_client!(aws_sdk_dynamodb, [&query]);
        let found = store(client)
            .with_status_since(EgressStatus::Rejected, "2024-04-01T00:00:00.000Z")
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(query.num_calls(), 1);
    }

    #[tokio::test]
    async fn when_settling_a_delivery_then_only_the_same_pending_token_is_removed() {
        let settle = mock!(Client::update_item)
            .match_requests(|r| {
                r.update_expression() == Some("REMOVE pending_task_token")
                    && r.condition_expression() == Some("pending_task_token = :token")
                    && value(r.expression_attribute_values(), ":token") == Some("tok")
            })
            .then_output(|| UpdateItemOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, [&settle]);
        assert!(store(client).settle_decision("req-1", "tok").await.unwrap());
        let gone = mock!(Client::update_item).then_error(failed_condition);
        let client = mock_client!(aws_sdk_dynamodb, [&gone]);
        assert!(!store(client).settle_decision("req-1", "tok").await.unwrap());
    }

    #[tokio::test]
    async fn when_reading_a_request_then_its_marks_come_with_it() {
        let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(parked_at(
            sample_request("req-1", ApprovalMode::Single),
            ReviewStage::Ig,
            "t",
            "h",
        ))
        .unwrap();
        item.insert("reminder_handle".into(), s("h"));
        item.insert("reminders_sent".into(), n(2));
        let get = mock!(Client::get_item)
            .match_requests(|r| r.consistent_read() == Some(true))
            .then_output(move || {
                GetItemOutput::builder()
                    .set_item(Some(item.clone()))
                    .build()
            });
        let client = mock_client!(aws_sdk_dynamodb, [&get]);
        let (request, marks) = store(client).marked("req-1").await.unwrap().unwrap();
        assert_eq!(request.review_handle.as_deref(), Some("h"));
        assert_eq!(
            (marks.reminder_handle.as_deref(), marks.reminders_sent),
            (Some("h"), 2)
        );
    }

    fn claim(previous_handle: Option<&'static str>) -> NoticeClaim<'static> {
        NoticeClaim {
            egress_request_id: "req-1",
            kind: "reminder",
            handle: "h",
            awaiting_status: EgressStatus::Processing,
            previous_handle,
            previous_count: 1,
            count: 2,
            at: "2024-05-01T10:00:00.000Z",
        }
    }

    #[tokio::test]
    async fn when_a_reminder_is_claimed_then_the_write_is_conditional_on_the_stage_and_the_mark_read(
    ) {
        let update = mock!(Client::update_item)
            .match_requests(|r| {
                let cond = r.condition_expression().unwrap_or_default();
                cond.contains("review_handle = :handle")
                    && cond.contains("egress_status = :awaiting")
                    && cond.contains("#mc = :prev_count")
                    && value(r.expression_attribute_values(), ":prev_handle") == Some("h")
                    && r.expression_attribute_names()
                        .and_then(|n| n.get("#mc"))
                        .map(String::as_str)
                        == Some("reminders_sent")
                    && r.expression_attribute_values()
                        .and_then(|v| v.get(":count"))
                        == Some(&AttributeValue::N("2".into()))
            })
            .then_output(|| UpdateItemOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, [&update]);
        assert!(store(client).claim_notice(&claim(Some("h"))).await.unwrap());
    }

    #[tokio::test]
    async fn when_a_first_notice_is_claimed_then_the_mark_must_not_exist_yet() {
        let update = mock!(Client::update_item)
            .match_requests(|r| {
                r.condition_expression()
                    .unwrap_or_default()
                    .contains("attribute_not_exists(#mh)")
                    && value(r.expression_attribute_values(), ":prev_handle").is_none()
            })
            .then_output(|| UpdateItemOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, [&update]);
        assert!(store(client).claim_notice(&claim(None)).await.unwrap());
    }

    #[tokio::test]
    async fn when_another_sweep_or_a_decision_got_there_first_then_the_claim_is_lost() {
        let update = mock!(Client::update_item).then_error(failed_condition);
        let client = mock_client!(aws_sdk_dynamodb, [&update]);
        assert!(!store(client).claim_notice(&claim(Some("h"))).await.unwrap());
    }

    #[tokio::test]
    async fn when_ending_a_request_then_it_is_conditional_on_the_status_read_and_drops_the_token() {
        let update = mock!(Client::update_item)
            .match_requests(|r| {
                let expr = r.update_expression().unwrap_or_default();
                expr.contains("failure_cause = :cause")
                    && expr.contains("REMOVE sfn_task_token")
                    && value(r.expression_attribute_values(), ":from") == Some("PROCESSING")
                    && value(r.expression_attribute_values(), ":to") == Some("FAILED")
            })
            .then_output(|| UpdateItemOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, [&update]);
        let ended = store(client)
            .end_request(&RequestEnd {
                egress_request_id: "req-1",
                from: EgressStatus::Processing,
                to: EgressStatus::Failed,
                failure: Some(("ExecutionMissing", "no execution")),
                at: "2024-05-01T10:00:00.000Z",
            })
            .await
            .unwrap();
        assert!(ended);
    }

    #[tokio::test]
    async fn when_scanning_swb_stores_then_processing_items_are_read_with_their_lock() {
        let scan = mock!(Client::scan)
            .match_requests(|r| {
                r.table_name() == Some("swb")
                    && value(r.expression_attribute_values(), ":processing") == Some("PROCESSING")
            })
            .then_output(|| {
                ScanOutput::builder()
                    .items(HashMap::from([
                        ("id".to_string(), s("ws-1")),
                        ("status".to_string(), s("PROCESSING")),
                        ("egress_request_lock".to_string(), s("req-9")),
                    ]))
                    .build()
            });
        let client = mock_client!(aws_sdk_dynamodb, [&scan]);
        let stores = store(client).processing_stores().await.unwrap();
        assert_eq!(stores.len(), 1);
        assert_eq!(stores[0].lock.as_deref(), Some("req-9"));
    }

    #[tokio::test]
    async fn when_releasing_a_store_then_it_must_still_hold_the_lock_and_a_refusal_is_false() {
        let update = mock!(Client::update_item)
            .match_requests(|r| {
                r.table_name() == Some("swb")
                    && value(r.expression_attribute_values(), ":lock") == Some("req-9")
                    && value(r.expression_attribute_values(), ":to") == Some("PENDING")
            })
            .then_error(failed_condition);
        let client = mock_client!(aws_sdk_dynamodb, [&update]);
        assert!(!store(client)
            .release_store("ws-1", "req-9", "PENDING")
            .await
            .unwrap());
    }
}
