//! The running local stack: its outputs and SDK clients pointed at it.
//!
//! The clients get the stack's endpoint, region and fake credentials explicitly (never the
//! environment's), and [`Stack::connect`] checks the router's stack id against
//! `outputs.json` first, so a test can only ever talk to the stack it was started for.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::Credentials;
use serde::Deserialize;

use crate::{Context, Result};

/// `outputs.json` as the stack writes it (the fields the harness uses).
#[derive(Debug, Clone, Deserialize)]
pub struct Outputs {
    /// Random id of this stack run; the router reports it at `/_local/health`.
    pub stack_id: String,
    /// The edge router: the one AWS endpoint of the stack.
    pub endpoint: String,
    /// AWS region of every resource.
    pub region: String,
    /// Fake credentials and endpoint, as given to every local process.
    pub aws_env: HashMap<String, String>,
    /// The stack's Python (for the SWB simulator).
    pub python: String,
    /// Where the `egress_local` package lives.
    pub pythonpath: String,
    /// `.local-stack/`.
    pub state_dir: PathBuf,
    /// Table names by SAM logical id.
    pub tables: HashMap<String, String>,
    /// Bucket names by logical id.
    pub buckets: HashMap<String, String>,
    /// Topic ARNs by logical id.
    pub topics: HashMap<String, String>,
    /// SQS queues subscribed to the reviewer and admin topics, by topic logical id.
    pub inboxes: HashMap<String, Inbox>,
    /// KMS keys by logical id.
    pub keys: HashMap<String, Key>,
    /// The state machine.
    pub state_machine_arn: String,
    /// Sender and admin addresses.
    pub email: Emails,
    /// Project settings (reviewer groups, limits).
    pub project: Project,
    /// Log files by process name.
    #[serde(default)]
    pub logs: HashMap<String, String>,
}

/// An SQS queue subscribed to a topic.
#[derive(Debug, Clone, Deserialize)]
pub struct Inbox {
    /// Queue URL.
    pub queue_url: String,
}

/// A KMS key.
#[derive(Debug, Clone, Deserialize)]
pub struct Key {
    /// Key ARN.
    pub arn: String,
}

/// The stack's e-mail identities.
#[derive(Debug, Clone, Deserialize)]
pub struct Emails {
    /// Verified SES sender.
    pub sender: String,
    /// The TRE admin.
    pub admin: String,
}

/// Project settings shared with the functions' environment.
#[derive(Debug, Clone, Deserialize)]
pub struct Project {
    /// Cognito group of IG reviewers.
    pub ig_reviewer_group: String,
    /// Cognito group of RIT reviewers.
    pub rit_reviewer_group: String,
    /// Where reviewers open the web app.
    pub app_url: String,
    /// Downloads allowed per request.
    pub max_downloads: u32,
    /// Lifetime of presigned download URLs.
    pub download_url_expiry_seconds: u64,
}

impl Outputs {
    /// Reads `outputs.json` from `EGRESS_STACK_DIR` or `<repo>/.local-stack`.
    pub fn load() -> Result<Self> {
        let path = state_dir().join("outputs.json");
        let text = std::fs::read_to_string(&path).context(format!(
            "reading {} (is the local stack up? `make stack-up`)",
            path.display()
        ))?;
        serde_json::from_str(&text).context(format!("parsing {}", path.display()))
    }

    /// A table name by logical id.
    pub fn table(&self, logical_id: &str) -> Result<&str> {
        lookup(&self.tables, "table", logical_id)
    }

    /// A bucket name by logical id.
    pub fn bucket(&self, logical_id: &str) -> Result<&str> {
        lookup(&self.buckets, "bucket", logical_id)
    }

    /// A topic ARN by logical id.
    pub fn topic(&self, logical_id: &str) -> Result<&str> {
        lookup(&self.topics, "topic", logical_id)
    }

