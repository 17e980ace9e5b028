//! Hard negatives for the rendered design, found once per cell before training: for each link
//! of the pool, the training passages ranked highest for its query, both read in the pivot
//! language (the one language every link renders in), minus every passage related to that
//! query by a link in either direction (its positives). Ranked by BM25 ([`mine_bm25`]) or by
//! the untrained backbone's embeddings ([`mine_dense`]).

use crate::retrieval::bm25::Bm25;
use crate::retrieval::embed_texts;
use crate::sampler::RenderedPool;
use crate::spec::schema::Bm25Params;
use anyhow::Result;
use clirlab_model::Embedder;
use clirlab_model::tokenizer::{Side, Tokenizer};
use std::collections::{BTreeSet, HashMap, HashSet};

/// Negatives kept per link beyond `k`, so that a batch can skip those that are another pair's
/// passage (or already taken) and still find `k`.
const SPARE: usize = 4;

/// The pool's distinct passage units with a pivot rendering, in unit order, and those texts.
fn candidates<'a>(pool: &RenderedPool<'a>, pivot: &str) -> (Vec<&'a str>, Vec<&'a str>) {
    pool.entries()
        .iter()
        .map(|e| e.link.passage.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter_map(|p| pool.render(pivot, p).map(|text| (p, text)))
        .unzip()
}

/// Link id → up to `k` + [`SPARE`] of `passages`, best first by `score` (the score of every
/// candidate it returns for a query text), never one of the query's positives or the query.
fn mine_with(
    pool: &RenderedPool,
    pivot: &str,
    passages: &[&str],
    k: usize,
    mut score: impl FnMut(&str) -> Vec<(usize, f64)>,
) -> HashMap<String, Vec<String>> {
    let entries = pool.entries();
    let mut related: HashMap<&str, HashSet<&str>> = HashMap::new();
    for e in entries {
        related.entry(&e.link.query).or_default().insert(&e.link.passage);
        related.entry(&e.link.passage).or_default().insert(&e.link.query);
    }
    let mut mined = HashMap::new();
    for e in entries {
        if mined.contains_key(e.link.id.as_str()) {
            continue;
        }
        let Some(query) = pool.render(pivot, &e.link.query) else {
            continue;
        };
        let positives = &related[e.link.query.as_str()];
        let mut scored = score(query);
        // Best first; ties by unit id, so the order never depends on the index's layout.
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| passages[a.0].cmp(passages[b.0])));
        let negatives: Vec<String> = scored
            .into_iter()
            .map(|(i, _)| passages[i])
            .filter(|p| *p != e.link.query && !positives.contains(p))
            .take(k + SPARE)
            .map(str::to_string)
            .collect();
        mined.insert(e.link.id.clone(), negatives);
    }
    mined
}

/// Link id → up to `k` + [`SPARE`] passage unit ids, best first by BM25 (passages sharing no
/// word with the query are never negatives).
pub fn mine_bm25(pool: &RenderedPool, pivot: &str, k: usize) -> HashMap<String, Vec<String>> {
    let (passages, texts) = candidates(pool, pivot);
    let params = Bm25Params::default();
    let index = Bm25::new(&texts, params.k1, params.b);
    mine_with(pool, pivot, &passages, k, |query| index.scores(query))
}

