//! The streaming zip writer (`shared::zipstream`), checked against an independent reader
//! (the `zip` crate): arbitrary names (Unicode, look-alikes, up to the 65,535-byte limit),
//! sizes (0, 1, powers of two and their neighbours), entry counts and call sequences; and
//! the ZIP64 boundaries.
//!
//! How the writer decides ZIP64 (zipstream.rs): an entry gets ZIP64 local headers when its
//! size hint is unknown or >= 0xFFFF_FFFF; a central record carries ZIP64 sizes/offset when
//! they are >= 0xFFFF_FFFF; the end records go ZIP64 when there are >= 65,535 entries or the
//! central directory starts or grows past 0xFFFF_FFFF. The entry-count boundary is written
//! for real (65,533-65,537 entries). The size boundary needs 4 GiB to pass through the
//! writer, which CRCs every byte it is given (it has no way to declare zeros without
//! streaming them): a few deterministic scenarios stream 4 GiB of zeros into a sparse sink
//! that keeps only headers, and the reader reads that sparse image.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};

use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use shared::zipstream::{predicted_size, DosDateTime, ZipStreamWriter};
use time::macros::datetime;

use crate::support::{self, fragment};

const U32_LIMIT: u64 = 0xFFFF_FFFF;
const ZIP64_EOCD_SIG: [u8; 4] = [0x50, 0x4b, 0x06, 0x06];

fn when() -> DosDateTime {
    DosDateTime::from_datetime(datetime!(2024-05-03 12:00:00 UTC))
}

/// Entry names: plausible paths, arbitrary Unicode, hostile fragments, and lengths around
/// the format's 65,535-byte limit.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        40 => "[a-zA-Z0-9_./ -]{1,40}",
        20 => any::<String>(),
        20 => proptest::collection::vec(fragment(), 1..6).prop_map(|v| v.concat()),
        5 => Just(String::new()),
        1 => proptest::sample::select(&[255usize, 256, 1024, 65_534, 65_535, 65_536][..])
            .prop_map(|n| "n".repeat(n)),
        1 => (21_845usize..=21_846).prop_map(|n| "é".repeat(n) + "ab"), // 65,536 / 65,537 bytes
    ]
}

/// Sizes: 0, 1, powers of two and neighbours, or anything below 20 kB.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        proptest::sample::select(
            &[0usize, 1, 2, 15, 16, 17, 255, 256, 4095, 4096, 65_535, 65_536][..]
        ),
        0usize..20_000,
    ]
}

/// What the entry declares at its start.
#[derive(Debug, Clone, Copy)]
enum Hint {
    Exact,
    Unknown,
    /// A hint of at least 4 GiB: ZIP64 headers for a small entry.
    Huge(u64),
    /// A wrong but small hint (allowed: only growing past 4 GiB is refused).
    Off(u32),
}

fn hint() -> impl Strategy<Value = Hint> {
    prop_oneof![
        4 => Just(Hint::Exact),
        2 => Just(Hint::Unknown),
        1 => (U32_LIMIT..=u64::MAX).prop_map(Hint::Huge),
        1 => (0u32..u32::MAX).prop_map(Hint::Off),
    ]
}

/// One call on the writer.
#[derive(Debug, Clone)]
enum Op {
    /// `start_entry(name, hint)`; the size is what the following writes will add (for
    /// `Hint::Exact`).
    Start(String, Hint, usize),
    /// `write_data` of this many bytes, in chunks of at most the second value.
    Write(usize, usize),
    FinishEntry,
    Finish,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (name(), hint(), size()).prop_map(|(n, h, s)| Op::Start(n, h, s)),
        5 => (size(), 1usize..8192).prop_map(|(s, c)| Op::Write(s, c)),
        4 => Just(Op::FinishEntry),
        1 => Just(Op::Finish),
    ]
}

/// A well-formed archive mostly (start, write, finish per entry), sometimes with calls out of
/// order, which the writer must refuse without breaking the archive.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    let entry = (name(), hint(), size(), 1usize..8192)
        .prop_map(|(n, h, s, c)| vec![Op::Start(n, h, s), Op::Write(s, c), Op::FinishEntry]);
    prop_oneof![
        3 => proptest::collection::vec(entry, 0..10).prop_map(|v| v.concat()),
        1 => proptest::collection::vec(op(), 0..24),
    ]
}

