//! Byte-level scanning shared by the qrels and run parsers: lines and fields, numbers, ids.

use std::ops::Range;

use super::ids::MAX_ID_LEN;

/// Byte classes for the scanner: fields are separated by C `isspace` characters, `\n` ends a line.
const FIELD: u8 = 0;
const BLANK: u8 = 1;
const NEWLINE: u8 = 2;

static CLASS: [u8; 256] = {
    let mut t = [FIELD; 256];
    t[b' ' as usize] = BLANK;
    t[b'\t' as usize] = BLANK;
    t[b'\r' as usize] = BLANK;
    t[0x0b] = BLANK;
    t[0x0c] = BLANK;
    t[b'\n' as usize] = NEWLINE;
    t
};

/// Whether `b` separates fields or lines.
pub(crate) fn is_separator(b: u8) -> bool {
    CLASS[b as usize] != FIELD
}

/// Most fields a parser looks at; further fields are counted but not recorded.
pub(crate) const MAX_FIELDS: usize = 6;

/// One non-blank, non-comment line: where it starts, how many fields it has, and the byte ranges
/// of its first `MAX_FIELDS` fields (offsets into the scanned buffer).
pub(crate) struct Line {
    pub start: usize,
    pub count: usize,
    pub fields: [(usize, usize); MAX_FIELDS],
}

impl Line {
    pub fn new() -> Self {
        Line {
            start: 0,
            count: 0,
            fields: [(0, 0); MAX_FIELDS],
        }
    }
}

/// End of the field starting at `i`. Eight bytes at a time: a byte below 0x21 is a candidate
/// separator (all of C's whitespace is), confirmed with the class table.
#[inline]
fn field_end(buf: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(word) = buf.get(i..i + 8) {
        let w = u64::from_le_bytes([word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7]]);
        // Flags bytes < 0x21; the lowest flag is exact (no borrow reaches it from below).
        let below = w.wrapping_sub(ONES * 0x21) & !w & HIGH;
        if below == 0 {
            i += 8;
            continue;
        }
        i += (below.trailing_zeros() / 8) as usize;
        if CLASS[buf[i] as usize] != FIELD {
            return i;
        }
        // A control byte that C's isspace does not count as blank: part of the field.
        i += 1;
    }
    while i < buf.len() && CLASS[buf[i] as usize] == FIELD {
        i += 1;
    }
    i
}

/// Iterates over the lines of `buf[range]`; the range must end at a line boundary.
/// Blank lines and lines whose first field starts with `#` are skipped, as trec_eval does.
pub(crate) struct Lines<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Lines<'a> {
    pub fn new(buf: &'a [u8], range: Range<usize>) -> Self {
        Lines {
            buf: &buf[..range.end],
            pos: range.start,
        }
    }

    pub fn next_line(&mut self, line: &mut Line) -> bool {
        let buf = self.buf;
        let n = buf.len();
        while self.pos < n {
            let start = self.pos;
            let mut i = start;
            let mut count = 0;
            loop {
                while i < n && CLASS[buf[i] as usize] == BLANK {
                    i += 1;
                }
                if i >= n || buf[i] == b'\n' {
                    break;
                }
                let field_start = i;
                i = field_end(buf, i);
                if count < MAX_FIELDS {
                    line.fields[count] = (field_start, i);
                }
                count += 1;
            }
            self.pos = i + 1;
            if count > 0 && buf[line.fields[0].0] != b'#' {
                line.start = start;
                line.count = count;
                return true;
            }
        }
        false
    }
}

/// Powers of ten for combining the integer and fractional digits.
const POW10_INT: [u64; 9] = [1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000];

