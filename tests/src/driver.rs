//! Reviewer actions: deciding a stage and downloading an approved archive.
//!
//! [`ReviewDriver`] is the one seam between the tests/demo and how reviewers act. Until the
//! reviewer API's GraphQL endpoint is part of the local stack, [`ServerSideDriver`] does
//! exactly what the API does server-side (DESIGN.md §5): read the stored request, check the
//! stage and the reviewer against it, write the decision with a conditional update, then
//! resume the workflow with `SendTaskSuccess` and a [`ReviewOutcome`] built from the stored
//! token and the reviewer's identity; downloads count server-side with a conditional update
//! and hand out a short-lived presigned URL. Switching to the API means adding a driver that
//! calls `updateRequest` / `downloadData`, and choosing it in [`default_driver`].

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::presigning::PresigningConfig;
use shared::domain::transitions::{status_after, status_awaiting};
use shared::model::{Decision, EgressStatus, ReviewOutcome, ReviewStage};
use shared::ports::iso_millis;
use time::OffsetDateTime;

use crate::graphql::GraphQlDriver;
use crate::inspect;
use crate::stack::{http_get, Stack};
use crate::{Context, Result};

/// A reviewer, as the identity provider knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewer {
    /// Username (Cognito `cognito:username`).
    pub username: String,
    /// Display name (Cognito `name`), what the API records as the stage's reviewer name.
    pub name: String,
    /// E-mail.
    pub email: String,
    /// Stable subject id (Cognito `sub`).
    pub sub: String,
    /// Cognito groups.
    pub groups: Vec<String>,
}

impl Reviewer {
    /// An Information Governance reviewer of the local stack.
    pub fn ig(stack: &Stack) -> Self {
        Self {
            username: "ig.reviewer".into(),
            name: "Ivy Governance".into(),
            email: "ig.reviewer@tre.example.org".into(),
            sub: "4f1c2a7e-1d7b-4c1e-9d65-1a0c3b2e4f10".into(),
            groups: vec![stack.outputs.project.ig_reviewer_group.clone()],
        }
    }

    /// A Research IT reviewer of the local stack.
    pub fn rit(stack: &Stack) -> Self {
        Self {
            username: "rit.reviewer".into(),
            name: "Rita Research-IT".into(),
            email: "rit.reviewer@tre.example.org".into(),
            sub: "9b3e8d21-7a4c-4f0b-8e2d-5c6a7b8c9d20".into(),
            groups: vec![stack.outputs.project.rit_reviewer_group.clone()],
        }
    }
}

/// How reviewers act on requests.
pub trait ReviewDriver {
    /// Decides the stage the request currently awaits.
    fn decide(
        &self,
        egress_request_id: &str,
        reviewer: &Reviewer,
        decision: Decision,
        reason: &str,
    ) -> impl std::future::Future<Output = Result<()>> + Send;

    /// Downloads the approved archive; returns its bytes.
    fn download(
        &self,
        egress_request_id: &str,
        reviewer: &Reviewer,
    ) -> impl std::future::Future<Output = Result<Vec<u8>>> + Send;
}

/// The driver the tests and the demo use: the reviewer GraphQL API when it is up
/// (`.local-stack/api.json` written by `make api-up`), exactly as the web app calls it;
/// otherwise the server-side equivalent.
pub fn default_driver(stack: &Stack) -> Driver<'_> {
    match GraphQlDriver::connect() {
        Ok(api) => Driver::GraphQl(Box::new(api)),
        Err(_) => Driver::ServerSide(ServerSideDriver { stack }),
    }
}

/// One of the two drivers ([`ReviewDriver`] has `async fn`s, so it is not object-safe).
#[derive(Debug, Clone)]
pub enum Driver<'a> {
    /// Through the reviewer GraphQL API with real Cognito tokens.
    GraphQl(Box<GraphQlDriver>),
    /// Directly on the table, Step Functions and S3.
    ServerSide(ServerSideDriver<'a>),
}

impl Driver<'_> {
    /// How reviewers act, for people reading the demo or a test log.
    pub fn describe(&self) -> &'static str {
        match self {
            Driver::GraphQl(_) => "the reviewer GraphQL API (Cognito tokens, as the web app)",
            Driver::ServerSide(_) => "server-side (the API is not running)",
        }
    }
}

impl ReviewDriver for Driver<'_> {
    async fn decide(
        &self,
        egress_request_id: &str,
        reviewer: &Reviewer,
        decision: Decision,
        reason: &str,
    ) -> Result<()> {
        match self {
            Driver::GraphQl(d) => {
                d.decide(egress_request_id, reviewer, decision, reason)
                    .await
            }
            Driver::ServerSide(d) => {
                d.decide(egress_request_id, reviewer, decision, reason)
                    .await
            }
        }
    }

    async fn download(&self, egress_request_id: &str, reviewer: &Reviewer) -> Result<Vec<u8>> {
        match self {
            Driver::GraphQl(d) => d.download(egress_request_id, reviewer).await,
            Driver::ServerSide(d) => d.download(egress_request_id, reviewer).await,
        }
    }
}

/// Acts directly on the stack's table, Step Functions and S3, as the API does server-side.
#[derive(Debug, Clone, Copy)]
pub struct ServerSideDriver<'a> {
    stack: &'a Stack,
}

