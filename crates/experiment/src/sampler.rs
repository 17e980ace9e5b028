//! Hybrid batches: at each training step, the share of cross-lingual pairs follows the
//! curriculum schedule p(t).
//!
//! Two designs (`data.train_pairs.design`):
//! - **rendered** ([`RenderedSampler`]): one pool of relevance pairs (the data set's links,
//!   each with a selected language X) shared by every grid point; a drawn pair is rendered
//!   within X (X-X) or across languages (X-Y), and p(t) is the share of X-Y renderings. The
//!   pairs a run draws do not depend on its schedule: the draw of pool entries and the choice
//!   of renderings use two random streams, so two runs with one seed and different schedules
//!   draw the same entries in the same order;
//! - **translation vs English** ([`HybridSampler`]): translations (a low-resource query, its
//!   English passage) at the share p(t), the rest English–English pairs.

use crate::schedule::{Schedule, progress};
use anyhow::{Result, bail, ensure};
use clirlab_data::config::CrossLingual;
use clirlab_data::format::{Doc, Link, Pair};
use rand::seq::index;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// How cross-lingual pairs are mixed into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mixing {
    /// Every batch mixes both kinds; the number of cross-lingual pairs is p(t)·B rounded
    /// stochastically, so its expectation is exactly p(t)·B.
    #[default]
    Sample,
    /// Each batch is wholly cross-lingual with probability p(t), else wholly monolingual.
    Batch,
}

/// One pair of a batch, as the encoder sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPair<'a> {
    /// The relevance pair it renders (a link id, or a pair id of the earlier design).
    pub id: &'a str,
    /// The language of the query side.
    pub query_lang: &'a str,
    /// The language of the passage side.
    pub passage_lang: &'a str,
    /// The query text.
    pub query: &'a str,
    /// The passage text.
    pub passage: &'a str,
}

/// One training batch.
#[derive(Debug, Clone)]
pub struct Batch<'a> {
    /// The pairs of the batch.
    pub pairs: Vec<BatchPair<'a>>,
    /// The schedule's target share at this step.
    pub target_share: f64,
    /// How many of `pairs` are cross-lingual (they come first).
    pub cross_lingual: usize,
    /// Hard negatives: passages no query of the batch has as its positive, each rendered in
    /// the language of the passage of the pair it was mined for; scored against every query.
    pub negatives: Vec<&'a str>,
}

/// What both designs share: the schedule, how it mixes, the batch size and the run's length.
#[derive(Debug, Clone)]
pub struct BatchPlan {
    /// The curriculum schedule p(t).
    pub schedule: Schedule,
    /// Per pair or per batch.
    pub mixing: Mixing,
    /// Pairs per batch (at least 2: in-batch negatives).
    pub batch_size: usize,
    /// Steps of the run (p(t) runs over them).
    pub steps: usize,
}

impl BatchPlan {
    fn check(&self) -> Result<()> {
        ensure!(
            self.batch_size >= 2,
            "batch size must be at least 2 (in-batch negatives), found {}",
            self.batch_size
        );
        Ok(())
    }

    /// The share p(t) at `step`, checked: a schedule that yields a value outside [0, 1] is a
    /// bug upstream (validation keeps parameters in range), reported rather than passed to `rand`.
    fn share_at(&self, step: usize) -> Result<f64> {
        let p = self.schedule.share(progress(step, self.steps));
        ensure!(
            p.is_finite() && (0.0..=1.0).contains(&p),
            "the schedule's cross-lingual share at step {step} is {p}, outside [0, 1]"
        );
        Ok(p)
    }

    /// How many of a batch's pairs are cross-lingual at share `p`.
    fn cross_count(&self, rng: &mut ChaCha8Rng, p: f64) -> usize {
        cross_count(rng, self.mixing, p, self.batch_size)
    }
}

/// How many of `b` pairs are cross-lingual at share `p`.
fn cross_count(rng: &mut ChaCha8Rng, mixing: Mixing, p: f64, b: usize) -> usize {
    match mixing {
        Mixing::Sample => {
            let exact = p * b as f64;
            let floor = exact.floor();
            floor as usize + usize::from(rng.gen_bool((exact - floor).clamp(0.0, 1.0)))
        }
        Mixing::Batch => {
            if rng.gen_bool(p) {
                b
            } else {
                0
            }
        }
    }
}