/// Exact powers of ten representable in an f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// Parses the decimal score `buf[start..end]`. `[+-]digits[.digits]` with at most 8 digits on
/// each side and a mantissa up to 2^53 takes a fast path that is still correctly rounded: the
/// mantissa and the power of ten are exact, so the single division rounds once, as a full parser
/// would. Anything else goes through the standard library's parser.
pub(crate) fn parse_f64(buf: &[u8], start: usize, end: usize) -> Option<f64> {
    let s = &buf[start..end];
    let (negative, int_start) = match s.first() {
        Some(b'-') => (true, start + 1),
        Some(b'+') => (false, start + 1),
        _ => (false, start),
    };
    let dot = match find_dot(buf, int_start, end) {
        Some(dot) => dot,
        None => return parse_f64_slow(s),
    };
    let frac_start = (dot + 1).min(end);
    let (int_len, frac_len) = (dot - int_start, end - frac_start);
    if int_len > 8 || frac_len > 8 || int_len + frac_len == 0 {
        return parse_f64_slow(s);
    }
    let (Some(int), Some(frac)) = (digits(buf, int_start, int_len), digits(buf, frac_start, frac_len)) else {
        return parse_f64_slow(s);
    };
    let mantissa = int * POW10_INT[frac_len] + frac;
    if mantissa > 1 << 53 {
        return parse_f64_slow(s);
    }
    let value = mantissa as f64 / POW10[frac_len];
    Some(if negative { -value } else { value })
}

/// Position of the decimal point in `buf[start..end]` (`end` if there is none), provided the
/// integer part has at most 8 digits; `None` otherwise. Looks at eight bytes at once where the
/// buffer allows.
#[inline]
fn find_dot(buf: &[u8], start: usize, end: usize) -> Option<usize> {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const DOTS: u64 = 0x2e2e_2e2e_2e2e_2e2e;
    let len = end - start;
    let Some(word) = buf.get(start..start + 8) else {
        let dot = buf[start..end]
            .iter()
            .position(|&b| b == b'.')
            .map_or(end, |d| start + d);
        return (dot - start <= 8).then_some(dot);
    };
    let x = u64::from_le_bytes([word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7]]) ^ DOTS;
    // Exact per byte: the high bit is set where x has a zero byte, i.e. where a '.' was.
    let dots = !(((x & LOW7) + LOW7) | x) & !LOW7;
    let first = (dots.trailing_zeros() / 8) as usize; // 8 when none
    if first < len.min(8) {
        Some(start + first)
    } else {
        // No point among the first eight bytes: fine if that is the whole number.
        (len <= 8).then_some(end)
    }
}

/// Value of the `n` (at most 8) decimal digits at `buf[at..]`, if they are all digits. Reads
/// eight bytes at once where the buffer allows.
#[inline]
fn digits(buf: &[u8], at: usize, n: usize) -> Option<u64> {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    if n == 0 {
        return Some(0);
    }
    let Some(word) = buf.get(at..at + 8) else {
        return buf[at..at + n]
            .iter()
            .try_fold(0, |v, &b| b.is_ascii_digit().then(|| v * 10 + u64::from(b - b'0')));
    };
    // Little-endian: the first digit is the lowest byte. Shifting left drops the bytes after the
    // n digits and makes room for leading '0's.
    let shift = 8 * (8 - n as u32);
    let w = u64::from_le_bytes([word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7]]);
    let w = (w << shift) | (ZEROS & ((1 << shift) - 1));
    // All eight bytes in '0'..='9': high nibble 3, and adding 6 keeps it 3.
    if w & 0xf0f0_f0f0_f0f0_f0f0 != ZEROS || w.wrapping_add(0x0606_0606_0606_0606) & 0xf0f0_f0f0_f0f0_f0f0 != ZEROS {
        return None;
    }
    // Combine digits pairwise: bytes hold 2-digit, then 4-digit, then the 8-digit value.
    let w = w - ZEROS;
    let w = (w * 10 + (w >> 8)) & 0x00ff_00ff_00ff_00ff;
    let w = (w * 100 + (w >> 16)) & 0x0000_ffff_0000_ffff;
    Some((w * 10000 + (w >> 32)) & 0xffff_ffff)
}

