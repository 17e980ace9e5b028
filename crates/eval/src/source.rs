//! Reading inputs in pieces for parallel parsing: positional reads through a small buffer, so
//! that a large file is never held in memory whole, and the line lookups error messages need.

use crate::error::{Error, ParseError, Result};
use std::io;
use std::ops::Range;

use super::scan::{Line, Lines, is_separator};

/// Something to parse: a file read with positional reads, or bytes in memory.
pub(crate) trait Source: Sync {
    fn size(&self) -> u64;
    /// Reads at most `buf.len()` bytes at `pos`; fewer only at the end.
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
}

impl Source for &[u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let rest = self.get(pos as usize..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }
}

/// A file read in place: each parse task reads its own part into a small buffer, so a large run
/// is never held in memory whole.
#[cfg(unix)]
pub(crate) struct FileSource {
    file: std::fs::File,
    size: u64,
}

#[cfg(unix)]
impl FileSource {
    pub fn open(path: &std::path::Path) -> io::Result<Self> {
        let file = std::fs::File::open(path)?;
        let size = file.metadata()?.len();
        Ok(FileSource { file, size })
    }
}

#[cfg(unix)]
impl Source for FileSource {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let mut filled = 0;
        while filled < buf.len() {
            match self.file.read_at(&mut buf[filled..], pos + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }
}

/// Elsewhere, read the file into memory first.
#[cfg(not(unix))]
pub(crate) struct FileSource(Vec<u8>);

#[cfg(not(unix))]
impl FileSource {
    pub fn open(path: &std::path::Path) -> io::Result<Self> {
        std::fs::read(path).map(FileSource)
    }
}

#[cfg(not(unix))]
impl Source for FileSource {
    fn size(&self) -> u64 {
        self.0.as_slice().size()
    }

    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.0.as_slice().read_at(buf, pos)
    }
}

/// Reads the `what` file at `path` and parses it with `parse`, which names it in its errors.
pub(crate) fn parse_file<T>(
    path: &std::path::Path,
    what: &str,
    parse: impl FnOnce(&str, &dyn Source) -> Result<T>,
) -> Result<T> {
    let src = FileSource::open(path).map_err(Error::read(format!("{what} file {}", path.display())))?;
    parse(&path.display().to_string(), &src)
}

/// [`parse_file`], and an error naming the file (line 1) when it holds nothing: an empty qrels
/// file or run is a mistake about the file, not something to evaluate.
pub(crate) fn parse_nonempty_file<T>(
    path: &std::path::Path,
    what: &str,
    parse: impl FnOnce(&str, &dyn Source) -> Result<T>,
    is_empty: impl FnOnce(&T) -> bool,
    expected: &str,
) -> Result<T> {
    let parsed = parse_file(path, what, parse)?;
    if is_empty(&parsed) {
        let message = format!("expected {expected}, found none");
        return Err(ParseError::new(&path.display().to_string(), 1, message).into());
    }
    Ok(parsed)
}

/// Parses every piece of `src` ([`pieces`]) in parallel with `parse(src, block, range)`, in order.
pub(crate) fn parse_pieces<P: Send>(
    src: &dyn Source,
    parse: impl Fn(&dyn Source, usize, Range<u64>) -> P + Sync + Send,
) -> Vec<P> {
    use rayon::prelude::*;
    pieces(src)
        .into_par_iter()
        .enumerate()
        .map(|(block, range)| parse(src, block, range))
        .collect()
}

/// A group's topic id as text; not UTF-8 is the error of the group's first line.
pub(crate) fn topic_text<'a>(name: &str, src: &dyn Source, bytes: &'a [u8], first_line: u64) -> Result<&'a str> {
    match std::str::from_utf8(bytes) {
        Ok(topic) => Ok(topic),
        Err(_) => {
            let line = line_number(src, first_line).map_err(Error::read(name))?;
            Err(ParseError::new(name, line, "topic id is not valid UTF-8").into())
        }
    }
}