fn reviewer_prefix(stage: ReviewStage) -> &'static str {
    match stage {
        ReviewStage::Ig => "ig_reviewer_1",
        ReviewStage::Rit => "rit_reviewer_2",
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

impl ReviewDriver for ServerSideDriver<'_> {
    async fn decide(
        &self,
        egress_request_id: &str,
        reviewer: &Reviewer,
        decision: Decision,
        reason: &str,
    ) -> Result<()> {
        let stack = self.stack;
        let request = inspect::request(stack, egress_request_id)
            .await?
            .context(format!("request {egress_request_id} does not exist"))?;
        let stage = request
            .review_stage
            .context(format!("request {egress_request_id} awaits no review"))?;
        let token = request.sfn_task_token.clone().context(format!(
            "request {egress_request_id} has no pending task token"
        ))?;
        let group = request.current_reviewer_group.clone().unwrap_or_default();
        if !reviewer.groups.contains(&group) {
            return Err(format!(
                "{} is not in {group}, the group deciding {stage}",
                reviewer.username
            )
            .into());
        }
        if request.requested_by == reviewer.username
            || (stage == ReviewStage::Rit
                && request.ig_reviewer_1_sub.as_deref() == Some(reviewer.sub.as_str()))
        {
            return Err(format!(
                "{} may not decide this request (separation of duties)",
                reviewer.username
            )
            .into());
        }
        let now = iso_millis(OffsetDateTime::now_utc());
        let p = reviewer_prefix(stage);
        stack
            .dynamodb
            .update_item()
            .table_name(stack.outputs.table("RequestsTable")?)
            .key("egress_request_id", s(egress_request_id))
            .update_expression(format!(
                "SET {p}_decision = :decision, {p}_name = :name, {p}_email = :email, {p}_sub = :sub, \
                 {p}_dt = :now, {p}_reason = :reason, egress_status = :status, updated_by = :by, updated_dt = :now"
            ))
            .condition_expression("egress_status = :awaiting AND review_stage = :stage AND sfn_task_token = :token")
            .expression_attribute_values(":decision", s(decision.as_str()))
            .expression_attribute_values(":name", s(&reviewer.name))
            .expression_attribute_values(":by", s(&reviewer.username))
            .expression_attribute_values(":email", s(&reviewer.email))
            .expression_attribute_values(":sub", s(&reviewer.sub))
            .expression_attribute_values(":now", s(&now))
            .expression_attribute_values(":reason", s(reason))
            .expression_attribute_values(":status", s(status_after(stage, decision).as_str()))
            .expression_attribute_values(":awaiting", s(status_awaiting(stage).as_str()))
            .expression_attribute_values(":stage", s(stage.as_str()))
            .expression_attribute_values(":token", s(&token))
            .send()
            .await
            .context(format!("recording the {stage} decision on {egress_request_id}"))?;
        let outcome = ReviewOutcome {
            stage,
            decision,
            reviewer: reviewer.username.clone(),
            reviewer_name: reviewer.name.clone(),
            reviewer_sub: reviewer.sub.clone(),
            reviewer_email: reviewer.email.clone(),
            decided_at: now,
            reason: reason.to_string(),
        };
        stack
            .sfn
            .send_task_success()
            .task_token(token)
            .output(serde_json::to_string(&outcome).context("serializing the review outcome")?)
            .send()
            .await
            .context(format!("resuming the workflow of {egress_request_id}"))?;
        Ok(())
    }

    async fn download(&self, egress_request_id: &str, reviewer: &Reviewer) -> Result<Vec<u8>> {
        let stack = self.stack;
        let request = inspect::request(stack, egress_request_id)
            .await?
            .context(format!("request {egress_request_id} does not exist"))?;
        let approved = match request.approval_mode {
            shared::model::ApprovalMode::Single => EgressStatus::IgApproved,
            shared::model::ApprovalMode::Dual => EgressStatus::RitApproved,
        };
        if request.egress_status != approved {
            return Err(format!(
                "request {egress_request_id} is {}, not approved",
                request.egress_status
            )
            .into());
        }
        let allowed = [
            &stack.outputs.project.ig_reviewer_group,
            &stack.outputs.project.rit_reviewer_group,
        ];
        if !reviewer.groups.iter().any(|g| allowed.contains(&g)) {
            return Err(format!("{} may not download", reviewer.username).into());
        }
        let key = request
            .archive_key
            .clone()
            .context(format!("request {egress_request_id} has no archive"))?;
        stack
            .dynamodb
            .update_item()
            .table_name(stack.outputs.table("RequestsTable")?)
            .key("egress_request_id", s(egress_request_id))
            .update_expression("SET download_count = download_count + :one")
            .condition_expression("egress_status = :approved AND download_count < :max")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(
                ":max",
                AttributeValue::N(stack.outputs.project.max_downloads.to_string()),
            )
            .expression_attribute_values(":approved", s(approved.as_str()))
            .send()
            .await
            .context(format!("counting a download of {egress_request_id}"))?;
        let expiry = Duration::from_secs(stack.outputs.project.download_url_expiry_seconds);
        let presigned = stack
            .s3
            .get_object()
            .bucket(stack.outputs.bucket("DatalakeBucket")?)
            .key(&key)
            .presigned(PresigningConfig::expires_in(expiry).context("presigning config")?)
            .await
            .context(format!("presigning the archive of {egress_request_id}"))?;
        let url = presigned.uri().to_string();
        tokio::task::spawn_blocking(move || http_get(&url))
            .await
            .context("downloading the archive")?
    }
}
