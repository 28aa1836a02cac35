//! *Internal:* `lenet-gpu bench`: what each backend does per second, measured the same way for all.
//!
//! For a backend and a batch size: one validation step (its loss must match the CPU
//! reference's for the same parameters and patterns, or nothing is timed), a warm-up, then
//! `steps` training steps (forward, backward, update), one SDLM estimate over
//! `hessian_samples` patterns, and one pass over the test set.

use crate::backend::{Backend, Split, TrainStats};
use crate::cpu::batch::CpuBackend;
use crate::model::params;
use crate::train::step_sizes;
use crate::{Error, Result};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Timed training steps per backend and batch.
    pub steps: usize,
    /// Untimed training steps before them (pipelines, caches, thread pools warm up).
    pub warmup: usize,
    /// Patterns of the timed SDLM estimate.
    pub hessian_samples: usize,
    pub seed: u64,
}

/// Multiply-adds of one pattern's forward pass (`model::layers`).
pub const FORWARD_MACS: u64 = crate::model::layers::FORWARD_MACS;

/// Multiply-adds of one pattern's backward pass: every weight gradient (as many as the
/// forward pass has, C1 to F6) and every input gradient except C1's, which nothing needs.
pub const BACKWARD_MACS: u64 = 2 * FORWARD_MACS - 6 * 784 * 25 - 10 * 84 + 10 * 84;

/// Arithmetic of one training pattern (forward and backward) and of one evaluated pattern,
/// in floating-point operations (a multiply-add is two): the basis of `bench`'s GFLOP/s.
pub const TRAIN_FLOP_PER_PATTERN: u64 = 2 * (FORWARD_MACS + BACKWARD_MACS);
pub const EVAL_FLOP_PER_PATTERN: u64 = 2 * FORWARD_MACS;

/// Timed passes over the test set per measurement (the median is reported).
pub const EVAL_REPEATS: usize = 5;

/// One backend at one batch size.
#[derive(Debug, Clone)]
pub struct BenchResult {
    pub backend: String,
    pub batch: usize,
    pub train_samples_per_s: f64,
    /// Seconds a 60,000-pattern training pass takes at that rate.
    pub epoch_seconds: f64,
    /// Seconds of one SDLM estimate over `hessian_samples` patterns.
    pub hessian_seconds: f64,
    pub eval_samples_per_s: f64,
    /// Test error of the parameters after the timed steps (a sanity check, not a result).
    pub eval_error: f64,
    /// Loss of the validation step, and the CPU reference's for the same step.
    pub check_loss: f64,
    pub reference_loss: f64,
    /// Peak resident host memory of the process while this backend ran, bytes (Linux).
    pub peak_host_bytes: Option<u64>,
    /// Device buffers held by the backend, bytes (GPU backends).
    pub device_bytes: Option<u64>,
}

/// Training patterns for `n` steps of `batch`: a seeded shuffle, repeated as needed.
pub fn order(train_len: usize, n: usize, seed: u64) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut all: Vec<u32> = (0..train_len as u32).collect();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        all.shuffle(&mut rng);
        out.extend_from_slice(&all[..(n - out.len()).min(all.len())]);
    }
    out
}

/// Loss of one training step from the initial parameters of `seed`, with fixed step sizes.
fn first_step_loss(b: &mut dyn Backend, idx: &[u32], seed: u64) -> Result<f64> {
    b.set_params(&params::init(seed))?;
    b.set_step_sizes(&vec![1e-3; params::N_PARAMS])?;
    b.set_velocity(&vec![0.0; params::N_PARAMS])?;
    Ok(b.train(idx, idx.len())?.loss_sum)
}

/// The CPU reference's loss for the validation step of `batch` (what every backend must
/// reproduce before it is timed).
pub fn reference_loss(
    cpu: &mut CpuBackend,
    train_len: usize,
    batch: usize,
    seed: u64,
) -> Result<f64> {
    let idx = order(train_len, batch, seed);
    first_step_loss(cpu, &idx, seed)
}

