//! Reading the side effects of a request: the stored item, SWB's status, staging, the
//! datalake archive, e-mails sent, topic publications, the execution and its history.
//!
//! E-mails come from the router's mail catcher (what SES accepted); topic publications from
//! the SQS queue subscribed to each reviewer/admin topic, i.e. as a subscriber receives them.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent, HistoryEventType};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use shared::model::{EgressRequest, ReviewStage};

use crate::stack::{http_get_json, Stack};
use crate::wait;
use crate::{Context, Result};

/// The request item, read consistently; `None` when it does not exist.
pub async fn request(stack: &Stack, egress_request_id: &str) -> Result<Option<EgressRequest>> {
    let table = stack.outputs.table("RequestsTable")?;
    let out = stack
        .dynamodb
        .get_item()
        .table_name(table)
        .key(
            "egress_request_id",
            AttributeValue::S(egress_request_id.to_string()),
        )
        .consistent_read(true)
        .send()
        .await
        .context(format!("reading request {egress_request_id}"))?;
    match out.item {
        None => Ok(None),
        Some(item) => serde_dynamo::from_item(item).map(Some).context(format!(
            "request {egress_request_id} does not deserialize into EgressRequest"
        )),
    }
}

/// The SWB egress store item's `status`.
pub async fn swb_status(stack: &Stack, egress_store_id: &str) -> Result<Option<String>> {
    let table = stack.outputs.table("SwbEgressStoreTable")?;
    let out = stack
        .dynamodb
        .get_item()
        .table_name(table)
        .key("id", AttributeValue::S(egress_store_id.to_string()))
        .consistent_read(true)
        .send()
        .await
        .context(format!("reading SWB egress store {egress_store_id}"))?;
    Ok(out
        .item
        .and_then(|item| item.get("status").and_then(|v| v.as_s().ok().cloned())))
}

/// One audit event, as an auditor reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLine {
    /// What (`submitted`, `staged`, `decision`, `download`...).
    pub action: String,
    /// `success`, `refused` or `failed`.
    pub outcome: String,
    /// Who: a user id, or `system:<function>`.
    pub actor: String,
    /// The person's e-mail, when the actor is a person.
    pub actor_email: Option<String>,
}

/// Audit events of a request, oldest first.
pub async fn audit_lines(stack: &Stack, egress_request_id: &str) -> Result<Vec<AuditLine>> {
    let table = stack.outputs.table("AuditTable")?;
    let out = stack
        .dynamodb
        .query()
        .table_name(table)
        .key_condition_expression("egress_request_id = :id")
        .expression_attribute_values(":id", AttributeValue::S(egress_request_id.to_string()))
        .consistent_read(true)
        .send()
        .await
        .context(format!("reading the audit trail of {egress_request_id}"))?;
    let text = |item: &std::collections::HashMap<String, AttributeValue>, name: &str| {
        item.get(name).and_then(|v| v.as_s().ok().cloned())
    };
    Ok(out
        .items()
        .iter()
        .map(|item| AuditLine {
            action: text(item, "action").unwrap_or_default(),
            outcome: text(item, "outcome").unwrap_or_default(),
            actor: text(item, "actor").unwrap_or_default(),
            actor_email: text(item, "actor_email"),
        })
        .collect())
}

/// Audit events of a request, oldest first: `(action, outcome, actor)`.
pub async fn audit_trail(
    stack: &Stack,
    egress_request_id: &str,
) -> Result<Vec<(String, String, String)>> {
    Ok(audit_lines(stack, egress_request_id)
        .await?
        .into_iter()
        .map(|line| (line.action, line.outcome, line.actor))
        .collect())
}

