//! Zip archives inside a submission, read as a stream: each entry is listed from its local
//! header and its content is checked by a nested [`FileChecker`], inflated on the fly.
//!
//! A stream never sees the central directory before the entries, so the local headers are
//! followed in order; an entry whose size is only in a trailing data descriptor is read to the
//! end of its deflate stream. Limits on depth, entry count, expanded bytes and expansion ratio
//! stop a zip bomb before it costs more than the limits (`block`). Encrypted entries are
//! `block` by default: nothing in them can be checked.

use flate2::{Decompress, FlushDecompress, Status};

use super::file::FileChecker;
use super::policy::Policy;
use super::report::{FileReport, Findings};
use super::rules;

const LOCAL_HEADER: u32 = 0x0403_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_CENTRAL: u32 = 0x0605_4b50;
const DESCRIPTOR: u32 = 0x0807_4b50;
/// Inflated bytes handed to the entry's checker at a time.
const OUT_CHUNK: usize = 64 * 1024;
/// The ratio rule applies only once this much is expanded (tiny files compress oddly).
const RATIO_FLOOR: u64 = 1024 * 1024;

#[derive(Debug)]
enum State {
    /// Reading a local header (30 bytes, then the name and extra field).
    Header,
    /// Inside an entry's data.
    Data,
    /// Skipping a data descriptor.
    Descriptor,
    /// Past the entries (central directory), or stopped by a fault or a limit.
    Done,
}

#[derive(Debug)]
struct Entry<'p> {
    method: u16,
    /// Compressed bytes left, when the header gives the size.
    remaining: Option<u64>,
    skip: bool,
    inflater: Option<Box<Decompress>>,
    checker: Option<Box<FileChecker<'p>>>,
}

/// The streaming zip reader of one archive.
#[derive(Debug)]
pub(crate) struct ZipScan<'p> {
    policy: &'p Policy,
    path: String,
    depth: u32,
    state: State,
    buf: Vec<u8>,
    entry: Option<Entry<'p>>,
    entries: u64,
    encrypted: u64,
    compressed_in: u64,
    expanded: u64,
    not_inspected: u64,
    fault: Option<String>,
    bomb: Option<String>,
    reports: Vec<FileReport>,
    out: Vec<u8>,
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}
fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}
fn u32_at_opt(b: &[u8]) -> Option<u32> {
    (b.len() >= 4).then(|| u32_at(b, 0))
}

impl<'p> ZipScan<'p> {
    pub(crate) fn new(policy: &'p Policy, path: &str, depth: u32) -> Self {
        Self {
            policy,
            path: path.to_string(),
            depth,
            state: State::Header,
            buf: Vec::new(),
            entry: None,
            entries: 0,
            encrypted: 0,
            compressed_in: 0,
            expanded: 0,
            not_inspected: 0,
            fault: None,
            bomb: None,
            reports: Vec::new(),
            out: vec![0; OUT_CHUNK],
        }
    }

