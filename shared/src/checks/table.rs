//! Statistical disclosure control on CSV/TSV tables, parsed incrementally: small counts and
//! record-level data.
//!
//! The rules follow what ACRO and the SDC handbooks apply to a frequency table without its
//! code: a cell that is a count above 0 and below the threshold (10 by default; zeros when
//! configured) is a small cell. Without the code, "is a count" is a heuristic on the column:
//! its header says so (`n`, `count`, `total`, `patients`...) or every value in it is a whole
//! number and the header does not name an id, a year, an age or a code. Record-level data is a
//! table of at least `record_level_min_rows` rows where an identifier-like column (`id`,
//! `nhs`, `name`, `postcode`, `dob`...) holds a different value on (almost) every row.
//! Memory is bounded: a cell keeps its first [`MAX_CELL`] bytes, at most [`MAX_COLUMNS`] columns
//! are tracked, and uniqueness is measured on the first [`UNIQUE_SAMPLE`] rows.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use super::identifiers::{date_at, mask};
use super::policy::Policy;
use super::report::{Findings, Location, MAX_LOCATIONS};
use super::rules;

/// Bytes of a cell kept (numbers, dates and ids are short).
pub(crate) const MAX_CELL: usize = 64;
/// Columns tracked.
pub(crate) const MAX_COLUMNS: usize = 512;
/// Rows whose identifier-like values are kept (as hashes) to measure uniqueness.
pub(crate) const UNIQUE_SAMPLE: usize = 10_000;

const COUNT_WORDS: &[&str] = &[
    "n",
    "count",
    "counts",
    "freq",
    "frequency",
    "number",
    "num",
    "total",
    "patients",
    "cases",
    "people",
    "persons",
    "deaths",
    "admissions",
    "events",
    "respondents",
    "individuals",
];
const NOT_COUNT_WORDS: &[&str] = &[
    "id", "year", "yr", "age", "code", "date", "dob", "month", "day", "week", "time", "index",
    "idx", "rank", "postcode", "zip", "score",
];
const IDENTIFIER_WORDS: &[&str] = &[
    "id", "nhs", "patient", "name", "surname", "forename", "postcode", "dob", "birth", "address",
    "email", "phone", "mrn", "chi",
];

fn words(header: &str) -> impl Iterator<Item = &str> {
    header
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
}

fn any_word(header: &str, list: &[&str]) -> bool {
    words(header).any(|w| list.contains(&w))
}

#[derive(Debug, Default)]
struct Column {
    header: String,
    ints: u64,
    non_ints: u64,
    small: u64,
    small_locations: Vec<Location>,
    identifier: bool,
    dob: bool,
    unique: HashSet<u64>,
    sampled: u64,
}

/// The incremental parser and its per-column statistics.
#[derive(Debug)]
pub(crate) struct TableScan {
    delimiter: u8,
    threshold: u64,
    flag_zeros: bool,
    in_quotes: bool,
    quote_seen: bool,
    at_field_start: bool,
    cell: Vec<u8>,
    cell_len: usize,
    col: usize,
    /// Records ended so far (the header included).
    row: u64,
    header_decided: bool,
    first_row: Vec<Vec<u8>>,
    columns: Vec<Column>,
    dob_count: u64,
    dob_locations: Vec<Location>,
    dob_shape: Option<String>,
}

