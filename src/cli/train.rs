//! `lenet-gpu train`: the run as named steps (settings, resume, data, backend, the passes,
//! the ending), each a function below; the epoch loop itself is `lenet_gpu::train::train`.

use super::{DataArgs, DeviceArgs, LAST, LossKind, check_output_file, given, load_mnist};
use lenet_gpu::backend::Backend;
use lenet_gpu::checkpoint;
use lenet_gpu::data;
use lenet_gpu::model::Loss;
use lenet_gpu::model::RBF_CENTERS;
use lenet_gpu::model::params;
use lenet_gpu::select::{DeviceChoice, RunDevice};
use lenet_gpu::train::log::{RunLog, read_log};
use lenet_gpu::train::meta::{
    SavedRun, changed_settings, loss_name, parse_schedule, resume_point, run_meta,
};
use lenet_gpu::train::{self, EpochReport, Outcome, Progress, TrainConfig};
use lenet_gpu::{Error, Mnist, PassEnd, Result, Trainer};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

mod progress;

#[derive(clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    device: DeviceArgs,
    /// Number of passes over the training set.
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    epochs: u32,
    /// Patterns per update; the batch gradient is the sum of the patterns' gradients. At
    /// most 4096 on a GPU (longer dispatches could meet a display driver's watchdog).
    #[arg(long, default_value_t = TrainConfig::default().batch)]
    batch: usize,
    /// Seed of the initial weights, the shuffles and the Hessian samples.
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    seed: u64,
    /// Training criterion.
    #[arg(long, value_enum, default_value = "map")]
    loss: LossKind,
    /// The constant j of the MAP criterion.
    #[arg(long, default_value_t = train::DEFAULT_MAP_J)]
    map_j: f64,
    /// Multiplies every eta of the schedule.
    #[arg(long, default_value_t = TrainConfig::default().eta_scale)]
    eta_scale: f64,
    /// Per-pattern eta by pass, as LAST_PASS:ETA,... (the last eta holds after), or
    /// `paper` for the paper's online schedule 2:5e-4,5:2e-4,8:1e-4,12:5e-5,20:1e-5.
    /// Default: 1:1.25e-5,6:5e-5,10:2.5e-5,14:1e-5,17:5e-6,20:2e-6 (for batch 16); with
    /// --distort, 1:1.25e-5,12:5e-5,17:2.5e-5,20:1e-5.
    #[arg(long, value_name = "SCHEDULE")]
    schedule: Option<String>,
    /// SDLM's mu in eps_k = eta / (mu + h_kk).
    #[arg(long, default_value_t = TrainConfig::default().mu)]
    mu: f64,
    /// Training patterns drawn before each pass to estimate the Hessian diagonal.
    #[arg(long, default_value_t = TrainConfig::default().hessian_samples)]
    hessian_samples: usize,
    /// Warp each training image by a fresh random affine distortion every pass (shift up to
    /// 2 px, scale and squeeze up to 10%, horizontal shear up to 0.3), as in the paper's
    /// distorted-data experiment. Reproducible from --seed; evaluation is undistorted.
    #[arg(long)]
    distort: bool,
    /// Momentum on the summed batch gradient (0 = the paper's plain SDLM).
    #[arg(long, default_value_t = TrainConfig::default().momentum)]
    momentum: f32,
    /// Save a checkpoint (safetensors) here after every pass, replacing it atomically.
    #[arg(long, value_name = "PATH")]
    save: Option<PathBuf>,
    /// Keep a checkpoint of every pass here (epoch-NNN.safetensors, and last.safetensors for
    /// --resume), with the optimiser state; written atomically. Ctrl-C or SIGTERM saves the
    /// run's exact position there before exiting.
    #[arg(long, value_name = "DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// Continue a run from its checkpoint directory (or a checkpoint file): its weights,
    /// optimiser state, settings and position; --epochs may extend it.
    #[arg(long, value_name = "PATH")]
    resume: Option<PathBuf>,
    /// Re-estimate the Hessian in pass 1 after N patterns, then 2N, 4N, ... (0: once per
    /// pass).
    #[arg(long, value_name = "N", default_value_t = TrainConfig::default().warmup)]
    warmup: usize,
    /// Write one record per pass to this file as it goes: CSV when the name ends in .csv,
    /// JSON lines otherwise. A new run starts the file afresh; --resume appends to it. A
    /// learning-curve picture is written beside it at the end (same name, .png).
    #[arg(long, value_name = "PATH")]
    log: Option<PathBuf>,
    /// Print only the final summary (no progress bar, no per-pass lines).
    #[arg(long, short)]
    quiet: bool,
    /// Print, each pass, the per-layer range of the Hessian estimates h_kk and step sizes.
    #[arg(long)]
    sdlm_stats: bool,
    /// Worker threads for the CPU backend (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(a: TrainArgs, m: &clap::ArgMatches) -> Result<ExitCode> {
    set_threads(a.threads)?;
    let mut cfg = config(&a)?;
    check_outputs(&a)?;
    let checkpoint_dir = checkpoint_dir(&a)?;
    let start = match &a.resume {
        Some(path) => resume(&a, m, &mut cfg, path)?,
        None => Start::fresh(&a, &cfg),
    };
    let mnist = load_mnist(&start.data)?;
    let (n_train, n_test) = (mnist.train.len(), mnist.test.len());
    start.check_train_size(n_train)?;
    let mut trainer = open_trainer(&start, &cfg, mnist)?;
    if !a.quiet {
        progress::banner(trainer.backend(), trainer.checked(), &cfg, n_train, n_test);
    }
    let run = trainer.saved_run().clone();
    let out = Outputs::open(&a, &cfg, n_train, run, checkpoint_dir, &start.from)?;
    passes(&mut trainer, out)
}