fn data(len: usize, salt: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31).wrapping_add(salt) % 251) as u8)
        .collect()
}

/// The writer's refusals are `InvalidInput` errors with a message.
fn refused(result: io::Result<impl std::fmt::Debug>) -> TestCaseResult {
    match result {
        Ok(v) => prop_assert!(false, "accepted out of order: {:?}", v),
        Err(e) => {
            prop_assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{}", e);
            prop_assert!(!e.to_string().is_empty());
        }
    }
    Ok(())
}

/// Reads `bytes` with the `zip` crate and compares every entry with `expected`.
fn read_back(bytes: &[u8], expected: &[(String, Vec<u8>)]) -> TestCaseResult {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| TestCaseError::fail(format!("the zip crate cannot open it: {e}")))?;
    prop_assert_eq!(archive.len(), expected.len());
    for (i, (name, content)) in expected.iter().enumerate() {
        let mut file = archive
            .by_index(i)
            .map_err(|e| TestCaseError::fail(format!("entry {i}: {e}")))?;
        let read_name = file
            .name()
            .map_err(|e| TestCaseError::fail(format!("entry {i}: name: {e}")))?;
        prop_assert_eq!(read_name.as_ref(), name.as_str());
        prop_assert_eq!(file.size(), content.len() as u64);
        prop_assert_eq!(file.compression(), zip::CompressionMethod::Stored);
        let mut read = Vec::new();
        // The reader checks the CRC-32 when it reaches the end.
        file.read_to_end(&mut read)
            .map_err(|e| TestCaseError::fail(format!("entry {i} {name:?}: {e}")))?;
        prop_assert!(&read == content, "entry {} {:?}: bytes differ", i, name);
    }
    Ok(())
}

#[test]
fn when_entries_and_calls_are_arbitrary_then_the_zip_crate_reads_back_exactly_what_was_written() {
    support::run(
        "zip_roundtrip",
        support::cases(support::DEFAULT_CASES, u32::MAX),
        ops(),
        |ops| {
            let mut zip = ZipStreamWriter::new(Vec::new());
            let mut open: Option<(String, Vec<u8>, Hint)> = None;
            let mut done: Vec<(String, Vec<u8>)> = Vec::new();
            let mut names = HashSet::new();
            let mut finished = false;
            let mut compact = true; // every entry declared a size below 4 GiB
            for (n, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Start(name, hint, size) => {
                        let size_hint = match hint {
                            Hint::Exact => Some(size as u64),
                            Hint::Unknown => None,
                            Hint::Huge(h) => Some(h),
                            Hint::Off(h) => Some(u64::from(h)),
                        };
                        let result = zip.start_entry(&name, size_hint, when());
                        let bad_name =
                            name.is_empty() || name.len() > 65_535 || names.contains(&name);
                        if finished || open.is_some() || bad_name {
                            support::tally("refused_start");
                            refused(result)?;
                        } else {
                            prop_assert!(result.is_ok(), "{:?}", result);
                            compact &= size_hint.is_some_and(|h| h < U32_LIMIT);
                            names.insert(name.clone());
                            open = Some((name, Vec::new(), hint));
                        }
                    }
                    Op::Write(len, chunk) => {
                        let bytes = data(len, n);
                        let mut result = Ok(());
                        for part in bytes.chunks(chunk.max(1)) {
                            result = zip.write_data(part);
                            if result.is_err() {
                                break;
                            }
                        }
                        if finished || open.is_none() {
                            if !bytes.is_empty() {
                                refused(result)?;
                            }
                        } else {
                            prop_assert!(result.is_ok(), "{:?}", result);
                            if let Some((_, written, _)) = open.as_mut() {
                                written.extend_from_slice(&bytes);
                            }
                        }
                    }
                    Op::FinishEntry => {
                        let result = zip.finish_entry();
                        match open.take() {
                            Some((name, written, _)) if !finished => {
                                let summary =
                                    result.map_err(|e| TestCaseError::fail(e.to_string()))?;
                                prop_assert_eq!(summary.size, written.len() as u64);
                                done.push((name, written));
                            }
                            _ => refused(result)?,
                        }
                    }
                    Op::Finish => {
                        let result = zip.finish();
                        if finished || open.is_some() {
                            refused(result)?;
                        } else {
                            prop_assert!(result.is_ok(), "{:?}", result);
                            finished = true;
                        }
                    }
                }
            }
            if let Some((name, written, _)) = open.take() {
                zip.finish_entry()
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                done.push((name, written));
            }
            if !finished {
                zip.finish()
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            let total = zip.bytes_written();
            let bytes = zip.into_inner();
            prop_assert_eq!(total, bytes.len() as u64);
            if compact {
                let sizes = done.iter().map(|(n, d)| (n.as_str(), d.len() as u64));
                prop_assert_eq!(predicted_size(sizes), total, "predicted size");
            }
            support::tally(if done.is_empty() {
                "empty_archive"
            } else {
                "archive"
            });
            read_back(&bytes, &done)
        },
    );
}

