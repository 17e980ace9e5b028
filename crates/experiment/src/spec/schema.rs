//! The experiment schema: every key of an experiment file, with its default. Loading is in
//! [`super::load`], the checks that types cannot express in [`super::validate`].

use crate::sampler::Mixing;
use crate::schedule::Schedule;
pub use clirlab_data::{DataConfig, ZeroShot};
use clirlab_model::{CostKind, DeviceSpec, OptimizerKind, Preset};
use clirlab_stats::{CompareOptions, Correction, Family, TestKind, Unit};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// An experiment as written in its YAML file: data, schedule, model, training, OT, retrieval
/// and statistics settings, the seeds and the grid of ablations. Every key has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Experiment {
    /// Names the results folder; defaults to the file's stem.
    pub name: String,
    /// Free text shown in the report.
    pub description: String,
    /// The data set and languages.
    pub data: DataConfig,
    /// A schedule name (a file `schedules/<name>.yaml`) or an inline schedule.
    pub schedule: ScheduleSpec,
    /// How training batches mix languages.
    pub sampler: SamplerConfig,
    /// The model preset and its loss settings.
    pub model: ModelConfig,
    /// The training loop.
    pub train: TrainConfig,
    /// OT distillation from the teacher.
    pub ot: OtConfig,
    /// Retrieval at evaluation time.
    pub retrieval: RetrievalConfig,
    /// The significance tests of the report.
    pub stats: StatsConfig,
    /// Where cells train: `auto` (CUDA when built with it and a GPU opens, else the CPU),
    /// `cpu`, `cuda` or `cuda:N`. Not part of cell ids.
    pub device: DeviceSpec,
    /// Every grid point is trained once per seed.
    pub seeds: Vec<u64>,
    /// Axes: a key path → the values it takes; the grid is their cartesian product.
    /// Nested maps (as `--set ablations.train.lr=[...]` produces) are read as dotted paths.
    #[serde(deserialize_with = "dotted_axes")]
    pub ablations: BTreeMap<String, Vec<serde_json::Value>>,
    /// Groups of key paths that vary together: in each group every list has the same length
    /// and the i-th values form one point; a group combines with the other axes as one axis.
    pub zipped: Vec<BTreeMap<String, Vec<serde_json::Value>>>,
    /// Axes that apply only to the points where a predicate on other keys holds.
    pub conditional: Vec<ConditionalAxes>,
    /// Points to leave out: a point goes when it has every value of one rule (axis → value).
    pub exclude: Vec<BTreeMap<String, serde_json::Value>>,
    /// Extra points (key path → value), added after the product and the exclusions.
    pub include: Vec<BTreeMap<String, serde_json::Value>>,
    /// Named sub-grids whose union is the experiment's grid; the top-level grid keys above are
    /// shared by every one of them.
    pub grids: BTreeMap<String, GridSpec>,
    /// Reference rows of the report, apart from the grid and tested against the baseline like a
    /// grid point: `bm25`, `{bm25: {k1: 0.9, b: 0.4}}`, `zero_shot` (the pretrained
    /// `model.backbone` without training). Each is computed once per data set and cached under
    /// the results folder. Absent: none (and left out of the serialised experiment).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
}

/// One named sub-grid: the same grid keys as the top level of an experiment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GridSpec {
    /// Axes: a key path → the values it takes (see [`Experiment::ablations`]).
    #[serde(deserialize_with = "dotted_axes")]
    pub ablations: BTreeMap<String, Vec<serde_json::Value>>,
    /// Groups of key paths that vary together (see [`Experiment::zipped`]).
    pub zipped: Vec<BTreeMap<String, Vec<serde_json::Value>>>,
    /// Axes that apply only where a predicate holds (see [`Experiment::conditional`]).
    pub conditional: Vec<ConditionalAxes>,
    /// Points to leave out (see [`Experiment::exclude`]).
    pub exclude: Vec<BTreeMap<String, serde_json::Value>>,
    /// Extra points (see [`Experiment::include`]).
    pub include: Vec<BTreeMap<String, serde_json::Value>>,
}

