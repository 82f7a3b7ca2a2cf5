//! [`AuditLog`] on the audit table: every event is appended as the next link of its
//! request's hash chain ([`crate::evidence::chain`]).
//!
//! Layout: an event is an item under partition key `egress_request_id`, sort key
//! `event_key` = `<at>#<uuid>` (so a request's trail reads back in time order and the items
//! Step Functions writes itself sit beside them), with `seq`, `prev_hash` and `hash`. Its
//! *chain lock* is an item under partition `<egress_request_id>#chain`, sort key
//! `<seq, 12 digits>`, holding `seq` and `hash`. Event and lock are written in one
//! transaction, each conditional on not existing: two writers cannot both take `seq = n`
//! (the chain cannot fork), and the loser re-reads the head and retries. The locks live in
//! their own partition so readers of a request's events never see them.
//!
//! Appends are idempotent where a retry could repeat them: when the transaction is refused,
//! the lock of the seq it tried says whether this very write landed (its answer lost, the
//! SDK retried) before the head is re-read; and an event appended with a `once` key also
//! writes a marker under `<egress_request_id>#once` in the same transaction, so a step
//! re-run after its answer was lost finds its own marker and writes nothing.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;

use super::classify;
use crate::error::{EgressError, Result};
use crate::evidence::chain::{self, ChainLink, StoredEvent};
use crate::ports::{Appended, AuditEvent, AuditLog, AuditTrail, ChainHead};

/// Appends that lose the race this many times in a row fail as `TransientError` (the
/// step's `Retry` then tries again later).
const MAX_ATTEMPTS: u32 = 12;

/// [`AuditLog`] on the audit table.
#[derive(Debug, Clone)]
pub struct DynamoDbAuditLog {
    client: Client,
    table: String,
}

/// Partition of a request's chain locks.
pub fn lock_partition(egress_request_id: &str) -> String {
    format!("{egress_request_id}#chain")
}

/// Partition of the markers of a request's once-only events ([`AuditLog::append_once`]).
pub fn once_partition(egress_request_id: &str) -> String {
    format!("{egress_request_id}#once")
}

