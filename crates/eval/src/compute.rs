//! Per-topic computation: every requested measure from one pass over the ranked relevance list.
//!
//! Follows trec_eval 9.0.8 arithmetic step by step (same sums in the same order, same divisions),
//! so that values agree beyond the printed 4 decimals and rounding ties print alike.

use super::measure::{Plan, Stat};
use super::qrels::TopicQrels;

/// trec_eval's marker for a retrieved document absent from the qrels.
pub(crate) const NONPOOL: i32 = -1;
/// trec_eval's marker for a retrieved document judged with a negative grade (pooled, unjudged).
pub(crate) const UNJUDGED: i32 = -2;

/// trec_eval clamps average precision at this value before taking logs for gm_map.
pub(crate) const MIN_GEO_MEAN: f64 = 0.00001;

/// Buffers reused across topics by one worker.
#[derive(Default)]
pub(crate) struct Scratch {
    /// Relevance of each retrieved document, in rank order.
    pub rels: Vec<i32>,
    /// (grade, count) of the positive grades judged for the topic, highest first.
    levels: Vec<(i32, u64)>,
    /// Relevant retrieved, summed precision and DCG within each cut-off of `Plan::cuts`.
    rel_at: Vec<u64>,
    ap_at: Vec<f64>,
    dcg_at: Vec<f64>,
    /// Ideal DCG within each cut-off.
    idcg_at: Vec<f64>,
    iprec: Vec<f64>,
}

/// What the judgments of a topic say, independently of any run.
struct Judged {
    num_rel: u64,
    num_nonrel: u64,
}

fn judged(qrels: TopicQrels<'_>, rel_level: i32, levels: &mut Vec<(i32, u64)>) -> Judged {
    let mut j = Judged {
        num_rel: 0,
        num_nonrel: 0,
    };
    levels.clear();
    for grade in qrels.grades() {
        if grade < 0 {
            continue;
        }
        if grade >= rel_level {
            j.num_rel += 1;
        } else {
            j.num_nonrel += 1;
        }
        if grade > 0 {
            match levels.iter_mut().find(|(g, _)| *g == grade) {
                Some((_, n)) => *n += 1,
                None => levels.push((grade, 1)),
            }
        }
    }
    levels.sort_unstable_by_key(|&(grade, _)| std::cmp::Reverse(grade));
    j
}

/// Fills `row` (one value per plan column) for a topic whose ranked relevance list is
/// `scratch.rels`.
pub(crate) fn topic_row(plan: &Plan, rel_level: i32, qrels: TopicQrels<'_>, s: &mut Scratch, row: &mut [f64]) {
    let Judged { num_rel, num_nonrel } = judged(qrels, rel_level, &mut s.levels);
    let rels = &s.rels;
    let num_ret = rels.len();
    let ncuts = plan.cuts.len();
    s.rel_at.clear();
    s.ap_at.clear();
    s.dcg_at.clear();

    let rprec_depth = num_ret.min(num_rel as usize);
    let mut rprec_rel = 0u64;
    let mut rel_so_far = 0u64;
    let mut num_rel_ret = 0u64;
    let mut ap_sum = 0.0;
    let mut dcg = 0.0;
    let mut first_rel = 0usize;
    let mut nonrel_so_far = 0u64;
    let mut bpref = 0.0;
    let bpref_denominator = num_nonrel.min(num_rel) as f64;
    for (i, &rel) in rels.iter().enumerate() {
        // Values "within cut-off k" are those before rank k+1.
        while s.rel_at.len() < ncuts && plan.cuts[s.rel_at.len()] == i {
            s.rel_at.push(rel_so_far);
            s.ap_at.push(ap_sum);
            s.dcg_at.push(dcg);
        }
        if rel >= rel_level {
            rel_so_far += 1;
            ap_sum += rel_so_far as f64 / (i + 1) as f64;
            if first_rel == 0 {
                first_rel = i + 1;
            }
        }
        if rel >= 0 && rel >= rel_level {
            num_rel_ret += 1;
        }
        if rel > 0 {
            dcg += f64::from(rel) / ((i + 2) as f64).log2();
        }
        // bpref looks at judged documents only.
        if rel != NONPOOL && rel != UNJUDGED {
            if rel >= 0 && rel < rel_level {
                nonrel_so_far += 1;
            } else if nonrel_so_far > 0 {
                bpref += 1.0 - nonrel_so_far.min(num_rel) as f64 / bpref_denominator;
            } else {
                bpref += 1.0;
            }
        }
        if i + 1 == rprec_depth {
            rprec_rel = rel_so_far;
        }
    }
    while s.rel_at.len() < ncuts {
        s.rel_at.push(rel_so_far);
        s.ap_at.push(ap_sum);
        s.dcg_at.push(dcg);
    }

    let ideal_full = ideal_dcg(plan, &s.levels, &mut s.idcg_at);
    if !plan.levels.is_empty() {
        interpolated_precision(&plan.levels, rels, rel_level, num_rel, num_rel_ret, &mut s.iprec);
    }

    let num_rel_f = num_rel as f64;
    let ap = if rel_so_far > 0 { ap_sum / num_rel_f } else { 0.0 };
    for (value, column) in row.iter_mut().zip(&plan.columns) {
        *value = match column.stat {
            Stat::NumRet => num_ret as f64,
            Stat::NumRel => num_rel_f,
            Stat::NumRelRet => num_rel_ret as f64,
            Stat::Map => ap,
            Stat::GmMap => ap.max(MIN_GEO_MEAN).ln(),
            Stat::Rprec if rprec_depth > 0 => rprec_rel as f64 / num_rel_f,
            Stat::Bpref if num_rel > 0 => bpref / num_rel_f,
            Stat::RecipRank if first_rel > 0 => 1.0 / first_rel as f64,
            Stat::Iprec(i) => s.iprec[i],
            Stat::P { cut, k } => s.rel_at[cut] as f64 / k as f64,
            Stat::Recall(cut) if num_rel > 0 => s.rel_at[cut] as f64 / num_rel_f,
            Stat::Ndcg if ideal_full > 0.0 => dcg / ideal_full,
            Stat::NdcgCut(cut) if s.idcg_at[cut] > 0.0 => s.dcg_at[cut] / s.idcg_at[cut],
            Stat::NdcgCut(cut) => s.dcg_at[cut],
            Stat::MapCut(cut) if num_rel > 0 => s.ap_at[cut] / num_rel_f,
            Stat::Success(cut) => f64::from(u8::from(s.rel_at[cut] > 0)),
            Stat::SetP if num_ret > 0 => num_rel_ret as f64 / num_ret as f64,
            Stat::SetRecall if num_rel > 0 => num_rel_ret as f64 / num_rel_f,
            Stat::SetF if num_rel_ret > 0 => {
                let p = num_rel_ret as f64 / num_ret as f64;
                let r = num_rel_ret as f64 / num_rel_f;
                2.0 * p * r / (p + r)
            }
            _ => 0.0,
        };
    }
}