/// Measures `b` at `batch`; `reference` is the CPU reference's validation loss.
pub fn measure(
    b: &mut dyn Backend,
    train_len: usize,
    test_len: usize,
    batch: usize,
    reference: f64,
    cfg: &BenchConfig,
) -> Result<BenchResult> {
    reset_peak_memory();
    let check = validate(b, train_len, batch, reference, cfg.seed)?;
    let hessian_seconds = time_hessian(b, train_len, cfg)?;
    let train_samples_per_s = time_training(b, train_len, batch, cfg)?;
    let (eval_seconds, ev) = time_evaluation(b)?;
    Ok(BenchResult {
        backend: b.describe(),
        batch,
        train_samples_per_s,
        epoch_seconds: 60_000.0 / train_samples_per_s,
        hessian_seconds,
        eval_samples_per_s: test_len as f64 / eval_seconds,
        eval_error: ev.error_rate(),
        check_loss: check,
        reference_loss: reference,
        peak_host_bytes: peak_memory(),
        device_bytes: b.device_memory(),
    })
}

/// Validates: the same step from the same parameters must give the reference's loss.
/// Returns the backend's loss.
fn validate(
    b: &mut dyn Backend,
    train_len: usize,
    batch: usize,
    reference: f64,
    seed: u64,
) -> Result<f64> {
    let idx = order(train_len, batch, seed);
    let check = first_step_loss(b, &idx, seed)?;
    let rel = (check - reference).abs() / reference.abs().max(1e-30);
    if !rel.is_finite() || rel > 1e-4 {
        return Err(Error::Gpu(format!(
            "{}: the first training step's loss is {check}, the CPU reference's {reference} \
             (relative difference {rel:.1e} > 1e-4); not timing a backend that computes \
             something else. Run `cargo test --release --test gpu` to see which kernel differs",
            b.describe()
        )));
    }
    Ok(check)
}

/// Step sizes from a real SDLM estimate, as a training pass would use; returns the
/// estimate's seconds.
fn time_hessian(b: &mut dyn Backend, train_len: usize, cfg: &BenchConfig) -> Result<f64> {
    b.set_params(&params::init(cfg.seed))?;
    let hidx = order(train_len, cfg.hessian_samples, cfg.seed ^ 0x5eed);
    let t = Instant::now();
    let h = b.hessian(&hidx)?;
    let hessian_seconds = t.elapsed().as_secs_f64();
    b.set_step_sizes(&step_sizes(&h, 1.25e-5, 0.02))?;
    Ok(hessian_seconds)
}

/// The warm-up steps, then the timed ones; returns the timed steps' patterns per second.
fn time_training(
    b: &mut dyn Backend,
    train_len: usize,
    batch: usize,
    cfg: &BenchConfig,
) -> Result<f64> {
    let all = order(train_len, (cfg.warmup + cfg.steps) * batch, cfg.seed + 1);
    let (warm, timed) = all.split_at(cfg.warmup * batch);
    // A backend takes at most one training set's worth of patterns per call.
    let chunk = (train_len / batch).max(1) * batch;
    let mut run = |part: &[u32]| -> Result<TrainStats> {
        let mut stats = TrainStats::default();
        for c in part.chunks(chunk) {
            stats.add(b.train(c, batch)?);
        }
        Ok(stats)
    };
    run(warm)?;
    let t = Instant::now();
    let stats = run(timed)?;
    let train_seconds = t.elapsed().as_secs_f64();
    if stats.first_non_finite.is_some() {
        return Err(Error::Gpu(format!(
            "{}: the loss became non-finite during the timed steps",
            b.describe()
        )));
    }
    Ok(timed.len() as f64 / train_seconds)
}

/// The median seconds of `EVAL_REPEATS` passes over the test set (after an untimed one),
/// and the last pass's result.
fn time_evaluation(b: &mut dyn Backend) -> Result<(f64, crate::backend::Evaluation)> {
    b.evaluate(Split::Test)?; // warm-up: the first pass may compile or allocate
    // One pass over the test set can take a tenth of a second, where a busy machine's noise
    // shows: time EVAL_REPEATS passes and keep the median.
    let mut times = Vec::new();
    let mut ev = None;
    for _ in 0..EVAL_REPEATS {
        let t = Instant::now();
        ev = Some(b.evaluate(Split::Test)?);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let eval_seconds = times[EVAL_REPEATS / 2];
    let ev = ev.expect("EVAL_REPEATS > 0");
    Ok((eval_seconds, ev))
}

/// Peak resident set size of this process (VmHWM), on Linux.
pub fn peak_memory() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Starts a new peak-memory measurement (Linux: writing 5 to clear_refs resets VmHWM).
pub fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_covers_the_set_before_repeating() {
        let o = order(10, 25, 3);
        assert_eq!(o.len(), 25);
        let mut first: Vec<u32> = o[..10].to_vec();
        first.sort();
        assert_eq!(first, (0..10).collect::<Vec<_>>());
        assert_eq!(o, order(10, 25, 3));
    }
}