impl TableScan {
    pub(crate) fn new(delimiter: u8, policy: &Policy) -> Self {
        Self {
            delimiter,
            threshold: policy.tables.small_count_threshold,
            flag_zeros: policy.tables.flag_zeros,
            in_quotes: false,
            quote_seen: false,
            at_field_start: true,
            cell: Vec::with_capacity(MAX_CELL),
            cell_len: 0,
            col: 0,
            row: 0,
            header_decided: false,
            first_row: Vec::new(),
            columns: Vec::new(),
            dob_count: 0,
            dob_locations: Vec::new(),
            dob_shape: None,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        let room = MAX_CELL.saturating_sub(self.cell.len());
        self.cell.extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.cell_len += bytes.len();
        if !bytes.is_empty() {
            self.at_field_start = false;
        }
    }

    /// Feeds the next bytes of the file.
    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.in_quotes {
                match memchr::memchr(b'"', data) {
                    Some(q) => {
                        self.push(&data[..q]);
                        self.in_quotes = false;
                        self.quote_seen = true;
                        data = &data[q + 1..];
                    }
                    None => {
                        self.push(data);
                        return;
                    }
                }
                continue;
            }
            if self.quote_seen {
                self.quote_seen = false;
                if data[0] == b'"' {
                    // A doubled quote inside a quoted cell is a literal quote.
                    self.push(b"\"");
                    self.in_quotes = true;
                    data = &data[1..];
                    continue;
                }
            }
            match memchr::memchr3(self.delimiter, b'\n', b'"', data) {
                Some(i) => {
                    self.push(&data[..i]);
                    match data[i] {
                        b'"' => {
                            if self.at_field_start || self.cell.iter().all(u8::is_ascii_whitespace)
                            {
                                self.in_quotes = true;
                                self.at_field_start = false;
                            } else {
                                self.push(b"\"");
                            }
                        }
                        b'\n' => {
                            self.end_cell();
                            self.end_record();
                        }
                        _ => self.end_cell(),
                    }
                    data = &data[i + 1..];
                }
                None => {
                    self.push(data);
                    return;
                }
            }
        }
    }

    fn end_cell(&mut self) {
        let mut cell = std::mem::take(&mut self.cell);
        while cell.last().is_some_and(|b| *b == b'\r') {
            cell.pop();
        }
        let overlong = self.cell_len > MAX_CELL;
        if !self.header_decided {
            if self.first_row.len() < MAX_COLUMNS {
                self.first_row.push(cell.clone());
            }
        } else if !overlong {
            self.data_cell(&cell);
        } else if let Some(c) = self.columns.get_mut(self.col) {
            c.non_ints += 1;
        }
        cell.clear();
        self.cell = cell;
        self.cell_len = 0;
        self.col += 1;
        self.at_field_start = true;
    }

    fn end_record(&mut self) {
        if !self.header_decided {
            let blank = self
                .first_row
                .iter()
                .all(|c| c.iter().all(u8::is_ascii_whitespace));
            if blank {
                self.first_row.clear();
                self.col = 0;
                return;
            }
            self.header_decided = true;
            let first = std::mem::take(&mut self.first_row);
            let is_header = first.iter().any(|c| {
                !c.is_empty()
                    && std::str::from_utf8(c.trim_ascii())
                        .map_or(true, |s| s.parse::<f64>().is_err())
            });
            self.columns = first
                .iter()
                .map(|c| {
                    let header = if is_header {
                        String::from_utf8_lossy(c.trim_ascii()).to_ascii_lowercase()
                    } else {
                        String::new()
                    };
                    Column {
                        identifier: any_word(&header, IDENTIFIER_WORDS),
                        dob: any_word(&header, &["dob", "birth"]),
                        header,
                        ..Column::default()
                    }
                })
                .collect();
            if !is_header {
                // The first record is data: count it like the others.
                for (i, c) in first.iter().enumerate() {
                    self.col = i;
                    self.data_cell(c);
                }
            }
        }
        self.row += 1;
        self.col = 0;
    }

    fn data_cell(&mut self, raw: &[u8]) {
        let Some(column) = self.columns.get_mut(self.col) else {
            return;
        };
        let cell = raw.trim_ascii();
        if cell.is_empty() {
            return;
        }
        let location = Location {
            line: self.row + 1,
            column: self.col as u64 + 1,
        };
        let int = (cell.len() <= 19 && cell.iter().all(u8::is_ascii_digit))
            .then(|| std::str::from_utf8(cell).ok()?.parse::<u64>().ok())
            .flatten();
        match int {
            Some(v) => {
                column.ints += 1;
                if (v > 0 && v < self.threshold) || (v == 0 && self.flag_zeros) {
                    column.small += 1;
                    if column.small_locations.len() < MAX_LOCATIONS {
                        column.small_locations.push(location);
                    }
                }
            }
            None => column.non_ints += 1,
        }
        if column.dob && date_at(cell, 0) == Some(cell.len()) {
            self.dob_count += 1;
            if self.dob_locations.len() < MAX_LOCATIONS {
                self.dob_locations.push(location);
            }
            if self.dob_shape.is_none() {
                self.dob_shape = Some(mask(cell));
            }
        }
        if column.identifier && (column.sampled as usize) < UNIQUE_SAMPLE {
            let mut h = DefaultHasher::new();
            cell.hash(&mut h);
            column.unique.insert(h.finish());
            column.sampled += 1;
        }
    }

    /// Ends the table and records its findings.
    pub(crate) fn finish(mut self, policy: &Policy, findings: &mut Findings) {
        if !self.at_field_start || self.col > 0 || !self.cell.is_empty() {
            self.end_cell();
            self.end_record();
        } else if !self.header_decided && !self.first_row.is_empty() {
            self.end_record();
        }
        let t = &policy.tables;
        let data_rows = self
            .row
            .saturating_sub(u64::from(self.columns.iter().any(|c| !c.header.is_empty())));
        let mut small_cols = Vec::new();
        for c in &self.columns {
            let count_like = any_word(&c.header, COUNT_WORDS)
                || (!any_word(&c.header, NOT_COUNT_WORDS)
                    && !c.identifier
                    && c.non_ints == 0
                    && c.ints > 0);
            if count_like && c.small > 0 {
                for (i, loc) in c.small_locations.iter().enumerate() {
                    findings.add(
                        rules::SMALL_COUNTS,
                        t.small_counts,
                        if i == 0 { c.small } else { 0 },
                        Some(*loc),
                        None,
                    );
                }
                small_cols.push(if c.header.is_empty() {
                    format!("column {}", small_cols.len() + 1)
                } else {
                    c.header.clone()
                });
            }
        }
        if findings.has(rules::SMALL_COUNTS) {
            findings.detail(
                rules::SMALL_COUNTS,
                format!(
                    "counts above 0 and below {}{}; count-like columns: {}",
                    t.small_count_threshold,
                    if t.flag_zeros { ", and zeros" } else { "" },
                    truncate_list(&small_cols)
                ),
            );
        }
        if data_rows >= t.record_level_min_rows {
            let unique_cols: Vec<String> = self
                .columns
                .iter()
                .filter(|c| {
                    c.identifier
                        && c.sampled >= t.record_level_min_rows
                        && (c.unique.len() as u64) * 100 >= c.sampled * 95
                })
                .map(|c| c.header.clone())
                .collect();
            if !unique_cols.is_empty() {
                findings.add(rules::RECORD_LEVEL, t.record_level, data_rows, None, None);
                findings.detail(
                    rules::RECORD_LEVEL,
                    format!(
                        "{data_rows} data rows; identifier-like columns unique per row: {}",
                        truncate_list(&unique_cols)
                    ),
                );
            }
        }
        if self.dob_count > 0 {
            let mut shape = self.dob_shape.take();
            for (i, loc) in self.dob_locations.iter().enumerate() {
                findings.add(
                    rules::DATE_OF_BIRTH,
                    policy.identifiers.dates_of_birth,
                    if i == 0 { self.dob_count } else { 0 },
                    Some(*loc),
                    shape.take(),
                );
            }
        }
    }
}

