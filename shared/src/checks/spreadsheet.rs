//! Spreadsheets (.xlsx, .xlsm, .xlsb, .xls, .ods), read with `calamine`: every sheet goes
//! through the same table and identifier rules as a CSV file, as an entry
//! `book.xlsx!/<sheet>` of the workbook (rows from 1, identifiers located by row and byte
//! column of the sheet rendered as CSV).
//!
//! A workbook can only be read whole, so its bytes are kept up to the policy's
//! `tables.max_spreadsheet_bytes`; past it (or when its zip parts would expand past 4 times
//! that, or, in an .ods, its repeated cells would span more than 16M cells or their values'
//! copies more than 4 times the limit; in an .xls, its cells, their dense ranges or the text
//! calamine copies into them, shared strings once per cell, past the same limits, measured by
//! the [`xls`] pre-scan) the workbook is reported "too large to check" for a reviewer instead
//! of being read: memory stays bounded whatever the file.

use std::borrow::Cow;
use std::io::Cursor;

use calamine::{Data, DataRef, Reader, ReaderRef};

use super::file::FileChecker;
use super::policy::Policy;
use super::report::{FileReport, Findings};
use super::rules;
use super::Severity;

mod xls;

/// How far a workbook's zip parts may expand, relative to the byte limit.
const EXPANSION_FACTOR: u64 = 4;

/// Most cells a sheet may span: calamine makes a sheet's cells one dense range, so two cells
/// at opposite corners (`A1`, `XFD1048576`) of a 1 KiB file would ask for 17 billion cells.
const MAX_SHEET_CELLS: u64 = 16 * 1024 * 1024;

/// A sheet's CSV rendering is fed to its checker in pieces of about this size.
const FEED_BYTES: usize = 64 * 1024;

/// Extensions read as spreadsheets.
pub(crate) const SPREADSHEET_EXTENSIONS: &[&str] = &["xlsx", "xlsm", "xlsb", "xls", "ods"];

/// A workbook's bytes, kept up to the limit.
#[derive(Debug)]
pub(crate) struct SpreadsheetScan {
    data: Vec<u8>,
    bytes: u64,
    limit: u64,
}