/// A piece's scan result as the file's error: an I/O error, or the rejected line as a
/// [`ParseError`].
pub(crate) fn scan_result(name: &str, src: &dyn Source, scanned: Result<(), ScanError>) -> Result<()> {
    match scanned {
        Ok(()) => Ok(()),
        Err(ScanError::Io(e)) => Err(Error::read(name)(e)),
        Err(ScanError::Line(offset, msg)) => {
            let line = line_number(src, offset).map_err(Error::read(name))?;
            Err(ParseError::new(name, line, msg).into())
        }
    }
}

/// Why scanning stopped early.
pub(crate) enum ScanError {
    Io(io::Error),
    /// A parser rejected the line starting at this file offset.
    Line(u64, String),
}

const BLOCK: usize = 1 << 20;

/// Splits a source into byte ranges for parallel scanning: a few per thread, at least 4 MiB and
/// at most 1 GiB each.
pub(crate) fn pieces(src: &dyn Source) -> Vec<Range<u64>> {
    let size = src.size();
    let wanted = (rayon::current_num_threads() * 4).min(1024) as u64;
    // Pieces of at most 1 GiB keep each block's offsets within 32 bits.
    let count = (size / (4 << 20))
        .clamp(1, wanted)
        .max(size.div_ceil(1 << 30))
        .min(u16::MAX as u64);
    let step = size.div_ceil(count).max(1);
    (0..count)
        .map(|i| (i * step).min(size)..((i + 1) * step).min(size))
        .filter(|r| !r.is_empty())
        .collect()
}

/// Calls `on_line(buffer, line, file offset of the line)` for every line that starts inside
/// `range` of `src` (a line belongs to the piece where it starts), reading through a reusable
/// buffer.
pub(crate) fn scan_lines(
    src: &dyn Source,
    range: Range<u64>,
    mut on_line: impl FnMut(&[u8], &Line, u64) -> Result<(), String>,
) -> Result<(), ScanError> {
    let size = src.size();
    let mut buf = vec![0u8; BLOCK];
    let mut base = range.start; // file offset of buf[0]
    let mut filled = 0;
    // The line running into the range belongs to the previous piece.
    let mut skip_partial = if range.start == 0 {
        false
    } else {
        let mut before = [0u8];
        src.read_at(&mut before, range.start - 1).map_err(ScanError::Io)?;
        before[0] != b'\n'
    };
    let mut line = Line::new();
    loop {
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0); // a line longer than the buffer
        }
        let n = src
            .read_at(&mut buf[filled..], base + filled as u64)
            .map_err(ScanError::Io)?;
        filled += n;
        // A file that shrank since it was opened ends early.
        let at_end = n == 0 || base + filled as u64 >= size;
        let complete = if at_end {
            filled
        } else {
            match buf[..filled].iter().rposition(|&b| b == b'\n') {
                Some(p) => p + 1,
                None => continue,
            }
        };
        let mut start = 0;
        if skip_partial {
            match buf[..complete].iter().position(|&b| b == b'\n') {
                Some(p) => {
                    start = p + 1;
                    skip_partial = false;
                }
                None => start = complete,
            }
        }
        let mut lines = Lines::new(&buf, start..complete);
        while lines.next_line(&mut line) {
            let offset = base + line.start as u64;
            if offset >= range.end {
                return Ok(());
            }
            on_line(&buf, &line, offset).map_err(|msg| ScanError::Line(offset, msg))?;
        }
        if at_end || base + complete as u64 >= range.end {
            return Ok(());
        }
        buf.copy_within(complete..filled, 0);
        base += complete as u64;
        filled -= complete;
    }
}

