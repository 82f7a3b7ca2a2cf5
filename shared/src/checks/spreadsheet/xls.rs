//! The pre-scan of an .xls (BIFF8 in a compound file): what calamine would hold once it has
//! opened the workbook, measured from the bytes without building any of it.
//!
//! calamine reads every sheet of an .xls when it opens it, and copies a shared string (SST)
//! into each cell showing it: one 30 KB string in 100,000 `LabelSst` cells of a 300 KB file is
//! 3 GB. Its compound-file reader also follows sector chains up to the size a directory entry
//! claims, so a chain that loops makes a small file a stream of gigabytes. This module follows
//! calamine's own reading (its compound-file reader, its record iterator with `Continue`
//! records, its SST and cell parsers) and adds up, without allocating more than the bytes
//! present: the bytes of the strings copied into cells, the cells, the area of each sheet's
//! dense range and the largest reservation a `Dimensions` record asks for. A compound file it
//! cannot follow (a chain that loops, runs off the file or out of its allocation table) is
//! damaged: calamine is not asked to read it.

/// The compound file signature.
pub(super) const CFB_MAGIC: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";

const ENDOFCHAIN: u32 = 0xFFFF_FFFE;
const DIFSECT: u32 = 0xFFFF_FFFC;
const RESERVED_SECTORS: u32 = 0xFFFF_FFFA;

/// What calamine would hold once it has opened an .xls.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct XlsCost {
    /// The bytes of the text calamine makes for the cells (a shared string once per cell
    /// showing it), as UTF-8.
    pub string_bytes: u64,
    /// The cells calamine reads (one per cell record, a `MulRk` one per value, a formula two:
    /// its value and its text), whatever their positions.
    pub cells: u64,
    /// The cells of the sheets' dense ranges (values and formulas), from each sheet's first
    /// to its last row and column.
    pub span: u64,
    /// The most cells a sheet's `Dimensions` record makes calamine reserve at once.
    pub reserve: u64,
    /// The bytes of records walked through the sheets (a sheet is walked once per
    /// `BoundSheet` record naming it).
    pub walked: u64,
}

/// Why an .xls was not measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum XlsScan {
    /// The compound file is damaged (or built to make its reader loop): not read.
    Damaged(&'static str),
    /// No `Workbook` or `Book` stream: calamine finds none either.
    NoWorkbook,
    /// The workbook's cost, measured up to `max_walk` bytes of sheet records (`walked` past
    /// it: the walk stopped there).
    Cost(XlsCost),
}

/// Measures the .xls `data` (a compound file, [`CFB_MAGIC`]), walking at most about
/// `max_walk` bytes of sheet records.
pub(super) fn xls_cost(data: &[u8], max_walk: u64) -> XlsScan {
    let stream = match workbook_stream(data) {
        Ok(Some(stream)) => stream,
        Ok(None) => return XlsScan::NoWorkbook,
        Err(why) => return XlsScan::Damaged(why),
    };
    XlsScan::Cost(biff_cost(&stream, max_walk))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

/// A compound file's sectors as calamine reads them: sector `id` is the `size` bytes after the
/// header (512 or 4096 bytes) at `id * size`, the last one possibly short.
struct Sectors<'a> {
    file: &'a [u8],
    base: usize,
    size: usize,
    maxid: u32,
}

impl<'a> Sectors<'a> {
    fn get(&self, id: u32) -> Result<&'a [u8], &'static str> {
        if id > self.maxid {
            return Err("a sector past the end of the file");
        }
        let start = (id as usize)
            .checked_mul(self.size)
            .and_then(|s| s.checked_add(self.base))
            .ok_or("a sector past the end of the file")?;
        let end = start.saturating_add(self.size).min(self.file.len());
        self.file
            .get(start..end)
            .filter(|s| !s.is_empty())
            .ok_or("a sector past the end of the file")
    }

    /// The chain from `id` up to `len` bytes, as calamine's `get_chain`; a chain longer than
    /// the file (a loop) is damaged.
    fn chain(&self, mut id: u32, fat: &[u32], len: usize) -> Result<Vec<u8>, &'static str> {
        let mut out = Vec::new();
        while id != ENDOFCHAIN {
            let sector = self.get(id)?;
            let take = sector.len().min(len - out.len());
            if out.len() + take > self.file.len() {
                return Err("a sector chain longer than the file");
            }
            out.extend_from_slice(&sector[..take]);
            if out.len() >= len {
                break;
            }
            id = *fat
                .get(id as usize)
                .ok_or("a sector chain outside its allocation table")?;
        }
        Ok(out)
    }
}

fn words(b: &[u8]) -> impl Iterator<Item = u32> + '_ {
    b.chunks_exact(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
}

/// A directory entry's name as calamine decodes it (UTF-16LE with its byte-order-mark
/// sniffing, up to the first NUL) equals `name`, ignoring ASCII case.
fn entry_named(raw: &[u8], name: &str) -> bool {
    let decoded: String = if let Some(rest) = raw.strip_prefix(b"\xEF\xBB\xBF") {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let (body, big) = match raw {
            [0xFF, 0xFE, rest @ ..] => (rest, false),
            [0xFE, 0xFF, rest @ ..] => (rest, true),
            _ => (raw, false),
        };
        let units = body.chunks(2).map(|u| match (u, big) {
            ([a, b], false) => u16::from_le_bytes([*a, *b]),
            ([a, b], true) => u16::from_be_bytes([*a, *b]),
            _ => 0xFFFD,
        });
        char::decode_utf16(units)
            .map(|c| c.unwrap_or('\u{FFFD}'))
            .collect()
    };
    let decoded = decoded.split('\0').next().unwrap_or("");
    decoded.eq_ignore_ascii_case(name)
}

