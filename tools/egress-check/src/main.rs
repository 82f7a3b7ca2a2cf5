//! `egress-check`: the output checks a request gets in the workflow, run by a researcher on a
//! folder inside their workspace before submitting it.
//!
//! ```text
//! egress-check [--json] [--policy POLICY.json] FOLDER
//! ```
//!
//! Prints the report (text, or `--json` for the same report as the workflow stores) and exits
//! 0 when nothing blocks, 2 when a finding blocks, 1 when the folder or the policy cannot be
//! read. The policy is the project's JSON (the `ChecksPolicy` the TRE admin configured); without
//! it the defaults apply.

use std::path::PathBuf;
use std::process::ExitCode;

use egress_check::{check_folder, Options};

const USAGE: &str = "usage: egress-check [--json] [--policy POLICY.json] FOLDER";

fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut json = false;
    let mut policy = None;
    let mut folder = None;
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => json = true,
            "--policy" => policy = Some(PathBuf::from(args.next().ok_or("--policy needs a file")?)),
            "-h" | "--help" => return Err(USAGE.into()),
            a if a.starts_with('-') => return Err(format!("unknown option {a}\n{USAGE}")),
            _ if folder.is_some() => return Err(format!("one folder only\n{USAGE}")),
            _ => folder = Some(PathBuf::from(arg)),
        }
    }
    Ok(Options {
        json,
        policy,
        folder: folder.ok_or(USAGE)?,
    })
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    match check_folder(&options) {
        Ok((text, blocked)) => {
            print!("{text}");
            ExitCode::from(if blocked { 2 } else { 0 })
        }
        Err(e) => {
            eprintln!("egress-check: {e}");
            ExitCode::from(1)
        }
    }
}