/// Draws the batches of the earlier design: cross-lingual pairs at the schedule's share p(t),
/// the rest monolingual.
pub struct HybridSampler<'a> {
    mono: Vec<&'a Pair>,
    cross: Vec<(&'a str, &'a Pair)>,
    pivot: &'a str,
    plan: BatchPlan,
    rng: ChaCha8Rng,
}

impl<'a> HybridSampler<'a> {
    /// `cross` holds the cross-lingual pairs of all selected languages, each with its language;
    /// `mono` pairs are in `pivot`.
    pub fn new(
        mono: Vec<&'a Pair>,
        cross: Vec<(&'a str, &'a Pair)>,
        pivot: &'a str,
        plan: BatchPlan,
        seed: u64,
    ) -> Result<Self> {
        plan.check()?;
        ensure!(
            mono.len() >= plan.batch_size,
            "only {} monolingual training pairs for a batch size of {}",
            mono.len(),
            plan.batch_size
        );
        ensure!(
            !cross.is_empty(),
            "no cross-lingual training pairs for the selected languages"
        );
        Ok(Self {
            mono,
            cross,
            pivot,
            plan,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    /// The batch of step `step` (0-based). Calls must come in step order for reproducibility.
    pub fn batch(&mut self, step: usize) -> Result<Batch<'a>> {
        let p = self.plan.share_at(step)?;
        let b = self.plan.batch_size;
        let n_cross = self.plan.cross_count(&mut self.rng, p).min(self.cross.len()).min(b);
        let pivot = self.pivot;
        let mut pairs: Vec<BatchPair<'a>> = index::sample(&mut self.rng, self.cross.len(), n_cross)
            .into_iter()
            .map(|i| {
                let (lang, pair) = self.cross[i];
                BatchPair {
                    id: &pair.id,
                    query_lang: lang,
                    passage_lang: pivot,
                    query: &pair.query,
                    passage: &pair.passage,
                }
            })
            .collect();
        // A passage twice in one batch would be its own in-batch negative: skip repeats.
        let mut passages: HashSet<&str> = pairs.iter().map(|p| p.passage).collect();
        let order = index::sample(&mut self.rng, self.mono.len(), self.mono.len());
        for i in order {
            if pairs.len() == b {
                break;
            }
            let pair = self.mono[i];
            if passages.insert(pair.passage.as_str()) {
                pairs.push(BatchPair {
                    id: &pair.id,
                    query_lang: pivot,
                    passage_lang: pivot,
                    query: &pair.query,
                    passage: &pair.passage,
                });
            }
        }
        Ok(Batch {
            pairs,
            target_share: p,
            cross_lingual: n_cross,
            negatives: Vec::new(),
        })
    }
}

/// One entry of the rendered pool: a link and the selected language X it is trained in, with
/// its X-X rendering and every X-Y rendering the experiment allows.
#[derive(Debug, Clone)]
pub struct PoolEntry<'a> {
    /// The link.
    pub link: &'a Link,
    /// The selected language X.
    pub lang: &'a str,
    /// Both sides in X.
    pub within: BatchPair<'a>,
    /// The cross-lingual renderings (at least one).
    pub across: Vec<BatchPair<'a>>,
    /// Hard-negative passage units of the link, best first ([`RenderedPool::set_negatives`]).
    pub negatives: Vec<&'a str>,
}

/// The pool of the rendered design: every (link, language) a cell may draw.
#[derive(Debug, Clone)]
pub struct RenderedPool<'a> {
    entries: Vec<PoolEntry<'a>>,
    /// Unit renderings by language, then unit id.
    text: HashMap<&'a str, HashMap<&'a str, &'a str>>,
}

