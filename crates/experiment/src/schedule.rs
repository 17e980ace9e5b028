//! Curriculum schedules: the share p(t) ∈ [0, 1] of cross-lingual pairs in a training batch
//! as a function of training progress t ∈ [0, 1].
//!
//! A schedule's shares (`value`, `start`, `end`, `values`) must lie in [0, 1]: one outside is
//! an error of [`Schedule::validate`], not clamped. Every schedule is still evaluated at a
//! clamped t and its result clamped to [0, 1], against rounding of values computed inside it.

use serde::{Deserialize, Serialize};

/// A curriculum schedule. Serialized with a `kind` tag, e.g. `{kind: linear, start: 0, end: 1}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// p(t) = value
    Constant {
        /// The share at every step.
        value: f64,
    },
    /// p(t) = start + (end − start)·t
    Linear {
        /// p(0).
        start: f64,
        /// p(1).
        end: f64,
    },
    /// p(t) = values[i] where i = number of milestones ≤ t (milestones strictly increasing in
    /// (0, 1), one more value than milestones).
    Step {
        /// Progress points where the share changes.
        milestones: Vec<f64>,
        /// The share before the first milestone, then after each.
        values: Vec<f64>,
    },
    /// p(t) = start + (end − start)·(e^{rate·t} − 1)/(e^{rate} − 1); rate > 0 starts slowly
    /// and accelerates, rate < 0 rises quickly then saturates, rate → 0 is linear.
    Exponential {
        /// p(0).
        start: f64,
        /// p(1).
        end: f64,
        /// The curvature.
        rate: f64,
    },
    /// p(t) = start + (end − start)·(1 − cos(πt))/2
    Cosine {
        /// p(0).
        start: f64,
        /// p(1).
        end: f64,
    },
}

impl Schedule {
    /// The cross-lingual share at progress `t`.
    pub fn share(&self, t: f64) -> f64 {
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
        let p = match self {
            Schedule::Constant { value } => *value,
            Schedule::Linear { start, end } => start + (end - start) * t,
            Schedule::Step { milestones, values } => {
                let passed = milestones.iter().take_while(|m| **m <= t).count();
                values[passed.min(values.len() - 1)]
            }
            Schedule::Exponential { start, end, rate } => start + (end - start) * exponential_shape(*rate, t),
            Schedule::Cosine { start, end } => start + (end - start) * (1.0 - (std::f64::consts::PI * t).cos()) / 2.0,
        };
        p.clamp(0.0, 1.0)
    }

    /// Checks the parameters; the error says which one is wrong and what was expected.
    pub fn validate(&self) -> Result<(), String> {
        let finite = |name: &str, v: f64| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(format!("`{name}` must be a finite number, found {v}"))
            }
        };
        // A share is a fraction of the batch: outside [0, 1] it would be clamped silently.
        let share = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("`{name}` must be a share in [0, 1], found {v}"))
            }
        };
        match self {
            Schedule::Constant { value } => share("value", *value),
            Schedule::Linear { start, end } | Schedule::Cosine { start, end } => {
                share("start", *start)?;
                share("end", *end)
            }
            Schedule::Exponential { start, end, rate } => {
                share("start", *start)?;
                share("end", *end)?;
                finite("rate", *rate)
            }
            Schedule::Step { milestones, values } => {
                if values.len() != milestones.len() + 1 {
                    return Err(format!(
                        "`values` must have one more entry than `milestones` ({} milestones, {} values)",
                        milestones.len(),
                        values.len()
                    ));
                }
                for (i, m) in milestones.iter().enumerate() {
                    if !(m.is_finite() && *m > 0.0 && *m < 1.0) {
                        return Err(format!("`milestones[{i}]` must lie in (0, 1), found {m}"));
                    }
                    if i > 0 && *m <= milestones[i - 1] {
                        return Err(format!(
                            "`milestones` must be strictly increasing, found {} then {m}",
                            milestones[i - 1]
                        ));
                    }
                }
                for (i, v) in values.iter().enumerate() {
                    share(&format!("values[{i}]"), *v)?;
                }
                Ok(())
            }
        }
    }

    /// The schedule's kind as written in YAML.
    pub fn kind(&self) -> &'static str {
        match self {
            Schedule::Constant { .. } => "constant",
            Schedule::Linear { .. } => "linear",
            Schedule::Step { .. } => "step",
            Schedule::Exponential { .. } => "exponential",
            Schedule::Cosine { .. } => "cosine",
        }
    }
}

