//! The catalogue of bad inputs (`events/bad/catalogue.json`) and what replaying one needs.
//!
//! Each case is a fixture file and the outcome it must have (issue 10, section 3). The files
//! are templates: `${NAME}` placeholders are filled per case with fresh ids, the stack's
//! buckets and the versions the test wrote, so every case runs on its own workspace and many
//! run at once. `${REPEAT_<c>_<n>}` is `n` times the character `c`, so huge values are
//! generated rather than committed; a snapshot file holding `{"generate": ...}` describes a
//! snapshot the test generates (100,000 entries).
//!
//! The offline test (`tests/tests/bad_catalogue.rs`) checks the catalogue against the domain
//! rules; the e2e test (`tests/tests/e2e_bad_inputs.rs`) replays it against the local stack
//! with the [`World`] each case runs in.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::primitives::ByteStream;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::stack::{repo_root, Stack};
use crate::{Context, Result};

/// `events/bad/`.
pub fn dir() -> PathBuf {
    repo_root().join("events/bad")
}

/// `events/bad/catalogue.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Catalogue {
    /// What the catalogue is.
    pub about: String,
    /// Entry points, by name, described.
    pub entries: BTreeMap<String, String>,
    /// Outcomes, by name, described.
    pub outcomes: BTreeMap<String, String>,
    /// The bad inputs.
    pub cases: Vec<Case>,
}

/// Where a bad input enters the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    /// The SNS `Message` published to the project's SWB topic.
    SwbMessage,
    /// The content of the snapshot file of an otherwise valid submission.
    Snapshot,
    /// The HTTP body posted to the reviewer GraphQL API by an IG reviewer.
    Graphql,
    /// A `StartExecution` input that bypasses `start-workflow`.
    WorkflowInput,
}

/// Which project (SWB topic) a message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Project {
    /// `APPROVAL_MODE=single`.
    #[default]
    Single,
    /// `APPROVAL_MODE=dual`.
    Dual,
}

/// The SWB egress store item before the case runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreItem {
    /// `PENDING`, as SWB leaves it at submission.
    #[default]
    Present,
    /// Never created.
    Absent,
    /// `PROCESSING`, locked by another request in review.
    LockedByOther,
}

/// The snapshot file before the case runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotFile {
    /// A valid snapshot of the submitted file (replaced by the case's content for
    /// [`Entry::Snapshot`]).
    #[default]
    Written,
    /// Never written.
    Absent,
}

/// How the world is set up before the input arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setup {
    /// Which topic.
    #[serde(default)]
    pub project: Project,
    /// The SWB egress store item.
    #[serde(default)]
    pub store_item: StoreItem,
    /// The snapshot file.
    #[serde(default)]
    pub snapshot: SnapshotFile,
}

/// The outcome a case must have.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
pub enum Expect {
    /// `start-workflow` refuses the message: nothing starts, nothing is touched.
    Refused {
        /// The Lambda `errorType`.
        error: String,
        /// Substrings of the error message (templates).
        contains: Vec<String>,
    },
    /// The execution ends `FAILED` with this error and cause; SWB released, nothing lost.
    Failed {
        /// The execution's error name.
        error: String,
        /// Substrings of its cause (templates).
        contains: Vec<String>,
        /// The cause's upper bound in bytes, when the case is about keeping it small.
        #[serde(default)]
        max_cause_bytes: Option<usize>,
    },
    /// The API answers with an error; the request is unchanged.
    GraphqlError {
        /// Substrings of the first error's message (templates).
        contains: Vec<String>,
        /// The first error's `errorType`, when it matters.
        #[serde(default)]
        error_type: Option<String>,
    },
    /// The extra fields have no effect: the request is reviewed in the project's mode.
    AcceptedIgnoringExtras {
        /// `single` or `dual`: the project's mode, whatever the message says.
        approval_mode: String,
    },
}

/// One bad input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Stable name.
    pub id: String,
    /// Where it enters.
    pub entry: Entry,
    /// The fixture, relative to `events/bad/`.
    pub file: String,
    /// What is wrong with it.
    pub why: String,
    /// Kinds of bad input it stands for (`malformed-json`, `unsafe-key-bidi`...).
    pub covers: Vec<String>,
    /// The world it meets.
    #[serde(default)]
    pub setup: Setup,
    /// What must happen.
    pub expect: Expect,
}

impl Case {
    /// The fixture's text (a template).
    pub fn template(&self) -> Result<String> {
        let path = dir().join(&self.file);
        std::fs::read_to_string(&path).context(format!("reading {}", path.display()))
    }

