//! The folder walk and report of the `egress-check` CLI, over the engine in `shared::checks`.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use shared::checks::{self, acro, FileChecker, Policy, Report, RequestChecker, Severity};

/// Bytes read at a time: memory stays bounded whatever the file.
pub const CHUNK: usize = 1024 * 1024;

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Print the JSON report instead of text.
    pub json: bool,
    /// The project's policy file, else the defaults.
    pub policy: Option<PathBuf>,
    /// The folder to check.
    pub folder: PathBuf,
}

/// Loads the policy (validated) from `path`, or the defaults.
pub fn load_policy(path: Option<&Path>) -> Result<Policy, String> {
    match path {
        None => Ok(Policy::default()),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read the policy {}: {e}", p.display()))?;
            Policy::from_json(&text).map_err(|e| e.to_string())
        }
    }
}

/// Every regular file under `folder` (symbolic links are not followed), sorted, with its path
/// relative to the folder in `/` form.
pub fn files_under(folder: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let mut out = Vec::new();
    let mut stack = vec![folder.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| format!("cannot read the folder {}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
            let kind = entry
                .file_type()
                .map_err(|e| format!("cannot read {}: {e}", entry.path().display()))?;
            let path = entry.path();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let rel = path
                    .strip_prefix(folder)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().to_string())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((rel, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The folder of `rel` (`""` at the top).
fn folder_of(rel: &str) -> &str {
    rel.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("")
}

/// Checks every file under the folder, reading each once in [`CHUNK`]s. Files in a folder
/// holding ACRO's `results.json` are hashed on the same pass (SHA-256) so ACRO's checksums
/// are verified, and ACRO's own small files are kept for the import.
pub fn check_files(policy: &Policy, folder: &Path) -> Result<Report, String> {
    let mut request = RequestChecker::new(policy);
    let mut buf = vec![0u8; CHUNK];
    let files = files_under(folder)?;
    let acro_folders: std::collections::BTreeSet<&str> = files
        .iter()
        .filter(|(rel, _)| rel.rsplit('/').next() == Some(acro::RESULTS_FILE))
        .map(|(rel, _)| folder_of(rel))
        .collect();
    for (rel, path) in &files {
        let mut file =
            File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let size = file.metadata().map_or(0, |m| m.len());
        let mut checker =
            FileChecker::new(policy, rel).with_table_thread(checks::table_thread_pays(size));
        let mut hasher = acro_folders.contains(folder_of(rel)).then(Sha256::new);
        let mut kept = acro::wanted(rel).then(Vec::new);
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if n == 0 {
                break;
            }
            checker.feed(&buf[..n]);
            if let Some(h) = hasher.as_mut() {
                h.update(&buf[..n]);
            }
            if let Some(k) = kept.as_mut() {
                if (k.len() + n) as u64 <= acro::MAX_ACRO_FILE_BYTES {
                    k.extend_from_slice(&buf[..n]);
                } else {
                    kept = None;
                }
            }
        }
        request.add(checker.finish());
        if let Some(h) = hasher {
            let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
            request.add_digest(rel, &hex);
        }
        if let Some(k) = kept {
            request.add_acro_content(rel, k);
        }
    }
    Ok(request.finish())
}

/// Runs the command: the text to print and whether a finding blocks.
pub fn check_folder(options: &Options) -> Result<(String, bool), String> {
    let policy = load_policy(options.policy.as_deref())?;
    if !options.folder.is_dir() {
        return Err(format!("{} is not a folder", options.folder.display()));
    }
    let report = check_files(&policy, &options.folder)?;
    let blocked = report.verdict == Severity::Block;
    let text = if options.json {
        let mut j = serde_json::to_string_pretty(&report)
            .map_err(|e| format!("the report cannot be written: {e}"))?;
        j.push('\n');
        j
    } else {
        report.to_text()
    };
    Ok((text, blocked))
}