/// Every object version and delete marker the request left in the staging bucket: staged
/// files under `<workspace_id>/<egress_request_id>/` and the manifest.
pub async fn staged_keys(
    stack: &Stack,
    workspace_id: &str,
    egress_request_id: &str,
) -> Result<Vec<String>> {
    let bucket = stack.outputs.bucket("StagingBucket")?;
    let mut keys = Vec::new();
    for prefix in [
        format!("{workspace_id}/{egress_request_id}/"),
        format!(".manifests/{workspace_id}/{egress_request_id}.json"),
    ] {
        let out = stack
            .s3
            .list_object_versions()
            .bucket(bucket)
            .prefix(&prefix)
            .send()
            .await
            .context(format!("listing staging under {prefix}"))?;
        keys.extend(
            out.versions()
                .iter()
                .filter_map(|v| v.key().map(str::to_string)),
        );
        keys.extend(
            out.delete_markers()
                .iter()
                .filter_map(|m| m.key().map(|k| format!("{k} (delete marker)"))),
        );
    }
    Ok(keys)
}

/// An object read back, with how it is encrypted.
#[derive(Debug, Clone)]
pub struct StoredObject {
    /// The content.
    pub body: Vec<u8>,
    /// `aws:kms` when SSE-KMS.
    pub server_side_encryption: Option<String>,
    /// The KMS key that encrypts it.
    pub kms_key_id: Option<String>,
}

/// An object of `bucket` (optionally one version); `None` when it does not exist.
pub async fn object(
    stack: &Stack,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<Option<StoredObject>> {
    let result = stack
        .s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version_id.map(str::to_string))
        .send()
        .await;
    let out = match result {
        Ok(out) => out,
        Err(err) => {
            if err
                .as_service_error()
                .map(|e| e.is_no_such_key())
                .unwrap_or(false)
                || err.raw_response().map(|r| r.status().as_u16()) == Some(404)
            {
                return Ok(None);
            }
            return Err(anyhow::anyhow!(
                "reading s3://{bucket}/{key}: {}",
                crate::chain(&err)
            ));
        }
    };
    let server_side_encryption = out.server_side_encryption().map(|s| s.as_str().to_string());
    let kms_key_id = out.ssekms_key_id().map(str::to_string);
    let body = out
        .body
        .collect()
        .await
        .context(format!("reading the body of s3://{bucket}/{key}"))?
        .into_bytes()
        .to_vec();
    Ok(Some(StoredObject {
        body,
        server_side_encryption,
        kms_key_id,
    }))
}

/// The datalake key of a request's archive (DESIGN.md §2.5).
pub fn archive_key(workspace_id: &str, egress_request_id: &str) -> String {
    format!("approved_egress/{workspace_id}/{egress_request_id}/egress_data.zip")
}

/// A zip archive's entries: path → content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    /// Entries by path, sorted.
    pub entries: BTreeMap<String, Vec<u8>>,
}

impl Archive {
    /// Unzips `bytes` (also checking each entry's CRC).
    pub fn read(bytes: &[u8]) -> Result<Self> {
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).context("opening the archive")?;
        let mut entries = BTreeMap::new();
        for i in 0..zip.len() {
            let mut file = zip
                .by_index(i)
                .context(format!("reading archive entry {i}"))?;
            if file.is_dir() {
                continue;
            }
            let name = file
                .name()
                .context(format!("archive entry {i} has an unreadable name"))?
                .to_string();
            let mut content = Vec::new();
            file.read_to_end(&mut content)
                .context(format!("reading archive entry {name}"))?;
            entries.insert(name, content);
        }
        Ok(Self { entries })
    }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// An e-mail SES accepted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SentEmail {
    /// From.
    pub source: String,
    /// To, Cc and Bcc.
    pub recipients: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Plain-text body.
    #[serde(default)]
    pub text: String,
    /// HTML body.
    #[serde(default)]
    pub html: String,
}

/// Every e-mail SES accepted so far (the router's mail catcher, `/_local/emails`).
pub fn emails(stack: &Stack) -> Result<Vec<SentEmail>> {
    let value = http_get_json(&format!("{}/_local/emails", stack.outputs.endpoint))?;
    serde_json::from_value(value).context("parsing the router's e-mail log")
}

/// E-mails whose subject or body mention `needle` (a request id).
pub fn emails_about(stack: &Stack, needle: &str) -> Result<Vec<SentEmail>> {
    Ok(emails(stack)?
        .into_iter()
        .filter(|m| {
            m.subject.contains(needle) || m.text.contains(needle) || m.html.contains(needle)
        })
        .collect())
}