/// 1-based number of the line starting at byte `offset` of `src` (for error messages).
pub(crate) fn line_number(src: &dyn Source, offset: u64) -> io::Result<usize> {
    let mut buf = vec![0u8; BLOCK];
    let mut newlines = 0;
    let mut pos = 0;
    while pos < offset {
        let want = (offset - pos).min(BLOCK as u64) as usize;
        let n = src.read_at(&mut buf[..want], pos)?;
        if n == 0 {
            break;
        }
        newlines += buf[..n].iter().filter(|&&b| b == b'\n').count();
        pos += n as u64;
    }
    Ok(newlines + 1)
}

/// The error for a document listed twice for one topic, at the line of its second listing
/// (found by reading `src` again; `min_fields` picks the lines of this format).
pub(crate) fn repeated_document(
    src: &dyn Source,
    name: &str,
    min_fields: usize,
    (topic, doc): (&[u8], &[u8]),
    what: &str,
) -> Error {
    let lines = match matching_lines(src, |f| f.len() >= min_fields && f[0] == topic && f[2] == doc) {
        Ok(lines) => lines,
        Err(e) => return Error::read(name)(e),
    };
    let (topic, doc) = (String::from_utf8_lossy(topic), String::from_utf8_lossy(doc));
    match lines[..] {
        [first, second, ..] => ParseError::new(
            name,
            second,
            format!("document {doc:?} {what} twice for topic {topic:?} (first on line {first})"),
        )
        .into(),
        _ => Error::Invalid(format!(
            "{name}: document {doc:?} {what} twice for topic {topic:?} (the file changed meanwhile)"
        )),
    }
}

/// 1-based numbers of the lines of `src` whose fields satisfy `wanted` (for error messages).
pub(crate) fn matching_lines(src: &dyn Source, wanted: impl Fn(&[&[u8]]) -> bool) -> io::Result<Vec<usize>> {
    let mut all = vec![0u8; src.size() as usize];
    let n = src.read_at(&mut all, 0)?;
    all.truncate(n);
    Ok(all
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, line)| {
            let fields: Vec<&[u8]> = line.split(|&b| is_separator(b)).filter(|f| !f.is_empty()).collect();
            wanted(&fields)
        })
        .map(|(i, _)| i + 1)
        .collect())
}