    /// The generator a snapshot fixture describes, if it is one.
    pub fn generator(&self) -> Result<Option<Generate>> {
        if self.entry != Entry::Snapshot {
            return Ok(None);
        }
        let Ok(value) = serde_json::from_str::<Value>(&self.template()?) else {
            return Ok(None);
        };
        match value.get("generate") {
            None => Ok(None),
            Some(g) => serde_json::from_value(g.clone())
                .map(Some)
                .context(format!("case {}: the generator spec", self.id)),
        }
    }

    /// The fixture with `vars` filled in (or generated), as the system receives it.
    pub fn content(&self, vars: &Vars) -> Result<String> {
        match self.generator()? {
            Some(generate) => generate.snapshot(vars),
            None => vars.fill(&self.template()?),
        }
    }
}

/// Reads `events/bad/catalogue.json`.
pub fn load() -> Result<Catalogue> {
    let path = dir().join("catalogue.json");
    let text = std::fs::read_to_string(&path).context(format!("reading {}", path.display()))?;
    serde_json::from_str(&text).context(format!("parsing {}", path.display()))
}

/// A snapshot generated by the test: `count` entries keyed `key` with `{n}` the entry's
/// six-digit number; `last_key` replaces the last entry's key; with `clash_every: 2` every
/// second key is the one before it with its file name in upper case (a case clash).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    /// Entries.
    pub count: usize,
    /// Key pattern (a template, `{n}` numbered).
    pub key: String,
    /// The last entry's key (a template).
    #[serde(default)]
    pub last_key: Option<String>,
    /// Every `clash_every`-th key repeats the previous one's file name in upper case.
    #[serde(default)]
    pub clash_every: Option<usize>,
}

impl Generate {
    /// The snapshot JSON. Versions are made up: every case that generates expects a refusal
    /// before the first copy.
    pub fn snapshot(&self, vars: &Vars) -> Result<String> {
        let pattern = vars.fill(&self.key)?;
        let (head, tail) = pattern
            .split_once("{n}")
            .context("a generated key needs `{n}`")?;
        let mut objects = Vec::with_capacity(self.count);
        let mut previous = String::new();
        for n in 0..self.count {
            let mut key = format!("{head}{n:06}{tail}");
            if let Some(every) = self.clash_every.filter(|e| *e > 1) {
                if n % every == every - 1 {
                    // The file name only: its folder stays the same spelling.
                    let (folder, name) = previous.rsplit_once('/').unwrap_or(("", &previous));
                    key = format!("{folder}/{}", name.to_uppercase());
                }
            }
            if n + 1 == self.count {
                if let Some(last) = &self.last_key {
                    key = vars.fill(last)?;
                }
            }
            // Only the fields staging reads, to keep 100,000 entries quick to move around.
            objects.push(json!({"Key": key, "Size": 1, "VersionId": format!("v{n:06}")}));
            previous = key;
        }
        Ok(json!({ "objects": objects }).to_string())
    }
}

/// Placeholder values of one case.
#[derive(Debug, Clone, Default)]
pub struct Vars(BTreeMap<String, String>);

