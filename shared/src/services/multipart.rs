//! Streaming multipart uploads with a small pool of reused part buffers, and multipart copies.
//!
//! A producer writes bytes into a [`PartSink`] (it implements [`std::io::Write`], so the zip
//! writer can sit on top of it); every `part_size` bytes become one part, handed over a
//! channel to an uploader that keeps at most `concurrency` `UploadPart` calls in flight.
//! Producer and uploader run concurrently in the same task.
//!
//! Memory: part buffers come from a pool of `concurrency + 1` buffers (one filling, the others
//! uploading), allocated once per upload and reused part after part. A buffer goes back to the
//! pool when S3 has its part, and the producer waits for one when all are busy: that wait is
//! the back-pressure. Reusing them matters as much as counting them: a fresh multi-megabyte
//! buffer per part is what the allocator keeps around (glibc raises its mmap threshold after
//! the first free and then serves such buffers from arenas it seldom returns), which made
//! the resident set grow with the archive.
//!
//! [`upload_stream`] is one whole upload (created, completed, or aborted on any failure so
//! no partial object becomes visible); [`stream_parts`] streams parts into an upload the caller
//! owns, starting at any part number, and lets the producer stop at a part boundary (an
//! archive continued by a later invocation).

use std::future::Future;
use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{stream, StreamExt, TryStreamExt};
use tokio::sync::{mpsc, Semaphore};

use crate::error::{EgressError, Result};
use crate::ports::{Destination, MultipartUpload, ObjectRef, ObjectStore, UploadedPart, MAX_PARTS};

/// How a streaming upload cuts and sends parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadSettings {
    /// Bytes per part (every part but the last); at least 5 MiB against S3.
    pub part_size: usize,
    /// `UploadPart` calls in flight at once.
    pub concurrency: usize,
}

/// The largest data slice [`PartSink::max_write`] allows between two drains.
const MAX_WRITE: usize = 1024 * 1024;
/// Room for zip headers written between two drains (a 64 KiB name at most, plus fields).
const HEADER_SLACK: usize = 66 * 1024;

impl UploadSettings {
    fn buffer_capacity(&self) -> usize {
        self.part_size + HEADER_SLACK
    }

    /// Part buffers in the pool: one filling and `concurrency` uploading.
    pub fn buffers(&self) -> usize {
        self.concurrency.max(1) + 1
    }

    /// Upper bound of the bytes held in part buffers during an upload with these settings,
    /// for producers that write data in slices of at most [`PartSink::max_write`].
    pub fn buffer_bound(&self) -> usize {
        self.buffers() * self.buffer_capacity()
    }
}

/// Counts the bytes held in part buffers, now and at the peak. The archive logs the peak;
/// tests and the benchmark assert on it.
#[derive(Debug, Clone, Default)]
pub struct BufferGauge(Arc<GaugeInner>);

#[derive(Debug, Default)]
struct GaugeInner {
    current: AtomicUsize,
    peak: AtomicUsize,
}

impl BufferGauge {
    /// Bytes held now.
    pub fn current(&self) -> usize {
        self.0.current.load(Ordering::Relaxed)
    }

    /// The most bytes held at once.
    pub fn peak(&self) -> usize {
        self.0.peak.load(Ordering::Relaxed)
    }

    fn add(&self, n: usize) {
        let now = self.0.current.fetch_add(n, Ordering::Relaxed) + n;
        self.0.peak.fetch_max(now, Ordering::Relaxed);
    }

    fn sub(&self, n: usize) {
        self.0.current.fetch_sub(n, Ordering::Relaxed);
    }
}

/// The part buffers of one upload. A permit of `available` is a buffer the pipeline may hold
/// (filling, queued or uploading); the buffers themselves are recycled through `free`.
struct Pool {
    free: Mutex<Vec<Vec<u8>>>,
    available: Semaphore,
    capacity: usize,
    gauge: BufferGauge,
}

impl Pool {
    fn new(settings: UploadSettings, gauge: BufferGauge) -> Arc<Self> {
        Arc::new(Self {
            free: Mutex::new(Vec::new()),
            available: Semaphore::new(settings.buffers()),
            capacity: settings.buffer_capacity(),
            gauge,
        })
    }

