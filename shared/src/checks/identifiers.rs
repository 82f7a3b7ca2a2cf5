//! Personal identifiers in text, one line at a time: NHS numbers, UK postcodes, e-mail
//! addresses, UK phone numbers, National Insurance numbers, dates of birth and IPv4 addresses.
//!
//! One pass over the line: most bytes cost one boundary test. Matches are counted and located,
//! and only their shape is kept ([`mask`]): the value itself never leaves this module.

use super::rules::{self, Rule};

/// What was found, where (byte offset in the line), and its shape.
pub(crate) struct Hit {
    pub rule: Rule,
    pub offset: usize,
    pub shape: String,
}

/// The shape of a value: digits become `#`, letters `x`, the rest kept; an e-mail keeps only
/// its top-level domain.
pub(crate) fn mask(value: &[u8]) -> String {
    if let Some(at) = value.iter().position(|&b| b == b'@') {
        let domain = &value[at + 1..];
        let tld = domain
            .iter()
            .rposition(|&b| b == b'.')
            .map(|i| String::from_utf8_lossy(&domain[i..]).to_string())
            .unwrap_or_default();
        return format!("***@***{tld}");
    }
    value
        .iter()
        .map(|&b| match b {
            b'0'..=b'9' => '#',
            b'a'..=b'z' | b'A'..=b'Z' => 'x',
            b if b.is_ascii_graphic() || b == b' ' => b as char,
            _ => '?',
        })
        .collect()
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether 10 digits are a valid NHS number (modulus 11: weights 10..2 on the first nine;
/// 11 - remainder is the check digit, 11 reads as 0, 10 is never valid).
pub(crate) fn nhs_valid(d: &[u8; 10]) -> bool {
    let sum: u32 = d[..9]
        .iter()
        .enumerate()
        .map(|(i, &x)| u32::from(x) * (10 - i as u32))
        .sum();
    let check = match 11 - (sum % 11) {
        11 => 0,
        10 => return false,
        c => c,
    };
    check == u32::from(d[9])
}

/// Digits of a number token starting at `i`: digits with single spaces or hyphens between
/// groups. Holds the digits (up to 17), the group lengths, the separators and the end, in
/// fixed arrays: a table has a number token in most cells, so this must not allocate.
struct NumberToken {
    digits: [u8; 17],
    digit_count: usize,
    groups: [usize; 5],
    group_count: usize,
    separators: [u8; 4],
    separator_count: usize,
    end: usize,
}

impl NumberToken {
    fn digits(&self) -> &[u8] {
        &self.digits[..self.digit_count]
    }

    fn groups(&self) -> &[usize] {
        &self.groups[..self.group_count]
    }

    fn separators(&self) -> &[u8] {
        &self.separators[..self.separator_count]
    }
}

fn number_token(line: &[u8], start: usize) -> NumberToken {
    let mut t = NumberToken {
        digits: [0; 17],
        digit_count: 0,
        groups: [0; 5],
        group_count: 1,
        separators: [0; 4],
        separator_count: 0,
        end: start,
    };
    let mut i = start;
    while i < line.len() && t.digit_count <= 16 {
        let b = line[i];
        if b.is_ascii_digit() {
            t.digits[t.digit_count] = b - b'0';
            t.digit_count += 1;
            t.groups[t.group_count - 1] += 1;
            i += 1;
        } else if (b == b' ' || b == b'-')
            && i + 1 < line.len()
            && line[i + 1].is_ascii_digit()
            && t.separator_count < 4
        {
            t.separators[t.separator_count] = b;
            t.separator_count += 1;
            t.group_count += 1;
            i += 1;
        } else {
            break;
        }
    }
    t.end = i;
    t
}

fn ends_cleanly(line: &[u8], end: usize) -> bool {
    match line.get(end) {
        None => true,
        Some(&b) if is_word(b) => false,
        // "123.45": the token was the integer part of a decimal.
        Some(b'.') => !line.get(end + 1).is_some_and(|b| b.is_ascii_digit()),
        Some(_) => true,
    }
}

fn ipv4_at(line: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    for part in 0..4 {
        let s = i;
        let mut v: u32 = 0;
        while i < line.len() && line[i].is_ascii_digit() && i - s < 3 {
            v = v * 10 + u32::from(line[i] - b'0');
            i += 1;
        }
        if i == s || v > 255 || line.get(i).is_some_and(|b| b.is_ascii_digit()) {
            return None;
        }
        if part < 3 {
            if line.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    // "1.2.3.4.5" is a version or an OID, not an address.
    if line.get(i) == Some(&b'.') && line.get(i + 1).is_some_and(|b| b.is_ascii_digit()) {
        return None;
    }
    if line.get(i).is_some_and(|&b| is_word(b)) {
        return None;
    }
    Some(i)
}

/// A date `dd/mm/yyyy`, `dd-mm-yyyy`, `dd.mm.yyyy` or `yyyy-mm-dd` starting at `start`; its end.
pub(crate) fn date_at(line: &[u8], start: usize) -> Option<usize> {
    let num = |from: usize, len: usize| -> Option<u32> {
        let s = line.get(from..from + len)?;
        if s.iter().all(u8::is_ascii_digit) {
            Some(s.iter().fold(0u32, |a, &b| a * 10 + u32::from(b - b'0')))
        } else {
            None
        }
    };
    let valid = |y: u32, m: u32, d: u32| {
        (1900..=2100).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d)
    };
    // yyyy-mm-dd
    if let (Some(y), Some(b'-'), Some(m), Some(b'-'), Some(d)) = (
        num(start, 4),
        line.get(start + 4),
        num(start + 5, 2),
        line.get(start + 7),
        num(start + 8, 2),
    ) {
        if valid(y, m, d) && ends_cleanly(line, start + 10) {
            return Some(start + 10);
        }
    }
    // dd/mm/yyyy (or - or .)
    let sep = *line.get(start + 2)?;
    if matches!(sep, b'/' | b'-' | b'.') && line.get(start + 5) == Some(&sep) {
        if let (Some(d), Some(m), Some(y)) = (num(start, 2), num(start + 3, 2), num(start + 6, 4)) {
            if valid(y, m, d) && ends_cleanly(line, start + 10) {
                return Some(start + 10);
            }
        }
    }
    None
}

fn upper(b: Option<&u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_uppercase())
}
fn digit(b: Option<&u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_digit())
}

/// A UK postcode starting at `start` (upper case, one optional space); its end.
fn postcode_at(line: &[u8], start: usize) -> Option<usize> {
    let first = line[start];
    if matches!(first, b'Q' | b'V' | b'X') {
        return None;
    }
    let mut i = start + 1;
    if upper(line.get(i)) {
        i += 1;
    }
    if !digit(line.get(i)) {
        return None;
    }
    i += 1;
    if digit(line.get(i)) || upper(line.get(i)) {
        // The optional second outward character, unless it starts the inward code.
        let inward_here = digit(line.get(i))
            && upper(line.get(i + 1))
            && upper(line.get(i + 2))
            && !line.get(i + 3).is_some_and(|&b| is_word(b));
        if !inward_here {
            i += 1;
        }
    }
    if line.get(i) == Some(&b' ') {
        i += 1;
    }
    let inward_letter =
        |b: Option<&u8>| upper(b) && !matches!(b, Some(b'C' | b'I' | b'K' | b'M' | b'O' | b'V'));
    if digit(line.get(i)) && inward_letter(line.get(i + 1)) && inward_letter(line.get(i + 2)) {
        let end = i + 3;
        if !line.get(end).is_some_and(|&b| is_word(b)) {
            return Some(end);
        }
    }
    None
}

/// A National Insurance number (`AB123456C`, or `AB 12 34 56 C`) starting at `start`; its end.
fn ni_at(line: &[u8], start: usize) -> Option<usize> {
    let (a, b) = (line[start], *line.get(start + 1)?);
    if !b.is_ascii_uppercase()
        || matches!(a, b'D' | b'F' | b'I' | b'Q' | b'U' | b'V')
        || matches!(b, b'D' | b'F' | b'I' | b'O' | b'Q' | b'U' | b'V')
        || matches!(
            &[a, b],
            b"BG" | b"GB" | b"NK" | b"KN" | b"TN" | b"NT" | b"ZZ"
        )
    {
        return None;
    }
    let mut i = start + 2;
    let spaced = line.get(i) == Some(&b' ');
    for _ in 0..3 {
        if spaced {
            if line.get(i) != Some(&b' ') {
                return None;
            }
            i += 1;
        }
        if !(digit(line.get(i)) && digit(line.get(i + 1))) {
            return None;
        }
        i += 2;
    }
    if spaced && line.get(i) == Some(&b' ') {
        i += 1;
    }
    if !matches!(line.get(i), Some(b'A'..=b'D')) {
        return None;
    }
    i += 1;
    if line.get(i).is_some_and(|&b| is_word(b)) {
        return None;
    }
    Some(i)
}

fn email_around(line: &[u8], at: usize) -> Option<(usize, usize)> {
    let local = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-');
    let mut s = at;
    while s > 0 && local(line[s - 1]) && at - s < 64 {
        s -= 1;
    }
    if s == at {
        return None;
    }
    let mut e = at + 1;
    while e < line.len() && (line[e].is_ascii_alphanumeric() || matches!(line[e], b'.' | b'-')) {
        e += 1;
    }
    let mut domain = &line[at + 1..e];
    while domain.last() == Some(&b'.') {
        domain = &domain[..domain.len() - 1];
    }
    let dot = domain.iter().rposition(|&b| b == b'.')?;
    let tld = &domain[dot + 1..];
    if dot == 0 || tld.len() < 2 || !tld.iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    Some((s, at + 1 + domain.len()))
}

/// Whether the line speaks of birth dates ("DOB", "date of birth", "born"), case-insensitive,
/// at the start of a word.
fn mentions_birth(line: &[u8]) -> bool {
    const NEEDLES: [&[u8]; 3] = [b"dob", b"birth", b"born"];
    line.iter().enumerate().any(|(i, &b)| {
        matches!(b, b'b' | b'B' | b'd' | b'D')
            && (i == 0 || !line[i - 1].is_ascii_alphabetic())
            && NEEDLES.iter().any(|n| {
                line.get(i..i + n.len())
                    .is_some_and(|w| w.eq_ignore_ascii_case(n))
            })
    })
}

/// Scans one line (without its newline) and reports every identifier found.
pub(crate) fn scan_line(line: &[u8], mut hit: impl FnMut(Hit)) {
    let birth = mentions_birth(line);
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        let boundary = i == 0 || !is_word(line[i - 1]);
        if b == b'@' {
            if let Some((s, e)) = email_around(line, i) {
                hit(Hit {
                    rule: rules::EMAIL,
                    offset: s,
                    shape: mask(&line[s..e]),
                });
                i = e;
                continue;
            }
        } else if boundary && b.is_ascii_digit() && (i == 0 || line[i - 1] != b'.') {
            if let Some(e) = ipv4_at(line, i) {
                hit(Hit {
                    rule: rules::IP_ADDRESS,
                    offset: i,
                    shape: mask(&line[i..e]),
                });
                i = e;
                continue;
            }
            if birth {
                if let Some(e) = date_at(line, i) {
                    hit(Hit {
                        rule: rules::DATE_OF_BIRTH,
                        offset: i,
                        shape: mask(&line[i..e]),
                    });
                    i = e;
                    continue;
                }
            }
            let t = number_token(line, i);
            if ends_cleanly(line, t.end) {
                let digits = t.digits();
                let plus44 = i > 0 && line[i - 1] == b'+' && digits.starts_with(&[4, 4]);
                let same_sep = t.separators().windows(2).all(|w| w[0] == w[1]);
                let groups = t.groups();
                if digits.len() == 10 && (groups == [10] || (groups == [3, 3, 4] && same_sep)) {
                    let mut d = [0u8; 10];
                    d.copy_from_slice(digits);
                    if nhs_valid(&d) {
                        hit(Hit {
                            rule: rules::NHS_NUMBER,
                            offset: i,
                            shape: mask(&line[i..t.end]),
                        });
                    }
                } else if (digits.len() == 11
                    && digits[0] == 0
                    && matches!(digits[1], 1 | 2 | 3 | 7))
                    || (plus44 && digits.len() == 12 && matches!(digits[2], 1 | 2 | 3 | 7))
                {
                    let s = if plus44 { i - 1 } else { i };
                    hit(Hit {
                        rule: rules::PHONE,
                        offset: s,
                        shape: mask(&line[s..t.end]),
                    });
                }
            }
            i = t.end.max(i + 1);
            continue;
        } else if boundary && b.is_ascii_uppercase() {
            if let Some(e) = ni_at(line, i) {
                hit(Hit {
                    rule: rules::NI_NUMBER,
                    offset: i,
                    shape: mask(&line[i..e]),
                });
                i = e;
                continue;
            }
            if let Some(e) = postcode_at(line, i) {
                hit(Hit {
                    rule: rules::POSTCODE,
                    offset: i,
                    shape: mask(&line[i..e]),
                });
                i = e;
                continue;
            }
            // Skip the rest of the word: identifiers start at word boundaries.
            while i < line.len() && is_word(line[i]) {
                i += 1;
            }
            continue;
        }
        i += 1;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A checksum-valid NHS number from a seeded generator, starting with 9 (synthetic: no
    /// test holds a real one).
    pub(crate) fn synthetic_nhs(seed: u64) -> String {
        let mut s = seed;
        loop {
            let mut d = [0u8; 10];
            for x in d.iter_mut().take(9) {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *x = ((s >> 33) % 10) as u8;
            }
            d[0] = 9;
            for c in 0..10u8 {
                d[9] = c;
                if nhs_valid(&d) {
                    return d.iter().map(|x| (b'0' + x) as char).collect();
                }
            }
        }
    }

    fn failing_nhs(seed: u64) -> String {
        let valid = synthetic_nhs(seed);
        let mut d: Vec<u8> = valid.bytes().map(|b| b - b'0').collect();
        d[9] = (d[9] + 1) % 10;
        d.iter().map(|x| (b'0' + x) as char).collect()
    }

    fn hits(line: &str) -> Vec<(&'static str, usize, String)> {
        let mut out = Vec::new();
        scan_line(line.as_bytes(), |h| {
            out.push((h.rule.id, h.offset, h.shape))
        });
        out
    }

    fn rules_of(line: &str) -> Vec<&'static str> {
        hits(line).into_iter().map(|h| h.0).collect()
    }

    #[test]
    fn when_a_number_passes_modulus_11_then_it_is_an_nhs_number_and_is_masked() {
        let nhs = synthetic_nhs(1);
        let h = hits(&format!("patient {nhs} seen"));
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].0, "pii-nhs-number");
        assert_eq!(h[0].1, 8);
        assert_eq!(h[0].2, "##########");
        let spaced = format!("{} {} {}", &nhs[..3], &nhs[3..6], &nhs[6..]);
        assert_eq!(rules_of(&format!("x,{spaced},y")), ["pii-nhs-number"]);
        assert_eq!(hits(&spaced)[0].2, "### ### ####");
    }

    #[test]
    fn when_ten_digits_fail_the_check_or_are_part_of_something_longer_then_they_are_not_nhs_numbers(
    ) {
        for seed in 0..50 {
            assert!(rules_of(&failing_nhs(seed)).is_empty());
        }
        let nhs = synthetic_nhs(2);
        assert!(rules_of(&format!("{nhs}1")).is_empty(), "11 digits");
        assert!(rules_of(&format!("{nhs}.5")).is_empty(), "a decimal");
        assert!(rules_of(&format!("A{nhs}")).is_empty(), "inside a word");
        assert!(
            rules_of(&format!("{} {}-{}", &nhs[..3], &nhs[3..6], &nhs[6..])).is_empty(),
            "mixed separators"
        );
    }

    #[test]
    fn when_a_check_digit_would_be_10_then_no_number_is_valid() {
        let d = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(nhs_valid(&d), "all zeros: check digit 0 (11 reads as 0)");
        // 6 x weight 2 = 12, remainder 1: the check digit would be 10, so no number is valid.
        let mut e = [0, 0, 0, 0, 0, 0, 0, 0, 6, 0];
        for c in 0..10 {
            e[9] = c;
            assert!(!nhs_valid(&e));
        }
    }

    #[test]
    fn when_postcodes_appear_then_they_are_found_and_near_misses_are_not() {
        for pc in [
            "SW1A 1AA", "M1 1AE", "B33 8TH", "CR2 6XH", "DN55 1PT", "EC1A1BB", "W1A 0AX",
        ] {
            assert_eq!(
                rules_of(&format!("lives at {pc}.")),
                ["pii-postcode"],
                "{pc}"
            );
        }
        for not in ["SW1A 1CA", "Q1 1AA", "sw1a 1aa", "AB12 3CDE", "M1  1AE"] {
            assert!(rules_of(not).is_empty(), "{not}");
        }
        assert_eq!(hits("SW1A 1AA")[0].2, "xx#x #xx");
    }

    #[test]
    fn when_emails_appear_then_only_their_domain_suffix_is_kept() {
        let h = hits("contact jane.doe+x@mail.example.org, or a@b");
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].0, "pii-email");
        assert_eq!(h[0].1, 8);
        assert_eq!(h[0].2, "***@***.org");
        assert!(rules_of("twitter @handle and user@localhost").is_empty());
    }

    #[test]
    fn when_uk_phone_numbers_appear_then_they_are_found() {
        for p in [
            "07700 900123",
            "020 7946 0999",
            "+44 7700 900123",
            "01632960001",
        ] {
            assert_eq!(rules_of(&format!("call {p} now")), ["pii-phone"], "{p}");
        }
        for not in ["07700 90012", "08700 900123", "12345678901"] {
            assert!(rules_of(not).is_empty(), "{not}");
        }
    }

    #[test]
    fn when_ni_numbers_appear_then_they_are_found_and_invalid_prefixes_are_not() {
        for ni in ["AB123456C", "AB 12 34 56 C", "JG103759A"] {
            assert_eq!(rules_of(&format!("NI: {ni}")), ["pii-ni-number"], "{ni}");
        }
        for not in [
            "GB123456A",
            "DA123456A",
            "AB123456E",
            "AB1234567C",
            "AB12345C",
        ] {
            assert!(rules_of(not).is_empty(), "{not}");
        }
    }

    #[test]
    fn when_a_date_is_near_a_birth_word_then_it_is_a_date_of_birth_and_otherwise_not() {
        assert_eq!(rules_of("DOB: 03/04/1987"), ["pii-date-of-birth"]);
        assert_eq!(rules_of("born 1987-04-03 in Leeds"), ["pii-date-of-birth"]);
        assert!(rules_of("report run 03/04/1987").is_empty());
        assert!(rules_of("DOB: 33/04/1987").is_empty(), "no 33rd day");
        assert!(
            rules_of("stubborn 03/04/1987").is_empty(),
            "'born' inside a word"
        );
    }

    #[test]
    fn when_ipv4_addresses_appear_then_they_are_found_and_versions_are_not() {
        assert_eq!(rules_of("from 192.0.2.10 at noon"), ["pii-ip-address"]);
        assert!(rules_of("version 1.2.3.4.5").is_empty());
        assert!(rules_of("256.1.1.1").is_empty());
        assert!(rules_of("1.2.3").is_empty());
    }

    #[test]
    fn when_a_line_has_ordinary_numbers_then_nothing_is_found() {
        assert!(rules_of("mean 12.5, n=120, p<0.001, 2024-01-31, total 1234567").is_empty());
    }
}
