//! A streaming ZIP writer: entries are written front to back, chunk by chunk, into any
//! [`std::io::Write`] sink, never seeking and never holding an entry's data.
//!
//! Format choices (PKWARE APPNOTE 6.3):
//! - **Stored, not deflated.** Egress data is mostly already compressed (images, parquet,
//!   archives) and the archive is an internal hand-over to the datalake, not a download for a
//!   slow link; a Lambda vCPU deflates at a fraction of S3's throughput, while stored entries
//!   cost only a CRC-32. It also keeps every entry's bytes identical to the staged file.
//! - **Data descriptors** (flag bit 3): the CRC-32 is only known after the data went out, so
//!   it follows the data; the local header carries zeros, as the format requires.
//! - **ZIP64** wherever a field would overflow: an entry whose size may reach 4 GiB gets a
//!   ZIP64 extra field in its local header and an 8-byte data descriptor; central directory
//!   records carry ZIP64 sizes/offsets when they exceed 32 bits; more than 65534 entries or
//!   a central directory beyond 4 GiB adds the ZIP64 end records.
//! - Names are UTF-8 (flag bit 11); entries get Unix permissions `0644`.
//!
//! Memory: the writer keeps one small central-directory record per entry (the directory can
//! only be written at the end) and nothing of the data.

use std::collections::HashSet;
use std::io::{self, Write};

use time::OffsetDateTime;

const LOCAL_HEADER_SIG: u32 = 0x0403_4b50;
const DATA_DESCRIPTOR_SIG: u32 = 0x0807_4b50;
const CENTRAL_HEADER_SIG: u32 = 0x0201_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;

/// Flags: bit 3 (sizes and CRC in a data descriptor), bit 11 (UTF-8 names).
const FLAGS: u16 = 0x0808;
const METHOD_STORED: u16 = 0;
/// 2.0: data descriptors. 4.5: ZIP64.
const VERSION_DEFAULT: u16 = 20;
const VERSION_ZIP64: u16 = 45;
/// Made by: Unix (3), spec 4.5, so extractors honour the permission bits.
const VERSION_MADE_BY: u16 = (3 << 8) | VERSION_ZIP64;
/// Regular file, `rw-r--r--`.
const EXTERNAL_ATTRS: u32 = 0o100_644 << 16;
const ZIP64_EXTRA_ID: u16 = 0x0001;

/// A 32-bit field at or above this value must move to ZIP64 (the value itself is the marker).
const U32_LIMIT: u64 = 0xFFFF_FFFF;
/// A 16-bit entry count at or above this value must move to ZIP64.
const U16_LIMIT: u64 = 0xFFFF;

/// An MS-DOS timestamp, the only one every extractor reads. Local time by convention; we
/// write UTC and say so nowhere else, which is what most server-side writers do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DosDateTime {
    date: u16,
    time: u16,
}

impl DosDateTime {
    /// `at`, truncated to even seconds; clamped to the DOS range 1980-2107.
    pub fn from_datetime(at: OffsetDateTime) -> Self {
        let at = at.to_offset(time::UtcOffset::UTC);
        let year = at.year();
        if year < 1980 {
            return Self {
                date: (1 << 5) | 1,
                time: 0,
            };
        }
        if year > 2107 {
            return Self {
                date: (127 << 9) | (12 << 5) | 31,
                time: (23 << 11) | (59 << 5) | 29,
            };
        }
        let date =
            (((year - 1980) as u16) << 9) | ((u8::from(at.month()) as u16) << 5) | at.day() as u16;
        let time =
            ((at.hour() as u16) << 11) | ((at.minute() as u16) << 5) | (at.second() as u16 / 2);
        Self { date, time }
    }

    /// Date in the high 16 bits, time in the low: what a checkpoint stores, so that every
    /// invocation of a resumed archive writes the same timestamp.
    pub fn to_raw(self) -> u32 {
        (u32::from(self.date) << 16) | u32::from(self.time)
    }

    /// The inverse of [`to_raw`](Self::to_raw).
    pub fn from_raw(raw: u32) -> Self {
        Self {
            date: (raw >> 16) as u16,
            time: (raw & 0xFFFF) as u16,
        }
    }
}

/// What was written for one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntrySummary {
    /// Bytes of data.
    pub size: u64,
    /// CRC-32 of the data.
    pub crc32: u32,
}

/// Errors of the writer itself (misuse or format limits); sink errors are passed through.
fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.into())
}

struct CentralRecord {
    name: String,
    modified: DosDateTime,
    crc32: u32,
    size: u64,
    offset: u64,
    zip64_local: bool,
}

struct OpenEntry {
    record: CentralRecord,
    hasher: crc32fast::Hasher,
}