impl SpreadsheetScan {
    pub(crate) fn new(policy: &Policy) -> Self {
        Self {
            data: Vec::new(),
            bytes: 0,
            limit: policy.tables.max_spreadsheet_bytes,
        }
    }

    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        self.bytes = self.bytes.saturating_add(chunk.len() as u64);
        if self.bytes > self.limit {
            // Too large: nothing more is kept, and what was kept is let go.
            self.data = Vec::new();
        } else {
            self.data.extend_from_slice(chunk);
        }
    }

    /// The sheets' reports; findings about the workbook itself go to `findings`.
    pub(crate) fn finish(
        self,
        policy: &Policy,
        path: &str,
        depth: u32,
        findings: &mut Findings,
    ) -> Vec<FileReport> {
        let not_checked = |findings: &mut Findings, why: String| {
            findings.add(
                rules::SPREADSHEET_UNCHECKED,
                Severity::Review,
                1,
                None,
                None,
            );
            findings.detail(rules::SPREADSHEET_UNCHECKED, why);
        };
        if self.bytes > self.limit {
            not_checked(
                findings,
                format!(
                    "too large to check: {} bytes, limit {}",
                    self.bytes, self.limit
                ),
            );
            return Vec::new();
        }
        if self.data.starts_with(b"PK\x03\x04") {
            match expanded_size(&self.data) {
                Some(expanded) if expanded > self.limit.saturating_mul(EXPANSION_FACTOR) => {
                    not_checked(
                        findings,
                        format!(
                            "too large to check: its parts expand to {expanded} bytes, limit {}",
                            self.limit.saturating_mul(EXPANSION_FACTOR)
                        ),
                    );
                    return Vec::new();
                }
                Some(_) => {}
                None => {
                    not_checked(findings, "unreadable: not a valid workbook".into());
                    return Vec::new();
                }
            }
            let expand_limit = self.limit.saturating_mul(EXPANSION_FACTOR);
            let ods = ods_cost(&self.data, expand_limit);
            if ods.cells > MAX_SHEET_CELLS {
                not_checked(
                    findings,
                    format!(
                        "too large to check: its sheets span {} cells, limit {MAX_SHEET_CELLS}",
                        ods.cells
                    ),
                );
                return Vec::new();
            }
            if ods.value_bytes > expand_limit {
                not_checked(
                    findings,
                    format!(
                        "too large to check: its repeated values expand to {} bytes, limit {expand_limit}",
                        ods.value_bytes
                    ),
                );
                return Vec::new();
            }
        }
        if self.data.starts_with(xls::CFB_MAGIC) {
            // An .xls (whatever its name: calamine tries one first): calamine reads all its
            // sheets when it opens it, shared strings copied into every cell showing them.
            let expand_limit = self.limit.saturating_mul(EXPANSION_FACTOR);
            match xls::xls_cost(&self.data, expand_limit) {
                xls::XlsScan::Damaged(why) => {
                    not_checked(
                        findings,
                        format!("unreadable: damaged compound file ({why})"),
                    );
                    return Vec::new();
                }
                xls::XlsScan::NoWorkbook => {}
                xls::XlsScan::Cost(cost) => {
                    let cells = cost.cells.max(cost.span).max(cost.reserve);
                    let why = if cells > MAX_SHEET_CELLS {
                        Some(format!(
                            "too large to check: its sheets span {cells} cells, limit {MAX_SHEET_CELLS}"
                        ))
                    } else if cost.string_bytes > expand_limit {
                        Some(format!(
                            "too large to check: its cells' text expands to {} bytes, limit {expand_limit}",
                            cost.string_bytes
                        ))
                    } else if cost.walked > expand_limit {
                        Some(format!(
                            "too large to check: its sheets' records come to more than {expand_limit} bytes"
                        ))
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        not_checked(findings, why);
                        return Vec::new();
                    }
                }
            }
        }
        let opened =
            guarded(|| calamine::open_workbook_auto_from_rs(Cursor::new(&self.data[..])).ok());
        let mut book = match opened {
            Some(book) => book,
            None => {
                not_checked(findings, "unreadable: not a valid workbook".into());
                return Vec::new();
            }
        };
        let mut reports = Vec::new();
        let mut unreadable = Vec::new();
        let mut too_large = Vec::new();
        let expand_limit = self.limit.saturating_mul(EXPANSION_FACTOR);
        // .xlsx and .xlsb: the cells as read, a shared string once however many cells show it
        // (`worksheet_range` would copy it into each of them).
        let by_ref = matches!(book, calamine::Sheets::Xlsx(_) | calamine::Sheets::Xlsb(_));
        for name in book.sheet_names() {
            if guarded(|| Some(sheet_area(&mut book, &name))).unwrap_or(u64::MAX) > MAX_SHEET_CELLS
            {
                unreadable.push(name);
                continue;
            }
            let sheet_path = format!("{path}!/{name}");
            let read = if by_ref {
                guarded(|| {
                    let range = book.worksheet_range_ref(&name).ok()?;
                    Some(read_sheet(
                        policy,
                        &sheet_path,
                        depth,
                        &range,
                        expand_limit,
                        ref_text,
                    ))
                })
            } else {
                guarded(|| {
                    let range = book.worksheet_range(&name).ok()?;
                    Some(read_sheet(
                        policy,
                        &sheet_path,
                        depth,
                        &range,
                        expand_limit,
                        |c: &Data| Cow::Owned(c.to_string()),
                    ))
                })
            };
            match read {
                Some(Ok(sheet)) => reports.extend(sheet),
                Some(Err(bytes)) => too_large.push(bytes),
                None => unreadable.push(name),
            }
        }
        if !unreadable.is_empty() {
            not_checked(
                findings,
                format!("unreadable sheet(s): {}", unreadable.len()),
            );
        }
        if let Some(largest) = too_large.iter().max() {
            not_checked(
                findings,
                format!(
                    "too large to check: {} sheet(s), the largest's cells come to {largest} bytes, limit {expand_limit}",
                    too_large.len()
                ),
            );
        }
        reports
    }
}

/// A sheet rendered as CSV through the table and identifier rules, or, when its cells' text
/// comes to more than `limit` bytes (a long shared string shown in many cells), that size:
/// the text is measured before any of it is rendered.
fn read_sheet<T>(
    policy: &Policy,
    path: &str,
    depth: u32,
    range: &calamine::Range<T>,
    limit: u64,
    text: impl Fn(&T) -> Cow<'_, str>,
) -> Result<Vec<FileReport>, u64>
where
    T: calamine::CellType,
{
    let mut bytes = 0u64;
    for row in range.rows() {
        for cell in row {
            // The text, a separator or line end, and quotes.
            bytes = bytes.saturating_add(text(cell).len() as u64 + 3);
        }
    }
    if bytes > limit {
        return Err(bytes);
    }
    let mut sheet = FileChecker::sheet(policy, path, depth + 1);
    let mut line = Vec::new();
    for row in range.rows() {
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            csv_cell(&mut line, &text(cell));
            if line.len() >= FEED_BYTES {
                sheet.feed(&line);
                line.clear();
            }
        }
        line.push(b'\n');
        sheet.feed(&line);
        line.clear();
    }
    Ok(sheet.finish())
}