/// The `Workbook` (or `Book`) stream, read as calamine reads it; `None` when there is none.
fn workbook_stream(file: &[u8]) -> Result<Option<Vec<u8>>, &'static str> {
    let header = file.get(..512).ok_or("a compound file header cut short")?;
    if !header.starts_with(CFB_MAGIC) {
        return Err("not a compound file");
    }
    let version = u16_at(header, 26).unwrap_or(0);
    let (size, base) = match u16_at(header, 30) {
        Some(9) => (512usize, 512usize),
        Some(12) if file.len() >= 4096 => (4096, 4096),
        _ => return Err("an unknown sector size"),
    };
    if u16_at(header, 32) != Some(6) {
        return Err("an unknown mini sector size");
    }
    let field = |at| u32_at(header, at).unwrap_or(ENDOFCHAIN);
    let (dir_start, mini_fat_start, mini_fat_len, difat_start) =
        (field(48), field(60), field(64) as usize, field(68));
    let maxid = u32::try_from(file.len() / size).unwrap_or(u32::MAX);
    let sectors = Sectors {
        file,
        base,
        size,
        maxid,
    };
    // The allocation table's sectors: 109 in the header, then the DIFAT chain (its sectors'
    // last entry the next one), bounded as calamine bounds it.
    let mut difat: Vec<u32> = words(&header[76..512]).collect();
    let mut id = difat_start;
    let mut difat_sectors = 0usize;
    while id < RESERVED_SECTORS {
        difat_sectors += 1;
        if difat_sectors > (maxid as usize).saturating_add(1) {
            return Err("a DIFAT chain longer than the file");
        }
        difat.extend(words(sectors.get(id)?));
        id = difat.pop().ok_or("an empty DIFAT sector")?;
    }
    let mut fat = Vec::new();
    for id in difat.into_iter().filter(|id| *id < DIFSECT) {
        let sector = sectors.get(id)?;
        // calamine copies a sector listed twice twice (DIFAT sectors all listing one sector:
        // 127 times the file): an allocation table larger than the file, give or take the
        // header's 109 entries (some writers leave unused ones 0), is built to be expanded.
        let most = file.len().saturating_add(109 * size);
        if (fat.len() + sector.len() / 4).saturating_mul(4) > most {
            return Err("an allocation table larger than the file");
        }
        fat.extend(words(sector));
    }
    let dirs = sectors.chain(dir_start, &fat, usize::MAX)?;
    let entries: Vec<&[u8]> = dirs.chunks_exact(128).collect();
    let root = entries.first().ok_or("no root directory")?;
    let root_start = u32_at(root, 116).unwrap_or(ENDOFCHAIN);
    if version != 3 && root_start == ENDOFCHAIN {
        return Err("no root directory");
    }
    let entry_len = |e: &[u8]| -> usize {
        let len = if size == 512 {
            u32_at(e, 120).map(u64::from)
        } else {
            u64_at(e, 120)
        };
        usize::try_from(len.unwrap_or(0)).unwrap_or(usize::MAX)
    };
    let (mini_fat, ministream) = if mini_fat_len > 0 {
        let ministream = sectors.chain(root_start, &fat, entry_len(root))?;
        let minifat = sectors.chain(mini_fat_start, &fat, mini_fat_len.saturating_mul(size))?;
        (words(&minifat).collect::<Vec<u32>>(), ministream)
    } else {
        (Vec::new(), Vec::new())
    };
    let Some(entry) = ["Workbook", "Book"]
        .iter()
        .find_map(|name| entries.iter().find(|e| entry_named(&e[..64], name)))
    else {
        return Ok(None);
    };
    let (start, len) = (u32_at(entry, 116).unwrap_or(ENDOFCHAIN), entry_len(entry));
    if len < 4096 {
        // The mini stream: 64-byte sectors within the root entry's stream.
        let mut out = Vec::new();
        let mut id = start;
        while id != ENDOFCHAIN {
            if id as usize > (maxid as usize).saturating_mul(8) {
                return Err("a mini sector past the end of the file");
            }
            let at = id as usize * 64;
            let sector = ministream
                .get(at..at + 64)
                .ok_or("a mini sector past the end of its stream")?;
            let take = 64.min(len - out.len());
            out.extend_from_slice(&sector[..take]);
            if out.len() >= len {
                break;
            }
            id = *mini_fat
                .get(id as usize)
                .ok_or("a mini sector chain outside its allocation table")?;
        }
        Ok(Some(out))
    } else {
        sectors.chain(start, &fat, len).map(Some)
    }
}

/// A BIFF record as calamine's record iterator gives it: its type, its data and the data of
/// the `Continue` (0x003C) records right after it.
struct Record<'a> {
    typ: u16,
    data: &'a [u8],
    cont: std::collections::VecDeque<&'a [u8]>,
}

