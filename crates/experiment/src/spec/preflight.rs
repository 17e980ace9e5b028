//! The checks of a configuration file's text that figment cannot make, before it reads the
//! file: UTF-8, the nesting depth, duplicate keys and alias expansion (which figment's map
//! would hide or report without a line). Each error names the file and the line.

use super::error::{ConfigError, ConfigSource, Problem};
use std::path::Path;

/// Flow collections (`[`, `{`) nested deeper than this are refused before parsing: the YAML
/// parser's cost grows quadratically with the depth, and a configuration needs a few levels.
pub const MAX_DEPTH: usize = 64;

/// A problem of the file `path` as a whole, told by `message` (which says the line).
pub fn in_file(path: &Path, message: String) -> ConfigError {
    let mut p = Problem::other("", message);
    p.source = Some(ConfigSource::File(path.to_path_buf()));
    p.into()
}

/// Why `path`, which should be `expected`, is not a file that can be read as one: a FIFO
/// (whose read would block), a device, a socket, or a chain of links without end. `None` for
/// a regular file, a folder and a missing path, which the callers tell apart themselves.
pub fn not_a_regular_file(path: &Path, expected: &str) -> Option<ConfigError> {
    use std::os::unix::fs::FileTypeExt;
    let what = match std::fs::metadata(path) {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => "a loop of symbolic links",
        Err(_) => return None,
        Ok(meta) => {
            let t = meta.file_type();
            if t.is_fifo() {
                "a FIFO (named pipe)"
            } else if t.is_char_device() || t.is_block_device() {
                "a device"
            } else if t.is_socket() {
                "a socket"
            } else {
                return None;
            }
        }
    };
    Some(in_file(path, format!("{what}, expected {expected}")))
}

/// The 1-based line and column of byte `offset` of `bytes`.
fn line_column(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let start = before.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    (line, offset - start + 1)
}

/// The line where flow collections first nest deeper than [`MAX_DEPTH`], if they do. Quoted
/// strings and comments are skipped; a quote opens only where a YAML scalar can start, so an
/// apostrophe inside a word (`it's`) is text.
pub fn too_deep(text: &str) -> Option<usize> {
    let (mut depth, mut line) = (0usize, 1usize);
    let mut quote: Option<char> = None;
    let mut prev = '\n';
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\n' {
            line += 1;
        }
        match quote {
            Some('"') if c == '\\' => {
                if chars.next() == Some('\n') {
                    line += 1;
                }
            }
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '#' if prev.is_whitespace() => {
                    // A comment runs to the end of the line.
                    if chars.by_ref().any(|c| c == '\n') {
                        line += 1;
                    }
                    prev = '\n';
                    continue;
                }
                '"' | '\'' if prev.is_whitespace() || "[{,:-".contains(prev) => quote = Some(c),
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Some(line);
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        prev = c;
    }
    None
}

/// Reads the configuration file `path` and checks its text: UTF-8, nesting depth, one YAML
/// document without duplicate keys whose aliases expand within the parser's limits. Returns
/// the text and the document (null for an empty file).
pub fn read_checked(path: &Path) -> Result<(String, serde_yaml::Value), ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let (line, column) = line_column(bytes, offset);
        in_file(
            path,
            format!(
                "line {line}, column {column}: expected UTF-8 text, found byte 0x{:02x}",
                bytes[offset]
            ),
        )
    })?;
    if text.starts_with('\u{feff}') {
        return Err(in_file(
            path,
            "line 1, column 1: a byte order mark (U+FEFF); expected UTF-8 text without one (save the file as UTF-8 without BOM)"
                .into(),
        ));
    }
    if let Some(line) = too_deep(&text) {
        return Err(in_file(
            path,
            format!("line {line}: expected lists and maps nested at most {MAX_DEPTH} deep"),
        ));
    }
    let value = serde_yaml::from_str::<serde_yaml::Value>(&text).map_err(|e| {
        let message = match e.location() {
            Some(_) => e.to_string(),
            // Alias expansion over the parser's limit has no location: name the first alias.
            None => match first_alias_line(&text) {
                Some(line) => format!("{e} (the first alias is at line {line})"),
                None => format!("{e} (line unknown)"),
            },
        };
        in_file(path, message)
    })?;
    Ok((text, value))
}

/// The line of the first YAML alias (`*name`) of `text` outside comments.
fn first_alias_line(text: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let code = l.split(" #").next().unwrap_or(l);
            code.split(|c: char| c.is_whitespace() || "[{,:".contains(c))
                .any(|w| w.len() > 1 && w.starts_with('*'))
        })
        .map(|i| i + 1)
}

/// Whether a document holds no keys at all (an empty file, comments only, `~` or `{}`).
pub fn is_empty(document: &serde_yaml::Value) -> bool {
    match document {
        serde_yaml::Value::Null => true,
        serde_yaml::Value::Mapping(m) => m.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, text).unwrap();
        read_checked(&path).unwrap_err().to_string()
    }

    #[test]
    fn bad_text_names_the_file_and_line() {
        let err = check(b"name: a\ntrain:\n  lr: \xff\n");
        assert!(err.contains("c.yaml: line 3, column 7: expected UTF-8"), "{err}");
        let err = check(b"train:\n  lr: 0.1\n  steps: 3\n  lr: 0.2\n");
        assert!(
            err.contains("c.yaml: train: duplicate entry with key \"lr\" at line 2"),
            "{err}"
        );
        let deep = format!("a: 1\nb: {}\n", "[".repeat(200_000));
        let started = std::time::Instant::now();
        let err = check(deep.as_bytes());
        assert!(
            err.contains("c.yaml: line 2: expected lists and maps nested at most 64"),
            "{err}"
        );
        assert!(started.elapsed().as_secs() < 2, "took {:?}", started.elapsed());
        // Billion laughs: each level repeats the one before nine times.
        let mut laughs = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x]\n");
        for level in 1..9 {
            let items = vec![format!("*l{}", level - 1); 9].join(", ");
            laughs.push_str(&format!("l{level}: &l{level} [{items}]\n"));
        }
        let err = check(laughs.as_bytes());
        assert!(err.contains("c.yaml") && err.contains("line"), "{err}");
    }

    #[test]
    fn ordinary_text_passes() {
        assert_eq!(too_deep("a: [[1, 2], {b: \"[[[\"}]  # [[[[\nit's: '['\n"), None);
        assert_eq!(too_deep(&"[".repeat(MAX_DEPTH)), None);
        assert_eq!(too_deep(&format!("x\n{}", "[".repeat(MAX_DEPTH + 1))), Some(2));
        assert!(is_empty(&serde_yaml::from_str("# just a comment\n").unwrap()));
        assert!(is_empty(&serde_yaml::from_str("{}").unwrap()));
        assert!(!is_empty(&serde_yaml::from_str("name: x").unwrap()));
    }
}