/// Writes a ZIP archive front to back into `W`.
///
/// Use: [`start_entry`](Self::start_entry), any number of
/// [`write_data`](Self::write_data), [`finish_entry`](Self::finish_entry); repeat; then
/// [`finish`](Self::finish). Between calls the sink can be drained (see
/// [`get_mut`](Self::get_mut)).
pub struct ZipStreamWriter<W: Write> {
    sink: W,
    offset: u64,
    records: Vec<CentralRecord>,
    names: HashSet<String>,
    open: Option<OpenEntry>,
    finished: bool,
    /// Bytes before this archive offset were written by an earlier run: they are counted but
    /// not passed to the sink (see [`resume`](ZipStreamWriter::resume)).
    skip_until: u64,
}

impl<W: Write> ZipStreamWriter<W> {
    /// A writer emitting into `sink`.
    pub fn new(sink: W) -> Self {
        Self {
            sink,
            offset: 0,
            records: Vec::new(),
            names: HashSet::new(),
            open: None,
            finished: false,
            skip_until: 0,
        }
    }

    /// A writer that continues an archive an earlier run wrote up to `skip_until`: `done`
    /// are the entries it completed (name, size, CRC-32), in order, all stamped `modified`.
    /// The writer starts right after them; every byte it emits before `skip_until` (the rest
    /// of a header, an entry's data skipped with [`skip_data`](Self::skip_data)) is counted
    /// but not written, so the sink receives exactly the archive from `skip_until` on.
    pub fn resume<'a>(
        sink: W,
        done: impl IntoIterator<Item = (&'a str, u64, u32)>,
        modified: DosDateTime,
        skip_until: u64,
    ) -> io::Result<Self> {
        let mut writer = Self::new(sink);
        for (name, size, crc32) in done {
            if !writer.names.insert(name.to_string()) {
                return Err(invalid(format!("duplicate zip entry {name:?}")));
            }
            let zip64_local = size >= U32_LIMIT;
            writer.records.push(CentralRecord {
                name: name.to_string(),
                modified,
                crc32,
                size,
                offset: writer.offset,
                zip64_local,
            });
            writer.offset += entry_span(name, size);
        }
        if writer.offset > skip_until {
            return Err(invalid(format!(
                "the completed entries end at {} but the archive was written only to {skip_until}",
                writer.offset
            )));
        }
        writer.skip_until = skip_until;
        Ok(writer)
    }

    /// Counts the first `len` bytes of the open entry as written by an earlier run, whose
    /// CRC-32 over them was `crc32`; they must lie before the resume point.
    pub fn skip_data(&mut self, len: u64, crc32: u32) -> io::Result<()> {
        self.check_writable()?;
        if len == 0 {
            return Ok(());
        }
        // `len` comes from a checkpoint: past u64 it must be refused, not wrap.
        let end = self.offset.saturating_add(len);
        if end > self.skip_until {
            return Err(invalid(format!(
                "cannot skip to {end}: the archive was written only to {}",
                self.skip_until
            )));
        }
        let entry = self
            .open
            .as_mut()
            .ok_or_else(|| invalid("no zip entry is open"))?;
        if entry.record.size != 0 {
            return Err(invalid("data is skipped only at the start of an entry"));
        }
        entry.hasher = crc32fast::Hasher::new_with_initial_len(crc32, len);
        entry.record.size = len;
        self.offset = end;
        Ok(())
    }

    /// The open entry's data so far: its length and CRC-32.
    pub fn open_entry_crc(&self) -> Option<(u64, u32)> {
        self.open
            .as_ref()
            .map(|e| (e.record.size, e.hasher.clone().finalize()))
    }

