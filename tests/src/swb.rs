//! The SWB simulator, driven from Rust.
//!
//! One implementation (`local/egress_local/swb.py`) serves the tests, the demo and a human
//! at the command line (`make swb-submit`); this module runs it with the stack's Python and
//! parses what it reports.

use std::process::Command;

use serde::Deserialize;

use crate::stack::Outputs;
use crate::{Context, Result};

/// Which project's SWB topic the request is published to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The project whose start-workflow runs with `APPROVAL_MODE=single`.
    Single,
    /// The project whose start-workflow runs with `APPROVAL_MODE=dual`.
    Dual,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Single => "single",
            Mode::Dual => "dual",
        }
    }
}

/// What the simulator sets up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Files, snapshot, a file changed after the snapshot.
    Standard,
    /// As standard, then one submitted version is deleted: staging must fail.
    MissingVersion,
    /// As standard, plus `results/Data.csv` and `results/data.csv` (one file once extracted on
    /// a case-insensitive file system): staging must refuse the request.
    NameClash,
    /// As standard, plus a small-count table, a file of synthetic NHS numbers, the EICAR test
    /// file and a clean file (issue 12's output checks).
    OutputChecks,
}

/// One submission.
#[derive(Debug, Clone)]
pub struct Submit {
    /// Project (topic).
    pub mode: Mode,
    /// What to set up.
    pub scenario: Scenario,
    /// How many times the same message is published (0: prepare only; 2: duplicate delivery).
    pub publish_times: u32,
}

impl Submit {
    /// A standard submission published once to the `mode` project's topic.
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            scenario: Scenario::Standard,
            publish_times: 1,
        }
    }
}

/// A submitted file: one object version.
#[derive(Debug, Clone, Deserialize)]
pub struct SubmittedFile {
    /// Full key in the SWB egress store bucket.
    pub key: String,
    /// Path relative to the store prefix (the path inside the archive).
    pub path: String,
    /// The version submitted.
    pub version_id: String,
    /// Bytes.
    pub size: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

/// A file changed after the snapshot.
#[derive(Debug, Clone, Deserialize)]
pub struct ChangedFile {
    /// Full key.
    pub key: String,
    /// The version in the snapshot.
    pub submitted_version: String,
    /// The newer version.
    pub latest_version: String,
}

/// A folder marker in the snapshot.
#[derive(Debug, Clone, Deserialize)]
pub struct Marker {
    /// Key (ends in `/`).
    pub key: String,
}

/// A version named by the snapshot that no longer exists.
#[derive(Debug, Clone, Deserialize)]
pub struct MissingVersion {
    /// Full key.
    pub key: String,
    /// The deleted version.
    pub version_id: String,
}

/// A person in SWB.
#[derive(Debug, Clone, Deserialize)]
pub struct SwbUser {
    /// SWB user id.
    pub id: String,
    /// E-mail.
    pub email: String,
}

/// What the simulator did.
#[derive(Debug, Clone, Deserialize)]
pub struct Submission {
    /// The request id (SWB's `id`), also the execution name.
    pub egress_request_id: String,
    /// The SWB egress store item id.
    pub egress_store_id: String,
    /// Workspace.
    pub workspace_id: String,
    /// Project.
    pub project_id: String,
    /// SWB egress store bucket.
    pub bucket: String,
    /// Store prefix.
    pub prefix: String,
    /// Folder markers listed in the snapshot.
    pub folder_markers: Vec<Marker>,
    /// `arn:aws:s3:::bucket/key` of the snapshot.
    pub snapshot_location: String,
    /// Entries in the snapshot (files and markers).
    pub snapshot_objects: u64,
    /// SNS message ids of the publications.
    pub published_message_ids: Vec<String>,
    /// The SWB message, as published.
    pub message: serde_json::Value,
    /// The submitted files, sorted by path.
    pub files: Vec<SubmittedFile>,
    /// Files changed after the snapshot.
    pub changed_after_snapshot: Vec<ChangedFile>,
    /// Submitted versions deleted after the snapshot.
    pub missing_versions: Vec<MissingVersion>,
    /// Keys whose names clash once extracted (scenario `NameClash`).
    #[serde(default)]
    pub clashing_keys: Vec<String>,
    /// Who submitted.
    pub submitter: SwbUser,
    /// Who owns the store.
    pub owner: SwbUser,
}

impl Submission {
    /// Total bytes submitted.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The SWB message as the JSON string SWB publishes.
    pub fn message_json(&self) -> String {
        self.message.to_string()
    }
}

/// Runs the simulator against the stack.
pub fn submit(outputs: &Outputs, submit: &Submit) -> Result<Submission> {
    let scenario = match submit.scenario {
        Scenario::Standard => "standard",
        Scenario::MissingVersion => "missing-version",
        Scenario::NameClash => "name-clash",
        Scenario::OutputChecks => "output-checks",
    };
    let output = Command::new(&outputs.python)
        .args(["-m", "egress_local", "swb-submit", "--mode"])
        .arg(submit.mode.as_str())
        .args(["--scenario", scenario, "--publish-times"])
        .arg(submit.publish_times.to_string())
        .env("PYTHONPATH", &outputs.pythonpath)
        .env("EGRESS_STACK_DIR", &outputs.state_dir)
        .output()
        .context("running the SWB simulator")?;
    if !output.status.success() {
        return Err(anyhow::anyhow!(
            "the SWB simulator failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_slice(&output.stdout).context("parsing the SWB simulator's report")
}
