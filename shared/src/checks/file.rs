//! One file's checks, fed chunk by chunk: its name (hidden, `.git`, lists), its size, its type
//! from the magic bytes, the malware test signature, then by type: personal identifiers in
//! text, disclosure control on tables (CSV/TSV and every sheet of a spreadsheet), images'
//! identifying metadata, and the entries of zip archives.

use memchr::memmem;

use super::archive::ZipScan;
use super::identifiers::scan_line;
use super::image::ImageScan;
use super::policy::Policy;
use super::report::{verdict_of, FileReport, Findings, Location};
use super::rules;
use super::spreadsheet::{SpreadsheetScan, SPREADSHEET_EXTENSIONS};
use super::table::{TableScan, TableThread};
use super::Severity;

/// Bytes looked at to decide the type.
const HEAD: usize = 8 * 1024;
/// Longest line scanned as one; a longer line is scanned in pieces of this size.
const MAX_LINE: usize = 64 * 1024;

/// The EICAR anti-virus test file's signature, built in two halves so that this source file
/// is not itself taken for the test file by a scanner.
fn eicar() -> Vec<u8> {
    let mut s = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$".to_vec();
    s.extend_from_slice(b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*");
    s
}

/// Extensions of executables.
const EXECUTABLE_EXTENSIONS: &[&str] = &[
    "exe", "dll", "so", "dylib", "bin", "msi", "com", "scr", "elf", "app", "jar", "class", "wasm",
];
/// Extensions of scripts.
const SCRIPT_EXTENSIONS: &[&str] = &[
    "sh", "bash", "zsh", "ps1", "bat", "cmd", "vbs", "js", "py", "r", "pl", "rb", "php", "do",
    "sas", "ipynb",
];
/// Extensions of plain text: no magic bytes, so only the absence of binary content is checked.
const TEXT_EXTENSIONS: &[&str] = &[
    "txt", "csv", "tsv", "md", "json", "log", "tex", "html", "htm", "xml", "svg", "yaml", "yml",
    "rtf", "sql", "ini", "cfg", "toml", "dat",
];
/// Archive formats recognised but not opened (infer's "archive" class also holds PDF, RTF...).
const UNOPENED_ARCHIVES: &[&str] = &[
    "tar", "rar", "gz", "bz2", "7z", "xz", "zst", "lz", "lz4", "cab", "ar", "Z", "cpio", "br",
];
/// Extensions one magic-byte type legitimately goes by.
const SAME_TYPE: &[&[&str]] = &[
    &["jpg", "jpeg", "jpe", "jfif"],
    &["tif", "tiff"],
    &["htm", "html"],
    &["gz", "tgz"],
    &[
        "zip", "docx", "xlsx", "pptx", "jar", "odt", "ods", "odp", "epub", "apk", "whl", "nupkg",
        "xlsm", "xlsb",
    ],
    &["xls", "doc", "ppt", "msi", "msg"],
    &["mp4", "m4a", "m4v", "mov"],
];

#[derive(Debug)]
enum Content<'p> {
    /// Not decided yet (fewer than [`HEAD`] bytes seen).
    Undecided,
    /// Text: identifiers, and a table when the extension says so.
    Text {
        line: Vec<u8>,
        line_no: u64,
        col_base: usize,
        table: Option<Table>,
    },
    /// A zip archive.
    Zip(Box<ZipScan<'p>>),
    /// A spreadsheet, kept whole up to the policy's limit and read sheet by sheet at the end.
    Spreadsheet(Box<SpreadsheetScan>),
    /// An image: its first bytes, for the metadata.
    Image(Box<ImageScan>),
    /// Anything else: only the signature and the size are checked.
    Binary,
}

/// A table's parse: inline, or on a thread of its own beside the line scan.
#[derive(Debug)]
enum Table {
    Inline(Box<TableScan>),
    Thread(TableThread),
}

impl Table {
    fn feed(&mut self, data: &[u8]) {
        match self {
            Table::Inline(scan) => scan.feed(data),
            Table::Thread(thread) => thread.feed(data),
        }
    }

    fn finish(self, policy: &Policy, findings: &mut Findings) {
        let scan = match self {
            Table::Inline(scan) => *scan,
            Table::Thread(thread) => thread.join(),
        };
        scan.finish(policy, findings);
    }
}

/// Checks one file (or archive entry) fed chunk by chunk.
#[derive(Debug)]
pub struct FileChecker<'p> {
    policy: &'p Policy,
    path: String,
    extension: String,
    depth: u32,
    bytes: u64,
    head: Vec<u8>,
    detected: String,
    content: Content<'p>,
    eicar: memmem::Finder<'static>,
    eicar_len: usize,
    /// The last bytes of the previous chunk, so a signature split across chunks is found.
    tail: Vec<u8>,
    malware: bool,
    /// Content is not read (an encrypted entry): only names are checked.
    names_only: bool,
    /// A table is parsed on a thread of its own ([`FileChecker::with_table_thread`]).
    table_thread: bool,
    findings: Findings,
    entries: Vec<FileReport>,
}

