//! `make bench`: the output checks' throughput (MiB/s) on CSV and on binary data, and the peak
//! memory while checking a large CSV streamed from a generator (nothing of it held in memory,
//! so the process's peak resident size is the checker's own).
//!
//! `CHECKS_BENCH_MIB` sets the throughput data size (default 256), `CHECKS_BENCH_LARGE_MIB`
//! the large CSV (default 1024).

use std::time::Instant;

use shared::checks::{FileChecker, Policy};

const CHUNK: usize = 1024 * 1024;

fn env_mib(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A CSV chunk of aggregate-looking rows: text, dates, counts, decimals.
fn csv_chunk(seed: &mut u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(CHUNK + 256);
    while out.len() < CHUNK {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let s = *seed >> 20;
        out.extend_from_slice(
            format!(
                "region {},2024-{:02}-01,{},{}.{},group {}\n",
                s % 97,
                s % 12 + 1,
                100 + s % 5000,
                s % 1000,
                s % 100,
                s % 7
            )
            .as_bytes(),
        );
    }
    out.truncate(CHUNK);
    out
}

fn binary_chunk(seed: &mut u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(CHUNK);
    while out.len() < CHUNK {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn throughput(
    label: &str,
    path: &str,
    header: &[u8],
    chunks: &[Vec<u8>],
    mib: usize,
    table_thread: bool,
) {
    let policy = Policy::default();
    let start = Instant::now();
    let mut checker = FileChecker::new(&policy, path).with_table_thread(table_thread);
    checker.feed(header);
    for i in 0..mib {
        checker.feed(&chunks[i % chunks.len()]);
    }
    let report = checker.finish();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "checks {label}: {mib} MiB in {secs:.2} s = {:.0} MiB/s ({} finding(s))",
        mib as f64 / secs,
        report[0].findings.len()
    );
}

fn main() {
    let mib = env_mib("CHECKS_BENCH_MIB", 256);
    let large = env_mib("CHECKS_BENCH_LARGE_MIB", 1024);
    let mut seed = 42;
    let csv: Vec<Vec<u8>> = (0..8).map(|_| csv_chunk(&mut seed)).collect();
    let bin: Vec<Vec<u8>> = (0..8).map(|_| binary_chunk(&mut seed)).collect();
    let header = b"region,month,count,rate,group\n";
    throughput(
        "CSV (table + identifiers)",
        "t.csv",
        header,
        &csv,
        mib,
        false,
    );
    throughput(
        "CSV (table on its own thread)",
        "t.csv",
        header,
        &csv,
        mib,
        true,
    );
    throughput("text (identifiers)", "t.txt", b"", &csv, mib, false);
    throughput("binary", "b.bin", b"\0\x01", &bin, mib, false);

    // Peak memory: a large CSV generated chunk by chunk, never held whole, its table on its
    // own thread as the step and the CLI check a file that large.
    let before = peak_rss_kib();
    let policy = Policy::default();
    let mut checker = FileChecker::new(&policy, "large.csv").with_table_thread(true);
    checker.feed(header);
    let start = Instant::now();
    let mut chunk_seed = 7;
    for _ in 0..large {
        let c = csv_chunk(&mut chunk_seed);
        checker.feed(&c);
    }
    let _ = checker.finish();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "checks large CSV: {large} MiB in {secs:.1} s (generation included); peak RSS {} MiB (before {} MiB)",
        peak_rss_kib() / 1024,
        before / 1024
    );
}
