//! Importing a researcher's own benchmark into the data format: a BEIR folder or TREC files.
//!
//! Both readers produce a [`Benchmark`] (documents in one language, queries in one or more,
//! judgments per split), and [`Benchmark::into_dataset`] turns it into a [`Dataset`] that every
//! command then uses by its name (`data.dataset: NAME`), with the checks, card and hashes of any
//! prepared set.
//!
//! **BEIR** (`clirlab data import beir DIR`): `corpus.jsonl` (`_id`, `text`, optional `title`,
//! which is put before the text), `queries.jsonl` (`_id`, `text`, and the query's language in
//! `language` or `lang` unless `--query-lang` gives it for the file) and/or `queries.<lang>.jsonl`
//! (the language given by the file name), and `qrels/<split>.tsv` (`query-id`, `corpus-id`,
//! `score`, tab-separated, an optional header line) for the splits `test`, `dev` (read as
//! validation) and `train`. The corpus has one language (`--doc-lang`, default `en`, or every
//! record's `language`): queries in another language over it form a cross-lingual task.
//!
//! **TREC** (`clirlab data import trec`): the documents as TSV (`doc_id<TAB>text`), topics as
//! TSV per language (`query_id<TAB>text`), qrels in TREC format (`qid iter docno rel`) per split.
//!
//! A query id judged in a split becomes that split's query in every language that has the query
//! (the same query translated), ids prefixed with the language (`sw:q1`, documents `en:d1`) so
//! that the retrieval settings can align them. Every evaluation split searches the whole corpus.
//! The `train` judgments (score > 0) become training pairs: relevance links between the query
//! and the document as units (rendered in the languages the files give), English-side pairs
//! (queries in the documents' language) and cross-lingual pairs (the other languages).
//!
//! **Training pairs** (`--train-pairs FILE`, either form): JSONL records `{"id", "query",
//! "positive", "negatives"}` where each text is a string or a map of renderings by language
//! (`{"en": "...", "sw": "..."}`: the same pair in several languages); a plain string is in
//! `query_lang` / `passage_lang` when the record gives them, else the query in `--query-lang`
//! (else the documents' language) and passages in the documents' language. Or TSV lines
//! `query_lang<TAB>query<TAB>passage_lang<TAB>positive[<TAB>negative…]`. Each pair becomes a
//! relevance link between a query unit and a passage unit rendered in the languages given, its
//! negatives the link's given hard negatives (`train.hard_negatives.source: given`), and, where
//! the positive has a rendering in the documents' language, English-side or cross-lingual pairs.
//!
//! Every error names the file and line, and the field.

use crate::format::{Card, Dataset, Doc, FORMAT_VERSION, Judgment, Link, Pair, Split, normalize_text};
use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The task name of imported judgments unless one is given.
pub const DEFAULT_TASK: &str = "relevance";
/// The link kind of imported training judgments.
pub const LINK_RELEVANCE: &str = "relevance";

/// A benchmark read from files, before it becomes a data set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Benchmark {
    /// The documents' language.
    pub doc_lang: String,
    /// Documents: (id, text), ids unique.
    pub docs: Vec<(String, String)>,
    /// Queries by language: id → text.
    pub queries: BTreeMap<String, BTreeMap<String, String>>,
    /// Judgments by split: (query id, document id, grade).
    pub qrels: BTreeMap<Split, Vec<(String, String, i32)>>,
    /// Where it came from, for the card.
    pub origin: String,
    /// Training pairs from a pairs file (beside the `train` judgments).
    pub pairs: Vec<TrainingPair>,
}

/// One training pair of a pairs file: texts by language.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainingPair {
    /// Unique in the file.
    pub id: String,
    /// The query's renderings.
    pub query: BTreeMap<String, String>,
    /// The positive passage's renderings.
    pub positive: BTreeMap<String, String>,
    /// Hard negatives, best first, each with its renderings.
    pub negatives: Vec<BTreeMap<String, String>>,
}