/// Fails now, not after a pass of training, when --save or --log cannot be written.
fn check_outputs(a: &TrainArgs) -> Result<()> {
    if let Some(path) = &a.save {
        check_output_file("--save", path, "lenet.safetensors")?;
    }
    if let Some(path) = &a.log {
        check_output_file("--log", path, "run.csv")?;
    }
    Ok(())
}

/// The folder of per-pass checkpoints, created: --checkpoint-dir, else the folder resumed
/// from (resuming from a directory keeps writing there).
fn checkpoint_dir(a: &TrainArgs) -> Result<Option<PathBuf>> {
    let checkpoint_dir = a
        .checkpoint_dir
        .clone()
        .or_else(|| a.resume.clone().filter(|p| p.is_dir()));
    if let Some(dir) = &checkpoint_dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(checkpoint_dir)
}

/// The library's trainer on the run's device, holding the data and the run's weights,
/// momentum and position.
fn open_trainer(start: &Start, cfg: &TrainConfig, mnist: Mnist) -> Result<Trainer> {
    let mut trainer = Trainer::new(cfg.clone(), &start.device, mnist)?;
    let on = trainer.device();
    if let Some(before) = start.was_on.as_ref().filter(|b| *b != on) {
        eprintln!(
            "note: this run trained on {before} and continues on {on}; its weights will not be \
             bit-identical to a run that stayed there"
        );
    }
    if start.file.is_some() {
        trainer.resume_from(&start.init, start.velocity.as_deref(), start.from.clone())?;
    }
    Ok(trainer)
}

/// The passes from `from` on, with the progress bar and the signal handlers, and the
/// ending: the summary when they finish; when a signal stops them, the run's position
/// saved and exit code 130 (SIGINT) or 143 (SIGTERM).
fn passes(trainer: &mut Trainer, mut out: Outputs) -> Result<ExitCode> {
    let (int, term) = stop_flags();
    let stop = stop_on_signal(&int, &term);
    let clock = std::time::Instant::now();
    let bar = progress::progress_bar(out.a.quiet, out.n_train);
    let outcome = trainer.run(&stop, progress::tick(&bar), |r, end| {
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
        out.pass_done(r, end)
    });
    let outcome = match outcome {
        Ok(o) => o,
        Err(Error::Gpu(what)) => {
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            return Err(Error::Gpu(out.device_failed(&what)));
        }
        Err(e) => return Err(e),
    };
    match outcome {
        Outcome::Finished => out.finished(clock),
        Outcome::Stopped(progress) => {
            // Clear the bar before the message, so it is not left drawn twice.
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            out.stopped(trainer, &progress)?;
            Ok(ExitCode::from(if term.load(Ordering::SeqCst) {
                143
            } else {
                130
            }))
        }
    }
}

fn set_threads(threads: Option<usize>) -> Result<()> {
    if threads == Some(0) {
        return Err(Error::Config("--threads must be at least 1".into()));
    }
    if let Some(t) = threads {
        // Only fails when a pool already exists, which cannot happen here.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global();
    }
    Ok(())
}

