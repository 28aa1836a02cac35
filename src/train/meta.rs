//! A run's settings and position in a checkpoint's metadata, so that `--resume` continues
//! it: the one place where the keys are written (`run_meta`, `SavedRun::put`) and read
//! back (`resume_point`, `SavedRun::of`); also the text forms of a schedule and a loss.

use super::{Progress, TrainConfig};
use crate::backend::TrainStats;
use crate::checkpoint::{self, Meta};
use crate::model::Loss;
use crate::{Error, Result};
use std::path::{Path, PathBuf};

pub fn parse_schedule(s: &str) -> Result<Vec<(u32, f64)>> {
    if s == "paper" {
        return Ok(super::PAPER_SCHEDULE.to_vec());
    }
    let bad = || {
        Error::Config(format!(
            "--schedule {s:?}: expected LAST_PASS:ETA,... with increasing passes, e.g. 2:0.0005,5:0.0002"
        ))
    };
    let mut out: Vec<(u32, f64)> = Vec::new();
    for part in s.split(',') {
        let (p, e) = part.trim().split_once(':').ok_or_else(bad)?;
        let p: u32 = p.trim().parse().map_err(|_| bad())?;
        let e: f64 = e.trim().parse().map_err(|_| bad())?;
        if out.last().is_some_and(|l| l.0 >= p) || !(e.is_finite() && e > 0.0) {
            return Err(bad());
        }
        out.push((p, e));
    }
    Ok(out)
}

pub fn loss_name(l: Loss) -> String {
    match l {
        Loss::Mse => "mse".into(),
        Loss::Map { j } => format!("map(j={j})"),
    }
}

/// The metadata keys that carry a run's settings and position, so `--resume` continues it.
pub fn run_meta(
    cfg: &TrainConfig,
    n_train: usize,
    run: &SavedRun,
    completed: u32,
    progress: Option<&Progress>,
) -> Meta {
    let mut e = std::collections::BTreeMap::new();
    run.put(&mut e);
    let mut put = |k: &str, v: String| {
        e.insert(k.to_string(), v);
    };
    put("batch", cfg.batch.to_string());
    let (kind, j) = match cfg.loss {
        Loss::Mse => ("mse", 0.0),
        Loss::Map { j } => ("map", j),
    };
    put("loss_kind", kind.into());
    put("map_j", format!("{j:?}"));
    put("schedule", schedule_text(&cfg.schedule));
    put("eta_scale", format!("{:?}", cfg.eta_scale));
    put("mu", format!("{:?}", cfg.mu));
    put("hessian_samples", cfg.hessian_samples.to_string());
    put("momentum", format!("{:?}", cfg.momentum));
    put("warmup", cfg.warmup.to_string());
    put("distort", cfg.distort.to_string());
    put("train_patterns", n_train.to_string());
    if let Some(p) = progress {
        put("position", p.position.to_string());
        put("pass_loss_sum", format!("{:?}", p.stats.loss_sum));
        put("pass_errors", p.stats.errors.to_string());
        put("pass_patterns", p.stats.patterns.to_string());
    }
    Meta {
        epoch: completed,
        seed: cfg.seed,
        loss: loss_name(cfg.loss),
        extra: e,
    }
}

/// What a run needs besides its training settings to go on where it stopped: the passes
/// asked for, the test subset, the data folder and the device it trains on. Saved in every
/// checkpoint's metadata beside `run_meta`'s keys; absent from checkpoints written before.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedRun {
    pub epochs: Option<u32>,
    pub test_patterns: Option<usize>,
    pub data: Option<PathBuf>,
    /// Where it trained (`select::RunDevice`).
    pub device: Option<crate::select::RunDevice>,
}

impl SavedRun {
    pub fn of(ck: &checkpoint::Checkpoint) -> Self {
        let x = &ck.meta.extra;
        SavedRun {
            epochs: x.get("epochs").and_then(|v| v.parse().ok()),
            test_patterns: x.get("test_patterns").and_then(|v| v.parse().ok()),
            data: x.get("data").map(PathBuf::from),
            device: x
                .get("device")
                .and_then(|d| crate::select::RunDevice::parse(d)),
        }
    }

    pub fn put(&self, e: &mut std::collections::BTreeMap<String, String>) {
        if let Some(v) = self.epochs {
            e.insert("epochs".into(), v.to_string());
        }
        if let Some(v) = self.test_patterns {
            e.insert("test_patterns".into(), v.to_string());
        }
        if let Some(v) = &self.data {
            e.insert("data".into(), v.display().to_string());
        }
        if let Some(v) = &self.device {
            e.insert("device".into(), v.to_string());
        }
    }
}

