//! The epoch loop and SDLM (stochastic diagonal Levenberg-Marquardt, LeCun et al. 1998,
//! appendix C), the same for every backend.
//!
//! Before each pass: draw `hessian_samples` training patterns at random, estimate the
//! Hessian diagonal h_kk on them (the backend's second-derivative pass), and set each
//! parameter's step size to eps_k = eta / (mu + h_kk), held for the whole pass.
//!
//! The batch rule: the gradient of a batch is the SUM of its patterns' gradients, and eta
//! is per pattern. With batch 1 this is exactly the paper's online update; with batch B one
//! step moves as far as B online steps would to first order, so eta keeps its meaning
//! across batch sizes. What does not carry over is stability: B online steps each see a
//! fresh pattern, one batch step sees their sum at once, so the largest stable eta shrinks
//! as B grows. Measured on MNIST (see the README): the product B * eta must stay below
//! about 2.5e-4 in the first pass, where the Hessian estimate is taken at the initial,
//! nearly linear network and most h_kk are far below mu; from the second pass on, h_kk
//! has grown and four times more is stable. The default schedule follows that.

pub mod log;
pub mod meta;

use crate::backend::{Backend, Split, TrainStats};
use crate::distort;
use crate::fault::{Fault, FaultKind};
use crate::model::Loss;
use crate::model::params::{LAYERS, N_PARAMS};
use crate::{Error, Result};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The paper's eta per pass (online, batch 1): passes 1-2, 3-5, 6-8, 9-12, 13-20.
pub const PAPER_SCHEDULE: [(u32, f64); 5] = [
    (2, 0.0005),
    (5, 0.0002),
    (8, 0.0001),
    (12, 0.00005),
    (20, 0.00001),
];

/// The default per-pattern eta by pass, for the default batch of 16 (sum rule): a small
/// first pass, while the Hessian estimate comes from the nearly linear initial network,
/// then 5e-5 (what the stability measurements allow at batch 16) held to pass 6 and halved
/// or more every few passes, down to 2e-6 for the last three. Chosen by measurement
/// (docs/experiments.md, runs B, D, G and section 9).
pub const DEFAULT_SCHEDULE: [(u32, f64); 6] = [
    (1, 1.25e-5),
    (6, 5e-5),
    (10, 2.5e-5),
    (14, 1e-5),
    (17, 5e-6),
    (20, 2e-6),
];

/// The default schedule with `--distort`: distorted data is harder to fit (the running
/// training error is still about 1% after 20 passes), so eta stays at 5e-5 to pass 12 and
/// decays less (docs/experiments.md, section 6: 0.81% and 0.77% on two seeds).
pub const DISTORT_SCHEDULE: [(u32, f64); 4] = [(1, 1.25e-5), (12, 5e-5), (17, 2.5e-5), (20, 1e-5)];

/// The default constant j of the MAP criterion (docs/experiments.md, sections 8 and 9).
pub const DEFAULT_MAP_J: f64 = 10.0;
/// The default criterion: the paper's MAP criterion with j = DEFAULT_MAP_J.
pub const DEFAULT_LOSS: Loss = Loss::Map { j: DEFAULT_MAP_J };

/// A run's settings (the `train` flags of the same names); `Default` is the command
/// line's defaults: 20 passes at batch 16, seed 1, the MAP criterion, the default schedule.
///
/// ```
/// let quick = lenet_gpu::TrainConfig { epochs: 2, seed: 7, ..Default::default() };
/// assert_eq!(quick.eta(1), 1.25e-5); // the small first pass of the default schedule
/// assert!(quick.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub epochs: u32,
    pub batch: usize,
    pub seed: u64,
    pub loss: Loss,
    /// Multiplies every eta of the schedule.
    pub eta_scale: f64,
    /// (last pass, eta) pairs, 1-based passes; the last eta holds beyond the last pass.
    pub schedule: Vec<(u32, f64)>,
    pub mu: f64,
    pub hessian_samples: usize,
    pub momentum: f32,
    /// Re-estimate the Hessian during pass 1 after this many patterns, then after twice,
    /// four times as many, ... (0: once per pass, as in the paper).
    pub warmup: usize,
    /// Warp every training image by a fresh random affine distortion each pass.
    pub distort: bool,
    /// A test-only interruption (`LENET_FAULT`, see `fault`); never saved with a run.
    pub fault: Option<Fault>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 20,
            batch: 16,
            seed: 1,
            loss: DEFAULT_LOSS,
            eta_scale: 1.0,
            schedule: DEFAULT_SCHEDULE.to_vec(),
            mu: 0.02,
            hessian_samples: 500,
            momentum: 0.0,
            warmup: 0,
            distort: false,
            fault: None,
        }
    }
}