/// Axes (and zipped groups) crossed only with the points where every `when` test holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionalAxes {
    /// Key path → the value it must have, or `{in: [...]}`, `{not: v}`, `{not_in: [...]}`;
    /// tested on the point's axis values, then on the experiment's resolved configuration.
    pub when: BTreeMap<String, serde_json::Value>,
    /// Axes crossed with the points where the tests hold.
    #[serde(default, deserialize_with = "dotted_axes")]
    pub ablations: BTreeMap<String, Vec<serde_json::Value>>,
    /// Zipped groups crossed with the points where the tests hold.
    #[serde(default)]
    pub zipped: Vec<BTreeMap<String, Vec<serde_json::Value>>>,
}

fn dotted_axes<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<BTreeMap<String, Vec<serde_json::Value>>, D::Error> {
    let map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
    let mut flat = BTreeMap::new();
    clirlab_util::dotted::flatten_dotted("", &map, &|_, v| v.is_array(), &mut flat).map_err(|(path, other)| {
        de::Error::custom(format!("axis `{path}`: expected a list of values, found {other}"))
    })?;
    Ok(flat
        .into_iter()
        .map(|(path, values)| match values {
            serde_json::Value::Array(values) => (path, values),
            _ => unreachable!("only lists are leaves"),
        })
        .collect())
}

impl Default for Experiment {
    fn default() -> Self {
        Self {
            name: String::new(),
            description: String::new(),
            data: DataConfig::default(),
            schedule: ScheduleSpec::Inline(Schedule::Constant { value: 0.5 }),
            sampler: SamplerConfig::default(),
            model: ModelConfig::default(),
            train: TrainConfig::default(),
            ot: OtConfig::default(),
            retrieval: RetrievalConfig::default(),
            stats: StatsConfig::default(),
            device: DeviceSpec::Auto,
            seeds: vec![1],
            ablations: BTreeMap::new(),
            zipped: Vec::new(),
            conditional: Vec::new(),
            exclude: Vec::new(),
            include: Vec::new(),
            grids: BTreeMap::new(),
            references: Vec::new(),
        }
    }
}

/// A reference row of the report (`references`): a retriever that is not a grid point.
#[derive(Debug, Clone, PartialEq)]
pub enum Reference {
    /// Lucene's BM25 over the words of the texts.
    Bm25(Bm25Params),
    /// The experiment's pretrained `model.backbone`, used with no training.
    ZeroShot,
}

impl Reference {
    /// The names a reference is written by.
    pub const NAMES: [&'static str; 2] = ["bm25", "zero_shot"];

    /// Its name (`bm25`, `zero_shot`).
    pub fn name(&self) -> &'static str {
        match self {
            Reference::Bm25(_) => "bm25",
            Reference::ZeroShot => "zero_shot",
        }
    }
}

/// The parameters of BM25 (`references: [{bm25: {k1: 1.2, b: 0.75}}]`), Lucene's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bm25Params {
    /// Term-frequency saturation (≥ 0).
    pub k1: f64,
    /// Length normalisation (in [0, 1]).
    pub b: f64,
}

impl Default for Bm25Params {
    fn default() -> Self {
        Self { k1: 1.2, b: 0.75 }
    }
}

/// `zero_shot` written as a map takes no parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

impl Serialize for Reference {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Reference::ZeroShot => s.serialize_str("zero_shot"),
            Reference::Bm25(p) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("bm25", p)?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct RefVisitor;
        impl<'de> Visitor<'de> for RefVisitor {
            type Value = Reference;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a reference: `bm25`, `{bm25: {k1: 1.2, b: 0.75}}` or `zero_shot`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Reference, E> {
                match v {
                    "bm25" => Ok(Reference::Bm25(Bm25Params::default())),
                    "zero_shot" => Ok(Reference::ZeroShot),
                    other => Err(E::unknown_variant(other, &Reference::NAMES)),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Reference, A::Error> {
                let Some(name) = map.next_key::<String>()? else {
                    return Err(de::Error::invalid_length(0, &"one reference name with its parameters"));
                };
                let reference = match name.as_str() {
                    "bm25" => Reference::Bm25(map.next_value()?),
                    "zero_shot" => {
                        map.next_value::<NoParams>()?;
                        Reference::ZeroShot
                    }
                    other => return Err(de::Error::unknown_variant(other, &Reference::NAMES)),
                };
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::invalid_length(2, &"one reference name per entry"));
                }
                Ok(reference)
            }
        }
        d.deserialize_any(RefVisitor)
    }
}

