//! The English teacher of OT distillation. For a preset: the cell's preset trained on
//! monolingual pairs only, shared by every cell that needs the same one, a content-addressed
//! artifact under the shared artifacts folder (`teacher-<key>/model.safetensors` and
//! `teacher.json`, written last), trained once and guarded by a lock file. For a backbone
//! (OPTICAL's set-up): the pretrained model itself, frozen, never trained.

use super::{TrainPaths, lr::optimizer_settings, train};
use crate::grid::{CellConfig, content_hash};
use crate::schedule::Schedule;
use crate::spec::{OtConfig, TeacherConfig, TrainConfig};
use anyhow::{Context, Result};
use clirlab_data::format::Dataset;
use clirlab_model::tokenizer::Tokenizer;
use clirlab_model::{self as model, TrainableEncoder};
use clirlab_util::fs::write_json_atomic;
use clirlab_util::lock::LockFile;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `teacher.json` beside a teacher checkpoint: what it is and how it was made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TeacherRecord {
    /// The content key of the teacher.
    pub key: String,
    /// The model preset.
    pub preset: String,
    /// The data set it trained on.
    pub dataset: String,
    /// Hash of the tokenizer it used.
    pub tokenizer_hash: String,
    /// Its training settings.
    pub config: TeacherConfig,
    /// The loss of its last step.
    pub final_loss: f64,
    /// Seconds of training.
    pub train_seconds: f64,
    /// The crate version that trained it.
    pub clirlab_version: String,
}

/// A loaded teacher.
pub struct Teacher {
    /// The teacher encoder, weights loaded.
    pub encoder: Box<dyn TrainableEncoder>,
    /// Its weights file (for a backbone: the pretrained model's).
    pub checkpoint: PathBuf,
}

/// The English teacher of `cfg`. With `model.backbone`: the pretrained backbone, loaded for
/// inference ([`pretrained_teacher`]). Otherwise trained on monolingual pairs only, with the cell's preset,
/// tokenizer, temperature and length. Stored under `artifacts/teacher-<hash>/`, keyed by
/// everything that determines its weights, and trained once even when several cells (or
/// processes) need it at the same time.
pub fn teacher(cfg: &CellConfig, dataset: &Dataset, tokenizer: &Tokenizer, paths: &TrainPaths) -> Result<Teacher> {
    if let Some(backbone) = &cfg.model.backbone {
        return pretrained_teacher(cfg, backbone);
    }
    let artifacts = paths.artifacts;
    let tc = &cfg.ot.teacher;
    let tokenizer_hash = content_hash(&tokenizer.to_json()?, 16);
    let key = content_hash(&(&cfg.data, &cfg.model, tc, &tokenizer_hash), 16);
    let dir = artifacts.join(format!("teacher-{key}"));
    let checkpoint = dir.join("model.safetensors");
    let record_path = dir.join("teacher.json");
    std::fs::create_dir_all(artifacts).with_context(|| format!("creating {}", artifacts.display()))?;
    let _lock = LockFile::acquire(&artifacts.join(format!("teacher-{key}.lock")), paths.job_alive)?;
    let mut encoder = model::build(
        cfg.model.preset,
        tc.seed,
        optimizer_settings(&cfg.train),
        cfg.device.resolve()?,
    )?;
    if record_path.is_file() && checkpoint.is_file() {
        encoder.load(&checkpoint)?;
        return Ok(Teacher { encoder, checkpoint });
    }
    let started = std::time::Instant::now();
    let teacher_cfg = CellConfig {
        schedule_name: "teacher".into(),
        schedule: Schedule::Constant { value: 0.0 },
        train: TrainConfig {
            steps: tc.steps,
            batch_size: tc.batch_size,
            lr: tc.lr,
            eval_every: 0,
            patience: 0,
            ..cfg.train.clone()
        },
        ot: OtConfig {
            enabled: false,
            init_from_teacher: false,
            ..cfg.ot.clone()
        },
        seed: tc.seed,
        ..cfg.clone()
    };
    std::fs::create_dir_all(&dir)?;
    let trained = train(
        &teacher_cfg,
        dataset,
        tokenizer,
        &TrainPaths {
            checkpoint: &checkpoint,
            ..*paths
        },
        |_| {},
    )?;
    let record = TeacherRecord {
        key,
        preset: format!("{:?}", cfg.model.preset).to_lowercase(),
        dataset: cfg.data.dataset.clone(),
        tokenizer_hash,
        config: tc.clone(),
        final_loss: trained.log.last().map(|r| r.loss).unwrap_or(f64::NAN),
        train_seconds: started.elapsed().as_secs_f64(),
        clirlab_version: env!("CARGO_PKG_VERSION").into(),
    };
    // Written last: its presence means the teacher is complete.
    write_json_atomic(&record_path, &record)?;
    tracing::info!(teacher = %dir.display(), "teacher trained");
    Ok(Teacher {
        encoder: trained.encoder,
        checkpoint,
    })
}

/// The teacher of a backbone cell, as in OPTICAL: the pretrained model on the English side,
/// with nothing trainable (no tape, no optimizer state; a second copy of the weights in memory,
/// about 470 MB for me5-small). Its final token states are kept in a state store of their own
/// (`<data_dir>/states/<base>-after<layers>-<kernels>/`), so that each English text runs through
/// it once for every step, cell and experiment on this data folder.
fn pretrained_teacher(cfg: &CellConfig, backbone: &crate::spec::Backbone) -> Result<Teacher> {
    let dir = super::backbone_dir(backbone)?;
    let frozen = model::bert::FineTune {
        top_layers: 0,
        embeddings: false,
        word_embeddings: false,
    };
    let mut encoder = model::bert::load(
        &dir,
        cfg.model.pooling,
        frozen,
        optimizer_settings(&cfg.train),
        cfg.device.resolve()?,
    )?;
    encoder.use_state_store(&clirlab_data::data_dir().join(super::STATE_STORES))?;
    Ok(Teacher {
        encoder,
        checkpoint: dir.join("model.safetensors"),
    })
}
