//! A linear layer over token states as one GEMM: the states are viewed as a (rows·len × I)
//! matrix (a contiguous reshape is free in dfdx, and keeps the tensor's gradient entry), so
//! dfdx's 2-d product runs once instead of once per row, and the weight gradient is one
//! product with k = rows·len instead of `rows` products with k = len.

use super::States;
use dfdx::nn::modules::Linear;
use dfdx::prelude::*;

pub fn linear<const I: usize, const O: usize, D: Device<f32>, T: Tape<f32, D>>(
    lin: &Linear<I, O, f32, D>,
    x: States<I, D, T>,
) -> States<O, D, T> {
    let (rows, len, _) = *x.shape();
    let flat = x.reshape_like(&(rows * len, Const::<I>));
    lin.forward(flat).reshape_like(&(rows, len, Const::<O>))
}