/// The run's settings from the flags (and `LENET_FAULT`), checked.
fn config(a: &TrainArgs) -> Result<TrainConfig> {
    let mut cfg = TrainConfig {
        epochs: a.epochs,
        batch: a.batch,
        seed: a.seed,
        loss: match a.loss {
            LossKind::Mse => Loss::Mse,
            LossKind::Map => Loss::Map { j: a.map_j },
        },
        eta_scale: a.eta_scale,
        mu: a.mu,
        hessian_samples: a.hessian_samples,
        momentum: a.momentum,
        warmup: a.warmup,
        distort: a.distort,
        fault: lenet_gpu::fault::Fault::from_env()?,
        ..TrainConfig::default()
    };
    if let Some(s) = &a.schedule {
        cfg.schedule = parse_schedule(s)?;
    } else if a.distort {
        cfg.schedule = train::DISTORT_SCHEDULE.to_vec();
    }
    cfg.validate()?;
    Ok(cfg)
}

/// Where a run starts: its weights, momentum, position, data subset and device.
struct Start {
    init: Vec<f32>,
    velocity: Option<Vec<f32>>,
    from: Progress,
    data: DataArgs,
    device: DeviceChoice,
    /// The device a resumed run trained on, when the flags move it elsewhere.
    was_on: Option<RunDevice>,
    /// The checkpoint resumed from, and the training patterns it was trained on.
    file: Option<PathBuf>,
    trained_on: Option<usize>,
}

impl Start {
    fn fresh(a: &TrainArgs, cfg: &TrainConfig) -> Self {
        Start {
            init: params::init(cfg.seed),
            velocity: None,
            from: Progress::start(),
            data: a.data.clone(),
            device: a.device.choice(),
            was_on: None,
            file: None,
            trained_on: None,
        }
    }

    /// A resumed run must find as many training patterns as it was trained on.
    fn check_train_size(&self, n_train: usize) -> Result<()> {
        if let (Some(file), Some(n)) = (&self.file, self.trained_on)
            && n != n_train
        {
            return Err(Error::Config(format!(
                "{} was trained on {n} patterns, but {} has only {n_train}; give --data the folder it was trained on",
                file.display(),
                data::data_dir(self.data.data.as_deref()).display()
            )));
        }
        Ok(())
    }

    /// The test subset and data folder of the run saved in `file`, unless the flags name
    /// them; a saved folder that is gone is noted and the default used.
    fn use_saved_data(&mut self, run: &SavedRun, file: &Path) {
        if self.data.test_limit.is_none() {
            self.data.test_limit = run.test_patterns;
        }
        if self.data.data.is_none() {
            match run.data.clone().filter(|d| d.is_dir()) {
                Some(d) => self.data.data = Some(d),
                None => {
                    if let Some(gone) = &run.data {
                        eprintln!(
                            "note: {} was trained on the data in {}, which is not there any more; \
                             using {} (--data names another folder)",
                            file.display(),
                            gone.display(),
                            data::data_dir(None).display()
                        );
                    }
                }
            }
        }
    }

    /// The saved run's device and kernel family, unless a device flag was given (then it
    /// is remembered in `was_on`); `--kernels` that would change the saved family is
    /// refused, as other changed settings are.
    fn use_saved_device(
        &mut self,
        run: &SavedRun,
        m: &clap::ArgMatches,
        file: &Path,
    ) -> Result<()> {
        let device_given = ["backend", "adapter", "cpu_adapter"]
            .iter()
            .any(|id| given(m, id));
        if let (Some(saved), false) = (
            run.device.as_ref().and_then(RunDevice::kernels),
            device_given,
        ) && given(m, "kernels")
            && saved != self.device.kernels
        {
            return Err(Error::Config(format!(
                "--kernels {} would change the run saved in {} (it trained with the {} kernels); \
                 --resume continues a run with its own settings: drop --kernels, or start a new \
                 run without --resume",
                self.device.kernels.name(),
                file.display(),
                saved.name()
            )));
        }
        match (&run.device, device_given) {
            (Some(d), false) => self.device = DeviceChoice::resolved(d),
            (Some(d), true) => self.was_on = Some(d.clone()),
            (None, _) => {}
        }
        Ok(())
    }
}

