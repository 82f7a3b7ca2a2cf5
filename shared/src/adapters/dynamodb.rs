//! DynamoDB adapters: the requests table (the audit table: [`super::dynamodb_audit`]).

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::classify;
use super::dynamodb_review::s;
use crate::error::{EgressError, Result};
use crate::model::{EgressRequest, StagingResult};
use crate::ports::{PendingReview, RequestStore};

/// [`RequestStore`] on the requests table (partition key `egress_request_id`).
#[derive(Debug, Clone)]
pub struct DynamoDbRequestStore {
    client: Client,
    table: String,
}

impl DynamoDbRequestStore {
    /// Wraps `client` for `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The SDK client, for adapters of other ports on the same table.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// An `UpdateItem` of request `egress_request_id` on this table.
    pub(super) fn update_request_item(&self, egress_request_id: &str) -> UpdateItemFluentBuilder {
        let (k, v) = Self::key(egress_request_id);
        self.client.update_item().table_name(&self.table).key(k, v)
    }

    fn key(id: &str) -> (String, AttributeValue) {
        ("egress_request_id".to_string(), s(id))
    }

    /// Runs an update whose condition includes `attribute_exists(egress_request_id)`, and
    /// turns a failed condition into `NotFound` (no item) or `Conflict` (item in another
    /// state).
    async fn conditional_update(
        &self,
        id: &str,
        what: &str,
        update: UpdateItemFluentBuilder,
    ) -> Result<()> {
        match update.send().await {
            Ok(_) => Ok(()),
            Err(err) => match err.into_service_error() {
                UpdateItemError::ConditionalCheckFailedException(_) => match self.get(id).await? {
                    None => Err(EgressError::NotFound(format!(
                        "{what}: egress request {id} does not exist"
                    ))),
                    Some(found) => Err(EgressError::Conflict(format!(
                        "{what}: egress request {id} is {} and cannot take this update",
                        found.egress_status
                    ))),
                },
                other => Err(classify_service(what, other)),
            },
        }
    }
}

fn classify_service(what: &str, err: UpdateItemError) -> EgressError {
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    let code = err.code().unwrap_or_default().to_string();
    let message = format!("{what}: {code}: {}", err.message().unwrap_or_default());
    match err {
        UpdateItemError::ProvisionedThroughputExceededException(_)
        | UpdateItemError::RequestLimitExceeded(_)
        | UpdateItemError::InternalServerError(_)
        | UpdateItemError::TransactionConflictException(_) => EgressError::Transient(message),
        UpdateItemError::ResourceNotFoundException(_) => EgressError::Internal(message),
        _ if code == "ThrottlingException" => EgressError::Transient(message),
        _ => EgressError::Internal(message),
    }
}

impl RequestStore for DynamoDbRequestStore {
    async fn get(&self, egress_request_id: &str) -> Result<Option<EgressRequest>> {
        let (k, v) = Self::key(egress_request_id);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(k, v)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(&format!("GetItem {egress_request_id}"), e))?;
        match out.item {
            None => Ok(None),
            Some(item) => serde_dynamo::from_item(item).map(Some).map_err(|e| {
                EgressError::Internal(format!(
                    "egress request {egress_request_id} is stored in an unexpected shape: {e}"
                ))
            }),
        }
    }

    async fn record_pending_review(&self, p: &PendingReview<'_>) -> Result<()> {
        let update = self
            .update_request_item(p.egress_request_id)
            .update_expression(
                "SET sfn_task_token = :token, review_handle = :handle, review_stage = :stage, \
                 current_reviewer_group = :grp, updated_dt = :at",
            )
            .condition_expression(
                "attribute_exists(egress_request_id) AND egress_status = :awaiting",
            )
            .expression_attribute_values(":token", s(p.task_token))
            .expression_attribute_values(":handle", s(p.review_handle))
            .expression_attribute_values(":stage", s(p.stage.as_str()))
            .expression_attribute_values(":grp", s(p.reviewer_group))
            .expression_attribute_values(":at", s(p.at))
            .expression_attribute_values(":awaiting", s(p.awaiting_status.as_str()));
        self.conditional_update(
            p.egress_request_id,
            &format!("recording the {} review task", p.stage),
            update,
        )
        .await
    }

    async fn record_staging(
        &self,
        egress_request_id: &str,
        staging: &StagingResult,
        manifest_version: Option<&str>,
        at: &str,
    ) -> Result<()> {
        let update = self
            .update_request_item(egress_request_id)
            .update_expression(
                "SET staged_file_count = :count, staged_total_bytes = :bytes, \
                 staged_file_types = :types, staging_manifest_key = :manifest, \
                 s3_staging_object_metadata_version = :mver, updated_dt = :at",
            )
            .condition_expression("attribute_exists(egress_request_id)")
            .expression_attribute_values(
                ":count",
                AttributeValue::N(staging.file_count.to_string()),
            )
            .expression_attribute_values(
                ":bytes",
                AttributeValue::N(staging.total_bytes.to_string()),
            )
            .expression_attribute_values(":types", s(&staging.file_types))
            .expression_attribute_values(":manifest", s(&staging.manifest_key))
            .expression_attribute_values(":mver", s(manifest_version.unwrap_or("null")))
            .expression_attribute_values(":at", s(at));
        self.conditional_update(egress_request_id, "recording the staging result", update)
            .await
    }

    async fn record_archive(
        &self,
        egress_request_id: &str,
        archive_key: &str,
        at: &str,
    ) -> Result<()> {
        let update = self
            .update_request_item(egress_request_id)
            .update_expression("SET archive_key = :key, updated_dt = :at")
            .condition_expression("attribute_exists(egress_request_id)")
            .expression_attribute_values(":key", s(archive_key))
            .expression_attribute_values(":at", s(at));
        self.conditional_update(egress_request_id, "recording the archive", update)
            .await
    }
}

