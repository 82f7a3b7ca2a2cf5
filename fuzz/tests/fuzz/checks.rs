//! The output checks' content readers (`shared::checks`) on hostile bytes: spreadsheets
//! (`calamine`; .xlsx, .ods and .xls, the latter BIFF8 records in a compound file built here), images' EXIF/XMP (`kamadak-exif`), CSV/TSV and text scanning, zip archives
//! inside a submission (read as a stream, nested), and ACRO's `results.json` with its
//! `checksums/` (through `RequestChecker`, as `check-outputs` and `egress-check` run them).
//!
//! The readers never refuse: whatever the bytes, a file gets a report (an unreadable workbook
//! or archive is a named finding, `spreadsheet-not-checked` / `archive-unreadable`). So the
//! properties are: no panic; the first report is the file itself with every byte counted;
//! every finding is a rule of `shared::checks::rules` with its verdict the worst finding;
//! locations bounded; entries of an archive or workbook named `<file>!/<entry>`; ACRO's
//! imported outputs bounded and a checksum mismatch only on a file whose digest differs.
//! Inputs are capped (256 KiB per file) so a case stays in milliseconds; a case over one
//! second is counted (`slow_case_over_1s`) rather than failed (no timed assertions).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shared::checks::{rules, FileChecker, FileReport, Policy, RequestChecker, Severity};

use crate::support::{self, hostile_string, mutation, path, Mutation};

/// Locations a finding keeps (`shared::checks::report::MAX_LOCATIONS`, not exported).
const MAX_LOCATIONS: usize = 5;

/// Largest generated file.
const MAX_INPUT: usize = 256 * 1024;