    fn free(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A buffer, reused when one is free; waits while the pipeline holds all it may.
    async fn take(self: &Arc<Self>) -> Result<(Vec<u8>, Held)> {
        self.available
            .acquire()
            .await
            .map_err(|_| EgressError::Internal("the part buffer pool closed".into()))?
            .forget();
        self.gauge.add(self.capacity);
        let held = Held { pool: self.clone() };
        let buf = self
            .free()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.capacity));
        Ok((buf, held))
    }

    /// Keeps `buf` for the next part, unless it grew far beyond a part (a central directory
    /// of very many files written in one piece).
    fn recycle(&self, mut buf: Vec<u8>) {
        if buf.capacity() >= self.capacity && buf.capacity() <= 2 * self.capacity {
            buf.clear();
            self.free().push(buf);
        }
    }
}

/// One buffer's place in the pipeline, given back when its part was uploaded (or the sink
/// holding it is dropped).
struct Held {
    pool: Arc<Pool>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.pool.gauge.sub(self.pool.capacity);
        self.pool.available.add_permits(1);
    }
}

/// A part's bytes; the buffer goes back to the pool once every `Bytes` of it is gone (at
/// once with the SDK, which drops the body when the call is over).
struct PooledBuf {
    data: Vec<u8>,
    pool: Arc<Pool>,
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        self.pool.recycle(std::mem::take(&mut self.data));
    }
}

struct Part {
    number: i32,
    data: Bytes,
    held: Held,
}

/// Proof that the producer flushed its last part; only [`PartSink::finish`] makes one.
#[derive(Debug)]
pub struct Finished {
    bytes: u64,
}

impl Finished {
    /// The object's size.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// Where a producer writes the object's bytes.
pub struct PartSink {
    part_size: usize,
    pool: Arc<Pool>,
    buf: Vec<u8>,
    held: Option<Held>,
    next_part: i32,
    written: u64,
    tx: mpsc::Sender<Part>,
}

impl PartSink {
    /// Bytes of the object written so far (from its start, including parts of earlier runs).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The number the next part will have.
    pub fn next_part(&self) -> i32 {
        self.next_part
    }

    /// The largest slice of data to write before the next
    /// [`send_full_parts`](Self::send_full_parts): never past the next part boundary, so a
    /// producer sees every boundary between two slices (where the archive records where it
    /// is) and a buffer never grows beyond a part and a header.
    pub fn max_write(&self) -> usize {
        self.part_size
            .saturating_sub(self.buf.len())
            .clamp(1, MAX_WRITE)
    }

    /// Hands every complete part to the uploader, waiting while every buffer is busy: this
    /// is the back-pressure that bounds memory. Call after each write.
    pub async fn send_full_parts(&mut self) -> Result<()> {
        while self.buf.len() >= self.part_size {
            let (mut next, next_held) = self.pool.take().await?;
            next.extend_from_slice(&self.buf[self.part_size..]);
            self.buf.truncate(self.part_size);
            let full = std::mem::replace(&mut self.buf, next);
            let held = self.held.replace(next_held);
            self.send(full, held).await?;
        }
        Ok(())
    }

    /// Sends what is left as the last part and closes the stream.
    pub async fn finish(mut self) -> Result<Finished> {
        self.send_full_parts().await?;
        // S3 needs at least one part, even for an empty object.
        if !self.buf.is_empty() || self.next_part == 1 {
            let last = std::mem::take(&mut self.buf);
            let held = self.held.take();
            self.send(last, held).await?;
        }
        Ok(Finished {
            bytes: self.written,
        })
    }

