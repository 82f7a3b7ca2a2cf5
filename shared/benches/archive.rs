//! Throughput and memory of the data path of the workflow, without AWS.
//!
//! Three phases over the same generated data (default 1 GiB in 8 files, 8 MiB parts):
//! 1. `zip → parts`: the zip writer streaming into the bounded multipart uploader;
//! 2. `staging hash`: `copy-to-staging` with copies as no-ops, i.e. the SHA-256 of every
//!    staged object streamed back;
//! 3. `archive`: `copy-to-datalake` end to end: stream, verify SHA-256, zip, upload parts.
//!
//! Uploaded parts are counted and dropped, so the memory figures are the pipeline's own:
//! the peak of bytes held in part buffers (the uploader's gauge) and the process's peak
//! resident set (`VmHWM`, reset before each phase through `/proc/self/clear_refs`).
//!
//! Settings (environment): `BENCH_TOTAL_MIB` (1024), `BENCH_FILES` (8), `BENCH_PART_MIB` (8).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream;
use shared::fakes::{InMemoryAuditLog, InMemoryRequestStore};
use shared::model::{ArchiveInput, EgressStatus, StagingInput};
use shared::ports::{
    ByteChunks, Destination, ListCursor, ListedObject, MultipartUpload, ObjectHead, ObjectPage,
    ObjectRef, ObjectStore, SystemClock, UploadedPart, VersionPage, VersionedKey,
};
use shared::services::archive::{ArchiveSettings, ArchiveStep};
use shared::services::multipart::{upload_stream, BufferGauge, UploadSettings};
use shared::services::staging::{StagingSettings, StagingStep};
use shared::services::Step;
use shared::zipstream::{DosDateTime, ZipStreamWriter};
use shared::{EgressError, Result};

const MIB: usize = 1024 * 1024;
/// Chunk size of streamed reads, about what an S3 body delivers per poll.
const CHUNK: usize = 256 * 1024;
const WORKSPACE: &str = "bench-ws";
const REQUEST: &str = "bench-req";

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every object's content is `size` bytes of one pseudo-random pattern, served as slices of a
/// shared buffer, so producing the data costs nothing and the bench measures our code.
fn pattern() -> Bytes {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..MIB)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

/// A completed upload: its size and metadata.
type Uploaded = (u64, BTreeMap<String, String>);

/// An [`ObjectStore`] whose large objects are generated and whose uploads are counted.
struct BenchStore {
    pattern: Bytes,
    /// Size of every large object (source versions and staged copies) by key.
    sizes: Mutex<HashMap<String, u64>>,
    /// Small objects (snapshot, manifest) by key.
    small: Mutex<HashMap<String, Bytes>>,
    /// Completed multipart objects: key → (size, metadata).
    uploaded: Mutex<HashMap<String, Uploaded>>,
    /// Open uploads: id → (destination, bytes so far).
    open: Mutex<HashMap<String, (Destination, u64)>>,
    parts: Mutex<u64>,
}

