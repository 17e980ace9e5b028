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
        let m = &self.model;
        match m.backbone {
            Some(backbone) => {
                check(
                    m.preset == crate::model::Preset::default(),
                    format!(
                        "key `model.preset`: a preset is not used with `model.backbone` ({:?}); remove one of them",
                        m.preset
                    ),
                );
                if let Some(n) = m.train_layers {
                    check(
                        n <= backbone.num_layers(),
                        format!(
                            "key `model.train_layers`: expected at most {} (the backbone's layers), found {n}",
                            backbone.num_layers()
                        ),
                    );
                }
                check(
                    m.max_len >= 2,
                    "key `model.max_len`: with a backbone, expected at least 2 (room for <s> and </s>)".into(),
                );
                check(
                    m.max_len <= 512,
                    format!(
                        "key `model.max_len`: the backbone has 512 positions, found {}",
                        m.max_len
                    ),
                );
                check(
                    !self.ot.enabled && !self.ot.init_from_teacher,
                    "key `ot.enabled`: OT distillation (and `ot.init_from_teacher`) with `model.backbone` is not supported yet".into(),
                );
            }
            None => {
                for (key, set) in [
                    ("train_layers", m.train_layers.is_some()),
                    ("train_embeddings", m.train_embeddings.is_some()),
                    ("train_word_embeddings", m.train_word_embeddings.is_some()),
                ] {
                    check(!set, format!("key `model.{key}`: applies only with `model.backbone`"));
                }
            }
        }
        check(
            self.train.steps > 0 || self.train.eval_every == 0,
            "key `train.eval_every`: a zero-shot cell (`train.steps: 0`) has nothing to validate; set it to 0".into(),
        );
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

#[cfg(test)]
mod tests {
    use crate::grid::expand;
    use crate::spec::{Backbone, load};
    use std::path::{Path, PathBuf};

    fn quickstart() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/quickstart.yaml")
    }

    fn problems(sets: &[&str]) -> String {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        match load(&quickstart(), &sets) {
            Ok(_) => String::new(),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn experiments_without_backbone_keep_their_ids() {
        // The cell ids of `experiments/quickstart.yaml` as main (823c4e1) resolved them.
        let loaded = load(&quickstart(), &[]).unwrap();
        let mut ids: Vec<String> = expand(&loaded).unwrap().into_iter().map(|c| c.id).collect();
        ids.sort();
        assert_eq!(
            ids,
            [
                "schedule-constant_s1_af9f984e",
                "schedule-constant_s2_000fe244",
                "schedule-exponential_s1_fd0dddd5",
                "schedule-exponential_s2_782822cd",
                "schedule-linear_s1_ee9e54d6",
                "schedule-linear_s2_eea44ec1",
            ]
        );
        let model = serde_json::to_value(&loaded.experiment.model).unwrap();
        let keys: Vec<&String> = model.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["max_len", "preset", "temperature"]);
        let data = serde_json::to_value(&loaded.experiment.data).unwrap();
        assert!(data.get("max_test_queries").is_none());
    }

    #[test]
    fn backbone_keys_parse_with_defaults() {
        let sets = ["model.backbone=me5-small".to_string()];
        let e = load(&quickstart(), &sets).unwrap().experiment;
        assert_eq!(e.model.backbone, Some(Backbone::Me5Small));
        let ft = e.model.fine_tune().unwrap();
        assert_eq!((ft.top_layers, ft.embeddings, ft.word_embeddings), (12, false, false));
        let sets: Vec<String> = [
            "model.backbone=me5-small",
            "model.train_layers=2",
            "model.train_embeddings=true",
            "model.train_word_embeddings=true",
            "data.max_test_queries=100",
            "train.steps=0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let loaded = load(&quickstart(), &sets).unwrap();
        let ft = loaded.experiment.model.fine_tune().unwrap();
        assert_eq!((ft.top_layers, ft.embeddings, ft.word_embeddings), (2, true, true));
        assert_eq!(loaded.experiment.data.max_test_queries, Some(100));
        assert_eq!(loaded.experiment.model.prefix(crate::tokenizer::Side::Query), "query: ");
        // The keys are part of the cell ids.
        let ids = expand(&loaded).unwrap();
        let plain = expand(&load(&quickstart(), &sets[..5]).unwrap()).unwrap();
        assert_ne!(ids[0].id, plain[0].id);
        // And ablatable (an axis must name a key the resolved config has: set it at top level).
        let axis = [
            "ablations.model.train_layers=[1, 2]".to_string(),
            sets[0].clone(),
            sets[1].clone(),
        ];
        assert_eq!(expand(&load(&quickstart(), &axis).unwrap()).unwrap().len(), 12);
    }

    #[test]
    fn bad_combinations_name_the_key() {
        for (sets, key) in [
            (&["model.train_layers=2"][..], "model.train_layers"),
            (&["model.train_embeddings=false"][..], "model.train_embeddings"),
            (&["model.train_word_embeddings=true"][..], "model.train_word_embeddings"),
            (&["model.backbone=me5-small", "model.preset=small"][..], "model.preset"),
            (
                &["model.backbone=me5-small", "model.train_layers=13"][..],
                "model.train_layers",
            ),
            (&["model.backbone=me5-small", "ot.enabled=true"][..], "ot.enabled"),
            (&["model.backbone=me5-small", "model.max_len=1"][..], "model.max_len"),
            (&["train.steps=0", "train.eval_every=5"][..], "train.eval_every"),
            (&["model.backbone=me5-large"][..], "backbone"),
        ] {
            let found = problems(sets);
            assert!(
                found.contains(key),
                "{sets:?}: expected an error naming `{key}`, got {found:?}"
            );
        }
        assert_eq!(problems(&["train.steps=0"]), "");
    }
}