/// Reads a pairs file (`.jsonl` or `.tsv`, see the module docs). Plain-string queries are in
/// `query_lang`, plain-string passages in `doc_lang`, unless a JSONL record says otherwise.
pub fn read_pairs(path: &Path, doc_lang: &str, query_lang: &str) -> Result<Vec<TrainingPair>> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut pairs = Vec::new();
    let mut ids = BTreeSet::new();
    if name.ends_with(".jsonl") {
        for (at, n, record) in jsonl(path)? {
            let id = string_field(&record, "id", &at)?.unwrap_or_else(|| format!("line{n}"));
            check_id(&id, &at, "id")?;
            let q_lang = string_field(&record, "query_lang", &at)?.unwrap_or_else(|| query_lang.to_string());
            let p_lang = string_field(&record, "passage_lang", &at)?.unwrap_or_else(|| doc_lang.to_string());
            let renderings = |value: Option<&Value>, field: &str, lang: &str| -> Result<BTreeMap<String, String>> {
                match value {
                    None | Some(Value::Null) => bail!("{at}: field `{field}` is missing"),
                    Some(Value::String(text)) => {
                        check_lang(lang, &at)?;
                        Ok(BTreeMap::from([(lang.to_string(), text_of(text, &at, field)?)]))
                    }
                    Some(Value::Object(map)) if !map.is_empty() => map
                        .iter()
                        .map(|(l, t)| {
                            check_lang(l, &at)?;
                            let text = t
                                .as_str()
                                .with_context(|| format!("{at}: field `{field}.{l}` must be a string, found {t}"))?;
                            Ok((l.clone(), text_of(text, &at, &format!("{field}.{l}"))?))
                        })
                        .collect(),
                    Some(other) => {
                        bail!("{at}: field `{field}` must be a string or a map of language to text, found {other}")
                    }
                }
            };
            let negatives = match record.get("negatives") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .enumerate()
                    .map(|(k, n)| renderings(Some(n), &format!("negatives[{k}]"), &p_lang))
                    .collect::<Result<_>>()?,
                Some(other) => bail!("{at}: field `negatives` must be a list, found {other}"),
            };
            let pair = TrainingPair {
                query: renderings(record.get("query"), "query", &q_lang)?,
                positive: renderings(record.get("positive"), "positive", &p_lang)?,
                negatives,
                id,
            };
            ensure!(ids.insert(pair.id.clone()), "{at}: pair id {} appears twice", pair.id);
            pairs.push(pair);
        }
    } else if name.ends_with(".tsv") {
        for (at, n, line) in numbered_lines(path)? {
            let fields: Vec<&str> = line.split('\t').collect();
            ensure!(
                fields.len() >= 4,
                "{at}: expected query_lang<TAB>query<TAB>passage_lang<TAB>positive[<TAB>negative…], found {} fields",
                fields.len()
            );
            check_lang(fields[0], &at)?;
            check_lang(fields[2], &at)?;
            let one = |lang: &str, text: &str, field: &str| -> Result<BTreeMap<String, String>> {
                Ok(BTreeMap::from([(lang.to_string(), text_of(text, &at, field)?)]))
            };
            let pair = TrainingPair {
                id: format!("line{n}"),
                query: one(fields[0], fields[1], "query")?,
                positive: one(fields[2], fields[3], "positive")?,
                negatives: fields[4..]
                    .iter()
                    .enumerate()
                    .map(|(k, t)| one(fields[2], t, &format!("negative {}", k + 1)))
                    .collect::<Result<_>>()?,
            };
            pairs.push(pair);
        }
    } else {
        bail!(
            "{}: a pairs file must be .jsonl or .tsv (see `clirlab data import beir --help`)",
            path.display()
        );
    }
    ensure!(!pairs.is_empty(), "{}: no training pair", path.display());
    Ok(pairs)
}

/// What the BEIR reader needs besides the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeirOptions {
    /// The corpus language where its records do not say.
    pub doc_lang: String,
    /// The language of `queries.jsonl`'s records that do not say.
    pub query_lang: Option<String>,
}

/// The non-blank lines of a text file, each with its `file:line` and 1-based number.
fn numbered_lines(path: &Path) -> Result<Vec<(String, usize, String)>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| (format!("{}:{}", path.display(), i + 1), i + 1, line.to_string()))
        .collect())
}

/// A field of a JSON record as a string (a number is read as its digits, as BEIR ids often are).
fn string_field(record: &Value, field: &str, at: &str) -> Result<Option<String>> {
    match record.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => bail!("{at}: field `{field}` must be a string, found {other}"),
    }
}

fn required(record: &Value, field: &str, at: &str) -> Result<String> {
    string_field(record, field, at)?.with_context(|| format!("{at}: field `{field}` is missing"))
}

