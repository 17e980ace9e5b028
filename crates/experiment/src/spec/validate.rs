//! Checks of an experiment that its types cannot express; each problem names its key path,
//! what was expected and what was found ([`Problem`]).

use super::error::{ConfigError, Problem};
use super::schema::{Experiment, ScheduleSpec};

/// A failed check of `key`: expected `expected`, found `found` (when there is a value to show).
fn problem(key: impl Into<String>, expected: impl Into<String>, found: Option<String>) -> Problem {
    Problem::invalid(key, expected, found)
}

/// The language of the documents every query language is retrieved against.
const PIVOT: &str = "en";

impl Experiment {
    /// Checks values that types cannot express; each problem names its key path, what was
    /// expected and what was found. The problems carry no source: [`load`](super::load)
    /// names the file, variable or flag each value came from.
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, p: Problem| {
            if !ok {
                problems.push(p);
            }
        };
        // The name is the results folder under `--results`: one plain path component, so
        // `.` and `..` (which would write into the results root or its parent) are refused, as
        // is a leading dot (hidden, and the namespace of `.artifacts`).
        check(
            !self.name.is_empty()
                && !self.name.starts_with('.')
                && self
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            problem(
                "name",
                "letters, digits, '-', '_' or '.', not starting with '.' (one folder under the results root)",
                Some(format!("{:?}", self.name)),
            ),
        );
        check(
            !self.data.languages.is_empty(),
            problem("data.languages", "at least one language", None),
        );
        // A data set is named, and found under the data folder: a name that is a path
        // (`../x`, `/abs`) would load a data set from elsewhere without a word.
        let zero_shot = self
            .data
            .zero_shot
            .iter()
            .map(|z| ("data.zero_shot", &z.dataset, &z.languages));
        for (at, dataset, languages) in
            std::iter::once(("data", &self.data.dataset, &self.data.languages)).chain(zero_shot)
        {
            check(
                clirlab_util::fs::plain_component(dataset),
                problem(
                    format!("{at}.dataset"),
                    "the name of a data set (`synthetic`, `bible`, a prepared set, or one folder under the data folder), not a path",
                    Some(format!("{dataset:?}")),
                ),
            );
            for (i, lang) in languages.iter().enumerate() {
                check(
                    !languages[..i].contains(lang),
                    problem(
                        format!("{at}.languages[{i}]"),
                        "each language once",
                        Some(format!("{lang:?} twice")),
                    ),
                );
            }
        }
        // In the multilingual setting the English documents are retrieved beside each query
        // language's: English queries would find their own documents twice.
        if self
            .retrieval
            .settings
            .contains(&super::schema::RetrievalSetting::Multilingual)
            && let Some(i) = self.data.languages.iter().position(|l| l == PIVOT)
        {
            check(
                false,
                problem(
                    format!("data.languages[{i}]"),
                    "query languages other than the documents' language `en` with the `multilingual` retrieval setting",
                    Some(format!("{PIVOT:?}")),
                ),
            );
        }
        for (key, cap) in [
            ("data.max_test_queries", self.data.max_test_queries),
            ("data.max_train_pairs", self.data.max_train_pairs),
        ] {
            check(
                cap != Some(0),
                problem(key, "at least 1 (or no key: every one)", Some("0".into())),
            );
        }
        if let Err(e) = self.data.synthetic.validate() {
            check(
                false,
                problem(format!("data.synthetic.{}", e.key()), e.expected(), e.found()),
            );
        }
        if let ScheduleSpec::Inline(s) = &self.schedule
            && let Err(e) = s.validate()
        {
            check(false, Problem::other("schedule", e.to_string()));
        }
        check(
            self.model.temperature > 0.0,
            problem("model.temperature", "> 0", Some(self.model.temperature.to_string())),
        );
        check(
            self.model.max_len >= 1,
            problem("model.max_len", "at least 1", Some(self.model.max_len.to_string())),
        );
        let m = &self.model;
        match &m.backbone {
            Some(backbone) => {
                check(
                    m.preset == clirlab_model::Preset::default(),
                    problem(
                        "model.preset",
                        "no preset with `model.backbone` (remove one of them)",
                        Some(format!("{:?}", m.preset)),
                    ),
                );
                if let Some(n) = m.train_layers {
                    check(
                        n <= backbone.num_layers(),
                        problem(
                            "model.train_layers",
                            format!("at most {} (the backbone's layers)", backbone.num_layers()),
                            Some(n.to_string()),
                        ),
                    );
                }
                check(
                    m.max_len >= 2,
                    problem(
                        "model.max_len",
                        "with a backbone, at least 2 (room for <s> and </s>)",
                        Some(m.max_len.to_string()),
                    ),
                );
                if *backbone == super::schema::Backbone::Me5Small {
                    check(
                        m.max_len <= 512,
                        problem(
                            "model.max_len",
                            "at most 512 (the backbone's positions)",
                            Some(m.max_len.to_string()),
                        ),
                    );
                }
                // With a backbone the OT teacher is the pretrained model itself (OPTICAL's
                // set-up), which is where the student starts anyway, and nothing trains it.
                check(
                    !self.ot.init_from_teacher,
                    problem(
                        "ot.init_from_teacher",
                        "false with `model.backbone` (the student already starts from the pretrained model, which is the teacher)",
                        Some("true".into()),
                    ),
                );
                check(
                    self.ot.teacher == super::schema::TeacherConfig::default(),
                    problem(
                        "ot.teacher",
                        "no value with `model.backbone` (the teacher is the pretrained model, not trained; `ot.teacher` trains a preset's teacher)",
                        serde_json::to_string(&self.ot.teacher).ok(),
                    ),
                );
            }
            None => {
                for (key, set) in [
                    ("model.train_layers", m.train_layers.is_some()),
                    ("model.train_embeddings", m.train_embeddings.is_some()),
                    ("model.train_word_embeddings", m.train_word_embeddings.is_some()),
                    ("model.pooling", m.pooling.is_some()),
                    ("model.query_prefix", m.query_prefix.is_some()),
                    ("model.passage_prefix", m.passage_prefix.is_some()),
                ] {
                    check(
                        !set,
                        problem(
                            key,
                            "no value without `model.backbone` (it applies only to a backbone)",
                            None,
                        ),
                    );
                }
            }
        }
        if let Some(h) = self.train.hard_negatives
            && h.k > 0
            && h.source == super::schema::NegativeSource::ZeroShot
        {
            check(
                m.backbone.is_some(),
                problem(
                    "train.hard_negatives.source",
                    "`model.backbone` set (zero_shot mines with the pretrained backbone)",
                    Some("zero_shot without a backbone".into()),
                ),
            );
        }
        for (i, reference) in self.references.iter().enumerate() {
            let at = format!("references[{i}]");
            if self.references[..i].iter().any(|r| r.name() == reference.name()) {
                check(
                    false,
                    problem(&at, "each reference once", Some(reference.name().into())),
                );
            }
            match reference {
                super::schema::Reference::Bm25(p) => {
                    check(
                        p.k1.is_finite() && p.k1 >= 0.0,
                        problem(format!("{at}.bm25.k1"), "a number >= 0", Some(p.k1.to_string())),
                    );
                    check(
                        (0.0..=1.0).contains(&p.b),
                        problem(format!("{at}.bm25.b"), "a number in [0, 1]", Some(p.b.to_string())),
                    );
                }
                super::schema::Reference::ZeroShot => check(
                    m.backbone.is_some(),
                    problem(
                        &at,
                        "`model.backbone` set (zero_shot is the pretrained backbone without training)",
                        Some("zero_shot without a backbone".into()),
                    ),
                ),
            }
        }
        check(
            self.train.steps > 0 || self.train.eval_every == 0,
            problem(
                "train.eval_every",
                "0 for a zero-shot cell (`train.steps: 0` has nothing to validate)",
                Some(self.train.eval_every.to_string()),
            ),
        );
        check(
            self.train.steps == 0 || self.train.warmup_steps <= self.train.steps,
            problem(
                "train.warmup_steps",
                format!("at most `train.steps` ({})", self.train.steps),
                Some(self.train.warmup_steps.to_string()),
            ),
        );
        if let Some(negatives) = &self.train.hard_negatives {
            check(
                negatives.k <= 16,
                problem(
                    "train.hard_negatives.k",
                    "0 (none) to 16",
                    Some(negatives.k.to_string()),
                ),
            );
            check(
                negatives.k == 0 || self.data.train_pairs.design == clirlab_data::config::PairDesign::Rendered,
                problem(
                    "train.hard_negatives",
                    "`data.train_pairs.design: rendered` (negatives are passage units of the data set's links)",
                    Some(format!("{:?}", self.data.train_pairs.design)),
                ),
            );
        }
        check(
            self.train.batch_size >= 2,
            problem(
                "train.batch_size",
                "at least 2",
                Some(self.train.batch_size.to_string()),
            ),
        );
        check(
            self.train.lr > 0.0 && self.train.lr.is_finite(),
            problem("train.lr", "> 0", Some(self.train.lr.to_string())),
        );
        check(
            self.train.weight_decay >= 0.0,
            problem("train.weight_decay", "≥ 0", Some(self.train.weight_decay.to_string())),
        );
        let settings = &self.retrieval.settings;
        check(
            settings.contains(&super::schema::RetrievalSetting::CrossLingual),
            problem(
                "retrieval.settings",
                "a list that includes `cross_lingual` (the setting of validation, early stopping and `run.trec`), \
                 with any of `monolingual`, `multilingual`",
                Some(format!("{:?}", settings.iter().map(|s| s.name()).collect::<Vec<_>>())),
            ),
        );
        for (i, s) in settings.iter().enumerate() {
            check(
                !settings[..i].contains(s),
                problem(
                    format!("retrieval.settings[{i}]"),
                    "each setting once",
                    Some(s.name().into()),
                ),
            );
        }
        check(
            self.retrieval.top_k >= 100,
            problem(
                "retrieval.top_k",
                "at least 100 (R@100 needs it)",
                Some(self.retrieval.top_k.to_string()),
            ),
        );
        check(
            !self.seeds.is_empty(),
            problem("seeds", "at least one seed", Some("[]".into())),
        );
        let mut seen = std::collections::BTreeSet::new();
        if let Some(twice) = self.seeds.iter().find(|s| !seen.insert(**s)) {
            check(
                false,
                problem(
                    "seeds",
                    "distinct seeds (each names its own cell)",
                    Some(format!("{twice} twice")),
                ),
            );
        }
        // The report's tests need their resamples; zero would fail only after every cell trained.
        check(
            self.stats.permutations >= 1,
            problem(
                "stats.permutations",
                "at least 1",
                Some(self.stats.permutations.to_string()),
            ),
        );
        check(
            self.stats.bootstrap_samples >= 1,
            problem(
                "stats.bootstrap_samples",
                "at least 1",
                Some(self.stats.bootstrap_samples.to_string()),
            ),
        );
        if let Err(e) = self.device.check_build() {
            check(
                false,
                problem("device", "a device this build can use", Some(e.to_string())),
            );
        }
        if let Some(c) = self.train.clip_norm {
            check(c > 0.0, problem("train.clip_norm", "> 0 or null", Some(c.to_string())));
        }
        check(
            self.train.patience == 0 || self.train.eval_every > 0,
            problem(
                "train.patience",
                "0 unless `train.eval_every` > 0 (early stopping needs `train.eval_every` > 0)",
                Some(format!(
                    "{} with `train.eval_every` {}",
                    self.train.patience, self.train.eval_every
                )),
            ),
        );
        let ot = &self.ot;
        check(
            ot.weight >= 0.0 && ot.weight.is_finite(),
            problem("ot.weight", "≥ 0", Some(ot.weight.to_string())),
        );
        check(
            ot.epsilon > 0.0 && ot.epsilon.is_finite(),
            problem("ot.epsilon", "> 0", Some(ot.epsilon.to_string())),
        );
        check(
            ot.max_iter >= 1,
            problem("ot.max_iter", "at least 1", Some(ot.max_iter.to_string())),
        );
        check(ot.tol >= 0.0, problem("ot.tol", "≥ 0", Some(ot.tol.to_string())));
        check(
            ot.batch_size >= 1,
            problem("ot.batch_size", "at least 1", Some(ot.batch_size.to_string())),
        );
        check(
            ot.teacher.steps >= 1,
            problem("ot.teacher.steps", "at least 1", Some(ot.teacher.steps.to_string())),
        );
        check(
            ot.teacher.batch_size >= 2,
            problem(
                "ot.teacher.batch_size",
                "at least 2",
                Some(ot.teacher.batch_size.to_string()),
            ),
        );
        check(
            ot.teacher.lr > 0.0,
            problem("ot.teacher.lr", "> 0", Some(ot.teacher.lr.to_string())),
        );
        if let Some(s) = &ot.weight_schedule
            && let Err(e) = s.validate()
        {
            check(false, Problem::other("ot.weight_schedule", e.to_string()));
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
                        problem(
                            format!("{at}ablations.{axis}"),
                            "a non-empty list of values",
                            Some("[]".into()),
                        ),
                    );
                    check(
                        axis != "seeds" && axis != "ablations" && axis != "grids",
                        problem(
                            format!("{at}ablations.{axis}"),
                            "an axis other than `seeds`, `ablations` or `grids` (use `seeds` to replicate cells)",
                            Some(format!("`{axis}`")),
                        ),
                    );
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}