impl TrainConfig {
    /// eta for pass `epoch` (1-based).
    pub fn eta(&self, epoch: u32) -> f64 {
        let eta = self
            .schedule
            .iter()
            .find(|(last, _)| epoch <= *last)
            .or(self.schedule.last())
            .map_or(0.0, |s| s.1);
        eta * self.eta_scale
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.epochs == 0 {
            return bad("--epochs must be at least 1".into());
        }
        if self.batch == 0 {
            return bad("--batch must be at least 1".into());
        }
        if !(self.eta_scale.is_finite() && self.eta_scale > 0.0) {
            return bad(format!(
                "--eta-scale must be a positive number, got {}",
                self.eta_scale
            ));
        }
        if !(self.mu.is_finite() && self.mu > 0.0) {
            return bad(format!("--mu must be a positive number, got {}", self.mu));
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return bad(format!(
                "--momentum must be in [0, 1), got {}",
                self.momentum
            ));
        }
        if self.hessian_samples == 0 {
            return bad("--hessian-samples must be at least 1".into());
        }
        if self.schedule.is_empty()
            || self
                .schedule
                .iter()
                .any(|s| !(s.1.is_finite() && s.1 > 0.0))
        {
            return bad("the eta schedule needs positive, finite values".into());
        }
        if let Loss::Map { j } = self.loss
            && !(j.is_finite() && j > 0.0)
        {
            return bad(format!("--map-j must be a positive number, got {j}"));
        }
        Ok(())
    }
}

/// The per-pass random streams: the shuffle and the Hessian sample of pass `epoch` depend
/// only on (seed, epoch), so a resumed run draws what an uninterrupted one would.
pub fn epoch_rng(seed: u64, epoch: u32) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64);
    rng
}

/// min, median, mean, max of a slice.
pub fn summary(v: &[f32]) -> [f64; 4] {
    let mut s: Vec<f32> = v.to_vec();
    s.sort_by(f32::total_cmp);
    let mean = s.iter().map(|&x| x as f64).sum::<f64>() / s.len().max(1) as f64;
    [
        s[0] as f64,
        s[s.len() / 2] as f64,
        mean,
        s[s.len() - 1] as f64,
    ]
}

/// What one pass produced ([`crate::Trainer::run`] hands it to its per-pass callback).
///
/// ```
/// fn line(r: &lenet_gpu::EpochReport) -> String {
///     format!("pass {}: train {:.2}%, test {:.2}%, {:.0} samples/s",
///         r.epoch, 100.0 * r.train_error, 100.0 * r.test_error, r.samples_per_s)
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct EpochReport {
    pub epoch: u32,
    pub eta: f64,
    /// Running mean loss and error over the pass (each pattern measured before its update).
    pub train_loss: f64,
    pub train_error: f64,
    pub test_loss: f64,
    pub test_error: f64,
    pub seconds: f64,
    /// Training throughput (SDLM estimate included, evaluation excluded).
    pub samples_per_s: f64,
    /// (min, median, mean, max) of h_kk and of eps_k per layer, in `params::LAYERS` order.
    pub h_layers: [[f64; 4]; 6],
    pub eps_layers: [[f64; 4]; 6],
}

/// Computes eps_k = eta / (mu + h_kk).
pub fn step_sizes(h: &[f32], eta: f64, mu: f64) -> Vec<f32> {
    h.iter().map(|&h| (eta / (mu + h as f64)) as f32).collect()
}

/// Where a run stands: pass `epoch` (1-based) with its first `position` patterns done.
/// `eps` holds that pass's step sizes when it is under way (position > 0), and `stats` the
/// running totals of its patterns so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub epoch: u32,
    pub position: usize,
    pub eps: Option<Vec<f32>>,
    pub stats: TrainStats,
}