/// An id that the data format can hold: non-empty, no white space.
fn check_id(id: &str, at: &str, field: &str) -> Result<()> {
    ensure!(
        !id.is_empty() && !id.chars().any(char::is_whitespace),
        "{at}: field `{field}`: id {id:?} must be non-empty and without white space"
    );
    Ok(())
}

/// A language code the data format can hold (it names folders and files).
fn check_lang(lang: &str, at: &str) -> Result<()> {
    ensure!(
        crate::format::valid_name(lang),
        "{at}: language {lang:?} must be ASCII letters, digits, '_' or '-'"
    );
    Ok(())
}

/// The records of a JSONL file, each with its `file:line` and line number (blank lines skipped).
fn jsonl(path: &Path) -> Result<Vec<(String, usize, Value)>> {
    numbered_lines(path)?
        .into_iter()
        .map(|(at, n, line)| {
            let record: Value = serde_json::from_str(&line).with_context(|| format!("{at}: not a JSON object"))?;
            ensure!(record.is_object(), "{at}: expected a JSON object, found {record}");
            Ok((at, n, record))
        })
        .collect()
}

/// Text made non-empty after normalisation, or an error naming the field.
fn text_of(raw: &str, at: &str, field: &str) -> Result<String> {
    let text = normalize_text(raw);
    ensure!(!text.is_empty(), "{at}: field `{field}` is empty");
    Ok(text)
}

impl Benchmark {
    fn add_doc(&mut self, seen: &mut BTreeSet<String>, id: String, text: String, at: &str) -> Result<()> {
        check_id(&id, at, "_id")?;
        ensure!(seen.insert(id.clone()), "{at}: document id {id} appears twice");
        self.docs.push((id, text));
        Ok(())
    }

    fn add_query(&mut self, lang: &str, id: String, text: String, at: &str, field: &str) -> Result<()> {
        check_lang(lang, at)?;
        check_id(&id, at, field)?;
        let previous = self
            .queries
            .entry(lang.to_string())
            .or_default()
            .insert(id.clone(), text);
        ensure!(previous.is_none(), "{at}: query {id} in language {lang} appears twice");
        Ok(())
    }
}

/// Reads a BEIR folder (see the module docs).
pub fn read_beir(dir: &Path, options: &BeirOptions) -> Result<Benchmark> {
    check_lang(&options.doc_lang, "--doc-lang")?;
    let mut bench = Benchmark {
        doc_lang: options.doc_lang.clone(),
        origin: format!("the BEIR folder {}", dir.display()),
        ..Benchmark::default()
    };
    let corpus = dir.join("corpus.jsonl");
    ensure!(
        corpus.is_file(),
        "{}: no corpus.jsonl (a BEIR folder has one)",
        dir.display()
    );
    let mut seen = BTreeSet::new();
    for (at, _, record) in jsonl(&corpus)? {
        if let Some(lang) = string_field(&record, "language", &at)?.or(string_field(&record, "lang", &at)?) {
            ensure!(
                lang == options.doc_lang,
                "{at}: field `language`: the corpus is read as one language ({}), this record says {lang}",
                options.doc_lang
            );
        }
        let id = required(&record, "_id", &at)?;
        let body = required(&record, "text", &at)?;
        let title = string_field(&record, "title", &at)?.unwrap_or_default();
        let text = text_of(&format!("{title} {body}"), &at, "text")?;
        bench.add_doc(&mut seen, id, text, &at)?;
    }
    let mut query_files = 0;
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("listing {}", dir.display()))?;
    entries.sort();
    for path in entries {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let file_lang = match name {
            "queries.jsonl" => None,
            _ => match name.strip_prefix("queries.").and_then(|n| n.strip_suffix(".jsonl")) {
                Some(lang) => Some(lang.to_string()),
                None => continue,
            },
        };
        query_files += 1;
        for (at, _, record) in jsonl(&path)? {
            let said = string_field(&record, "language", &at)?.or(string_field(&record, "lang", &at)?);
            let lang = match (&file_lang, said) {
                (Some(f), Some(r)) if *f != r => {
                    bail!("{at}: field `language` says {r}, but the file name says {f}")
                }
                (Some(f), _) => f.clone(),
                (None, Some(r)) => r,
                (None, None) => options.query_lang.clone().with_context(|| {
                    format!("{at}: field `language` is missing (or give the file's language with --query-lang)")
                })?,
            };
            let id = required(&record, "_id", &at)?;
            let text = text_of(&required(&record, "text", &at)?, &at, "text")?;
            bench.add_query(&lang, id, text, &at, "_id")?;
        }
    }
    ensure!(
        query_files > 0,
        "{}: no queries.jsonl or queries.<lang>.jsonl",
        dir.display()
    );
    for (file, split) in [
        ("test.tsv", Split::Test),
        ("dev.tsv", Split::Validation),
        ("train.tsv", Split::Train),
    ] {
        let path = dir.join("qrels").join(file);
        if path.is_file() {
            bench.qrels.insert(split, read_beir_qrels(&path)?);
        }
    }
    ensure!(
        bench.qrels.contains_key(&Split::Test),
        "{}: no qrels/test.tsv (the split the report's numbers come from)",
        dir.display()
    );
    Ok(bench)
}