/// One SNS publication, as a subscriber (the topic's SQS inbox) received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// Topic ARN.
    pub topic_arn: String,
    /// Subject.
    pub subject: Option<String>,
    /// Message.
    pub message: String,
}

#[derive(Debug, Deserialize)]
struct SnsEnvelope {
    #[serde(rename = "TopicArn")]
    topic_arn: String,
    #[serde(rename = "Subject", default)]
    subject: Option<String>,
    #[serde(rename = "Message")]
    message: String,
}

/// Publications received so far, by inbox queue URL. Receiving from a queue consumes, so
/// everything received is kept here for every test of the process to search.
static RECEIVED: Mutex<Vec<Publication>> = Mutex::new(Vec::new());
/// Held across a drain and the read that follows it: a test that read the cache while another
/// test's received batch was not yet in it would miss its own publication.
static DRAINING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn drain(stack: &Stack, queue_url: &str) -> Result<()> {
    loop {
        let out = stack
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .context(format!("receiving from {queue_url}"))?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(());
        }
        for m in messages {
            let envelope: SnsEnvelope = serde_json::from_str(m.body().unwrap_or_default())
                .context(format!(
                    "{queue_url} received something that is not an SNS envelope"
                ))?;
            RECEIVED
                .lock()
                .map_err(|_| anyhow::anyhow!("the publication cache is poisoned"))?
                .push(Publication {
                    topic_arn: envelope.topic_arn,
                    subject: envelope.subject,
                    message: envelope.message,
                });
            if let Some(handle) = m.receipt_handle() {
                stack
                    .sqs
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .context(format!("deleting a message from {queue_url}"))?;
            }
        }
    }
}

/// Publications on the topic with logical id `topic` (it must have an inbox) that mention
/// `needle`.
pub async fn publications_about(
    stack: &Stack,
    topic: &str,
    needle: &str,
) -> Result<Vec<Publication>> {
    let inbox = stack
        .outputs
        .inboxes
        .get(topic)
        .context(format!("topic {topic} has no inbox queue"))?;
    let _draining = DRAINING.lock().await;
    drain(stack, &inbox.queue_url).await?;
    let arn = stack.outputs.topic(topic)?;
    let received = RECEIVED
        .lock()
        .map_err(|_| anyhow::anyhow!("the publication cache is poisoned"))?;
    Ok(received
        .iter()
        .filter(|p| {
            p.topic_arn == arn
                && (p.message.contains(needle)
                    || p.subject.as_deref().unwrap_or("").contains(needle))
        })
        .cloned()
        .collect())
}

/// How an execution ended.
#[derive(Debug, Clone)]
pub struct ExecutionEnd {
    /// `SUCCEEDED`, `FAILED`...
    pub status: ExecutionStatus,
    /// The error of a failed execution.
    pub error: Option<String>,
    /// Its cause.
    pub cause: Option<String>,
}

/// Waits until the execution has ended.
pub async fn execution_end(
    stack: &Stack,
    execution_arn: &str,
    timeout: Duration,
) -> Result<ExecutionEnd> {
    wait::until(
        &format!("execution {execution_arn} to end"),
        timeout,
        || async {
            let out = match stack
                .sfn
                .describe_execution()
                .execution_arn(execution_arn)
                .send()
                .await
            {
                Ok(out) => out,
                // Started asynchronously (SNS → start-workflow): it may not exist yet.
                Err(err)
                    if err
                        .as_service_error()
                        .map(|e| e.is_execution_does_not_exist())
                        .unwrap_or(false) =>
                {
                    return Ok(None)
                }
                Err(err) => {
                    return Err(anyhow::anyhow!(
                        "describing {execution_arn}: {}",
                        crate::chain(&err)
                    ))
                }
            };
            if out.status == ExecutionStatus::Running {
                return Ok(None);
            }
            Ok(Some(ExecutionEnd {
                status: out.status,
                error: out.error,
                cause: out.cause,
            }))
        },
    )
    .await
}