/// Bytes handed to a table's own thread at once.
const THREAD_PIECE: usize = 256 * 1024;
/// Pieces queued for a table's own thread, at most: a table checked on its own thread holds
/// at most this many pieces (2 MiB) beside the line scan's state, and the feeder waits when
/// the table's parse is behind.
const THREAD_QUEUE: usize = 8;

/// A table parsed on its own thread, fed the same bytes in the same order as the line scan
/// that runs on the caller's: its findings are those of the same parse inline, and a large
/// table's check uses two cores instead of one.
#[derive(Debug)]
pub(crate) struct TableThread {
    pending: Vec<u8>,
    queue: std::sync::mpsc::SyncSender<Vec<u8>>,
    handle: std::thread::JoinHandle<TableScan>,
}

impl TableThread {
    /// Starts `scan` on a thread of its own (an error when the system refuses one).
    pub(crate) fn spawn(mut scan: TableScan) -> std::io::Result<Self> {
        let (queue, pieces) = std::sync::mpsc::sync_channel::<Vec<u8>>(THREAD_QUEUE);
        let handle = std::thread::Builder::new()
            .name("table-scan".into())
            .spawn(move || {
                for piece in pieces {
                    scan.feed(&piece);
                }
                scan
            })?;
        Ok(Self {
            pending: Vec::with_capacity(THREAD_PIECE),
            queue,
            handle,
        })
    }