impl<'a> Record<'a> {
    fn continue_record(&mut self) -> bool {
        match self.cont.pop_front() {
            Some(next) => {
                self.data = next;
                true
            }
            None => false,
        }
    }

    /// Skips `len` bytes across `Continue` records; `None` when they run out.
    fn skip(&mut self, mut len: usize) -> Option<()> {
        while len > 0 {
            if self.data.is_empty() && !self.continue_record() {
                return None;
            }
            let l = len.min(self.data.len());
            self.data = &self.data[l..];
            len -= l;
        }
        Some(())
    }
}

/// calamine's record iterator over `stream`, stopping (as calamine stops with an error) at a
/// record cut short.
struct Records<'a> {
    stream: &'a [u8],
}

impl<'a> Iterator for Records<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        let typ = u16_at(self.stream, 0)?;
        let len = usize::from(u16_at(self.stream, 2)?);
        let data = self.stream.get(4..4 + len)?;
        self.stream = &self.stream[4 + len..];
        let mut cont = std::collections::VecDeque::new();
        while self.stream.len() > 4 && u16_at(self.stream, 0) == Some(0x003C) {
            let len = usize::from(u16_at(self.stream, 2)?);
            let Some(next) = self.stream.get(4..4 + len) else {
                // calamine fails the whole workbook here; what came before still counts.
                self.stream = &[];
                break;
            };
            cont.push_back(next);
            self.stream = &self.stream[4 + len..];
        }
        Some(Record { typ, data, cont })
    }
}

/// The UTF-8 bytes calamine makes of `chunk`, characters of one byte (`wide` false) or two,
/// decoded as UTF-16LE (`utf16`, the BIFF8 code page 1200) or another code page.
fn text_bytes(chunk: &[u8], wide: bool, utf16: bool) -> u64 {
    // Any encoding makes at most 3 bytes of an input byte (calamine widens a one-byte
    // character to two bytes before decoding), and encoding_rs sniffs a byte-order mark at
    // the start of each decoded piece, so a piece starting with one is bounded, not decoded.
    let bound = || (chunk.len() as u64) * if wide { 3 } else { 6 };
    if !utf16 {
        return bound();
    }
    if !wide {
        return chunk.iter().map(|b| if *b < 0x80 { 1 } else { 2 }).sum();
    }
    if chunk.starts_with(b"\xFE\xFF") || chunk.starts_with(b"\xEF\xBB\xBF") {
        return bound();
    }
    let units = chunk
        .chunks_exact(2)
        .map(|u| u16::from_le_bytes([u[0], u[1]]));
    let bytes: u64 = char::decode_utf16(units)
        .map(|c| c.map_or(3, |c| c.len_utf8() as u64))
        .sum();
    // A byte-order mark at the start is dropped.
    if chunk.starts_with(b"\xFF\xFE") {
        bytes.saturating_sub(3)
    } else {
        bytes
    }
}

/// An `XLUnicodeRichExtendedString` of the SST, as calamine reads it: its UTF-8 bytes, or
/// `None` where calamine stops with an error.
fn rich_string(r: &mut Record<'_>, utf16: bool) -> Option<u64> {
    if r.data.is_empty() {
        return Some(0);
    }
    let cch = usize::from(u16_at(r.data, 0)?);
    let flags = *r.data.get(2)?;
    r.data = &r.data[3..];
    let mut runs = 0usize;
    if flags & 0x8 != 0 {
        runs = usize::from(u16_at(r.data, 0)?);
        r.data = &r.data[2..];
    }
    let mut ext = 0usize;
    if flags & 0x4 != 0 {
        // calamine reads it as an i32 cast to usize: a negative size skips everything.
        ext = u32_at(r.data, 0)? as i32 as isize as usize;
        r.data = &r.data[4..];
    }
    let (mut left, mut wide, mut bytes) = (cch, flags & 0x1 != 0, 0u64);
    while left > 0 {
        let (chars, used) = if wide {
            let n = (r.data.len() / 2).min(left);
            (n, 2 * n)
        } else {
            let n = r.data.len().min(left);
            (n, n)
        };
        bytes += text_bytes(&r.data[..used], wide, utf16);
        r.data = &r.data[used..];
        left -= chars;
        if left > 0 {
            // The characters go on in the next `Continue` record, after a new flags byte.
            if !r.continue_record() {
                return None;
            }
            wide = *r.data.first()? & 0x1 != 0;
            r.data = &r.data[1..];
        }
    }
    r.skip(runs.saturating_mul(4))?;
    r.skip(ext)?;
    Some(bytes)
}

/// The SST's strings' UTF-8 bytes, as many as calamine reads before any error.
fn sst(r: &mut Record<'_>, utf16: bool) -> Vec<u64> {
    let mut strings = Vec::new();
    if r.data.len() < 8 {
        return strings;
    }
    r.data = &r.data[8..];
    while !r.data.is_empty() || r.continue_record() {
        match rich_string(r, utf16) {
            Some(bytes) => strings.push(bytes),
            None => break,
        }
    }
    strings
}

/// A sheet's dense range: its first and last row and column.
#[derive(Default)]
struct Extent(Option<((u32, u32), (u32, u32))>);

impl Extent {
    fn add(&mut self, (r, c): (u32, u32)) {
        let ((r0, c0), (r1, c1)) = self.0.unwrap_or(((r, c), (r, c)));
        self.0 = Some(((r0.min(r), c0.min(c)), (r1.max(r), c1.max(c))));
    }

