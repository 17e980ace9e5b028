//! Measure selection: trec_eval names, `-m` syntax, groups, and the column plan of an evaluation.

use crate::error::{Error, Result};

/// A trec_eval measure, or a family of measures over cut-offs. Variants are listed in trec_eval's
/// output order, which is also the order of an [`Evaluation`](super::Evaluation)'s lines.
#[derive(Debug, Clone, PartialEq)]
pub enum Measure {
    /// `runid`: the run's name (summary line only).
    Runid,
    /// `num_q`: number of topics averaged over (summary line only).
    NumQ,
    /// `num_ret`: documents retrieved (summary: total).
    NumRet,
    /// `num_rel`: relevant documents judged (summary: total).
    NumRel,
    /// `num_rel_ret`: relevant documents retrieved (summary: total).
    NumRelRet,
    /// `map`: average precision.
    Map,
    /// `gm_map`: geometric mean of average precision, each clamped below at 1e-5 (summary only).
    GmMap,
    /// `Rprec`: precision after R documents, R = number of relevant documents.
    Rprec,
    /// `bpref`: binary preference.
    Bpref,
    /// `recip_rank`: reciprocal rank of the first relevant document.
    RecipRank,
    /// `iprec_at_recall_x`: interpolated precision at recall levels x in [0, 1].
    IprecAtRecall(Vec<f64>),
    /// `P_k`: precision at k.
    P(Vec<usize>),
    /// `recall_k`: recall at k.
    Recall(Vec<usize>),
    /// `ndcg`: nDCG over the whole ranking, gain = relevance grade.
    Ndcg,
    /// `ndcg_cut_k`: nDCG at k, gain = relevance grade.
    NdcgCut(Vec<usize>),
    /// `map_cut_k`: average precision of the top k.
    MapCut(Vec<usize>),
    /// `success_k`: 1 if a relevant document is in the top k.
    Success(Vec<usize>),
    /// `set_P`: precision of the whole retrieved set.
    SetP,
    /// `set_recall`: recall of the whole retrieved set.
    SetRecall,
    /// `set_F`: F1 of the whole retrieved set.
    SetF,
}

/// trec_eval's default cut-offs for P, recall, ndcg_cut and map_cut.
pub const DEFAULT_CUTOFFS: [usize; 9] = [5, 10, 15, 20, 30, 100, 200, 500, 1000];
/// trec_eval's default cut-offs for success.
pub const DEFAULT_SUCCESS_CUTOFFS: [usize; 3] = [1, 5, 10];
/// trec_eval's default recall levels for iprec_at_recall.
pub const DEFAULT_RECALL_LEVELS: [f64; 11] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];

/// Measures of trec_eval's `all_trec` group that this module does not compute; named in errors.
const NOT_IMPLEMENTED: [&str; 14] = [
    "relstring",
    "infAP",
    "gm_bpref",
    "Rprec_mult",
    "utility",
    "11pt_avg",
    "binG",
    "G",
    "ndcg_rel",
    "Rndcg",
    "relative_P",
    "set_relative_P",
    "set_map",
    "num_nonrel_judged_ret",
];

/// Parameters given to one family on the command line.
enum Params {
    Cutoffs(Vec<usize>),
    Levels(Vec<f64>),
}

impl Measure {
    /// Position in trec_eval's measure table.
    fn order(&self) -> usize {
        match self {
            Measure::Runid => 0,
            Measure::NumQ => 1,
            Measure::NumRet => 2,
            Measure::NumRel => 3,
            Measure::NumRelRet => 4,
            Measure::Map => 5,
            Measure::GmMap => 6,
            Measure::Rprec => 7,
            Measure::Bpref => 8,
            Measure::RecipRank => 9,
            Measure::IprecAtRecall(_) => 10,
            Measure::P(_) => 11,
            Measure::Recall(_) => 12,
            Measure::Ndcg => 13,
            Measure::NdcgCut(_) => 14,
            Measure::MapCut(_) => 15,
            Measure::Success(_) => 16,
            Measure::SetP => 17,
            Measure::SetRecall => 18,
            Measure::SetF => 19,
        }
    }