/// A cell of `worksheet_range_ref` as text, a shared string borrowed.
fn ref_text<'a>(cell: &'a DataRef<'_>) -> Cow<'a, str> {
    match cell {
        DataRef::SharedString(s) => Cow::Borrowed(s),
        DataRef::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(Data::from(other.clone()).to_string()),
    }
}

/// The cells `name`'s range spans (rows × columns of its used cells), streamed from the
/// sheet without building the range; 0 when unknown. Only .xlsx and .xlsb are measured here:
/// an .xls is read whole when it is opened (its pre-scan measured its ranges first: calamine
/// takes a column as 16 bits, so 65,536 × 65,536) and calamine caps .ods itself.
fn sheet_area<RS: std::io::Read + std::io::Seek>(
    book: &mut calamine::Sheets<RS>,
    name: &str,
) -> u64 {
    let mut extent: Option<((u32, u32), (u32, u32))> = None;
    let mut track = |(r, c): (u32, u32)| {
        let ((r0, c0), (r1, c1)) = extent.unwrap_or(((r, c), (r, c)));
        extent = Some(((r0.min(r), c0.min(c)), (r1.max(r), c1.max(c))));
    };
    match book {
        calamine::Sheets::Xlsx(x) => {
            if let Ok(mut cells) = x.worksheet_cells_reader(name) {
                while let Ok(Some(cell)) = cells.next_cell() {
                    track(cell.get_position());
                }
            }
        }
        calamine::Sheets::Xlsb(x) => {
            if let Ok(mut cells) = x.worksheet_cells_reader(name) {
                while let Ok(Some(cell)) = cells.next_cell() {
                    track(cell.get_position());
                }
            }
        }
        _ => {}
    }
    extent.map_or(0, |((r0, c0), (r1, c1))| {
        (u64::from(r1 - r0) + 1) * (u64::from(c1 - c0) + 1)
    })
}

/// Runs a calamine call: a panic inside it (an arithmetic overflow on a crafted cell
/// reference, in builds with overflow checks) makes the workbook unreadable, not the step fail.
fn guarded<T>(read: impl FnOnce() -> Option<T>) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read))
        .ok()
        .flatten()
}

/// calamine's caps on an .ods table: the columns of a row, the rows of a table.
const ODS_MAX_COLUMNS: u64 = 16_384;
const ODS_MAX_ROWS: u64 = 1_048_576;

/// What calamine holds once it has opened an .ods: it reads every table of `content.xml` at
/// once, expanding repeated rows and cells (`table:number-rows-repeated`,
/// `table:number-columns-repeated`), and a repeated value is copied into every cell it covers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct OdsCost {
    /// The cells of all tables: in each, from the first to the last row holding a value, by
    /// the widest such row up to its last value. Empty repeated cells and rows after the last
    /// value (as office suites write them) cost nothing.
    cells: u64,
    /// The bytes of the values once copied (each cell element's bytes, times its repeats).
    value_bytes: u64,
}

