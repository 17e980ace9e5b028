//! Entropic optimal transport between two token sets (OPTICAL-style distillation), solved in
//! the log domain with Sinkhorn iterations, with the gradient of the transport cost ⟨P, C⟩
//! with respect to the cost matrix C.
//!
//! Marginals are uniform over the (non-padding) tokens: a = 1/n, b = 1/m. Iterations:
//! f_i = ε log a_i − ε LSE_j((g_j − C_ij)/ε), g_j = ε log b_j − ε LSE_i((f_i − C_ij)/ε),
//! P_ij = exp((f_i + g_j − C_ij)/ε). They stop when every row sum of P is within `tol` of
//! a_i (column sums are exact after each g update) or after `max_iter`.
//!
//! Gradients: [`PlanGradient::Detached`] treats P as a constant, so ∂⟨P, C⟩/∂C = P (the
//! "stop gradients through the plan" option; it is also the exact gradient of the
//! entropy-regularised OT value). [`PlanGradient::Unrolled`] differentiates through every
//! Sinkhorn iteration that ran, so it is the exact gradient of the computed ⟨P, C⟩.

use serde::{Deserialize, Serialize};

/// The settings of one Sinkhorn solve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SinkhornSettings {
    /// Entropic regularisation ε.
    pub epsilon: f64,
    /// Most iterations.
    pub max_iter: usize,
    /// Stop when every row marginal is within `tol` of 1/n.
    pub tol: f64,
}

/// How the gradient of ⟨P, C⟩ treats the plan P (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PlanGradient {
    /// P is a constant: ∂⟨P, C⟩/∂C = P.
    Detached,
    /// Differentiate through every Sinkhorn iteration that ran.
    #[default]
    Unrolled,
}

/// The solution for one n × m cost matrix (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct Transport {
    /// ⟨P, C⟩
    pub cost: f64,
    /// The transport plan P, row-major like C.
    pub plan: Vec<f64>,
    /// ∂⟨P, C⟩/∂C, row-major like C.
    pub grad: Vec<f64>,
    /// Sinkhorn iterations run.
    pub iterations: usize,
    /// Largest |row sum − 1/n| of the final plan.
    pub marginal_error: f64,
}

/// log Σ exp(x), stable.
fn log_sum_exp(x: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = x.clone().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + x.map(|v| (v - max).exp()).sum::<f64>().ln()
}

/// Softmax weights of `x` written into `out`.
fn softmax_into(x: impl Iterator<Item = f64> + Clone, out: &mut [f64]) {
    let lse = log_sum_exp(x.clone());
    for (o, v) in out.iter_mut().zip(x) {
        *o = (v - lse).exp();
    }
}

fn update_f(c: &[f64], g: &[f64], n: usize, m: usize, eps: f64, f: &mut [f64]) {
    let log_a = -(n as f64).ln();
    for i in 0..n {
        let row = &c[i * m..(i + 1) * m];
        f[i] = eps * log_a - eps * log_sum_exp(g.iter().zip(row).map(|(gj, cij)| (gj - cij) / eps));
    }
}

fn update_g(c: &[f64], f: &[f64], n: usize, m: usize, eps: f64, g: &mut [f64]) {
    let log_b = -(m as f64).ln();
    for j in 0..m {
        g[j] = eps * log_b - eps * log_sum_exp((0..n).map(|i| (f[i] - c[i * m + j]) / eps));
    }
}