/// What selects a rendered pool's entries.
#[derive(Debug, Clone)]
pub struct PoolSpec<'a> {
    /// The selected languages X (`data.languages`).
    pub languages: &'a [String],
    /// The pivot language (the data set's document language).
    pub pivot: &'a str,
    /// The link kinds trained on; empty: all.
    pub kinds: &'a [String],
    /// The allowed cross-lingual renderings (at least one).
    pub cross_lingual: &'a [CrossLingual],
    /// At most this many links per language, a fixed sample (`data.max_train_pairs`).
    pub max_per_language: Option<usize>,
}

impl<'a> RenderedPool<'a> {
    /// The entries of `links` that can be rendered both within each selected language and in
    /// every allowed cross-lingual way. Errors name the setting that leaves a language empty.
    pub fn new(links: &'a [Link], units: &'a BTreeMap<String, Vec<Doc>>, spec: &PoolSpec<'_>) -> Result<Self> {
        ensure!(
            !links.is_empty(),
            "data.train_pairs.design: rendered needs the data set's links (train/links.tsv), and it has none; \
             prepare it again with this version of clirlab, or use design: translation_vs_english"
        );
        ensure!(
            !spec.cross_lingual.is_empty(),
            "data.train_pairs.cross_lingual: needs at least one rendering"
        );
        let text: HashMap<&str, HashMap<&str, &'a str>> = units
            .iter()
            .map(|(lang, docs)| {
                let by_id = docs.iter().map(|d| (d.id.as_str(), d.text.as_str())).collect();
                (lang.as_str(), by_id)
            })
            .collect();
        let known_kinds: Vec<&str> = {
            let mut k: Vec<&str> = links.iter().map(|l| l.kind.as_str()).collect();
            k.sort_unstable();
            k.dedup();
            k
        };
        for kind in spec.kinds {
            ensure!(
                known_kinds.contains(&kind.as_str()),
                "data.train_pairs.kinds: the data set has no links of kind {kind:?} (it has {known_kinds:?})"
            );
        }
        let pivot = units
            .get_key_value(spec.pivot)
            .map(|(l, _)| l.as_str())
            .ok_or_else(|| anyhow::anyhow!("the data set has no training text in its pivot {}", spec.pivot))?;
        let render = |lang: &'a str, unit: &str| text.get(lang).and_then(|t| t.get(unit)).copied();
        let mut entries = Vec::new();
        for lang in spec.languages {
            let lang = units
                .get_key_value(lang.as_str())
                .map(|(l, _)| l.as_str())
                .ok_or_else(|| anyhow::anyhow!("data.languages: the data set has no training text in {lang:?}"))?;
            if lang == spec.pivot {
                bail!(
                    "data.languages: {lang} is the pivot language; with data.train_pairs.design: rendered each \
                     selected language is paired within itself and across with {}",
                    spec.pivot
                );
            }
            let others: Vec<&'a str> = spec
                .languages
                .iter()
                .filter_map(|o| units.get_key_value(o.as_str()).map(|(l, _)| l.as_str()))
                .filter(|o| *o != lang && *o != spec.pivot)
                .collect();
            let mut of_lang = Vec::new();
            for link in links
                .iter()
                .filter(|l| spec.kinds.is_empty() || spec.kinds.contains(&l.kind))
            {
                let pair = |ql: &'a str, pl: &'a str| -> Option<BatchPair<'a>> {
                    Some(BatchPair {
                        id: &link.id,
                        query_lang: ql,
                        passage_lang: pl,
                        query: render(ql, &link.query)?,
                        passage: render(pl, &link.passage)?,
                    })
                };
                let Some(within) = pair(lang, lang) else { continue };
                let mut across = Vec::new();
                let mut complete = true;
                for way in spec.cross_lingual {
                    let rendered: Vec<BatchPair<'a>> = match way {
                        CrossLingual::LrEn => pair(lang, pivot).into_iter().collect(),
                        CrossLingual::EnLr => pair(pivot, lang).into_iter().collect(),
                        CrossLingual::LrLr => others.iter().filter_map(|o| pair(lang, o)).collect(),
                    };
                    complete &= !rendered.is_empty();
                    across.extend(rendered);
                }
                if complete {
                    of_lang.push(PoolEntry {
                        link,
                        lang,
                        within,
                        across,
                        negatives: Vec::new(),
                    });
                }
            }
            ensure!(
                !of_lang.is_empty(),
                "data.languages: no link{} can be rendered both within {lang} and as {:?}",
                if spec.kinds.is_empty() {
                    String::new()
                } else {
                    format!(" of kinds {:?}", spec.kinds)
                },
                spec.cross_lingual
            );
            if let Some(cap) = spec.max_per_language {
                let keep =
                    clirlab_util::sample::fixed_sample(of_lang.len(), cap, label_seed(&["max_train_pairs", lang]));
                of_lang = keep.into_iter().map(|i| of_lang[i].clone()).collect();
            }
            entries.extend(of_lang);
        }
        Ok(Self { entries, text })
    }

    /// Gives each entry the hard-negative passage units `negatives` lists for its link id (best
    /// first); units without any rendering are skipped.
    pub fn set_negatives(&mut self, negatives: &HashMap<String, Vec<String>>) {
        let known: HashMap<&str, &'a str> = self
            .text
            .values()
            .flat_map(|by_unit| by_unit.keys().map(|k| (*k, *k)))
            .collect();
        for entry in &mut self.entries {
            entry.negatives = negatives
                .get(entry.link.id.as_str())
                .into_iter()
                .flatten()
                .filter_map(|unit| known.get(unit.as_str()).copied())
                .collect();
        }
    }

    /// The rendering of `unit` in `lang`, if the data set has one.
    pub fn render(&self, lang: &str, unit: &str) -> Option<&'a str> {
        self.text.get(lang).and_then(|t| t.get(unit)).copied()
    }

    /// The entries, in a fixed order.
    pub fn entries(&self) -> &[PoolEntry<'a>] {
        &self.entries
    }

    /// How many entries the pool has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the pool is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Draws the batches of the rendered design (see the module docs).
