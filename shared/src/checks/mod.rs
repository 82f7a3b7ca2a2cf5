//! Automated output checks: a disclosure-risk report on every file of a request before anyone
//! reviews it (issue 12).
//!
//! Plain Rust, no AWS: the same engine runs in the `check-outputs` workflow step and in the
//! researcher's `egress-check` CLI. Each file is fed to a [`FileChecker`] chunk by chunk, once,
//! with bounded memory whatever its size (every scanner keeps a fixed-size state: a line or a
//! cell of at most a few KiB, capped counters and the first few locations). Each rule has a
//! stable id ([`rules`]), a [`Severity`] from the project's [`Policy`], a plain-English
//! message and evidence that never repeats the sensitive value: a count, the first locations
//! (line and column, or row and column) and a masked sample that keeps only the shape.

pub mod acro;
mod archive;
mod file;
mod identifiers;
mod image;
pub mod policy;
mod report;
pub mod rules;
mod spreadsheet;
mod table;

pub use acro::AcroOutput;
pub use file::FileChecker;
pub use policy::{Mode, Policy, ProjectPolicies};
pub use report::{
    FileReport, Finding, Location, MalwareScan, Report, RequestChecker, Summary, VerdictCounts,
    WorstFile,
};

use serde::{Deserialize, Serialize};

/// How serious a finding is; the verdict of a file or a request is its worst finding.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Nothing to look at (a rule set to `pass` records its finding without raising the verdict).
    #[default]
    Pass,
    /// A reviewer should look at it.
    Review,
    /// It must not leave (rejected automatically in `enforce` mode).
    Block,
}

impl Severity {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Pass => "pass",
            Severity::Review => "review",
            Severity::Block => "block",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Files from this size up have their table parsed on a thread of its own, where there is a
/// second core ([`FileChecker::with_table_thread`]): below it, a thread costs more than it saves.
pub const TABLE_THREAD_BYTES: u64 = 8 * 1024 * 1024;

/// Whether a file of `size` bytes gets a table thread: large enough, and a second core to run
/// it on.
pub fn table_thread_pays(size: u64) -> bool {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    size >= TABLE_THREAD_BYTES
        && *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get())) > 1
}

/// Checks a whole in-memory file (tests, small files): feeds it in one chunk.
pub fn check_bytes(policy: &Policy, path: &str, data: &[u8]) -> Vec<FileReport> {
    let mut checker = FileChecker::new(policy, path);
    checker.feed(data);
    checker.finish()
}
