//! Read-ahead: the staged files' bytes fetched ahead of their reader (the archive's zip
//! writer, the output checks of a large file), in manifest order.
//!
//! Each file is one or more segments: a small file is one `GetObject`, a large one a series
//! of ranged `GetObject`s of `range_size` bytes, so that one large file is fetched by several
//! requests at once as well as many small ones. Two bounds, kept apart:
//! - `requests`: segments in flight (requested, being read, or fetched and not yet written).
//!   A segment's request is sent as soon as it is in flight, whatever the byte budget: its
//!   round trip (to the response headers) holds no bytes.
//! - `bytes`: bytes being read or fetched and not yet written. A segment's body is read only
//!   once it holds its share of that budget; shares are granted in order, so the segment the
//!   writer waits for never waits behind later ones. Until then its response waits unread
//!   (the transport's flow control holds the bytes back, not this process).
//!
//! So with 16 requests and 16 MiB in 4 MiB ranges, the next round trips are already done
//! while four ranges' bytes flow: a 20 ms round trip is not paid again each time a share
//! frees up. Segments come out in order whatever order they arrive in, so entries are
//! written in manifest order. A response that fails while it is read (a connection closed
//! while its response waited) is asked for once more.
//!
//! A file that grew since staging is caught without reading it all: the last segment asks
//! for one byte past the size the manifest records.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::{stream, Stream, StreamExt};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::error::{EgressError, Result};
use crate::ports::{ByteChunks, ObjectRef, ObjectStore};

/// How much is read ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadAhead {
    /// Bytes fetched but not yet written, at most (rounded up to whole segments).
    pub bytes: u64,
    /// `GetObject` requests in flight, at most.
    pub requests: usize,
    /// Files larger than this are read in ranges of this size.
    pub range_size: u64,
}

/// One request: a whole small file, or a range of a large one.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub(crate) entry: usize,
    pub(crate) object: ObjectRef,
    /// For a whole file, `0..size + 1`: the most it reads.
    pub(crate) range: Range<u64>,
    pub(crate) whole: bool,
}

/// A fetched segment; its share of the budget is released when it is dropped.
pub(crate) struct Fetched {
    pub(crate) entry: usize,
    pub(crate) chunks: Vec<Bytes>,
    _permit: OwnedSemaphorePermit,
}

impl ReadAhead {
    /// The segments of a file of `size` bytes, read from data offset `from`: each range
    /// and whether it is a whole-object GET. The last one reaches one byte past `size`.
    pub(crate) fn ranges(&self, size: u64, from: u64) -> Vec<(Range<u64>, bool)> {
        if from == 0 && size <= self.range_size {
            return vec![(0..size + 1, true)];
        }
        let step = self.range_size.max(1);
        let mut out = Vec::new();
        let mut start = from;
        while start < size {
            let end = (start + step).min(size);
            let asked = if end == size { size + 1 } else { end };
            out.push((start..asked, false));
            start = end;
        }
        out
    }