/// Field `field` (0-based) of the last line of `src` that has more than `field` fields.
pub(crate) fn last_line_field(src: &dyn Source, field: usize) -> io::Result<Option<Vec<u8>>> {
    let size = src.size();
    let mut window = 1 << 16;
    loop {
        let start = size.saturating_sub(window);
        let mut buf = vec![0u8; (size - start) as usize];
        let n = src.read_at(&mut buf, start)?;
        buf.truncate(n);
        // Unless at the start of the file, the window's first line may be partial.
        let first = match start {
            0 => 0,
            _ => buf.iter().position(|&b| b == b'\n').map_or(buf.len(), |p| p + 1),
        };
        let mut lines = Lines::new(&buf, first..buf.len());
        let mut line = Line::new();
        let mut found = None;
        while lines.next_line(&mut line) {
            if line.count > field {
                let (a, b) = line.fields[field];
                found = Some(buf[a..b].to_vec());
            }
        }
        if found.is_some() || start == 0 {
            return Ok(found);
        }
        window *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines seen by scanning `text` in pieces starting at each of `cuts`, as (offset, first field).
    fn scan_in_pieces(text: &[u8], cuts: &[u64]) -> Vec<(u64, String)> {
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(text.len() as u64);
        let mut seen = Vec::new();
        for w in bounds.windows(2) {
            let mut base_lines: Vec<String> = Vec::new();
            let result = scan_lines(&text, w[0]..w[1], |buf, line, _| {
                let (a, b) = line.fields[0];
                base_lines.push(String::from_utf8_lossy(&buf[a..b]).into_owned());
                Ok(())
            });
            assert!(result.is_ok());
            seen.extend(base_lines.into_iter().map(|f| (w[0], f)));
        }
        seen
    }

    #[test]
    fn every_line_is_scanned_once_whatever_the_piece_boundaries() {
        let text = b"aa 1\nbbb 2\n\n  c 3\n# x\ndddd 4\ne 5";
        let expected = ["aa", "bbb", "c", "dddd", "e"];
        for cut in 1..text.len() as u64 {
            for cut2 in cut..text.len() as u64 {
                let seen = scan_in_pieces(text, &[cut, cut2]);
                let firsts: Vec<&str> = seen.iter().map(|(_, f)| f.as_str()).collect();
                assert_eq!(firsts, expected, "cuts at {cut}, {cut2}");
            }
        }
    }

    #[test]
    fn lines_longer_than_the_buffer_are_read_whole() {
        let long = "x".repeat(3 * BLOCK + 5);
        let text = format!("a 1\n{long} 2\nb 3");
        let mut firsts = Vec::new();
        let result = scan_lines(&text.as_bytes(), 0..text.len() as u64, |_, line, offset| {
            firsts.push((offset, line.fields[0].1 - line.fields[0].0));
            Ok(())
        });
        assert!(result.is_ok());
        assert_eq!(firsts, [(0, 1), (4, long.len()), (long.len() as u64 + 7, 1)]);
    }

    #[test]
    fn pieces_cover_the_source() {
        let text = vec![b'x'; 9 << 20];
        let pieces = pieces(&text.as_slice());
        assert_eq!(pieces.first().unwrap().start, 0);
        assert_eq!(pieces.last().unwrap().end, text.len() as u64);
        assert!(pieces.windows(2).all(|w| w[0].end == w[1].start));
        assert_eq!(super::pieces(&&b""[..]), Vec::<Range<u64>>::new());
    }

    #[test]
    fn line_numbers_and_matching_lines() {
        let text = b"a 1\nb 2\n\nc 3\nb 4";
        assert_eq!(line_number(&&text[..], 0).unwrap(), 1);
        assert_eq!(line_number(&&text[..], 4).unwrap(), 2);
        assert_eq!(line_number(&&text[..], 9).unwrap(), 4);
        assert_eq!(
            matching_lines(&&text[..], |f| f.len() == 2 && f[0] == b"b").unwrap(),
            [2, 5]
        );
    }

    #[test]
    fn last_line_field_skips_trailing_blank_and_comment_lines() {
        let text = b"q 0 d 1 2 first\nq 0 e 2 1 last\n\n# comment\n";
        assert_eq!(last_line_field(&&text[..], 5).unwrap(), Some(b"last".to_vec()));
        assert_eq!(last_line_field(&&text[..], 6).unwrap(), None);
        // A last line far from the end needs a wider window.
        let far = format!("q 0 d 1 2 tag\n{}", "\n".repeat(200_000));
        assert_eq!(last_line_field(&far.as_bytes(), 5).unwrap(), Some(b"tag".to_vec()));
    }
}

#[cfg(test)]
mod properties {
    use crate::{Qrels, Run};

    /// Pieces of qrels and run lines.
    const TREC: &[&str] = &[
        "1", "0", "2", "-1", "Q0", "d1", "d2", "q/1", " ", "  ", "\t", "\n", "\r\n", "1.5", "-0.25", "1e308", "1e999",
        "nan", "inf", "x", "#", "run", "é",
    ];

    #[test]
    fn generated_qrels_and_runs_never_panic_and_errors_name_the_file() {
        let mut fuzz = clirlab_util::fuzz::Fuzz::new(16);
        for _ in 0..30_000 {
            let text = fuzz.text(TREC, 40);
            if let Err(e) = Qrels::parse("QRELS", &text) {
                assert!(format!("{e:#}").contains("QRELS"), "{text:?}: {e:#}");
            }
            if let Err(e) = Run::parse("RUNFILE", &text) {
                assert!(format!("{e:#}").contains("RUNFILE"), "{text:?}: {e:#}");
            }
        }
    }
}