    /// Queues the next bytes of the file, in pieces of [`THREAD_PIECE`].
    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = THREAD_PIECE - self.pending.len();
            let (now, rest) = data.split_at(room.min(data.len()));
            self.pending.extend_from_slice(now);
            data = rest;
            if self.pending.len() == THREAD_PIECE {
                self.send();
            }
        }
    }

    fn send(&mut self) {
        let piece = std::mem::replace(&mut self.pending, Vec::with_capacity(THREAD_PIECE));
        // A send fails only when the thread has ended, which it does early only by panicking:
        // the panic is raised again by `join`.
        let _ = self.queue.send(piece);
    }

    /// Ends the feed and waits for the parse: the scan, as if it had been fed inline.
    pub(crate) fn join(mut self) -> TableScan {
        if !self.pending.is_empty() {
            self.send();
        }
        drop(self.queue);
        match self.handle.join() {
            Ok(scan) => scan,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

fn truncate_list(items: &[String]) -> String {
    let shown: Vec<String> = items
        .iter()
        .take(5)
        .map(|s| s.chars().take(40).collect())
        .collect();
    if items.len() > 5 {
        format!("{} +{} other", shown.join(", "), items.len() - 5)
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use crate::checks::{check_bytes, Policy, Severity};

    fn finding(data: &str, policy: &Policy, rule: &str) -> Option<crate::checks::Finding> {
        check_bytes(policy, "t.csv", data.as_bytes())
            .remove(0)
            .findings
            .into_iter()
            .find(|f| f.rule == rule)
    }

    #[test]
    fn when_a_count_is_below_the_threshold_then_it_is_a_small_count_located_by_row_and_column() {
        let p = Policy::default();
        let f = finding(
            "region,count\nnorth,120\nsouth,7\neast,300\n",
            &p,
            "table-small-counts",
        )
        .unwrap();
        assert_eq!(f.count, 1);
        assert_eq!(f.locations[0].line, 3);
        assert_eq!(f.locations[0].column, 2);
        assert_eq!(f.severity, Severity::Review);
        assert!(f.detail.unwrap().contains("below 10"));
    }

    #[test]
    fn when_a_count_equals_the_threshold_or_is_zero_then_it_is_not_small_unless_zeros_are_flagged()
    {
        let mut p = Policy::default();
        let data = "region,count\nnorth,10\nsouth,0\n";
        assert!(finding(data, &p, "table-small-counts").is_none());
        p.tables.flag_zeros = true;
        assert_eq!(finding(data, &p, "table-small-counts").unwrap().count, 1);
        p.tables.flag_zeros = false;
        p.tables.small_count_threshold = 11;
        assert_eq!(finding(data, &p, "table-small-counts").unwrap().count, 1);
    }

    #[test]
    fn when_small_numbers_are_in_an_id_or_year_column_then_they_are_not_counts() {
        let p = Policy::default();
        assert!(finding("site id,value\n3,x\n4,y\n", &p, "table-small-counts").is_none());
        assert!(finding("year,n\n2020,200\n2021,300\n", &p, "table-small-counts").is_none());
    }

    #[test]
    fn when_cells_are_quoted_or_the_file_is_tsv_then_they_are_parsed_as_cells() {
        let p = Policy::default();
        let f = finding(
            "\"area, name\",count\n\"North \"\"A\"\"\",5\n\"multi\nline\",500\n",
            &p,
            "table-small-counts",
        )
        .unwrap();
        assert_eq!(f.count, 1);
        assert_eq!(f.locations[0].line, 2);
        let r = check_bytes(&p, "t.tsv", b"area\tcount\nnorth\t3\r\nsouth\t400\r\n").remove(0);
        assert_eq!(r.findings[0].rule, "table-small-counts");
    }

    #[test]
    fn when_many_rows_have_unique_identifiers_then_the_table_is_record_level() {
        let p = Policy::default();
        let mut data = String::from("patient_id,group,score\n");
        for i in 0..60 {
            data.push_str(&format!("P{i:05},{},{}\n", i % 3, 50 + i));
        }
        let f = finding(&data, &p, "table-record-level").unwrap();
        assert_eq!(f.count, 60);
        assert!(f.detail.unwrap().contains("patient_id"));
        // One row fewer than the minimum: not record-level.
        let short: String = data.lines().take(50).map(|l| format!("{l}\n")).collect();
        assert!(finding(&short, &p, "table-record-level").is_none());
        // Repeated identifiers (an aggregate by site): not record-level.
        let mut agg = String::from("site_id,total\n");
        for i in 0..60 {
            agg.push_str(&format!("S{},{}\n", i % 4, 100 + i));
        }
        assert!(finding(&agg, &p, "table-record-level").is_none());
    }

    #[test]
    fn when_a_date_of_birth_column_holds_dates_then_they_are_counted_and_masked() {
        let p = Policy::default();
        let f = finding(
            "person,dob\na,1980-01-02\nb,1975-12-30\nc,unknown\n",
            &p,
            "pii-date-of-birth",
        )
        .unwrap();
        assert_eq!(f.count, 2);
        assert_eq!(f.sample.as_deref(), Some("####-##-##"));
        assert_eq!(f.locations[1].line, 3);
    }

    #[test]
    fn when_a_table_arrives_in_tiny_chunks_then_the_findings_are_the_same() {
        let p = Policy::default();
        let data = "\"area\",count\n\"no\"\"rth\",7\nsouth,8\n";
        let whole = check_bytes(&p, "t.csv", data.as_bytes());
        let mut c = crate::checks::FileChecker::new(&p, "t.csv");
        for b in data.as_bytes() {
            c.feed(std::slice::from_ref(b));
        }
        assert_eq!(c.finish(), whole);
        assert_eq!(whole[0].findings[0].count, 2);
    }
}