    fn stop(&mut self, fault: String) {
        self.fault.get_or_insert(fault);
        self.state = State::Done;
        self.entry = None;
    }

    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        loop {
            match self.state {
                State::Done => return,
                State::Header => {
                    if self.buf.len() >= 4 {
                        let sig = u32_at(&self.buf, 0);
                        if sig == CENTRAL_HEADER || sig == END_OF_CENTRAL {
                            self.state = State::Done;
                            self.buf.clear();
                            return;
                        }
                        if sig != LOCAL_HEADER {
                            self.stop("an entry header is missing where one was expected".into());
                            return;
                        }
                    }
                    let need = if self.buf.len() < 4 {
                        4
                    } else if self.buf.len() < 30 {
                        30
                    } else {
                        30 + usize::from(u16_at(&self.buf, 26)) + usize::from(u16_at(&self.buf, 28))
                    };
                    if self.buf.len() >= 30 && self.buf.len() == need {
                        self.start_entry();
                        continue;
                    }
                    if data.is_empty() {
                        return;
                    }
                    let take = (need - self.buf.len()).min(data.len());
                    self.buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                }
                State::Data => {
                    if data.is_empty() {
                        return;
                    }
                    let used = self.entry_data(data);
                    data = &data[used.min(data.len())..];
                }
                State::Descriptor => {
                    let need = match u32_at_opt(&self.buf) {
                        None => 4,
                        Some(DESCRIPTOR) => 16,
                        Some(_) => 12,
                    };
                    if self.buf.len() == need && need > 4 {
                        self.buf.clear();
                        self.state = State::Header;
                        continue;
                    }
                    if data.is_empty() {
                        return;
                    }
                    let take = (need - self.buf.len()).min(data.len());
                    self.buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                }
            }
        }
    }

    fn start_entry(&mut self) {
        let h = std::mem::take(&mut self.buf);
        let flags = u16_at(&h, 6);
        let method = u16_at(&h, 8);
        let mut csize = u64::from(u32_at(&h, 18));
        let mut usize_ = u64::from(u32_at(&h, 22));
        let name_len = usize::from(u16_at(&h, 26));
        let name = String::from_utf8_lossy(&h[30..30 + name_len]).to_string();
        let extra = &h[30 + name_len..];
        // Zip64: sizes of 0xFFFFFFFF are in the extra field 0x0001 (uncompressed, then compressed).
        let mut i = 0;
        while i + 4 <= extra.len() {
            let (id, len) = (u16_at(extra, i), usize::from(u16_at(extra, i + 2)));
            if id == 1 && i + 4 + len <= extra.len() {
                let mut f = &extra[i + 4..i + 4 + len];
                let mut read = |v: &mut u64| {
                    if *v == 0xFFFF_FFFF && f.len() >= 8 {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(&f[..8]);
                        *v = u64::from_le_bytes(b);
                        f = &f[8..];
                    }
                };
                read(&mut usize_);
                read(&mut csize);
            }
            i += 4 + len;
        }
        self.entries += 1;
        let limits = &self.policy.archives;
        if self.entries > limits.max_entries {
            self.bomb = Some(format!("more than {} entries", limits.max_entries));
            self.state = State::Done;
            return;
        }
        let descriptor = flags & 0x0008 != 0;
        let encrypted = flags & 0x0001 != 0 || method == 99;
        if descriptor && method != 8 {
            self.stop(format!("entry {} has no size in its header", self.entries));
            return;
        }
        // Declared sizes betray a bomb before a byte is inflated.
        if !descriptor && usize_ > RATIO_FLOOR && usize_ / csize.max(1) > limits.max_expansion_ratio
        {
            self.bomb = Some(format!(
                "an entry declares {usize_} bytes from {csize} (ratio above {})",
                limits.max_expansion_ratio
            ));
            self.state = State::Done;
            return;
        }
        let dir = name.ends_with('/');
        if encrypted {
            self.encrypted += 1;
        } else if !dir && method != 0 && method != 8 {
            self.not_inspected += 1;
        }
        let inspect = !encrypted && !dir && (method == 0 || method == 8);
        let entry_path = format!("{}!/{}", self.path, name);
        self.entry = Some(Entry {
            method,
            remaining: (!descriptor).then_some(csize),
            skip: !inspect,
            inflater: (inspect && method == 8).then(|| Box::new(Decompress::new(false))),
            checker: (!dir).then(|| {
                Box::new(FileChecker::nested(
                    self.policy,
                    &entry_path,
                    self.depth + 1,
                    !inspect,
                ))
            }),
        });
        self.state = State::Data;
        if csize == 0 && !descriptor {
            self.end_entry(false);
        }
    }

    /// Consumes entry bytes; returns how many of `data` belonged to the entry.
    fn entry_data(&mut self, data: &[u8]) -> usize {
        let Some(entry) = self.entry.as_mut() else {
            self.state = State::Done;
            return data.len();
        };
        let take = match entry.remaining {
            Some(r) => usize::try_from(r).unwrap_or(usize::MAX).min(data.len()),
            None => data.len(),
        };
        let mine = &data[..take];
        self.compressed_in += take as u64;
        if let Some(r) = entry.remaining.as_mut() {
            *r -= take as u64;
        }
        if entry.skip {
            // Counted, not read.
        } else if entry.method == 0 {
            self.expanded += take as u64;
            if let Some(c) = entry.checker.as_mut() {
                c.feed(mine);
            }
        } else if let Some(inflater) = entry.inflater.as_mut() {
            let mut input = mine;
            loop {
                let (before_in, before_out) = (inflater.total_in(), inflater.total_out());
                let status = inflater.decompress(input, &mut self.out, FlushDecompress::None);
                let used = (inflater.total_in() - before_in) as usize;
                let made = (inflater.total_out() - before_out) as usize;
                input = &input[used..];
                self.expanded += made as u64;
                if let Some(c) = entry.checker.as_mut() {
                    c.feed(&self.out[..made]);
                }
                let limits = &self.policy.archives;
                if self.expanded > limits.max_expanded_bytes
                    || (self.expanded > RATIO_FLOOR
                        && self.expanded / self.compressed_in.max(1) > limits.max_expansion_ratio)
                {
                    self.bomb = Some(format!(
                        "expanded to {} bytes from {} (limits: {} bytes, ratio {}) before it was stopped",
                        self.expanded, self.compressed_in, limits.max_expanded_bytes, limits.max_expansion_ratio
                    ));
                    self.state = State::Done;
                    self.entry = None;
                    return data.len();
                }
                match status {
                    Ok(Status::StreamEnd) => {
                        if entry.remaining.is_none() {
                            // The deflate stream ends the entry; what follows is the descriptor.
                            let unread = input.len();
                            self.compressed_in -= unread as u64;
                            self.end_entry(true);
                            return take - unread;
                        }
                        break;
                    }
                    Ok(_) if used == 0 && made == 0 => break,
                    Ok(_) => {}
                    Err(_) => {
                        self.stop(format!("entry {} is not valid deflate data", self.entries));
                        return data.len();
                    }
                }
            }
        }
        if entry.remaining == Some(0) {
            self.end_entry(false);
        }
        take
    }

    fn end_entry(&mut self, descriptor: bool) {
        if let Some(entry) = self.entry.take() {
            if let Some(c) = entry.checker {
                self.reports.extend(c.finish());
            }
        }
        self.state = if descriptor {
            State::Descriptor
        } else {
            State::Header
        };
    }

    /// The archive's own findings (into `findings`) and its entries' reports.
    pub(crate) fn finish(mut self, findings: &mut Findings) -> Vec<FileReport> {
        let p = self.policy;
        if matches!(self.state, State::Data | State::Descriptor)
            || (!self.buf.is_empty() && !matches!(self.state, State::Done))
        {
            self.fault
                .get_or_insert_with(|| "the archive ends inside an entry".into());
        }
        if let Some(entry) = self.entry.take() {
            if let Some(c) = entry.checker {
                self.reports.extend(c.finish());
            }
        }
        if self.encrypted > 0 {
            findings.add(
                rules::ARCHIVE_ENCRYPTED,
                p.types.encrypted_archives,
                self.encrypted,
                None,
                None,
            );
            findings.detail(
                rules::ARCHIVE_ENCRYPTED,
                format!("{} encrypted entr(ies)", self.encrypted),
            );
        }
        if let Some(bomb) = self.bomb.take() {
            let rule = if self.entries > p.archives.max_entries {
                rules::ARCHIVE_ENTRIES
            } else {
                rules::ARCHIVE_EXPANSION
            };
            findings.add(rule, super::Severity::Block, 1, None, None);
            findings.detail(rule, bomb);
        }
        if let Some(fault) = self.fault.take() {
            findings.add(
                rules::ARCHIVE_UNREADABLE,
                super::Severity::Review,
                1,
                None,
                None,
            );
            findings.detail(rules::ARCHIVE_UNREADABLE, fault);
        }
        if self.not_inspected > 0 {
            findings.add(
                rules::ARCHIVE_NOT_INSPECTED,
                super::Severity::Review,
                self.not_inspected,
                None,
                None,
            );
            findings.detail(
                rules::ARCHIVE_NOT_INSPECTED,
                format!(
                    "{} entr(ies) compressed with a method other than deflate",
                    self.not_inspected
                ),
            );
        }
        self.reports
    }

    /// Entries listed so far.
    pub(crate) fn entries(&self) -> u64 {
        self.entries
    }
}