    /// The measure called `name` (no parameters), with trec_eval's default cut-offs.
    fn named(name: &str) -> Option<Measure> {
        Some(match name {
            "runid" => Measure::Runid,
            "num_q" => Measure::NumQ,
            "num_ret" => Measure::NumRet,
            "num_rel" => Measure::NumRel,
            "num_rel_ret" => Measure::NumRelRet,
            "map" => Measure::Map,
            "gm_map" => Measure::GmMap,
            "Rprec" => Measure::Rprec,
            "bpref" => Measure::Bpref,
            "recip_rank" => Measure::RecipRank,
            "iprec_at_recall" => Measure::IprecAtRecall(DEFAULT_RECALL_LEVELS.to_vec()),
            "P" => Measure::P(DEFAULT_CUTOFFS.to_vec()),
            "recall" => Measure::Recall(DEFAULT_CUTOFFS.to_vec()),
            "ndcg" => Measure::Ndcg,
            "ndcg_cut" => Measure::NdcgCut(DEFAULT_CUTOFFS.to_vec()),
            "map_cut" => Measure::MapCut(DEFAULT_CUTOFFS.to_vec()),
            "success" => Measure::Success(DEFAULT_SUCCESS_CUTOFFS.to_vec()),
            "set_P" => Measure::SetP,
            "set_recall" => Measure::SetRecall,
            "set_F" => Measure::SetF,
            _ => return None,
        })
    }

    /// Replaces the default parameters of a family with `params`.
    fn with_params(self, params: Params) -> Result<Measure, String> {
        Ok(match (self, params) {
            (Measure::IprecAtRecall(_), Params::Levels(l)) => Measure::IprecAtRecall(l),
            (Measure::P(_), Params::Cutoffs(c)) => Measure::P(c),
            (Measure::Recall(_), Params::Cutoffs(c)) => Measure::Recall(c),
            (Measure::NdcgCut(_), Params::Cutoffs(c)) => Measure::NdcgCut(c),
            (Measure::MapCut(_), Params::Cutoffs(c)) => Measure::MapCut(c),
            (Measure::Success(_), Params::Cutoffs(c)) => Measure::Success(c),
            _ => return Err("this measure takes no parameters".into()),
        })
    }

    /// Merges `other` (same family) into `self`: the union of their cut-offs.
    fn absorb(&mut self, other: Measure) {
        match (self, other) {
            (Measure::IprecAtRecall(a), Measure::IprecAtRecall(b)) => a.extend(b),
            (Measure::P(a), Measure::P(b))
            | (Measure::Recall(a), Measure::Recall(b))
            | (Measure::NdcgCut(a), Measure::NdcgCut(b))
            | (Measure::MapCut(a), Measure::MapCut(b))
            | (Measure::Success(a), Measure::Success(b)) => a.extend(b),
            _ => {}
        }
    }
}

/// trec_eval's `official` group (its default measures).
pub fn official() -> Vec<Measure> {
    OFFICIAL.into_iter().filter_map(Measure::named).collect()
}

/// trec_eval's `all_trec` group, restricted to the measures implemented here.
pub fn all_trec() -> Vec<Measure> {
    ALL_TREC.into_iter().filter_map(Measure::named).collect()
}

const OFFICIAL: [&str; 12] = [
    "runid",
    "num_q",
    "num_ret",
    "num_rel",
    "num_rel_ret",
    "map",
    "gm_map",
    "Rprec",
    "bpref",
    "recip_rank",
    "iprec_at_recall",
    "P",
];

const ALL_TREC: [&str; 20] = [
    "runid",
    "num_q",
    "num_ret",
    "num_rel",
    "num_rel_ret",
    "map",
    "gm_map",
    "Rprec",
    "bpref",
    "recip_rank",
    "iprec_at_recall",
    "P",
    "recall",
    "ndcg",
    "ndcg_cut",
    "map_cut",
    "success",
    "set_P",
    "set_recall",
    "set_F",
];