    fn area(&self) -> u64 {
        self.0.map_or(0, |((r0, c0), (r1, c1))| {
            (u64::from(r1 - r0) + 1) * (u64::from(c1 - c0) + 1)
        })
    }
}

/// The cells calamine reserves for a `Dimensions` record (its arithmetic wraps in release
/// builds, so a crafted record asks for billions).
fn dimensions(d: &[u8]) -> u64 {
    let (rf, rl, mut cf, cl) = match d.len() {
        10 => (
            u32::from(u16_at(d, 0).unwrap_or(0)),
            u32::from(u16_at(d, 2).unwrap_or(0)),
            u32::from(u16_at(d, 4).unwrap_or(0)),
            u32::from(u16_at(d, 6).unwrap_or(0)),
        ),
        14 | 16 => (
            u32_at(d, 0).unwrap_or(0),
            u32_at(d, 4).unwrap_or(0),
            u32::from(u16_at(d, 8).unwrap_or(0)),
            u32::from(u16_at(d, 10).unwrap_or(0)),
        ),
        _ => return 0,
    };
    if cf > 0xFF || cl < cf {
        cf = 0;
    }
    let ((r0, c0), (r1, c1)) = if rl >= 1 && cl >= 1 {
        ((rf, cf), (rl - 1, cl - 1))
    } else {
        ((rf, cf), (rf, cf))
    };
    let rows = u64::from(r1.wrapping_sub(r0).wrapping_add(1));
    let cols = u64::from(c1.wrapping_sub(c0).wrapping_add(1));
    rows.saturating_mul(cols)
}

/// Walks the workbook stream as calamine's `parse_workbook` does and adds up its cost.
fn biff_cost(stream: &[u8], max_walk: u64) -> XlsCost {
    let mut cost = XlsCost::default();
    let mut strings = Vec::new();
    let mut sheets = Vec::new();
    let mut utf16 = true;
    for mut r in (Records { stream }) {
        match r.typ {
            0x0042 => utf16 = u16_at(r.data, 0) == Some(1200),
            0x0085 if r.data.len() >= 6 => {
                if let Some(pos) = u32_at(r.data, 0) {
                    sheets.push(pos as usize);
                }
            }
            0x00FC => strings = sst(&mut r, utf16),
            0x000A => break,
            _ => {}
        }
    }
    for pos in sheets {
        let Some(sheet) = stream.get(pos..) else {
            continue;
        };
        let (mut cells, mut formulas) = (Extent::default(), Extent::default());
        let (mut seen_bof, mut depth, mut formula_at) = (false, 0usize, (0u32, 0u32));
        for r in (Records { stream: sheet }) {
            let len = 4 + r.data.len() + r.cont.iter().map(|c| 4 + c.len()).sum::<usize>();
            cost.walked = cost.walked.saturating_add(len as u64);
            if cost.walked > max_walk {
                return cost;
            }
            if depth > 0 {
                match r.typ {
                    0x0809 => depth += 1,
                    0x000A => depth -= 1,
                    _ => {}
                }
                continue;
            }
            let d = r.data;
            let at = || -> Option<(u32, u32)> {
                Some((u32::from(u16_at(d, 0)?), u32::from(u16_at(d, 2)?)))
            };
            let mut cell = |pos: (u32, u32), text: u64| {
                cells.add(pos);
                cost.cells += 1;
                cost.string_bytes = cost.string_bytes.saturating_add(text);
            };
            match r.typ {
                0x0809 if seen_bof => depth += 1,
                0x0809 => seen_bof = true,
                0x000A => break,
                0x0200 => cost.reserve = cost.reserve.max(dimensions(d)),
                // Number, BoolErr, Rk.
                0x0203 if d.len() >= 14 => cell(at().unwrap_or_default(), 0),
                0x0205 | 0x027E if d.len() >= 8 => cell(at().unwrap_or_default(), 0),
                // Label, RString: their text is in the record (at most 3 bytes a byte).
                0x0204 | 0x00D6 if d.len() >= 6 => {
                    cell(at().unwrap_or_default(), 3 * d.len() as u64)
                }
                // String: a formula's text value, at the formula's cell.
                0x0207 => cell(formula_at, 3 * d.len() as u64),
                0x00FD if d.len() >= 10 => {
                    let index = u32_at(d, 6).unwrap_or(u32::MAX) as usize;
                    if let Some(bytes) = strings.get(index) {
                        cell(at().unwrap_or_default(), *bytes);
                    }
                }
                0x00BD if d.len() >= 6 => {
                    let (row, first) = at().unwrap_or_default();
                    let n = (d.len() - 6) / 6;
                    for col in (first..).take(n) {
                        cell((row, col), 0);
                    }
                }
                0x0006 if d.len() >= 20 => {
                    formula_at = at().unwrap_or_default();
                    cell(formula_at, 0);
                    formulas.add(formula_at);
                    cost.cells += 1;
                }
                _ => {}
            }
        }
        cost.span = cost
            .span
            .saturating_add(cells.area())
            .saturating_add(formulas.area());
    }
    cost
}

#[cfg(test)]
pub(in crate::checks) mod tests {
    use super::*;