impl BenchStore {
    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ObjectStore for BenchStore {
    async fn head(&self, object: &ObjectRef) -> Result<Option<ObjectHead>> {
        if let Some((size, metadata)) = Self::lock(&self.uploaded).get(&object.key) {
            return Ok(Some(ObjectHead {
                size: *size,
                metadata: metadata.clone(),
                ..ObjectHead::default()
            }));
        }
        Ok(Self::lock(&self.sizes)
            .get(&object.key)
            .map(|size| ObjectHead {
                size: *size,
                ..ObjectHead::default()
            }))
    }

    async fn get_bytes(&self, object: &ObjectRef, _max: u64) -> Result<Bytes> {
        Self::lock(&self.small)
            .get(&object.key)
            .cloned()
            .ok_or_else(|| EgressError::NotFound(format!("object {object} does not exist")))
    }

    async fn get_stream(&self, object: &ObjectRef) -> Result<ByteChunks> {
        let size = Self::lock(&self.sizes)
            .get(&object.key)
            .copied()
            .ok_or_else(|| EgressError::NotFound(format!("object {object} does not exist")))?;
        let pattern = self.pattern.clone();
        let chunks = stream::iter((0..size).step_by(CHUNK).map(move |start| {
            let len = (size - start).min(CHUNK as u64) as usize;
            let offset = (start as usize) % pattern.len();
            let end = (offset + len).min(pattern.len());
            Ok(pattern.slice(offset..end))
        }));
        Ok(Box::pin(chunks))
    }

    async fn get_range(
        &self,
        object: &ObjectRef,
        range: std::ops::Range<u64>,
    ) -> Result<ByteChunks> {
        let size = Self::lock(&self.sizes)
            .get(&object.key)
            .copied()
            .ok_or_else(|| EgressError::NotFound(format!("object {object} does not exist")))?;
        let (start, end) = (range.start.min(size), range.end.min(size));
        let pattern = self.pattern.clone();
        let chunks = stream::iter((start..end).step_by(CHUNK).map(move |at| {
            let len = (end - at).min(CHUNK as u64) as usize;
            let offset = (at as usize) % pattern.len();
            let stop = (offset + len).min(pattern.len());
            Ok(pattern.slice(offset..stop))
        }));
        Ok(Box::pin(chunks))
    }

    async fn put_bytes(&self, destination: &Destination, body: Bytes) -> Result<Option<String>> {
        Self::lock(&self.small).insert(destination.key.clone(), body);
        Ok(None)
    }

    async fn copy(&self, source: &ObjectRef, destination: &Destination) -> Result<()> {
        let size = Self::lock(&self.sizes)
            .get(&source.key)
            .copied()
            .unwrap_or(0);
        Self::lock(&self.sizes).insert(destination.key.clone(), size);
        Ok(())
    }

    async fn list_objects(
        &self,
        _bucket: &str,
        prefix: &str,
        _continuation: Option<&str>,
    ) -> Result<ObjectPage> {
        let mut objects: Vec<ListedObject> = Self::lock(&self.sizes)
            .iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .map(|(key, size)| ListedObject {
                key: key.clone(),
                size: *size,
            })
            .collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(ObjectPage {
            objects,
            next: None,
        })
    }

    async fn create_multipart(&self, destination: &Destination) -> Result<MultipartUpload> {
        let mut open = Self::lock(&self.open);
        let upload_id = format!("upload-{}", open.len() + 1);
        open.insert(upload_id.clone(), (destination.clone(), 0));
        Ok(MultipartUpload {
            bucket: destination.bucket.clone(),
            key: destination.key.clone(),
            upload_id,
        })
    }

    async fn upload_part(
        &self,
        upload: &MultipartUpload,
        part_number: i32,
        body: Bytes,
    ) -> Result<UploadedPart> {
        if let Some((_, bytes)) = Self::lock(&self.open).get_mut(&upload.upload_id) {
            *bytes += body.len() as u64;
        }
        *Self::lock(&self.parts) += 1;
        Ok(UploadedPart {
            part_number,
            e_tag: format!("\"{part_number}\""),
        })
    }

    async fn upload_part_copy(
        &self,
        _upload: &MultipartUpload,
        part_number: i32,
        _source: &ObjectRef,
        _range: std::ops::Range<u64>,
    ) -> Result<UploadedPart> {
        Ok(UploadedPart {
            part_number,
            e_tag: format!("\"{part_number}\""),
        })
    }

    async fn complete_multipart(&self, upload: &MultipartUpload, _: &[UploadedPart]) -> Result<()> {
        if let Some((destination, bytes)) = Self::lock(&self.open).remove(&upload.upload_id) {
            Self::lock(&self.uploaded).insert(destination.key, (bytes, destination.metadata));
        }
        Ok(())
    }

    async fn abort_multipart(&self, upload: &MultipartUpload) -> Result<()> {
        Self::lock(&self.open).remove(&upload.upload_id);
        Ok(())
    }

    async fn list_multipart_uploads(
        &self,
        _bucket: &str,
        _prefix: &str,
    ) -> Result<Vec<shared::ports::OpenUpload>> {
        Ok(Vec::new())
    }

    async fn list_versions(
        &self,
        _bucket: &str,
        prefix: &str,
        _cursor: Option<&ListCursor>,
    ) -> Result<VersionPage> {
        let mut keys: Vec<String> = Self::lock(&self.sizes)
            .keys()
            .chain(Self::lock(&self.small).keys())
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        keys.sort();
        Ok(VersionPage {
            objects: keys
                .into_iter()
                .map(|key| VersionedKey {
                    key,
                    version_id: Some("null".into()),
                })
                .collect(),
            next: None,
        })
    }

    async fn delete_versions(&self, _bucket: &str, objects: &[VersionedKey]) -> Result<()> {
        for o in objects {
            Self::lock(&self.sizes).remove(&o.key);
            Self::lock(&self.small).remove(&o.key);
        }
        Ok(())
    }
}

/// Resets the process's peak resident set so each phase reports its own.
fn reset_peak_rss() {
    // Writing 5 to clear_refs resets VmHWM (Linux >= 4.0); without it the figure is cumulative.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn report(phase: &str, bytes: u64, took: Duration, extra: &str) {
    let mib = bytes as f64 / MIB as f64;
    println!(
        "{phase:<14} {mib:>8.0} MiB in {:>6.2} s = {:>7.1} MiB/s   peak RSS {:>6.1} MiB   {extra}",
        took.as_secs_f64(),
        mib / took.as_secs_f64(),
        peak_rss_mib()
    );
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --benches` would too: run either way.
    let total = setting("BENCH_TOTAL_MIB", 1024) * MIB;
    let files = setting("BENCH_FILES", 8).max(1);
    let part_size = setting("BENCH_PART_MIB", 8) * MIB;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| EgressError::Internal(e.to_string()))?;
    println!(
        "egress data path: {} MiB in {files} file(s), {} MiB parts, 1 thread",
        total / MIB,
        part_size / MIB
    );
    runtime.block_on(run(total, files, part_size))
}

async fn run(total: usize, files: usize, part_size: usize) -> Result<()> {
    let store = BenchStore {
        pattern: pattern(),
        sizes: Mutex::new(HashMap::new()),
        small: Mutex::new(HashMap::new()),
        uploaded: Mutex::new(HashMap::new()),
        open: Mutex::new(HashMap::new()),
        parts: Mutex::new(0),
    };
    let per_file = (total / files) as u64;

    // 1. The zip writer into the bounded multipart uploader.
    reset_peak_rss();
    let settings = UploadSettings {
        part_size,
        concurrency: 2,
    };
    let gauge = BufferGauge::default();
    let pattern = store.pattern.clone();
    let started = Instant::now();
    let destination = Destination::new("datalake", "zip-only.zip", "kms");
    let ((), written) = upload_stream(&store, &destination, settings, &gauge, |sink| async move {
        let mut zip = ZipStreamWriter::new(sink);
        let when = DosDateTime::from_datetime(time::OffsetDateTime::now_utc());
        for n in 0..files {
            zip.start_entry(&format!("data/file-{n:03}.bin"), Some(per_file), when)
                .map_err(|e| EgressError::Internal(e.to_string()))?;
            let mut left = per_file as usize;
            while left > 0 {
                let piece = &pattern[..left.min(CHUNK)];
                zip.write_data(piece)
                    .map_err(|e| EgressError::Internal(e.to_string()))?;
                zip.get_mut().send_full_parts().await?;
                left -= piece.len();
            }
            zip.finish_entry()
                .map_err(|e| EgressError::Internal(e.to_string()))?;
        }
        zip.finish()
            .map_err(|e| EgressError::Internal(e.to_string()))?;
        let mut sink = zip.into_inner();
        sink.flush()
            .map_err(|e| EgressError::Internal(e.to_string()))?;
        Ok(((), sink.finish().await?))
    })
    .await?;
    report(
        "zip → parts",
        written,
        started.elapsed(),
        &format!(
            "peak part buffers {:.1} MiB (bound {:.1} MiB)",
            gauge.peak() as f64 / MIB as f64,
            settings.buffer_bound() as f64 / MIB as f64
        ),
    );

    // 2. Staging: copies are no-ops here, so this is the SHA-256 of every staged object.
    let objects: Vec<serde_json::Value> = (0..files)
        .map(|n| {
            let key = format!("{WORKSPACE}/data/file-{n:03}.bin");
            store
                .sizes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.clone(), per_file);
            serde_json::json!({"Key": key, "VersionId": format!("v{n}"), "Size": per_file})
        })
        .collect();
    store
        .small
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(
            "snapshot.json".into(),
            serde_json::to_vec(&serde_json::json!({ "objects": objects }))
                .map_err(|e| EgressError::Internal(e.to_string()))?
                .into(),
        );
    let mut request = shared::testdata::request(REQUEST, EgressStatus::Processing);
    request.workspace_id = WORKSPACE.into();
    let requests = InMemoryRequestStore::with([request]);
    let audit = InMemoryAuditLog::default();
    let input = StagingInput {
        egress_request_id: REQUEST.into(),
        workspace_id: WORKSPACE.into(),
        s3_egress_store_bucket: "egress".into(),
        s3_egress_store_bucket_path: format!("{WORKSPACE}/"),
        s3_egress_store_object_list_location: "arn:aws:s3:::notify/snapshot.json".into(),
    };
    reset_peak_rss();
    let started = Instant::now();
    let step = StagingStep {
        objects: store,
        requests,
        audit,
        clock: SystemClock,
        settings: StagingSettings::new("staging", "kms", 8),
    };
    let staged = step.run(&input).await?;
    let StagingStep {
        objects: store,
        requests,
        audit,
        ..
    } = step;
    report("staging hash", staged.total_bytes, started.elapsed(), "");

    // 3. The archive: stream, verify SHA-256, zip, upload.
    if let Some(mut item) = requests.item(REQUEST) {
        item.egress_status = EgressStatus::IgApproved;
        requests.put(item);
    }
    let parts_before = *store.parts.lock().unwrap_or_else(|p| p.into_inner());
    reset_peak_rss();
    let started = Instant::now();
    let step = ArchiveStep {
        objects: store,
        requests,
        audit,
        clock: SystemClock,
        settings: ArchiveSettings::new("staging", "datalake", "kms", part_size as u64),
    };
    let archived = step
        .run(&ArchiveInput {
            egress_request_id: REQUEST.into(),
            workspace_id: WORKSPACE.into(),
        })
        .await?;
    let store = step.objects;
    let parts = *store.parts.lock().unwrap_or_else(|p| p.into_inner()) - parts_before;
    report(
        "archive",
        archived.size,
        started.elapsed(),
        &format!("{parts} parts, {} files verified", archived.file_count),
    );
    Ok(())
}