    async fn send(&mut self, data: Vec<u8>, held: Option<Held>) -> Result<()> {
        let held =
            held.ok_or_else(|| EgressError::Internal("a part buffer without its place".into()))?;
        let data = Bytes::from_owner(PooledBuf {
            data,
            pool: self.pool.clone(),
        });
        if self.next_part > MAX_PARTS {
            return Err(EgressError::Internal(format!(
                "the upload needs more than {MAX_PARTS} parts of {} bytes",
                self.part_size
            )));
        }
        let part = Part {
            number: self.next_part,
            data,
            held,
        };
        self.next_part += 1;
        self.tx
            .send(part)
            .await
            .map_err(|_| EgressError::Internal("the part uploader stopped early".into()))
    }
}

impl io::Write for PartSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        self.written += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for PartSink {
    fn drop(&mut self) {
        // A buffer the producer held when it stopped: back to the pool like the others.
        self.pool.recycle(std::mem::take(&mut self.buf));
    }
}

/// Where [`stream_parts`] starts: the number of the first part it sends and the object offset
/// that part starts at (both 1 and 0 for a new upload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartAt {
    /// The first part number.
    pub part: i32,
    /// Bytes of the object before it.
    pub offset: u64,
}

impl StartAt {
    /// The start of an object.
    pub const BEGINNING: Self = Self { part: 1, offset: 0 };
}

/// Streams what `produce` writes into the parts of `upload`, from `start`. `produce` either
/// ends with [`PartSink::finish`] or stops at a part boundary by dropping the sink (what it
/// wrote after the last full part is discarded). Returns the producer's value and the parts
/// S3 accepted, in part-number order. Neither completes nor aborts the upload.
pub async fn stream_parts<S, F, Fut, T>(
    objects: &S,
    upload: &MultipartUpload,
    settings: UploadSettings,
    gauge: &BufferGauge,
    start: StartAt,
    produce: F,
) -> Result<(T, Vec<UploadedPart>)>
where
    S: ObjectStore,
    F: FnOnce(PartSink) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let pool = Pool::new(settings, gauge.clone());
    let (tx, rx) = mpsc::channel(1);
    let (first, held) = pool.take().await?;
    let sink = PartSink {
        part_size: settings.part_size.max(1),
        pool,
        buf: first,
        held: Some(held),
        next_part: start.part,
        written: start.offset,
        tx,
    };
    let uploader = upload_parts(objects, upload, rx, settings.concurrency);
    let (value, (parts, _)) = futures::future::try_join(produce(sink), uploader).await?;
    Ok((value, parts))
}

/// Uploads what `produce` writes to `destination` as one multipart upload and returns the
/// producer's value and the object's size. `produce` gets the sink and must end with
/// [`PartSink::finish`]. Any error aborts the upload.
pub async fn upload_stream<S, F, Fut, T>(
    objects: &S,
    destination: &Destination,
    settings: UploadSettings,
    gauge: &BufferGauge,
    produce: F,
) -> Result<(T, u64)>
where
    S: ObjectStore,
    F: FnOnce(PartSink) -> Fut,
    Fut: Future<Output = Result<(T, Finished)>>,
{
    let upload = objects.create_multipart(destination).await?;
    let streamed = stream_parts(
        objects,
        &upload,
        settings,
        gauge,
        StartAt::BEGINNING,
        produce,
    )
    .await;
    let outcome = match streamed {
        Ok(((value, finished), parts)) => match objects.complete_multipart(&upload, &parts).await {
            Ok(()) => abort_left_open(objects, &upload.bucket, &upload.key)
                .await
                .map(|_| (value, finished.bytes)),
            Err(err) => Err(err),
        },
        Err(err) => Err(err),
    };
    if outcome.is_err() {
        abort(objects, &upload).await;
    }
    outcome
}