    /// A BIFF record.
    pub(in crate::checks) fn record(typ: u16, data: &[u8]) -> Vec<u8> {
        let mut r = typ.to_le_bytes().to_vec();
        r.extend_from_slice(&(data.len() as u16).to_le_bytes());
        r.extend_from_slice(data);
        r
    }

    fn cell_head(row: u16, col: u16) -> Vec<u8> {
        [row.to_le_bytes(), col.to_le_bytes(), 0u16.to_le_bytes()].concat()
    }

    /// A `LabelSst` cell showing shared string `index`.
    pub(in crate::checks) fn label_sst(row: u16, col: u16, index: u32) -> Vec<u8> {
        record(
            0x00FD,
            &[cell_head(row, col), index.to_le_bytes().to_vec()].concat(),
        )
    }

    /// A `Number` cell.
    pub(in crate::checks) fn number(row: u16, col: u16, v: f64) -> Vec<u8> {
        record(
            0x0203,
            &[cell_head(row, col), v.to_le_bytes().to_vec()].concat(),
        )
    }

    /// A `Label` cell (its text in the record, one byte a character).
    pub(in crate::checks) fn label(row: u16, col: u16, text: &str) -> Vec<u8> {
        let mut d = cell_head(row, col);
        d.extend_from_slice(&(text.len() as u16).to_le_bytes());
        d.push(0);
        d.extend_from_slice(text.as_bytes());
        record(0x0204, &d)
    }

    /// The SST of `strings` (Latin-1, one byte a character), in an SST record and the `Continue`
    /// records it needs past 8,224 bytes, a string's characters going on after a flags byte.
    pub(in crate::checks) fn sst(strings: &[&str]) -> Vec<u8> {
        const MAX: usize = 8224;
        let n = (strings.len() as u32).to_le_bytes();
        let mut records = vec![(0x00FCu16, [n, n].concat())];
        for s in strings {
            let latin1: Vec<u8> = s.chars().map(|c| c as u8).collect();
            let mut chars = &latin1[..];
            let head = [(latin1.len() as u16).to_le_bytes().to_vec(), vec![0u8]].concat();
            if records.last().unwrap().1.len() + head.len() + 1 > MAX {
                records.push((0x003C, Vec::new()));
            }
            records.last_mut().unwrap().1.extend_from_slice(&head);
            loop {
                let room = MAX - records.last().unwrap().1.len();
                let take = room.min(chars.len());
                records
                    .last_mut()
                    .unwrap()
                    .1
                    .extend_from_slice(&chars[..take]);
                chars = &chars[take..];
                if chars.is_empty() {
                    break;
                }
                records.push((0x003C, vec![0u8]));
            }
        }
        records.iter().flat_map(|(t, d)| record(*t, d)).collect()
    }

    /// A workbook stream: BOF, a `BoundSheet` per sheet, `sst` (raw records), EOF, then each
    /// sheet's records between its BOF and EOF.
    pub(in crate::checks) fn workbook(sst: &[u8], sheets: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let bof = |dt: u16| {
            record(
                0x0809,
                &[
                    0x0600u16.to_le_bytes(),
                    dt.to_le_bytes(),
                    [0; 2],
                    [0; 2],
                    [0; 2],
                    [0; 2],
                    [0; 2],
                    [0; 2],
                ]
                .concat(),
            )
        };
        let bound = |pos: u32, name: &str| {
            let mut d = pos.to_le_bytes().to_vec();
            d.extend_from_slice(&[0, 0, name.len() as u8, 0]);
            d.extend_from_slice(name.as_bytes());
            record(0x0085, &d)
        };
        let globals_len = bof(5).len()
            + sheets.iter().map(|(n, _)| bound(0, n).len()).sum::<usize>()
            + sst.len()
            + 4;
        let mut out = bof(5);
        let mut pos = globals_len;
        for (name, body) in sheets {
            out.extend(bound(pos as u32, name));
            pos += bof(0x10).len() + body.len() + 4;
        }
        out.extend_from_slice(sst);
        out.extend(record(0x000A, &[]));
        for (_, body) in sheets {
            out.extend(bof(0x10));
            out.extend_from_slice(body);
            out.extend(record(0x000A, &[]));
        }
        out
    }