/// `query-id<TAB>corpus-id<TAB>score` lines, an optional header first.
fn read_beir_qrels(path: &Path) -> Result<Vec<(String, String, i32)>> {
    let mut out = Vec::new();
    for (at, number, line) in numbered_lines(path)? {
        if number == 1 && line.starts_with("query-id") {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        ensure!(
            fields.len() == 3,
            "{at}: expected 3 tab-separated fields (query-id, corpus-id, score), found {}",
            fields.len()
        );
        let score = parse_grade(fields[2], &at, "score")?;
        out.push((fields[0].trim().to_string(), fields[1].trim().to_string(), score));
    }
    Ok(out)
}

fn parse_grade(raw: &str, at: &str, field: &str) -> Result<i32> {
    raw.trim()
        .parse()
        .with_context(|| format!("{at}: field `{field}`: expected an integer grade, found {raw:?}"))
}

/// TREC-style files: documents and topics as TSV, qrels in TREC format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrecFiles {
    /// `doc_id<TAB>text` lines.
    pub corpus: PathBuf,
    /// The documents' language.
    pub doc_lang: String,
    /// (language, `query_id<TAB>text` file).
    pub topics: Vec<(String, PathBuf)>,
    /// (split, qrels file `qid iter docno rel`).
    pub qrels: Vec<(Split, PathBuf)>,
}

/// `id<TAB>text` lines of a TSV file.
fn tsv_records(path: &Path, id_field: &str) -> Result<Vec<(String, String, String)>> {
    numbered_lines(path)?
        .into_iter()
        .map(|(at, _, line)| {
            let Some((id, body)) = line.split_once('\t') else {
                bail!("{at}: expected `{id_field}<TAB>text`, found no tab");
            };
            let text = text_of(body, &at, "text")?;
            Ok((at, id.trim().to_string(), text))
        })
        .collect()
}

/// Reads TREC-style files (see [`TrecFiles`]).
pub fn read_trec(files: &TrecFiles) -> Result<Benchmark> {
    check_lang(&files.doc_lang, "--doc-lang")?;
    let mut bench = Benchmark {
        doc_lang: files.doc_lang.clone(),
        origin: format!("the TREC files {}", files.corpus.display()),
        ..Benchmark::default()
    };
    let mut seen = BTreeSet::new();
    for (at, id, text) in tsv_records(&files.corpus, "doc_id")? {
        bench.add_doc(&mut seen, id, text, &at)?;
    }
    ensure!(!files.topics.is_empty(), "--topics: at least one LANG=FILE is needed");
    for (lang, path) in &files.topics {
        check_lang(lang, "--topics")?;
        for (at, id, text) in tsv_records(path, "query_id")? {
            bench.add_query(lang, id, text, &at, "query_id")?;
        }
    }
    for (split, path) in &files.qrels {
        let mut judged = Vec::new();
        for (at, _, line) in numbered_lines(path)? {
            let fields: Vec<&str> = line.split_whitespace().collect();
            ensure!(
                fields.len() == 4,
                "{at}: expected 4 fields (qid, iter, docno, rel), found {}",
                fields.len()
            );
            judged.push((
                fields[0].to_string(),
                fields[2].to_string(),
                parse_grade(fields[3], &at, "rel")?,
            ));
        }
        ensure!(
            bench.qrels.insert(*split, judged).is_none(),
            "--qrels: split {split} is given twice"
        );
    }
    ensure!(
        bench.qrels.contains_key(&Split::Test),
        "--qrels: a test split is needed (test=FILE)"
    );
    Ok(bench)
}