/// A minimal .xlsx: each sheet's cells as `(cell reference, value)`; the reference may be
/// hostile (out of range, malformed), as may the sheet names and values.
fn xlsx(sheets: &[(String, Vec<(String, String)>)], dimension: Option<&str>) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut put = |name: &str, body: String| {
        w.start_file(name, opts).expect("a zip entry");
        w.write_all(body.as_bytes()).expect("written");
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
    for (i, (name, cells)) in sheets.iter().enumerate() {
        let n = i + 1;
        types.push_str(&format!(r#"<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>"#));
        book.push_str(&format!(
            r#"<sheet name="{}" sheetId="{n}" r:id="rId{n}"/>"#,
            xml_escape(name)
        ));
        rels.push_str(&format!(r#"<Relationship Id="rId{n}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet{n}.xml"/>"#));
        let mut sheet = String::from(
            r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">"#,
        );
        if let Some(d) = dimension {
            sheet.push_str(&format!(r#"<dimension ref="{d}"/>"#));
        }
        sheet.push_str("<sheetData><row>");
        for (at, v) in cells {
            if v.parse::<f64>().is_ok() {
                sheet.push_str(&format!(r#"<c r="{at}"><v>{v}</v></c>"#));
            } else {
                sheet.push_str(&format!(
                    r#"<c r="{at}" t="inlineStr"><is><t>{}</t></is></c>"#,
                    xml_escape(v)
                ));
            }
        }
        sheet.push_str("</row></sheetData></worksheet>");
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
    w.finish().expect("a zip").into_inner()
}

/// A minimal .ods: one table of the given rows.
fn ods(rows: &[Vec<String>], repeat: Option<u32>) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut put = |name: &str, body: &str| {
        w.start_file(name, opts).expect("a zip entry");
        w.write_all(body.as_bytes()).expect("written");
    };
    put("mimetype", "application/vnd.oasis.opendocument.spreadsheet");
    put(
        "META-INF/manifest.xml",
        r#"<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#,
    );
    let mut content = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet><table:table table:name="Sheet1">"#,
    );
    for row in rows {
        match repeat {
            Some(n) => content.push_str(&format!(
                r#"<table:table-row table:number-rows-repeated="{n}">"#
            )),
            None => content.push_str("<table:table-row>"),
        }
        for v in row {
            match repeat {
                Some(n) => content.push_str(&format!(
                    r#"<table:table-cell table:number-columns-repeated="{n}" office:value-type="string"><text:p>{}</text:p></table:table-cell>"#,
                    xml_escape(v)
                )),
                None => content.push_str(&format!(
                    r#"<table:table-cell office:value-type="string"><text:p>{}</text:p></table:table-cell>"#,
                    xml_escape(v)
                )),
            }
        }
        content.push_str("</table:table-row>");
    }
    content.push_str("</table:table></office:spreadsheet></office:body></office:document-content>");
    put("content.xml", &content);
    w.finish().expect("a zip").into_inner()
}

fn xml_escape(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A little-endian TIFF block: IFD0 with ASCII entries and, when `gps`, a GPS IFD.
fn tiff(ascii: &[(u16, String)], gps: bool) -> Vec<u8> {
    let mut entries: Vec<(u16, u16, u32, Vec<u8>)> = ascii
        .iter()
        .map(|(tag, s)| {
            let mut v = s.as_bytes().to_vec();
            v.push(0);
            (*tag, 2u16, v.len() as u32, v)
        })
        .collect();
    if gps {
        entries.push((0x8825, 4, 1, vec![0; 4]));
    }
    entries.sort_by_key(|e| e.0);
    entries.dedup_by_key(|e| e.0);
    let mut out = b"II*\0\x08\0\0\0".to_vec();
    let ifd_len = 2 + entries.len() * 12 + 4;
    let mut data_off = 8 + ifd_len;
    let mut data = Vec::new();
    let mut ifd = (entries.len() as u16).to_le_bytes().to_vec();
    let mut gps_slot = None;
    for (tag, ty, count, value) in &entries {
        ifd.extend_from_slice(&tag.to_le_bytes());
        ifd.extend_from_slice(&ty.to_le_bytes());
        ifd.extend_from_slice(&count.to_le_bytes());
        if *tag == 0x8825 {
            gps_slot = Some(8 + ifd.len());
            ifd.extend_from_slice(&[0; 4]);
        } else if value.len() <= 4 {
            let mut v = value.clone();
            v.resize(4, 0);
            ifd.extend_from_slice(&v);
        } else {
            ifd.extend_from_slice(&(data_off as u32).to_le_bytes());
            data.extend_from_slice(value);
            data_off += value.len();
            if data_off % 2 == 1 {
                data.push(0);
                data_off += 1;
            }
        }
    }
    ifd.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&ifd);
    out.extend_from_slice(&data);
    if let Some(slot) = gps_slot {
        let gps_off = out.len() as u32;
        out[slot..slot + 4].copy_from_slice(&gps_off.to_le_bytes());
        let rationals_off = gps_off + 2 + 4 * 12 + 4;
        let mut g = 4u16.to_le_bytes().to_vec();
        let mut push = |tag: u16, ty: u16, count: u32, value: [u8; 4]| {
            g.extend_from_slice(&tag.to_le_bytes());
            g.extend_from_slice(&ty.to_le_bytes());
            g.extend_from_slice(&count.to_le_bytes());
            g.extend_from_slice(&value);
        };
        push(1, 2, 2, *b"N\0\0\0");
        push(2, 5, 3, rationals_off.to_le_bytes());
        push(3, 2, 2, *b"W\0\0\0");
        push(4, 5, 3, (rationals_off + 24).to_le_bytes());
        g.extend_from_slice(&0u32.to_le_bytes());
        for v in [51u32, 30, 0, 0, 7, 0] {
            g.extend_from_slice(&v.to_le_bytes());
            g.extend_from_slice(&1u32.to_le_bytes());
        }
        out.extend_from_slice(&g);
    }
    out
}

/// A JPEG: an APP1 Exif segment, optionally an XMP segment, a little scan data.
fn jpeg(tiff: &[u8], xmp: Option<&str>) -> Vec<u8> {
    let mut out = b"\xff\xd8".to_vec();
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(tiff);
    app1.truncate(65_000);
    out.extend_from_slice(b"\xff\xe1");
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    if let Some(x) = xmp {
        let mut seg = b"http://ns.adobe.com/xap/1.0/\0".to_vec();
        seg.extend_from_slice(x.as_bytes());
        seg.truncate(65_000);
        out.extend_from_slice(b"\xff\xe1");
        out.extend_from_slice(&((seg.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&seg);
    }
    out.extend_from_slice(b"\xff\xda\0\x08\x01\x01\0\0\x3f\0");
    out.extend_from_slice(&[0x55; 512]);
    out.extend_from_slice(b"\xff\xd9");
    out
}

/// A PNG with an `eXIf` chunk.
fn png(tiff: &[u8]) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc_in = kind.to_vec();
        crc_in.extend_from_slice(data);
        out.extend_from_slice(&crc_in);
        out.extend_from_slice(&crc32fast::hash(&crc_in).to_be_bytes());
    };
    chunk(b"IHDR", b"\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0");
    chunk(b"eXIf", tiff);
    chunk(b"IEND", b"");
    out
}

/// A BIFF record.
fn biff(typ: u16, data: &[u8]) -> Vec<u8> {
    let mut r = typ.to_le_bytes().to_vec();
    r.extend_from_slice(&(data.len().min(0xFFFF) as u16).to_le_bytes());
    r.extend_from_slice(&data[..data.len().min(0xFFFF)]);
    r
}

/// A cell record of a generated .xls.
#[derive(Debug, Clone)]
enum XlsCell {
    /// `LabelSst` (row, column, shared string index), repeated this many times.
    Shared(u16, u16, u32, u16),
    Number(u16, u16, f64),
    Label(u16, u16, String),
    /// `MulRk` (row, first column, values).
    MulRk(u16, u16, u8),
    /// `Dimensions` (first row, last row + 1, first column, last column + 1).
    Dimensions(u32, u32, u16, u16),
}

/// The characters of an SST string or label: one byte each if all are Latin-1 (flags 0),
/// else UTF-16 (flags 1).
fn xls_chars(s: &str) -> (u16, u8, Vec<u8>) {
    if s.chars().all(|c| (c as u32) < 0x100) {
        let b: Vec<u8> = s.chars().take(0xFFFF).map(|c| c as u8).collect();
        (b.len() as u16, 0, b)
    } else {
        let u: Vec<u16> = s.encode_utf16().take(0xFFFF).collect();
        (
            u.len() as u16,
            1,
            u.iter().flat_map(|u| u.to_le_bytes()).collect(),
        )
    }
}

/// The SST of `strings`, continued in `Continue` records past 8,224 bytes (a string's
/// characters going on after a new flags byte).
fn xls_sst(strings: &[String]) -> Vec<u8> {
    const MAX: usize = 8224;
    let n = (strings.len() as u32).to_le_bytes();
    let mut records = vec![(0x00FCu16, [n, n].concat())];
    for s in strings {
        let (cch, flags, body) = xls_chars(s);
        let step = if flags == 1 { 2 } else { 1 };
        let mut chars = &body[..];
        if records.last().map_or(0, |r| r.1.len()) + 3 + step > MAX {
            records.push((0x003C, Vec::new()));
        }
        if let Some(r) = records.last_mut() {
            r.1.extend_from_slice(&cch.to_le_bytes());
            r.1.push(flags);
        }
        while let Some(r) = records.last_mut() {
            let room = (MAX - r.1.len()) / step * step;
            let take = room.min(chars.len());
            r.1.extend_from_slice(&chars[..take]);
            chars = &chars[take..];
            if chars.is_empty() {
                break;
            }
            records.push((0x003C, vec![flags]));
        }
    }
    records.iter().flat_map(|(t, d)| biff(*t, d)).collect()
}

/// A minimal .xls (BIFF8 in a version 3 compound file): shared strings and sheets of cells.
fn xls(strings: &[String], sheets: &[(String, Vec<XlsCell>)]) -> Vec<u8> {
    let head = |row: u16, col: u16| [row.to_le_bytes(), col.to_le_bytes(), [0, 0]].concat();
    let bof = |dt: u16| {
        biff(
            0x0809,
            &[&0x0600u16.to_le_bytes()[..], &dt.to_le_bytes(), &[0; 12]].concat(),
        )
    };
    let bound = |pos: u32, name: &str| {
        let (cch, flags, body) = xls_chars(name);
        let cch = cch.min(255);
        let body = &body[..body.len().min(usize::from(cch) * (usize::from(flags) + 1))];
        biff(
            0x0085,
            &[&pos.to_le_bytes()[..], &[0, 0, cch as u8, flags], body].concat(),
        )
    };
    let bodies: Vec<Vec<u8>> = sheets
        .iter()
        .map(|(_, cells)| {
            let mut out = bof(0x10);
            for c in cells {
                match c {
                    XlsCell::Shared(r, c, i, n) => {
                        for k in 0..*n {
                            let d =
                                [head(r.wrapping_add(k), *c), i.to_le_bytes().to_vec()].concat();
                            out.extend(biff(0x00FD, &d));
                            if out.len() > MAX_INPUT {
                                break;
                            }
                        }
                    }
                    XlsCell::Number(r, c, v) => out.extend(biff(
                        0x0203,
                        &[head(*r, *c), v.to_le_bytes().to_vec()].concat(),
                    )),
                    XlsCell::Label(r, c, s) => {
                        let (cch, flags, body) = xls_chars(s);
                        let d =
                            [head(*r, *c), cch.to_le_bytes().to_vec(), vec![flags], body].concat();
                        out.extend(biff(0x0204, &d));
                    }
                    XlsCell::MulRk(r, c, n) => {
                        let mut d = [r.to_le_bytes(), c.to_le_bytes()].concat();
                        for k in 0..*n {
                            d.extend_from_slice(&[0, 0]);
                            d.extend_from_slice(&((u32::from(k) << 2) | 2).to_le_bytes());
                        }
                        d.extend_from_slice(
                            &c.wrapping_add(u16::from(*n)).wrapping_sub(1).to_le_bytes(),
                        );
                        out.extend(biff(0x00BD, &d));
                    }
                    XlsCell::Dimensions(rf, rl, cf, cl) => {
                        let d = [
                            &rf.to_le_bytes()[..],
                            &rl.to_le_bytes(),
                            &cf.to_le_bytes(),
                            &cl.to_le_bytes(),
                            &[0, 0],
                        ]
                        .concat();
                        out.extend(biff(0x0200, &d));
                    }
                }
            }
            out.extend(biff(0x000A, &[]));
            out
        })
        .collect();
    let sst = xls_sst(strings);
    let globals_len =
        bof(5).len() + sheets.iter().map(|(n, _)| bound(0, n).len()).sum::<usize>() + sst.len() + 4;
    let mut stream = bof(5);
    let mut pos = globals_len;
    for ((name, _), body) in sheets.iter().zip(&bodies) {
        stream.extend(bound(pos as u32, name));
        pos += body.len();
    }
    stream.extend(sst);
    stream.extend(biff(0x000A, &[]));
    for body in bodies {
        stream.extend(body);
    }
    stream.truncate(MAX_INPUT);
    cfb_of("Workbook", &stream)
}

/// A compound file (version 3, 512-byte sectors) of one stream, padded to 4,096 bytes or
/// more (out of the mini stream).
fn cfb_of(name: &str, body: &[u8]) -> Vec<u8> {
    const END: u32 = 0xFFFF_FFFE;
    let mut body = body.to_vec();
    body.resize(body.len().max(4096).div_ceil(512) * 512, 0);
    let n = body.len() / 512;
    let mut fat_sectors = 1;
    while fat_sectors * 128 < fat_sectors + 1 + n {
        fat_sectors += 1;
    }
    let dir = fat_sectors as u32;
    let mut h = vec![0u8; 512];
    h[..8].copy_from_slice(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1");
    for (at, v) in [(24, 0x3E), (26, 3), (28, 0xFFFE), (30, 9), (32, 6)] {
        h[at..at + 2].copy_from_slice(&(v as u16).to_le_bytes());
    }
    for (at, v) in [
        (44, fat_sectors as u32),
        (48, dir),
        (56, 4096),
        (60, END),
        (68, END),
    ] {
        h[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    for i in 0..109 {
        let id = if i < fat_sectors { i as u32 } else { u32::MAX };
        h[76 + 4 * i..80 + 4 * i].copy_from_slice(&id.to_le_bytes());
    }
    let mut fat = vec![u32::MAX; fat_sectors * 128];
    fat[..fat_sectors].fill(0xFFFF_FFFD);
    fat[dir as usize] = END;
    for i in 0..n {
        let id = dir as usize + 1 + i;
        fat[id] = if i + 1 == n { END } else { id as u32 + 1 };
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
        for (at, v) in [
            (68, u32::MAX),
            (72, u32::MAX),
            (76, child),
            (116, start),
            (120, len),
        ] {
            e[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
        e
    };
    let mut out = h;
    out.extend(fat.iter().flat_map(|w| w.to_le_bytes()));
    out.extend(entry("Root Entry", 5, 1, END, 0));
    out.extend(entry(name, 2, u32::MAX, dir + 1, body.len() as u32));
    out.extend(vec![0u8; 256]);
    out.extend(body);
    out
}

/// A zip of the given entries (stored), to be nested or damaged.
fn zip_of(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in entries {
        // A name the writer refuses is simply left out.
        if w.start_file(name.as_str(), opts).is_ok() {
            let _ = w.write_all(data);
        }
    }
    w.finish().map(|c| c.into_inner()).unwrap_or_default()
}

/// Text that looks like outputs: identifiers of every kind the rules look for, tables with
/// small counts and identifier columns, long lines, EICAR, broken UTF-8.
fn text_line() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[a-z ,]{0,40}",
        1 => Just("id,name,postcode,dob,n".to_string()),
        2 => (0u32..100_000, 0u32..20).prop_map(|(id, n)| format!("{id},Ann,AB1 2CD,1980-02-03,{n}")),
        1 => Just("NHS 943 476 5919, NI QQ123456C, ann@example.org, 07700 900123".to_string()),
        1 => Just("10.0.0.1 born 03/02/1980 DOB: 1980-02-03".to_string()),
        1 => Just(r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*".to_string()),
        1 => "[0-9]{1,12}(,[0-9]{1,6}){0,6}",
        1 => "\"[a-z,\"\n]{0,20}\"",
        1 => hostile_string(),
        1 => (1usize..70_000).prop_map(|n| "1,".repeat(n / 2)),
    ]
    .boxed()
}

fn text(lines: Vec<String>, tab: bool) -> Vec<u8> {
    let mut out = lines.join("\n");
    if tab {
        out = out.replace(',', "\t");
    }
    out.into_bytes()
}

/// A generated file: its name in the submission and its bytes before damage.
#[derive(Debug, Clone)]
enum Seed {
    Text(String, Vec<String>, bool),
    Xlsx(String, Vec<(String, Vec<(String, String)>)>, Option<String>),
    Ods(Vec<Vec<String>>, Option<u32>),
    Xls(String, Vec<String>, Vec<(String, Vec<XlsCell>)>),
    Jpeg(Vec<(u16, String)>, bool, Option<String>),
    Png(Vec<(u16, String)>, bool),
    Tiff(Vec<(u16, String)>, bool),
    Zip(Vec<(String, Box<Seed>)>),
    Raw(String, Vec<u8>),
}

impl Seed {
    fn name(&self) -> String {
        match self {
            Seed::Text(n, ..) | Seed::Xlsx(n, ..) | Seed::Xls(n, ..) | Seed::Raw(n, _) => n.clone(),
            Seed::Ods(..) => "tables/book.ods".into(),
            Seed::Jpeg(..) => "figures/photo.jpg".into(),
            Seed::Png(..) => "figures/plot.png".into(),
            Seed::Tiff(..) => "figures/scan.tiff".into(),
            Seed::Zip(..) => "outputs/bundle.zip".into(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            Seed::Text(_, lines, tab) => text(lines.clone(), *tab),
            Seed::Xlsx(_, sheets, dim) => xlsx(sheets, dim.as_deref()),
            Seed::Ods(rows, repeat) => ods(rows, *repeat),
            Seed::Xls(_, strings, sheets) => xls(strings, sheets),
            Seed::Jpeg(tags, gps, xmp) => jpeg(&tiff(tags, *gps), xmp.as_deref()),
            Seed::Png(tags, gps) => png(&tiff(tags, *gps)),
            Seed::Tiff(tags, gps) => tiff(tags, *gps),
            Seed::Zip(entries) => zip_of(
                &entries
                    .iter()
                    .map(|(n, s)| (n.clone(), s.bytes()))
                    .collect::<Vec<_>>(),
            ),
            Seed::Raw(_, b) => b.clone(),
        }
    }
}

/// A cell reference: ordinary, at the sheet's far corner, or malformed.
fn cell_ref() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (0u8..26, 1u32..200).prop_map(|(c, r)| format!("{}{r}", (b'A' + c) as char)),
        1 => Just("XFD1048576".to_string()),
        1 => Just("A1048576".to_string()),
        1 => Just("XFD1".to_string()),
        1 => "[A-Z]{0,4}[0-9]{0,8}",
        1 => hostile_string(),
    ]
}

/// A cell record of a generated .xls: ordinary, repeated many times, at the far corner, or a
/// `Dimensions` record out of range.
fn xls_cell() -> impl Strategy<Value = XlsCell> {
    let at = prop_oneof![4 => (0u16..50, 0u16..8), 1 => Just((u16::MAX, u16::MAX)), 1 => (any::<u16>(), any::<u16>())];
    prop_oneof![
        4 => (at.clone(), 0u32..6, prop_oneof![4 => 1u16..4, 1 => 1u16..20_000])
            .prop_map(|((r, c), i, n)| XlsCell::Shared(r, c, i, n)),
        3 => (at.clone(), any::<f64>()).prop_map(|((r, c), v)| XlsCell::Number(r, c, v)),
        2 => (at.clone(), text_line()).prop_map(|((r, c), s)| XlsCell::Label(r, c, s)),
        1 => (at, 1u8..40).prop_map(|((r, c), n)| XlsCell::MulRk(r, c, n)),
        1 => (any::<u32>(), any::<u32>(), any::<u16>(), any::<u16>())
            .prop_map(|(a, b, c, d)| XlsCell::Dimensions(a, b, c, d)),
    ]
}

fn exif_tags() -> impl Strategy<Value = Vec<(u16, String)>> {
    // Artist, Copyright, camera owner, body and lens serial numbers, make, and any tag.
    let tag = prop_oneof![
        4 => proptest::sample::select(&[0x013bu16, 0x8298, 0xa430, 0xa431, 0xa435, 0x010f][..]),
        1 => any::<u16>(),
    ];
    proptest::collection::vec((tag, "[ -~]{0,40}"), 0..5)
}

fn seed() -> impl Strategy<Value = Seed> {
    let leaf = prop_oneof![
        3 => (
            proptest::sample::select(&["results/table.csv", "results/t.tsv", "notes.txt", "a.md", "run.py", "data.json"][..]),
            proptest::collection::vec(text_line(), 0..30),
            any::<bool>(),
        )
            .prop_map(|(n, l, t)| Seed::Text(n.to_string(), l, t)),
        2 => (
            proptest::sample::select(&["tables/book.xlsx", "tables/book.xlsm", "tables/old.xls", "tables/b.xlsb"][..]),
            proptest::collection::vec(
                (
                    prop_oneof![4 => "[A-Za-z0-9 ]{1,12}", 1 => hostile_string()],
                    proptest::collection::vec((cell_ref(), text_line()), 0..12),
                ),
                0..3,
            ),
            prop_oneof![
                3 => Just(None),
                1 => Just(Some("A1:XFD1048576".to_string())),
                1 => cell_ref().prop_map(|r| Some(format!("A1:{r}"))),
            ],
        )
            .prop_map(|(n, s, d)| Seed::Xlsx(n.to_string(), s, d)),
        1 => (
            proptest::collection::vec(proptest::collection::vec(text_line(), 0..6), 0..10),
            prop_oneof![4 => Just(None), 1 => prop_oneof![Just(1_000_000u32), Just(u32::MAX), 0u32..5000].prop_map(Some)],
        )
            .prop_map(|(r, n)| Seed::Ods(r, n)),
        3 => (
            proptest::sample::select(&["tables/old.xls", "tables/old.xlsx"][..]),
            proptest::collection::vec(
                prop_oneof![3 => text_line(), 1 => (1usize..65_535).prop_map(|n| "x".repeat(n))],
                0..4,
            ),
            proptest::collection::vec(
                (
                    prop_oneof![4 => "[A-Za-z0-9 ]{1,12}", 1 => hostile_string()],
                    proptest::collection::vec(xls_cell(), 0..12),
                ),
                0..3,
            ),
        )
            .prop_map(|(n, s, c)| Seed::Xls(n.to_string(), s, c)),
        2 => (exif_tags(), any::<bool>(), proptest::option::of(prop_oneof![
            Just(r#"<x:xmpmeta><rdf:Description exif:GPSLatitude="51,30N" exif:GPSLongitude="0,7W" dc:creator="Ann"/></x:xmpmeta>"#.to_string()),
            hostile_string(),
        ]))
            .prop_map(|(t, g, x)| Seed::Jpeg(t, g, x)),
        1 => (exif_tags(), any::<bool>()).prop_map(|(t, g)| Seed::Png(t, g)),
        1 => (exif_tags(), any::<bool>()).prop_map(|(t, g)| Seed::Tiff(t, g)),
        1 => (
            proptest::sample::select(&["x.bin", "x.csv", "x.xlsx", "x.jpg", "x.zip", "x.ods", "x.gz", ".git/x", "x.exe"][..]),
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..2048),
                proptest::sample::select(vec![
                    &b"PK\x03\x04"[..], b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n",
                    b"II*\0", b"MM\0*", b"RIFF\0\0\0\0WEBP", b"\x1f\x8b", b"#!/bin/sh\n", b"MZ", b"\x7fELF",
                ])
                .prop_flat_map(|magic| proptest::collection::vec(any::<u8>(), 0..1024)
                    .prop_map(move |tail| [magic, &tail[..]].concat())),
            ],
        )
            .prop_map(|(n, b)| Seed::Raw(n.to_string(), b)),
    ];
    leaf.prop_recursive(3, 12, 4, |inner| {
        proptest::collection::vec(
            (
                prop_oneof![
                    4 => "[a-z]{1,8}/[a-z]{1,8}\\.(csv|txt|xlsx|jpg|zip|ods)",
                    1 => hostile_string(),
                ],
                inner.prop_map(Box::new),
            ),
            0..4,
        )
        .prop_map(Seed::Zip)
    })
}

/// Damage to a file's bytes: the kinds a corrupted or crafted file shows.
#[derive(Debug, Clone)]
enum Damage {
    /// Cut at this fraction (per mille).
    Truncate(u16),
    /// These bytes overwrite at this fraction.
    Overwrite(u16, Vec<u8>),
    /// These bytes inserted at this fraction.
    Insert(u16, Vec<u8>),
    /// A 32-bit field at this fraction set to an edge value (sizes, offsets, counts).
    Field(u16, u32),
    /// A range (start, length per mille) repeated.
    Repeat(u16, u16, u8),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0u16..=1000).prop_map(Damage::Truncate),
        (0u16..=1000, proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(p, b)| Damage::Overwrite(p, b)),
        (0u16..=1000, proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(p, b)| Damage::Insert(p, b)),
        (
            0u16..=1000,
            prop_oneof![
                Just(0u32),
                Just(u32::MAX),
                Just(0xFFFF),
                Just(0x8000_0000),
                any::<u32>()
            ]
        )
            .prop_map(|(p, v)| Damage::Field(p, v)),
        (0u16..=1000, 1u16..200, 1u8..8).prop_map(|(p, l, n)| Damage::Repeat(p, l, n)),
    ]
}

fn apply(data: &mut Vec<u8>, d: &Damage) {
    let at = |p: u16, len: usize| len * usize::from(p.min(1000)) / 1000;
    match d {
        Damage::Truncate(p) => data.truncate(at(*p, data.len())),
        Damage::Overwrite(p, b) => {
            let i = at(*p, data.len());
            for (k, byte) in b.iter().enumerate() {
                if let Some(x) = data.get_mut(i + k) {
                    *x = *byte;
                }
            }
        }
        Damage::Insert(p, b) => {
            let i = at(*p, data.len());
            data.splice(i..i, b.iter().copied());
        }
        Damage::Field(p, v) => {
            let i = at(*p, data.len());
            if i + 4 <= data.len() {
                data[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        Damage::Repeat(p, l, n) => {
            let i = at(*p, data.len());
            let end = (i + at(*l, data.len()).max(1)).min(data.len());
            let piece = data[i..end].to_vec();
            for _ in 0..*n {
                if data.len() + piece.len() > MAX_INPUT {
                    break;
                }
                data.splice(end..end, piece.iter().copied());
            }
        }
    }
    data.truncate(MAX_INPUT);
}

/// A policy: the defaults, or with limits small enough that the generated files reach them.
fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        3 => Just(Policy::default()),
        1 => (1u64..4096, 0u32..4, 1u64..20, 1u64..5, any::<bool>()).prop_map(
            |(sheet_bytes, depth, entries, ratio, zeros)| {
                let mut p = Policy::default();
                p.tables.max_spreadsheet_bytes = sheet_bytes * 64;
                p.archives.max_depth = depth;
                p.archives.max_entries = entries;
                p.archives.max_expansion_ratio = ratio;
                p.archives.max_expanded_bytes = sheet_bytes * 16;
                p.tables.flag_zeros = zeros;
                p.tables.small_count_threshold = ratio * 3;
                p
            }
        ),
    ]
}

/// The properties of one file's reports.
fn check_reports(path: &str, len: usize, reports: &[FileReport]) -> TestCaseResult {
    let known: Vec<&str> = rules::ALL.iter().map(|r| r.id).collect();
    let first = reports.first();
    prop_assert!(first.is_some(), "no report for {}", path);
    let first = first.expect("checked");
    prop_assert_eq!(first.path.as_str(), path);
    prop_assert_eq!(first.bytes, len as u64);
    for r in reports {
        if !std::ptr::eq(r, first) {
            prop_assert!(
                r.path.starts_with(&format!("{path}!/")),
                "an entry outside its file: {:?}",
                r.path
            );
        }
        let worst = r.findings.iter().map(|f| f.severity).max();
        prop_assert_eq!(r.verdict, worst.unwrap_or(Severity::Pass));
        for f in &r.findings {
            prop_assert!(known.contains(&f.rule.as_str()), "unknown rule {}", f.rule);
            prop_assert!(f.locations.len() <= MAX_LOCATIONS);
            prop_assert!(f.count >= 1 || f.rule == rules::ACRO_VERIFIED.id);
        }
    }
    Ok(())
}

fn tally_findings(reports: &[FileReport]) {
    for r in reports {
        for f in &r.findings {
            match f.rule.as_str() {
                "spreadsheet-not-checked" => support::tally("spreadsheet_not_checked"),
                "archive-unreadable" => support::tally("archive_unreadable"),
                "image-gps" | "image-identifying-metadata" => support::tally("image_metadata"),
                "table-small-counts" | "table-record-level" => support::tally("table_finding"),
                _ => {}
            }
        }
        if r.path.contains("!/") {
            support::tally("entries_reported");
        }
    }
}

#[test]
fn when_submitted_files_are_hostile_bytes_then_every_reader_reports_and_none_panics() {
    support::run(
        "checks_content",
        support::cases(support::DEFAULT_CASES, u32::MAX),
        (
            seed(),
            proptest::collection::vec(damage(), 0..3),
            policy(),
            1usize..70_000,
        ),
        |(seed, damages, policy, chunk)| {
            let path = seed.name();
            let mut data = seed.bytes();
            data.truncate(MAX_INPUT);
            for d in &damages {
                apply(&mut data, d);
            }
            let started = Instant::now();
            // Fed in chunks, as the step streams an object.
            let mut checker = FileChecker::new(&policy, &path);
            for piece in data.chunks(chunk) {
                checker.feed(piece);
            }
            let reports = checker.finish();
            if started.elapsed().as_secs() >= 1 {
                support::tally("slow_case_over_1s");
            }
            support::tally(if damages.is_empty() {
                "intact"
            } else {
                "damaged"
            });
            tally_findings(&reports);
            if matches!(seed, Seed::Xls(..)) {
                let not_checked = reports[0]
                    .findings
                    .iter()
                    .find(|f| f.rule == "spreadsheet-not-checked")
                    .and_then(|f| f.detail.as_deref());
                support::tally(match not_checked {
                    _ if reports.len() > 1 => "xls_sheets_read",
                    Some(d) if d.starts_with("too large") => "xls_too_large",
                    Some(d) if d.contains("compound file") => "xls_damaged_cfb",
                    None => "xls_no_sheet",
                    _ => "xls_unreadable",
                });
            }
            check_reports(&path, data.len(), &reports)
        },
    );
}

/// An ACRO folder: outputs and their files, checksums of some, and what is submitted.
#[derive(Debug, Clone)]
struct AcroCase {
    /// (file name, content) of the output files.
    files: Vec<(String, Vec<u8>)>,
    /// Which files get a `checksums/<name>.txt` (and whether it is the right one).
    checksums: Vec<(usize, bool)>,
    /// Which files are not submitted.
    left_out: Vec<usize>,
    statuses: Vec<String>,
    mutations: Vec<Mutation>,
    checksum_damage: Option<(usize, String)>,
    results_damage: Option<support::TextDamage>,
}

fn acro_case() -> impl Strategy<Value = AcroCase> {
    let mut paths = vec![path(&["results"]), path(&["version"])];
    for o in ["output_0", "output_1"] {
        paths.push(path(&["results", o]));
        for m in [
            "status",
            "type",
            "files",
            "exception",
            "comments",
            "summary",
        ] {
            paths.push(path(&["results", o, m]));
        }
        paths.push(path(&["results", o, "files", "0"]));
        paths.push(path(&["results", o, "files", "0", "name"]));
        paths.push(path(&["results", o, "files", "0", "sha256"]));
    }
    (
        proptest::collection::vec(
            (
                prop_oneof![4 => "[a-z]{1,8}\\.(csv|txt|png)", 1 => hostile_string()],
                proptest::collection::vec(any::<u8>(), 0..64),
            ),
            1..5,
        ),
        proptest::collection::vec((0usize..5, any::<bool>()), 0..5),
        proptest::collection::vec(0usize..5, 0..2),
        proptest::collection::vec(
            prop_oneof![Just("pass".to_string()), Just("fail".to_string()), Just("review".to_string()), hostile_string()],
            1..4,
        ),
        proptest::collection::vec(mutation(paths), 0..3),
        proptest::option::of((0usize..5, prop_oneof![hostile_string(), "[0-9a-fA-F]{64}"])),
        prop_oneof![6 => Just(None), 1 => support::text_damage(vec!["results", "version"]).prop_map(Some)],
    )
        .prop_map(
            |(files, checksums, left_out, statuses, mutations, checksum_damage, results_damage)| AcroCase {
                files,
                checksums,
                left_out,
                statuses,
                mutations,
                checksum_damage,
                results_damage,
            },
        )
}

#[test]
fn when_acro_results_and_checksums_are_hostile_then_the_report_is_made_and_bounded() {
    support::run(
        "checks_acro",
        support::cases(support::DEFAULT_CASES, u32::MAX),
        (
            acro_case(),
            prop_oneof![Just(""), Just("acro"), Just("a/b")],
        ),
        |(case, dir)| {
            let policy = Policy::default();
            let join = |name: &str| {
                if dir.is_empty() {
                    name.to_string()
                } else {
                    format!("{dir}/{name}")
                }
            };
            let mut outputs = serde_json::Map::new();
            for (i, status) in case.statuses.iter().enumerate() {
                let files: Vec<Value> = case
                    .files
                    .iter()
                    .skip(i)
                    .step_by(case.statuses.len())
                    .map(|(n, _)| json!({"name": n, "sdc": {}}))
                    .collect();
                outputs.insert(
                    format!("output_{i}"),
                    json!({"status": status, "type": "table", "files": files,
                           "exception": "needed for the paper", "comments": ["c"], "summary": "ok"}),
                );
            }
            let mut doc = json!({"version": "0.4.5", "results": outputs});
            for m in &case.mutations {
                m.apply(&mut doc);
            }
            let mut results = doc.to_string();
            if let Some(d) = &case.results_damage {
                results = d.apply(&results);
            }
            let mut checker = RequestChecker::new(&policy);
            let mut digests = BTreeMap::new();
            let mut files: Vec<(String, Vec<u8>)> = case
                .files
                .iter()
                .enumerate()
                .filter(|(i, _)| !case.left_out.contains(i))
                .map(|(_, (n, b))| (join(n), b.clone()))
                .collect();
            files.push((join("results.json"), results.into_bytes()));
            for (i, right) in &case.checksums {
                if let Some((name, content)) = case.files.get(*i) {
                    let mut hex = hex::encode(Sha256::digest(content));
                    if !right {
                        hex = hex::encode(Sha256::digest(b"another"));
                    }
                    if let Some((j, text)) = &case.checksum_damage {
                        if j == i {
                            hex = text.clone();
                        }
                    }
                    files.push((join(&format!("checksums/{name}.txt")), hex.into_bytes()));
                }
            }
            for (path, content) in &files {
                let digest = hex::encode(Sha256::digest(content));
                checker.add_digest(path, &digest);
                digests.insert(path.clone(), digest);
                checker.add_acro_content(path, content.clone());
                checker.add(shared::checks::check_bytes(&policy, path, content));
            }
            let report = checker.finish();
            prop_assert!(report.acro_outputs.len() <= shared::checks::acro::MAX_OUTPUTS);
            let known: Vec<&str> = rules::ALL.iter().map(|r| r.id).collect();
            for f in &report.files {
                let worst = f.findings.iter().map(|x| x.severity).max();
                prop_assert_eq!(f.verdict, worst.unwrap_or(Severity::Pass));
                for finding in &f.findings {
                    prop_assert!(known.contains(&finding.rule.as_str()));
                }
                if f.path != join("results.json")
                    && f.findings
                        .iter()
                        .any(|x| x.rule == rules::ACRO_CHECKSUM_MISMATCH.id)
                {
                    // Flagged as changed: ACRO's checksum of it is not its digest.
                    let name = f.path.rsplit('/').next().unwrap_or_default();
                    // The last checksum file of a name is the one kept.
                    let recorded = files
                        .iter()
                        .rev()
                        .find(|(p, _)| *p == join(&format!("checksums/{name}.txt")))
                        .map(|(_, c)| String::from_utf8_lossy(c).trim().to_ascii_lowercase());
                    prop_assert!(recorded.as_deref() != digests.get(&f.path).map(String::as_str));
                }
            }
            let on_results = report.files.iter().find(|f| f.path == join("results.json"));
            let acro_rules = on_results
                .map(|f| {
                    f.findings
                        .iter()
                        .filter(|x| x.rule.starts_with("acro-"))
                        .count()
                })
                .unwrap_or(0);
            support::tally(match (report.acro_outputs.is_empty(), acro_rules) {
                (_, 0) => "not_acro",
                (true, _) => "acro_unreadable_or_empty",
                (false, _) => "acro_imported",
            });
            Ok(())
        },
    );
}
