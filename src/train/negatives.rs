//! Hard negatives for the rendered design, mined once per cell before training: for each link
//! of the pool, the training passages that BM25 ranks highest for its query, both read in the
//! pivot language (the one language every link renders in), minus every passage related to
//! that query by a link in either direction (its positives).

use crate::retrieval::bm25::Bm25;
use crate::sampler::RenderedPool;
use crate::spec::schema::Bm25Params;
use std::collections::{BTreeSet, HashMap, HashSet};

/// Negatives kept per link beyond `k`, so that a batch can skip those that are another pair's
/// passage (or already taken) and still find `k`.
const SPARE: usize = 4;

/// Link id → up to `k` + [`SPARE`] passage unit ids, best first.
pub fn mine_bm25(pool: &RenderedPool, pivot: &str, k: usize) -> HashMap<String, Vec<String>> {
    let entries = pool.entries();
    // The distinct passage units with a pivot rendering, in unit order, and those renderings.
    let (passages, texts): (Vec<&str>, Vec<&str>) = entries
        .iter()
        .map(|e| e.link.passage.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter_map(|p| pool.render(pivot, p).map(|text| (p, text)))
        .unzip();
    let params = Bm25Params::default();
    let index = Bm25::new(&texts, params.k1, params.b);
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
        let mut scored = index.scores(query);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::config::CrossLingual;
    use crate::data::format::{Doc, Link};
    use crate::sampler::PoolSpec;
    use std::collections::BTreeMap;

    fn doc(id: &str, text: &str) -> Doc {
        Doc {
            id: id.into(),
            text: text.into(),
        }
    }

    #[test]
    fn the_nearest_passages_that_are_not_positives_are_mined() {
        let link = |id: &str, q: &str, p: &str| Link {
            id: id.into(),
            kind: "crossref".into(),
            query: q.into(),
            passage: p.into(),
        };
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
        let languages = vec!["sw".to_string()];
        let ways = [CrossLingual::LrEn];
        let spec = PoolSpec {
            languages: &languages,
            pivot: "en",
            kinds: &[],
            cross_lingual: &ways,
            max_per_language: None,
        };
        let pool = RenderedPool::new(&links, &units, &spec).unwrap();
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
