//! Images: GPS positions and identifying metadata in EXIF (JPEG, TIFF, PNG, WebP, HEIF, read
//! with `kamadak-exif`) and XMP packets.
//!
//! Metadata sits at the start of an image (a JPEG's APP1 segment, a TIFF's first IFD, a PNG's
//! chunks before the pixels), so only the first [`IMAGE_HEAD`] bytes are kept and parsed:
//! memory stays bounded whatever the image. Evidence names the tags found, never their values
//! (no coordinates, no names, no serial numbers).

use std::io::Cursor;

use exif::Tag;
use memchr::memmem;

use super::policy::Policy;
use super::report::Findings;
use super::rules;

/// Bytes of an image kept for its metadata.
pub(crate) const IMAGE_HEAD: usize = 1024 * 1024;

/// EXIF tags that name a person or a device, with the words the evidence uses for them.
const IDENTIFYING_TAGS: &[(Tag, &str)] = &[
    (Tag::CameraOwnerName, "camera owner name"),
    (Tag::Artist, "artist"),
    (Tag::BodySerialNumber, "camera serial number"),
    (Tag::LensSerialNumber, "lens serial number"),
];

/// XMP properties (as they appear in the packet) and the words the evidence uses.
const XMP_GPS: &[&[u8]] = &[b"GPSLatitude", b"GPSLongitude"];
const XMP_IDENTIFYING: &[(&[u8], &str)] = &[
    (b"OwnerName", "camera owner name"),
    (b"SerialNumber", "serial number"),
    (b"dc:creator", "creator"),
];

/// The first bytes of an image, fed chunk by chunk.
#[derive(Debug, Default)]
pub(crate) struct ImageScan {
    head: Vec<u8>,
}

impl ImageScan {
    pub(crate) fn feed(&mut self, data: &[u8]) {
        let room = IMAGE_HEAD.saturating_sub(self.head.len());
        self.head.extend_from_slice(&data[..room.min(data.len())]);
    }

    pub(crate) fn finish(self, policy: &Policy, findings: &mut Findings) {
        let mut gps: Vec<&str> = Vec::new();
        let mut identifying: Vec<&str> = Vec::new();
        // A missing or truncated EXIF block is not a finding: there is nothing to report.
        if let Ok(exif) = exif::Reader::new().read_from_container(&mut Cursor::new(&self.head)) {
            let has = |tag: Tag| exif.fields().any(|f| f.tag == tag);
            if has(Tag::GPSLatitude) || has(Tag::GPSLongitude) {
                gps.push("EXIF");
            }
            for (tag, words) in IDENTIFYING_TAGS {
                // By number: cameras write these in the Exif IFD, some tools in IFD0.
                if exif
                    .fields()
                    .any(|f| f.tag.number() == tag.number() && !is_blank(&f.value))
                {
                    identifying.push(words);
                }
            }
        }
        if let Some(xmp) = xmp_packet(&self.head) {
            if XMP_GPS.iter().any(|p| memmem::find(xmp, p).is_some()) {
                gps.push("XMP");
            }
            for (property, words) in XMP_IDENTIFYING {
                if memmem::find(xmp, property).is_some() && !identifying.contains(words) {
                    identifying.push(words);
                }
            }
        }
        if !gps.is_empty() {
            findings.add(rules::IMAGE_GPS, policy.images.gps, 1, None, None);
            findings.detail(
                rules::IMAGE_GPS,
                format!("GPS latitude/longitude present ({})", gps.join(", ")),
            );
        }
        if !identifying.is_empty() {
            findings.add(
                rules::IMAGE_IDENTIFYING,
                policy.images.identifying_metadata,
                identifying.len() as u64,
                None,
                None,
            );
            findings.detail(
                rules::IMAGE_IDENTIFYING,
                format!("present: {}", identifying.join(", ")),
            );
        }
    }
}