/// The `sampler` key: how training batches are drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SamplerConfig {
    /// How the languages of a batch are mixed.
    pub mixing: Mixing,
}

/// The `model` key: the architecture preset and the contrastive loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// A model trained from scratch (ignored, and left at its default, with a backbone).
    pub preset: Preset,
    /// InfoNCE temperature.
    pub temperature: f64,
    /// Tokens kept per text.
    pub max_len: usize,
    /// A pretrained encoder to fine-tune instead of a preset trained from scratch: `me5-small`
    /// or the path of a HuggingFace folder of the BERT family (`config.json`,
    /// `model.safetensors`, `tokenizer.json`; `model_type` `bert` or `xlm-roberta`); absent:
    /// the preset. Left out of the serialised config when absent, so ids stay as they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backbone: Option<Backbone>,
    /// With a backbone: the top N of its layers train (default: all, 12).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_layers: Option<usize>,
    /// With a backbone: position and token-type embeddings and the embedding LayerNorm train
    /// (default false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_embeddings: Option<bool>,
    /// With a backbone: the word-embedding table trains (default false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_word_embeddings: Option<bool>,
    /// With a backbone: `mean` or `cls` pooling (default: the folder's sentence-transformers
    /// pooling, else `mean`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pooling: Option<clirlab_model::bert::Pooling>,
    /// With a backbone: the text put before every query (default: the folder's
    /// sentence-transformers `query` prompt; `query: ` for me5-small; none otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_prefix: Option<String>,
    /// With a backbone: the text put before every passage (default: the folder's `passage`
    /// or `document` prompt; `passage: ` for me5-small; none otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passage_prefix: Option<String>,
}

/// A pretrained encoder (`model.backbone`): `me5-small`, or the path of a HuggingFace folder
/// of the BERT family (`config.json`, `model.safetensors`, `tokenizer.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backbone {
    /// intfloat's multilingual-E5-small (12 layers, hidden 384, XLM-R vocabulary), prepared
    /// on first use by `clirlab data prepare me5-small`.
    Me5Small,
    /// A checkpoint folder of the researcher's.
    Folder(BackboneFolder),
}

/// A backbone folder with what a cell's identity needs of it. Written into cell
/// configurations as a map; in an experiment file it is just the path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackboneFolder {
    /// The folder (absolute once resolved; a relative path is taken from the working folder).
    pub folder: PathBuf,
    /// SHA-256 of its weights, configuration and tokenizer (empty until resolved).
    #[serde(default)]
    pub sha256: String,
    /// Its encoder layers (0 until resolved).
    #[serde(default)]
    pub layers: usize,
}

impl Serialize for Backbone {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Backbone::Me5Small => s.serialize_str(clirlab_model::bert::ME5_SMALL),
            Backbone::Folder(f) => f.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Backbone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct BackboneVisitor;
        impl<'de> Visitor<'de> for BackboneVisitor {
            type Value = Backbone;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(
                    f,
                    "`{}` or the path of a model folder (config.json, model.safetensors, tokenizer.json)",
                    clirlab_model::bert::ME5_SMALL
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Backbone, E> {
                if v == clirlab_model::bert::ME5_SMALL {
                    return Ok(Backbone::Me5Small);
                }
                if v.trim().is_empty() {
                    return Err(E::invalid_value(de::Unexpected::Str(v), &self));
                }
                Ok(Backbone::Folder(BackboneFolder {
                    folder: PathBuf::from(v),
                    sha256: String::new(),
                    layers: 0,
                }))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<Backbone, A::Error> {
                BackboneFolder::deserialize(de::value::MapAccessDeserializer::new(map)).map(Backbone::Folder)
            }
        }
        d.deserialize_any(BackboneVisitor)
    }
}

impl Backbone {
    /// The model `resolve_model` prepares and finds: `me5-small` or the folder's path.
    pub fn model_name(&self) -> String {
        match self {
            Backbone::Me5Small => clirlab_model::bert::ME5_SMALL.to_string(),
            Backbone::Folder(f) => f.folder.to_string_lossy().into_owned(),
        }
    }

