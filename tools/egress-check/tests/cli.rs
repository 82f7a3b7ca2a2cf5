//! The CLI end to end on a generated folder: exit codes, text and JSON reports.

// Test code: a failed setup step should panic where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

fn nhs_valid(d: &[u8]) -> bool {
    let sum: u32 = d[..9]
        .iter()
        .enumerate()
        .map(|(i, &x)| u32::from(x) * (10 - i as u32))
        .sum();
    match 11 - (sum % 11) {
        11 => d[9] == 0,
        10 => false,
        c => u32::from(d[9]) == c,
    }
}

/// A synthetic checksum-valid NHS number (no real one anywhere).
fn synthetic_nhs() -> String {
    let mut d = [9u8, 9, 9, 1, 2, 3, 4, 5, 6, 0];
    for c in 0..10 {
        d[9] = c;
        if nhs_valid(&d) {
            return d.iter().map(|x| (b'0' + x) as char).collect();
        }
    }
    d[8] = 7;
    synthetic_nhs_from(d)
}

fn synthetic_nhs_from(mut d: [u8; 10]) -> String {
    for c in 0..10 {
        d[9] = c;
        if nhs_valid(&d) {
            return d.iter().map(|x| (b'0' + x) as char).collect();
        }
    }
    panic!("no check digit")
}

fn folder(name: &str, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("egress-check-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (path, data) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    dir
}

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_egress-check"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn when_a_folder_holds_an_nhs_number_and_the_eicar_string_then_the_cli_blocks_and_never_prints_the_number(
) {
    let nhs = synthetic_nhs();
    let mut eicar = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$".to_vec();
    eicar.extend_from_slice(b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*");
    let dir = folder(
        "block",
        &[
            (
                "tables/counts.csv",
                b"region,count\nnorth,4\nsouth,120\n".to_vec(),
            ),
            ("ids.txt", format!("patient {nhs}\n").into_bytes()),
            ("eicar.com.txt", eicar),
            ("clean/summary.txt", b"Mean 12.5 (SD 3.1)\n".to_vec()),
        ],
    );
    let (code, text) = run(&[dir.to_str().unwrap()]);
    assert_eq!(code, 2, "{text}");
    assert!(text.starts_with("Output checks: BLOCK"), "{text}");
    assert!(text.contains("pii-nhs-number x1"), "{text}");
    assert!(text.contains("malware-signature"), "{text}");
    assert!(text.contains("table-small-counts x1"), "{text}");
    assert!(text.contains("PASS clean/summary.txt"), "{text}");
    assert!(!text.contains(&nhs));
    let (code, json) = run(&["--json", dir.to_str().unwrap()]);
    assert_eq!(code, 2);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["verdict"], "block");
    assert_eq!(report["files_checked"], 4);
    assert_eq!(report["counts_by_rule"]["pii-nhs-number"], 1);
    assert!(!json.contains(&nhs));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn when_nothing_blocks_then_the_cli_exits_zero_and_a_policy_file_changes_the_threshold() {
    let dir = folder(
        "review",
        &[("t.csv", b"region,count\nnorth,7\nsouth,120\n".to_vec())],
    );
    let (code, text) = run(&[dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.starts_with("Output checks: REVIEW (policy default-1"),
        "{text}"
    );
    let policy = dir.with_extension("policy.json");
    std::fs::write(
        &policy,
        r#"{"version":"proj-5","tables":{"small_count_threshold":5}}"#,
    )
    .unwrap();
    let (code, text) = run(&["--policy", policy.to_str().unwrap(), dir.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        text.starts_with("Output checks: PASS (policy proj-5"),
        "{text}"
    );
    std::fs::write(&policy, r#"{"tables":{"small_count_treshold":5}}"#).unwrap();
    let (code, _) = run(&["--policy", policy.to_str().unwrap(), dir.to_str().unwrap()]);
    assert_eq!(code, 1, "a misspelt policy is refused");
    let (code, _) = run(&["/nonexistent/folder"]);
    assert_eq!(code, 1);
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_file(policy).unwrap();
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn when_a_folder_holds_acro_results_then_the_cli_verifies_checksums_and_shows_outputs_and_exceptions(
) {
    let table = b"ward,count\na,120\n".to_vec();
    let results = br#"{"version":"0.4.8","results":{"output_0":{"status":"fail","type":"table","files":[{"name":"output_0_0.csv","sdc":{}}],"exception":"Structural zeros only."}}}"#.to_vec();
    let mut files = vec![
        ("acro/output_0_0.csv", table.clone()),
        ("acro/results.json", results.clone()),
        (
            "acro/checksums/output_0_0.csv.txt",
            sha256_hex(&table).into_bytes(),
        ),
        (
            "acro/checksums/results.json.txt",
            sha256_hex(&results).into_bytes(),
        ),
    ];
    let dir = folder("acro", &files);
    let (code, text) = run(&[dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("acro-verified x2"), "{text}");
    assert!(text.contains("acro-output-status x1"), "{text}");
    assert!(
        text.contains(
            "FAIL output_0 (table): acro/output_0_0.csv; exception requested: Structural zeros only."
        ),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // The table edited after ACRO checked it: blocked, exit 2.
    files[0].1 = b"ward,count\na,3\n".to_vec();
    let dir = folder("acro-tampered", &files);
    let (code, text) = run(&[dir.to_str().unwrap()]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("BLOCK acro/output_0_0.csv"), "{text}");
    assert!(text.contains("acro-checksum-mismatch"), "{text}");
    std::fs::remove_dir_all(dir).unwrap();
}