impl DynamoDbAuditLog {
    /// Wraps `client` for `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn put(&self, item: HashMap<String, AttributeValue>) -> Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(event_key)")
            .build()
            .map_err(|e| EgressError::Internal(format!("audit put: {e}")))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Every item of `partition`, in key order (paged).
    async fn query_all(&self, partition: &str) -> Result<Vec<HashMap<String, AttributeValue>>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("egress_request_id = :p")
                .expression_attribute_values(":p", AttributeValue::S(partition.to_string()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify(&format!("audit Query {partition}"), e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

/// The lock item's view of the head.
fn lock_head(item: &HashMap<String, AttributeValue>) -> Option<ChainHead> {
    Some(ChainHead {
        seq: number(item, "seq")?,
        hash: text(item, "hash")?,
    })
}

/// Why a chained append's transaction was cancelled, by item: `[lock, event, once marker]`.
fn cancelled_items(err: &TransactWriteItemsError) -> Vec<bool> {
    match err {
        TransactWriteItemsError::TransactionCanceledException(e) => e
            .cancellation_reasons()
            .iter()
            .map(|r| r.code() == Some("ConditionalCheckFailed"))
            .collect(),
        _ => Vec::new(),
    }
}

impl DynamoDbAuditLog {
    /// The hash held by the chain lock of `seq`, if taken.
    async fn lock_hash(&self, egress_request_id: &str, seq: u64) -> Result<Option<String>> {
        let partition = lock_partition(egress_request_id);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("egress_request_id", AttributeValue::S(partition.clone()))
            .key("event_key", AttributeValue::S(format!("{seq:012}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(&format!("audit lock GetItem {partition}"), e))?;
        Ok(out.item().and_then(|item| text(item, "hash")))
    }

    /// Appends `event` as the next link; with `once`, also writes the marker
    /// `<id>#once`/`once` in the same transaction, conditional on not existing.
    async fn append_chained(&self, event: &AuditEvent, once: Option<&str>) -> Result<Appended> {
        let id = &event.egress_request_id;
        let mut base: HashMap<String, AttributeValue> = serde_dynamo::to_item(event)
            .map_err(|e| EgressError::Internal(format!("audit event cannot be stored: {e}")))?;
        base.insert(
            "event_key".into(),
            AttributeValue::S(format!("{}#{}", event.at, uuid::Uuid::new_v4())),
        );
        for attempt in 0..MAX_ATTEMPTS {
            let head = self.head(id).await?;
            let ChainLink {
                seq,
                prev_hash,
                hash,
            } = chain::next_link(event, head.as_ref());
            let mut item = base.clone();
            item.insert("seq".into(), AttributeValue::N(seq.to_string()));
            item.insert("prev_hash".into(), AttributeValue::S(prev_hash));
            item.insert("hash".into(), AttributeValue::S(hash.clone()));
            let lock = HashMap::from([
                (
                    "egress_request_id".to_string(),
                    AttributeValue::S(lock_partition(id)),
                ),
                (
                    "event_key".to_string(),
                    AttributeValue::S(format!("{seq:012}")),
                ),
                ("seq".to_string(), AttributeValue::N(seq.to_string())),
                ("hash".to_string(), AttributeValue::S(hash.clone())),
            ]);
            let mut write = self
                .client
                .transact_write_items()
                .transact_items(self.put(lock)?)
                .transact_items(self.put(item)?);
            if let Some(key) = once {
                let marker = HashMap::from([
                    (
                        "egress_request_id".to_string(),
                        AttributeValue::S(once_partition(id)),
                    ),
                    ("event_key".to_string(), AttributeValue::S(key.to_string())),
                    ("seq".to_string(), AttributeValue::N(seq.to_string())),
                ]);
                write = write.transact_items(self.put(marker)?);
            }
            let err = match write.send().await {
                Ok(_) => return Ok(Appended::Now),
                Err(err) => err,
            };
            let cancelled = err
                .as_service_error()
                .map(cancelled_items)
                .unwrap_or_default();
            if cancelled.get(2).copied().unwrap_or(false) {
                // The step audited itself before (its answer was lost and it ran again).
                return Ok(Appended::Already);
            }
            if cancelled.iter().any(|c| *c) {
                // Either another writer took this seq, or this very write landed and its
                // answer was lost (the SDK's retry then finds its own lock): the head says.
                if self.lock_hash(id, seq).await?.as_deref() == Some(hash.as_str()) {
                    return Ok(Appended::Now);
                }
                tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt + 1))).await;
                continue;
            }
            return Err(classify(&format!("audit TransactWriteItems {id}"), err));
        }
        Err(EgressError::Transient(format!(
            "audit event of {id} lost the race for the chain head {MAX_ATTEMPTS} times"
        )))
    }
}

impl AuditLog for DynamoDbAuditLog {
    async fn append(&self, event: &AuditEvent) -> Result<()> {
        self.append_chained(event, None).await.map(|_| ())
    }

    async fn append_once(&self, event: &AuditEvent, once: &str) -> Result<Appended> {
        self.append_chained(event, Some(once)).await
    }

    async fn trail(&self, egress_request_id: &str) -> Result<AuditTrail> {
        let items = self.query_all(egress_request_id).await?;
        let mut events = Vec::with_capacity(items.len());
        for item in items {
            let link = match (
                number(&item, "seq"),
                text(&item, "prev_hash"),
                text(&item, "hash"),
            ) {
                (Some(seq), Some(prev_hash), Some(hash)) => Some(ChainLink {
                    seq,
                    prev_hash,
                    hash,
                }),
                _ => None,
            };
            let event_key = text(&item, "event_key").unwrap_or_default();
            let event: AuditEvent = serde_dynamo::from_item(item).map_err(|e| {
                EgressError::Internal(format!(
                    "audit event {event_key} of {egress_request_id} has an unexpected shape: {e}"
                ))
            })?;
            events.push(StoredEvent {
                event_key,
                event,
                link,
            });
        }
        let locks = self
            .query_all(&lock_partition(egress_request_id))
            .await?
            .iter()
            .filter_map(lock_head)
            .collect();
        Ok(AuditTrail { events, locks })
    }

    async fn head(&self, egress_request_id: &str) -> Result<Option<ChainHead>> {
        let partition = lock_partition(egress_request_id);
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("egress_request_id = :p")
            .expression_attribute_values(":p", AttributeValue::S(partition.clone()))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(&format!("audit head Query {partition}"), e))?;
        Ok(out.items().first().and_then(lock_head))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::operation::query::QueryOutput;
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput;
    use aws_sdk_dynamodb::types::error::TransactionCanceledException;
    use aws_sdk_dynamodb::types::CancellationReason;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use serde_json::json;

    fn event() -> AuditEvent {
        AuditEvent {
            egress_request_id: "req-1".into(),
            at: "2026-01-01T00:00:00.000Z".into(),
            actor: "system:test".into(),
            actor_email: None,
            action: "cleanup".into(),
            outcome: "success".into(),
            detail: json!({ "deleted": 3, "keys": ["a", "b"], "nested": { "n": 1 } }),
        }
    }

    fn head_item(seq: u64, hash: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("seq".to_string(), AttributeValue::N(seq.to_string())),
            ("hash".to_string(), AttributeValue::S(hash.to_string())),
        ])
    }

    #[tokio::test]
    async fn when_appending_then_event_and_lock_are_written_together_each_conditional() {
        let head = mock!(Client::query)
            .then_output(|| QueryOutput::builder().items(head_item(4, "h4")).build());
        let write = mock!(Client::transact_write_items)
            .match_requests(|r| {
                let items = r.transact_items();
                items.len() == 2
                    && items.iter().all(|i| {
                        i.put().and_then(|p| p.condition_expression())
                            == Some("attribute_not_exists(event_key)")
                    })
                    && items[0].put().unwrap().item()["event_key"].as_s().unwrap() == "000000000005"
                    && items[0].put().unwrap().item()["egress_request_id"]
                        .as_s()
                        .unwrap()
                        == "req-1#chain"
                    && items[1].put().unwrap().item()["prev_hash"].as_s().unwrap() == "h4"
                    && items[1].put().unwrap().item()["seq"].as_n().unwrap() == "5"
            })
            .then_output(|| TransactWriteItemsOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&head, &write]);
        DynamoDbAuditLog::new(client, "audit")
            .append(&event())
            .await
            .unwrap();
        assert_eq!(write.num_calls(), 1);
    }

    #[tokio::test]
    async fn when_another_writer_took_the_seq_then_the_head_is_reread_and_the_append_retried() {
        let head = mock!(Client::query)
            .sequence()
            .output(|| QueryOutput::builder().build())
            .output(|| QueryOutput::builder().items(head_item(1, "h1")).build())
            .build();
        let write = mock!(Client::transact_write_items)
            .sequence()
            .error(|| {
                TransactWriteItemsError::TransactionCanceledException(
                    TransactionCanceledException::builder()
                        .cancellation_reasons(
                            CancellationReason::builder()
                                .code("ConditionalCheckFailed")
                                .build(),
                        )
                        .build(),
                )
            })
            .output(|| TransactWriteItemsOutput::builder().build())
            .build();
        // The lock of seq 1 holds the other writer's hash.
        let lock = mock!(Client::get_item).then_output(|| {
            GetItemOutput::builder()
                .set_item(Some(head_item(1, "h1")))
                .build()
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&head, &write, &lock]);
        DynamoDbAuditLog::new(client, "audit")
            .append(&event())
            .await
            .unwrap();
        assert_eq!(head.num_calls(), 2, "the head was read again");
        assert_eq!(write.num_calls(), 2);
    }

    fn cancelled(reasons: &[&str]) -> TransactWriteItemsError {
        let mut e = TransactionCanceledException::builder();
        for code in reasons {
            e = e.cancellation_reasons(CancellationReason::builder().code(*code).build());
        }
        TransactWriteItemsError::TransactionCanceledException(e.build())
    }

    #[tokio::test]
    async fn when_the_write_landed_but_its_answer_was_lost_then_it_is_not_written_again() {
        // The SDK's retry of a write that landed finds its own lock taken: same seq, same
        // hash. Writing again would put the event in the chain twice.
        let e = event();
        let own = chain::next_link(&e, None).hash;
        let head = mock!(Client::query).then_output(|| QueryOutput::builder().build());
        let write = mock!(Client::transact_write_items)
            .then_error(|| cancelled(&["ConditionalCheckFailed", "ConditionalCheckFailed"]));
        let lock = mock!(Client::get_item).then_output(move || {
            GetItemOutput::builder()
                .set_item(Some(head_item(1, &own)))
                .build()
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&head, &write, &lock]);
        let appended = DynamoDbAuditLog::new(client, "audit")
            .append_once(&e, "staged")
            .await
            .unwrap();
        assert_eq!(appended, Appended::Now);
        assert_eq!(write.num_calls(), 1, "not written a second time");
    }

    #[tokio::test]
    async fn when_a_step_audits_itself_again_then_its_once_marker_refuses_the_second_event() {
        let head = mock!(Client::query)
            .then_output(|| QueryOutput::builder().items(head_item(3, "h3")).build());
        let write = mock!(Client::transact_write_items)
            .match_requests(|r| {
                let marker = r.transact_items()[2].put().unwrap();
                marker.item()["egress_request_id"].as_s().unwrap() == "req-1#once"
                    && marker.item()["event_key"].as_s().unwrap() == "staged"
                    && marker.condition_expression() == Some("attribute_not_exists(event_key)")
            })
            .then_error(|| cancelled(&["None", "None", "ConditionalCheckFailed"]));
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&head, &write]);
        let appended = DynamoDbAuditLog::new(client, "audit")
            .append_once(&event(), "staged")
            .await
            .unwrap();
        assert_eq!(appended, Appended::Already);
        assert_eq!(write.num_calls(), 1);
    }

    #[tokio::test]
    async fn when_a_stored_chain_is_read_back_then_it_verifies() {
        // What append writes, read back through serde_dynamo: the hash must survive the trip.
        let e = event();
        let link = chain::next_link(&e, None);
        let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(&e).unwrap();
        item.insert("event_key".into(), AttributeValue::S("k1".into()));
        item.insert("seq".into(), AttributeValue::N("1".into()));
        item.insert(
            "prev_hash".into(),
            AttributeValue::S(link.prev_hash.clone()),
        );
        item.insert("hash".into(), AttributeValue::S(link.hash.clone()));
        let lock = head_item(1, &link.hash);
        let events = mock!(Client::query)
            .match_requests(|r| {
                r.expression_attribute_values().unwrap()[":p"]
                    .as_s()
                    .unwrap()
                    == "req-1"
            })
            .then_output(move || QueryOutput::builder().items(item.clone()).build());
        let locks = mock!(Client::query)
            .match_requests(|r| {
                r.expression_attribute_values().unwrap()[":p"]
                    .as_s()
                    .unwrap()
                    == "req-1#chain"
            })
            .then_output(move || QueryOutput::builder().items(lock.clone()).build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&events, &locks]);
        let trail = DynamoDbAuditLog::new(client, "audit")
            .trail("req-1")
            .await
            .unwrap();
        let report = chain::verify(&trail);
        assert!(report.valid, "{report:?}");
        assert_eq!(report.length, 1);
    }
}