pub struct RenderedSampler<'a> {
    pool: RenderedPool<'a>,
    plan: BatchPlan,
    /// Draws the pool entries: the same sequence whatever the schedule.
    picks: ChaCha8Rng,
    /// Draws how many pairs are cross-lingual, and which cross-lingual rendering each gets.
    renderings: ChaCha8Rng,
    /// Hard negatives per pair (0: in-batch negatives only).
    hard_negatives: usize,
}

impl<'a> RenderedSampler<'a> {
    /// A sampler over `pool`, seeded with `seed`.
    pub fn new(pool: RenderedPool<'a>, plan: BatchPlan, seed: u64) -> Result<Self> {
        plan.check()?;
        let passages: HashSet<&str> = pool.entries.iter().map(|e| e.link.passage.as_str()).collect();
        ensure!(
            passages.len() >= plan.batch_size,
            "only {} distinct training passages for a batch size of {}",
            passages.len(),
            plan.batch_size
        );
        Ok(Self {
            pool,
            plan,
            picks: ChaCha8Rng::seed_from_u64(seed),
            // A second stream, so that the renderings never shift the draw of pairs.
            renderings: ChaCha8Rng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15),
            hard_negatives: 0,
        })
    }

    /// Adds up to `k` hard negatives per pair to every batch, from the pool's mined negatives
    /// ([`RenderedPool::set_negatives`]): the first ones, in the order mined, that render in the
    /// language of the pair's passage and are neither a passage of the batch nor taken already
    /// (either would put one text in two columns of the loss).
    pub fn with_hard_negatives(mut self, k: usize) -> Self {
        self.hard_negatives = k;
        self
    }

    /// Indices of the pool entries of the next batch, in batch order (no passage unit twice).
    fn picks(&mut self) -> Vec<usize> {
        let entries = &self.pool.entries;
        let order = index::sample(&mut self.picks, entries.len(), entries.len());
        let mut passages: HashSet<&str> = HashSet::new();
        let mut picked = Vec::with_capacity(self.plan.batch_size);
        for i in order {
            if picked.len() == self.plan.batch_size {
                break;
            }
            // Two renderings of one passage would make each other's false negative.
            if passages.insert(entries[i].link.passage.as_str()) {
                picked.push(i);
            }
        }
        picked
    }

    /// The batch of step `step` (0-based). Calls must come in step order for reproducibility.
    pub fn batch(&mut self, step: usize) -> Result<Batch<'a>> {
        let p = self.plan.share_at(step)?;
        let n_cross = self.plan.cross_count(&mut self.renderings, p);
        let picked = self.picks();
        let n_cross = n_cross.min(picked.len());
        let pairs: Vec<BatchPair<'a>> = picked
            .iter()
            .enumerate()
            .map(|(i, &entry)| {
                let e = &self.pool.entries[entry];
                if i < n_cross {
                    e.across[self.renderings.gen_range(0..e.across.len())]
                } else {
                    e.within
                }
            })
            .collect();
        let mut negatives = Vec::new();
        if self.hard_negatives > 0 {
            let mut taken: HashSet<&str> = picked
                .iter()
                .map(|&i| self.pool.entries[i].link.passage.as_str())
                .collect();
            for (pair, &entry) in pairs.iter().zip(&picked) {
                let mut added = 0;
                for &unit in &self.pool.entries[entry].negatives {
                    if added == self.hard_negatives {
                        break;
                    }
                    if let Some(text) = self.pool.render(pair.passage_lang, unit)
                        && taken.insert(unit)
                    {
                        negatives.push(text);
                        added += 1;
                    }
                }
            }
        }
        Ok(Batch {
            pairs,
            target_share: p,
            cross_lingual: n_cross,
            negatives,
        })
    }
}