async fn upload_parts<S: ObjectStore>(
    objects: &S,
    upload: &MultipartUpload,
    rx: mpsc::Receiver<Part>,
    concurrency: usize,
) -> Result<(Vec<UploadedPart>, u64)> {
    let incoming = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|p| (p, rx)) });
    let mut parts: Vec<(UploadedPart, u64)> = incoming
        .map(|part| async move {
            let Part { number, data, held } = part;
            let size = data.len() as u64;
            let uploaded = objects.upload_part(upload, number, data).await;
            // The buffer's place is released only once S3 has the part (the SDK may resend it).
            drop(held);
            uploaded.map(|p| (p, size))
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    parts.sort_by_key(|(p, _)| p.part_number);
    let total = parts.iter().map(|(_, size)| size).sum();
    Ok((parts.into_iter().map(|(p, _)| p).collect(), total))
}

/// Copies `source` (exactly its version) of `size` bytes to `destination` with
/// `UploadPartCopy`, for objects beyond the 5 GiB a single `CopyObject` allows. Parts are
/// `part_size` bytes, raised when needed to stay within 10,000 parts. Any error aborts.
pub async fn copy_multipart<S: ObjectStore>(
    objects: &S,
    source: &ObjectRef,
    destination: &Destination,
    size: u64,
    part_size: u64,
    concurrency: usize,
) -> Result<()> {
    let ranges = copy_ranges(size, part_size);
    let upload = objects.create_multipart(destination).await?;
    let copied: Result<Vec<UploadedPart>> = stream::iter(ranges.into_iter().zip(1..))
        .map(|(range, number)| objects.upload_part_copy(&upload, number, source, range))
        .buffered(concurrency.max(1))
        .try_collect()
        .await;
    let outcome = match copied {
        Ok(parts) => match objects.complete_multipart(&upload, &parts).await {
            Ok(()) => abort_left_open(objects, &upload.bucket, &upload.key)
                .await
                .map(|_| ()),
            Err(err) => Err(err),
        },
        Err(err) => Err(err),
    };
    if outcome.is_err() {
        abort(objects, &upload).await;
    }
    outcome
}

/// The byte ranges of a multipart copy: `part_size` each (raised to fit 10,000 parts), the
/// last one shorter.
pub fn copy_ranges(size: u64, part_size: u64) -> Vec<Range<u64>> {
    let min_for_count = size.div_ceil(MAX_PARTS as u64);
    let part = part_size.max(min_for_count).max(1);
    (0..size)
        .step_by(part as usize)
        .map(|start| start..(start + part).min(size))
        .collect()
}

/// Aborts every upload still open on exactly `bucket`/`key`, once that key's object is
/// complete: nothing else writes it, so any such upload is orphaned. The usual one: S3
/// created an upload but its answer was lost, and the SDK's retry created the one used, so
/// the first is known to nobody and would stay open (and billed) until the bucket's
/// lifecycle rule. One `ListMultipartUploads`; the uploads aborted are returned.
pub async fn abort_left_open<S: ObjectStore>(
    objects: &S,
    bucket: &str,
    key: &str,
) -> Result<Vec<String>> {
    let open = objects.list_multipart_uploads(bucket, key).await?;
    let mut aborted = Vec::new();
    for orphan in open.into_iter().filter(|o| o.upload.key == key) {
        tracing::warn!(
            bucket,
            key,
            upload_id = %orphan.upload.upload_id,
            "aborting an upload left open beside the completed object"
        );
        match objects.abort_multipart(&orphan.upload).await {
            Ok(()) | Err(EgressError::NotFound(_)) => aborted.push(orphan.upload.upload_id),
            Err(err) => return Err(err),
        }
    }
    Ok(aborted)
}

/// Best effort: the caller's error is what matters; a failed abort is logged for the admin
/// (the bucket's lifecycle rule removes incomplete uploads eventually).
pub(crate) async fn abort<S: ObjectStore>(objects: &S, upload: &MultipartUpload) {
    if let Err(err) = objects.abort_multipart(upload).await {
        tracing::error!(
            bucket = %upload.bucket,
            key = %upload.key,
            error = %err,
            "aborting the multipart upload failed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{InMemoryObjectStore, ObjectCall};
    use std::io::Write;

    fn destination() -> Destination {
        Destination::new("datalake", "out.bin", "arn:aws:kms:eu-west-2:1:key/k")
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    async fn produce_chunks(mut sink: PartSink, chunks: Vec<Vec<u8>>) -> Result<((), Finished)> {
        for chunk in chunks {
            sink.write_all(&chunk)
                .map_err(|e| EgressError::Internal(e.to_string()))?;
            sink.send_full_parts().await?;
        }
        Ok(((), sink.finish().await?))
    }

    #[tokio::test]
    async fn when_streaming_then_parts_have_the_configured_size_and_the_object_is_whole() {
        let store = InMemoryObjectStore::new().with_bucket("datalake", false);
        let chunks: Vec<Vec<u8>> = (0..40).map(|i| pattern(1000 + i * 37, i as u8)).collect();
        let expected: Vec<u8> = chunks.concat();
        let settings = UploadSettings {
            part_size: 4096,
            concurrency: 2,
        };
        let gauge = BufferGauge::default();
        let ((), size) = upload_stream(&store, &destination(), settings, &gauge, |sink| {
            produce_chunks(sink, chunks)
        })
        .await
        .unwrap();
        assert_eq!(size, expected.len() as u64);
        let stored = store.object("datalake", "out.bin").unwrap();
        assert_eq!(stored.data.as_ref(), expected.as_slice());
        assert_eq!(
            stored.kms_key_arn.as_deref(),
            Some("arn:aws:kms:eu-west-2:1:key/k")
        );
        let sizes: Vec<usize> = store
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                ObjectCall::UploadPart { size, .. } => Some(size),
                _ => None,
            })
            .collect();
        assert!(
            sizes[..sizes.len() - 1].iter().all(|s| *s == 4096),
            "{sizes:?}"
        );
        assert_eq!(gauge.current(), 0, "every buffer is released");
    }

    /// Streams `parts` parts' worth of 4 KiB writes; returns the peak of buffered bytes.
    async fn peak_for(parts: usize, settings: UploadSettings) -> usize {
        let store = InMemoryObjectStore::new().with_bucket("datalake", false);
        let chunks: Vec<Vec<u8>> = (0..parts * settings.part_size / 4096)
            .map(|i| pattern(4096, i as u8))
            .collect();
        let gauge = BufferGauge::default();
        let ((), size) = upload_stream(&store, &destination(), settings, &gauge, |sink| {
            produce_chunks(sink, chunks)
        })
        .await
        .unwrap();
        assert_eq!(size, (parts * settings.part_size) as u64);
        assert_eq!(gauge.current(), 0);
        gauge.peak()
    }

    #[tokio::test]
    async fn when_the_input_is_many_times_the_part_size_then_buffered_bytes_stay_bounded() {
        let settings = UploadSettings {
            part_size: 64 * 1024,
            concurrency: 2,
        };
        let small = peak_for(10, settings).await;
        let large = peak_for(400, settings).await;
        // 40 times the data, the same handful of buffers.
        assert!(
            large <= settings.buffer_bound(),
            "peak {large} > bound {}",
            settings.buffer_bound()
        );
        assert!(
            large <= small + settings.buffer_capacity(),
            "peak grew from {small} to {large}"
        );
        assert!(
            large < 400 * settings.part_size / 40,
            "peak {large} is not a few parts"
        );
    }

    #[tokio::test]
    async fn when_a_part_upload_fails_then_the_upload_is_aborted_and_nothing_is_visible() {
        let store = InMemoryObjectStore::new().with_bucket("datalake", false);
        store.fail_upload_part(3);
        let settings = UploadSettings {
            part_size: 1024,
            concurrency: 2,
        };
        let chunks: Vec<Vec<u8>> = (0..20).map(|i| pattern(700, i)).collect();
        let gauge = BufferGauge::default();
        let err = upload_stream(&store, &destination(), settings, &gauge, |sink| {
            produce_chunks(sink, chunks)
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("UploadPart 3"), "{err}");
        assert!(store
            .calls()
            .iter()
            .any(|c| matches!(c, ObjectCall::Abort { .. })));
        assert!(store.open_uploads().is_empty());
        assert!(store.object("datalake", "out.bin").is_none());
        assert_eq!(gauge.current(), 0);
    }

    #[tokio::test]
    async fn when_the_producer_fails_then_the_upload_is_aborted_with_the_producers_error() {
        let store = InMemoryObjectStore::new().with_bucket("datalake", false);
        let settings = UploadSettings {
            part_size: 1024,
            concurrency: 2,
        };
        let err = upload_stream(
            &store,
            &destination(),
            settings,
            &BufferGauge::default(),
            |mut sink| async move {
                sink.write_all(&pattern(5000, 1))
                    .map_err(|e| EgressError::Internal(e.to_string()))?;
                sink.send_full_parts().await?;
                Err::<((), Finished), _>(EgressError::Integrity(
                    "checksum mismatch for a.csv".into(),
                ))
            },
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type(), "IntegrityError");
        assert!(store.open_uploads().is_empty());
        assert!(store.object("datalake", "out.bin").is_none());
    }

    #[tokio::test]
    async fn when_completion_fails_then_the_upload_is_aborted() {
        let store = InMemoryObjectStore::new().with_bucket("datalake", false);
        store.fail_complete();
        let settings = UploadSettings {
            part_size: 1024,
            concurrency: 1,
        };
        let err = upload_stream(
            &store,
            &destination(),
            settings,
            &BufferGauge::default(),
            |sink| produce_chunks(sink, vec![pattern(3000, 1)]),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("CompleteMultipartUpload"), "{err}");
        assert!(store.open_uploads().is_empty());
    }

    #[tokio::test]
    async fn when_nothing_is_written_then_one_empty_part_completes_the_upload() {
        let store = InMemoryObjectStore::new().with_bucket("datalake", false);
        let settings = UploadSettings {
            part_size: 1024,
            concurrency: 1,
        };
        let ((), size) = upload_stream(
            &store,
            &destination(),
            settings,
            &BufferGauge::default(),
            |sink| produce_chunks(sink, vec![]),
        )
        .await
        .unwrap();
        assert_eq!(size, 0);
        assert_eq!(store.object("datalake", "out.bin").unwrap().data.len(), 0);
    }

    #[test]
    fn when_cutting_copy_ranges_then_they_cover_the_object_within_10000_parts() {
        assert_eq!(copy_ranges(10, 4), vec![0..4, 4..8, 8..10]);
        assert_eq!(copy_ranges(8, 4), vec![0..4, 4..8]);
        let huge = 5 * 1024u64.pow(4);
        let ranges = copy_ranges(huge, 512 * 1024 * 1024);
        assert!(ranges.len() <= MAX_PARTS as usize);
        assert_eq!(ranges.last().unwrap().end, huge);
        assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
    }

    #[tokio::test]
    async fn when_copying_in_parts_then_the_exact_version_is_copied_whole() {
        let store = InMemoryObjectStore::new()
            .with_bucket("src", true)
            .with_bucket("staging", false);
        let v1 = store.put_object("src", "k", pattern(10_000, 1));
        store.put_object("src", "k", pattern(10_000, 2));
        let source = ObjectRef::at_version("src", "k", &v1);
        let dest = Destination::new("staging", "ws/req/k", "arn:kms");
        copy_multipart(&store, &source, &dest, 10_000, 3000, 2)
            .await
            .unwrap();
        let staged = store.object("staging", "ws/req/k").unwrap();
        assert_eq!(staged.data.as_ref(), pattern(10_000, 1).as_slice());
        assert_eq!(staged.kms_key_arn.as_deref(), Some("arn:kms"));
        let copies = store
            .calls()
            .into_iter()
            .filter(|c| matches!(c, ObjectCall::UploadPartCopy { source: s, .. } if s.version_id.as_deref() == Some(v1.as_str())))
            .count();
        assert_eq!(copies, 4);
    }

    #[tokio::test]
    async fn when_a_part_copy_fails_then_the_copy_is_aborted() {
        let store = InMemoryObjectStore::new()
            .with_bucket("src", true)
            .with_bucket("staging", false);
        store.put_object("src", "k", pattern(100, 1));
        let source = ObjectRef::at_version("src", "k", "no-such-version");
        let dest = Destination::new("staging", "k", "arn:kms");
        let err = copy_multipart(&store, &source, &dest, 100, 30, 2)
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "NotFound");
        assert!(store.open_uploads().is_empty());
        assert!(store
            .calls()
            .iter()
            .any(|c| matches!(c, ObjectCall::Abort { .. })));
    }
}