    /// How reports name it: `me5-small` or the folder's name.
    pub fn label(&self) -> String {
        match self {
            Backbone::Me5Small => clirlab_model::bert::ME5_SMALL.to_string(),
            Backbone::Folder(f) => f
                .folder
                .file_name()
                .map_or_else(|| f.folder.display().to_string(), |n| n.to_string_lossy().into_owned()),
        }
    }

    /// Its number of layers.
    pub fn num_layers(&self) -> usize {
        match self {
            Backbone::Me5Small => 12,
            Backbone::Folder(f) => f.layers,
        }
    }
}

impl ModelConfig {
    /// The one place that decides the text prefix of a side: `model.query_prefix` /
    /// `model.passage_prefix`, else E5's `query: ` / `passage: ` for me5-small (a folder's
    /// prompts are filled in when it is resolved); presets use none. Used by training,
    /// validation and retrieval.
    pub fn prefix(&self, side: clirlab_model::bert::encode::Side) -> &str {
        use clirlab_model::bert::encode::Side;
        let set = match side {
            Side::Query => &self.query_prefix,
            Side::Passage => &self.passage_prefix,
        };
        match (set, &self.backbone) {
            (Some(p), _) => p,
            (None, Some(Backbone::Me5Small)) => side.prefix(),
            (None, _) => "",
        }
    }

    /// Resolves a folder backbone: its path made absolute, its files checked, its fingerprint
    /// and layers read, and the pooling and prefixes the experiment leaves open taken from
    /// its sentence-transformers files. A folder already resolved must still match its
    /// fingerprint. Nothing to do for me5-small or a preset.
    pub fn resolve_backbone(&mut self) -> anyhow::Result<()> {
        use clirlab_model::bert::folder;
        let Some(Backbone::Folder(f)) = &mut self.backbone else {
            return Ok(());
        };
        let dir = folder::check_folder(&f.folder)?;
        let sha256 = folder::fingerprint_cached(&dir)?;
        anyhow::ensure!(
            f.sha256.is_empty() || f.sha256 == sha256,
            "{}: the folder's files changed since this configuration was made (fingerprint {}, now {sha256})",
            dir.display(),
            f.sha256
        );
        let shape = folder::Shape::read(&dir)?;
        let st = folder::SentenceTransformers::read(&dir)?;
        *f = BackboneFolder {
            folder: dir,
            sha256,
            layers: shape.layers,
        };
        let [query, passage] = st.prompts;
        self.pooling.get_or_insert(st.pooling.unwrap_or_default());
        self.query_prefix.get_or_insert(query.unwrap_or_default());
        self.passage_prefix.get_or_insert(passage.unwrap_or_default());
        Ok(())
    }

    /// What identifies the backbone's embeddings before training, for cache keys: `me5-small`
    /// as it always was, or the backbone with its fingerprint, pooling and prefixes.
    pub fn backbone_identity(&self) -> Option<String> {
        let backbone = self.backbone.as_ref()?;
        let plain = (&self.pooling, &self.query_prefix, &self.passage_prefix) == (&None, &None, &None);
        Some(match backbone {
            Backbone::Me5Small if plain => clirlab_model::bert::ME5_SMALL.to_string(),
            _ => serde_json::json!([backbone, self.pooling, self.query_prefix, self.passage_prefix]).to_string(),
        })
    }

    /// Which parts of the backbone train, from `model.train_layers`, `model.train_embeddings`
    /// and `model.train_word_embeddings` (defaults: every layer, no embeddings).
    pub fn fine_tune(&self) -> Option<clirlab_model::bert::FineTune> {
        let backbone = self.backbone.as_ref()?;
        Some(clirlab_model::bert::FineTune {
            top_layers: self.train_layers.unwrap_or(backbone.num_layers()),
            embeddings: self.train_embeddings.unwrap_or(false),
            word_embeddings: self.train_word_embeddings.unwrap_or(false),
        })
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            preset: Preset::Tiny,
            temperature: 0.05,
            max_len: 32,
            backbone: None,
            train_layers: None,
            train_embeddings: None,
            train_word_embeddings: None,
            pooling: None,
            query_prefix: None,
            passage_prefix: None,
        }
    }
}