    /// A compound file (version 3, 512-byte sectors) holding one stream `name` of `body`,
    /// zero-padded to at least 4,096 bytes (out of the mini stream).
    pub(in crate::checks) fn cfb(name: &str, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        body.resize(body.len().max(4096).div_ceil(512) * 512, 0);
        let n = body.len() / 512;
        let mut fat_sectors = 1;
        while fat_sectors * 128 < fat_sectors + 1 + n {
            fat_sectors += 1;
        }
        assert!(fat_sectors <= 109, "stream too large for the test writer");
        let dir = fat_sectors as u32;
        let mut h = vec![0u8; 512];
        h[..8].copy_from_slice(CFB_MAGIC);
        h[24..26].copy_from_slice(&0x3Eu16.to_le_bytes());
        h[26..28].copy_from_slice(&3u16.to_le_bytes());
        h[28..30].copy_from_slice(&0xFFFEu16.to_le_bytes());
        h[30..32].copy_from_slice(&9u16.to_le_bytes());
        h[32..34].copy_from_slice(&6u16.to_le_bytes());
        h[44..48].copy_from_slice(&(fat_sectors as u32).to_le_bytes());
        h[48..52].copy_from_slice(&dir.to_le_bytes());
        h[56..60].copy_from_slice(&4096u32.to_le_bytes());
        h[60..64].copy_from_slice(&ENDOFCHAIN.to_le_bytes());
        h[68..72].copy_from_slice(&ENDOFCHAIN.to_le_bytes());
        for i in 0..109 {
            let id = if i < fat_sectors { i as u32 } else { u32::MAX };
            h[76 + 4 * i..80 + 4 * i].copy_from_slice(&id.to_le_bytes());
        }
        let mut fat = vec![u32::MAX; fat_sectors * 128];
        fat[..fat_sectors].fill(0xFFFF_FFFD);
        fat[dir as usize] = ENDOFCHAIN;
        for i in 0..n {
            let id = dir as usize + 1 + i;
            fat[id] = if i + 1 == n {
                ENDOFCHAIN
            } else {
                id as u32 + 1
            };
        }
        let entry = |name: &str, typ: u8, child: u32, start: u32, len: u32| {
            let mut e = vec![0u8; 128];
            let units: Vec<u16> = name.encode_utf16().collect();
            for (i, u) in units.iter().enumerate() {
                e[2 * i..2 * i + 2].copy_from_slice(&u.to_le_bytes());
            }
            e[64..66].copy_from_slice(&((units.len() as u16 + 1) * 2).to_le_bytes());
            e[66] = typ;
            e[67] = 1;
            e[68..72].copy_from_slice(&u32::MAX.to_le_bytes());
            e[72..76].copy_from_slice(&u32::MAX.to_le_bytes());
            e[76..80].copy_from_slice(&child.to_le_bytes());
            e[116..120].copy_from_slice(&start.to_le_bytes());
            e[120..124].copy_from_slice(&len.to_le_bytes());
            e
        };
        let mut out = h;
        out.extend(fat.iter().flat_map(|w| w.to_le_bytes()));
        out.extend(entry("Root Entry", 5, 1, ENDOFCHAIN, 0));
        out.extend(entry(name, 2, u32::MAX, dir + 1, body.len() as u32));
        out.extend(entry("", 0, u32::MAX, 0, 0));
        out.extend(entry("", 0, u32::MAX, 0, 0));
        out.extend(body);
        out
    }

    /// A compound file holding one stream `name` of `body` (under 4,096 bytes) in the mini
    /// stream: 64-byte mini sectors inside the root entry's stream, chained by the mini FAT.
    fn cfb_mini(name: &str, body: &[u8]) -> Vec<u8> {
        assert!(body.len() < 4096);
        let minis = body.len().div_ceil(64);
        let container = (minis * 64).div_ceil(512);
        // Sectors: the FAT (0), the directory (1), the mini FAT (2), the mini stream (3..).
        let mut h = cfb("x", b"")[..512].to_vec();
        h[44..48].copy_from_slice(&1u32.to_le_bytes());
        h[48..52].copy_from_slice(&1u32.to_le_bytes());
        h[60..64].copy_from_slice(&2u32.to_le_bytes());
        h[64..68].copy_from_slice(&1u32.to_le_bytes());
        for i in 1..109 {
            h[76 + 4 * i..80 + 4 * i].copy_from_slice(&u32::MAX.to_le_bytes());
        }
        let mut fat = vec![u32::MAX; 128];
        fat[0] = 0xFFFF_FFFD;
        fat[1] = ENDOFCHAIN;
        fat[2] = ENDOFCHAIN;
        for i in 0..container {
            fat[3 + i] = if i + 1 == container {
                ENDOFCHAIN
            } else {
                4 + i as u32
            };
        }
        let mut minifat = vec![u32::MAX; 128];
        for (i, next) in minifat.iter_mut().enumerate().take(minis) {
            *next = if i + 1 == minis {
                ENDOFCHAIN
            } else {
                i as u32 + 1
            };
        }
        let full = cfb(name, b"");
        let mut dirs = full[1024..1536].to_vec();
        dirs[116..120].copy_from_slice(&3u32.to_le_bytes());
        dirs[120..124].copy_from_slice(&((minis * 64) as u32).to_le_bytes());
        dirs[128 + 116..128 + 120].copy_from_slice(&0u32.to_le_bytes());
        dirs[128 + 120..128 + 124].copy_from_slice(&(body.len() as u32).to_le_bytes());
        let mut stream = body.to_vec();
        stream.resize(container * 512, 0);
        [
            h,
            fat.iter().flat_map(|w| w.to_le_bytes()).collect(),
            dirs,
            minifat.iter().flat_map(|w| w.to_le_bytes()).collect(),
            stream,
        ]
        .concat()
    }

    #[test]
    fn when_the_workbook_is_in_the_mini_stream_then_it_is_read_as_calamine_reads_it() {
        let stream = workbook(
            &sst(&["area", "north"]),
            &[(
                "S",
                [label_sst(0, 0, 0), label_sst(1, 0, 1), number(1, 1, 4.0)].concat(),
            )],
        );
        assert!(stream.len() < 4096);
        let book = cfb_mini("Workbook", &stream);
        let c = cost(&book);
        assert_eq!((c.string_bytes, c.cells, c.span), (9, 3, 4));
        assert_eq!(calamine_text(&book), (9, 3));
        // A mini sector past the mini stream: damaged.
        let mut bad = book.clone();
        bad[512 + 512 + 128 + 116..][..4].copy_from_slice(&1000u32.to_le_bytes());
        assert!(matches!(xls_cost(&bad, u64::MAX), XlsScan::Damaged(_)));
    }