    /// The sink, e.g. to take completed parts out of it between writes.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.sink
    }

    /// The sink, once done.
    pub fn into_inner(self) -> W {
        self.sink
    }

    /// Bytes emitted so far.
    pub fn bytes_written(&self) -> u64 {
        self.offset
    }

    /// Entries started so far.
    pub fn entry_count(&self) -> usize {
        self.records.len() + usize::from(self.open.is_some())
    }

    /// Starts an entry called `name` (a relative path with `/` separators).
    ///
    /// `size_hint` is the expected size: when it is known to stay below 4 GiB the entry uses
    /// compact 32-bit headers; with `None` (unknown) or a large hint it uses ZIP64. An entry
    /// declared small that then grows to 4 GiB is refused at that point.
    pub fn start_entry(
        &mut self,
        name: &str,
        size_hint: Option<u64>,
        modified: DosDateTime,
    ) -> io::Result<()> {
        self.check_writable()?;
        if self.open.is_some() {
            return Err(invalid("the previous zip entry is still open"));
        }
        if name.is_empty() || name.len() > usize::from(u16::MAX) {
            return Err(invalid(format!(
                "zip entry name must be 1-65535 bytes, got {} bytes",
                name.len()
            )));
        }
        if !self.names.insert(name.to_string()) {
            return Err(invalid(format!("duplicate zip entry {name:?}")));
        }
        let zip64_local = size_hint.is_none_or(|s| s >= U32_LIMIT);
        let mut header = Vec::with_capacity(30 + name.len() + 20);
        put_u32(&mut header, LOCAL_HEADER_SIG);
        put_u16(
            &mut header,
            if zip64_local {
                VERSION_ZIP64
            } else {
                VERSION_DEFAULT
            },
        );
        put_u16(&mut header, FLAGS);
        put_u16(&mut header, METHOD_STORED);
        put_u16(&mut header, modified.time);
        put_u16(&mut header, modified.date);
        put_u32(&mut header, 0); // CRC-32: in the data descriptor
        let size_field = if zip64_local { U32_LIMIT as u32 } else { 0 };
        put_u32(&mut header, size_field); // compressed size
        put_u32(&mut header, size_field); // uncompressed size
        put_u16(&mut header, name.len() as u16);
        put_u16(&mut header, if zip64_local { 20 } else { 0 });
        header.extend_from_slice(name.as_bytes());
        if zip64_local {
            // Sizes are unknown here; the data descriptor has them (8 bytes each because
            // this extra field is present).
            put_u16(&mut header, ZIP64_EXTRA_ID);
            put_u16(&mut header, 16);
            put_u64(&mut header, 0);
            put_u64(&mut header, 0);
        }
        let offset = self.offset;
        self.emit(&header)?;
        self.open = Some(OpenEntry {
            record: CentralRecord {
                name: name.to_string(),
                modified,
                crc32: 0,
                size: 0,
                offset,
                zip64_local,
            },
            hasher: crc32fast::Hasher::new(),
        });
        Ok(())
    }

    /// Appends `data` to the open entry.
    pub fn write_data(&mut self, data: &[u8]) -> io::Result<()> {
        self.check_writable()?;
        let entry = self
            .open
            .as_mut()
            .ok_or_else(|| invalid("no zip entry is open"))?;
        let new_size = entry.record.size + data.len() as u64;
        if !entry.record.zip64_local && new_size >= U32_LIMIT {
            return Err(invalid(format!(
                "zip entry {:?} was declared smaller than 4 GiB but grew beyond it",
                entry.record.name
            )));
        }
        entry.hasher.update(data);
        entry.record.size = new_size;
        self.emit(data)
    }

    /// Closes the open entry with its data descriptor.
    pub fn finish_entry(&mut self) -> io::Result<EntrySummary> {
        self.check_writable()?;
        let OpenEntry { mut record, hasher } = self
            .open
            .take()
            .ok_or_else(|| invalid("no zip entry is open"))?;
        record.crc32 = hasher.finalize();
        let mut descriptor = Vec::with_capacity(24);
        put_u32(&mut descriptor, DATA_DESCRIPTOR_SIG);
        put_u32(&mut descriptor, record.crc32);
        if record.zip64_local {
            put_u64(&mut descriptor, record.size); // compressed = uncompressed (stored)
            put_u64(&mut descriptor, record.size);
        } else {
            put_u32(&mut descriptor, record.size as u32);
            put_u32(&mut descriptor, record.size as u32);
        }
        self.emit(&descriptor)?;
        let summary = EntrySummary {
            size: record.size,
            crc32: record.crc32,
        };
        self.records.push(record);
        Ok(summary)
    }

    /// Writes the central directory and the end records; returns the archive's total size.
    /// The writer accepts nothing afterwards.
    pub fn finish(&mut self) -> io::Result<u64> {
        self.check_writable()?;
        if self.open.is_some() {
            return Err(invalid("a zip entry is still open"));
        }
        let cd_offset = self.offset;
        let records = std::mem::take(&mut self.records);
        for record in &records {
            let header = central_header(record);
            self.emit(&header)?;
        }
        let cd_size = self.offset - cd_offset;
        let count = records.len() as u64;
        let needs_zip64 = count >= U16_LIMIT || cd_size >= U32_LIMIT || cd_offset >= U32_LIMIT;
        let mut tail = Vec::with_capacity(56 + 20 + 22);
        if needs_zip64 {
            let eocd64_offset = self.offset;
            put_u32(&mut tail, ZIP64_EOCD_SIG);
            put_u64(&mut tail, 44); // size of the rest of this record
            put_u16(&mut tail, VERSION_MADE_BY);
            put_u16(&mut tail, VERSION_ZIP64);
            put_u32(&mut tail, 0); // this disk
            put_u32(&mut tail, 0); // disk with the central directory
            put_u64(&mut tail, count); // entries on this disk
            put_u64(&mut tail, count); // entries in total
            put_u64(&mut tail, cd_size);
            put_u64(&mut tail, cd_offset);
            put_u32(&mut tail, ZIP64_LOCATOR_SIG);
            put_u32(&mut tail, 0); // disk with the ZIP64 end record
            put_u64(&mut tail, eocd64_offset);
            put_u32(&mut tail, 1); // total disks
        }
        put_u32(&mut tail, EOCD_SIG);
        put_u16(&mut tail, 0);
        put_u16(&mut tail, 0);
        let count16 = count.min(U16_LIMIT) as u16;
        put_u16(&mut tail, count16);
        put_u16(&mut tail, count16);
        put_u32(&mut tail, cd_size.min(U32_LIMIT) as u32);
        put_u32(&mut tail, cd_offset.min(U32_LIMIT) as u32);
        put_u16(&mut tail, 0); // comment length
        self.emit(&tail)?;
        self.sink.flush()?;
        self.finished = true;
        Ok(self.offset)
    }

    fn check_writable(&self) -> io::Result<()> {
        if self.finished {
            Err(invalid("the zip archive is already finished"))
        } else {
            Ok(())
        }
    }

    fn emit(&mut self, bytes: &[u8]) -> io::Result<()> {
        let end = self.offset + bytes.len() as u64;
        if end > self.skip_until {
            // Only the part at or after the resume point is new.
            let from = self.skip_until.saturating_sub(self.offset) as usize;
            self.sink.write_all(&bytes[from..])?;
        }
        self.offset = end;
        Ok(())
    }
}