    /// The fetched segments of `segments`, in order, read ahead within the bounds.
    pub(crate) fn fetch<'a, O: ObjectStore>(
        self,
        objects: &'a O,
        segments: impl Iterator<Item = Result<Segment>> + 'a,
    ) -> impl Stream<Item = Result<Fetched>> + 'a {
        self.fetch_with(segments, move |segment| request(objects, segment))
    }

    /// [`Self::fetch`] with `open` sending a segment's request.
    fn fetch_with<'a, F, Fut>(
        self,
        segments: impl Iterator<Item = Result<Segment>> + 'a,
        open: F,
    ) -> impl Stream<Item = Result<Fetched>> + 'a
    where
        F: Fn(Segment) -> Fut + Clone + 'a,
        Fut: std::future::Future<Output = Result<ByteChunks>> + 'a,
    {
        let budget_kib = kib(self.bytes).max(1);
        let budget = Arc::new(Semaphore::new(budget_kib as usize));
        // Each segment takes its budget share after the one before it took its own: a
        // chain of turns, so shares are granted in order.
        let (first_turn, first) = oneshot::channel::<()>();
        let _ = first_turn.send(());
        stream::iter(segments)
            .scan(first, |previous, segment| {
                let (mine, next) = oneshot::channel::<()>();
                let wait = std::mem::replace(previous, next);
                futures::future::ready(Some((segment, wait, mine)))
            })
            .map(move |(segment, wait, mine)| {
                let (open, budget) = (open.clone(), budget.clone());
                async move {
                    let segment = segment?;
                    // The request goes out at once: its round trip holds no bytes.
                    let body = open(segment.clone()).await?;
                    // A turn dropped unsent is an earlier segment that failed: its error
                    // comes out first, and the stream ends there.
                    let _ = wait.await;
                    let range = &segment.range;
                    let wanted = kib(range.end - range.start).clamp(1, budget_kib);
                    let permit = budget.acquire_many_owned(wanted).await.map_err(|_| {
                        EgressError::Internal("the read-ahead budget closed".into())
                    })?;
                    let _ = mine.send(());
                    let chunks = match drain(body, &segment).await {
                        Ok(chunks) => chunks,
                        // The response may have waited long for its share: a connection
                        // closed meanwhile is asked again, once.
                        Err(err) if err.is_transient() => {
                            tracing::warn!(object = %segment.object, error = %err, "reading a segment failed; asking again");
                            drain(open(segment.clone()).await?, &segment).await?
                        }
                        Err(err) => return Err(err),
                    };
                    Ok(Fetched {
                        entry: segment.entry,
                        chunks,
                        _permit: permit,
                    })
                }
            })
            // Segments in flight: requested, being read, or fetched and not yet written.
            .buffered(self.requests.max(1))
    }
}

