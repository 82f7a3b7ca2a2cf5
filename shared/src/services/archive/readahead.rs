//! Read-ahead: the staged files' bytes fetched ahead of the zip writer, in manifest order.
//!
//! Each file is one or more segments: a small file is one `GetObject`, a large one a series
//! of ranged `GetObject`s of `range_size` bytes, so that one large file is fetched by several
//! requests at once as well as many small ones. Up to `requests` segments are in flight and,
//! together with the fetched segments not yet written, they hold at most `bytes` (a segment
//! waits for its share of that budget, in order, before its request starts). Segments come
//! out in order whatever order they arrive in, so entries are written in manifest order.
//!
//! A file that grew since staging is caught without reading it all: the last segment asks
//! for one byte past the size the manifest records.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::{stream, Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{EgressError, Result};
use crate::ports::{ObjectRef, ObjectStore};

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
pub(super) struct Segment {
    pub(super) entry: usize,
    pub(super) object: ObjectRef,
    /// For a whole file, `0..size + 1`: the most it reads.
    pub(super) range: Range<u64>,
    pub(super) whole: bool,
}

/// A fetched segment; its share of the budget is released when it is dropped.
pub(super) struct Fetched {
    pub(super) entry: usize,
    pub(super) chunks: Vec<Bytes>,
    _permit: OwnedSemaphorePermit,
}

impl ReadAhead {
    /// The segments of a file of `size` bytes, read from data offset `from`: each range
    /// and whether it is a whole-object GET. The last one reaches one byte past `size`.
    pub(super) fn ranges(&self, size: u64, from: u64) -> Vec<(Range<u64>, bool)> {
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

    /// The fetched segments of `segments`, in order, read ahead within the budget.
    pub(super) fn fetch<'a, O: ObjectStore>(
        self,
        objects: &'a O,
        segments: impl Iterator<Item = Result<Segment>> + 'a,
    ) -> impl Stream<Item = Result<Fetched>> + 'a {
        let budget_kib = kib(self.bytes).max(1);
        let budget = Arc::new(Semaphore::new(budget_kib as usize));
        stream::iter(segments)
            // Budget shares are taken in order, so the segment the writer waits for never
            // waits behind later ones.
            .then(move |segment| {
                let budget = budget.clone();
                async move {
                    let segment = segment?;
                    let wanted = kib(segment.range.end - segment.range.start).clamp(1, budget_kib);
                    let permit = budget.acquire_many_owned(wanted).await.map_err(|_| {
                        EgressError::Internal("the read-ahead budget closed".into())
                    })?;
                    Ok((segment, permit))
                }
            })
            .map(
                move |ready: Result<(Segment, OwnedSemaphorePermit)>| async move {
                    let (segment, permit) = ready?;
                    let chunks = read(objects, &segment).await?;
                    Ok(Fetched {
                        entry: segment.entry,
                        chunks,
                        _permit: permit,
                    })
                },
            )
            .buffered(self.requests.max(1))
    }
}

fn kib(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

/// The bytes of one segment, at most its range's length (a larger object stops the read
/// there: the writer then sees more bytes than the manifest records).
async fn read<O: ObjectStore>(objects: &O, segment: &Segment) -> Result<Vec<Bytes>> {
    let mut body = if segment.whole {
        objects.get_stream(&segment.object).await?
    } else {
        objects
            .get_range(&segment.object, segment.range.clone())
            .await?
    };
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
