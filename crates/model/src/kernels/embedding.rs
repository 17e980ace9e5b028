//! Token plus learned position embeddings on the CPU: one gather pass forward, one
//! scatter-add pass backward.
//!
//! Why: dfdx's gather and its backward compute a multi-dimensional index per element, and the
//! two lookups (tokens, positions) and their sum were 4–5% of a `transformer_tiny` step
//! (BENCHMARKS.md). The arithmetic is the unfused one: each output is `position + token`
//! (one rounding, commutative), and the backward adds the output gradient into both tables'
//! gradients in the order of the output rows, as dfdx's gather backward does, so results are
//! bit-identical to [`super::reference::embed_with_positions`].

use super::grads::grad_buffers;
use super::{States, values, zeros};
use dfdx::nn::modules::Embedding;
use dfdx::prelude::*;
use rayon::prelude::*;

/// out[r, t] = positions[t] + tokens[ids[r, t]], for ids rows × len (len ≤ S; ids < V).
pub fn embed_with_positions<const V: usize, const S: usize, const M: usize, T: Tape<f32, Cpu>>(
    tokens: &Embedding<V, M, f32, Cpu>,
    positions: &Embedding<S, M, f32, Cpu>,
    ids: Tensor<(usize, usize), usize, Cpu, T>,
) -> States<M, Cpu, T> {
    let (ids, tape) = ids.split_tape();
    let (rows, len) = *ids.shape();
    assert!(len <= S, "{len} positions asked of a table of {S}");
    let ids = ids.as_vec();
    assert!(ids.iter().all(|&id| id < V), "a token id is outside the table of {V}");
    let (table, position_table) = (values(&tokens.weight), values(&positions.weight));
    let mut out = zeros(rows * len * M);
    out.par_chunks_mut(len * M)
        .zip(ids.par_chunks(len))
        .for_each(|(out, ids)| {
            for (t, (out, &id)) in out.chunks_exact_mut(M).zip(ids).enumerate() {
                let (p, e) = (&position_table[t * M..(t + 1) * M], &table[id * M..(id + 1) * M]);
                out.iter_mut().zip(p.iter().zip(e)).for_each(|(o, (p, e))| *o = p + e);
            }
        });
    let y = tokens.weight.device().tensor_from_vec(out, (rows, len, Const::<M>));
    if !T::OWNS_TAPE {
        return y.put_tape(tape);
    }
    let mut tape = tape;
    let (y_ghost, tokens_ghost, positions_ghost) = (y.ghost(), tokens.weight.ghost(), positions.weight.ghost());
    tape.add_backward_op(move |grads| {
        // Panics if the two tables are one tensor.
        let [dy, d_positions, d_tokens] = grad_buffers!(grads, &y_ghost, &positions_ghost, &tokens_ghost);
        // One pass in output order: a token repeated in the batch accumulates in the order
        // dfdx's scatter adds it (sequential; the pass is a few hundred thousand adds).
        for (i, (dy, &id)) in dy.chunks_exact(M).zip(&ids).enumerate() {
            let t = i % len;
            let d_token = &mut d_tokens[id * M..(id + 1) * M];
            d_token.iter_mut().zip(dy).for_each(|(g, d)| *g += d);
            let d_position = &mut d_positions[t * M..(t + 1) * M];
            d_position.iter_mut().zip(dy).for_each(|(g, d)| *g += d);
        }
        Ok(())
    });
    y.put_tape(tape)
}
