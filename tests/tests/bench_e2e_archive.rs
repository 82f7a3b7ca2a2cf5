//! `make bench-e2e-archive`: the archive step on the local stack against its limit, a bare
//! GET-everything + multipart-PUT of the same bytes, at loopback and with a fixed latency
//! added to every S3 call by the router (`POST /_local/faults {"latency_ms": ..}`), with the
//! peak resident set of the process that ran each.
//!
//! Data: `BENCH_ARCHIVE_FILES` (64) files per size in `BENCH_ARCHIVE_SIZES_MIB` (256,1024) are
//! put in the stack's staging bucket with their manifest, as staging leaves them. Each run is
//! a child process of this program (so its `VmHWM` is its own), with the stack's S3 through
//! the production adapter and clients marked as a function's (the router slows them):
//! - `archive`: `ArchiveStep::run` (read-ahead, SHA-256 check, zip, pooled multipart upload;
//!   the request and audit stores in memory: two DynamoDB calls are not what is measured);
//! - `bare`: every staged byte read with the same request parallelism (16 GETs, 4 MiB ranges)
//!   and uploaded as 8 MiB parts, 4 at once: no hashing, no zip, no order.
//!
//! Latencies: `BENCH_ARCHIVE_LATENCIES_MS` (0,20); the 20 ms runs use the first size only.
//!
//! A program with its own output (harness = false); it needs a running stack.

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use aws_sdk_s3::primitives::ByteStream;
use bytes_free::pattern;
use e2e_tests::stack::Stack;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shared::adapters::s3::S3ObjectStore;
use shared::fakes::{InMemoryAuditLog, InMemoryRequestStore};
use shared::model::{ArchiveInput, EgressStatus, Manifest, ManifestEntry};
use shared::ports::{Destination, SystemClock};
use shared::services::archive::{ArchiveSettings, ArchiveStep};
use shared::services::multipart::{upload_stream, BufferGauge, UploadSettings};
use shared::services::Step;
use tokio::sync::{mpsc, Semaphore};

const MIB: usize = 1024 * 1024;
const WORKSPACE: &str = "ws-bench-archive";
const PART: usize = 8 * MIB;
const RANGE: u64 = 4 * 1024 * 1024;
const READS: usize = 16;
const UPLOADS: usize = 4;

mod bytes_free {
    /// `len` bytes of a cheap pseudo-random pattern (not compressible, not all alike).
    pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            out.extend_from_slice(&state.to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

fn env_list(name: &str, default: &str) -> Vec<u64> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

/// An S3 client as a function has it: not marked as the harness, so the router slows it.
fn function_s3(stack: &Stack) -> aws_sdk_s3::Client {
    let mut builder = stack.sdk.clone().into_builder();
    builder.set_app_name(None);
    let sdk = builder.build();
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    )
}

fn set_latency(stack: &Stack, latency_ms: u64) -> Result<()> {
    let url = format!("{}/_local/faults", stack.outputs.endpoint);
    let body = json!({"rate": 0, "latency_ms": latency_ms, "services": ["s3"],
                      "callers": ["functions"]});
    ureq::post(&url)
        .header("content-type", "application/json")
        .send(body.to_string())
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("POST {url}: {e}"))
}

fn request_id(size_mib: u64) -> String {
    format!("bench-archive-{size_mib}")
}