/// Link id → up to `k` + [`SPARE`] passage unit ids, best first by the cosine of `encoder`'s
/// embeddings (the query side for queries, the passage side for passages, `max_len` tokens).
pub fn mine_dense(
    pool: &RenderedPool,
    pivot: &str,
    k: usize,
    encoder: &dyn Embedder,
    tokenizer: &Tokenizer,
    max_len: usize,
) -> Result<HashMap<String, Vec<String>>> {
    let (passages, texts) = candidates(pool, pivot);
    let dim = encoder.dim();
    let docs = embed_texts(encoder, tokenizer, &texts, Side::Passage, max_len)?;
    let queries: Vec<&str> = pool
        .entries()
        .iter()
        .filter_map(|e| pool.render(pivot, &e.link.query))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let embedded = embed_texts(encoder, tokenizer, &queries, Side::Query, max_len)?;
    let rows: HashMap<&str, &[f32]> = queries.iter().copied().zip(embedded.chunks(dim)).collect();
    Ok(mine_with(pool, pivot, &passages, k, |query| {
        let scores = clirlab_model::kernels::blas::product_transposed(rows[query], &docs, dim);
        scores.into_iter().map(f64::from).enumerate().collect()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::PoolSpec;
    use clirlab_data::config::CrossLingual;
    use clirlab_data::format::{Doc, Link};
    use std::collections::BTreeMap;

    fn doc(id: &str, text: &str) -> Doc {
        Doc {
            id: id.into(),
            text: text.into(),
        }
    }

    fn link(id: &str, q: &str, p: &str) -> Link {
        Link {
            id: id.into(),
            kind: "crossref".into(),
            query: q.into(),
            passage: p.into(),
        }
    }

    /// The Swahili pool of `links` (pivot English), every way X-Y.
    fn pool<'a>(links: &'a [Link], units: &'a BTreeMap<String, Vec<Doc>>) -> RenderedPool<'a> {
        let languages = vec!["sw".to_string()];
        let spec = PoolSpec {
            languages: &languages,
            pivot: "en",
            kinds: &[],
            cross_lingual: &[CrossLingual::LrEn],
            max_per_language: None,
        };
        RenderedPool::new(links, units, &spec).unwrap()
    }

    #[test]
    fn the_untrained_model_mines_its_nearest_passages_and_never_a_positive() {
        let links = vec![link("a", "u1", "u2"), link("b", "u3", "u4"), link("c", "u5", "u6")];
        let en: Vec<Doc> = (1..=6)
            .map(|i| doc(&format!("u{i}"), &format!("text number {i} of six")))
            .collect();
        let units = BTreeMap::from([("en".to_string(), en.clone()), ("sw".to_string(), en)]);
        let pool = pool(&links, &units);
        let texts: Vec<&str> = units["en"].iter().map(|d| d.text.as_str()).collect();
        let tokenizer = Tokenizer::train(texts.into_iter(), 64).unwrap();
        let settings = clirlab_model::OptimizerSettings {
            kind: clirlab_model::OptimizerKind::Adamw,
            lr: 1e-3,
            weight_decay: 0.0,
        };
        let encoder = clirlab_model::build(
            clirlab_model::Preset::Tiny,
            3,
            settings,
            clirlab_model::ResolvedDevice::Cpu,
        )
        .unwrap();
        let mined = mine_dense(&pool, "en", 1, encoder.as_ref(), &tokenizer, 16).unwrap();
        // Every passage but the positive is a candidate: two of them, best first.
        assert_eq!(mined["a"].len(), 2, "{mined:?}");
        assert!(!mined["a"].contains(&"u2".to_string()) && !mined["a"].contains(&"u1".to_string()));
        assert!(mined["a"].iter().all(|u| u == "u4" || u == "u6"));
        assert_eq!(
            mined,
            mine_dense(&pool, "en", 1, encoder.as_ref(), &tokenizer, 16).unwrap()
        );
    }

    #[test]
    fn the_nearest_passages_that_are_not_positives_are_mined() {
        // u1 → u2 and u1 → u3 (both positives of u1), u4 → u5, u6 → u7.
        let links = vec![
            link("a", "u1", "u2"),
            link("b", "u1", "u3"),
            link("c", "u4", "u5"),
            link("d", "u6", "u7"),
        ];
        let en = vec![
            doc("u1", "river boat water"),
            doc("u2", "a boat on the river"),
            doc("u3", "water of the river"),
            doc("u4", "bread and fire"),
            doc("u5", "boat river water bread"),
            doc("u6", "school road"),
            doc("u7", "road to school"),
        ];
        let sw: Vec<Doc> = en.iter().map(|d| doc(&d.id, &format!("sw {}", d.text))).collect();
        let units = BTreeMap::from([("en".to_string(), en), ("sw".to_string(), sw)]);
        let pool = pool(&links, &units);
        let mined = mine_bm25(&pool, "en", 1);
        // u1's best non-positive match is u5 (boat, river, water), never u2 or u3.
        assert_eq!(mined["a"][0], "u5");
        assert!(!mined["a"].iter().any(|u| u == "u2" || u == "u3" || u == "u1"));
        assert_eq!(mined["a"], mined["b"]);
        // u4 (bread, fire) shares only "bread" with u5, its positive: nothing else matches.
        assert!(mined["c"].is_empty(), "{:?}", mined["c"]);
        assert!(!mined["d"].contains(&"u7".to_string()));
    }
}
