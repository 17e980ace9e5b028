//! The training objective in the graph: InfoNCE over in-batch negatives, and the OT
//! distillation term (λ·⟨P, C⟩, with the plan from [`crate::ot`]) over student and teacher
//! token states. Shared by the presets and the pretrained backbone.

use super::{Backend, CostKind, OtTerm};
use crate::ot;
use anyhow::Result;
use dfdx::prelude::*;

/// L2 normalisation along the last axis of a (rows, cols, D) tensor.
pub(super) fn normalize_tokens<const N: usize, D: Backend, T: Tape<f32, D>>(
    x: Tensor<(usize, usize, Const<N>), f32, D, T>,
) -> Tensor<(usize, usize, Const<N>), f32, D, T> {
    let shape = *x.shape();
    let norms = (x.with_empty_tape().square().sum::<(usize, usize), Axis<2>>() + 1e-12)
        .sqrt()
        .broadcast_like::<_, Axis<2>>(&shape);
    x / norms
}

/// InfoNCE over in-batch negatives: rows `0..queries` are queries, rows `queries..2·queries`
/// their positive passages, and the `negatives` rows after them hard negatives; every passage
/// but a query's own positive is a negative for it.
pub(super) fn info_nce_loss<const P: usize, D: Backend, T: Tape<f32, D>>(
    dev: &D,
    all: Tensor<(usize, Const<P>), f32, D, T>,
    queries: usize,
    negatives: usize,
    temperature: f64,
) -> Tensor<Rank0, f32, D, T> {
    let passages_end = 2 * queries + negatives;
    let q = all.with_empty_tape().slice((0..queries, ..));
    let passages = all.slice((queries..passages_end, ..));
    let logits = q.matmul(passages.permute::<_, Axes2<1, 0>>()) * (1.0 / temperature as f32);
    let columns = queries + negatives;
    let mut targets = vec![0.0f32; queries * columns];
    for i in 0..queries {
        targets[i * columns + i] = 1.0;
    }
    cross_entropy_with_logits_loss(logits, dev.tensor_from_vec(targets, (queries, columns)))
}

/// The OT distillation term in the graph: λ·Σ G ⊙ C, whose gradient carries ∂⟨P, C⟩/∂C into
/// the student's token states (d/dC of Σ G ⊙ C is G), and the mean transport cost ⟨P, C⟩.
/// Rows of C are student tokens, columns teacher tokens: the taped operand goes first.
pub(super) fn ot_surrogate<const M: usize, D: Backend, T: Tape<f32, D>>(
    dev: &D,
    student: Tensor<(usize, usize, Const<M>), f32, D, T>,
    student_mask: &[f32],
    term: &OtTerm,
) -> Result<(Tensor<Rank0, f32, D, T>, f64)> {
    let (pairs, s_len, _) = *student.shape();
    anyhow::ensure!(
        term.teacher_states.len() == pairs * term.teacher_len * M,
        "teacher states do not match the bitext batch"
    );
    let teacher = dev.tensor_from_vec(term.teacher_states.to_vec(), (pairs, term.teacher_len, Const::<M>));
    let cost = match term.cost {
        CostKind::Cosine => {
            let teacher = normalize_tokens(teacher);
            let sim = normalize_tokens(student).matmul(teacher.permute::<_, Axes3<0, 2, 1>>());
            sim.negate() + 1.0
        }
        CostKind::SquaredEuclidean => {
            let shape = (pairs, s_len, term.teacher_len);
            let ss = student
                .with_empty_tape()
                .square()
                .sum::<(usize, usize), Axis<2>>()
                .broadcast_like::<_, Axis<2>>(&shape);
            let tt = teacher
                .clone()
                .square()
                .sum::<(usize, usize), Axis<2>>()
                .broadcast_like::<_, Axis<1>>(&shape);
            let cross = student.matmul(teacher.permute::<_, Axes3<0, 2, 1>>());
            ss + tt - cross * 2.0
        }
    };
    let (value, grad) = transport_batch(
        &cost.as_vec(),
        pairs,
        s_len,
        term.teacher_len,
        student_mask,
        term.teacher_mask,
        term,
    )?;
    let grad = dev.tensor_from_vec(grad, (pairs, s_len, term.teacher_len));
    Ok(((cost * grad).sum::<Rank0, _>() * term.weight as f32, value))
}

/// Solves OT for every pair on its unpadded block of `cost` (pairs × r_len × c_len, rows
/// and columns masked by `row_mask` and `col_mask`) and returns the mean transport cost and
/// ∂(mean cost)/∂cost.
pub(super) fn transport_batch(
    cost: &[f32],
    pairs: usize,
    r_len: usize,
    c_len: usize,
    row_mask: &[f32],
    col_mask: &[f32],
    term: &OtTerm,
) -> Result<(f64, Vec<f32>)> {
    let mut grad = vec![0.0f32; cost.len()];
    let mut total = 0.0;
    for b in 0..pairs {
        let n = row_mask[b * r_len..(b + 1) * r_len]
            .iter()
            .filter(|m| **m > 0.0)
            .count();
        let m = col_mask[b * c_len..(b + 1) * c_len]
            .iter()
            .filter(|m| **m > 0.0)
            .count();
        anyhow::ensure!(n > 0 && m > 0, "a bitext pair has an empty side");
        let block: Vec<f64> = (0..n)
            .flat_map(|i| (0..m).map(move |j| (i, j)))
            .map(|(i, j)| f64::from(cost[(b * r_len + i) * c_len + j]))
            .collect();
        anyhow::ensure!(
            block.iter().all(|c| c.is_finite()),
            "non-finite OT cost (diverged token states)"
        );
        let t = ot::sinkhorn(&block, n, m, term.sinkhorn, term.gradient);
        total += t.cost;
        for i in 0..n {
            for j in 0..m {
                grad[(b * r_len + i) * c_len + j] = (t.grad[i * m + j] / pairs as f64) as f32;
            }
        }
    }
    Ok((total / pairs as f64, grad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_nce_scores_every_query_against_positives_and_hard_negatives() {
        let dev = Cpu::default();
        // Two queries, their positives, one hard negative; 2-d embeddings.
        let rows = [[1.0f32, 0.0], [0.0, 1.0], [0.8, 0.6], [0.6, 0.8], [0.9, 0.1]];
        let all = dev.tensor_from_vec(rows.concat(), (5usize, Const::<2>));
        let temperature = 0.5;
        let loss = info_nce_loss(&dev, all, 2, 1, temperature).array();
        let dot = |a: [f32; 2], b: [f32; 2]| f64::from(a[0] * b[0] + a[1] * b[1]) / temperature;
        let mut want = 0.0;
        for (i, q) in rows[..2].iter().enumerate() {
            let logits: Vec<f64> = rows[2..].iter().map(|p| dot(*q, *p)).collect();
            let lse = logits.iter().map(|l| l.exp()).sum::<f64>().ln();
            want += (lse - logits[i]) / 2.0;
        }
        assert!((f64::from(loss) - want).abs() < 1e-5, "{loss} vs {want}");
        // Without the negative, the last row is not a column.
        let all = dev.tensor_from_vec(rows[..4].concat(), (4usize, Const::<2>));
        let without = f64::from(info_nce_loss(&dev, all, 2, 0, temperature).array());
        assert!(without < want, "a hard negative adds to the loss: {without} vs {want}");
    }
}