/// Puts `size_mib` MiB in `files` files into staging, with their manifest.
async fn stage(stack: &Stack, size_mib: u64, files: usize) -> Result<()> {
    let staging = stack.outputs.bucket("StagingBucket")?.to_string();
    let kms = stack.outputs.keys.get("StagingKey").map(|k| k.arn.clone());
    let id = request_id(size_mib);
    let per_file = size_mib as usize * MIB / files;
    let mut entries = Vec::new();
    for n in 0..files {
        let path = format!("data/file-{n:04}.bin");
        let data = pattern(per_file, n as u64 + size_mib);
        entries.push(ManifestEntry {
            path: path.clone(),
            source_key: path.clone(),
            version_id: "v1".into(),
            size: data.len() as u64,
            sha256: hex::encode(Sha256::digest(&data)),
        });
        let mut put = stack
            .s3
            .put_object()
            .bucket(&staging)
            .key(format!("{WORKSPACE}/{id}/{path}"))
            .body(ByteStream::from(data));
        if let Some(arn) = &kms {
            put = put
                .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
                .ssekms_key_id(arn);
        }
        put.send().await.context("staging a file")?;
    }
    let manifest = Manifest {
        egress_request_id: id.clone(),
        workspace_id: WORKSPACE.into(),
        source_bucket: "bench".into(),
        snapshot_location: "arn:aws:s3:::bench/snapshot.json".into(),
        files: entries,
    };
    let mut put = stack
        .s3
        .put_object()
        .bucket(&staging)
        .key(format!(".manifests/{WORKSPACE}/{id}.json"))
        .body(ByteStream::from(serde_json::to_vec(&manifest)?));
    if let Some(arn) = &kms {
        put = put
            .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
            .ssekms_key_id(arn);
    }
    put.send().await.context("staging the manifest")?;
    Ok(())
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// One measured run, in this (child) process.
async fn child(mode: &str, size_mib: u64) -> Result<Value> {
    let stack = Stack::connect().await?;
    let s3 = function_s3(&stack);
    let staging = stack.outputs.bucket("StagingBucket")?.to_string();
    let datalake = stack.outputs.bucket("DatalakeBucket")?.to_string();
    let datalake_kms = stack
        .outputs
        .keys
        .get("DatalakeKey")
        .map(|k| k.arn.clone())
        .unwrap_or_default();
    let id = request_id(size_mib);
    let started = Instant::now();
    let bytes = match mode {
        "archive" => {
            let mut request = shared::testdata::request(&id, EgressStatus::IgApproved);
            request.workspace_id = WORKSPACE.into();
            let mut settings =
                ArchiveSettings::new(&staging, &datalake, &datalake_kms, PART as u64);
            settings.upload_concurrency = UPLOADS;
            let step = ArchiveStep {
                objects: S3ObjectStore::new(s3),
                requests: InMemoryRequestStore::with([request]),
                audit: InMemoryAuditLog::default(),
                clock: SystemClock,
                settings,
            };
            let result = step
                .run(&ArchiveInput {
                    egress_request_id: id.clone(),
                    workspace_id: WORKSPACE.into(),
                })
                .await?;
            result.size
        }
        _ => bare(&s3, &staging, &datalake, &datalake_kms, &id).await?,
    };
    let seconds = started.elapsed().as_secs_f64();
    Ok(json!({"mode": mode, "bytes": bytes, "seconds": seconds, "peak_rss_mib": peak_rss_mib()}))
}

/// Every staged byte read (16 ranged GETs at once) and uploaded (8 MiB parts, 4 at once).
async fn bare(
    s3: &aws_sdk_s3::Client,
    staging: &str,
    datalake: &str,
    kms: &str,
    id: &str,
) -> Result<u64> {
    let manifest_key = format!(".manifests/{WORKSPACE}/{id}.json");
    let manifest = s3
        .get_object()
        .bucket(staging)
        .key(&manifest_key)
        .send()
        .await?
        .body
        .collect()
        .await?
        .into_bytes();
    let manifest: Manifest = serde_json::from_slice(&manifest)?;
    let mut ranges = Vec::new();
    for file in &manifest.files {
        let key = format!("{WORKSPACE}/{id}/{}", file.path);
        let mut start = 0;
        while start < file.size {
            let end = (start + RANGE).min(file.size);
            ranges.push((key.clone(), start, end));
            start = end;
        }
    }
    let (tx, mut rx) = mpsc::channel::<Result<aws_sdk_s3::primitives::AggregatedBytes>>(READS);
    let permits = Arc::new(Semaphore::new(READS));
    let reader = {
        let s3 = s3.clone();
        let staging = staging.to_string();
        tokio::spawn(async move {
            for (key, start, end) in ranges {
                let permit = permits.clone().acquire_owned().await;
                let (s3, staging, tx) = (s3.clone(), staging.clone(), tx.clone());
                tokio::spawn(async move {
                    let got = async {
                        let out = s3
                            .get_object()
                            .bucket(&staging)
                            .key(&key)
                            .range(format!("bytes={start}-{}", end - 1))
                            .send()
                            .await?;
                        Ok::<_, anyhow::Error>(out.body.collect().await?)
                    }
                    .await;
                    let _ = tx.send(got).await;
                    drop(permit);
                });
            }
        })
    };
    let destination = Destination::new(datalake, format!("bench/{id}-bare.bin"), kms);
    let settings = UploadSettings {
        part_size: PART,
        concurrency: UPLOADS,
    };
    let store = S3ObjectStore::new(s3.clone());
    let ((), written) = upload_stream(
        &store,
        &destination,
        settings,
        &BufferGauge::default(),
        |mut sink| async move {
            use std::io::Write;
            while let Some(chunk) = rx.recv().await {
                let chunk = chunk
                    .map_err(|e| shared::EgressError::Transient(e.to_string()))?
                    .into_bytes();
                let mut rest = &chunk[..];
                while !rest.is_empty() {
                    let n = sink.max_write().min(rest.len());
                    sink.write_all(&rest[..n])
                        .map_err(|e| shared::EgressError::Internal(e.to_string()))?;
                    sink.send_full_parts().await?;
                    rest = &rest[n..];
                }
            }
            Ok(((), sink.finish().await?))
        },
    )
    .await?;
    reader.await?;
    Ok(written)
}

fn run_child(mode: &str, size_mib: u64) -> Result<Value> {
    let out = Command::new(std::env::current_exe()?)
        .env("BENCH_ARCHIVE_CHILD", format!("{mode}:{size_mib}"))
        .output()
        .context("running the child")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .with_context(|| {
            format!(
                "{mode} {size_mib} MiB failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    Ok(serde_json::from_str(line)?)
}

async fn remove_outputs(stack: &Stack, size_mib: u64) -> Result<()> {
    let datalake = stack.outputs.bucket("DatalakeBucket")?;
    let id = request_id(size_mib);
    for key in [
        format!("bench/{id}-bare.bin"),
        format!("approved_egress/{WORKSPACE}/{id}/egress_data.zip"),
    ] {
        stack
            .s3
            .delete_object()
            .bucket(datalake)
            .key(key)
            .send()
            .await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    if let Ok(spec) = std::env::var("BENCH_ARCHIVE_CHILD") {
        let (mode, size) = spec.split_once(':').context("mode:size")?;
        let result = child(mode, size.parse()?).await?;
        println!("RESULT {result}");
        return Ok(());
    }
    let stack = Stack::connect().await?;
    let sizes = env_list("BENCH_ARCHIVE_SIZES_MIB", "256,1024");
    let latencies = env_list("BENCH_ARCHIVE_LATENCIES_MS", "0,20");
    let files = env_list("BENCH_ARCHIVE_FILES", "64")
        .first()
        .copied()
        .unwrap_or(64) as usize;
    println!("archive vs bare GET+PUT on the local stack ({files} files, 8 MiB parts, {UPLOADS} uploads, {READS} reads)");
    println!(
        "{:>8} {:>8} {:>10} {:>10} {:>8} {:>12} {:>12}",
        "MiB", "latency", "bare s", "archive s", "x limit", "RSS bare", "RSS archive"
    );
    for (i, &size) in sizes.iter().enumerate() {
        for &latency in &latencies {
            if latency > 0 && i > 0 {
                continue;
            }
            set_latency(&stack, 0)?;
            stage(&stack, size, files).await?;
            set_latency(&stack, latency)?;
            let bare = run_child("bare", size)?;
            let archive = run_child("archive", size)?;
            set_latency(&stack, 0)?;
            remove_outputs(&stack, size).await?;
            let (b, a) = (
                bare["seconds"].as_f64().unwrap_or(f64::NAN),
                archive["seconds"].as_f64().unwrap_or(f64::NAN),
            );
            println!(
                "{size:>8} {latency:>6}ms {b:>10.2} {a:>10.2} {:>7.2}x {:>9.1} MiB {:>9.1} MiB",
                a / b,
                bare["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
                archive["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
            );
        }
    }
    set_latency(&stack, 0)?;
    Ok(())
}