/// The audit table's adapter lives in its own module; re-exported here where the functions
/// have always found it.
pub use super::dynamodb_audit::DynamoDbAuditLog;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EgressStatus, ReviewStage};
    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    fn stored(status: EgressStatus) -> std::collections::HashMap<String, AttributeValue> {
        serde_dynamo::to_item(crate::testdata::request("req-1", status)).unwrap()
    }

    fn pending() -> PendingReview<'static> {
        PendingReview {
            egress_request_id: "req-1",
            stage: ReviewStage::Ig,
            awaiting_status: EgressStatus::Processing,
            reviewer_group: "IGApprover",
            task_token: "secret-token",
            review_handle: "handle-1",
            at: "2024-01-02T00:00:00.000Z",
        }
    }

    fn condition_failed() -> UpdateItemError {
        UpdateItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .message("The conditional request failed")
                .build(),
        )
    }

    #[tokio::test]
    async fn when_recording_a_review_then_the_update_is_conditional_on_the_awaited_status() {
        let update = mock!(Client::update_item)
            .match_requests(|r| {
                r.condition_expression()
                    .unwrap_or_default()
                    .contains("attribute_exists")
                    && r.expression_attribute_values()
                        .and_then(|v| v.get(":awaiting"))
                        .and_then(|v| v.as_s().ok())
                        .map(|s| s == "PROCESSING")
                        .unwrap_or(false)
                    && r.expression_attribute_values()
                        .and_then(|v| v.get(":token"))
                        .and_then(|v| v.as_s().ok())
                        .map(|s| s == "secret-token")
                        .unwrap_or(false)
            })
            .then_output(|| UpdateItemOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, [&update]);
        let store = DynamoDbRequestStore::new(client, "requests");
        store.record_pending_review(&pending()).await.unwrap();
        assert_eq!(update.num_calls(), 1);
    }

    /// Recording the review task when its condition fails and the request reads as `now`.
    async fn recording_refused_with(now: Option<EgressStatus>) -> EgressError {
        let update = mock!(Client::update_item).then_error(condition_failed);
        let get = mock!(Client::get_item)
            .then_output(move || GetItemOutput::builder().set_item(now.map(stored)).build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&update, &get]);
        DynamoDbRequestStore::new(client, "requests")
            .record_pending_review(&pending())
            .await
            .unwrap_err()
    }

    #[tokio::test]
    async fn when_the_request_does_not_exist_then_recording_is_not_found() {
        let err = recording_refused_with(None).await;
        assert_eq!(err.error_type(), "NotFound");
        assert!(!err.to_string().contains("secret-token"));
    }

    #[tokio::test]
    async fn when_the_request_is_in_another_state_then_recording_is_a_conflict() {
        let err = recording_refused_with(Some(EgressStatus::Rejected)).await;
        assert_eq!(err.error_type(), "Conflict");
        assert!(err.to_string().contains("REJECTED"), "{err}");
    }

    #[tokio::test]
    async fn when_dynamodb_throttles_then_the_sdk_retries_and_succeeds() {
        let update = mock!(Client::update_item)
            .sequence()
            .http_status(400, Some(r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"slow down"}"#.into()))
            .output(|| UpdateItemOutput::builder().build())
            .build();
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&update], |c| c
            .retry_config(
                aws_sdk_dynamodb::config::retry::RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(std::time::Duration::from_millis(1))
            ));
        DynamoDbRequestStore::new(client, "requests")
            .record_pending_review(&pending())
            .await
            .unwrap();
        assert_eq!(update.num_calls(), 2);
    }

    #[tokio::test]
    async fn when_reading_a_stored_item_then_it_round_trips_through_the_model() {
        let get = mock!(Client::get_item).then_output(|| {
            GetItemOutput::builder()
                .set_item(Some(stored(EgressStatus::Processing)))
                .build()
        });
        let client = mock_client!(aws_sdk_dynamodb, [&get]);
        let found = DynamoDbRequestStore::new(client, "requests")
            .get("req-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.egress_status, EgressStatus::Processing);
        assert_eq!(found.download_count, 0);
    }
}