/// The writer's end records for `count` entries, read back; ZIP64 end records iff
/// `count >= 65,535`.
fn count_boundary(count: usize, salt: usize) -> TestCaseResult {
    let mut zip = ZipStreamWriter::new(Vec::new());
    let mut expected = Vec::with_capacity(count);
    for i in 0..count {
        let name = format!("d{}/f{i}-{salt}", i % 7);
        let content = data((i + salt) % 3, i);
        zip.start_entry(&name, Some(content.len() as u64), when())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        zip.write_data(&content)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        zip.finish_entry()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        expected.push((name, content));
    }
    let total = zip
        .finish()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let bytes = zip.into_inner();
    prop_assert_eq!(total, bytes.len() as u64);
    let sizes = expected.iter().map(|(n, d)| (n.as_str(), d.len() as u64));
    prop_assert_eq!(predicted_size(sizes), total);
    let tail = &bytes[bytes.len() - 98..];
    let zip64 = tail.windows(4).any(|w| w == ZIP64_EOCD_SIG);
    prop_assert_eq!(
        zip64,
        count >= 65_535,
        "ZIP64 end records for {} entries",
        count
    );
    let mut archive = zip::ZipArchive::new(Cursor::new(&bytes[..]))
        .map_err(|e| TestCaseError::fail(format!("{count} entries: {e}")))?;
    prop_assert_eq!(archive.len(), count);
    // Every entry's name and size from the central directory, a sample read in full.
    for (i, (name, content)) in expected.iter().enumerate() {
        let check_data = i % 4099 == salt % 4099 || i + 1 == count;
        let mut file = archive
            .by_index(i)
            .map_err(|e| TestCaseError::fail(format!("entry {i}: {e}")))?;
        let read_name = file
            .name()
            .map_err(|e| TestCaseError::fail(format!("entry {i}: name: {e}")))?;
        prop_assert_eq!(read_name.as_ref(), name.as_str());
        prop_assert_eq!(file.size(), content.len() as u64);
        if check_data {
            let mut read = Vec::new();
            file.read_to_end(&mut read)
                .map_err(|e| TestCaseError::fail(format!("entry {i}: {e}")))?;
            prop_assert_eq!(&read, content);
        }
    }
    Ok(())
}

#[test]
fn when_the_entry_count_crosses_65535_then_zip64_end_records_keep_every_entry_readable() {
    // Each case writes and reads all five counts around the 16-bit limit (about 330,000
    // entries), so this target runs a few cases, not a million: see the README.
    let counts = [65_533usize, 65_534, 65_535, 65_536, 65_537];
    support::run(
        "zip_entry_count_boundary",
        support::cases(1, 20),
        0usize..1_000_000,
        |salt| {
            for count in counts {
                count_boundary(count, salt)?;
            }
            support::tally("counts_65533_to_65537");
            Ok(())
        },
    );
}

/// 1 MiB of zeros: the data of the 4 GiB entries, recognised by address in [`SparseSink`].
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

/// A sink keeping only what is not a [`ZEROS`] chunk (headers, descriptors, small entries),
/// so a 4 GiB archive costs its headers in memory.
#[derive(Default)]
struct SparseSink {
    len: u64,
    literal: BTreeMap<u64, Vec<u8>>,
}

impl Write for SparseSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !std::ptr::eq(buf.as_ptr(), ZEROS.as_ptr()) {
            self.literal.insert(self.len, buf.to_vec());
        }
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads a [`SparseSink`] back: its literal pieces, zeros in between.
struct SparseReader<'a> {
    sink: &'a SparseSink,
    pos: u64,
}

