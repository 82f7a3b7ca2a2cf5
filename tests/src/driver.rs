//! Reviewer actions: deciding a stage and downloading an approved archive.
//!
//! [`ReviewDriver`] is the one seam between the tests/demo and how reviewers act. Its only
//! implementation is the reviewer GraphQL API ([`GraphQlDriver`]), so every e2e decision and
//! download goes through the API's rules exactly as the web app's do.

use shared::model::Decision;

use crate::graphql::GraphQlDriver;
use crate::stack::Stack;
use crate::Result;

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

/// The driver the tests and the demo use: the reviewer GraphQL API (`.local-stack/api.json`,
/// written by `make api-up`), called exactly as the web app calls it. There is no fallback: a
/// run without the API fails here, loudly, instead of passing without touching the API.
///
/// # Panics
/// When the API is not up; the message says how to start it.
pub fn default_driver(_stack: &Stack) -> Driver {
    match GraphQlDriver::connect() {
        Ok(api) => api,
        Err(err) => panic!(
            "the reviewer GraphQL API is not up ({err:#}); start it with `make stack-up api-up` \
             (make test-e2e and make demo start it themselves)"
        ),
    }
}

/// How reviewers act: through the reviewer GraphQL API with real Cognito tokens.
pub type Driver = GraphQlDriver;

impl GraphQlDriver {
    /// How reviewers act, for people reading the demo or a test log.
    pub fn describe(&self) -> &'static str {
        "the reviewer GraphQL API (Cognito tokens, as the web app)"
    }
}