/// Learning-rate decay after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Decay {
    /// Constant `lr` after warm-up.
    None,
    /// Linear from `lr` at the end of warm-up to 0 at the last step.
    #[default]
    Linear,
}

/// The `train` key: the training loop of a cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Optimizer steps.
    pub steps: usize,
    /// Query–document pairs per batch (in-batch negatives need at least 2).
    pub batch_size: usize,
    /// Adam or AdamW.
    pub optimizer: OptimizerKind,
    /// Peak learning rate.
    pub lr: f64,
    /// Weight decay (decoupled for AdamW).
    pub weight_decay: f64,
    /// Linear warm-up from 0 to `lr` over this many steps.
    pub warmup_steps: usize,
    /// Learning-rate decay after warm-up.
    pub decay: Decay,
    /// Global gradient-norm clipping threshold (null: no clipping).
    pub clip_norm: Option<f64>,
    /// Evaluate nDCG@10 on the validation split of the target languages every this many
    /// steps (0: never) and keep the best checkpoint.
    pub eval_every: usize,
    /// Stop after this many evaluations without improvement (0: never stop early).
    pub patience: usize,
    /// Hard negatives in the InfoNCE denominator beside the in-batch ones, e.g. `{k: 1}`
    /// (absent: in-batch negatives only). Needs `data.train_pairs.design: rendered`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_negatives: Option<HardNegatives>,
}

/// `train.hard_negatives`: how many per pair, and how they are mined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HardNegatives {
    /// Hard negatives per training pair (0 to 16; 0: none, as when the key is absent, which
    /// lets an ablation switch them off).
    pub k: usize,
    /// How they are found: `bm25` (the training passages BM25 ranks highest for the pair's
    /// query, in the pivot language, minus the query's positives), `zero_shot` (the same by the
    /// untrained backbone's cosine; needs `model.backbone`) or `given` (the data set's own,
    /// `train/negatives.tsv`, e.g. from an imported pairs file).
    pub source: NegativeSource,
}

impl Default for HardNegatives {
    fn default() -> Self {
        Self {
            k: 1,
            source: NegativeSource::Bm25,
        }
    }
}

/// Where hard negatives come from (`train.hard_negatives.source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NegativeSource {
    /// BM25 (Lucene's defaults) over the pivot-language renderings of the training passages,
    /// mined once per cell before training.
    #[default]
    Bm25,
    /// The pretrained backbone's nearest passages (cosine of its embeddings before training),
    /// mined once per data set, pool and model and kept with the results' artifacts.
    ZeroShot,
    /// The data set's own negatives of each pair, in the order given.
    Given,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 200,
            batch_size: 32,
            optimizer: OptimizerKind::Adamw,
            lr: 2e-3,
            weight_decay: 0.01,
            warmup_steps: 10,
            decay: Decay::Linear,
            clip_norm: Some(5.0),
            eval_every: 0,
            patience: 0,
            hard_negatives: None,
        }
    }
}

/// OT distillation from an English teacher retriever (OPTICAL-style).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtConfig {
    /// Whether the OT term is added to the loss.
    pub enabled: bool,
    /// λ in InfoNCE + λ·OT.
    pub weight: f64,
    /// Optional curriculum of λ: λ(t) = weight · s(t), s an inline schedule.
    pub weight_schedule: Option<Schedule>,
    /// Entropic regularisation ε of Sinkhorn.
    pub epsilon: f64,
    /// Most Sinkhorn iterations.
    pub max_iter: usize,
    /// Stop Sinkhorn when every row marginal is within `tol`.
    pub tol: f64,
    /// The cost between two token embeddings.
    pub cost: CostKind,
    /// Stop gradients through the transport plan (∂/∂C = P).
    pub detach_plan: bool,
    /// Bitext pairs per step.
    pub batch_size: usize,
    /// Start the student from the teacher's weights (also when OT is off, so that an
    /// ablation of OT changes one thing only). Presets only: with `model.backbone` the
    /// teacher is the pretrained model the student starts from anyway.
    pub init_from_teacher: bool,
    /// How a preset's teacher is trained (no value with `model.backbone`, whose teacher is the
    /// pretrained model itself).
    pub teacher: TeacherConfig,
}

