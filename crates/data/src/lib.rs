//! Data sets: the `data` section of an experiment (`config`), the on-disk and in-memory format (`format`), preparation of real data from
//! registry packages (`prepare`), import of a researcher's own benchmark (`import`), and the built-in synthetic set (`synthetic`).

/// The `data` section of an experiment.
pub mod config;
/// A BERT-family encoder's HuggingFace `config.json`.
pub mod encoder_config;
/// The data format on disk and in memory.
pub mod format;
/// Importing a researcher's own benchmark (BEIR folders, TREC files).
pub mod import;
/// Preparation of real data sets from registry packages.
pub mod prepare;
/// The built-in synthetic data set.
pub mod synthetic;

use anyhow::{Context, Result, bail};
pub use config::{DataConfig, ZeroShot};
use format::Dataset;
use std::path::{Path, PathBuf};

/// `data.dataset` that selects the Bible set of every language in `data.languages`.
pub const BIBLE: &str = "bible";

/// Where prepared data sets live: `CLIRLAB_DATA_DIR`, else `data/` in the working directory.
/// An empty `CLIRLAB_DATA_DIR` counts as unset (as an empty path it would put the data sets
/// straight into the working directory).
pub fn data_dir() -> PathBuf {
    std::env::var_os("CLIRLAB_DATA_DIR")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("data"))
}

/// Prepares (once; later calls reuse it) and loads the named registry data set.
fn prepared(name: &str, langs: &[String], dir: &Path, progress: bool) -> Result<Dataset> {
    let req = prepare::PrepareRequest {
        name: name.to_string(),
        langs: langs.to_vec(),
        data_dir: dir.to_path_buf(),
        progress,
    };
    let ready = prepare::prepare(&req).with_context(|| format!("preparing data set `{name}`"))?;
    Dataset::load(&ready.root)
}

/// Several data sets with the same English documents as one: corpora, monolingual pairs,
/// links and each language's unit renderings are united by id; queries, judgments and
/// cross-lingual pairs kept per language.
pub fn merge(mut sets: Vec<Dataset>) -> Result<Dataset> {
    let mut merged = sets.remove(0);
    for set in sets {
        for (split, docs) in set.corpus {
            extend_unique(merged.corpus.entry(split).or_default(), docs, |d| &d.id);
        }
        extend_unique(&mut merged.mono, set.mono, |p| &p.id);
        merged.queries.extend(set.queries);
        merged.documents.extend(set.documents);
        merged.qrels.extend(set.qrels);
        merged.cross.extend(set.cross);
        merged.bitext.extend(set.bitext);
        // The pivot's renderings and the links come with every language's set: once each.
        for (lang, units) in set.units {
            extend_unique(merged.units.entry(lang).or_default(), units, |u| &u.id);
        }
        extend_unique(&mut merged.links, set.links, |l| &l.id);
        merged.card.name = format!("{}+{}", merged.card.name, set.card.name);
        merged.card.languages.extend(set.card.languages);
        merged.card.sources.extend(set.card.sources);
        for t in set.card.tasks {
            if !merged.card.tasks.contains(&t) {
                merged.card.tasks.push(t);
            }
        }
    }
    Ok(merged)
}

/// Appends the `items` whose id `target` does not hold yet.
fn extend_unique<T>(target: &mut Vec<T>, items: Vec<T>, id: impl Fn(&T) -> &String) {
    let known: std::collections::HashSet<String> = target.iter().map(|t| id(t).clone()).collect();
    target.extend(items.into_iter().filter(|t| !known.contains(id(t))));
}

/// The data set a cell trains and evaluates on. Registry sets are prepared on first use.
pub fn load(cfg: &DataConfig, progress: bool) -> Result<Dataset> {
    let dir = data_dir();
    let dataset = if cfg.dataset == synthetic::NAME {
        synthetic::generate(&cfg.synthetic, &cfg.languages)
    } else if cfg.dataset == BIBLE {
        let sets = cfg
            .languages
            .iter()
            .map(|lang| prepared(&format!("bible-{lang}"), &[], &dir, progress))
            .collect::<Result<Vec<_>>>()?;
        merge(sets)?
    } else if prepare::dataset_names().contains(&cfg.dataset.as_str()) {
        let langs = if cfg.dataset == "udhr" {
            cfg.languages.clone()
        } else {
            Vec::new()
        };
        prepared(&cfg.dataset, &langs, &dir, progress)?
    } else if dir.join(&cfg.dataset).join(format::CARD_FILE).is_file() {
        Dataset::load(&dir.join(&cfg.dataset))?
    } else {
        bail!(
            "key `data.dataset`: unknown data set `{}`; expected `{}`, `{}` (one Bible per language), one of {:?}, \
             or a data set in the clirlab format under {}",
            cfg.dataset,
            synthetic::NAME,
            BIBLE,
            prepare::dataset_names(),
            dir.display()
        );
    };
    for lang in &cfg.languages {
        if !dataset.card.languages.contains(lang) {
            bail!(
                "key `data.languages`: `{lang}` is not a query language of data set `{}` (it has {:?})",
                cfg.dataset,
                dataset.card.languages
            );
        }
    }
    Ok(dataset)
}