/// A seed named by labels: the same on every machine, for every cell and training seed.
fn label_seed(labels: &[&str]) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(labels.join("\u{1f}").as_bytes());
    u64::from_le_bytes(digest[..8].try_into().expect("a SHA-256 digest has 32 bytes"))
}

/// The sampler of a cell, in either design.
pub enum PairSampler<'a> {
    /// The rendered design.
    Rendered(Box<RenderedSampler<'a>>),
    /// The translation-vs-English design.
    TranslationVsEnglish(Box<HybridSampler<'a>>),
}

impl<'a> PairSampler<'a> {
    /// The batch of step `step` (0-based). Calls must come in step order for reproducibility.
    pub fn batch(&mut self, step: usize) -> Result<Batch<'a>> {
        match self {
            PairSampler::Rendered(s) => s.batch(step),
            PairSampler::TranslationVsEnglish(s) => s.batch(step),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn pairs(prefix: &str, n: usize) -> Vec<Pair> {
        (0..n)
            .map(|i| Pair {
                id: format!("{prefix}{i}"),
                query: format!("q{i}"),
                passage: format!("{prefix}-p{i}"),
            })
            .collect()
    }

    fn plan(schedule: Schedule, mixing: Mixing, batch_size: usize, steps: usize) -> BatchPlan {
        BatchPlan {
            schedule,
            mixing,
            batch_size,
            steps,
        }
    }

    fn sampler<'a>(mono: &'a [Pair], cross: &'a [Pair], s: Schedule, m: Mixing, seed: u64) -> HybridSampler<'a> {
        let cross = cross.iter().map(|p| ("sx", p)).collect();
        HybridSampler::new(mono.iter().collect(), cross, "en", plan(s, m, 16, 200), seed).unwrap()
    }

    #[test]
    fn sample_mixing_tracks_the_schedule() {
        let (mono, cross) = (pairs("m", 300), pairs("x", 300));
        let mut s = sampler(
            &mono,
            &cross,
            Schedule::Linear { start: 0.0, end: 1.0 },
            Mixing::Sample,
            1,
        );
        let first = s.batch(0).unwrap();
        assert_eq!(first.cross_lingual, 0);
        let mut total = 0.0;
        for step in 1..199 {
            let b = s.batch(step).unwrap();
            assert_eq!(b.pairs.len(), 16);
            // Stochastic rounding: never more than one pair away from the target.
            assert!((b.cross_lingual as f64 - b.target_share * 16.0).abs() < 1.0);
            assert!(b.pairs[..b.cross_lingual].iter().all(|p| p.id.starts_with('x')));
            assert!(b.pairs[b.cross_lingual..].iter().all(|p| p.id.starts_with('m')));
            total += b.cross_lingual as f64 / 16.0;
        }
        assert_eq!(s.batch(199).unwrap().cross_lingual, 16);
        assert!((total / 198.0 - 0.5).abs() < 0.02);
    }

    #[test]
    fn batch_mixing_makes_pure_batches_at_the_scheduled_rate() {
        let (mono, cross) = (pairs("m", 100), pairs("x", 100));
        let mut s = sampler(&mono, &cross, Schedule::Constant { value: 0.3 }, Mixing::Batch, 2);
        let mut cross_batches = 0;
        for step in 0..200 {
            let b = s.batch(step).unwrap();
            assert!(b.cross_lingual == 0 || b.cross_lingual == 16);
            cross_batches += usize::from(b.cross_lingual == 16);
        }
        assert!((40..=80).contains(&cross_batches), "{cross_batches} of 200");
    }

    #[test]
    fn deterministic_for_a_seed() {
        let (mono, cross) = (pairs("m", 100), pairs("x", 100));
        let ids = |seed| {
            let mut s = sampler(&mono, &cross, Schedule::Constant { value: 0.5 }, Mixing::Sample, seed);
            (0..20)
                .flat_map(|i| s.batch(i).unwrap().pairs.into_iter().map(|p| p.id.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(5), ids(5));
        assert_ne!(ids(5), ids(6));
    }

    #[test]
    fn no_passage_repeats_within_a_batch() {
        let mono = pairs("m", 40);
        // Cross-lingual pairs whose passages are the monolingual ones (as with real bitext).
        let cross: Vec<Pair> = mono
            .iter()
            .map(|p| Pair {
                id: format!("x{}", p.id),
                ..p.clone()
            })
            .collect();
        let mut s = sampler(&mono, &cross, Schedule::Constant { value: 0.5 }, Mixing::Sample, 3);
        for step in 0..50 {
            let b = s.batch(step).unwrap();
            let unique: HashSet<&str> = b.pairs.iter().map(|p| p.passage).collect();
            assert_eq!(unique.len(), b.pairs.len());
        }
    }

    #[test]
    fn rejects_unusable_inputs() {
        let mono = pairs("m", 4);
        let constant = Schedule::Constant { value: 0.5 };
        let err = HybridSampler::new(
            mono.iter().collect(),
            vec![],
            "en",
            plan(constant.clone(), Mixing::Sample, 2, 10),
            0,
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("no cross-lingual"));
        let cross = pairs("x", 4);
        let cross = cross.iter().map(|p| ("sx", p)).collect();
        let err = HybridSampler::new(
            mono.iter().collect(),
            cross,
            "en",
            plan(constant, Mixing::Sample, 8, 10),
            0,
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("batch size of 8"));
    }

    /// Verses 0..n linked in a chain (i, i+1), rendered in English and, when `langs` says so,
    /// in each language; unit `i` of language `l` reads "l:i".
    fn linked(n: usize, langs: &[&str]) -> (Vec<Link>, BTreeMap<String, Vec<Doc>>) {
        let links = (0..n - 1)
            .map(|i| Link {
                id: format!("xref:{i}+{}", i + 1),
                kind: if i % 5 == 0 { "other" } else { "crossref" }.into(),
                query: format!("u{i}"),
                passage: format!("u{}", i + 1),
            })
            .collect();
        let units = std::iter::once("en")
            .chain(langs.iter().copied())
            .map(|lang| {
                let docs = (0..n)
                    .map(|i| Doc {
                        id: format!("u{i}"),
                        text: format!("{lang}:{i}"),
                    })
                    .collect();
                (lang.to_string(), docs)
            })
            .collect();
        (links, units)
    }

    const LANGS: [&str; 2] = ["sw", "tl"];

    fn spec<'a>(languages: &'a [String], cross_lingual: &'a [CrossLingual]) -> PoolSpec<'a> {
        PoolSpec {
            languages,
            pivot: "en",
            kinds: &[],
            cross_lingual,
            max_per_language: None,
        }
    }

    fn rendered<'a>(pool: RenderedPool<'a>, schedule: Schedule, mixing: Mixing, seed: u64) -> RenderedSampler<'a> {
        RenderedSampler::new(pool, plan(schedule, mixing, 16, 100), seed).unwrap()
    }

    /// The relevance pairs (link id, language of the query side's X) a run draws.
    fn drawn(s: &mut RenderedSampler, steps: usize) -> Vec<(String, String)> {
        (0..steps)
            .flat_map(|step| {
                let b = s.batch(step).unwrap();
                b.pairs
                    .iter()
                    .map(|p| (p.id.to_string(), p.query_lang.to_string()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn every_schedule_draws_the_same_relevance_pairs() {
        let (links, units) = linked(300, &LANGS);
        let languages: Vec<String> = LANGS.iter().map(|l| l.to_string()).collect();
        let ways = [CrossLingual::LrEn];
        let run = |schedule: Schedule, mixing: Mixing| {
            let pool = RenderedPool::new(&links, &units, &spec(&languages, &ways)).unwrap();
            drawn(&mut rendered(pool, schedule, mixing, 7), 100)
        };
        let none = run(Schedule::Constant { value: 0.0 }, Mixing::Sample);
        let all = run(Schedule::Constant { value: 1.0 }, Mixing::Sample);
        let linear = run(Schedule::Linear { start: 0.0, end: 1.0 }, Mixing::Batch);
        // Same seed: the same links in the same languages, in the same order; only the
        // languages of the passage side differ.
        assert_eq!(none, all);
        assert_eq!(none, linear);
        let ids: BTreeSet<&str> = none.iter().map(|(id, _)| id.as_str()).collect();
        assert!(ids.len() > 250, "the draws cover the pool: {}", ids.len());
    }

    #[test]
    fn share_zero_stays_within_languages_and_share_one_goes_across() {
        let (links, units) = linked(300, &LANGS);
        let languages: Vec<String> = LANGS.iter().map(|l| l.to_string()).collect();
        let ways = [CrossLingual::LrEn, CrossLingual::EnLr, CrossLingual::LrLr];
        let pool = || RenderedPool::new(&links, &units, &spec(&languages, &ways)).unwrap();
        let mut within = rendered(pool(), Schedule::Constant { value: 0.0 }, Mixing::Sample, 1);
        let mut across = rendered(pool(), Schedule::Constant { value: 1.0 }, Mixing::Sample, 1);
        let mut ways_seen = BTreeSet::new();
        for step in 0..50 {
            let (w, a) = (within.batch(step).unwrap(), across.batch(step).unwrap());
            assert_eq!(w.cross_lingual, 0);
            assert_eq!(a.cross_lingual, 16);
            for p in &w.pairs {
                // No English-only pair: English is not a selected language.
                assert!(LANGS.contains(&p.query_lang) && p.query_lang == p.passage_lang, "{p:?}");
            }
            for p in &a.pairs {
                assert_ne!(p.query_lang, p.passage_lang, "{p:?}");
                ways_seen.insert((p.query_lang == "en", p.passage_lang == "en"));
            }
            for p in w.pairs.iter().chain(&a.pairs) {
                // A pair's two sides render the two linked units.
                let link = links.iter().find(|l| l.id == p.id).unwrap();
                assert_eq!(p.query, format!("{}:{}", p.query_lang, &link.query[1..]));
                assert_eq!(p.passage, format!("{}:{}", p.passage_lang, &link.passage[1..]));
            }
        }
        // Query in X with English passage, English query with passage in X, and X with Z.
        assert_eq!(ways_seen.len(), 3, "{ways_seen:?}");
    }

    #[test]
    fn the_pool_keeps_only_links_renderable_every_way() {
        let (links, mut units) = linked(40, &LANGS);
        // Unit 7 has no Tagalog rendering: links 6+7 and 7+8 leave tl's pool, not sw's.
        units.get_mut("tl").unwrap().retain(|u| u.id != "u7");
        let languages: Vec<String> = LANGS.iter().map(|l| l.to_string()).collect();
        let kinds = ["crossref".to_string()];
        let ways = [CrossLingual::LrEn];
        let spec = PoolSpec {
            kinds: &kinds,
            ..spec(&languages, &ways)
        };
        let pool = RenderedPool::new(&links, &units, &spec).unwrap();
        let of = |lang: &str| pool.entries().iter().filter(|e| e.lang == lang).count();
        let crossref = links.iter().filter(|l| l.kind == "crossref").count();
        assert_eq!(of("sw"), crossref);
        assert_eq!(of("tl"), crossref - 2);
        assert!(pool.entries().iter().all(|e| e.link.kind == "crossref"));
        let capped = RenderedPool::new(
            &links,
            &units,
            &PoolSpec {
                max_per_language: Some(10),
                ..spec.clone()
            },
        )
        .unwrap();
        assert_eq!(capped.len(), 20);
        let again = RenderedPool::new(
            &links,
            &units,
            &PoolSpec {
                max_per_language: Some(10),
                ..spec
            },
        )
        .unwrap();
        let ids = |p: &RenderedPool| p.entries().iter().map(|e| e.link.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&capped), ids(&again), "the cap is a fixed sample");
    }

    #[test]
    fn hard_negatives_render_in_the_passage_language_and_never_repeat_a_batch_passage() {
        let (links, units) = linked(300, &["sw"]);
        let languages = vec!["sw".to_string()];
        let ways = [CrossLingual::LrEn];
        let mut pool = RenderedPool::new(&links, &units, &spec(&languages, &ways)).unwrap();
        // Every link's negatives: the ten units after its passage.
        let mined: HashMap<String, Vec<String>> = links
            .iter()
            .map(|l| {
                let next: usize = l.passage[1..].parse().unwrap();
                (
                    l.id.clone(),
                    (next + 1..next + 11).map(|u| format!("u{}", u % 300)).collect(),
                )
            })
            .collect();
        pool.set_negatives(&mined);
        let mut sampler = rendered(pool, Schedule::Constant { value: 0.5 }, Mixing::Sample, 3).with_hard_negatives(2);
        let (mut found, mut wanted) = (0, 0);
        for step in 0..20 {
            let batch = sampler.batch(step).unwrap();
            // Up to 2 per pair: a candidate that is a passage of the batch or taken is skipped.
            assert!(batch.negatives.len() <= 2 * batch.pairs.len(), "step {step}");
            found += batch.negatives.len();
            wanted += 2 * batch.pairs.len();
            let passages: HashSet<&str> = batch.pairs.iter().map(|p| p.passage).collect();
            let mut seen = HashSet::new();
            for n in &batch.negatives {
                assert!(!passages.contains(n) && seen.insert(*n), "{n} twice in step {step}");
            }
            // The first pair's negatives are in its passage's language.
            let lang = batch.pairs[0].passage_lang;
            assert!(batch.negatives[0].starts_with(&format!("{lang}:")));
        }
        assert!(found * 100 >= wanted * 95, "{found} of {wanted}");
    }

    #[test]
    fn the_rendered_pool_rejects_what_it_cannot_render() {
        let (links, units) = linked(40, &LANGS);
        let ways = [CrossLingual::LrEn];
        let err = |languages: &[&str], kinds: &[&str], ways: &[CrossLingual]| {
            let languages: Vec<String> = languages.iter().map(|l| l.to_string()).collect();
            let kinds: Vec<String> = kinds.iter().map(|l| l.to_string()).collect();
            let spec = PoolSpec {
                kinds: &kinds,
                ..spec(&languages, ways)
            };
            format!("{:#}", RenderedPool::new(&links, &units, &spec).err().unwrap())
        };
        assert!(err(&["ny"], &[], &ways).contains("no training text in \"ny\""));
        assert!(err(&["en"], &[], &ways).contains("pivot"));
        assert!(err(&["sw"], &["paraphrase"], &ways).contains("no links of kind \"paraphrase\""));
        // lr_lr needs a second selected language.
        assert!(err(&["sw"], &[], &[CrossLingual::LrLr]).contains("no link can be rendered"));
        let none = RenderedPool::new(&[], &units, &spec(&[], &ways)).err().unwrap();
        assert!(none.to_string().contains("translation_vs_english"));
    }
}