impl Default for OtConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            weight: 0.1,
            weight_schedule: None,
            epsilon: 0.05,
            max_iter: 50,
            tol: 1e-3,
            cost: CostKind::Cosine,
            detach_plan: false,
            batch_size: 16,
            init_from_teacher: false,
            teacher: TeacherConfig::default(),
        }
    }
}

/// The English teacher: the same model preset trained on monolingual pairs only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TeacherConfig {
    /// Optimizer steps.
    pub steps: usize,
    /// Pairs per batch.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f64,
    /// Seed of its initialisation and batches (shared by every cell, so one teacher serves all).
    pub seed: u64,
}

impl Default for TeacherConfig {
    fn default() -> Self {
        Self {
            steps: 300,
            batch_size: 32,
            lr: 2e-3,
            seed: 0,
        }
    }
}

/// The `retrieval` key: ranking at evaluation time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrievalConfig {
    /// Documents retrieved per query (at least 100, for R@100).
    pub top_k: usize,
    /// The retrieval settings the test split is evaluated in (`retrieval::settings`); always
    /// with `cross_lingual`, the setting of validation and early stopping. Left out of the
    /// serialised config when it is the default, so that existing cell ids stay as they were.
    #[serde(skip_serializing_if = "RetrievalSetting::is_default_list")]
    pub settings: Vec<RetrievalSetting>,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        Self {
            top_k: 100,
            settings: vec![RetrievalSetting::CrossLingual],
        }
    }
}

/// A retrieval setting of Elmahdy et al. (2024) (`retrieval.settings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetrievalSetting {
    /// Low-resource queries over the English documents (the default, and the only one trained for).
    CrossLingual,
    /// Low-resource queries over the same language's verses; English over English.
    Monolingual,
    /// Low-resource queries over English and every selected language's verses pooled.
    Multilingual,
}

impl RetrievalSetting {
    /// Every setting, as written in experiment files.
    pub const ALL: [RetrievalSetting; 3] = [
        RetrievalSetting::CrossLingual,
        RetrievalSetting::Monolingual,
        RetrievalSetting::Multilingual,
    ];

    /// Its name in experiment files.
    pub const fn name(self) -> &'static str {
        match self {
            RetrievalSetting::CrossLingual => "cross_lingual",
            RetrievalSetting::Monolingual => "monolingual",
            RetrievalSetting::Multilingual => "multilingual",
        }
    }

    /// What its task names start with in `metrics.csv` and the report: nothing for the
    /// cross-lingual setting, so that its outputs are those of before the key existed.
    pub const fn task_prefix(self) -> &'static str {
        match self {
            RetrievalSetting::CrossLingual => "",
            RetrievalSetting::Monolingual => "mono:",
            RetrievalSetting::Multilingual => "multi:",
        }
    }

    /// Whether `settings` is the default list (`[cross_lingual]`).
    pub fn is_default_list(settings: &[RetrievalSetting]) -> bool {
        settings == [RetrievalSetting::CrossLingual]
    }
}

/// The `stats` key: the significance tests of the report against the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsConfig {
    /// The baseline grid point, by its axis values, e.g. `{schedule: constant}`.
    pub baseline: BTreeMap<String, serde_json::Value>,
    /// t | wilcoxon | randomization | bootstrap | tukey
    pub test: TestKind,
    /// none | bonferroni | holm | bh | by
    pub correction: Correction,
    /// Monte Carlo permutations of the randomization test (exact enumeration for small n).
    pub permutations: usize,
    /// Resamples of the bootstrap test.
    pub bootstrap_samples: usize,
    /// Seed of the randomization and bootstrap tests.
    pub seed: u64,
    /// seeds | queries: whether seeds count as a source of variance (the seed-aware test
    /// wherever a side's seed variance is known) or only queries do.
    pub unit: Unit,
    /// Equivalence margin δ in the metric's units (e.g. 0.01 for nDCG@10): when set, every
    /// comparison also gets two one-sided tests (TOST, corrected like the difference test) and
    /// a verdict: equivalent (|Δ| < δ shown), different, or inconclusive. Unset: no verdicts.
    #[serde(deserialize_with = "equivalence_margin")]
    pub equivalence_margin: Option<f64>,
    /// metric | report: the family each correction runs over: the comparisons of one metric
    /// on one task, or every comparison of the report at once (all tasks and metrics).
    pub family: Family,
}