    /// The execution ARN of the execution named `name`.
    pub fn execution_arn(&self, name: &str) -> String {
        format!(
            "{}:{name}",
            self.state_machine_arn
                .replacen(":stateMachine:", ":execution:", 1)
        )
    }
}

fn lookup<'a>(map: &'a HashMap<String, String>, kind: &str, id: &str) -> Result<&'a str> {
    map.get(id)
        .map(String::as_str)
        .context(format!("the stack has no {kind} {id}"))
}

/// The repository root (the parent of this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where the stack keeps its state.
pub fn state_dir() -> PathBuf {
    std::env::var_os("EGRESS_STACK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".local-stack"))
}

/// The app name in the user agent of the harness's SDK calls; the router's fault injector
/// (local/egress_local/faults.py) exempts calls that carry it.
pub const HARNESS_APP_NAME: &str = "egress-harness";

/// The stack and SDK clients pointed at it.
#[derive(Debug, Clone)]
pub struct Stack {
    /// What the stack provisioned.
    pub outputs: Outputs,
    /// SDK configuration: the stack's endpoint, region and fake credentials.
    pub sdk: SdkConfig,
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// S3 (path-style).
    pub s3: aws_sdk_s3::Client,
    /// Step Functions.
    pub sfn: aws_sdk_sfn::Client,
    /// SQS (the topic inboxes).
    pub sqs: aws_sdk_sqs::Client,
}

impl Stack {
    /// Connects to the running stack, after checking that the process answering on its
    /// endpoint is the router of *this* stack.
    pub async fn connect() -> Result<Self> {
        let outputs = Outputs::load()?;
        let health: serde_json::Value = http_get_json(&format!("{}/_local/health", outputs.endpoint))
            .map_err(|e| anyhow::anyhow!("the local stack's router at {} does not answer ({e}); is the stack up? `make stack-up`", outputs.endpoint))?;
        if health.get("stack_id").and_then(|v| v.as_str()) != Some(outputs.stack_id.as_str()) {
            return Err(anyhow::anyhow!(
                "the server at {} is not the stack described by outputs.json (stack id mismatch); restart it with `make stack-down stack-up`",
                outputs.endpoint
            ));
        }
        let access_key = env_value(&outputs, "AWS_ACCESS_KEY_ID")?;
        let secret_key = env_value(&outputs, "AWS_SECRET_ACCESS_KEY")?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        // Marks the harness's own calls (`app/egress-harness` in the user agent): the router's
        // fault injector never faults them, so inspection reads the state as it is.
        if let Ok(name) = aws_config::AppName::new(HARNESS_APP_NAME) {
            loader = loader.app_name(name);
        }
        let sdk = loader
            .region(Region::new(outputs.region.clone()))
            .endpoint_url(outputs.endpoint.clone())
            .credentials_provider(Credentials::new(
                access_key,
                secret_key,
                None,
                None,
                "egress-local-stack",
            ))
            .load()
            .await;
        // A local endpoint has no wildcard DNS for virtual-hosted bucket names.
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        Ok(Self {
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            sfn: aws_sdk_sfn::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            s3,
            sdk,
            outputs,
        })
    }
}

fn env_value(outputs: &Outputs, name: &str) -> Result<String> {
    outputs
        .aws_env
        .get(name)
        .cloned()
        .context(format!("outputs.json has no aws_env.{name}"))
}

/// GET a JSON document over plain HTTP (the stack's own endpoints).
pub fn http_get_json(url: &str) -> Result<serde_json::Value> {
    let body = http_get(url)?;
    serde_json::from_slice(&body).context(format!("parsing the JSON answer of {url}"))
}

/// GET bytes over plain HTTP; a non-2xx answer is an error.
pub fn http_get(url: &str) -> Result<Vec<u8>> {
    let mut response = ureq::get(url).call().context(format!("GET {url}"))?;
    response
        .body_mut()
        .with_config()
        .limit(512 * 1024 * 1024)
        .read_to_vec()
        .context(format!("reading the answer of GET {url}"))
}