/// Resuming: the checkpoint's weights, optimiser state, settings, data subset, device and
/// position; flags that would change the run are refused.
fn resume(
    a: &TrainArgs,
    m: &clap::ArgMatches,
    cfg: &mut TrainConfig,
    path: &Path,
) -> Result<Start> {
    let file = if path.is_dir() {
        path.join(LAST)
    } else {
        path.to_path_buf()
    };
    let ck = checkpoint::load(&file)?;
    let run = SavedRun::of(&ck);
    let mut start = Start::fresh(a, cfg);
    match resume_point(&ck, &file)? {
        Some((saved, n, progress)) => {
            refuse_changes(a, m, cfg, &saved, n, &file)?;
            *cfg = TrainConfig {
                epochs: cfg.epochs,
                fault: cfg.fault,
                ..saved
            };
            start.data.train_limit = Some(n);
            start.trained_on = Some(n);
            start.from = progress;
        }
        None => start.from.epoch = ck.meta.epoch + 1,
    }
    if !given(m, "epochs") {
        cfg.epochs = run.epochs.unwrap_or(cfg.epochs);
    }
    start.use_saved_data(&run, &file);
    start.use_saved_device(&run, m, &file)?;
    if start.from.epoch > cfg.epochs {
        return Err(Error::Config(format!(
            "{} already holds {} passes; ask for more with --epochs",
            file.display(),
            ck.meta.epoch
        )));
    }
    eprintln!(
        "resuming {} at pass {}{} with its settings (batch {}, seed {}, {} passes)",
        file.display(),
        start.from.epoch,
        if start.from.position > 0 {
            format!(", pattern {}", start.from.position)
        } else {
            String::new()
        },
        cfg.batch,
        cfg.seed,
        cfg.epochs
    );
    start.init = ck.params;
    start.velocity = ck.optimizer.map(|o| o.velocity);
    start.file = Some(file);
    Ok(start)
}

/// Refuses a flag the user gave that would change the run saved in `file` (`saved`, trained
/// on `n` patterns).
fn refuse_changes(
    a: &TrainArgs,
    m: &clap::ArgMatches,
    cfg: &TrainConfig,
    saved: &TrainConfig,
    n: usize,
    file: &Path,
) -> Result<()> {
    let changed = changed_settings(cfg, saved, a.data.train_limit, n);
    if let Some((_, flag, was)) = changed.iter().find(|c| given(m, c.0)) {
        return Err(Error::Config(format!(
            "{flag} would change the run saved in {} (it has {was}); --resume continues a run \
             with its own settings: drop {flag}, or start a new run without --resume",
            file.display()
        )));
    }
    Ok(())
}

/// Everything a run writes as it goes: the per-pass lines, the log, the checkpoints.
struct Outputs<'a> {
    a: &'a TrainArgs,
    cfg: &'a TrainConfig,
    n_train: usize,
    run: SavedRun,
    checkpoint_dir: Option<PathBuf>,
    log: Option<RunLog>,
    last: Option<EpochReport>,
}

impl<'a> Outputs<'a> {
    /// The outputs of a run that starts at `from`: a resumed run appends to its log.
    fn open(
        a: &'a TrainArgs,
        cfg: &'a TrainConfig,
        n_train: usize,
        run: SavedRun,
        checkpoint_dir: Option<PathBuf>,
        from: &Progress,
    ) -> Result<Self> {
        Ok(Outputs {
            a,
            cfg,
            n_train,
            run,
            checkpoint_dir,
            log: match &a.log {
                Some(path) => Some(RunLog::open(path, from.epoch > 1 || from.position > 0)?),
                None => None,
            },
            last: None,
        })
    }

    /// After each pass: its line (and SDLM statistics), its log record, its checkpoints.
    fn pass_done(&mut self, r: &EpochReport, end: &mut PassEnd) -> Result<()> {
        if let Some(l) = self.log.as_mut() {
            l.write(r)?;
        }
        if !self.a.quiet {
            progress::print_pass(r, self.a.sdlm_stats);
        }
        let model = end.model(r)?;
        if let Some(path) = &self.a.save {
            model.save(path)?;
        }
        if let Some(dir) = &self.checkpoint_dir {
            let opt = checkpoint::Optimizer {
                velocity: end.velocity()?,
                eps: vec![0.0; params::N_PARAMS],
            };
            for name in [
                format!("epoch-{:03}.safetensors", r.epoch),
                LAST.to_string(),
            ] {
                let path = dir.join(name);
                checkpoint::save_training(
                    &path,
                    model.params(),
                    &RBF_CENTERS,
                    model.meta(),
                    Some(&opt),
                )?;
            }
        }
        self.last = Some(r.clone());
        Ok(())
    }

