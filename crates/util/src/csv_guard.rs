//! CSV injection: a field that a spreadsheet would run as a formula (`=HYPERLINK(…)`, `@SUM(…)`,
//! `+1+cmd|…`) is neutralised as OWASP recommends, by a leading `'` that makes it text. Every
//! CSV file this program writes for people passes through [`neutralised`].

use std::borrow::Cow;

/// Characters that start a formula in the common spreadsheets (OWASP's list, with the
/// full-width forms that some of them also take).
const FORMULA_START: &[char] = &['=', '+', '-', '@', '\t', '\r', '＝', '＋', '－', '＠'];

/// `field`, with a `'` in front where it would start a formula. A number (`-0.5`, `+1e-3`)
/// stays as it is: a spreadsheet reads it as a number, never as a formula.
pub fn neutralise(field: &str) -> Cow<'_, str> {
    // A byte order mark is invisible to a spreadsheet: the formula starts after it.
    let bom = field.len() - field.trim_start_matches(BOM).len();
    let (marks, rest) = field.split_at(bom);
    let number = rest.trim().parse::<f64>().is_ok() && !rest.starts_with(['\t', '\r']);
    if rest.starts_with(FORMULA_START) && !number {
        Cow::Owned(format!("{marks}'{rest}"))
    } else {
        Cow::Borrowed(field)
    }
}

/// The byte order mark.
const BOM: char = '\u{feff}';

/// The CSV text `csv` (as the `csv` crate writes it: commas, quotes where needed, `\n`) with
/// every field [`neutralise`]d; the same bytes where no field starts a formula.
pub fn neutralised(csv: &[u8]) -> csv::Result<Vec<u8>> {
    // The reader drops a byte order mark that starts the text: kept, and the rest done alike.
    if let Some(rest) = csv.strip_prefix("\u{feff}".as_bytes()) {
        let mut out = "\u{feff}".as_bytes().to_vec();
        out.extend(neutralised(rest)?);
        return Ok(out);
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(csv);
    let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(Vec::new());
    for record in reader.records() {
        let record = record?;
        writer.write_record(record.iter().map(|f| neutralise(f).into_owned()))?;
    }
    writer.into_inner().map_err(|e| e.into_error().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_become_text_and_numbers_stay() {
        for (field, want) in [
            ("=HYPERLINK(\"http://x\",\"y\")", "'=HYPERLINK(\"http://x\",\"y\")"),
            ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("＝1+1", "'＝1+1"),
            ("-0.5", "-0.5"),
            ("+1e-3", "+1e-3"),
            ("-inf", "-inf"),
            ("linear", "linear"),
            ("a=b", "a=b"),
            ("", ""),
        ] {
            assert_eq!(neutralise(field), want, "{field:?}");
        }
    }

    #[test]
    fn whole_files_keep_their_shape() {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(["schedule", "mean", "note"]).unwrap();
        w.write_record(["=HYPERLINK(\"http://evil\",\"x\")", "-0.25", "a, \"b\""])
            .unwrap();
        w.write_record(["linear", "0.5", ""]).unwrap();
        let plain = w.into_inner().unwrap();
        let safe = neutralised(&plain).unwrap();
        let text = String::from_utf8(safe.clone()).unwrap();
        assert_eq!(
            text,
            "schedule,mean,note\n\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\",-0.25,\"a, \"\"b\"\"\"\nlinear,0.5,\n"
        );
        // Nothing to neutralise: the same bytes.
        let clean = b"a,b\n1,\"x,y\"\n-1,\n".to_vec();
        assert_eq!(neutralised(&clean).unwrap(), clean);
        let mut fuzz = crate::fuzz::Fuzz::new(5);
        for _ in 0..2_000 {
            let fields: Vec<String> = (0..3)
                .map(|_| fuzz.text(&["=", "-", "1", "a", ",", "\"", "\n", "@", " "], 4))
                .collect();
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(&fields).unwrap();
            let plain = w.into_inner().unwrap();
            let safe = neutralised(&plain).unwrap();
            let read = |bytes: &[u8]| -> Vec<String> {
                let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(bytes);
                let record = r.records().next().unwrap().unwrap();
                record.iter().map(str::to_string).collect()
            };
            let (before, after) = (read(&plain), read(&safe));
            assert_eq!(before.len(), after.len(), "{fields:?}");
            for (f, b) in before.iter().zip(&after) {
                let rest = f.trim_start_matches(BOM);
                let quoted = format!("{}'{rest}", &f[..f.len() - rest.len()]);
                assert!(
                    b == f || (*b == quoted && rest.starts_with(FORMULA_START)),
                    "{f:?} -> {b:?}"
                );
                assert!(!b.trim_start_matches(BOM).starts_with(['=', '@']), "{f:?} -> {b:?}");
            }
        }
    }
}