/// Parses measure specifications as trec_eval's `-m` takes them: a name (`map`), a family with
/// cut-offs (`P.5,10`, `ndcg_cut.10`, `iprec_at_recall.0.5,1`), or a group (`official`,
/// `all_trec`). Returns the canonical list: trec_eval's order, one entry per family, cut-offs
/// ascending. A family named without parameters gets trec_eval's defaults unless parameters are
/// given for it elsewhere in `specs`; several parameter lists for one family are merged (trec_eval
/// keeps only the first).
pub fn parse_measures<S: AsRef<str>>(specs: &[S]) -> Result<Vec<Measure>> {
    let mut defaults = Vec::new();
    let mut explicit = Vec::new();
    for spec in specs {
        let spec = spec.as_ref();
        let (name, params) = match spec.split_once('.') {
            Some((name, params)) => (name, Some(params)),
            None => (spec, None),
        };
        match (name, params) {
            ("official", None) => defaults.extend(official()),
            ("all_trec", None) => defaults.extend(all_trec()),
            ("official" | "all_trec", Some(_)) => {
                return Err(Error::Measure(format!("measure group {name:?} takes no parameters")));
            }
            _ => {
                let Some(measure) = Measure::named(name) else {
                    if NOT_IMPLEMENTED.contains(&name) {
                        return Err(Error::Measure(format!("trec_eval measure {name:?} is not implemented")));
                    }
                    let hint = match name.rsplit_once('_') {
                        Some((family, k)) if Measure::named(family).is_some() => {
                            format!(" (did you mean {family}.{k}?)")
                        }
                        _ => String::new(),
                    };
                    return Err(Error::Measure(format!("unknown measure {spec:?}{hint}")));
                };
                match params {
                    None => defaults.push(measure),
                    Some(p) => {
                        let invalid = |reason| Error::InvalidMeasure {
                            spec: spec.to_string(),
                            reason,
                        };
                        let parsed = parse_params(&measure, p).map_err(invalid)?;
                        explicit.push(measure.with_params(parsed).map_err(invalid)?)
                    }
                }
            }
        }
    }
    // Defaults only stand in for families that have no explicit parameters.
    defaults.retain(|d| explicit.iter().all(|e| e.order() != d.order()));
    defaults.extend(explicit);
    canonicalize(&defaults)
}