/// The [`OdsCost`] of a workbook (zero when it is not an .ods), from `content.xml` read up to
/// `max_bytes`.
fn ods_cost(data: &[u8], max_bytes: u64) -> OdsCost {
    let mut cost = OdsCost::default();
    let Ok(mut zip) = zip::ZipArchive::new(Cursor::new(data)) else {
        return cost;
    };
    let mut xml = Vec::new();
    match zip.by_name("content.xml") {
        Ok(part) => {
            // A read error (a damaged entry's checksum, found only at its end) keeps what was
            // read: calamine parses the same bytes before it sees the error.
            let _ = std::io::Read::read_to_end(&mut std::io::Read::take(part, max_bytes), &mut xml);
        }
        Err(_) => return cost,
    }
    let repeated = |tag: &[u8], attr: &[u8]| -> u64 {
        memchr::memmem::find(tag, attr)
            .and_then(|i| {
                let rest = tag.get(i + attr.len()..)?;
                let end = rest.iter().position(|b| *b == b'"')?;
                std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
            })
            .unwrap_or(1)
    };
    let (mut rows, mut width) = (0u64, 0u64);
    let (mut first, mut last) = (None::<u64>, 0u64);
    let (mut row_start, mut row_repeats, mut at_col) = (0u64, 1u64, 0u64);
    // The open cell holding a value: where its element starts, and the copies made of it.
    let mut open_cell: Option<(usize, u64)> = None;
    let table_cells = |first: Option<u64>, last: u64, width: u64| {
        first.map_or(0, |f| last.saturating_sub(f).saturating_mul(width))
    };
    let mut rest = &xml[..];
    while let Some(i) = memchr::memchr(b'<', rest) {
        let tag_start = xml.len() - rest.len() + i;
        rest = &rest[i + 1..];
        let end = memchr::memchr(b'>', rest).unwrap_or(rest.len());
        let tag = &rest[..end];
        let tag_end = tag_start + 1 + end + 1;
        if tag.starts_with(b"table:table ") || tag.starts_with(b"table:table>") {
            cost.cells = cost.cells.saturating_add(table_cells(first, last, width));
            (rows, width, first, last) = (0, 0, None, 0);
        } else if tag.starts_with(b"table:table-row")
            && matches!(
                tag.get(15),
                None | Some(b' ' | b'/' | b'\n' | b'\t' | b'\r')
            )
        {
            row_start = rows;
            row_repeats = repeated(tag, b"table:number-rows-repeated=\"").min(ODS_MAX_ROWS);
            rows = rows.saturating_add(row_repeats);
            at_col = 0;
        } else if tag.starts_with(b"table:table-cell")
            || tag.starts_with(b"table:covered-table-cell")
        {
            let columns = repeated(tag, b"table:number-columns-repeated=\"");
            at_col = at_col.saturating_add(columns);
            let closed = tag.ends_with(b"/");
            let has_value = memchr::memmem::find(tag, b"office:value-type").is_some() || !closed;
            if has_value {
                width = width.max(at_col);
                first = Some(first.unwrap_or(row_start));
                last = rows;
                let copies = columns.min(ODS_MAX_COLUMNS).saturating_mul(row_repeats);
                if closed {
                    let bytes = (tag_end - tag_start) as u64;
                    cost.value_bytes = cost
                        .value_bytes
                        .saturating_add(bytes.saturating_mul(copies));
                } else {
                    open_cell = Some((tag_start, copies));
                }
            }
        } else if tag.starts_with(b"/table:table-cell")
            || tag.starts_with(b"/table:covered-table-cell")
        {
            if let Some((start, copies)) = open_cell.take() {
                let bytes = tag_end.saturating_sub(start) as u64;
                cost.value_bytes = cost
                    .value_bytes
                    .saturating_add(bytes.saturating_mul(copies));
            }
        }
        rest = &rest[end.min(rest.len())..];
    }
    if let Some((start, copies)) = open_cell {
        // Cut short: the cell runs to the end of what was read.
        let bytes = xml.len().saturating_sub(start) as u64;
        cost.value_bytes = cost
            .value_bytes
            .saturating_add(bytes.saturating_mul(copies));
    }
    cost.cells = cost.cells.saturating_add(table_cells(first, last, width));
    cost
}

/// The sum of a zip's entries' uncompressed sizes, from its central directory.
fn expanded_size(data: &[u8]) -> Option<u64> {
    let mut zip = zip::ZipArchive::new(Cursor::new(data)).ok()?;
    let mut total = 0u64;
    for i in 0..zip.len() {
        total = total.saturating_add(zip.by_index_raw(i).ok()?.size());
    }
    Some(total)
}