fn extension_of(path: &str) -> String {
    let name = path.rsplit(['/', '!']).next().unwrap_or(path);
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() <= 16 => ext.to_ascii_lowercase(),
        _ => String::new(),
    }
}

impl<'p> FileChecker<'p> {
    /// A checker for the submitted file at `path` (relative to the submission).
    pub fn new(policy: &'p Policy, path: &str) -> Self {
        Self::nested(policy, path, 0, false)
    }

    /// A sheet of a spreadsheet at `path` (`book.xlsx!/<sheet>`), fed as CSV rows: a table
    /// whatever its name (a sheet's name is not a file name: the name rules do not apply).
    pub(crate) fn sheet(policy: &'p Policy, path: &str, depth: u32) -> Self {
        let mut c = Self::bare(policy, path, depth, false);
        c.detected = "spreadsheet sheet".into();
        c.content = Content::Text {
            line: Vec::new(),
            line_no: 1,
            col_base: 0,
            table: Some(Table::Inline(Box::new(TableScan::new(b',', policy)))),
        };
        c
    }

    /// Parses a table (CSV or TSV) on a thread of its own, beside the identifier scan of its
    /// lines on the caller's: the same findings, about twice as fast on two cores. For large
    /// files on a machine with a second core ([`super::table_thread_pays`]): for a small
    /// table a thread costs more than its whole check. Falls back to inline when the system
    /// refuses a thread.
    #[must_use]
    pub fn with_table_thread(mut self, on: bool) -> Self {
        self.table_thread = on;
        self
    }

    /// Whether this file's table is being parsed on its own thread (once its type is known).
    pub fn table_on_thread(&self) -> bool {
        matches!(
            self.content,
            Content::Text {
                table: Some(Table::Thread(_)),
                ..
            }
        )
    }

    pub(crate) fn nested(policy: &'p Policy, path: &str, depth: u32, names_only: bool) -> Self {
        let mut c = Self::bare(policy, path, depth, names_only);
        c.check_name();
        c
    }

    fn bare(policy: &'p Policy, path: &str, depth: u32, names_only: bool) -> Self {
        let signature = eicar();
        let eicar_len = signature.len();
        Self {
            policy,
            path: path.to_string(),
            extension: extension_of(path),
            depth,
            bytes: 0,
            head: Vec::new(),
            detected: String::from("empty"),
            content: Content::Undecided,
            eicar: memmem::Finder::new(&signature).into_owned(),
            eicar_len,
            tail: Vec::new(),
            malware: false,
            names_only,
            table_thread: false,
            findings: Findings::default(),
            entries: Vec::new(),
        }
    }

    fn check_name(&mut self) {
        let t = &self.policy.types;
        let inner = self
            .path
            .rsplit("!/")
            .next()
            .unwrap_or(&self.path)
            .to_string();
        let segments: Vec<&str> = inner.split('/').filter(|s| !s.is_empty()).collect();
        if segments.contains(&".git") {
            self.findings
                .add(rules::GIT_FOLDER, t.git_folders, 1, None, None);
        } else if segments.iter().any(|s| s.starts_with('.')) {
            self.findings
                .add(rules::HIDDEN_FILE, t.hidden_files, 1, None, None);
        }
        let ext = self.extension.as_str();
        if t.allow_extensions.iter().any(|e| e == ext) {
            return;
        }
        if t.block_extensions.iter().any(|e| e == ext) {
            self.findings
                .add(rules::TYPE_LISTED, Severity::Block, 1, None, None);
        } else if t.review_extensions.iter().any(|e| e == ext) {
            self.findings
                .add(rules::TYPE_LISTED, Severity::Review, 1, None, None);
        }
        if EXECUTABLE_EXTENSIONS.contains(&ext) {
            self.findings
                .add(rules::TYPE_EXECUTABLE, t.executables, 1, None, None);
        } else if SCRIPT_EXTENSIONS.contains(&ext) {
            self.findings
                .add(rules::TYPE_SCRIPT, t.scripts, 1, None, None);
        }
    }