impl Read for SparseReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.sink.len || buf.is_empty() {
            return Ok(0);
        }
        let piece = self.sink.literal.range(..=self.pos).next_back();
        let n = match piece {
            Some((start, bytes)) if self.pos < start + bytes.len() as u64 => {
                let from = (self.pos - start) as usize;
                let n = buf.len().min(bytes.len() - from);
                buf[..n].copy_from_slice(&bytes[from..from + n]);
                n
            }
            _ => {
                let next = self
                    .sink
                    .literal
                    .range(self.pos..)
                    .next()
                    .map_or(self.sink.len, |(s, _)| *s);
                let n = buf.len().min((next - self.pos) as usize);
                buf[..n].fill(0);
                n
            }
        };
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SparseReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.sink.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos =
            pos.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before 0"))?;
        Ok(self.pos)
    }
}

/// One 4 GiB scenario: `size` zero bytes declared by `hint`, then a small entry whose offset
/// lies beyond 4 GiB. Returns the writer's refusal, if it refused.
fn size_scenario(
    size: u64,
    hint: Option<u64>,
    read_big: bool,
) -> Result<Option<String>, TestCaseError> {
    let mut zip = ZipStreamWriter::new(SparseSink::default());
    zip.start_entry("big/zeros.bin", hint, when())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut left = size;
    while left > 0 {
        let n = left.min(ZEROS.len() as u64) as usize;
        if let Err(e) = zip.write_data(&ZEROS[..n]) {
            prop_assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            return Ok(Some(e.to_string()));
        }
        left -= n as u64;
    }
    let summary = zip
        .finish_entry()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(summary.size, size);
    let after = b"after the big one".to_vec();
    zip.start_entry("after.txt", Some(after.len() as u64), when())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    zip.write_data(&after)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    zip.finish_entry()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let total = zip
        .finish()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    if hint == Some(size) {
        prop_assert_eq!(
            predicted_size([("big/zeros.bin", size), ("after.txt", after.len() as u64)]),
            total
        );
    }
    let sink = zip.into_inner();
    prop_assert_eq!(sink.len, total);
    let reader = SparseReader {
        sink: &sink,
        pos: 0,
    };
    let mut archive = zip::ZipArchive::new(reader)
        .map_err(|e| TestCaseError::fail(format!("the zip crate cannot open it: {e}")))?;
    prop_assert_eq!(archive.len(), 2);
    {
        let mut big = archive
            .by_index(0)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(big.size(), size);
        if read_big {
            // The reader's CRC-32 check over the 4 GiB of zeros.
            let copied = io::copy(&mut big, &mut io::sink())
                .map_err(|e| TestCaseError::fail(format!("big entry: {e}")))?;
            prop_assert_eq!(copied, size);
        }
    }
    let mut small = archive
        .by_index(1)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut read = Vec::new();
    small
        .read_to_end(&mut read)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(read, after);
    Ok(None)
}

#[test]
fn when_an_entry_or_an_offset_crosses_4_gib_then_zip64_keeps_the_archive_readable() {
    // Deterministic scenarios (4 GiB each), not random cases: `make fuzz` runs all of them,
    // the short pass of `cargo test` the first one only (the shared crate's unit tests stream
    // 4 GiB once more).
    let scenarios: [(u64, Option<u64>, bool); 5] = [
        (U32_LIMIT, Some(U32_LIMIT), true), // the marker value itself: ZIP64 local header
        (U32_LIMIT - 1, Some(U32_LIMIT - 1), true), // the largest compact entry
        (U32_LIMIT + 1, None, true),        // unknown size
        (U32_LIMIT + 1, Some(1), false),    // declared small, grows past 4 GiB: refused
        (U32_LIMIT, Some(U32_LIMIT - 1), false), // one byte too many for a compact header
    ];
    let n = support::cases(1, scenarios.len() as u32) as usize;
    let release = !cfg!(debug_assertions);
    support::run_fixed("zip_size_boundary", n, |i| {
        let (size, hint, read_big) = scenarios[i];
        let refusal = size_scenario(size, hint, read_big && release)?;
        let compact = hint.is_some_and(|h| h < U32_LIMIT);
        if compact && size >= U32_LIMIT {
            let msg = refusal.unwrap_or_default();
            prop_assert!(msg.contains("grew beyond"), "scenario {}: {:?}", i, msg);
            support::tally("refused_growth");
        } else {
            prop_assert!(refusal.is_none(), "scenario {}: {:?}", i, refusal);
            support::tally("read_back");
        }
        Ok(())
    });
}