/// (e^{rate·t} − 1)/(e^{rate} − 1) for t ∈ [0, 1], in [0, 1] and finite for every finite rate.
/// For rate > 0 it is computed as e^{rate·(t−1)}·(1 − e^{−rate·t})/(1 − e^{−rate}): every
/// factor lies in [0, 1], where the plain form overflows to ∞/∞ = NaN from rate ≈ 710 on.
fn exponential_shape(rate: f64, t: f64) -> f64 {
    if rate.abs() < 1e-9 {
        // Below this rate the closed form loses precision; its limit is linear.
        t
    } else if rate > 0.0 {
        (rate * (t - 1.0)).exp() * (-rate * t).exp_m1() / (-rate).exp_m1()
    } else {
        // Both terms lie in (−1, 0]: no overflow for a negative rate.
        (rate * t).exp_m1() / rate.exp_m1()
    }
}

/// Training progress of step `step` (0-based) out of `steps`: 0 at the first step, 1 at the last.
pub fn progress(step: usize, steps: usize) -> f64 {
    if steps <= 1 {
        1.0
    } else {
        step as f64 / (steps - 1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn grid() -> impl Iterator<Item = f64> {
        (0..=100).map(|i| i as f64 / 100.0)
    }

    fn all_kinds() -> Vec<Schedule> {
        vec![
            Schedule::Constant { value: 0.5 },
            Schedule::Linear { start: 0.0, end: 1.0 },
            Schedule::Step {
                milestones: vec![0.25, 0.5, 0.75],
                values: vec![0.0, 0.25, 0.5, 1.0],
            },
            Schedule::Exponential {
                start: 0.0,
                end: 1.0,
                rate: 3.0,
            },
            Schedule::Exponential {
                start: 0.0,
                end: 1.0,
                rate: -3.0,
            },
            Schedule::Cosine { start: 0.1, end: 0.9 },
        ]
    }

    #[test]
    fn endpoints() {
        assert_eq!(Schedule::Constant { value: 0.3 }.share(0.0), 0.3);
        let lin = Schedule::Linear { start: 0.2, end: 0.8 };
        assert!((lin.share(0.0) - 0.2).abs() < 1e-12 && (lin.share(1.0) - 0.8).abs() < 1e-12);
        assert!((lin.share(0.5) - 0.5).abs() < 1e-12);
        for rate in [-5.0, -1e-12, 0.0, 2.0] {
            let e = Schedule::Exponential {
                start: 0.1,
                end: 0.9,
                rate,
            };
            assert!((e.share(0.0) - 0.1).abs() < 1e-12, "rate {rate}");
            assert!((e.share(1.0) - 0.9).abs() < 1e-12, "rate {rate}");
        }
        let c = Schedule::Cosine { start: 0.0, end: 1.0 };
        assert!(c.share(0.0).abs() < 1e-12 && (c.share(1.0) - 1.0).abs() < 1e-12);
        let s = Schedule::Step {
            milestones: vec![0.5],
            values: vec![0.2, 0.7],
        };
        assert_eq!(
            (s.share(0.0), s.share(0.49), s.share(0.5), s.share(1.0)),
            (0.2, 0.2, 0.7, 0.7)
        );
    }

    #[test]
    fn exponential_shape_follows_rate_sign() {
        let slow = Schedule::Exponential {
            start: 0.0,
            end: 1.0,
            rate: 3.0,
        };
        let fast = Schedule::Exponential {
            start: 0.0,
            end: 1.0,
            rate: -3.0,
        };
        assert!(slow.share(0.5) < 0.5 && fast.share(0.5) > 0.5);
        let near_zero = Schedule::Exponential {
            start: 0.0,
            end: 1.0,
            rate: 1e-7,
        };
        assert!((near_zero.share(0.3) - 0.3).abs() < 1e-6);
    }

    #[test]
    fn increasing_schedules_are_monotone_and_bounded() {
        for s in all_kinds() {
            let mut last = f64::NEG_INFINITY;
            for t in grid() {
                let p = s.share(t);
                assert!((0.0..=1.0).contains(&p), "{s:?} at {t}: {p}");
                assert!(p >= last - 1e-12, "{s:?} decreases at {t}");
                last = p;
            }
        }
    }

    #[test]
    fn results_and_progress_are_clamped() {
        let s = Schedule::Linear { start: -0.5, end: 1.5 };
        assert_eq!(s.share(0.0), 0.0);
        assert_eq!(s.share(1.0), 1.0);
        assert_eq!(s.share(7.0), 1.0);
        assert_eq!(Schedule::Linear { start: 0.0, end: 1.0 }.share(-3.0), 0.0);
        assert_eq!(Schedule::Constant { value: 0.4 }.share(f64::NAN), 0.4);
    }

    #[test]
    fn validation_names_the_parameter() {
        let bad = Schedule::Step {
            milestones: vec![0.5, 0.4],
            values: vec![0.0, 0.1, 0.2],
        };
        assert!(bad.validate().unwrap_err().contains("strictly increasing"));
        let bad = Schedule::Step {
            milestones: vec![0.5],
            values: vec![0.0],
        };
        assert!(bad.validate().unwrap_err().contains("one more entry"));
        let bad = Schedule::Exponential {
            start: 0.0,
            end: 1.0,
            rate: f64::INFINITY,
        };
        assert!(bad.validate().unwrap_err().contains("`rate`"));
        // Shares outside [0, 1] are errors naming the parameter, not clamped.
        let err = Schedule::Linear { start: 2.0, end: 1.0 }.validate().unwrap_err();
        assert!(
            err.contains("`start`") && err.contains("[0, 1]") && err.contains('2'),
            "{err}"
        );
        let err = Schedule::Constant { value: 1.5 }.validate().unwrap_err();
        assert!(err.contains("`value`") && err.contains("1.5"), "{err}");
        let err = Schedule::Constant { value: f64::NAN }.validate().unwrap_err();
        assert!(err.contains("`value`"), "{err}");
        let err = Schedule::Step {
            milestones: vec![0.5],
            values: vec![0.0, -0.1],
        }
        .validate()
        .unwrap_err();
        assert!(err.contains("`values[1]`"), "{err}");
        for s in all_kinds() {
            s.validate().unwrap();
        }
    }

    #[test]
    fn every_valid_schedule_is_finite_and_a_share() {
        // Extreme but valid parameters (a rate of 1000 once overflowed to NaN), and generated ones.
        let mut rates = vec![
            1000.0,
            -1000.0,
            710.0,
            1e300,
            -1e300,
            f64::MAX,
            f64::MIN,
            1e-10,
            -1e-10,
            5e-9,
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        rates.extend((0..2000).map(|_| rng.gen_range(-50.0f64..50.0).exp() * if rng.r#gen() { 1.0 } else { -1.0 }));
        for rate in rates {
            for (start, end) in [(0.0, 1.0), (1.0, 0.0), (0.3, 0.3), (0.1, 0.9)] {
                let s = Schedule::Exponential { start, end, rate };
                s.validate().unwrap();
                for t in grid().chain([1e-300, 1.0 - 1e-16]) {
                    let p = s.share(t);
                    assert!(p.is_finite() && (0.0..=1.0).contains(&p), "{s:?} at {t}: {p}");
                }
                assert!(
                    (s.share(0.0) - start).abs() < 1e-12 && (s.share(1.0) - end).abs() < 1e-12,
                    "{s:?}"
                );
            }
        }
        // A steep rate still starts slowly (positive) or saturates early (negative).
        let steep = |rate| {
            Schedule::Exponential {
                start: 0.0,
                end: 1.0,
                rate,
            }
            .share(0.5)
        };
        assert!(steep(1000.0) < 1e-100 && steep(-1000.0) > 1.0 - 1e-12);
    }

    #[test]
    fn progress_spans_unit_interval() {
        assert_eq!(progress(0, 10), 0.0);
        assert_eq!(progress(9, 10), 1.0);
        assert_eq!(progress(0, 1), 1.0);
    }

    #[test]
    fn yaml_round_trip_and_unknown_keys() {
        let s: Schedule = serde_yaml::from_str("kind: exponential\nstart: 0\nend: 1\nrate: 3").unwrap();
        assert_eq!(
            s,
            Schedule::Exponential {
                start: 0.0,
                end: 1.0,
                rate: 3.0
            }
        );
        let err = serde_yaml::from_str::<Schedule>("kind: linear\nstart: 0\nend: 1\nslope: 2")
            .unwrap_err()
            .to_string();
        assert!(err.contains("slope"), "{err}");
    }
}
