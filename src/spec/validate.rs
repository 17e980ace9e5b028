//! Checks of an experiment that its types cannot express; each problem names its key.

use super::schema::{Experiment, ScheduleSpec};

impl Experiment {
    /// Checks values that types cannot express; each problem names its key.
    pub fn validate(&self) -> std::result::Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, msg: String| {
            if !ok {
                problems.push(msg);
            }
        };
        check(
            !self.name.is_empty()
                && self
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            format!(
                "key `name`: expected letters, digits, '-', '_' or '.', found {:?}",
                self.name
            ),
        );
        check(
            !self.data.languages.is_empty(),
            "key `data.languages`: expected at least one language".into(),
        );
        if let Err(e) = self.data.synthetic.validate() {
            check(false, format!("key `data.synthetic`: {e}"));
        }
        if let ScheduleSpec::Inline(s) = &self.schedule
            && let Err(e) = s.validate()
        {
            check(false, format!("key `schedule`: {e}"));
        }
        check(
            self.model.temperature > 0.0,
            format!(
                "key `model.temperature`: expected > 0, found {}",
                self.model.temperature
            ),
        );
        check(
            self.model.max_len >= 1,
            "key `model.max_len`: expected at least 1".into(),
        );
        check(self.train.steps >= 1, "key `train.steps`: expected at least 1".into());
        check(
            self.train.batch_size >= 2,
            format!(
                "key `train.batch_size`: expected at least 2, found {}",
                self.train.batch_size
            ),
        );
        check(
            self.train.lr > 0.0 && self.train.lr.is_finite(),
            format!("key `train.lr`: expected > 0, found {}", self.train.lr),
        );
        check(
            self.train.weight_decay >= 0.0,
            "key `train.weight_decay`: expected ≥ 0".into(),
        );
        check(
            self.retrieval.top_k >= 100,
            format!(
                "key `retrieval.top_k`: expected at least 100 (R@100 needs it), found {}",
                self.retrieval.top_k
            ),
        );
        check(!self.seeds.is_empty(), "key `seeds`: expected at least one seed".into());
        if let Err(e) = self.device.check_build() {
            check(false, format!("key `device`: {e}"));
        }
        if let Some(c) = self.train.clip_norm {
            check(
                c > 0.0,
                format!("key `train.clip_norm`: expected > 0 or null, found {c}"),
            );
        }
        check(
            self.train.patience == 0 || self.train.eval_every > 0,
            "key `train.patience`: early stopping needs `train.eval_every` > 0".into(),
        );
        let ot = &self.ot;
        check(
            ot.weight >= 0.0 && ot.weight.is_finite(),
            format!("key `ot.weight`: expected ≥ 0, found {}", ot.weight),
        );
        check(
            ot.epsilon > 0.0 && ot.epsilon.is_finite(),
            format!("key `ot.epsilon`: expected > 0, found {}", ot.epsilon),
        );
        check(ot.max_iter >= 1, "key `ot.max_iter`: expected at least 1".into());
        check(ot.tol >= 0.0, format!("key `ot.tol`: expected ≥ 0, found {}", ot.tol));
        check(ot.batch_size >= 1, "key `ot.batch_size`: expected at least 1".into());
        check(
            ot.teacher.steps >= 1,
            "key `ot.teacher.steps`: expected at least 1".into(),
        );
        check(
            ot.teacher.batch_size >= 2,
            "key `ot.teacher.batch_size`: expected at least 2".into(),
        );
        check(ot.teacher.lr > 0.0, "key `ot.teacher.lr`: expected > 0".into());
        if let Some(s) = &ot.weight_schedule
            && let Err(e) = s.validate()
        {
            check(false, format!("key `ot.weight_schedule`: {e}"));
        }
        let grids = std::iter::once((String::new(), self.top_grid()))
            .chain(self.grids.iter().map(|(name, g)| (format!("grids.{name}."), g.clone())));
        for (at, grid) in grids {
            let conditional = grid
                .conditional
                .iter()
                .enumerate()
                .map(|(c, block)| (format!("{at}conditional[{c}]."), &block.ablations));
            for (at, axes) in std::iter::once((at.clone(), &grid.ablations)).chain(conditional) {
                for (axis, values) in axes {
                    check(
                        !values.is_empty(),
                        format!("key `{at}ablations.{axis}`: expected a non-empty list of values"),
                    );
                    check(
                        axis != "seeds" && axis != "ablations" && axis != "grids",
                        format!("key `{at}ablations.{axis}`: use `seeds` to replicate cells"),
                    );
                }
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}