/// Solves entropic OT for the cost matrix `c` (n × m, row-major, finite).
pub fn sinkhorn(c: &[f64], n: usize, m: usize, s: SinkhornSettings, gradient: PlanGradient) -> Transport {
    assert_eq!(c.len(), n * m, "cost matrix must be n × m");
    assert!(n > 0 && m > 0 && s.epsilon > 0.0 && s.max_iter > 0);
    let eps = s.epsilon;
    let a = 1.0 / n as f64;
    // Potentials after each iteration, kept for the unrolled backward pass.
    let mut fs: Vec<Vec<f64>> = Vec::new();
    let mut gs: Vec<Vec<f64>> = vec![vec![0.0; m]];
    let mut plan = vec![0.0; n * m];
    let mut marginal_error = f64::INFINITY;
    for _ in 0..s.max_iter {
        let mut f = vec![0.0; n];
        update_f(c, gs.last().expect("initial g"), n, m, eps, &mut f);
        let mut g = vec![0.0; m];
        update_g(c, &f, n, m, eps, &mut g);
        for i in 0..n {
            for j in 0..m {
                plan[i * m + j] = ((f[i] + g[j] - c[i * m + j]) / eps).exp();
            }
        }
        marginal_error = (0..n)
            .map(|i| (plan[i * m..(i + 1) * m].iter().sum::<f64>() - a).abs())
            .fold(0.0, f64::max);
        fs.push(f);
        gs.push(g);
        if marginal_error <= s.tol {
            break;
        }
    }
    let cost: f64 = plan.iter().zip(c).map(|(p, c)| p * c).sum();
    let grad = match gradient {
        PlanGradient::Detached => plan.clone(),
        PlanGradient::Unrolled => unrolled_gradient(c, n, m, eps, &plan, &fs, &gs),
    };
    Transport {
        cost,
        grad,
        plan,
        iterations: fs.len(),
        marginal_error,
    }
}