/// Values of a judged topic that has no results, averaged in as 0 under `-c`. Only `num_rel`
/// keeps its value: trec_eval adds these topics' relevant documents to the total.
pub(crate) fn missing_topic_row(plan: &Plan, rel_level: i32, qrels: TopicQrels<'_>, s: &mut Scratch, row: &mut [f64]) {
    let num_rel = judged(qrels, rel_level, &mut s.levels).num_rel;
    for (value, column) in row.iter_mut().zip(&plan.columns) {
        *value = match column.stat {
            Stat::NumRel => num_rel as f64,
            _ => 0.0,
        };
    }
}

/// Ideal DCG of the topic: documents sorted by grade, gain = grade, discount log2(rank + 1).
/// Fills `idcg_at` for every cut-off and returns the DCG over all positive grades (for `ndcg`).
fn ideal_dcg(plan: &Plan, levels: &[(i32, u64)], idcg_at: &mut Vec<f64>) -> f64 {
    idcg_at.clear();
    let positives: u64 = levels.iter().map(|l| l.1).sum();
    let depth = if plan.ndcg {
        positives
    } else {
        positives.min(plan.max_ndcg_cut as u64)
    };
    let mut ideal = 0.0;
    let mut rank = 0u64;
    'levels: for &(grade, count) in levels {
        for _ in 0..count {
            if rank == depth {
                break 'levels;
            }
            while idcg_at.len() < plan.cuts.len() && plan.cuts[idcg_at.len()] as u64 == rank {
                idcg_at.push(ideal);
            }
            ideal += f64::from(grade) / ((rank + 2) as f64).log2();
            rank += 1;
        }
    }
    idcg_at.resize(plan.cuts.len(), ideal);
    ideal
}

/// trec_eval's interpolated precision at recall levels: a level's cut-off is the number of
/// relevant documents it amounts to, and the interpolated precision at a rank is the best
/// precision at that rank or below.
fn interpolated_precision(
    levels: &[f64],
    rels: &[i32],
    rel_level: i32,
    num_rel: u64,
    num_rel_ret: u64,
    out: &mut Vec<f64>,
) {
    out.clear();
    out.resize(levels.len(), 0.0);
    let num_ret = rels.len();
    if num_ret == 0 {
        return;
    }
    // trec_eval 9.0.8 rounds up from .1 ("+ 0.9, truncate"); later versions round to nearest.
    let wanted = |level: f64| (level * num_rel as f64 + 0.9) as u64;
    // Levels needing more relevant documents than were retrieved stay at 0.
    let mut current = levels.iter().rposition(|&l| wanted(l) <= num_rel_ret);
    let mut int_precision = num_rel_ret as f64 / num_ret as f64;
    let mut rel_so_far = num_rel_ret;
    let mut i = num_ret;
    while i > 0 && rel_so_far > 0 {
        let precision = rel_so_far as f64 / i as f64;
        if int_precision < precision {
            int_precision = precision;
        }
        if rels[i - 1] >= rel_level {
            while let Some(c) = current.filter(|&c| wanted(levels[c]) == rel_so_far) {
                out[c] = int_precision;
                current = c.checked_sub(1);
            }
            rel_so_far -= 1;
        }
        i -= 1;
    }
    if let Some(c) = current {
        out[..=c].fill(int_precision);
    }
}