    /// The run finished: the learning curve and the summary line.
    fn finished(&self, clock: std::time::Instant) -> Result<ExitCode> {
        if let Some(path) = &self.a.log {
            let png = path.with_extension("png");
            lenet_gpu::render::learning_curve(&read_log(path)?, &png)?;
            if !self.a.quiet {
                println!("learning curve: {}", png.display());
            }
        }
        if let Some(r) = &self.last {
            println!(
                "done: test error {:.2}% after {} pass{}, {:.1} s{}{}",
                100.0 * r.test_error,
                r.epoch,
                if r.epoch == 1 { "" } else { "es" },
                clock.elapsed().as_secs_f64(),
                lenet_gpu::bench::peak_memory()
                    .map(|m| format!(", peak host memory {:.0} MB", m as f64 / 1048576.0))
                    .unwrap_or_default(),
                self.a
                    .save
                    .as_ref()
                    .map(|p| format!("; saved {}", p.display()))
                    .unwrap_or_default()
            );
        }
        Ok(ExitCode::SUCCESS)
    }

    /// The device failed mid-run (lost, out of memory): nothing more can be read from it,
    /// so the last completed pass's checkpoint stands; the message says how to go on.
    fn device_failed(&self, what: &str) -> String {
        let in_dir = self
            .checkpoint_dir
            .as_ref()
            .map(|d| (d.clone(), d.join(LAST)))
            .filter(|(_, f)| f.is_file());
        let saved = in_dir.or_else(|| {
            self.a
                .save
                .clone()
                .filter(|p| p.is_file())
                .map(|p| (p.clone(), p))
        });
        let Some((from, file)) = saved else {
            return format!(
                "{what}\nNothing was saved (--checkpoint-dir DIR keeps every pass and lets a run \
                 continue): start the run again, with --backend cpu to leave the GPU"
            );
        };
        let pass = checkpoint::load(&file).map_or("?".to_string(), |c| c.meta.epoch.to_string());
        let no_momentum = if self.checkpoint_dir.is_none() && self.cfg.momentum != 0.0 {
            " (--save keeps no momentum buffer: the continued run restarts it from zero)"
        } else {
            ""
        };
        format!(
            "{what}\n{} (pass {pass}) is intact. Continue the run{no_momentum} with:\n  \
             lenet-gpu train --resume {}                 # on the same adapter, once it is back\n  \
             lenet-gpu train --resume {1} --backend cpu   # on the CPU backend",
            file.display(),
            from.display()
        )
    }

    /// A signal stopped the run: save its exact position and say how to go on.
    fn stopped(&self, trainer: &mut Trainer, progress: &Progress) -> Result<()> {
        let target = self
            .checkpoint_dir
            .as_ref()
            .map(|d| d.join(LAST))
            .or(self.a.save.clone());
        let Some(path) = target else {
            eprintln!(
                "stopped in pass {} after {} patterns; nothing saved (use --checkpoint-dir DIR to be able to resume)",
                progress.epoch, progress.position
            );
            return Ok(());
        };
        let meta = run_meta(
            self.cfg,
            self.n_train,
            &self.run,
            progress.epoch - 1,
            Some(progress),
        );
        let opt = checkpoint::Optimizer {
            velocity: trainer.velocity()?,
            eps: progress
                .eps
                .clone()
                .unwrap_or_else(|| vec![0.0; params::N_PARAMS]),
        };
        let params = trainer.model()?.params().to_vec();
        checkpoint::save_training(&path, &params, &RBF_CENTERS, &meta, Some(&opt))?;
        let from = self.checkpoint_dir.as_ref().unwrap_or(&path);
        let at = if progress.position == 0 {
            format!("before pass {}", progress.epoch)
        } else {
            format!(
                "in pass {} after {} patterns",
                progress.epoch, progress.position
            )
        };
        eprintln!(
            "stopped {at}; saved {}. Continue with: lenet-gpu train --resume {}",
            path.display(),
            from.display(),
        );
        Ok(())
    }
}

/// SIGINT and SIGTERM raise these flags; a second signal of the same kind exits at once
/// (130 or 143) without touching the checkpoints, which are only ever replaced whole.
fn stop_flags() -> (Arc<AtomicBool>, Arc<AtomicBool>) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let int = Arc::new(AtomicBool::new(false));
    let term = Arc::new(AtomicBool::new(false));
    for (sig, flag, code) in [(SIGINT, &int, 130), (SIGTERM, &term, 143)] {
        // Registration only fails for forbidden signals, which these are not.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, code, flag.clone());
        let _ = signal_hook::flag::register(sig, flag.clone());
    }
    (int, term)
}

/// The trainer's stop request, raised by either signal: it stops after the current group
/// of batches.
fn stop_on_signal(int: &Arc<AtomicBool>, term: &Arc<AtomicBool>) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let (int, term, s) = (int.clone(), term.clone(), stop.clone());
    std::thread::spawn(move || {
        while !int.load(Ordering::SeqCst) && !term.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        s.store(true, Ordering::SeqCst);
    });
    stop
}