impl Progress {
    /// A fresh run.
    ///
    /// ```
    /// let p = lenet_gpu::Progress::start();
    /// assert_eq!((p.epoch, p.position), (1, 0));
    /// ```
    pub fn start() -> Self {
        Progress {
            epoch: 1,
            position: 0,
            eps: None,
            stats: TrainStats::default(),
        }
    }
}

/// How a run ended ([`crate::Trainer::run`]).
///
/// ```
/// fn said(o: &lenet_gpu::Outcome) -> String {
///     match o {
///         lenet_gpu::Outcome::Finished => "finished".into(),
///         lenet_gpu::Outcome::Stopped(at) => format!("stopped in pass {} at pattern {}", at.epoch, at.position),
///     }
/// }
/// assert_eq!(said(&lenet_gpu::Outcome::Stopped(lenet_gpu::Progress::start())), "stopped in pass 1 at pattern 0");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Finished,
    /// The stop flag was raised; the run stopped after a batch, at this point.
    Stopped(Progress),
}

/// Patterns between checks of the stop flag and of the loss on a GPU backend (rounded up
/// to whole batches); the CPU backend checks after every batch.
pub const CHECK_EVERY: usize = 4096;

/// Lands a test-only fault (`fault`) after pattern `at` of pass `epoch`.
fn land(f: Fault, epoch: u32, at: usize, stop: &AtomicBool) {
    match f.kind {
        FaultKind::Stop => stop.store(true, Ordering::SeqCst),
        FaultKind::Kill => {
            // SIGKILL cannot be caught: the process ends here, with nothing saved.
            #[cfg(unix)]
            let _ = signal_hook::low_level::raise(signal_hook::consts::SIGKILL);
            std::process::exit(137);
        }
        FaultKind::Lose => {}
        FaultKind::Pause => {
            eprintln!("fault: paused in pass {epoch} at pattern {at}");
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }
}

/// Runs passes from `from` to `cfg.epochs`, calling `tick(pass, patterns done)` after each
/// group of batches and `report` after each pass. Between groups of batches it checks
/// `stop` (set by a signal handler) and the loss: a non-finite loss ends the run with an
/// error naming the pass and the batch.
pub fn train(
    backend: &mut dyn Backend,
    cfg: &TrainConfig,
    n_train: usize,
    from: Progress,
    stop: &AtomicBool,
    mut tick: impl FnMut(u32, usize),
    mut report: impl FnMut(&EpochReport, &mut dyn Backend) -> Result<()>,
) -> Result<Outcome> {
    cfg.validate()?;
    check_fault_lands(cfg, n_train)?;
    let mut resume = Some(from);
    let first = resume.as_ref().map_or(1, |r| r.epoch);
    for epoch in first..=cfg.epochs {
        let start = Instant::now();
        let mut rng = epoch_rng(cfg.seed, epoch);
        let pass = plan_pass(backend, cfg, epoch, n_train, &mut rng)?;
        let resumed = resume.take();
        let done = match train_pass(backend, cfg, &pass, &mut rng, resumed, stop, &mut tick)? {
            std::ops::ControlFlow::Continue(done) => done,
            std::ops::ControlFlow::Break(progress) => return Ok(Outcome::Stopped(progress)),
        };
        let r = epoch_report(backend, cfg, &pass, start, done)?;
        report(&r, backend)?;
        if stop.load(Ordering::SeqCst) && epoch < cfg.epochs {
            return Ok(Outcome::Stopped(Progress {
                epoch: epoch + 1,
                position: 0,
                eps: None,
                stats: TrainStats::default(),
            }));
        }
    }
    Ok(Outcome::Finished)
}

/// A test-only fault must land inside the run.
fn check_fault_lands(cfg: &TrainConfig, n_train: usize) -> Result<()> {
    if let Some(f) = &cfg.fault
        && (f.epoch > cfg.epochs || f.pattern > n_train)
    {
        return Err(Error::Config(format!(
            "{}: pass {} pattern {} is outside this run ({} passes of {n_train} patterns), so \
             the fault would never land",
            crate::fault::ENV,
            f.epoch,
            f.pattern,
            cfg.epochs
        )));
    }
    Ok(())
}

/// One pass: its number (1-based), its eta, its order of the `n_train` patterns, and how
/// many patterns go to the backend at once (see `CHECK_EVERY`).
struct PassPlan {
    epoch: u32,
    eta: f64,
    order: Vec<u32>,
    n_train: usize,
    check: usize,
}

/// What the training part of a pass leaves: the step sizes in use at its end, its running
/// totals, and how many patterns it trained on and estimated the Hessian on.
struct PassTotals {
    eps: Vec<f32>,
    stats: TrainStats,
    trained: usize,
    estimated: usize,
}

/// Pass `epoch`'s eta and order, drawn from `rng`, and with `--distort` its warps, set on
/// the backend.
fn plan_pass(
    backend: &mut dyn Backend,
    cfg: &TrainConfig,
    epoch: u32,
    n_train: usize,
    rng: &mut ChaCha8Rng,
) -> Result<PassPlan> {
    let eta = cfg.eta(epoch);
    let mut order: Vec<u32> = (0..n_train as u32).collect();
    order.shuffle(rng);
    if cfg.distort {
        let warps = distort::pass_distortions(cfg.seed, epoch, n_train, &distort::RANGES);
        backend.set_distortions(Some(&warps))?;
    }
    Ok(PassPlan {
        epoch,
        eta,
        order,
        n_train,
        check: backend.patterns_per_call(cfg.batch).max(cfg.batch),
    })
}

/// Where pass `epoch` estimates the Hessian, as segment bounds from 0 to `n_train`.
/// Pass 1 starts from the nearly linear initial network, whose Hessian estimate says
/// little about the network a few hundred patterns later; with `warmup` set, pass 1
/// re-estimates h after warmup, 2*warmup, 4*warmup, ... patterns.
fn hessian_bounds(cfg: &TrainConfig, epoch: u32, n_train: usize) -> Vec<usize> {
    let mut bounds = vec![0usize];
    if epoch == 1 && cfg.warmup > 0 {
        let mut b = cfg.warmup.div_ceil(cfg.batch) * cfg.batch;
        while b < n_train {
            bounds.push(b);
            b *= 2;
        }
    }
    bounds.push(n_train);
    bounds
}

/// The training part of a pass, from where `resume` left it: per Hessian segment, the step
/// sizes (estimated, or the saved ones of a segment under way), then its batches. Breaks
/// with the run's position when `stop` is raised before the end of the pass.
fn train_pass(
    backend: &mut dyn Backend,
    cfg: &TrainConfig,
    pass: &PassPlan,
    rng: &mut ChaCha8Rng,
    resume: Option<Progress>,
    stop: &AtomicBool,
    tick: &mut impl FnMut(u32, usize),
) -> Result<std::ops::ControlFlow<Progress, PassTotals>> {
    let n_train = pass.n_train;
    let (position, saved_eps, stats) = match resume {
        Some(r) if r.position > 0 => (r.position, r.eps, r.stats),
        _ => (0, None, TrainStats::default()),
    };
    let mut done = PassTotals {
        eps: Vec::new(),
        stats,
        trained: 0,
        estimated: 0,
    };
    for seg in hessian_bounds(cfg, pass.epoch, n_train).windows(2) {
        // The Hessian sample is drawn even for a segment that is skipped on resume, so
        // the random stream stays that of an uninterrupted run.
        let mut sample: Vec<u32> = (0..n_train as u32).collect();
        let (picked, _) = sample.partial_shuffle(rng, cfg.hessian_samples.min(n_train));
        if seg[1] <= position {
            continue;
        }
        match (&saved_eps, seg[0] < position) {
            (Some(e), true) => done.eps = e.clone(),
            _ => {
                done.estimated += picked.len();
                done.eps = estimated_step_sizes(backend, picked, pass, cfg.mu)?;
            }
        }
        backend.set_step_sizes(&done.eps)?;
        let span = (seg[0].max(position), seg[1]);
        if let Some(at) = train_segment(backend, cfg, pass, span, &mut done, stop, tick)? {
            return Ok(std::ops::ControlFlow::Break(Progress {
                epoch: pass.epoch,
                position: at,
                eps: Some(done.eps),
                stats: done.stats,
            }));
        }
    }
    Ok(std::ops::ControlFlow::Continue(done))
}

/// eps_k for the pass from a Hessian estimate on the patterns `picked`; an estimate that
/// is not finite or is negative is an error.
fn estimated_step_sizes(
    backend: &mut dyn Backend,
    picked: &[u32],
    pass: &PassPlan,
    mu: f64,
) -> Result<Vec<f32>> {
    let h = backend.hessian(picked)?;
    if let Some(k) = h.iter().position(|v| !v.is_finite() || *v < 0.0) {
        return Err(Error::Numeric(format!(
            "pass {}: Hessian estimate of parameter {k} is {} (the parameters diverged; \
             try a smaller --eta-scale)",
            pass.epoch, h[k]
        )));
    }
    Ok(step_sizes(&h, pass.eta, mu))
}

/// Trains the patterns `from..to` of the pass's order in groups of `pass.check`, adding to
/// `done`; after each group: `tick`, a due test fault, the stop flag. Returns the position
/// reached when it stopped before the end of the pass.
fn train_segment(
    backend: &mut dyn Backend,
    cfg: &TrainConfig,
    pass: &PassPlan,
    (from, to): (usize, usize),
    done: &mut PassTotals,
    stop: &AtomicBool,
    tick: &mut impl FnMut(u32, usize),
) -> Result<Option<usize>> {
    let epoch = pass.epoch;
    let mut at = from;
    while at < to {
        let mut end = (at + pass.check).min(to);
        if let Some(f) = &cfg.fault {
            end = f.group_end(epoch, at, end, cfg.batch);
        }
        let s = backend.train(&pass.order[at..end], cfg.batch)?;
        if let Some(p) = s.first_non_finite {
            return Err(Error::Numeric(format!(
                "pass {epoch}, batch {}: the loss is not finite (eta too large? try a smaller --eta-scale)",
                (at + p as usize) / cfg.batch + 1
            )));
        }
        done.stats.add(s);
        done.trained += end - at;
        let before = at;
        at = end;
        tick(epoch, at);
        if let Some(f) = cfg.fault.filter(|f| f.due(epoch, before, at)) {
            if f.kind == FaultKind::Lose {
                eprintln!("fault: destroying the device in pass {epoch} at pattern {at}");
                backend.lose_device();
            } else {
                land(f, epoch, at, stop);
            }
        }
        if stop.load(Ordering::SeqCst) && at < pass.n_train {
            return Ok(Some(at));
        }
    }
    Ok(None)
}

/// (min, median, mean, max) of each layer's values of the flat buffer `v`, in
/// `params::LAYERS` order.
fn per_layer(v: &[f32]) -> [[f64; 4]; 6] {
    LAYERS.map(|(_, [w, b])| {
        let mut all = w.of(v).to_vec();
        all.extend_from_slice(b.of(v));
        summary(&all)
    })
}

/// The pass's report once its training is `done`: the test set's loss and error, the
/// timings since `start`, and the per-layer h_kk and eps_k.
fn epoch_report(
    backend: &mut dyn Backend,
    cfg: &TrainConfig,
    pass: &PassPlan,
    start: Instant,
    done: PassTotals,
) -> Result<EpochReport> {
    let (epoch, eta) = (pass.epoch, pass.eta);
    let PassTotals {
        eps,
        stats,
        trained,
        estimated,
    } = done;
    let train_seconds = start.elapsed().as_secs_f64();
    let test = backend.evaluate(Split::Test)?;
    debug_assert_eq!(eps.len(), N_PARAMS);
    // h as the step sizes imply it (exact up to rounding; also right after a resume).
    let h: Vec<f32> = eps
        .iter()
        .map(|&e| (eta / e as f64 - cfg.mu) as f32)
        .collect();
    Ok(EpochReport {
        epoch,
        eta,
        train_loss: stats.loss_sum / stats.patterns.max(1) as f64,
        train_error: stats.errors as f64 / stats.patterns.max(1) as f64,
        test_loss: test.loss_sum / test.predictions.len().max(1) as f64,
        test_error: test.error_rate(),
        seconds: start.elapsed().as_secs_f64(),
        samples_per_s: (trained + estimated) as f64 / train_seconds,
        h_layers: per_layer(&h),
        eps_layers: per_layer(&eps),
    })
}