fn parse_params(measure: &Measure, text: &str) -> Result<Params, String> {
    let items: Vec<&str> = text.split(',').collect();
    let params = match measure {
        Measure::IprecAtRecall(_) => Params::Levels(
            items
                .iter()
                .map(|s| {
                    s.trim()
                        .parse::<f64>()
                        .map_err(|e| format!("recall level {s:?} is not a number ({e})"))
                })
                .collect::<Result<_, _>>()?,
        ),
        Measure::P(_) | Measure::Recall(_) | Measure::NdcgCut(_) | Measure::MapCut(_) | Measure::Success(_) => {
            Params::Cutoffs(
                items
                    .iter()
                    .map(|s| {
                        s.trim()
                            .parse::<usize>()
                            .map_err(|e| format!("cut-off {s:?} is not a positive integer ({e})"))
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
        _ => return Err("this measure takes no parameters".into()),
    };
    // trec_eval rejects repeated cut-offs within one list.
    let repeated = match &params {
        Params::Cutoffs(c) => (1..c.len()).any(|i| c[..i].contains(&c[i])),
        Params::Levels(l) => (1..l.len()).any(|i| l[..i].contains(&l[i])),
    };
    if repeated {
        return Err("duplicate cut-offs".into());
    }
    Ok(params)
}

/// Merges measures of the same family, sorts cut-offs and orders families as trec_eval does;
/// rejects cut-offs of 0 and recall levels outside [0, 1].
pub(crate) fn canonicalize(measures: &[Measure]) -> Result<Vec<Measure>> {
    let mut out: Vec<Measure> = Vec::new();
    for m in measures {
        match out.iter_mut().find(|o| o.order() == m.order()) {
            Some(existing) => existing.absorb(m.clone()),
            None => out.push(m.clone()),
        }
    }
    out.sort_by_key(Measure::order);
    for m in &mut out {
        match m {
            Measure::P(c) | Measure::Recall(c) | Measure::NdcgCut(c) | Measure::MapCut(c) | Measure::Success(c) => {
                if c.contains(&0) {
                    return Err(Error::Measure(format!("cut-offs must be positive in {m:?}")));
                }
                c.sort_unstable();
                c.dedup();
            }
            Measure::IprecAtRecall(levels) => {
                if let Some(bad) = levels.iter().find(|l| !(0.0..=1.0).contains(*l)) {
                    return Err(Error::Measure(format!("recall level {bad} is outside [0, 1]")));
                }
                levels.sort_by(f64::total_cmp);
                levels.dedup();
                // Names show two decimals; levels that print alike would be indistinguishable.
                if levels
                    .windows(2)
                    .any(|w| format!("{:.2}", w[0]) == format!("{:.2}", w[1]))
                {
                    return Err(Error::Measure(format!(
                        "recall levels {levels:?} must differ in their first two decimals"
                    )));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// How a column is summarised over topics (and printed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A count: printed as an integer, summed over topics.
    Count,
    /// Printed with 4 decimals, arithmetic mean over topics.
    Mean,
    /// Geometric mean over topics, summary line only (gm_map); per-topic values are logs.
    Geometric,
}

/// What one column holds for a topic. Indices refer to [`Plan::cuts`] or [`Plan::levels`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stat {
    NumRet,
    NumRel,
    NumRelRet,
    Map,
    GmMap,
    Rprec,
    Bpref,
    RecipRank,
    Iprec(usize),
    P { cut: usize, k: usize },
    Recall(usize),
    Ndcg,
    NdcgCut(usize),
    MapCut(usize),
    Success(usize),
    SetP,
    SetRecall,
    SetF,
}

impl Stat {
    pub fn kind(self) -> Kind {
        match self {
            Stat::NumRet | Stat::NumRel | Stat::NumRelRet => Kind::Count,
            Stat::GmMap => Kind::Geometric,
            _ => Kind::Mean,
        }
    }
}

pub(crate) struct Column {
    pub name: String,
    pub stat: Stat,
}

/// The columns an evaluation computes, and what the per-topic pass must record for them.
pub(crate) struct Plan {
    pub runid: bool,
    pub num_q: bool,
    pub columns: Vec<Column>,
    /// Union of all rank cut-offs, ascending.
    pub cuts: Vec<usize>,
    /// Recall levels of iprec_at_recall, ascending.
    pub levels: Vec<f64>,
    /// Largest ndcg_cut cut-off (0 if none).
    pub max_ndcg_cut: usize,
    pub ndcg: bool,
}

impl Plan {
    pub fn new(measures: &[Measure]) -> Result<Plan> {
        let measures = canonicalize(measures)?;
        let mut cuts: Vec<usize> = measures
            .iter()
            .flat_map(|m| match m {
                Measure::P(c) | Measure::Recall(c) | Measure::NdcgCut(c) | Measure::MapCut(c) | Measure::Success(c) => {
                    c.as_slice()
                }
                _ => &[],
            })
            .copied()
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let cut = |k: &usize| cuts.binary_search(k).expect("cut-off collected above");
        let mut plan = Plan {
            runid: false,
            num_q: false,
            columns: Vec::new(),
            cuts: Vec::new(),
            levels: Vec::new(),
            max_ndcg_cut: 0,
            ndcg: false,
        };
        let columns = &mut plan.columns;
        let mut add = |name: String, stat: Stat| columns.push(Column { name, stat });
        for m in &measures {
            match m {
                Measure::Runid => plan.runid = true,
                Measure::NumQ => plan.num_q = true,
                Measure::NumRet => add("num_ret".into(), Stat::NumRet),
                Measure::NumRel => add("num_rel".into(), Stat::NumRel),
                Measure::NumRelRet => add("num_rel_ret".into(), Stat::NumRelRet),
                Measure::Map => add("map".into(), Stat::Map),
                Measure::GmMap => add("gm_map".into(), Stat::GmMap),
                Measure::Rprec => add("Rprec".into(), Stat::Rprec),
                Measure::Bpref => add("bpref".into(), Stat::Bpref),
                Measure::RecipRank => add("recip_rank".into(), Stat::RecipRank),
                Measure::IprecAtRecall(levels) => {
                    for (i, level) in levels.iter().enumerate() {
                        add(format!("iprec_at_recall_{level:.2}"), Stat::Iprec(i));
                    }
                    plan.levels.clone_from(levels);
                }
                Measure::P(c) => c
                    .iter()
                    .for_each(|k| add(format!("P_{k}"), Stat::P { cut: cut(k), k: *k })),
                Measure::Recall(c) => c.iter().for_each(|k| add(format!("recall_{k}"), Stat::Recall(cut(k)))),
                Measure::Ndcg => {
                    plan.ndcg = true;
                    add("ndcg".into(), Stat::Ndcg);
                }
                Measure::NdcgCut(c) => {
                    plan.max_ndcg_cut = c.iter().copied().max().unwrap_or(0);
                    c.iter()
                        .for_each(|k| add(format!("ndcg_cut_{k}"), Stat::NdcgCut(cut(k))));
                }
                Measure::MapCut(c) => c.iter().for_each(|k| add(format!("map_cut_{k}"), Stat::MapCut(cut(k)))),
                Measure::Success(c) => c
                    .iter()
                    .for_each(|k| add(format!("success_{k}"), Stat::Success(cut(k)))),
                Measure::SetP => add("set_P".into(), Stat::SetP),
                Measure::SetRecall => add("set_recall".into(), Stat::SetRecall),
                Measure::SetF => add("set_F".into(), Stat::SetF),
            }
        }
        plan.cuts = cuts;
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(specs: &[&str]) -> Vec<String> {
        let plan = Plan::new(&parse_measures(specs).unwrap()).unwrap();
        let mut out: Vec<String> = Vec::new();
        if plan.runid {
            out.push("runid".into());
        }
        if plan.num_q {
            out.push("num_q".into());
        }
        out.extend(plan.columns.iter().map(|c| c.name.clone()));
        out
    }

    #[test]
    fn cutoff_syntax_and_order_follow_trec_eval() {
        assert_eq!(names(&["P.10,5", "map"]), ["map", "P_5", "P_10"]);
        assert_eq!(names(&["ndcg_cut.10,20"]), ["ndcg_cut_10", "ndcg_cut_20"]);
        assert_eq!(
            names(&["iprec_at_recall.0.5,1"]),
            ["iprec_at_recall_0.50", "iprec_at_recall_1.00"]
        );
        assert_eq!(
            names(&["success", "recip_rank"]),
            ["recip_rank", "success_1", "success_5", "success_10"]
        );
    }

    #[test]
    fn explicit_parameters_replace_group_defaults_and_merge() {
        let mut expected = names(&["official"]);
        expected.truncate(expected.len() - DEFAULT_CUTOFFS.len());
        expected.push("P_5".into());
        assert_eq!(names(&["official", "P.5"]), expected);
        assert_eq!(names(&["P.5", "P.10", "P"]), ["P_5", "P_10"]);
    }

    #[test]
    fn groups() {
        let official = names(&["official"]);
        assert_eq!(official.len(), 10 + 11 + 9);
        assert_eq!(
            official[..6],
            ["runid", "num_q", "num_ret", "num_rel", "num_rel_ret", "map"]
        );
        let all = names(&["all_trec"]);
        assert_eq!(all.len(), 10 + 11 + 9 + 9 + 1 + 9 + 9 + 3 + 3);
        assert!(all.iter().all(|n| all.iter().filter(|m| *m == n).count() == 1));
    }

    #[test]
    fn bad_specifications_are_errors() {
        let err = |s: &str| format!("{:#}", parse_measures(&[s]).unwrap_err());
        assert!(err("P.0").contains("positive"), "{}", err("P.0"));
        assert!(err("P.5,5").contains("duplicate"), "{}", err("P.5,5"));
        assert!(err("P.x").contains("not a positive integer"), "{}", err("P.x"));
        assert!(err("map.5").contains("no parameters"), "{}", err("map.5"));
        assert!(err("official.5").contains("no parameters"), "{}", err("official.5"));
        assert!(err("infAP").contains("not implemented"), "{}", err("infAP"));
        assert!(err("P_5").contains("did you mean P.5"), "{}", err("P_5"));
        assert!(err("bogus").contains("unknown measure"), "{}", err("bogus"));
        assert!(
            err("iprec_at_recall.1.5").contains("outside"),
            "{}",
            err("iprec_at_recall.1.5")
        );
        assert!(err("iprec_at_recall.0.501,0.502").contains("two decimals"));
    }
}