impl Vars {
    /// Sets `name`.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(name.to_string(), value.into());
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Result<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .context(format!("no value for ${{{name}}}"))
    }

    /// Fills every `${NAME}` of `template`; an unknown name is an error, so a typo in a
    /// fixture fails loudly instead of sending the placeholder itself.
    pub fn fill(&self, template: &str) -> Result<String> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(at) = rest.find("${") {
            out.push_str(&rest[..at]);
            let after = &rest[at + 2..];
            let end = after
                .find('}')
                .context(format!("unclosed placeholder in {:?}", &rest[at..]))?;
            let name = &after[..end];
            match repeat(name) {
                Some(text) => out.push_str(&text),
                None => out.push_str(self.get(name)?),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Values for checking the catalogue offline: ids and buckets in the stack's shapes.
    pub fn sample() -> Self {
        let mut vars = Self::default();
        let workspace = "1637e3f6-5d2c-4d52-9a41-3f1b2c3d4e5f";
        vars.set("REQUEST_ID", "8d3b9a57-4b8e-4a9e-9b7c-1f2d3e4a5b6c");
        vars.set("WORKSPACE_ID", workspace);
        vars.set("PREFIX", format!("{workspace}/"));
        vars.set("STORE_NAME", "bad-inputs-1637e3f6-egress-store");
        vars.set("STORE_BUCKET", "swb-egress-store-000000000000");
        vars.set("NOTIFY_BUCKET", "swb-egress-notify-000000000000");
        vars.set("VERSION_A", "3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY");
        vars.set("SIZE_A", "13");
        vars.set("VERSION_GONE", "Ob2SAEkuU0CDwZwBHh7kq4RkvQkgTN8N");
        vars.set("SIZE_GONE", "13");
        vars.set("TASK_TOKEN", "handle-1");
        vars.set("IG_GROUP", "ig-reviewers");
        vars.set("RIT_GROUP", "rit-reviewers");
        vars
    }
}

/// `REPEAT_<c>_<n>`: `n` times the character `c`.
fn repeat(name: &str) -> Option<String> {
    let rest = name.strip_prefix("REPEAT_")?;
    let (c, n) = rest.split_once('_')?;
    let mut chars = c.chars();
    let (Some(c), None) = (chars.next(), chars.next()) else {
        return None;
    };
    let n: usize = n.parse().ok()?;
    Some(std::iter::repeat_n(c, n).collect())
}

/// A fresh random UUID (v4 shape): request and workspace ids of one case.
pub fn fresh_uuid() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut words = [0u64; 2];
    for word in &mut words {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        *word = h.finish();
    }
    let [a, b] = words;
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// The file every case submits (`results/a.csv`), and the one whose version is deleted
/// after the snapshot (`results/gone.csv`).
const FILE_A: &str = "results/a.csv";
const FILE_GONE: &str = "results/gone.csv";
const BODY_A: &[u8] = b"id,value\n1,2\n";

/// One case's own workspace in the stack, set up as SWB leaves it at submission (store
/// item, files, snapshot), and the placeholder values that describe it.
#[derive(Debug, Clone)]
pub struct World {
    /// Placeholder values.
    pub vars: Vars,
    /// The request id (also the execution name).
    pub request_id: String,
    /// The workspace id (also the SWB egress store id).
    pub workspace_id: String,
    /// The lock another request holds, for [`StoreItem::LockedByOther`].
    pub other_lock: Option<String>,
}

impl World {
    /// Sets up a workspace as `setup` says.
    pub async fn prepare(stack: &Stack, setup: &Setup) -> Result<Self> {
        let request_id = fresh_uuid();
        let workspace_id = fresh_uuid();
        let prefix = format!("{workspace_id}/");
        let store_name = format!("bad-inputs-{}-egress-store", &workspace_id[..8]);
        let bucket = stack.outputs.bucket("SwbEgressStoreBucket")?;
        let notify = stack.outputs.bucket("SwbNotificationBucket")?;

        put(stack, bucket, &prefix, b"").await?;
        let version_a = put(stack, bucket, &format!("{prefix}{FILE_A}"), BODY_A).await?;
        let gone_key = format!("{prefix}{FILE_GONE}");
        let version_gone = put(stack, bucket, &gone_key, BODY_A).await?;
        stack
            .s3
            .delete_object()
            .bucket(bucket)
            .key(&gone_key)
            .version_id(&version_gone)
            .send()
            .await
            .context(format!("deleting version {version_gone} of {gone_key}"))?;

        let mut vars = Vars::default();
        vars.set("REQUEST_ID", &request_id);
        vars.set("WORKSPACE_ID", &workspace_id);
        vars.set("PREFIX", &prefix);
        vars.set("STORE_NAME", &store_name);
        vars.set("STORE_BUCKET", bucket);
        vars.set("NOTIFY_BUCKET", notify);
        vars.set("VERSION_A", &version_a);
        vars.set("SIZE_A", BODY_A.len().to_string());
        vars.set("VERSION_GONE", &version_gone);
        vars.set("SIZE_GONE", BODY_A.len().to_string());
        vars.set("IG_GROUP", &stack.outputs.project.ig_reviewer_group);
        vars.set("RIT_GROUP", &stack.outputs.project.rit_reviewer_group);

        let other_lock = match setup.store_item {
            StoreItem::Absent => None,
            StoreItem::Present => {
                put_store(stack, &workspace_id, &store_name, "PENDING", None).await?;
                None
            }
            StoreItem::LockedByOther => {
                let other = fresh_uuid();
                put_store(
                    stack,
                    &workspace_id,
                    &store_name,
                    "PROCESSING",
                    Some(&other),
                )
                .await?;
                Some(other)
            }
        };
        let world = Self {
            vars,
            request_id,
            workspace_id,
            other_lock,
        };
        if setup.snapshot == SnapshotFile::Written {
            let valid = json!({"objects": [
                {"Key": prefix, "Size": 0, "VersionId": "null"},
                {"Key": format!("{prefix}{FILE_A}"), "Size": BODY_A.len(), "VersionId": version_a},
            ]});
            world
                .write_snapshot(stack, valid.to_string().as_bytes())
                .await?;
        }
        Ok(world)
    }

    /// The snapshot's key in the notification bucket (DESIGN.md §2.1).
    pub fn snapshot_key(&self) -> Result<String> {
        self.vars.fill("${WORKSPACE_ID}/${STORE_NAME}-ver1.json")
    }

    /// Writes (or overwrites) the snapshot file.
    pub async fn write_snapshot(&self, stack: &Stack, body: &[u8]) -> Result<()> {
        let notify = stack.outputs.bucket("SwbNotificationBucket")?;
        put(stack, notify, &self.snapshot_key()?, body)
            .await
            .map(|_| ())
    }

    /// The message SWB sends for this world: valid, binding everything to the workspace.
    pub fn valid_message(&self) -> Result<String> {
        let v = |name| self.vars.get(name).map(str::to_string);
        Ok(json!({
            "id": self.request_id,
            "egress_store_id": self.workspace_id,
            "egress_store_name": v("STORE_NAME")?,
            "workspace_id": self.workspace_id,
            "project_id": "proj-bad-inputs",
            "s3_bucketname": v("STORE_BUCKET")?,
            "s3_bucketpath": v("PREFIX")?,
            "egress_store_object_list_location":
                format!("arn:aws:s3:::{}/{}", v("NOTIFY_BUCKET")?, self.snapshot_key()?),
            "created_at": "2024-03-01T10:15:30.123Z",
            "updated_at": "2024-03-02T08:00:00.000Z",
            "created_by": "u-bad-inputs-owner",
            "updated_by": "u-bad-inputs-submitter",
            "created_by_email": "bad-inputs-owner@tre.example.org",
            "updated_by_email": "bad-inputs-submitter@tre.example.org",
            "status": "PENDING",
            "ver": 1
        })
        .to_string())
    }

    /// Whether the submitted version of `results/a.csv` is still in SWB's bucket (nothing
    /// lost at the source).
    pub async fn source_intact(&self, stack: &Stack) -> Result<bool> {
        let bucket = stack.outputs.bucket("SwbEgressStoreBucket")?;
        let key = format!("{}/{FILE_A}", self.workspace_id);
        let out = stack
            .s3
            .head_object()
            .bucket(bucket)
            .key(&key)
            .version_id(self.vars.get("VERSION_A")?)
            .send()
            .await;
        Ok(out.is_ok())
    }
}

async fn put(stack: &Stack, bucket: &str, key: &str, body: &[u8]) -> Result<String> {
    let out = stack
        .s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .context(format!("writing s3://{bucket}/{key}"))?;
    Ok(out.version_id().unwrap_or("null").to_string())
}

async fn put_store(
    stack: &Stack,
    id: &str,
    name: &str,
    status: &str,
    lock: Option<&str>,
) -> Result<()> {
    let table = stack.outputs.table("SwbEgressStoreTable")?;
    let s = |v: &str| AttributeValue::S(v.to_string());
    let mut put = stack
        .dynamodb
        .put_item()
        .table_name(table)
        .item("id", s(id))
        .item("status", s(status))
        .item("egressStoreName", s(name))
        .item("workspaceId", s(id))
        .item("projectId", s("proj-bad-inputs"));
    if let Some(lock) = lock {
        put = put.item("egress_request_lock", s(lock));
    }
    put.send()
        .await
        .context(format!("writing SWB egress store {id}"))?;
    Ok(())
}

/// An item read raw (any shape), consistently; `None` when it does not exist.
pub async fn raw_item(
    stack: &Stack,
    table_logical_id: &str,
    key_name: &str,
    key: &str,
) -> Result<Option<HashMap<String, AttributeValue>>> {
    let table = stack.outputs.table(table_logical_id)?;
    let out = stack
        .dynamodb
        .get_item()
        .table_name(table)
        .key(key_name, AttributeValue::S(key.to_string()))
        .consistent_read(true)
        .send()
        .await
        .context(format!("reading {key} from {table}"))?;
    Ok(out.item)
}

/// A string attribute of a raw item.
pub fn attr<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}