/// An ASCII or byte value that holds nothing (cameras write empty owner fields).
fn is_blank(value: &exif::Value) -> bool {
    match value {
        exif::Value::Ascii(parts) => parts
            .iter()
            .all(|p| p.iter().all(|b| b.is_ascii_whitespace() || *b == 0)),
        exif::Value::Undefined(bytes, _) | exif::Value::Byte(bytes) => {
            bytes.iter().all(|b| b.is_ascii_whitespace() || *b == 0)
        }
        _ => false,
    }
}

/// The XMP packet in `head`, from `<x:xmpmeta` (or `<rdf:RDF`) to its end or the head's end.
fn xmp_packet(head: &[u8]) -> Option<&[u8]> {
    let start = memmem::find(head, b"<x:xmpmeta").or_else(|| memmem::find(head, b"<rdf:RDF"))?;
    let rest = &head[start..];
    let end = memmem::find(rest, b"</x:xmpmeta>")
        .or_else(|| memmem::find(rest, b"</rdf:RDF>"))
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::checks::{check_bytes, Policy, Severity};

    /// A little-endian TIFF block: IFD0 with the given ASCII entries and, when `gps`, a GPS IFD
    /// with latitude and longitude (synthetic values, never shown by the checks).
    pub(crate) fn tiff(ascii: &[(u16, &str)], gps: bool) -> Vec<u8> {
        let mut entries: Vec<(u16, u16, u32, Vec<u8>)> = ascii
            .iter()
            .map(|(tag, s)| {
                let mut v = s.as_bytes().to_vec();
                v.push(0);
                (*tag, 2u16, v.len() as u32, v)
            })
            .collect();
        if gps {
            entries.push((0x8825, 4, 1, vec![0; 4])); // GPS IFD pointer, patched below
        }
        entries.sort_by_key(|e| e.0);
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
            // GPS IFD: LatitudeRef, Latitude, LongitudeRef, Longitude (rationals after it).
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

    /// A JPEG with an APP1 Exif segment holding `tiff`, then some scan data.
    pub(crate) fn jpeg(tiff: &[u8], xmp: Option<&str>) -> Vec<u8> {
        let mut out = b"\xff\xd8".to_vec();
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(tiff);
        out.extend_from_slice(b"\xff\xe1");
        out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&app1);
        if let Some(x) = xmp {
            let mut seg = b"http://ns.adobe.com/xap/1.0/\0".to_vec();
            seg.extend_from_slice(x.as_bytes());
            out.extend_from_slice(b"\xff\xe1");
            out.extend_from_slice(&((seg.len() + 2) as u16).to_be_bytes());
            out.extend_from_slice(&seg);
        }
        out.extend_from_slice(b"\xff\xda\0\x08\x01\x01\0\0\x3f\0");
        out.extend_from_slice(&[0x55; 20_000]);
        out.extend_from_slice(b"\xff\xd9");
        out
    }

    fn png_with_exif(tiff: &[u8]) -> Vec<u8> {
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

    fn finding(
        reports: &[crate::checks::FileReport],
        rule: &str,
    ) -> Option<crate::checks::Finding> {
        reports[0].findings.iter().find(|f| f.rule == rule).cloned()
    }

    #[test]
    fn when_a_jpeg_has_a_gps_position_then_it_is_flagged_without_the_coordinates() {
        let p = Policy::default();
        let img = jpeg(&tiff(&[(0x010f, "ACME")], true), None);
        let r = check_bytes(&p, "photo.jpg", &img);
        let f = finding(&r, "image-gps").expect("GPS flagged");
        assert_eq!(f.severity, Severity::Review);
        assert_eq!(
            f.detail.as_deref(),
            Some("GPS latitude/longitude present (EXIF)")
        );
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("deg") && !json.contains("51/1"), "{json}");
        assert!(!json.contains("ACME"));
        assert!(
            finding(&r, "image-identifying-metadata").is_none(),
            "Make alone names no one"
        );
    }

    #[test]
    fn when_a_jpeg_has_no_gps_then_nothing_is_flagged_and_the_image_passes() {
        let p = Policy::default();
        let img = jpeg(&tiff(&[(0x010f, "ACME"), (0x0110, "Model 1")], false), None);
        let r = check_bytes(&p, "photo.jpg", &img);
        assert_eq!(r[0].verdict, Severity::Pass, "{:?}", r[0].findings);
        assert_eq!(r[0].detected_type, "image/jpeg");
    }

    #[test]
    fn when_the_owner_and_serial_are_set_then_identifying_metadata_is_flagged_by_tag_name_only() {
        let p = Policy::default();
        let img = jpeg(
            &tiff(&[(0xa430, "Jo Bloggs"), (0xa431, "SN12345678")], false),
            None,
        );
        let r = check_bytes(&p, "photo.jpeg", &img);
        let f = finding(&r, "image-identifying-metadata").expect("flagged");
        assert_eq!(f.count, 2);
        assert_eq!(
            f.detail.as_deref(),
            Some("present: camera owner name, camera serial number")
        );
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            !json.contains("Bloggs") && !json.contains("SN1234"),
            "{json}"
        );
        // Near miss: an owner field a camera left blank.
        let blank = jpeg(&tiff(&[(0xa430, "   ")], false), None);
        assert!(finding(
            &check_bytes(&p, "b.jpg", &blank),
            "image-identifying-metadata"
        )
        .is_none());
    }

    #[test]
    fn when_a_tiff_or_png_carries_gps_then_it_is_flagged_and_the_policy_sets_the_severity() {
        let mut p = Policy::default();
        p.images.gps = Severity::Block;
        let t = tiff(&[], true);
        assert_eq!(
            finding(&check_bytes(&p, "scan.tif", &t), "image-gps").map(|f| f.severity),
            Some(Severity::Block)
        );
        assert!(finding(
            &check_bytes(&p, "plot.png", &png_with_exif(&t)),
            "image-gps"
        )
        .is_some());
        assert!(finding(
            &check_bytes(&p, "plot.png", &png_with_exif(&tiff(&[], false))),
            "image-gps"
        )
        .is_none());
    }

    #[test]
    fn when_xmp_holds_gps_or_a_creator_then_they_are_flagged_and_not_outside_a_packet() {
        let p = Policy::default();
        let xmp = r#"<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description exif:GPSLatitude="51,30.0N" exif:GPSLongitude="0,7.0W"><dc:creator>Someone</dc:creator></rdf:Description></rdf:RDF></x:xmpmeta>"#;
        let img = jpeg(&tiff(&[], false), Some(xmp));
        let r = check_bytes(&p, "photo.jpg", &img);
        assert_eq!(
            finding(&r, "image-gps").and_then(|f| f.detail),
            Some("GPS latitude/longitude present (XMP)".into())
        );
        assert!(finding(&r, "image-identifying-metadata").is_some());
        assert!(!serde_json::to_string(&r).unwrap().contains("Someone"));
        // Near miss: the words in the pixels, outside any XMP packet.
        let mut stray = jpeg(&tiff(&[], false), None);
        stray.extend_from_slice(b"GPSLatitude");
        assert!(finding(&check_bytes(&p, "photo.jpg", &stray), "image-gps").is_none());
    }

    #[test]
    fn when_an_image_is_large_then_only_its_head_is_kept_and_chunking_does_not_matter() {
        let p = Policy::default();
        let mut img = jpeg(&tiff(&[], true), None);
        img.extend(std::iter::repeat_n(0x55, 3 * super::IMAGE_HEAD));
        let whole = check_bytes(&p, "big.jpg", &img);
        let mut c = crate::checks::FileChecker::new(&p, "big.jpg");
        for piece in img.chunks(7) {
            c.feed(piece);
        }
        assert_eq!(c.finish(), whole);
        assert!(finding(&whole, "image-gps").is_some());
    }
}
