//! The folder walk and report of the `egress-check` CLI, over the engine in `shared::checks`.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use shared::checks::{FileChecker, Policy, Report, RequestChecker, Severity};

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

/// Checks every file under the folder, reading each once in [`CHUNK`]s.
pub fn check_files(policy: &Policy, folder: &Path) -> Result<Report, String> {
    let mut request = RequestChecker::new(policy);
    let mut buf = vec![0u8; CHUNK];
    for (rel, path) in files_under(folder)? {
        let mut file =
            File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut checker = FileChecker::new(policy, &rel);
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if n == 0 {
                break;
            }
            checker.feed(&buf[..n]);
        }
        request.add(checker.finish());
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