impl Benchmark {
    /// The data set `name` (see the module docs).
    pub fn into_dataset(self, name: &str, task: &str) -> Result<Dataset> {
        ensure!(
            crate::format::valid_name(task),
            "--task: {task:?} must be ASCII letters, digits, '_' or '-' (it names the qrels files)"
        );
        let doc_ids: BTreeSet<&str> = self.docs.iter().map(|(id, _)| id.as_str()).collect();
        let query_ids: BTreeSet<&str> = self
            .queries
            .values()
            .flat_map(|q| q.keys())
            .map(String::as_str)
            .collect();
        for (split, judged) in &self.qrels {
            for (q, d, _) in judged {
                ensure!(
                    query_ids.contains(q.as_str()),
                    "qrels of split {split}: query {q} is in no queries file"
                );
                ensure!(
                    doc_ids.contains(d.as_str()),
                    "qrels of split {split}: document {d} is not in the corpus"
                );
            }
        }
        let doc_lang = self.doc_lang.clone();
        let languages: Vec<String> = self.queries.keys().cloned().collect();
        let train_pairs = self.qrels.get(&Split::Train).map_or(0, Vec::len) + self.pairs.len();
        let card = Card {
            name: name.to_string(),
            synthetic: false,
            zero_shot: train_pairs == 0,
            description: format!(
                "Imported from {} by clirlab: documents in {doc_lang}, queries in {}; task {task}; every \
                 evaluation split searches the whole corpus.",
                self.origin,
                languages.join(", ")
            ),
            sources: Vec::new(),
            languages,
            pivot: doc_lang.clone(),
            tasks: vec![task.to_string()],
            splits: self
                .qrels
                .keys()
                .map(|s| (s.as_str().to_string(), Vec::new()))
                .collect(),
            counts: BTreeMap::new(),
            format_version: FORMAT_VERSION,
            files: BTreeMap::new(),
        };
        let mut ds = Dataset::new(card);
        let prefixed = |lang: &str, id: &str| format!("{lang}:{id}");
        let doc_text: BTreeMap<&str, &str> = self.docs.iter().map(|(i, t)| (i.as_str(), t.as_str())).collect();
        for (split, judged) in &self.qrels {
            if *split == Split::Train {
                continue;
            }
            let s = split.as_str().to_string();
            ds.corpus.insert(
                s.clone(),
                self.docs
                    .iter()
                    .map(|(id, text)| Doc {
                        id: prefixed(&doc_lang, id),
                        text: text.clone(),
                    })
                    .collect(),
            );
            let judged_queries: BTreeSet<&str> = judged.iter().map(|(q, _, _)| q.as_str()).collect();
            for (lang, queries) in &self.queries {
                let docs: Vec<Doc> = queries
                    .iter()
                    .filter(|(id, _)| judged_queries.contains(id.as_str()))
                    .map(|(id, text)| Doc {
                        id: prefixed(lang, id),
                        text: text.clone(),
                    })
                    .collect();
                if docs.is_empty() {
                    continue;
                }
                let qrels = judged
                    .iter()
                    .filter(|(q, _, _)| queries.contains_key(q))
                    .map(|(q, d, grade)| Judgment {
                        query_id: prefixed(lang, q),
                        doc_id: prefixed(&doc_lang, d),
                        relevance: *grade,
                    })
                    .collect();
                ds.queries.insert((lang.clone(), s.clone()), docs);
                ds.qrels.insert((lang.clone(), task.to_string(), s.clone()), qrels);
            }
        }
        let mut unit_docs: BTreeSet<&str> = BTreeSet::new();
        let mut unit_queries: BTreeSet<&str> = BTreeSet::new();
        for (q, d, grade) in self.qrels.get(&Split::Train).into_iter().flatten() {
            if *grade <= 0 {
                continue;
            }
            let id = format!("{q}+{d}");
            ds.links.push(Link {
                id: id.clone(),
                kind: LINK_RELEVANCE.to_string(),
                query: format!("q:{q}"),
                passage: format!("d:{d}"),
            });
            unit_docs.insert(d);
            unit_queries.insert(q);
            for (lang, queries) in &self.queries {
                let Some(text) = queries.get(q) else { continue };
                let pair = Pair {
                    id: id.clone(),
                    query: text.clone(),
                    passage: doc_text[d.as_str()].to_string(),
                };
                if *lang == doc_lang {
                    ds.mono.push(pair);
                } else {
                    ds.cross.entry(lang.clone()).or_default().push(pair);
                }
            }
        }
        for d in unit_docs {
            ds.units.entry(doc_lang.clone()).or_default().push(Doc {
                id: format!("d:{d}"),
                text: doc_text[d].to_string(),
            });
        }
        for (lang, queries) in &self.queries {
            for q in &unit_queries {
                if let Some(text) = queries.get(*q) {
                    ds.units.entry(lang.clone()).or_default().push(Doc {
                        id: format!("q:{q}"),
                        text: text.clone(),
                    });
                }
            }
        }
        add_pairs(&mut ds, &self.pairs, &doc_lang);
        ensure!(
            !ds.queries.is_empty(),
            "no query of any language is judged in the evaluation splits"
        );
        Ok(ds)
    }
}