/// Appends a cell's text as a CSV field (quoted when it holds a delimiter, a quote or a line
/// break).
fn csv_cell(out: &mut Vec<u8>, text: &str) {
    if text.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(text.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use crate::checks::identifiers::tests::synthetic_nhs;
    use crate::checks::{check_bytes, Policy, Severity};

    /// A minimal .xlsx: each sheet a name and rows of inline strings or numbers.
    pub(crate) fn xlsx(sheets: &[(&str, Vec<Vec<String>>)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        let mut put = |name: &str, body: String| {
            w.start_file(name, opts).unwrap();
            w.write_all(body.as_bytes()).unwrap();
        };
        let mut types = String::from(
            r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>"#,
        );
        let mut book = String::from(
            r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>"#,
        );
        let mut rels = String::from(
            r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">"#,
        );
        let mut parts = Vec::new();
        for (i, (name, rows)) in sheets.iter().enumerate() {
            let n = i + 1;
            types.push_str(&format!(r#"<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>"#));
            book.push_str(&format!(
                r#"<sheet name="{name}" sheetId="{n}" r:id="rId{n}"/>"#
            ));
            rels.push_str(&format!(r#"<Relationship Id="rId{n}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet{n}.xml"/>"#));
            let mut sheet = String::from(
                r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
            );
            for (r, row) in rows.iter().enumerate() {
                sheet.push_str(&format!(r#"<row r="{}">"#, r + 1));
                for (c, v) in row.iter().enumerate() {
                    let at = format!("{}{}", (b'A' + c as u8) as char, r + 1);
                    if v.parse::<f64>().is_ok() {
                        sheet.push_str(&format!(r#"<c r="{at}"><v>{v}</v></c>"#));
                    } else {
                        sheet.push_str(&format!(
                            r#"<c r="{at}" t="inlineStr"><is><t>{v}</t></is></c>"#
                        ));
                    }
                }
                sheet.push_str("</row>");
            }
            sheet.push_str("</sheetData></worksheet>");
            parts.push((format!("xl/worksheets/sheet{n}.xml"), sheet));
        }
        types.push_str("</Types>");
        book.push_str("</sheets></workbook>");
        rels.push_str("</Relationships>");
        put("[Content_Types].xml", types);
        put("_rels/.rels", r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.into());
        put("xl/workbook.xml", book);
        put("xl/_rels/workbook.xml.rels", rels);
        for (name, body) in parts {
            put(&name, body);
        }
        w.finish().unwrap().into_inner()
    }

    fn rows(data: &[&[&str]]) -> Vec<Vec<String>> {
        data.iter()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect()
    }

    #[test]
    fn when_a_workbook_has_sheets_then_each_goes_through_the_table_and_identifier_rules() {
        let p = Policy::default();
        let nhs = synthetic_nhs(5);
        let book = xlsx(&[
            (
                "Counts",
                rows(&[&["area", "count"], &["north", "4"], &["south", "120"]]),
            ),
            ("Clean", rows(&[&["area", "count"], &["north", "40"]])),
            ("Ids", rows(&[&["note"], &[&format!("id {nhs}")]])),
        ]);
        let r = check_bytes(&p, "out/book.xlsx", &book);
        let paths: Vec<&str> = r.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "out/book.xlsx",
                "out/book.xlsx!/Counts",
                "out/book.xlsx!/Clean",
                "out/book.xlsx!/Ids"
            ]
        );
        assert!(r[0].findings.is_empty(), "{:?}", r[0].findings);
        let small = &r[1].findings[0];
        assert_eq!(
            (small.rule.as_str(), small.count),
            ("table-small-counts", 1)
        );
        assert_eq!(small.locations[0].line, 2, "row 2 of the sheet");
        assert_eq!(r[2].verdict, Severity::Pass, "{:?}", r[2].findings);
        assert_eq!(r[3].findings[0].rule, "pii-nhs-number");
        assert_eq!(r[3].detected_type, "spreadsheet sheet");
        assert!(!serde_json::to_string(&r).unwrap().contains(&nhs));
    }

    #[test]
    fn when_a_count_equals_the_threshold_in_a_sheet_then_it_is_not_small() {
        let p = Policy::default();
        let book = xlsx(&[("S", rows(&[&["area", "count"], &["north", "10"]]))]);
        assert_eq!(check_bytes(&p, "b.xlsx", &book)[1].verdict, Severity::Pass);
    }

    #[test]
    fn when_a_workbook_is_over_the_limit_then_it_is_too_large_to_check_for_review() {
        let mut p = Policy::default();
        let book = xlsx(&[("S", rows(&[&["area", "count"], &["north", "4"]]))]);
        p.tables.max_spreadsheet_bytes = book.len() as u64 - 1;
        let r = check_bytes(&p, "b.xlsx", &book);
        assert_eq!(r.len(), 1, "no sheet read");
        assert_eq!(r[0].findings[0].rule, "spreadsheet-not-checked");
        assert_eq!(r[0].verdict, Severity::Review);
        assert!(r[0].findings[0]
            .detail
            .as_deref()
            .unwrap()
            .starts_with("too large to check"));
        p.tables.max_spreadsheet_bytes = book.len() as u64;
        assert_eq!(
            check_bytes(&p, "b.xlsx", &book).len(),
            2,
            "at the limit: read"
        );
    }

    #[test]
    fn when_a_workbook_expands_far_beyond_its_size_then_it_is_not_read() {
        let mut p = Policy::default();
        let big: Vec<Vec<String>> = (0..2000)
            .map(|i| vec![format!("row{i}"), "100".into()])
            .collect();
        let book = xlsx(&[("S", big)]);
        // Stored entries: the parts add up to less than the file, well within 4 times it.
        p.tables.max_spreadsheet_bytes = book.len() as u64;
        assert!(check_bytes(&p, "b.xlsx", &book).len() > 1);
        let mut deflated = Vec::new();
        {
            let mut w = zip::ZipWriter::new(std::io::Cursor::new(&mut deflated));
            let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&book)).unwrap();
            for i in 0..archive.len() {
                let mut f = archive.by_index(i).unwrap();
                let name = f.name().unwrap().to_string();
                let mut body = Vec::new();
                std::io::Read::read_to_end(&mut f, &mut body).unwrap();
                w.start_file(
                    name,
                    zip::write::SimpleFileOptions::default()
                        .compression_method(zip::CompressionMethod::Deflated),
                )
                .unwrap();
                w.write_all(&body).unwrap();
            }
            w.finish().unwrap();
        }
        p.tables.max_spreadsheet_bytes = deflated.len() as u64;
        let r = check_bytes(&p, "b.xlsx", &deflated);
        assert_eq!(r.len(), 1, "{:?}", r[0].findings);
        assert!(r[0].findings[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("expand"));
    }

    #[test]
    fn when_a_sheet_has_cells_at_opposite_corners_then_it_is_not_read_whole() {
        // Found by `make fuzz` (checks_content): calamine made the two cells one dense range
        // of 17 billion cells, and the allocation aborted the process.
        let book = edited(&xlsx(&[("Far", rows(&[&["1", "2"]]))]), |part| {
            part.replace(r#"r="B1""#, r#"r="XFD1048576""#)
        });
        let r = check_bytes(&Policy::default(), "out/far.xlsx", &book);
        assert_eq!(r.len(), 1, "no sheet read: {r:?}");
        let f = &r[0].findings;
        assert!(
            f.iter().any(|f| f.rule == "spreadsheet-not-checked"),
            "{f:?}"
        );
    }

    /// The workbook `book` with every part passed through `edit`.
    fn edited(book: &[u8], edit: impl Fn(String) -> String) -> Vec<u8> {
        let mut read = zip::ZipArchive::new(std::io::Cursor::new(book)).unwrap();
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for i in 0..read.len() {
            let mut part = read.by_index(i).unwrap();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut part, &mut text).unwrap();
            w.start_file(
                part.name().unwrap().to_string(),
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
            w.write_all(edit(text).as_bytes()).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn when_a_cell_reference_overflows_calamine_then_the_sheet_is_unreadable_not_a_panic() {
        // Found by `make fuzz` (checks_content): calamine's column arithmetic overflowed on
        // `r="APPROVED"` (a panic where overflow checks are on: tests, the local stack).
        let book = edited(&xlsx(&[("S", rows(&[&["1", "2"]]))]), |part| {
            part.replace(r#"r="B1""#, r#"r="APPROVED""#)
        });
        let r = check_bytes(&Policy::default(), "out/ref.xlsx", &book);
        let f = &r[0].findings;
        assert!(
            f.iter().any(|f| f.rule == "spreadsheet-not-checked"),
            "{f:?}"
        );
    }

    /// A minimal .ods whose table holds `rows` (raw `table:table-row` XML).
    fn ods(rows: &str) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        let mut put = |name: &str, body: &str| {
            w.start_file(name, opts).unwrap();
            w.write_all(body.as_bytes()).unwrap();
        };
        put("mimetype", "application/vnd.oasis.opendocument.spreadsheet");
        put(
            "META-INF/manifest.xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#,
        );
        put(
            "content.xml",
            &format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet><table:table table:name="S">{rows}</table:table></office:spreadsheet></office:body></office:document-content>"#
            ),
        );
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn when_an_ods_repeats_a_value_over_millions_of_cells_then_it_is_not_read_whole() {
        // Found by `make fuzz` (checks_content): calamine expanded the repeated cells (up to
        // its own cap of 100 million) and the allocation exhausted memory.
        let bomb = ods(
            r#"<table:table-row table:number-rows-repeated="1000000"><table:table-cell table:number-columns-repeated="1000" office:value-type="string"><text:p>x</text:p></table:table-cell></table:table-row>"#,
        );
        let r = check_bytes(&Policy::default(), "out/bomb.ods", &bomb);
        assert_eq!(r.len(), 1, "no sheet read: {r:?}");
        let f = &r[0].findings;
        assert!(
            f.iter().any(|f| f.rule == "spreadsheet-not-checked"),
            "{f:?}"
        );
        // As office suites write them: trailing empty cells and rows repeated, nothing after.
        let usual = ods(
            r#"<table:table-row><table:table-cell office:value-type="float" office:value="4"><text:p>4</text:p></table:table-cell><table:table-cell table:number-columns-repeated="1023"/></table:table-row><table:table-row table:number-rows-repeated="1048575"><table:table-cell table:number-columns-repeated="1024"/></table:table-row>"#,
        );
        let r = check_bytes(&Policy::default(), "out/usual.ods", &usual);
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(r[0].findings.is_empty(), "{:?}", r[0].findings);
    }

    #[test]
    fn when_an_ods_repeats_a_long_value_then_its_copies_count_and_it_is_not_read_whole() {
        // Found by `make fuzz` (checks_content, seed 1796220045065723711, case 35,028): a
        // 38 KB string in cells repeated 480 times in rows repeated 480 times, 7 million cells
        // (under the cell limit), which calamine copies into every cell it covers: a 230 KB
        // file asked for 8.7 GB and the process ran out of memory. Here 64 KB in 16 × 16,384
        // cells: 17 GB from a 64 KB file.
        let long = "1,".repeat(32 * 1024);
        let cell = |repeats: u32| {
            format!(
                r#"<table:table-cell table:number-columns-repeated="{repeats}" office:value-type="string"><text:p>{long}</text:p></table:table-cell>"#
            )
        };
        let bomb = ods(&format!(
            r#"<table:table-row table:number-rows-repeated="16">{}</table:table-row>"#,
            cell(16_384)
        ));
        assert!(bomb.len() < 70 * 1024, "{}", bomb.len());
        let r = check_bytes(&Policy::default(), "out/bomb.ods", &bomb);
        assert_eq!(r.len(), 1, "no sheet read: {r:?}");
        let f = &r[0].findings[0];
        assert_eq!(f.rule, "spreadsheet-not-checked");
        let detail = f.detail.as_deref().unwrap();
        assert!(
            detail.starts_with("too large to check: its repeated values expand to"),
            "{detail}"
        );
        // The same value repeated within the limit: read.
        let fits = ods(&format!("<table:table-row>{}</table:table-row>", cell(2)));
        let r = check_bytes(&Policy::default(), "out/fits.ods", &fits);
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(r[0].findings.is_empty(), "{:?}", r[0].findings);
    }

    #[test]
    fn when_an_ods_bomb_has_a_bad_checksum_then_it_is_still_measured_and_not_read() {
        // Found by `make fuzz` (checks_content, seed 1796221479727402139, case 29,497): the
        // repeated value damaged, content.xml failed its CRC only at its end, so the pre-scan
        // measured nothing while calamine had already expanded the cells.
        let long = "1,".repeat(32 * 1024);
        let mut bomb = ods(&format!(
            r#"<table:table-row table:number-rows-repeated="16"><table:table-cell table:number-columns-repeated="16384" office:value-type="string"><text:p>{long}</text:p></table:table-cell></table:table-row>"#
        ));
        let at = bomb.windows(4).position(|w| w == b"1,1,").unwrap() + 1000;
        bomb[at] = b'2';
        let r = check_bytes(&Policy::default(), "out/bomb.ods", &bomb);
        assert_eq!(r.len(), 1, "no sheet read: {r:?}");
        let f = &r[0].findings[0];
        assert_eq!(f.rule, "spreadsheet-not-checked");
        assert!(
            f.detail
                .as_deref()
                .unwrap()
                .starts_with("too large to check"),
            "{:?}",
            f.detail
        );
    }

    /// `book` with the part `name` added.
    fn with_part(book: &[u8], name: &str, body: &str) -> Vec<u8> {
        let mut read = zip::ZipArchive::new(std::io::Cursor::new(book)).unwrap();
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for i in 0..read.len() {
            w.raw_copy_file(read.by_index(i).unwrap()).unwrap();
        }
        w.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(body.as_bytes()).unwrap();
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn when_a_long_shared_string_fills_many_cells_then_the_sheet_is_too_large_to_check() {
        // One 100 KB shared string shown in `cells` cells: calamine's `worksheet_range` copied
        // it into every cell (200 MB for 2,000 cells of a 110 KB file), and all of it was
        // then scanned. Now the cells are read by reference and their text measured first.
        let book = |cells: u32| {
            let cell_rows: String = (1..=cells)
                .map(|r| format!(r#"<row r="{r}"><c r="A{r}" t="s"><v>0</v></c></row>"#))
                .collect();
            let book = edited(&xlsx(&[("S", rows(&[&["1"]]))]), |part| {
                part.replace(r#"<row r="1"><c r="A1"><v>1</v></c></row>"#, &cell_rows)
            });
            with_part(
                &book,
                "xl/sharedStrings.xml",
                &format!(
                    r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="{cells}" uniqueCount="1"><si><t>{}</t></si></sst>"#,
                    "x".repeat(100 * 1024)
                ),
            )
        };
        let bomb = book(2_000);
        assert!(bomb.len() < 200 * 1024, "{}", bomb.len());
        let r = check_bytes(&Policy::default(), "out/shared.xlsx", &bomb);
        assert_eq!(r.len(), 1, "no sheet read: {:?}", r[0].findings);
        let f = &r[0].findings[0];
        assert_eq!(f.rule, "spreadsheet-not-checked");
        let detail = f.detail.as_deref().unwrap();
        assert!(
            detail.starts_with("too large to check: 1 sheet(s)"),
            "{detail}"
        );
        // A few cells showing it: read, each row the whole string.
        let r = check_bytes(&Policy::default(), "out/shared.xlsx", &book(10));
        assert_eq!(r.len(), 2, "{:?}", r[0].findings);
        assert_eq!(r[1].path, "out/shared.xlsx!/S");
    }

    #[test]
    fn when_an_xls_has_sheets_then_each_goes_through_the_table_and_identifier_rules() {
        use super::xls::tests::{label, label_sst, number, xls};
        let nhs = synthetic_nhs(5);
        let counts = [
            label_sst(0, 0, 0),
            label_sst(0, 1, 1),
            label_sst(1, 0, 2),
            number(1, 1, 4.0),
            label_sst(2, 0, 3),
            number(2, 1, 120.0),
        ]
        .concat();
        let ids = [label(0, 0, "note"), label(1, 0, &format!("id {nhs}"))].concat();
        let book = xls(
            &["area", "count", "north", "south"],
            &[("Counts", counts), ("Ids", ids)],
        );
        let r = check_bytes(&Policy::default(), "out/old.xls", &book);
        let paths: Vec<&str> = r.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            ["out/old.xls", "out/old.xls!/Counts", "out/old.xls!/Ids"]
        );
        assert!(r[0].findings.is_empty(), "{:?}", r[0].findings);
        let small = &r[1].findings[0];
        assert_eq!(
            (small.rule.as_str(), small.count),
            ("table-small-counts", 1)
        );
        assert_eq!(small.locations[0].line, 2, "row 2 of the sheet");
        assert_eq!(r[2].findings[0].rule, "pii-nhs-number");
    }

    #[test]
    fn when_an_xls_shows_a_long_shared_string_in_many_cells_then_it_is_not_read() {
        // One 30 KB shared string in 5,000 `LabelSst` cells: a 100 KB file that calamine made
        // 150 MB of when it opened it (100,000 cells: 3 GB, the pre-scan's own test). Now the
        // copies are counted from the records and calamine is not asked.
        use super::xls::tests::{label_sst, xls};
        let long = "1,".repeat(15 * 1024);
        let book = |cells: u32| {
            let cells: Vec<u8> = (0..cells)
                .flat_map(|i| label_sst((i / 2) as u16, (i % 2) as u16, 0))
                .collect();
            xls(&[&long], &[("S", cells)])
        };
        let bomb = book(5_000);
        assert!(bomb.len() < 110 * 1024, "{}", bomb.len());
        let started = std::time::Instant::now();
        let r = check_bytes(&Policy::default(), "out/bomb.xls", &bomb);
        assert_eq!(r.len(), 1, "no sheet read: {r:?}");
        let f = &r[0].findings[0];
        assert_eq!(f.rule, "spreadsheet-not-checked");
        let detail = f.detail.as_deref().unwrap();
        assert_eq!(
            detail,
            "too large to check: its cells' text expands to 153600000 bytes, limit 134217728"
        );
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
        // The same string in a few cells: read.
        let r = check_bytes(&Policy::default(), "out/fits.xls", &book(10));
        assert_eq!(r.len(), 2, "{:?}", r[0].findings);
        assert!(r[0].findings.is_empty(), "{:?}", r[0].findings);
    }

    #[test]
    fn when_an_xls_compound_file_is_damaged_or_has_no_workbook_then_it_is_unreadable() {
        use super::xls::tests::{cfb, difat_chain};
        let r = check_bytes(
            &Policy::default(),
            "out/doc.xls",
            &cfb("WordDocument", b"x"),
        );
        assert_eq!(r[0].findings[0].rule, "spreadsheet-not-checked");
        assert!(r[0].findings[0]
            .detail
            .as_deref()
            .unwrap()
            .starts_with("unreadable"));
        // DIFAT sectors listing the allocation table's sector many times (calamine copies it
        // each time: 127 times the file for a file of DIFAT sectors).
        let book = difat_chain(&cfb("Workbook", b""), 20);
        let r = check_bytes(&Policy::default(), "out/fat.xls", &book);
        assert_eq!(
            r[0].findings[0].detail.as_deref(),
            Some("unreadable: damaged compound file (an allocation table larger than the file)")
        );
    }

    #[test]
    fn when_a_spreadsheet_is_not_a_workbook_then_it_is_unreadable_for_review() {
        let p = Policy::default();
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        z.start_file("x.txt", zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(b"hello").unwrap();
        let z = z.finish().unwrap().into_inner();
        let r = check_bytes(&p, "fake.xlsx", &z);
        assert_eq!(r[0].findings[0].rule, "spreadsheet-not-checked");
        assert!(r[0].findings[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("unreadable"));
    }
}