/// The run settings in which `asked` (built from the command line) differs from `saved`
/// (a checkpoint's), as (clap id, flag, saved value); the caller refuses those the user
/// gave explicitly, since a resumed run keeps its own settings.
pub fn changed_settings(
    asked: &TrainConfig,
    saved: &TrainConfig,
    train_limit: Option<usize>,
    n_train: usize,
) -> Vec<(&'static str, &'static str, String)> {
    let checks: [(&str, &str, bool, String); 12] = [
        (
            "batch",
            "--batch",
            asked.batch != saved.batch,
            saved.batch.to_string(),
        ),
        (
            "seed",
            "--seed",
            asked.seed != saved.seed,
            saved.seed.to_string(),
        ),
        (
            "loss",
            "--loss",
            std::mem::discriminant(&asked.loss) != std::mem::discriminant(&saved.loss),
            loss_name(saved.loss),
        ),
        (
            "map_j",
            "--map-j",
            asked.loss != saved.loss,
            loss_name(saved.loss),
        ),
        (
            "eta_scale",
            "--eta-scale",
            asked.eta_scale != saved.eta_scale,
            saved.eta_scale.to_string(),
        ),
        (
            "schedule",
            "--schedule",
            asked.schedule != saved.schedule,
            schedule_text(&saved.schedule),
        ),
        ("mu", "--mu", asked.mu != saved.mu, saved.mu.to_string()),
        (
            "hessian_samples",
            "--hessian-samples",
            asked.hessian_samples != saved.hessian_samples,
            saved.hessian_samples.to_string(),
        ),
        (
            "distort",
            "--distort",
            asked.distort != saved.distort,
            saved.distort.to_string(),
        ),
        (
            "momentum",
            "--momentum",
            asked.momentum != saved.momentum,
            saved.momentum.to_string(),
        ),
        (
            "warmup",
            "--warmup",
            asked.warmup != saved.warmup,
            saved.warmup.to_string(),
        ),
        (
            "train_limit",
            "--train-limit",
            train_limit.is_some_and(|n| n != n_train),
            n_train.to_string(),
        ),
    ];
    checks
        .into_iter()
        .filter(|c| c.2)
        .map(|(id, flag, _, was)| (id, flag, was))
        .collect()
}

pub fn schedule_text(s: &[(u32, f64)]) -> String {
    s.iter()
        .map(|(p, e)| format!("{p}:{e:?}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The settings and position stored by `run_meta`; None for a checkpoint without them.
pub fn resume_point(
    ck: &checkpoint::Checkpoint,
    path: &Path,
) -> Result<Option<(TrainConfig, usize, Progress)>> {
    let x = &ck.meta.extra;
    let Some(kind) = x.get("loss_kind") else {
        return Ok(None);
    };
    let bad = |k: &str| Error::Checkpoint {
        path: path.to_path_buf(),
        reason: format!("metadata `{k}` is missing or unreadable"),
    };
    fn get<T: std::str::FromStr>(
        x: &std::collections::BTreeMap<String, String>,
        k: &str,
    ) -> Option<T> {
        x.get(k)?.parse().ok()
    }
    let cfg = TrainConfig {
        epochs: 0,
        batch: get(x, "batch").ok_or_else(|| bad("batch"))?,
        seed: ck.meta.seed,
        loss: match kind.as_str() {
            "mse" => Loss::Mse,
            _ => Loss::Map {
                j: get(x, "map_j").ok_or_else(|| bad("map_j"))?,
            },
        },
        eta_scale: get(x, "eta_scale").ok_or_else(|| bad("eta_scale"))?,
        schedule: parse_schedule(x.get("schedule").ok_or_else(|| bad("schedule"))?)?,
        mu: get(x, "mu").ok_or_else(|| bad("mu"))?,
        hessian_samples: get(x, "hessian_samples").ok_or_else(|| bad("hessian_samples"))?,
        momentum: get(x, "momentum").ok_or_else(|| bad("momentum"))?,
        warmup: get(x, "warmup").ok_or_else(|| bad("warmup"))?,
        // Checkpoints written before --distort existed trained without it.
        distort: get(x, "distort").unwrap_or(false),
        fault: None,
    };
    let n: usize = get(x, "train_patterns").ok_or_else(|| bad("train_patterns"))?;
    let position: usize = get(x, "position").unwrap_or(0);
    let progress = if position > 0 {
        let opt = ck
            .optimizer
            .as_ref()
            .ok_or_else(|| bad("optimizer state"))?;
        Progress {
            epoch: ck.meta.epoch + 1,
            position,
            eps: Some(opt.eps.clone()),
            stats: TrainStats {
                loss_sum: get(x, "pass_loss_sum").ok_or_else(|| bad("pass_loss_sum"))?,
                errors: get(x, "pass_errors").ok_or_else(|| bad("pass_errors"))?,
                patterns: get(x, "pass_patterns").ok_or_else(|| bad("pass_patterns"))?,
                first_non_finite: None,
            },
        }
    } else {
        Progress {
            epoch: ck.meta.epoch + 1,
            ..Progress::start()
        }
    };
    Ok(Some((cfg, n, progress)))
}