fn kib(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

/// Sends the segment's `GetObject`: the response, its body unread.
async fn request<O: ObjectStore>(objects: &O, segment: Segment) -> Result<ByteChunks> {
    if segment.whole {
        objects.get_stream(&segment.object).await
    } else {
        objects.get_range(&segment.object, segment.range).await
    }
}

/// The bytes of one segment, at most its range's length (a larger object stops the read
/// there: the writer then sees more bytes than the manifest records).
async fn drain(mut body: ByteChunks, segment: &Segment) -> Result<Vec<Bytes>> {
    let limit = segment.range.end - segment.range.start;
    let mut chunks = Vec::new();
    let mut got = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        got += chunk.len() as u64;
        chunks.push(chunk);
        if got >= limit {
            break;
        }
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{InMemoryObjectStore, ObjectCall};
    use std::pin::pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// `n` files of `size` bytes (file `i` all bytes `i`), each one whole GET.
    fn files(n: usize, size: usize) -> (InMemoryObjectStore, Vec<Segment>) {
        let store = InMemoryObjectStore::new().with_bucket("staging", false);
        let segments = (0..n)
            .map(|i| {
                store.put_object("staging", &format!("f{i}"), vec![i as u8; size]);
                Segment {
                    entry: i,
                    object: ObjectRef::new("staging", format!("f{i}")),
                    range: 0..size as u64 + 1,
                    whole: true,
                }
            })
            .collect();
        (store, segments)
    }

    fn gets(store: &InMemoryObjectStore) -> usize {
        store
            .calls()
            .iter()
            .filter(|c| matches!(c, ObjectCall::Get(_)))
            .count()
    }

    #[tokio::test]
    async fn when_the_byte_budget_is_held_then_later_requests_are_still_sent_up_to_the_request_bound(
    ) {
        let (store, segments) = files(8, 4096);
        let ra = ReadAhead {
            bytes: 4096,
            requests: 4,
            range_size: 8192,
        };
        let mut fetched = pin!(ra.fetch(&store, segments.into_iter().map(Ok)));
        // The first segment holds the whole budget until the writer is done with it.
        let first = fetched.next().await.unwrap().unwrap();
        let waited = tokio::time::timeout(Duration::from_millis(50), fetched.next()).await;
        assert!(waited.is_err(), "the second waits for the budget");
        // Its request and the next three were sent meanwhile (four open, no more).
        assert_eq!(gets(&store), 1 + 4);
        let mut order = vec![first.entry];
        assert_eq!(first.chunks.concat(), vec![0u8; 4096]);
        drop(first);
        while let Some(next) = fetched.next().await {
            let next = next.unwrap();
            assert_eq!(next.chunks.concat(), vec![next.entry as u8; 4096]);
            order.push(next.entry);
        }
        assert_eq!(order, (0..8).collect::<Vec<_>>(), "manifest order");
        assert_eq!(gets(&store), 8, "one request per segment");
    }

    #[tokio::test]
    async fn when_a_response_fails_while_read_then_it_is_asked_for_once_more() {
        let (store, segments) = files(3, 100);
        let ra = ReadAhead {
            bytes: 64 * 1024,
            requests: 2,
            range_size: 1024,
        };
        let opened = AtomicUsize::new(0);
        let open = |segment: Segment| {
            let n = opened.fetch_add(1, Ordering::SeqCst);
            let store = &store;
            async move {
                if n == 1 {
                    // The second request's connection closes mid-body.
                    let failing: Vec<Result<Bytes>> = vec![
                        Ok(Bytes::from_static(b"xx")),
                        Err(EgressError::Transient("connection closed".into())),
                    ];
                    return Ok(Box::pin(stream::iter(failing)) as ByteChunks);
                }
                store.get_stream(&segment.object).await
            }
        };
        let fetched: Vec<Fetched> = ra
            .fetch_with(segments.into_iter().map(Ok), open)
            .map(|f| f.unwrap())
            .collect()
            .await;
        let data: Vec<Vec<u8>> = fetched.iter().map(|f| f.chunks.concat()).collect();
        assert_eq!(data, vec![vec![0u8; 100], vec![1u8; 100], vec![2u8; 100]]);
        assert_eq!(opened.load(Ordering::SeqCst), 4, "one request again");
    }

    #[tokio::test]
    async fn when_a_response_fails_for_good_then_the_error_ends_the_read_ahead() {
        let (store, segments) = files(2, 100);
        let ra = ReadAhead {
            bytes: 64 * 1024,
            requests: 2,
            range_size: 1024,
        };
        let open = |segment: Segment| {
            let store = &store;
            async move {
                if segment.entry == 1 {
                    let failing: Vec<Result<Bytes>> =
                        vec![Err(EgressError::Transient("connection reset".into()))];
                    return Ok(Box::pin(stream::iter(failing)) as ByteChunks);
                }
                store.get_stream(&segment.object).await
            }
        };
        let mut fetched = pin!(ra.fetch_with(segments.into_iter().map(Ok), open));
        assert_eq!(fetched.next().await.unwrap().unwrap().entry, 0);
        let err = fetched.next().await.unwrap().err().unwrap();
        assert!(err.to_string().contains("connection reset"), "{err}");
    }

    const RA: ReadAhead = ReadAhead {
        bytes: 1024,
        requests: 4,
        range_size: 10,
    };

    #[test]
    fn when_a_file_is_small_then_it_is_one_whole_get_reading_one_byte_past_its_size() {
        assert_eq!(RA.ranges(7, 0), vec![(0..8, true)]);
        assert_eq!(RA.ranges(0, 0), vec![(0..1, true)]);
    }

    #[test]
    fn when_a_file_is_large_or_resumed_then_ranges_cover_the_rest_and_the_last_reads_one_more() {
        assert_eq!(
            RA.ranges(25, 0),
            vec![(0..10, false), (10..20, false), (20..26, false)]
        );
        assert_eq!(RA.ranges(25, 12), vec![(12..22, false), (22..26, false)]);
        assert_eq!(RA.ranges(5, 3), vec![(3..6, false)]);
        assert!(RA.ranges(25, 25).is_empty());
    }
}