/// Reverse-mode derivative of ⟨P, C⟩ through the Sinkhorn iterations that ran.
fn unrolled_gradient(
    c: &[f64],
    n: usize,
    m: usize,
    eps: f64,
    plan: &[f64],
    fs: &[Vec<f64>],
    gs: &[Vec<f64>],
) -> Vec<f64> {
    // L = Σ P_ij C_ij with P_ij = exp((f_i + g_j − C_ij)/ε): adjoint of P is C.
    let mut c_bar: Vec<f64> = plan.to_vec();
    let mut f_bar = vec![0.0; n];
    let mut g_bar = vec![0.0; m];
    for i in 0..n {
        for j in 0..m {
            let w = c[i * m + j] * plan[i * m + j] / eps;
            c_bar[i * m + j] -= w;
            f_bar[i] += w;
            g_bar[j] += w;
        }
    }
    let mut weights = vec![0.0; n.max(m)];
    for k in (0..fs.len()).rev() {
        // g^k_j = ε log b − ε LSE_i((f^k_i − C_ij)/ε): ∂g_j/∂f_i = −v_ij, ∂g_j/∂C_ij = v_ij.
        let f = &fs[k];
        for j in 0..m {
            softmax_into((0..n).map(|i| (f[i] - c[i * m + j]) / eps), &mut weights[..n]);
            for i in 0..n {
                f_bar[i] -= g_bar[j] * weights[i];
                c_bar[i * m + j] += g_bar[j] * weights[i];
            }
        }
        // f^k_i = ε log a − ε LSE_j((g^{k−1}_j − C_ij)/ε): ∂f_i/∂g_j = −u_ij, ∂f_i/∂C_ij = u_ij.
        let g_prev = &gs[k];
        let mut g_prev_bar = vec![0.0; m];
        for i in 0..n {
            let row = &c[i * m..(i + 1) * m];
            softmax_into(
                g_prev.iter().zip(row).map(|(gj, cij)| (gj - cij) / eps),
                &mut weights[..m],
            );
            for j in 0..m {
                g_prev_bar[j] -= f_bar[i] * weights[j];
                c_bar[i * m + j] += f_bar[i] * weights[j];
            }
        }
        f_bar.iter_mut().for_each(|v| *v = 0.0);
        g_bar = g_prev_bar;
    }
    c_bar
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: u64) -> impl FnMut() -> f64 {
        let mut state = seed;
        move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn permutations(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![vec![]];
        }
        let mut out = Vec::new();
        for p in permutations(n - 1) {
            for pos in 0..n {
                let mut q = p.clone();
                q.insert(pos, n - 1);
                out.push(q);
            }
        }
        out
    }

    #[test]
    fn small_epsilon_recovers_the_exact_assignment_cost() {
        let mut rand = lcg(3);
        for n in 2..=6 {
            let c: Vec<f64> = (0..n * n).map(|_| rand() * 2.0).collect();
            let exact = permutations(n)
                .iter()
                .map(|p| p.iter().enumerate().map(|(i, j)| c[i * n + j]).sum::<f64>() / n as f64)
                .fold(f64::INFINITY, f64::min);
            let s = SinkhornSettings {
                epsilon: 1e-3,
                max_iter: 20_000,
                tol: 1e-10,
            };
            let t = sinkhorn(&c, n, n, s, PlanGradient::Detached);
            assert!(
                (t.cost - exact).abs() < 5e-3,
                "n={n}: sinkhorn {} vs exact {exact}",
                t.cost
            );
            let coarse = sinkhorn(&c, n, n, SinkhornSettings { epsilon: 0.5, ..s }, PlanGradient::Detached);
            assert!(
                coarse.cost >= t.cost - 1e-9,
                "more entropy cannot lower the transport cost"
            );
        }
    }

    #[test]
    fn plan_marginals_within_tolerance() {
        let mut rand = lcg(5);
        let (n, m) = (5, 7);
        let c: Vec<f64> = (0..n * m).map(|_| rand() * 2.0).collect();
        let s = SinkhornSettings {
            epsilon: 0.05,
            max_iter: 1000,
            tol: 1e-6,
        };
        let t = sinkhorn(&c, n, m, s, PlanGradient::Detached);
        assert!(t.iterations < 1000 && t.marginal_error <= 1e-6);
        for i in 0..n {
            assert!((t.plan[i * m..(i + 1) * m].iter().sum::<f64>() - 1.0 / n as f64).abs() <= 1e-6);
        }
        for j in 0..m {
            assert!(((0..n).map(|i| t.plan[i * m + j]).sum::<f64>() - 1.0 / m as f64).abs() <= 1e-9);
        }
    }

    #[test]
    fn unrolled_gradient_matches_finite_differences() {
        let mut rand = lcg(11);
        let (n, m) = (3, 4);
        let c: Vec<f64> = (0..n * m).map(|_| rand() * 2.0).collect();
        // A fixed number of iterations (tol 0) makes the computed cost a smooth function of C.
        let s = SinkhornSettings {
            epsilon: 0.3,
            max_iter: 25,
            tol: 0.0,
        };
        let t = sinkhorn(&c, n, m, s, PlanGradient::Unrolled);
        let h = 1e-6;
        for k in 0..n * m {
            let mut up = c.clone();
            up[k] += h;
            let mut down = c.clone();
            down[k] -= h;
            let numeric = (sinkhorn(&up, n, m, s, PlanGradient::Detached).cost
                - sinkhorn(&down, n, m, s, PlanGradient::Detached).cost)
                / (2.0 * h);
            assert!(
                (numeric - t.grad[k]).abs() < 1e-4,
                "entry {k}: analytic {} numeric {numeric}",
                t.grad[k]
            );
        }
        // The detached gradient is the plan itself.
        assert_eq!(sinkhorn(&c, n, m, s, PlanGradient::Detached).grad, t.plan);
    }

    #[test]
    fn no_nan_or_inf_down_to_small_epsilon() {
        let mut rand = lcg(17);
        for eps in [1.0, 0.1, 0.01, 1e-3] {
            let (n, m) = (6, 9);
            let c: Vec<f64> = (0..n * m).map(|_| rand() * 2.0).collect();
            let t = sinkhorn(
                &c,
                n,
                m,
                SinkhornSettings {
                    epsilon: eps,
                    max_iter: 200,
                    tol: 1e-9,
                },
                PlanGradient::Unrolled,
            );
            assert!(
                t.cost.is_finite() && t.plan.iter().all(|p| p.is_finite()) && t.grad.iter().all(|g| g.is_finite()),
                "eps {eps}"
            );
        }
    }
}