    /// `book` with `k` DIFAT sectors appended, chained, each listing sector 0 (the allocation
    /// table) 127 times.
    pub(in crate::checks) fn difat_chain(book: &[u8], k: u32) -> Vec<u8> {
        let mut out = book.to_vec();
        let first = (out.len() / 512 - 1) as u32;
        for i in 0..k {
            out.extend(std::iter::repeat_n(0u8, 127 * 4));
            let next = if i + 1 == k {
                ENDOFCHAIN
            } else {
                first + i + 1
            };
            out.extend(next.to_le_bytes());
        }
        out[68..72].copy_from_slice(&first.to_le_bytes());
        out
    }

    /// An .xls of `sheets` (raw cell records) over the shared strings `strings`.
    pub(in crate::checks) fn xls(strings: &[&str], sheets: &[(&str, Vec<u8>)]) -> Vec<u8> {
        cfb("Workbook", &workbook(&sst(strings), sheets))
    }

    fn cost(data: &[u8]) -> XlsCost {
        match xls_cost(data, u64::MAX) {
            XlsScan::Cost(c) => c,
            other => panic!("{other:?}"),
        }
    }

    /// The UTF-8 bytes of every cell calamine reads from `data`, and its cell count.
    fn calamine_text(data: &[u8]) -> (u64, u64) {
        use calamine::Reader;
        let mut book = calamine::open_workbook_auto_from_rs(std::io::Cursor::new(data)).unwrap();
        let (mut bytes, mut cells) = (0, 0);
        for name in book.sheet_names() {
            let range = book.worksheet_range(&name).unwrap();
            for (_, _, c) in range.used_cells() {
                cells += 1;
                if let calamine::Data::String(s) = c {
                    bytes += s.len() as u64;
                }
            }
        }
        (bytes, cells)
    }

    #[test]
    fn when_a_long_shared_string_fills_many_cells_then_its_copies_are_counted_unread() {
        // One 30 KB string (four records: SST and three Continue) in 100,000 cells: a
        // 1.5 MB file that calamine would make 3 GB of.
        let long = "x".repeat(30 * 1024);
        let cells: Vec<u8> = (0..100_000u32)
            .flat_map(|i| label_sst((i / 4) as u16, (i % 4) as u16, 0))
            .collect();
        let book = xls(&[&long], &[("S", cells)]);
        assert!(book.len() < 2 * 1024 * 1024, "{}", book.len());
        let c = cost(&book);
        assert_eq!(c.string_bytes, 100_000 * 30 * 1024);
        assert_eq!((c.cells, c.span), (100_000, 100_000));
    }

    #[test]
    fn when_strings_go_on_in_continue_records_then_they_are_measured_as_calamine_renders_them() {
        let long = "ab".repeat(10_000);
        let book = xls(
            &[&long, "short", &"é".repeat(5)],
            &[(
                "S",
                [label_sst(0, 0, 0), label_sst(1, 0, 1), label_sst(2, 0, 2)].concat(),
            )],
        );
        let c = cost(&book);
        // "é" is one byte in the file (Latin-1), two in UTF-8.
        assert_eq!(c.string_bytes, 20_000 + 5 + 10);
        assert_eq!(calamine_text(&book), (c.string_bytes, 3));

        // By hand: a string of 10 characters, four in the SST one byte each, six in a
        // Continue record as two-byte characters (a new flags byte), with two formatting runs
        // and 3 bytes of ExtRst after them in a second Continue, then a plain string.
        let mut s = vec![0u8; 8];
        s.extend_from_slice(&10u16.to_le_bytes());
        s.push(0x0C); // fRichSt, fExtSt, one byte a character
        s.extend_from_slice(&2u16.to_le_bytes());
        s.extend_from_slice(&3u32.to_le_bytes());
        s.extend_from_slice(b"abcd");
        let mut cont = vec![0x01u8];
        for c in "€ü√xyz".encode_utf16() {
            cont.extend_from_slice(&c.to_le_bytes());
        }
        cont.extend_from_slice(&[0; 6]);
        let cont2 = [
            vec![0u8; 5],
            2u16.to_le_bytes().to_vec(),
            vec![0, b'o', b'k'],
        ]
        .concat();
        let table = [
            record(0x00FC, &s),
            record(0x003C, &cont),
            record(0x003C, &cont2),
        ]
        .concat();
        let book = cfb(
            "Workbook",
            &workbook(
                &table,
                &[("S", [label_sst(0, 0, 0), label_sst(0, 1, 1)].concat())],
            ),
        );
        let c = cost(&book);
        assert_eq!(c.string_bytes, ("abcd€ü√xyz".len() + 2) as u64);
        assert_eq!(calamine_text(&book), (c.string_bytes, 2));
    }