/// The execution's history, oldest first.
pub async fn history(stack: &Stack, execution_arn: &str) -> Result<Vec<HistoryEvent>> {
    let mut events = Vec::new();
    let mut token = None;
    loop {
        let out = stack
            .sfn
            .get_execution_history()
            .execution_arn(execution_arn)
            .set_next_token(token)
            .send()
            .await
            .context(format!("reading the history of {execution_arn}"))?;
        events.extend(out.events);
        token = out.next_token;
        if token.is_none() {
            return Ok(events);
        }
    }
}

/// The states the execution entered, in order.
pub fn states_entered(events: &[HistoryEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| {
            e.state_entered_event_details()
                .map(|d| d.name().to_string())
        })
        .collect()
}

/// The error names of the tasks that failed, in order.
pub fn task_failures(events: &[HistoryEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| {
            matches!(
                e.r#type(),
                HistoryEventType::TaskFailed | HistoryEventType::LambdaFunctionFailed
            )
        })
        .filter_map(|e| {
            e.task_failed_event_details()
                .and_then(|d| d.error().map(str::to_string))
                .or_else(|| {
                    e.lambda_function_failed_event_details()
                        .and_then(|d| d.error().map(str::to_string))
                })
        })
        .collect()
}

/// Every execution of the stack's state machine, all pages.
pub async fn executions(stack: &Stack) -> Result<Vec<aws_sdk_sfn::types::ExecutionListItem>> {
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let out = stack
            .sfn
            .list_executions()
            .state_machine_arn(&stack.outputs.state_machine_arn)
            .set_next_token(token)
            .send()
            .await
            .context("listing executions")?;
        all.extend(out.executions().iter().cloned());
        token = out.next_token;
        if token.is_none() {
            return Ok(all);
        }
    }
}

/// Executions of the state machine named `name`.
pub async fn executions_named(stack: &Stack, name: &str) -> Result<usize> {
    Ok(executions(stack)
        .await?
        .iter()
        .filter(|e| e.name() == name)
        .count())
}

/// Waits until the request waits for a decision at `stage` (the workflow has recorded the
/// task token for it).
pub async fn awaiting_review(
    stack: &Stack,
    egress_request_id: &str,
    stage: ReviewStage,
    timeout: Duration,
) -> Result<EgressRequest> {
    wait::until(
        &format!("request {egress_request_id} to await the {stage} decision"),
        timeout,
        || async {
            Ok(request(stack, egress_request_id).await?.filter(|r| {
                r.review_stage == Some(stage)
                    && r.sfn_task_token.is_some()
                    && r.egress_status == shared::domain::transitions::status_awaiting(stage)
            }))
        },
    )
    .await
}

/// An asynchronous invocation the router made (SNS deliveries, `Event` invokes).
#[derive(Debug, Clone, Deserialize)]
pub struct AsyncInvocation {
    /// Function.
    pub function: String,
    /// What triggered it (names the SNS message id).
    pub source: String,
    /// `running`, `retrying` (failed, Lambda's retry pending), `done` or `error` (failed on
    /// its last attempt).
    pub state: String,
    /// The function's error, when it failed.
    #[serde(default)]
    pub error: Option<serde_json::Value>,
    /// The errors of the attempts Lambda retried.
    #[serde(default)]
    pub retried_errors: Vec<serde_json::Value>,
}

/// Every asynchronous invocation so far.
pub fn async_invocations(stack: &Stack) -> Result<Vec<AsyncInvocation>> {
    let value = http_get_json(&format!("{}/_local/invocations", stack.outputs.endpoint))?;
    serde_json::from_value(value).context("parsing the router's invocation log")
}

/// Waits until the asynchronous invocations triggered by these SNS messages have finished.
pub async fn deliveries_finished(
    stack: &Stack,
    message_ids: &[String],
    timeout: Duration,
) -> Result<Vec<AsyncInvocation>> {
    wait::until("the SNS deliveries to finish", timeout, || async {
        let done: Vec<AsyncInvocation> = async_invocations(stack)?
            .into_iter()
            .filter(|i| message_ids.iter().any(|m| i.source.contains(m.as_str())))
            .collect();
        Ok((done.len() == message_ids.len()
            && done.iter().all(|i| i.state == "done" || i.state == "error"))
        .then_some(done))
    })
    .await
}