/// The central directory record of one entry, with a ZIP64 extra field holding exactly the
/// values that overflow their 32-bit field, in the order the format prescribes.
fn central_header(record: &CentralRecord) -> Vec<u8> {
    let size_overflows = record.size >= U32_LIMIT;
    let offset_overflows = record.offset >= U32_LIMIT;
    let mut extra = Vec::new();
    if size_overflows {
        put_u64(&mut extra, record.size); // uncompressed
        put_u64(&mut extra, record.size); // compressed
    }
    if offset_overflows {
        put_u64(&mut extra, record.offset);
    }
    let zip64 = !extra.is_empty();
    let version_needed = if zip64 || record.zip64_local {
        VERSION_ZIP64
    } else {
        VERSION_DEFAULT
    };
    let mut header = Vec::with_capacity(46 + record.name.len() + 4 + extra.len());
    put_u32(&mut header, CENTRAL_HEADER_SIG);
    put_u16(&mut header, VERSION_MADE_BY);
    put_u16(&mut header, version_needed);
    put_u16(&mut header, FLAGS);
    put_u16(&mut header, METHOD_STORED);
    put_u16(&mut header, record.modified.time);
    put_u16(&mut header, record.modified.date);
    put_u32(&mut header, record.crc32);
    let size32 = record.size.min(U32_LIMIT) as u32;
    put_u32(&mut header, size32);
    put_u32(&mut header, size32);
    put_u16(&mut header, record.name.len() as u16);
    put_u16(&mut header, if zip64 { extra.len() as u16 + 4 } else { 0 });
    put_u16(&mut header, 0); // comment length
    put_u16(&mut header, 0); // disk number start
    put_u16(&mut header, 0); // internal attributes
    put_u32(&mut header, EXTERNAL_ATTRS);
    put_u32(&mut header, record.offset.min(U32_LIMIT) as u32);
    header.extend_from_slice(record.name.as_bytes());
    if zip64 {
        put_u16(&mut header, ZIP64_EXTRA_ID);
        put_u16(&mut header, extra.len() as u16);
        header.extend_from_slice(&extra);
    }
    header
}

/// Bytes of an entry's local header: fixed fields, the name and, for entries that may reach
/// 4 GiB, the ZIP64 extra field.
pub fn header_len(name: &str, size: u64) -> u64 {
    30 + name.len() as u64 + if size >= U32_LIMIT { 20 } else { 0 }
}

/// Bytes an entry of `size` bytes started with its size as the hint takes in the archive:
/// local header, data and data descriptor.
pub fn entry_span(name: &str, size: u64) -> u64 {
    header_len(name, size) + size + if size >= U32_LIMIT { 24 } else { 16 }
}