    #[test]
    fn when_cells_sit_far_apart_or_dimensions_ask_for_billions_then_the_span_is_counted() {
        let far = xls(
            &[],
            &[(
                "S",
                [number(0, 0, 1.0), number(65_535, 65_535, 2.0)].concat(),
            )],
        );
        assert_eq!(cost(&far).span, 65_536 * 65_536);
        // rwMic past rwMac: calamine's row count wraps to billions in release builds.
        let dims = [5u32.to_le_bytes(), 1u32.to_le_bytes()].concat();
        let dims = [
            dims,
            0u16.to_le_bytes().to_vec(),
            200u16.to_le_bytes().to_vec(),
            vec![0; 2],
        ]
        .concat();
        let book = xls(
            &[],
            &[("S", [record(0x0200, &dims), number(0, 0, 1.0)].concat())],
        );
        assert_eq!(cost(&book).reserve, ((1u64 << 32) - 4) * 200);
        // A MulRk of 3 values, each a cell.
        let mut mulrk = [1u16.to_le_bytes(), 2u16.to_le_bytes()].concat();
        for _ in 0..3 {
            mulrk.extend_from_slice(&[0; 6]);
        }
        mulrk.extend_from_slice(&4u16.to_le_bytes());
        let book = xls(&[], &[("S", record(0x00BD, &mulrk))]);
        assert_eq!((cost(&book).cells, cost(&book).span), (3, 3));
        assert_eq!(calamine_text(&book).1, 3);
    }

    #[test]
    fn when_a_sheet_is_named_many_times_then_each_reading_counts() {
        let cells: Vec<u8> = (0..10u16).flat_map(|r| number(r, 0, 1.0)).collect();
        let once = cost(&xls(&[], &[("S", cells.clone())]));
        // The stream: BOF (20 bytes), the BoundSheet of "S" (13 bytes), the rest. Ten more
        // BoundSheet records naming the same sheet go after the BOF, the sheet moving by their
        // length.
        let stream = workbook(&sst(&[]), &[("S", cells)]);
        let bound = |pos: u32, name: u8| {
            record(
                0x0085,
                &[&pos.to_le_bytes()[..], &[0, 0, 1, 0, name]].concat(),
            )
        };
        let pos = u32::from_le_bytes(stream[24..28].try_into().unwrap()) + 10 * 13;
        let mut more = stream[..20].to_vec();
        for i in 0..10 {
            more.extend(bound(pos, b'a' + i));
        }
        more.extend(bound(pos, b'S'));
        more.extend_from_slice(&stream[33..]);
        let many = cost(&cfb("Workbook", &more));
        assert_eq!(many.cells, 11 * once.cells, "{once:?} {many:?}");
        assert_eq!(calamine_text(&cfb("Workbook", &more)).1, 11 * once.cells);
    }

    #[test]
    fn when_a_sector_chain_loops_then_the_file_is_damaged_not_read() {
        let book = xls(&["a"], &[("S", label_sst(0, 0, 0))]);
        // The stream's first sector points at itself and claims 4 GB.
        let mut looped = book.clone();
        let fat = 512;
        let first = u32::from_le_bytes(looped[512 + 512 + 128 + 116..][..4].try_into().unwrap());
        looped[fat + 4 * first as usize..][..4].copy_from_slice(&first.to_le_bytes());
        looped[512 + 512 + 128 + 120..][..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(xls_cost(&looped, u64::MAX), XlsScan::Damaged(_)));
        // The directory's sector points at itself (calamine reads it for ever).
        let mut looped = book.clone();
        looped[fat + 4..][..4].copy_from_slice(&1u32.to_le_bytes());
        assert!(matches!(xls_cost(&looped, u64::MAX), XlsScan::Damaged(_)));
        // The header lists the allocation table's sector 109 times (some writers leave
        // unused entries 0): read.
        let mut zeros = book.clone();
        for i in 1..109 {
            zeros[76 + 4 * i..][..4].copy_from_slice(&0u32.to_le_bytes());
        }
        assert_eq!(cost(&zeros), cost(&book));
        assert_eq!(calamine_text(&zeros), calamine_text(&book));
        // DIFAT sectors listing it 127 times each: calamine copies it 2,540 times (and reads
        // the workbook: so would it with a file of such sectors, 127 times the file).
        assert_eq!(calamine_text(&difat_chain(&book, 20)), calamine_text(&book));
        assert_eq!(
            xls_cost(&difat_chain(&book, 20), u64::MAX),
            XlsScan::Damaged("an allocation table larger than the file")
        );
        // No Workbook stream.
        let other = cfb("Other", b"hello");
        assert_eq!(xls_cost(&other, u64::MAX), XlsScan::NoWorkbook);
    }

    #[test]
    fn when_the_bytes_are_truncated_or_garbage_then_the_scan_never_panics() {
        let long = "y".repeat(9000);
        let book = xls(
            &[&long, "b"],
            &[
                (
                    "S",
                    [label_sst(0, 0, 0), number(1, 1, 2.0), label(2, 0, "t")].concat(),
                ),
                ("T", label_sst(3, 3, 1)),
            ],
        );
        for len in (0..book.len()).step_by(97) {
            let _ = xls_cost(&book[..len], 1 << 30);
        }
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..3000 {
            let mut bad = book.clone();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed as usize) % bad.len();
                bad[at] = (seed >> 32) as u8;
            }
            let _ = xls_cost(&bad, 1 << 30);
        }
        for garbage in [&b""[..], CFB_MAGIC, &[0xFF; 600][..]] {
            let _ = xls_cost(garbage, 1 << 30);
        }
    }
}