fn parse_f64_slow(s: &[u8]) -> Option<f64> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Parses a relevance grade: optional sign and decimal digits, within i32.
pub(crate) fn parse_i32(s: &[u8]) -> Option<i32> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Ids given to the in-memory constructors end up in whitespace-separated files; reject what
/// could not be written back or read again.
pub(crate) fn check_id(kind: &str, id: &str) -> crate::Result<()> {
    if id.is_empty() || id.bytes().any(|b| CLASS[b as usize] != FIELD) {
        return Err(crate::Error::Invalid(format!(
            "{kind} {id:?} must be non-empty and contain no whitespace"
        )));
    }
    if id.len() > MAX_ID_LEN {
        return Err(crate::Error::Invalid(format!(
            "{kind} is longer than {MAX_ID_LEN} bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Vec<Vec<String>> {
        let buf = text.as_bytes();
        let mut lines = Lines::new(buf, 0..buf.len());
        let mut line = Line::new();
        let mut out = Vec::new();
        while lines.next_line(&mut line) {
            let shown = line.count.min(MAX_FIELDS);
            let mut f: Vec<String> = line.fields[..shown]
                .iter()
                .map(|&(a, b)| text[a..b].to_string())
                .collect();
            f.push(format!("#{}@{}", line.count, line.start));
            out.push(f);
        }
        out
    }

    #[test]
    fn scanner_splits_on_c_whitespace_and_skips_blank_and_comment_lines() {
        let text = "a b\tc\r\n\n   \n# comment\n  x\x0by\x0cz 1 2 3 4 5\nlast";
        assert_eq!(
            fields(text),
            vec![
                vec!["a", "b", "c", "#3@0"],
                vec!["x", "y", "z", "1", "2", "3", "#8@22"],
                vec!["last", "#1@40"],
            ]
        );
    }

    #[test]
    fn separators_are_c_whitespace_only() {
        // \x01 is no separator for C's isspace; it stays inside the field, also on the fast path.
        let text = b"abcdefgh\x01ijklmnop\x7fq r\n";
        let mut lines = Lines::new(text, 0..text.len());
        let mut line = Line::new();
        assert!(lines.next_line(&mut line));
        assert_eq!(line.count, 2);
        assert_eq!(line.fields[0], (0, 19));
    }

    /// `text` as a field at the very end of a buffer (byte-wise path) and followed by other
    /// bytes, digits included (eight-byte path).
    fn placements(text: &str) -> Vec<(Vec<u8>, usize, usize)> {
        let alone = text.as_bytes().to_vec();
        let followed = format!("x{text}99999999 junk").into_bytes();
        vec![(alone, 0, text.len()), (followed, 1, 1 + text.len())]
    }

    #[test]
    fn fast_float_path_agrees_with_std() {
        let cases = [
            "2.129133",
            "-0.5",
            "+3",
            "0",
            "-0.0",
            "1.",
            ".25",
            "123456789012345678",
            "9007199254740993",
            "0.1234567890123456789012",
            "1e-3",
            "inf",
            "-infinity",
            "1.7976931348623157e308",
            "4.9e-324",
            "00000000000000000001.5",
            "99999999.99999999",
            "12345678",
            ".12345678",
            "40.123456",
            "0.00000001",
        ];
        for c in cases {
            let expected: f64 = c.parse().unwrap();
            for (buf, start, end) in placements(c) {
                let got = parse_f64(&buf, start, end).unwrap();
                assert_eq!(got.to_bits(), expected.to_bits(), "{c}");
            }
        }
        for bad in ["", "-", ".", "1.2.3", "abc", "1,5", "--1", "1:5", "12345678/", " 1"] {
            for (buf, start, end) in placements(bad) {
                assert_eq!(parse_f64(&buf, start, end), None, "{bad}");
            }
        }
    }

    #[test]
    fn fast_float_path_is_correctly_rounded_on_many_values() {
        // A deterministic sweep over digit counts on both sides of the point, mostly on the fast
        // path (at most 8 digits each side).
        let mut x: u64 = 12345;
        for _ in 0..20000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let decimals = ((x >> 40) % 10) as usize;
            let mantissa = (x >> 3) % 10u64.pow(((x >> 20) % 17) as u32 + 1);
            let mut s = mantissa.to_string();
            if decimals > 0 {
                while s.len() <= decimals {
                    s.insert(0, '0');
                }
                s.insert(s.len() - decimals, '.');
            }
            let expected: f64 = s.parse().unwrap();
            for (buf, start, end) in placements(&s) {
                assert_eq!(
                    parse_f64(&buf, start, end).unwrap().to_bits(),
                    expected.to_bits(),
                    "{s}"
                );
            }
        }
    }

    #[test]
    fn integers_and_ids() {
        assert_eq!(parse_i32(b"-1"), Some(-1));
        assert_eq!(parse_i32(b"2"), Some(2));
        assert_eq!(parse_i32(b"1.0"), None);
        assert_eq!(parse_i32(b"x"), None);
        assert!(check_id("doc", "FT941-1").is_ok());
        assert!(check_id("doc", "").is_err());
        assert!(check_id("doc", "a b").is_err());
        assert!(check_id("topic", "a\n").is_err());
    }
}