/// The exact size of the archive [`ZipStreamWriter`] produces for `entries` (name, size),
/// each started with its size as the hint. Stored entries make the size a function of names
/// and sizes only, so the archive step can size its parts before writing and recognise an
/// archive it already wrote.
pub fn predicted_size<'a>(entries: impl IntoIterator<Item = (&'a str, u64)>) -> u64 {
    let mut offset = 0u64;
    let mut cd_size = 0u64;
    let mut count = 0u64;
    for (name, size) in entries {
        let name_len = name.len() as u64;
        let zip64_local = size >= U32_LIMIT;
        let local = 30 + name_len + if zip64_local { 20 } else { 0 };
        let descriptor = if zip64_local { 24 } else { 16 };
        let mut extra = 0;
        if size >= U32_LIMIT {
            extra += 16;
        }
        if offset >= U32_LIMIT {
            extra += 8;
        }
        if extra > 0 {
            extra += 4;
        }
        cd_size += 46 + name_len + extra;
        offset += local + size + descriptor;
        count += 1;
    }
    let needs_zip64 = count >= U16_LIMIT || cd_size >= U32_LIMIT || offset >= U32_LIMIT;
    offset + cd_size + if needs_zip64 { 56 + 20 } else { 0 } + 22
}

fn put_u16(buf: &mut Vec<u8>, v: u16) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Read};
    use time::macros::datetime;

    const WHEN: OffsetDateTime = datetime!(2024-05-01 12:34:56 UTC);

    fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut zip = ZipStreamWriter::new(Vec::new());
        for (name, data) in entries {
            zip.start_entry(
                name,
                Some(data.len() as u64),
                DosDateTime::from_datetime(WHEN),
            )
            .unwrap();
            // Several small writes, as a stream delivers them.
            for chunk in data.chunks(7) {
                zip.write_data(chunk).unwrap();
            }
            zip.finish_entry().unwrap();
        }
        let total = zip.finish().unwrap();
        let bytes = zip.into_inner();
        assert_eq!(total, bytes.len() as u64);
        assert_eq!(
            predicted_size(entries.iter().map(|(n, d)| (*n, d.len() as u64))),
            total
        );
        bytes
    }

    fn read_back(bytes: Vec<u8>) -> Vec<(String, Vec<u8>)> {
        let mut reader = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        (0..reader.len())
            .map(|i| {
                let mut file = reader.by_index(i).unwrap();
                let mut data = Vec::new();
                file.read_to_end(&mut data).unwrap();
                (file.name().unwrap().to_string(), data)
            })
            .collect()
    }

    #[test]
    fn when_entries_are_streamed_then_an_independent_reader_gets_paths_and_bytes_back() {
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let entries: Vec<(&str, &[u8])> = vec![
            ("results/a/data.csv", b"id,value\n1,2\n"),
            ("results/b/data.csv", b"id,value\n3,4\n"),
            ("empty.txt", b""),
            ("deep/er/still/ünïcødé name.bin", &big),
            ("egress_manifest_req-1.json", b"{\"files\":[]}"),
        ];
        let back = read_back(archive(&entries));
        assert_eq!(back.len(), entries.len());
        for ((name, data), (got_name, got_data)) in entries.iter().zip(&back) {
            assert_eq!(name, got_name);
            assert_eq!(*data, got_data.as_slice(), "{name}");
        }
    }

    #[test]
    fn when_resumed_at_any_offset_then_the_rest_is_exactly_what_one_run_writes_after_it() {
        let big: Vec<u8> = (0..3000u32).map(|i| (i % 241) as u8).collect();
        let entries: Vec<(&str, &[u8])> =
            vec![("a.txt", b"hello"), ("dir/big.bin", &big), ("z", b"")];
        let full = archive(&entries);
        let when = DosDateTime::from_datetime(WHEN);
        let spans: Vec<u64> = entries
            .iter()
            .map(|(n, d)| entry_span(n, d.len() as u64))
            .collect();
        for cut in (0..full.len() as u64)
            .step_by(37)
            .chain([full.len() as u64 - 1])
        {
            // The entry whose span holds the cut, and how much of its data went out before it.
            let mut start = 0;
            let mut index = entries.len();
            for (i, span) in spans.iter().enumerate() {
                if cut < start + span {
                    index = i;
                    break;
                }
                start += span;
            }
            let done = entries[..index]
                .iter()
                .map(|(n, d)| (*n, d.len() as u64, crc32fast::hash(d)));
            let mut zip = ZipStreamWriter::resume(Vec::new(), done, when, cut).unwrap();
            for (i, (name, data)) in entries.iter().enumerate().skip(index) {
                zip.start_entry(name, Some(data.len() as u64), when)
                    .unwrap();
                let mut from = 0;
                if i == index {
                    let header = header_len(name, data.len() as u64);
                    from = cut.saturating_sub(start + header).min(data.len() as u64) as usize;
                    zip.skip_data(from as u64, crc32fast::hash(&data[..from]))
                        .unwrap();
                }
                zip.write_data(&data[from..]).unwrap();
                zip.finish_entry().unwrap();
            }
            zip.finish().unwrap();
            assert_eq!(zip.into_inner(), &full[cut as usize..], "resumed at {cut}");
        }
    }

    #[test]
    fn when_skipping_past_the_resume_point_then_it_is_refused() {
        let when = DosDateTime::from_datetime(WHEN);
        let mut zip = ZipStreamWriter::resume(Vec::new(), [], when, 40).unwrap();
        zip.start_entry("a", Some(100), when).unwrap();
        assert!(zip.skip_data(50, 0).is_err());
        assert_eq!(DosDateTime::from_raw(when.to_raw()), when);
    }

    #[test]
    fn when_skipping_more_than_u64_allows_then_it_is_refused_not_an_overflow() {
        // Found by `make fuzz` (archive_checkpoint): a checkpoint's `data_done` of u64::MAX
        // overflowed `offset + len` (and wrapped in release, accepting the skip).
        let when = DosDateTime::from_datetime(WHEN);
        let mut zip = ZipStreamWriter::resume(Vec::new(), [], when, 40).unwrap();
        zip.start_entry("a", Some(100), when).unwrap();
        assert!(zip.skip_data(u64::MAX, 0).is_err());
    }

    #[test]
    fn when_read_back_then_the_timestamp_and_unix_mode_survive() {
        let bytes = archive(&[("a.txt", b"x")]);
        let mut reader = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let file = reader.by_index(0).unwrap();
        assert_eq!(file.unix_mode(), Some(0o100_644));
        let m = file.last_modified().unwrap();
        assert_eq!((m.year(), m.month(), m.day()), (2024, 5, 1));
        assert_eq!((m.hour(), m.minute(), m.second()), (12, 34, 56));
    }

    #[test]
    fn when_more_than_65535_entries_are_written_then_zip64_end_records_make_them_readable() {
        let count = 70_000usize;
        let mut zip = ZipStreamWriter::new(Vec::new());
        let when = DosDateTime::from_datetime(WHEN);
        for i in 0..count {
            zip.start_entry(&format!("d{}/f{i}", i % 10), Some(4), when)
                .unwrap();
            zip.write_data(&(i as u32).to_le_bytes()).unwrap();
            zip.finish_entry().unwrap();
        }
        let total = zip.finish().unwrap();
        let names: Vec<String> = (0..count).map(|i| format!("d{}/f{i}", i % 10)).collect();
        assert_eq!(predicted_size(names.iter().map(|n| (n.as_str(), 4))), total);
        let bytes = zip.into_inner();
        // The classic end record saturates, the ZIP64 one has the real count.
        let eocd = &bytes[bytes.len() - 22..];
        assert_eq!(u32::from_le_bytes(eocd[0..4].try_into().unwrap()), EOCD_SIG);
        assert_eq!(u16::from_le_bytes(eocd[10..12].try_into().unwrap()), 0xFFFF);
        let mut reader = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        assert_eq!(reader.len(), count);
        for i in [0usize, 65_535, 65_536, count - 1] {
            let mut file = reader.by_index(i).unwrap();
            assert_eq!(file.name().unwrap(), format!("d{}/f{i}", i % 10));
            let mut data = Vec::new();
            file.read_to_end(&mut data).unwrap();
            assert_eq!(data, (i as u32).to_le_bytes());
        }
    }

    #[test]
    fn when_the_size_is_unknown_then_the_entry_uses_zip64_headers_and_stays_readable() {
        let mut zip = ZipStreamWriter::new(Vec::new());
        zip.start_entry("unknown.bin", None, DosDateTime::from_datetime(WHEN))
            .unwrap();
        zip.write_data(b"hello zip64").unwrap();
        let summary = zip.finish_entry().unwrap();
        zip.finish().unwrap();
        let bytes = zip.into_inner();
        assert_eq!(summary.crc32, crc32fast::hash(b"hello zip64"));
        // Local header: version 4.5, 0xFFFFFFFF sizes, a 20-byte ZIP64 extra.
        assert_eq!(u16::from_le_bytes([bytes[4], bytes[5]]), VERSION_ZIP64);
        assert_eq!(&bytes[18..26], &[0xFF; 8]);
        assert_eq!(u16::from_le_bytes([bytes[28], bytes[29]]), 20);
        // Data descriptor after the data: signature, CRC, two 8-byte sizes.
        let data_end = 30 + "unknown.bin".len() + 20 + 11;
        let dd = &bytes[data_end..data_end + 24];
        assert_eq!(
            u32::from_le_bytes(dd[0..4].try_into().unwrap()),
            DATA_DESCRIPTOR_SIG
        );
        assert_eq!(
            u32::from_le_bytes(dd[4..8].try_into().unwrap()),
            summary.crc32
        );
        assert_eq!(u64::from_le_bytes(dd[8..16].try_into().unwrap()), 11);
        assert_eq!(u64::from_le_bytes(dd[16..24].try_into().unwrap()), 11);
        assert_eq!(
            read_back(bytes),
            vec![("unknown.bin".to_string(), b"hello zip64".to_vec())]
        );
    }

    /// Keeps the byte count and only the last bytes, so gigabytes can stream through a test.
    #[derive(Default)]
    struct TailSink {
        total: u64,
        tail: Vec<u8>,
    }

    const TAIL: usize = 64 * 1024;

    impl Write for TailSink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.total += buf.len() as u64;
            if buf.len() >= TAIL {
                self.tail.clear();
                self.tail.extend_from_slice(&buf[buf.len() - TAIL..]);
            } else {
                self.tail.extend_from_slice(buf);
                if self.tail.len() > 2 * TAIL {
                    self.tail.drain(..self.tail.len() - TAIL);
                }
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
    }
    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn when_an_entry_streams_past_4_gib_then_every_record_after_it_uses_zip64() {
        const MIB: usize = 1024 * 1024;
        let chunk: Vec<u8> = (0..MIB).map(|i| (i % 253) as u8).collect();
        let chunks = 4097u64; // 4 GiB + 1 MiB, generated on the fly, never held
        let size = chunks * MIB as u64;
        let when = DosDateTime::from_datetime(WHEN);
        let mut zip = ZipStreamWriter::new(TailSink::default());
        zip.start_entry("huge.bin", Some(size), when).unwrap();
        let mut crc = crc32fast::Hasher::new();
        for _ in 0..chunks {
            zip.write_data(&chunk).unwrap();
            crc.update(&chunk);
        }
        let summary = zip.finish_entry().unwrap();
        assert_eq!(
            summary,
            EntrySummary {
                size,
                crc32: crc.finalize()
            }
        );
        zip.start_entry("after.txt", Some(5), when).unwrap();
        zip.write_data(b"after").unwrap();
        zip.finish_entry().unwrap();
        let total = zip.finish().unwrap();
        assert_eq!(
            total,
            predicted_size([("huge.bin", size), ("after.txt", 5)])
        );

        let sink = zip.into_inner();
        assert_eq!(sink.total, total);
        let tail = &sink.tail;
        let base = sink.total - tail.len() as u64;
        let at = |offset: u64| (offset - base) as usize;

        // Entry 1: ZIP64 local header (size >= 4 GiB), so an 8-byte-size data descriptor.
        let huge_local = 30 + 8 + 20;
        let dd = at(huge_local + size);
        assert_eq!(u32_at(tail, dd), DATA_DESCRIPTOR_SIG);
        assert_eq!(u32_at(tail, dd + 4), summary.crc32);
        assert_eq!(u64_at(tail, dd + 8), size);
        assert_eq!(u64_at(tail, dd + 16), size);
        let after_offset = huge_local + size + 24;

        // End records: the classic one points at ZIP64 ones.
        let eocd = tail.len() - 22;
        assert_eq!(u32_at(tail, eocd), EOCD_SIG);
        assert_eq!(
            u32_at(tail, eocd + 16),
            0xFFFF_FFFF,
            "central directory offset overflows"
        );
        let locator = eocd - 20;
        assert_eq!(u32_at(tail, locator), ZIP64_LOCATOR_SIG);
        let eocd64 = at(u64_at(tail, locator + 8));
        assert_eq!(u32_at(tail, eocd64), ZIP64_EOCD_SIG);
        assert_eq!(u64_at(tail, eocd64 + 32), 2, "entries");
        let cd_offset = u64_at(tail, eocd64 + 48);
        assert_eq!(cd_offset, after_offset + 30 + 9 + 5 + 16);

        // Central record 1: sizes in the ZIP64 extra field, offset 0 in place.
        let r1 = at(cd_offset);
        assert_eq!(u32_at(tail, r1), CENTRAL_HEADER_SIG);
        assert_eq!(u32_at(tail, r1 + 20), 0xFFFF_FFFF);
        assert_eq!(u32_at(tail, r1 + 24), 0xFFFF_FFFF);
        assert_eq!(u32_at(tail, r1 + 42), 0);
        assert_eq!(u16_at(tail, r1 + 30), 4 + 16);
        assert_eq!(u64_at(tail, r1 + 46 + 8 + 4), size);
        assert_eq!(u64_at(tail, r1 + 46 + 8 + 12), size);
        // Central record 2: small sizes in place, its offset beyond 4 GiB in the extra field.
        let r2 = r1 + 46 + 8 + 20;
        assert_eq!(u32_at(tail, r2), CENTRAL_HEADER_SIG);
        assert_eq!(u32_at(tail, r2 + 24), 5);
        assert_eq!(u32_at(tail, r2 + 42), 0xFFFF_FFFF);
        assert_eq!(u16_at(tail, r2 + 30), 4 + 8);
        assert_eq!(u64_at(tail, r2 + 46 + 9 + 4), after_offset);
    }

    #[test]
    fn when_sizes_and_offsets_overflow_32_bits_then_the_central_record_carries_them_in_zip64() {
        let record = CentralRecord {
            name: "big.bin".into(),
            modified: DosDateTime::from_datetime(WHEN),
            crc32: 0xDEAD_BEEF,
            size: 5 * 1024 * 1024 * 1024,
            offset: 6 * 1024 * 1024 * 1024,
            zip64_local: true,
        };
        let h = central_header(&record);
        assert_eq!(u16::from_le_bytes([h[6], h[7]]), VERSION_ZIP64);
        assert_eq!(&h[20..28], &[0xFF; 8], "both 32-bit sizes are markers");
        assert_eq!(&h[42..46], &[0xFF; 4], "the 32-bit offset is a marker");
        let extra_len = u16::from_le_bytes([h[30], h[31]]) as usize;
        assert_eq!(extra_len, 4 + 24);
        let extra = &h[46 + 7..];
        assert_eq!(u16::from_le_bytes([extra[0], extra[1]]), ZIP64_EXTRA_ID);
        assert_eq!(u16::from_le_bytes([extra[2], extra[3]]), 24);
        assert_eq!(
            u64::from_le_bytes(extra[4..12].try_into().unwrap()),
            record.size
        );
        assert_eq!(
            u64::from_le_bytes(extra[12..20].try_into().unwrap()),
            record.size
        );
        assert_eq!(
            u64::from_le_bytes(extra[20..28].try_into().unwrap()),
            record.offset
        );

        // Only the offset overflows: the extra field holds only the offset.
        let small = CentralRecord {
            size: 10,
            zip64_local: false,
            ..record
        };
        let h = central_header(&small);
        assert_eq!(u32::from_le_bytes(h[24..28].try_into().unwrap()), 10);
        assert_eq!(u16::from_le_bytes([h[30], h[31]]), 4 + 8);
        assert_eq!(
            u64::from_le_bytes(h[46 + 7 + 4..].try_into().unwrap()),
            small.offset
        );
    }

    #[test]
    fn when_an_entry_declared_small_reaches_4_gib_then_it_is_refused() {
        let mut zip = ZipStreamWriter::new(io::sink());
        zip.start_entry("a", Some(10), DosDateTime::from_datetime(WHEN))
            .unwrap();
        // Pretend most of it went out already, without writing 4 GiB in a unit test.
        if let Some(open) = zip.open.as_mut() {
            open.record.size = U32_LIMIT - 1;
        }
        let err = zip.write_data(b"x").unwrap_err();
        assert!(err.to_string().contains("grew beyond"), "{err}");
    }

    #[test]
    fn when_misused_then_the_writer_refuses_instead_of_writing_a_corrupt_archive() {
        let when = DosDateTime::from_datetime(WHEN);
        let mut zip = ZipStreamWriter::new(Vec::new());
        assert!(zip.write_data(b"x").is_err(), "data before an entry");
        zip.start_entry("a", Some(1), when).unwrap();
        assert!(zip.start_entry("b", Some(1), when).is_err(), "nested entry");
        assert!(zip.finish().is_err(), "finish with an open entry");
        zip.finish_entry().unwrap();
        let dup = zip.start_entry("a", Some(1), when).unwrap_err();
        assert!(dup.to_string().contains("duplicate"));
        assert!(zip.start_entry("", Some(1), when).is_err(), "empty name");
        zip.finish().unwrap();
        assert!(zip.start_entry("c", Some(1), when).is_err(), "after finish");
    }

    #[test]
    fn when_converting_timestamps_then_the_dos_range_is_respected() {
        let d = DosDateTime::from_datetime(datetime!(1970-01-01 00:00:00 UTC));
        assert_eq!((d.date, d.time), ((1 << 5) | 1, 0));
        let d = DosDateTime::from_datetime(datetime!(2024-02-29 23:59:59 UTC));
        assert_eq!(d.date, (44 << 9) | (2 << 5) | 29);
        assert_eq!(d.time, (23 << 11) | (59 << 5) | 29);
    }
}