    /// Feeds the next bytes of the file.
    pub fn feed(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.bytes += data.len() as u64;
        if self.names_only {
            return;
        }
        self.scan_signature(data);
        if matches!(self.content, Content::Undecided) {
            let room = HEAD - self.head.len();
            let (first, rest) = data.split_at(room.min(data.len()));
            self.head.extend_from_slice(first);
            if self.head.len() == HEAD {
                self.decide();
                let head = std::mem::take(&mut self.head);
                self.content_feed(&head);
                self.content_feed(rest);
            }
        } else {
            self.content_feed(data);
        }
    }

    fn scan_signature(&mut self, data: &[u8]) {
        if self.malware {
            return;
        }
        let keep = self.eicar_len - 1;
        if !self.tail.is_empty() {
            // Only the seam: the tail and the start of this chunk.
            let mut seam = std::mem::take(&mut self.tail);
            seam.extend_from_slice(&data[..data.len().min(keep)]);
            if self.eicar.find(&seam).is_some() {
                self.malware = true;
                return;
            }
        }
        if self.eicar.find(data).is_some() {
            self.malware = true;
            return;
        }
        self.tail = data[data.len().saturating_sub(keep)..].to_vec();
    }

    fn decide(&mut self) {
        let head = &self.head;
        let t = &self.policy.types;
        let ext = self.extension.clone();
        if head.is_empty() {
            self.content = Content::Binary;
            return;
        }
        let kind = infer::get(head);
        let is_zip = head.starts_with(b"PK\x03\x04");
        let binary = head.contains(&0);
        if let Some(k) = kind {
            self.detected = k.mime_type().to_string();
            if k.matcher_type() == infer::MatcherType::App
                && !self.findings.has(rules::TYPE_EXECUTABLE)
            {
                self.findings
                    .add(rules::TYPE_EXECUTABLE, t.executables, 1, None, None);
            }
            if k.matcher_type() != infer::MatcherType::Text && !ext.is_empty() {
                let detected = k.extension();
                let same = detected == ext
                    || SAME_TYPE
                        .iter()
                        .any(|g| g.contains(&detected) && g.contains(&ext.as_str()))
                    || (is_zip && SAME_TYPE[4].contains(&ext.as_str()));
                if !same {
                    self.findings
                        .add(rules::TYPE_MISMATCH, t.extension_mismatch, 1, None, None);
                    self.findings.detail(
                        rules::TYPE_MISMATCH,
                        format!("content is {}, extension .{ext}", k.mime_type()),
                    );
                }
            }
        } else if binary {
            self.detected = "application/octet-stream".into();
            if TEXT_EXTENSIONS.contains(&ext.as_str()) {
                self.findings
                    .add(rules::TYPE_MISMATCH, t.extension_mismatch, 1, None, None);
                self.findings.detail(
                    rules::TYPE_MISMATCH,
                    format!("binary content, text extension .{ext}"),
                );
            }
        } else {
            self.detected = "text".into();
        }
        if head.starts_with(b"#!") && !self.findings.has(rules::TYPE_SCRIPT) {
            self.findings
                .add(rules::TYPE_SCRIPT, t.scripts, 1, None, None);
        }
        let ole = head.starts_with(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1");
        self.content = if (is_zip || ole) && SPREADSHEET_EXTENSIONS.contains(&ext.as_str()) {
            Content::Spreadsheet(Box::new(SpreadsheetScan::new(self.policy)))
        } else if kind.is_some_and(|k| k.matcher_type() == infer::MatcherType::Image) {
            Content::Image(Box::default())
        } else if is_zip {
            if self.depth >= self.policy.archives.max_depth {
                self.findings
                    .add(rules::ARCHIVE_DEPTH, Severity::Block, 1, None, None);
                self.findings.detail(
                    rules::ARCHIVE_DEPTH,
                    format!(
                        "an archive at depth {} (limit {})",
                        self.depth + 1,
                        self.policy.archives.max_depth
                    ),
                );
                Content::Binary
            } else {
                Content::Zip(Box::new(ZipScan::new(self.policy, &self.path, self.depth)))
            }
        } else if let Some(k) = kind.filter(|k| UNOPENED_ARCHIVES.contains(&k.extension())) {
            self.findings.add(
                rules::ARCHIVE_NOT_INSPECTED,
                Severity::Review,
                1,
                None,
                None,
            );
            self.findings.detail(
                rules::ARCHIVE_NOT_INSPECTED,
                format!("{} archives are not opened", k.extension()),
            );
            Content::Binary
        } else if kind.is_some_and(|k| k.matcher_type() != infer::MatcherType::Text) || binary {
            Content::Binary
        } else {
            let delimiter = match ext.as_str() {
                "csv" => Some(b','),
                "tsv" | "tab" => Some(b'\t'),
                _ => None,
            };
            let policy = self.policy;
            let table = delimiter.map(|d| {
                let thread = self
                    .table_thread
                    .then(|| TableThread::spawn(TableScan::new(d, policy)).ok())
                    .flatten();
                match thread {
                    Some(thread) => Table::Thread(thread),
                    None => Table::Inline(Box::new(TableScan::new(d, policy))),
                }
            });
            Content::Text {
                line: Vec::new(),
                line_no: 1,
                col_base: 0,
                table,
            }
        };
    }

    fn content_feed(&mut self, data: &[u8]) {
        let policy = self.policy;
        match &mut self.content {
            Content::Text {
                line,
                line_no,
                col_base,
                table,
            } => {
                if let Some(t) = table {
                    t.feed(data);
                }
                let mut rest = data;
                while !rest.is_empty() {
                    match memchr::memchr(b'\n', rest) {
                        Some(i) => {
                            let piece = &rest[..i];
                            if line.is_empty() {
                                scan(&mut self.findings, policy, piece, *line_no, *col_base);
                            } else {
                                line.extend_from_slice(piece);
                                scan(&mut self.findings, policy, line, *line_no, *col_base);
                                line.clear();
                            }
                            *line_no += 1;
                            *col_base = 0;
                            rest = &rest[i + 1..];
                        }
                        None => {
                            line.extend_from_slice(rest);
                            if line.len() >= MAX_LINE {
                                scan(&mut self.findings, policy, line, *line_no, *col_base);
                                *col_base += line.len();
                                line.clear();
                            }
                            rest = &[];
                        }
                    }
                }
            }
            Content::Zip(zip) => zip.feed(data),
            Content::Spreadsheet(book) => book.feed(data),
            Content::Image(image) => image.feed(data),
            Content::Binary | Content::Undecided => {}
        }
    }

    /// Ends the file: its report first, then its archive entries' reports.
    pub fn finish(mut self) -> Vec<FileReport> {
        if matches!(self.content, Content::Undecided) && !self.names_only {
            self.decide();
            let head = std::mem::take(&mut self.head);
            self.content_feed(&head);
        }
        let policy = self.policy;
        match std::mem::replace(&mut self.content, Content::Binary) {
            Content::Text {
                line,
                line_no,
                col_base,
                table,
            } => {
                if !line.is_empty() {
                    scan(&mut self.findings, policy, &line, line_no, col_base);
                }
                if let Some(t) = table {
                    t.finish(policy, &mut self.findings);
                }
            }
            Content::Zip(zip) => {
                let entries = zip.entries();
                self.entries = zip.finish(&mut self.findings);
                self.detected = format!("{} ({entries} entries)", self.detected);
            }
            Content::Spreadsheet(book) => {
                self.entries = book.finish(policy, &self.path, self.depth, &mut self.findings);
                let sheets = self.entries.len();
                self.detected = format!("{} ({sheets} sheets)", self.detected);
            }
            Content::Image(image) => image.finish(policy, &mut self.findings),
            Content::Binary | Content::Undecided => {}
        }
        if self.names_only {
            self.detected = "not read (encrypted)".into();
        }
        if self.malware {
            self.findings
                .add(rules::MALWARE, Severity::Block, 1, None, None);
        }
        if self.bytes > policy.size.max_file_bytes {
            self.findings
                .add(rules::SIZE_FILE, policy.size.severity, 1, None, None);
            self.findings.detail(
                rules::SIZE_FILE,
                format!("{} bytes, limit {}", self.bytes, policy.size.max_file_bytes),
            );
        }
        let findings = self.findings.into_vec();
        let mut out = vec![FileReport {
            path: self.path,
            bytes: self.bytes,
            detected_type: self.detected,
            verdict: verdict_of(&findings),
            findings,
        }];
        out.append(&mut self.entries);
        out
    }
}

fn scan(findings: &mut Findings, policy: &Policy, line: &[u8], line_no: u64, col_base: usize) {
    let ids = &policy.identifiers;
    scan_line(line, |hit| {
        let severity = match hit.rule.id {
            "pii-nhs-number" => ids.nhs_numbers,
            "pii-postcode" => ids.postcodes,
            "pii-email" => ids.emails,
            "pii-phone" => ids.phone_numbers,
            "pii-ni-number" => ids.ni_numbers,
            "pii-date-of-birth" => ids.dates_of_birth,
            _ => ids.ip_addresses,
        };
        findings.add(
            hit.rule,
            severity,
            1,
            Some(Location {
                line: line_no,
                column: (col_base + hit.offset + 1) as u64,
            }),
            Some(hit.shape),
        );
    });
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::checks::check_bytes;
    use crate::checks::identifiers::tests::synthetic_nhs;

    fn rules_of(reports: &[FileReport]) -> Vec<(String, Severity)> {
        reports[0]
            .findings
            .iter()
            .map(|f| (f.rule.clone(), f.severity))
            .collect()
    }

    fn zip_of(entries: &[(&str, &[u8])], method: zip::CompressionMethod) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data) in entries {
            w.start_file(
                *name,
                zip::write::SimpleFileOptions::default().compression_method(method),
            )
            .unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn deflated(entries: &[(&str, &[u8])]) -> Vec<u8> {
        // The workspace's zip is built without its deflate feature: deflate with flate2 and
        // write the local headers by hand, as a streaming writer does (sizes in the header).
        let mut out = Vec::new();
        for (name, data) in entries {
            let mut enc =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
            enc.write_all(data).unwrap();
            let c = enc.finish().unwrap();
            out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
            out.extend_from_slice(&20u16.to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes()); // flags
            out.extend_from_slice(&8u16.to_le_bytes()); // deflate
            out.extend_from_slice(&[0; 4]); // time, date
            out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
            out.extend_from_slice(&(c.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&c);
        }
        out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        out.extend_from_slice(&[0; 18]);
        out
    }

    #[test]
    fn when_a_table_is_parsed_on_its_own_thread_then_its_report_is_the_inline_one() {
        let p = Policy::default();
        let mut csv = b"patient_id,dob,region,count,note\n".to_vec();
        for i in 0..30_000u64 {
            let count = if i % 97 == 0 { 3 } else { 10 + i % 50 };
            let note = if i % 1000 == 0 {
                synthetic_nhs(i)
            } else {
                "none".into()
            };
            let day = 1 + i % 28;
            csv.extend_from_slice(
                format!("P{i:07},1970-01-{day:02},\"North,\nEast\",{count},{note}\n").as_bytes(),
            );
        }
        let inline = check_bytes(&p, "t.csv", &csv);
        let rules: Vec<String> = inline[0].findings.iter().map(|f| f.rule.clone()).collect();
        for rule in ["table-small-counts", "table-record-level", "pii-nhs-number"] {
            assert!(rules.iter().any(|r| r == rule), "{rule} not in {rules:?}");
        }
        // Pieces that split rows, quoted cells and the thread's own pieces anywhere.
        for piece in [1_000, 65_536, 300_001, csv.len()] {
            let mut c = FileChecker::new(&p, "t.csv").with_table_thread(true);
            for chunk in csv.chunks(piece) {
                c.feed(chunk);
            }
            assert!(c.table_on_thread(), "pieces of {piece}");
            assert_eq!(c.finish(), inline, "pieces of {piece}");
        }
        // Not a table: no thread, whatever is asked.
        let mut text = FileChecker::new(&p, "t.txt").with_table_thread(true);
        text.feed(&csv);
        assert!(!text.table_on_thread());
    }

    #[test]
    fn when_a_file_holds_the_eicar_string_then_it_is_malware_even_across_chunks() {
        let p = Policy::default();
        let mut data = b"harmless prefix ".repeat(1000);
        data.extend_from_slice(&eicar());
        assert!(rules_of(&check_bytes(&p, "x.txt", &data))
            .contains(&("malware-signature".into(), Severity::Block)));
        for split in [1, 20, data.len() - 30] {
            let mut c = FileChecker::new(&p, "x.bin");
            c.feed(&data[..split]);
            c.feed(&data[split..]);
            let r = c.finish();
            assert_eq!(r[0].verdict, Severity::Block, "split at {split}");
        }
        let mut near = eicar();
        near[10] = b'#';
        assert!(rules_of(&check_bytes(&p, "x.txt", &near)).is_empty());
    }

    #[test]
    fn when_the_content_disagrees_with_the_extension_then_a_mismatch_is_flagged() {
        let p = Policy::default();
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";
        assert_eq!(
            rules_of(&check_bytes(&p, "table.csv", png)),
            [("file-type-mismatch".into(), Severity::Review)]
        );
        assert!(rules_of(&check_bytes(&p, "plot.png", png)).is_empty());
        assert_eq!(
            check_bytes(&p, "plot.png", png)[0].detected_type,
            "image/png"
        );
        let bin = b"\0\x01\x02binary";
        assert_eq!(
            rules_of(&check_bytes(&p, "notes.txt", bin))[0].0,
            "file-type-mismatch"
        );
        assert!(
            rules_of(&check_bytes(&p, "blob.dat2", bin)).is_empty(),
            "unknown extension"
        );
        let pdf = b"%PDF-1.7\n%binary";
        assert!(
            rules_of(&check_bytes(&p, "paper.PDF", pdf)).is_empty(),
            "case-insensitive"
        );
    }

    #[test]
    fn when_a_file_is_an_executable_or_a_script_then_it_needs_review() {
        let p = Policy::default();
        let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0".to_vec();
        elf.resize(64, 0);
        assert!(rules_of(&check_bytes(&p, "tool", &elf))
            .contains(&("file-type-executable".into(), Severity::Review)));
        assert_eq!(
            rules_of(&check_bytes(&p, "run", b"#!/bin/bash\necho hi\n")),
            [("file-type-script".into(), Severity::Review)]
        );
        assert_eq!(
            rules_of(&check_bytes(&p, "analysis.py", b"print(1)\n")),
            [("file-type-script".into(), Severity::Review)]
        );
        let mut allow = Policy::default();
        allow.types.allow_extensions = vec!["py".into()];
        assert!(rules_of(&check_bytes(&allow, "analysis.py", b"print(1)\n")).is_empty());
    }

    #[test]
    fn when_a_file_is_hidden_or_under_git_or_on_a_list_then_the_name_rules_fire() {
        let p = Policy::default();
        assert_eq!(
            rules_of(&check_bytes(&p, "out/.env", b"a=1\n"))[0].0,
            "file-hidden"
        );
        assert_eq!(
            rules_of(&check_bytes(&p, "repo/.git/config", b"x\n"))[0].0,
            "file-git-folder"
        );
        assert!(
            rules_of(&check_bytes(&p, "out/a.b.txt", b"x\n")).is_empty(),
            "dots inside a name"
        );
        let mut lists = Policy::default();
        lists.types.block_extensions = vec!["sav".into()];
        assert_eq!(
            rules_of(&check_bytes(&lists, "data.sav", b"x"))[0],
            ("file-type-listed".into(), Severity::Block)
        );
    }

    #[test]
    fn when_a_file_exceeds_the_size_limit_then_it_is_flagged_and_not_at_the_limit() {
        let mut p = Policy::default();
        p.size.max_file_bytes = 100;
        assert!(rules_of(&check_bytes(&p, "a.txt", &[b'a'; 100])).is_empty());
        assert_eq!(
            rules_of(&check_bytes(&p, "a.txt", &[b'a'; 101]))[0].0,
            "size-file"
        );
    }

    #[test]
    fn when_text_holds_identifiers_then_they_are_counted_located_and_never_echoed() {
        let p = Policy::default();
        let nhs = synthetic_nhs(7);
        let text = format!("line one\nid {nhs} and {nhs}\nmail x@y.org\n");
        let r = check_bytes(&p, "notes.txt", text.as_bytes());
        let f = r[0]
            .findings
            .iter()
            .find(|f| f.rule == "pii-nhs-number")
            .unwrap();
        assert_eq!(f.count, 2);
        assert_eq!(f.locations[0], Location { line: 2, column: 4 });
        assert_eq!(f.severity, Severity::Block);
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains(&nhs), "{json}");
        assert!(!json.contains("x@y.org"));
    }

    #[test]
    fn when_a_zip_holds_files_then_each_entry_is_checked_under_the_archive() {
        let p = Policy::default();
        let nhs = synthetic_nhs(3);
        for archive in [
            zip_of(
                &[
                    ("a/counts.csv", b"area,count\nx,3\n"),
                    ("b/ids.txt", nhs.as_bytes()),
                ],
                zip::CompressionMethod::Stored,
            ),
            deflated(&[
                ("a/counts.csv", b"area,count\nx,3\n"),
                ("b/ids.txt", nhs.as_bytes()),
            ]),
        ] {
            let r = check_bytes(&p, "out.zip", &archive);
            assert_eq!(r.len(), 3, "{r:#?}");
            assert_eq!(r[1].path, "out.zip!/a/counts.csv");
            assert_eq!(r[1].findings[0].rule, "table-small-counts");
            assert_eq!(r[2].findings[0].rule, "pii-nhs-number");
            assert!(r[0].findings.is_empty(), "{:?}", r[0].findings);
            // The same archive fed a byte at a time.
            let mut c = FileChecker::new(&p, "out.zip");
            for b in &archive {
                c.feed(std::slice::from_ref(b));
            }
            assert_eq!(c.finish(), r);
        }
    }

    #[test]
    fn when_a_zip_entry_is_encrypted_then_the_archive_is_blocked() {
        let p = Policy::default();
        let mut z = zip_of(&[("secret.csv", b"a,b\n")], zip::CompressionMethod::Stored);
        z[6] |= 1; // the local header's "encrypted" flag
        let r = check_bytes(&p, "out.zip", &z);
        assert_eq!(r[0].findings[0].rule, "archive-encrypted");
        assert_eq!(r[0].verdict, Severity::Block);
        assert_eq!(r[1].detected_type, "not read (encrypted)");
    }

    #[test]
    fn when_a_zip_expands_too_far_then_it_is_a_bomb_and_inflation_stops() {
        let p = Policy::default();
        let zeros = vec![0u8; 8 * 1024 * 1024];
        let r = check_bytes(&p, "bomb.zip", &deflated(&[("zeros.bin", &zeros)]));
        assert_eq!(r[0].findings[0].rule, "archive-expansion");
        assert_eq!(r[0].verdict, Severity::Block);
        // Within the ratio: a text file that compresses normally.
        let text: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        let r = check_bytes(&p, "ok.zip", &deflated(&[("n.log", &text)]));
        assert_eq!(r[0].verdict, Severity::Pass, "{:?}", r[0].findings);
    }

    #[test]
    fn when_archives_nest_past_the_depth_or_count_limit_then_they_are_blocked() {
        let mut p = Policy::default();
        p.archives.max_depth = 1;
        let inner = zip_of(&[("x.txt", b"hello")], zip::CompressionMethod::Stored);
        let outer = zip_of(&[("inner.zip", &inner)], zip::CompressionMethod::Stored);
        let r = check_bytes(&p, "outer.zip", &outer);
        assert_eq!(r[1].findings[0].rule, "archive-depth");
        assert_eq!(r[1].verdict, Severity::Block);
        p.archives.max_depth = 2;
        assert_eq!(
            check_bytes(&p, "outer.zip", &outer).len(),
            3,
            "inner opened"
        );
        p.archives.max_entries = 2;
        let three = zip_of(
            &[("a", b"1"), ("b", b"2"), ("c", b"3")],
            zip::CompressionMethod::Stored,
        );
        assert_eq!(
            check_bytes(&p, "m.zip", &three)[0].findings[0].rule,
            "archive-entries"
        );
        let two = zip_of(&[("a", b"1"), ("b", b"2")], zip::CompressionMethod::Stored);
        assert_eq!(check_bytes(&p, "m.zip", &two)[0].verdict, Severity::Pass);
    }

    #[test]
    fn when_a_zip_is_truncated_then_it_is_unreadable_for_review() {
        let p = Policy::default();
        let z = zip_of(&[("a.txt", &[b'a'; 1000])], zip::CompressionMethod::Stored);
        let r = check_bytes(&p, "cut.zip", &z[..500]);
        assert_eq!(r[0].findings[0].rule, "archive-unreadable");
        assert_eq!(r[0].verdict, Severity::Review);
    }

    #[test]
    fn when_a_clean_file_is_checked_then_it_passes() {
        let p = Policy::default();
        let r = check_bytes(&p, "summary.csv", b"region,count\nnorth,120\nsouth,450\n");
        assert_eq!(r[0].verdict, Severity::Pass, "{:?}", r[0].findings);
        assert_eq!(r[0].detected_type, "text");
    }
}