/// Writes `bench` as the data set `name` under `data_dir` (see the module docs); an existing
/// folder of that name is replaced only with `replace`, and never a registry or built-in set.
pub fn write_imported(bench: Benchmark, name: &str, task: &str, data_dir: &Path, replace: bool) -> Result<PathBuf> {
    ensure!(
        clirlab_util::fs::plain_component(name)
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'),
        "--name: {name:?} must be one folder name of ASCII letters, digits, '.', '_' or '-'"
    );
    let reserved = [super::synthetic::NAME, super::BIBLE];
    ensure!(
        !super::prepare::dataset_names().contains(&name) && !reserved.contains(&name),
        "--name: {name} is a data set clirlab prepares itself; choose another name"
    );
    let root = data_dir.join(name);
    ensure!(
        replace || !root.exists(),
        "--name: {} exists; pass --replace to overwrite it, or choose another name",
        root.display()
    );
    let dataset = bench.into_dataset(name, task)?;
    dataset.save(&root)?;
    Ok(root)
}

/// The pairs of a pairs file as links between units `pq:<id>` and `pp:<id>` (negatives
/// `pn:<id>.<k>`), rendered in their languages, and as English-side and cross-lingual pairs
/// where the positive has a rendering in `doc_lang`.
fn add_pairs(ds: &mut Dataset, pairs: &[TrainingPair], doc_lang: &str) {
    for pair in pairs {
        let link = format!("pair:{}", pair.id);
        let (query, passage) = (format!("pq:{}", pair.id), format!("pp:{}", pair.id));
        ds.links.push(Link {
            id: link.clone(),
            kind: LINK_RELEVANCE.to_string(),
            query: query.clone(),
            passage: passage.clone(),
        });
        let mut render = |unit: &str, texts: &BTreeMap<String, String>| {
            for (lang, text) in texts {
                ds.units.entry(lang.clone()).or_default().push(Doc {
                    id: unit.to_string(),
                    text: text.clone(),
                });
            }
        };
        render(&query, &pair.query);
        render(&passage, &pair.positive);
        let negatives: Vec<String> = (1..=pair.negatives.len())
            .map(|k| format!("pn:{}.{k}", pair.id))
            .collect();
        for (unit, texts) in negatives.iter().zip(&pair.negatives) {
            render(unit, texts);
        }
        if !negatives.is_empty() {
            ds.negatives.insert(link.clone(), negatives);
        }
        let Some(positive) = pair.positive.get(doc_lang) else {
            continue;
        };
        for (lang, text) in &pair.query {
            let p = Pair {
                id: link.clone(),
                query: text.clone(),
                passage: positive.clone(),
            };
            if lang == doc_lang {
                ds.mono.push(p);
            } else {
                ds.cross.entry(lang.clone()).or_default().push(p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn pairs_files_give_renderings_and_negatives_and_name_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "p.jsonl",
            concat!(
                r#"{"id": "a", "query": {"en": "red boat", "sw": "mashua nyekundu"}, "positive": "a red boat", "negatives": ["a blue boat"]}"#,
                "\n\n",
                r#"{"query": "mvua", "query_lang": "sw", "positive": {"en": "rain", "sw": "mvua kubwa"}}"#,
                "\n"
            ),
        );
        let pairs = read_pairs(&dir.path().join("p.jsonl"), "en", "en").unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[0].query.len(), 2);
        assert_eq!(
            pairs[0].negatives,
            vec![BTreeMap::from([("en".into(), "a blue boat".into())])]
        );
        assert_eq!((pairs[1].id.as_str(), pairs[1].query["sw"].as_str()), ("line3", "mvua"));
        write(dir.path(), "p.tsv", "sw\tmvua\ten\train\tsun\nsw\tjua\n");
        let err = read_pairs(&dir.path().join("p.tsv"), "en", "en")
            .unwrap_err()
            .to_string();
        assert!(err.contains("p.tsv:2: expected query_lang"), "{err}");
        write(dir.path(), "p.tsv", "sw\tmvua\ten\train\tsun\n");
        let pairs = read_pairs(&dir.path().join("p.tsv"), "en", "en").unwrap();
        assert_eq!(pairs[0].negatives.len(), 1);
        for (line, says) in [
            (r#"{"id": "a", "positive": "x"}"#, "p.jsonl:1: field `query` is missing"),
            (r#"{"query": {"e n": "x"}, "positive": "y"}"#, "language \"e n\""),
            (
                r#"{"query": "x", "positive": "y", "negatives": "z"}"#,
                "field `negatives` must be a list",
            ),
            (
                r#"{"query": "x", "positive": {"en": 1}}"#,
                "field `positive.en` must be a string",
            ),
        ] {
            write(dir.path(), "p.jsonl", &format!("{line}\n"));
            let err = read_pairs(&dir.path().join("p.jsonl"), "en", "en")
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{line}: {err}");
        }
        write(dir.path(), "p.csv", "x\n");
        assert!(read_pairs(&dir.path().join("p.csv"), "en", "en").is_err());
    }

    /// Three English documents; queries in English (per record) and Swahili (per file).
    fn beir_folder(dir: &Path) {
        write(
            dir,
            "corpus.jsonl",
            "{\"_id\": \"d1\", \"title\": \"Boats\", \"text\": \"a blue boat\"}\n\
             {\"_id\": 2, \"text\": \"a red house\"}\n\n\
             {\"_id\": \"d3\", \"title\": \"\", \"text\": \"green trees\"}\n",
        );
        write(
            dir,
            "queries.jsonl",
            "{\"_id\": \"q1\", \"text\": \"blue boat\", \"language\": \"en\"}\n\
             {\"_id\": \"q2\", \"text\": \"red house\", \"lang\": \"en\"}\n",
        );
        write(
            dir,
            "queries.sw.jsonl",
            "{\"_id\": \"q1\", \"text\": \"mashua ya bluu\"}\n{\"_id\": \"q2\", \"text\": \"nyumba nyekundu\"}\n",
        );
        write(dir, "qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\n");
        write(dir, "qrels/train.tsv", "q2\t2\t2\nq2\td3\t0\n");
    }

    fn options() -> BeirOptions {
        BeirOptions {
            doc_lang: "en".into(),
            query_lang: None,
        }
    }

    #[test]
    fn a_beir_folder_becomes_a_cross_lingual_data_set() {
        let tmp = tempfile::tempdir().unwrap();
        beir_folder(tmp.path());
        let ds = read_beir(tmp.path(), &options())
            .unwrap()
            .into_dataset("mine", DEFAULT_TASK)
            .unwrap();
        assert_eq!(ds.card.languages, ["en", "sw"]);
        assert_eq!(ds.card.pivot, "en");
        let corpus = &ds.corpus["test"];
        assert_eq!(corpus[0].id, "en:d1");
        assert_eq!(corpus[0].text, "Boats a blue boat");
        assert_eq!(corpus[1].id, "en:2");
        let key = |l: &str| (l.to_string(), "test".to_string());
        // Only the judged query is a test query, in each language that has it.
        assert_eq!(ds.queries[&key("sw")].len(), 1);
        assert_eq!(ds.queries[&key("sw")][0].id, "sw:q1");
        let judged = &ds.qrels[&("sw".to_string(), DEFAULT_TASK.to_string(), "test".to_string())];
        assert_eq!(
            (judged[0].query_id.as_str(), judged[0].doc_id.as_str()),
            ("sw:q1", "en:d1")
        );
        // Training: the positive judgment only, as a link, an English pair and a Swahili pair.
        assert_eq!(ds.links.len(), 1);
        assert_eq!(ds.links[0].query, "q:q2");
        assert_eq!(ds.mono[0].passage, "a red house");
        assert_eq!(ds.cross["sw"][0].query, "nyumba nyekundu");
        assert_eq!(ds.units["sw"][0].id, "q:q2");
        assert_eq!(ds.units["en"].len(), 2);
        assert!(!ds.card.zero_shot);
        // It saves and loads as any data set does.
        let root = tmp.path().join("out/mine");
        ds.save(&root).unwrap();
        assert_eq!(Dataset::load(&root).unwrap().queries, ds.queries);
    }

    fn beir_error(edit: impl Fn(&Path)) -> String {
        let tmp = tempfile::tempdir().unwrap();
        beir_folder(tmp.path());
        edit(tmp.path());
        let result = read_beir(tmp.path(), &options()).and_then(|b| b.into_dataset("mine", DEFAULT_TASK));
        format!("{:#}", result.unwrap_err())
    }

    #[test]
    fn malformed_beir_files_name_the_file_line_and_field() {
        let cases = [
            (
                "corpus.jsonl",
                "{\"_id\": \"d1\", \"text\": \"x\"}\n{\"_id\": \"d2\"}\n",
                "corpus.jsonl:2: field `text` is missing",
            ),
            (
                "corpus.jsonl",
                "{\"_id\": \"d1\", \"text\": \"x\"}\nnot json\n",
                "corpus.jsonl:2: not a JSON object",
            ),
            (
                "corpus.jsonl",
                "{\"_id\": \"d 1\", \"text\": \"x\"}\n",
                "corpus.jsonl:1: field `_id`: id \"d 1\" must be non-empty and without white space",
            ),
            (
                "queries.jsonl",
                "{\"_id\": \"q1\", \"text\": \"x\"}\n",
                "queries.jsonl:1: field `language` is missing",
            ),
            (
                "queries.sw.jsonl",
                "{\"_id\": \"q1\", \"text\": \"x\", \"language\": \"tl\"}\n",
                "queries.sw.jsonl:1: field `language` says tl",
            ),
            (
                "qrels/test.tsv",
                "q1\td1\n",
                "test.tsv:1: expected 3 tab-separated fields",
            ),
            (
                "qrels/test.tsv",
                "q1\td1\thigh\n",
                "test.tsv:1: field `score`: expected an integer",
            ),
            ("qrels/test.tsv", "q1\td9\t1\n", "document d9 is not in the corpus"),
        ];
        for (file, content, expected) in cases {
            let e = beir_error(|d| write(d, file, content));
            assert!(e.contains(expected), "{file}: {e}");
        }
        let e = beir_error(|d| fs::remove_file(d.join("qrels/test.tsv")).unwrap());
        assert!(e.contains("no qrels/test.tsv"), "{e}");
    }

    #[test]
    fn trec_files_become_the_same_data_set() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write(
            d,
            "docs.tsv",
            "d1\tBoats a blue boat\n2\ta red house\nd3\tgreen trees\n",
        );
        write(d, "topics.sw.tsv", "q1\tmashua ya bluu\nq2\tnyumba nyekundu\n");
        write(d, "topics.en.tsv", "q1\tblue boat\nq2\tred house\n");
        write(d, "test.qrels", "q1 0 d1 1\n");
        write(d, "train.qrels", "q2 0 2 2\nq2 0 d3 0\n");
        let files = TrecFiles {
            corpus: d.join("docs.tsv"),
            doc_lang: "en".into(),
            topics: vec![
                ("sw".into(), d.join("topics.sw.tsv")),
                ("en".into(), d.join("topics.en.tsv")),
            ],
            qrels: vec![
                (Split::Test, d.join("test.qrels")),
                (Split::Train, d.join("train.qrels")),
            ],
        };
        let trec = read_trec(&files).unwrap().into_dataset("mine", DEFAULT_TASK).unwrap();
        let tmp2 = tempfile::tempdir().unwrap();
        beir_folder(tmp2.path());
        let beir = read_beir(tmp2.path(), &options())
            .unwrap()
            .into_dataset("mine", DEFAULT_TASK)
            .unwrap();
        assert_eq!(trec.corpus, beir.corpus);
        assert_eq!(trec.queries, beir.queries);
        assert_eq!(trec.qrels, beir.qrels);
        assert_eq!(trec.links, beir.links);
        write(d, "test.qrels", "q1 0 d1\n");
        let e = format!("{:#}", read_trec(&files).unwrap_err());
        assert!(e.contains("test.qrels:1: expected 4 fields"), "{e}");
        write(d, "docs.tsv", "d1 no tab\n");
        let e = format!("{:#}", read_trec(&files).unwrap_err());
        assert!(e.contains("docs.tsv:1: expected `doc_id<TAB>text`"), "{e}");
    }
}