/// `stats.equivalence_margin`: absent, null, or a finite number > 0.
fn equivalence_margin<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v: Option<f64> = Option::deserialize(d)?;
    match v {
        Some(x) if !(x.is_finite() && x > 0.0) => Err(serde::de::Error::custom(format!(
            "expected a margin > 0 in the metric's units (e.g. 0.01), found {x}"
        ))),
        other => Ok(other),
    }
}

impl Default for StatsConfig {
    /// The defaults of `clirlab compare` ([`CompareOptions::default`]).
    fn default() -> Self {
        let c = CompareOptions::default();
        Self {
            baseline: BTreeMap::new(),
            test: c.test,
            correction: c.correction,
            permutations: c.permutations,
            bootstrap_samples: c.bootstrap_samples,
            seed: c.seed,
            unit: Unit::default(),
            equivalence_margin: None,
            family: Family::default(),
        }
    }
}

/// A schedule as written: a name to look up under `schedules/`, or inline.
#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleSpec {
    /// A name, looked up as `schedules/<name>.yaml`.
    Named(String),
    /// A schedule written in place.
    Inline(Schedule),
}

impl Serialize for ScheduleSpec {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            ScheduleSpec::Named(name) => s.serialize_str(name),
            ScheduleSpec::Inline(schedule) => schedule.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ScheduleSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct SpecVisitor;
        impl<'de> Visitor<'de> for SpecVisitor {
            type Value = ScheduleSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a schedule name (a file under schedules/) or an inline schedule such as {kind: linear, start: 0, end: 1}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<ScheduleSpec, E> {
                Ok(ScheduleSpec::Named(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<ScheduleSpec, A::Error> {
                Schedule::deserialize(de::value::MapAccessDeserializer::new(map)).map(ScheduleSpec::Inline)
            }
        }
        d.deserialize_any(SpecVisitor)
    }
}

/// A loaded experiment and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedExperiment {
    /// The experiment with every layer applied, validated.
    pub experiment: Experiment,
    /// The experiment file.
    pub source: PathBuf,
}

impl Experiment {
    /// Puts `grid` in place of the top-level grid keys and returns what they were: the one
    /// place that names an experiment's grid keys one by one.
    pub fn replace_top_grid(&mut self, grid: GridSpec) -> GridSpec {
        GridSpec {
            ablations: std::mem::replace(&mut self.ablations, grid.ablations),
            zipped: std::mem::replace(&mut self.zipped, grid.zipped),
            conditional: std::mem::replace(&mut self.conditional, grid.conditional),
            exclude: std::mem::replace(&mut self.exclude, grid.exclude),
            include: std::mem::replace(&mut self.include, grid.include),
        }
    }

    /// The top-level grid keys as a grid of their own.
    pub fn top_grid(&self) -> GridSpec {
        self.clone().replace_top_grid(GridSpec::default())
    }

    /// The experiment without a grid: no top-level grid keys and no sub-grids.
    pub fn without_grids(&self) -> Experiment {
        let mut plain = self.clone();
        plain.replace_top_grid(GridSpec::default());
        plain.grids = BTreeMap::new();
        plain
    }

    /// The keys of an experiment file that shape the grid rather than a cell: those of
    /// [`GridSpec`], and `grids`.
    pub fn grid_keys() -> Vec<String> {
        let grid = serde_json::to_value(GridSpec::default()).expect("a grid serializes");
        let mut keys: Vec<String> = grid
            .as_object()
            .expect("a struct serializes to a map")
            .keys()
            .cloned()
            .collect();
        keys.push("grids".into());
        keys
    }
}
