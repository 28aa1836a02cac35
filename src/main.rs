//! The `lenet-gpu` command line. clap structs (their doc comments are the help) ->
//! a config value -> the library.

use clap::{Parser, Subcommand, ValueEnum};
use lenet_gpu::backend::TrainStats;
use lenet_gpu::backend::{Backend, Split};
use lenet_gpu::checkpoint::{self, Meta};
use lenet_gpu::cpu::{
    Loss,
    batch::{CpuBackend, CpuKernels},
};
use lenet_gpu::data::{self, Dataset};
use lenet_gpu::params;
use lenet_gpu::train::{self, EpochReport, Progress, TrainConfig};
use lenet_gpu::{Error, RBF_CENTERS, Result, fetch, gpu};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Train and run the original LeNet-5 (LeCun et al., 1998) on MNIST.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train LeNet-5 with SDLM and report each pass.
    Train(TrainArgs),
    /// Classify the test set with a saved checkpoint: error rate and confusion matrix.
    Eval(EvalArgs),
    /// Download the four MNIST files from public mirrors and verify their SHA-256.
    Fetch(FetchArgs),
    /// List the GPU adapters (every graphics API) with the limits that matter here.
    Devices(DevicesArgs),
    /// Draw the learning curve of a `train --log` file as a PNG.
    Plot(PlotArgs),
    /// Classify your own digit images (PNG or JPEG, any size, dark-on-light or light-on-dark).
    Predict(PredictArgs),
    /// Picture what the network sees: a test digit, its C1 and C3 feature maps, the C1 kernels.
    Visualize(VisualizeArgs),
    /// Measure training and evaluation speed of each backend (validated against the CPU
    /// reference before timing), with memory use and GPU/CPU ratios.
    Bench(BenchArgs),
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Debug)]
enum BackendKind {
    /// The best GPU adapter through any graphics API; where the only adapters are software
    /// ones (lavapipe, llvmpipe), the CPU backend, which is faster there.
    Gpu,
    /// The GPU backend through Vulkan only.
    Vulkan,
    /// The GPU backend through Metal only.
    Metal,
    /// The GPU backend through DirectX 12 only.
    Dx12,
    /// The GPU backend through OpenGL (ES) only.
    Gl,
    /// The CPU backend: blocks of eight patterns through direct SIMD convolutions and GEMMs
    /// for the dense layers, parallel over the batch.
    Cpu,
    /// The CPU backend on the plain reference loops, one pattern at a time (slow; the spec
    /// the other kernels are tested against).
    #[value(name = "cpu-ref")]
    CpuRef,
}

impl BackendKind {
    fn is_cpu(self) -> bool {
        matches!(self, BackendKind::Cpu | BackendKind::CpuRef)
    }
}

/// Which device runs the math.
#[derive(clap::Args, Clone)]
struct DeviceArgs {
    /// Where the math runs.
    #[arg(long, value_enum, default_value = "gpu")]
    backend: BackendKind,
    /// Use the GPU adapter whose name contains NAME (case-insensitive; see `lenet-gpu
    /// devices`). WGPU_ADAPTER_NAME does the same.
    #[arg(long, value_name = "NAME")]
    adapter: Option<String>,
    /// Use a software (CPU) GPU adapter, such as lavapipe or llvmpipe.
    #[arg(long)]
    cpu_adapter: bool,
    /// Keep a software-only `--backend gpu` on that adapter instead of the CPU backend.
    #[arg(skip)]
    no_fallback: bool,
}

impl DeviceArgs {
    /// The device a saved run trained on (`resolved`'s form), chosen exactly again: a run
    /// on the CPU backend stays there, a GPU run goes back to its adapter.
    fn resolved(saved: &str) -> Self {
        let mut d = DeviceArgs {
            backend: BackendKind::Cpu,
            adapter: None,
            cpu_adapter: false,
            no_fallback: true,
        };
        match saved.split_once(':') {
            None if saved == "cpu-ref" => d.backend = BackendKind::CpuRef,
            None => {}
            Some((api, rest)) => {
                let (kind, name) = rest.split_once(':').unwrap_or(("hardware", rest));
                d.backend = match api {
                    "metal" => BackendKind::Metal,
                    "dx12" => BackendKind::Dx12,
                    "gl" => BackendKind::Gl,
                    _ => BackendKind::Vulkan,
                };
                d.cpu_adapter = kind == "software";
                d.adapter = Some(name.to_string());
            }
        }
        d
    }

    /// The backend these flags choose, and where it runs in the form `resolved` reads
    /// back: `cpu`, `cpu-ref`, or `API:software|hardware:ADAPTER`.
    fn backend(
        &self,
        train: Arc<Dataset>,
        test: Arc<Dataset>,
        loss: Loss,
        momentum: f32,
        batch: usize,
    ) -> Result<(Box<dyn Backend>, String)> {
        let cpu = |kernels| -> Result<(Box<dyn Backend>, String)> {
            let name = match kernels {
                CpuKernels::Reference => "cpu-ref",
                _ => "cpu",
            };
            Ok((
                Box::new(CpuBackend::with_kernels(
                    train.clone(),
                    test.clone(),
                    loss,
                    momentum,
                    kernels,
                )),
                name.to_string(),
            ))
        };
        let api = match self.backend {
            BackendKind::Cpu | BackendKind::CpuRef => {
                if self.adapter.is_some() || self.cpu_adapter {
                    return Err(Error::Config(
                        "--adapter and --cpu-adapter choose a GPU adapter; drop them or --backend cpu".into(),
                    ));
                }
                return cpu(if self.backend == BackendKind::Cpu {
                    CpuKernels::Fast
                } else {
                    CpuKernels::Reference
                });
            }
            BackendKind::Gpu => None,
            BackendKind::Vulkan => gpu::parse_api("vulkan"),
            BackendKind::Metal => gpu::parse_api("metal"),
            BackendKind::Dx12 => gpu::parse_api("dx12"),
            BackendKind::Gl => gpu::parse_api("gl"),
        };
        let plain_gpu = self.backend == BackendKind::Gpu
            && self.adapter.is_none()
            && !self.cpu_adapter
            && !self.no_fallback;
        // Plain `--backend gpu`: ask a child process which adapters exist, so this one loads
        // no graphics driver at all when there is no hardware GPU to train on.
        if plain_gpu
            && std::env::var_os("WGPU_ADAPTER_NAME").is_none()
            && let Some(found) = std::env::current_exe()
                .ok()
                .and_then(|exe| gpu::probe_in_child(&exe))
            && !found.iter().any(|p| !p.software)
        {
            match found.first() {
                None => eprintln!(
                    "note: no GPU adapter found; using the CPU backend (see `lenet-gpu devices`)"
                ),
                Some(p) => eprintln!(
                    "note: the only GPU adapter is {} (software); using the CPU backend, which \
                     is faster. --cpu-adapter (or --adapter NAME) runs the GPU kernels on it anyway.",
                    p.name
                ),
            }
            return cpu(CpuKernels::Fast);
        }
        let adapter = match gpu::pick(&gpu::AdapterChoice {
            backends: api,
            name: self.adapter.clone(),
            cpu: self.cpu_adapter,
        }) {
            Ok(a) => a,
            // Plain `--backend gpu` on a machine with no GPU at all: the CPU backend does the
            // same math far faster than a software GPU adapter would.
            Err(Error::NoAdapter(_)) if plain_gpu => {
                eprintln!(
                    "note: no GPU adapter found; using the CPU backend (see `lenet-gpu devices`)"
                );
                return cpu(CpuKernels::Fast);
            }
            Err(e) => return Err(e),
        };
        let info = adapter.get_info();
        let software = info.device_type == wgpu::DeviceType::Cpu;
        if plain_gpu && software {
            eprintln!(
                "note: the only GPU adapter is {} (software); using the CPU backend, which is \
                 faster. --cpu-adapter (or --adapter NAME) runs the GPU kernels on it anyway.",
                info.name
            );
            return cpu(CpuKernels::Fast);
        }
        if software && !self.cpu_adapter && !self.no_fallback {
            eprintln!(
                "note: {} is a software adapter (a CPU pretending to be a GPU); --backend cpu is \
                 faster here",
                info.name
            );
        }
        let on = format!(
            "{}:{}:{}",
            format!("{:?}", info.backend).to_lowercase(),
            if software { "software" } else { "hardware" },
            info.name
        );
        Ok((
            Box::new(gpu::GpuBackend::new(
                adapter, train, test, loss, momentum, batch,
            )?),
            on,
        ))
    }
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum LossKind {
    /// The paper's maximum-likelihood criterion: E = y_D.
    Mse,
    /// The paper's MAP criterion: E = y_D + ln(e^-j + sum_i e^-y_i).
    Map,
}

#[derive(clap::Args, Clone)]
struct DataArgs {
    /// Folder with the four MNIST-format IDX files (plain or .gz). Default: $LENET_DATA,
    /// else data/mnist (fetched there on first use when missing).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Use only the first N training images.
    #[arg(long, value_name = "N")]
    train_limit: Option<usize>,
    /// Use only the first N test images.
    #[arg(long, value_name = "N")]
    test_limit: Option<usize>,
}

#[derive(clap::Args)]
struct BenchArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Backends to measure, comma-separated (gpu, vulkan, metal, dx12, gl, cpu). Here `gpu`
    /// is the best adapter even when that is a software one such as lavapipe.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "gpu,cpu")]
    backend: Vec<BackendKind>,
    /// Use the GPU adapter whose name contains NAME (see `lenet-gpu devices`).
    #[arg(long, value_name = "NAME")]
    adapter: Option<String>,
    /// Use a software (CPU) GPU adapter, such as lavapipe or llvmpipe.
    #[arg(long)]
    cpu_adapter: bool,
    /// Batch sizes to measure, comma-separated or repeated.
    #[arg(long, value_delimiter = ',', default_value = "16,256")]
    batch: Vec<usize>,
    /// Timed training steps per backend and batch size.
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Untimed training steps before the timed ones.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Patterns of the timed SDLM (Hessian diagonal) estimate.
    #[arg(long, default_value_t = 500)]
    hessian_samples: usize,
    /// Seed of the parameters and of the patterns drawn.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object per backend and batch size instead of the table.
    #[arg(long)]
    json: bool,
    /// Also time each GPU kernel (entry point) per batch, slowest first: by GPU timestamp
    /// queries where the adapter has them, else by the wall time of repeated single
    /// dispatches (which includes each dispatch's fixed cost).
    #[arg(long)]
    profile: bool,
}

#[derive(clap::Args)]
#[command(allow_negative_numbers = true)]
struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    device: DeviceArgs,
    /// Number of passes over the training set.
    #[arg(long, default_value_t = 20)]
    epochs: u32,
    /// Patterns per update; the batch gradient is the sum of the patterns' gradients.
    #[arg(long, default_value_t = TrainConfig::default().batch)]
    batch: usize,
    /// Seed of the initial weights, the shuffles and the Hessian samples.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Training criterion.
    #[arg(long, value_enum, default_value = "map")]
    loss: LossKind,
    /// The constant j of the MAP criterion.
    #[arg(long, default_value_t = train::DEFAULT_MAP_J)]
    map_j: f64,
    /// Multiplies every eta of the schedule.
    #[arg(long, default_value_t = 1.0)]
    eta_scale: f64,
    /// Per-pattern eta by pass, as LAST_PASS:ETA,... (the last eta holds after), or
    /// `paper` for the paper's online schedule 2:5e-4,5:2e-4,8:1e-4,12:5e-5,20:1e-5.
    /// Default: 1:1.25e-5,6:5e-5,10:2.5e-5,14:1e-5,17:5e-6,20:2e-6 (for batch 16); with
    /// --distort, 1:1.25e-5,12:5e-5,17:2.5e-5,20:1e-5.
    #[arg(long, value_name = "SCHEDULE")]
    schedule: Option<String>,
    /// SDLM's mu in eps_k = eta / (mu + h_kk).
    #[arg(long, default_value_t = 0.02)]
    mu: f64,
    /// Training patterns drawn before each pass to estimate the Hessian diagonal.
    #[arg(long, default_value_t = 500)]
    hessian_samples: usize,
    /// Warp each training image by a fresh random affine distortion every pass (shift up to
    /// 2 px, scale and squeeze up to 10%, horizontal shear up to 0.3), as in the paper's
    /// distorted-data experiment. Reproducible from --seed; evaluation is undistorted.
    #[arg(long)]
    distort: bool,
    /// Momentum on the summed batch gradient (0 = the paper's plain SDLM).
    #[arg(long, default_value_t = 0.0)]
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

#[derive(clap::Args)]
struct EvalArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    device: DeviceArgs,
    /// The checkpoint to evaluate: a file, a `--checkpoint-dir` folder (its last
    /// checkpoint), or plain safetensors weights with the tensor names of a checkpoint.
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// Also write every misclassified test digit, labelled true->predicted, into one PNG.
    #[arg(long, value_name = "PNG")]
    errors_png: Option<PathBuf>,
}

#[derive(clap::Args)]
struct PlotArgs {
    /// A log written by `train --log` (CSV or JSON lines).
    log: PathBuf,
    /// The PNG to write (default: the log's name with .png).
    #[arg(long, value_name = "PNG")]
    out: Option<PathBuf>,
}

#[derive(clap::Args)]
struct PredictArgs {
    /// The checkpoint to classify with (a file, a checkpoint folder, or plain weights).
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// Print one JSON object per image instead of text.
    #[arg(long)]
    json: bool,
    /// Images of one digit each.
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<PathBuf>,
}

#[derive(clap::Args)]
struct VisualizeArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The checkpoint whose weights to show (a file, a checkpoint folder, or plain weights).
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// Which test image (0-based).
    #[arg(long, default_value_t = 0)]
    index: usize,
    /// The PNG to write.
    #[arg(long, value_name = "PNG")]
    out: PathBuf,
}

#[derive(clap::Args)]
struct DevicesArgs {
    /// One line per adapter (software|hardware, API, name), for `--backend gpu`'s probe.
    #[arg(long, hide = true)]
    probe: bool,
}

#[derive(clap::Args)]
struct FetchArgs {
    /// Folder to put the files in (default: $LENET_DATA, else data/mnist).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Mirror base URL serving <name>.gz; repeat to try several in order (replaces the
    /// built-in list).
    #[arg(long = "mirror", value_name = "URL")]
    mirrors: Vec<String>,
}

fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let sub = matches
        .subcommand()
        .map(|(_, m)| m.clone())
        .unwrap_or_default();
    let result = match cli.command {
        Command::Train(a) => match run_train(a, &sub) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Command::Eval(a) => run_eval(a),
        Command::Fetch(a) => run_fetch(a),
        Command::Plot(a) => run_plot(a),
        Command::Predict(a) => match run_predict(a) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Command::Visualize(a) => run_visualize(a),
        Command::Bench(a) => run_bench(a),
        Command::Devices(d) if d.probe => {
            // The child side of `gpu::probe_in_child`: one adapter a line.
            for l in gpu::probe_lines() {
                println!("{l}");
            }
            Ok(())
        }
        Command::Devices(_) => {
            let all = gpu::describe_all();
            if all.is_empty() {
                println!(
                    "no GPU adapter found; `apt-get install mesa-vulkan-drivers` (Debian/Ubuntu) gives lavapipe, or use --backend cpu"
                );
            }
            for d in all {
                println!("{d}");
            }
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load_data(a: &DataArgs) -> Result<(Arc<Dataset>, Arc<Dataset>)> {
    let dir = data::data_dir(a.data.as_deref());
    let explicit =
        a.data.is_some() || std::env::var_os("LENET_DATA").is_some_and(|v| !v.is_empty());
    let (mut train, mut test) = match data::load_mnist(&dir) {
        // The default folder is ours to fill: fetch MNIST there on first use, so that
        // `lenet-gpu train` works on a fresh machine. A folder the user named is only read.
        Err(Error::DataMissing { .. }) if !explicit => {
            eprintln!("MNIST is not in {}: fetching it (once)", dir.display());
            fetch::fetch(&fetch::FetchOptions::new(&dir))?;
            data::load_mnist(&dir)?
        }
        r => r?,
    };
    for (limit, set, flag) in [
        (a.train_limit, &mut train, "--train-limit"),
        (a.test_limit, &mut test, "--test-limit"),
    ] {
        if let Some(n) = limit {
            if n == 0 {
                return Err(Error::Config(format!("{flag} must be at least 1")));
            }
            *set = std::mem::take(set).truncated(n);
        }
    }
    Ok((Arc::new(train), Arc::new(test)))
}

fn parse_schedule(s: &str) -> Result<Vec<(u32, f64)>> {
    if s == "paper" {
        return Ok(train::PAPER_SCHEDULE.to_vec());
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

fn loss_name(l: Loss) -> String {
    match l {
        Loss::Mse => "mse".into(),
        Loss::Map { j } => format!("map(j={j})"),
    }
}

/// The metadata keys that carry a run's settings and position, so `--resume` continues it.
fn run_meta(
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
struct SavedRun {
    epochs: Option<u32>,
    test_patterns: Option<usize>,
    data: Option<PathBuf>,
    /// `DeviceArgs::resolved`'s form: `cpu`, `cpu-ref` or `API:software|hardware:ADAPTER`.
    device: Option<String>,
}

impl SavedRun {
    fn of(ck: &checkpoint::Checkpoint) -> Self {
        let x = &ck.meta.extra;
        SavedRun {
            epochs: x.get("epochs").and_then(|v| v.parse().ok()),
            test_patterns: x.get("test_patterns").and_then(|v| v.parse().ok()),
            data: x.get("data").map(PathBuf::from),
            device: x.get("device").cloned(),
        }
    }

    fn put(&self, e: &mut std::collections::BTreeMap<String, String>) {
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
            e.insert("device".into(), v.clone());
        }
    }
}

/// Whether the user wrote flag `id` (clap's field name) on the command line.
fn given(m: &clap::ArgMatches, id: &str) -> bool {
    m.try_get_raw(id).is_ok_and(|v| v.is_some())
        && m.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
}

/// A resumed run keeps its settings: a flag given with `--resume` that would change them
/// is refused (one that repeats the saved value is fine).
fn refuse_changes(
    m: &clap::ArgMatches,
    asked: &TrainConfig,
    saved: &TrainConfig,
    n_train: usize,
    data: &DataArgs,
    file: &Path,
) -> Result<()> {
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
            data.train_limit.is_some_and(|n| n != n_train),
            n_train.to_string(),
        ),
    ];
    for (id, flag, differs, was) in checks {
        if differs && given(m, id) {
            return Err(Error::Config(format!(
                "{flag} would change the run saved in {} (it has {was}); --resume continues a run \
                 with its own settings: drop {flag}, or start a new run without --resume",
                file.display()
            )));
        }
    }
    Ok(())
}

fn schedule_text(s: &[(u32, f64)]) -> String {
    s.iter()
        .map(|(p, e)| format!("{p}:{e:?}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The settings and position stored by `run_meta`; None for a checkpoint without them.
fn resume_point(
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

fn run_train(a: TrainArgs, m: &clap::ArgMatches) -> Result<ExitCode> {
    if a.threads == Some(0) {
        return Err(Error::Config("--threads must be at least 1".into()));
    }
    if let Some(t) = a.threads {
        // Only fails when a pool already exists, which cannot happen here.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global();
    }
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
    // Fail now, not after a pass of training, when --save or --log cannot be written.
    if let Some(path) = &a.save {
        check_output_file("--save", path, "lenet.safetensors")?;
    }
    if let Some(path) = &a.log {
        check_output_file("--log", path, "run.csv")?;
    }
    // Resuming from a directory keeps writing there.
    let checkpoint_dir = a
        .checkpoint_dir
        .clone()
        .or_else(|| a.resume.clone().filter(|p| p.is_dir()));
    if let Some(dir) = &checkpoint_dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    // Resuming: the checkpoint's weights, optimiser state, settings, data subset, device
    // and position; flags that would change the run are refused.
    let mut init = params::init(cfg.seed);
    let mut velocity = None;
    let mut from = Progress::start();
    let mut data_args = a.data.clone();
    let mut device = a.device.clone();
    let mut resumed_on: Option<String> = None;
    let mut resumed_from: Option<PathBuf> = None;
    if let Some(path) = &a.resume {
        let file = if path.is_dir() {
            path.join(LAST)
        } else {
            path.clone()
        };
        let ck = checkpoint::load(&file)?;
        let run = SavedRun::of(&ck);
        match resume_point(&ck, &file)? {
            Some((saved, n, progress)) => {
                refuse_changes(m, &cfg, &saved, n, &a.data, &file)?;
                cfg = TrainConfig {
                    epochs: cfg.epochs,
                    fault: cfg.fault,
                    ..saved
                };
                data_args.train_limit = Some(n);
                from = progress;
            }
            None => from.epoch = ck.meta.epoch + 1,
        }
        if !given(m, "epochs") {
            cfg.epochs = run.epochs.unwrap_or(cfg.epochs);
        }
        if data_args.test_limit.is_none() {
            data_args.test_limit = run.test_patterns;
        }
        if data_args.data.is_none() {
            data_args.data = run.data.filter(|d| d.is_dir());
        }
        let device_given = ["backend", "adapter", "cpu_adapter"]
            .iter()
            .any(|id| given(m, id));
        match (&run.device, device_given) {
            (Some(d), false) => device = DeviceArgs::resolved(d),
            (Some(d), true) => resumed_on = Some(d.clone()),
            (None, _) => {}
        }
        if from.epoch > cfg.epochs {
            return Err(Error::Config(format!(
                "{} already holds {} passes; ask for more with --epochs",
                file.display(),
                ck.meta.epoch
            )));
        }
        eprintln!(
            "resuming {} at pass {}{} with its settings (batch {}, seed {}, {} passes)",
            file.display(),
            from.epoch,
            if from.position > 0 {
                format!(", pattern {}", from.position)
            } else {
                String::new()
            },
            cfg.batch,
            cfg.seed,
            cfg.epochs
        );
        init = ck.params;
        velocity = ck.optimizer.map(|o| o.velocity);
        resumed_from = Some(file);
    }
    let (train_set, test_set) = load_data(&data_args)?;
    let n_train = train_set.len();
    if let (Some(file), Some(n)) = (&resumed_from, data_args.train_limit)
        && a.resume.is_some()
        && n != n_train
    {
        return Err(Error::Config(format!(
            "{} was trained on {n} patterns, but {} has only {n_train}; give --data the folder it was trained on",
            file.display(),
            data::data_dir(data_args.data.as_deref()).display()
        )));
    }
    // The backend takes the only references to the data: a GPU backend frees the host
    // copies once they are on the device.
    let n_test = test_set.len();
    let data_dir = std::path::absolute(data::data_dir(data_args.data.as_deref())).ok();
    let (mut backend, on) =
        device.backend(train_set, test_set, cfg.loss, cfg.momentum, cfg.batch)?;
    if let Some(before) = resumed_on.filter(|b| *b != on) {
        eprintln!(
            "note: this run trained on {before} and continues on {on}; its weights will not be \
             bit-identical to a run that stayed there"
        );
    }
    let saved_run = SavedRun {
        epochs: Some(cfg.epochs),
        test_patterns: Some(n_test),
        data: data_dir,
        device: Some(on),
    };
    backend.set_params(&init)?;
    if let Some(v) = &velocity {
        backend.set_velocity(v)?;
    }
    if !a.quiet {
        println!(
            "LeNet-5, {} parameters | backend {} | {} training, {} test images | batch {} | loss {} | seed {}",
            params::N_PARAMS,
            backend.describe(),
            n_train,
            n_test,
            cfg.batch,
            loss_name(cfg.loss),
            cfg.seed
        );
        println!(
            "{:>5} {:>9} {:>10} {:>9} {:>9} {:>8} {:>9}  mean step size C1 S2 C3 S4 C5 F6",
            "pass", "eta", "train loss", "train err", "test err", "seconds", "samples/s"
        );
    }
    let (int, term) = stop_flags();
    let stop = Arc::new(AtomicBool::new(false));
    {
        // Either signal asks the trainer to stop after the current group of batches.
        let (int, term, stop) = (int.clone(), term.clone(), stop.clone());
        std::thread::spawn(move || {
            while !int.load(Ordering::SeqCst) && !term.load(Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            stop.store(true, Ordering::SeqCst);
        });
    }
    let start = std::time::Instant::now();
    let mut last: Option<EpochReport> = None;
    let mut log = match &a.log {
        Some(path) => Some(RunLog::open(path, from.epoch > 1 || from.position > 0)?),
        None => None,
    };
    let bar = progress_bar(a.quiet, n_train);
    let mut bar_epoch = 0;
    let tick = |epoch: u32, done: usize| {
        if let Some(b) = &bar {
            if epoch != bar_epoch {
                bar_epoch = epoch;
                b.reset();
                b.set_prefix(format!("pass {epoch}"));
            }
            b.set_position(done as u64);
        }
    };
    let outcome = train::train(
        backend.as_mut(),
        &cfg,
        n_train,
        from,
        &stop,
        tick,
        |r, b| {
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            if let Some(l) = log.as_mut() {
                l.write(r)?;
            }
            let steps: Vec<String> = r
                .eps_layers
                .iter()
                .map(|s| format!("{:.2e}", s[2]))
                .collect();
            if !a.quiet {
                println!(
                    "{:>5} {:>9.2e} {:>10.4} {:>8.2}% {:>8.2}% {:>8.1} {:>9.0}  {}",
                    r.epoch,
                    r.eta,
                    r.train_loss,
                    100.0 * r.train_error,
                    100.0 * r.test_error,
                    r.seconds,
                    r.samples_per_s,
                    steps.join(" ")
                );
            }
            if a.sdlm_stats && !a.quiet {
                println!(
                    "      SDLM   h_kk min / median / max               eps_k min / median / max"
                );
                for (((name, _), h), e) in params::LAYERS.iter().zip(&r.h_layers).zip(&r.eps_layers)
                {
                    println!(
                        "      {name}   {:.2e} / {:.2e} / {:.2e}   {:.2e} / {:.2e} / {:.2e}",
                        h[0], h[1], h[3], e[0], e[1], e[3]
                    );
                }
            }
            let mut meta = run_meta(&cfg, n_train, &saved_run, r.epoch, None);
            meta.extra
                .insert("test_error".into(), format!("{:.6}", r.test_error));
            let p = b.params()?;
            if let Some(path) = &a.save {
                checkpoint::save(path, &p, &RBF_CENTERS, &meta)?;
            }
            if let Some(dir) = &checkpoint_dir {
                let opt = checkpoint::Optimizer {
                    velocity: b.velocity()?,
                    eps: vec![0.0; params::N_PARAMS],
                };
                checkpoint::save_training(
                    &dir.join(format!("epoch-{:03}.safetensors", r.epoch)),
                    &p,
                    &RBF_CENTERS,
                    &meta,
                    Some(&opt),
                )?;
                checkpoint::save_training(&dir.join(LAST), &p, &RBF_CENTERS, &meta, Some(&opt))?;
            }
            last = Some(r.clone());
            Ok(())
        },
    )?;
    match outcome {
        train::Outcome::Finished => {
            if let Some(path) = &a.log {
                let png = path.with_extension("png");
                lenet_gpu::render::learning_curve(&read_log(path)?, &png)?;
                if !a.quiet {
                    println!("learning curve: {}", png.display());
                }
            }
            if let Some(r) = last {
                println!(
                    "done: test error {:.2}% after {} pass{}, {:.1} s{}{}",
                    100.0 * r.test_error,
                    r.epoch,
                    if r.epoch == 1 { "" } else { "es" },
                    start.elapsed().as_secs_f64(),
                    lenet_gpu::bench::peak_memory()
                        .map(|m| format!(", peak host memory {:.0} MB", m as f64 / 1048576.0))
                        .unwrap_or_default(),
                    a.save
                        .as_ref()
                        .map(|p| format!("; saved {}", p.display()))
                        .unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        train::Outcome::Stopped(progress) => {
            // Clear the bar before the message, so it is not left drawn twice.
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            let code = if term.load(Ordering::SeqCst) {
                143
            } else {
                130
            };
            let target = checkpoint_dir
                .as_ref()
                .map(|d| d.join(LAST))
                .or(a.save.clone());
            match target {
                Some(path) => {
                    let meta = run_meta(
                        &cfg,
                        n_train,
                        &saved_run,
                        progress.epoch - 1,
                        Some(&progress),
                    );
                    let opt = checkpoint::Optimizer {
                        velocity: backend.velocity()?,
                        eps: progress
                            .eps
                            .clone()
                            .unwrap_or_else(|| vec![0.0; params::N_PARAMS]),
                    };
                    checkpoint::save_training(
                        &path,
                        &backend.params()?,
                        &RBF_CENTERS,
                        &meta,
                        Some(&opt),
                    )?;
                    let from = checkpoint_dir.as_ref().unwrap_or(&path);
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
                }
                None => eprintln!(
                    "stopped in pass {} after {} patterns; nothing saved (use --checkpoint-dir DIR to be able to resume)",
                    progress.epoch, progress.position
                ),
            }
            Ok(ExitCode::from(code))
        }
    }
}

/// Refuses an output file whose folder does not exist or which is a folder itself.
fn check_output_file(flag: &str, path: &Path, example: &str) -> Result<()> {
    let parent = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(Error::Config(format!(
            "{flag} {}: folder {} does not exist; create it first",
            path.display(),
            parent.display()
        )));
    }
    if path.is_dir() {
        return Err(Error::Config(format!(
            "{flag} {}: is a folder; give a file name such as {example}",
            path.display()
        )));
    }
    Ok(())
}

/// The file in a checkpoint directory that `--resume DIR` reads.
const LAST: &str = checkpoint::LAST;

/// `--model PATH` of eval, predict and visualize: a checkpoint, a checkpoint folder, or
/// plain weights (with a note on stderr).
fn load_model(path: &Path) -> Result<(checkpoint::Checkpoint, PathBuf, bool)> {
    let (ck, file, note) = checkpoint::load_weights(path)?;
    if let Some(n) = &note {
        eprintln!("note: {n}");
    }
    Ok((ck, file, note.is_some()))
}

fn run_bench(a: BenchArgs) -> Result<()> {
    use lenet_gpu::bench::{self, BenchConfig, BenchResult};
    if a.batch.contains(&0) || a.steps == 0 || a.hessian_samples == 0 {
        return Err(Error::Config(
            "--batch, --steps and --hessian-samples must be at least 1".into(),
        ));
    }
    let (train_set, test_set) = load_data(&a.data)?;
    let cfg = BenchConfig {
        steps: a.steps,
        warmup: a.warmup,
        hessian_samples: a.hessian_samples,
        seed: a.seed,
    };
    let loss = train::DEFAULT_LOSS;
    let max_batch = a.batch.iter().copied().max().unwrap_or(1);
    let mut reference = CpuBackend::new(train_set.clone(), test_set.clone(), loss, 0.0);
    let refs: Vec<f64> = a
        .batch
        .iter()
        .map(|&b| bench::reference_loss(&mut reference, train_set.len(), b, a.seed))
        .collect::<Result<_>>()?;
    drop(reference);
    let mut results: Vec<BenchResult> = Vec::new();
    let mut profiles = Vec::new();
    for &kind in &a.backend {
        let device = DeviceArgs {
            backend: kind,
            adapter: if kind.is_cpu() {
                None
            } else {
                a.adapter.clone()
            },
            cpu_adapter: a.cpu_adapter && !kind.is_cpu(),
            no_fallback: true,
        };
        let mut b = match device
            .backend(train_set.clone(), test_set.clone(), loss, 0.0, max_batch)
            .map(|(b, _)| b)
        {
            // `bench` with its default `gpu,cpu` on a machine without any GPU adapter:
            // measure what there is, and say what was skipped.
            Err(Error::NoAdapter(why)) if a.backend.len() > 1 => {
                eprintln!(
                    "note: skipping --backend {}: {why}",
                    format!("{kind:?}").to_lowercase()
                );
                continue;
            }
            r => r?,
        };
        for (&batch, &r) in a.batch.iter().zip(&refs) {
            if !a.json {
                eprintln!("measuring {} at batch {batch} ...", b.describe());
            }
            let res = bench::measure(b.as_mut(), train_set.len(), test_set.len(), batch, r, &cfg)?;
            if a.profile
                && let Some((p, timestamps)) = b.profile(batch, 20)?
            {
                profiles.push((res.backend.clone(), batch, p, timestamps));
            }
            results.push(res);
        }
    }
    let mb = |x: Option<u64>| x.map_or("-".to_string(), |v| format!("{:.0}", v as f64 / 1048576.0));
    if a.json {
        for r in &results {
            let j = serde_json::json!({
                "backend": r.backend,
                "batch": r.batch,
                "train_samples_per_s": r.train_samples_per_s,
                "epoch_seconds": r.epoch_seconds,
                "hessian_seconds": r.hessian_seconds,
                "hessian_samples": a.hessian_samples,
                "eval_samples_per_s": r.eval_samples_per_s,
                "eval_error": r.eval_error,
                "check_loss": r.check_loss,
                "reference_loss": r.reference_loss,
                "train_flop_per_pattern": lenet_gpu::bench::TRAIN_FLOP_PER_PATTERN,
                "train_gflops": r.train_samples_per_s * lenet_gpu::bench::TRAIN_FLOP_PER_PATTERN as f64 / 1e9,
                "eval_gflops": r.eval_samples_per_s * lenet_gpu::bench::EVAL_FLOP_PER_PATTERN as f64 / 1e9,
                "peak_host_bytes": r.peak_host_bytes,
                "device_bytes": r.device_bytes,
                "steps": a.steps,
            });
            println!("{j}");
        }
    } else {
        println!(
            "{} training, {} test images; {} timed steps after {} warm-up; SDLM estimate over {} patterns",
            train_set.len(),
            test_set.len(),
            a.steps,
            a.warmup,
            a.hessian_samples
        );
        let w = results
            .iter()
            .map(|r| r.backend.len())
            .max()
            .unwrap_or(0)
            .max(7);
        println!(
            "{:<w$} {:>5} {:>10} {:>7} {:>8} {:>9} {:>10} {:>8} {:>7} {:>7}",
            "backend",
            "batch",
            "train/s",
            "GFLOP/s",
            "epoch s",
            "SDLM s",
            "eval/s",
            "eval err",
            "host MB",
            "GPU MB"
        );
        for r in &results {
            println!(
                "{:<w$} {:>5} {:>10.0} {:>7.1} {:>8.2} {:>9.3} {:>10.0} {:>7.2}% {:>7} {:>7}",
                r.backend,
                r.batch,
                r.train_samples_per_s,
                r.train_samples_per_s * lenet_gpu::bench::TRAIN_FLOP_PER_PATTERN as f64 / 1e9,
                r.epoch_seconds,
                r.hessian_seconds,
                r.eval_samples_per_s,
                100.0 * r.eval_error,
                mb(r.peak_host_bytes),
                mb(r.device_bytes)
            );
        }
        // Ratios of every other backend to the CPU backend (fast kernels) at the same batch.
        let is_cpu = |b: &str| b.starts_with("cpu") && b.contains("fast");
        for r in results.iter().filter(|r| !is_cpu(&r.backend)) {
            if let Some(c) = results
                .iter()
                .find(|c| is_cpu(&c.backend) && c.batch == r.batch)
            {
                println!(
                    "batch {}: {} / cpu = {:.2}x training, {:.2}x evaluation",
                    r.batch,
                    r.backend,
                    r.train_samples_per_s / c.train_samples_per_s,
                    r.eval_samples_per_s / c.eval_samples_per_s
                );
            }
        }
        println!(
            "GFLOP/s: training arithmetic achieved, {:.2} MFLOP per pattern (forward and backward \
             multiply-adds of every layer, from the layer shapes; squashing left out)",
            lenet_gpu::bench::TRAIN_FLOP_PER_PATTERN as f64 / 1e6
        );
        println!(
            "eval err: the test error of the weights after only the timed steps, nearly untrained; \
             it shows evaluation ran, not what the network reaches (`lenet-gpu train` for that)"
        );
        println!(
            "validated: every backend's first-step loss matched the CPU reference's (rel. diff <= 1e-4)"
        );
    }
    for (backend, batch, mut p, timestamps) in profiles {
        p.sort_by(|x, y| y.1.total_cmp(&x.1));
        let total: f64 = p.iter().map(|x| x.1).sum();
        let how = if timestamps {
            "GPU timestamp queries"
        } else {
            "wall time per dispatch, submission included: the adapter has no timestamp queries"
        };
        println!("\nkernel times, {backend}, batch {batch} ({how}):");
        for (name, t) in &p {
            println!(
                "  {name:<26} {:>9.3} ms {:>5.1}%",
                t * 1e3,
                100.0 * t / total
            );
        }
        println!(
            "  {:<26} {:>9.3} ms = {:.0} samples/s",
            "total",
            total * 1e3,
            batch as f64 / total
        );
    }
    Ok(())
}

fn run_eval(a: EvalArgs) -> Result<()> {
    let (ck, file, plain) = load_model(&a.model)?;
    let (train_set, test_set) = load_data(&a.data)?;
    let centers_differ = ck.centers.as_slice() != RBF_CENTERS.as_slice();
    let (mut b, _) = a
        .device
        .backend(train_set, test_set.clone(), Loss::Mse, 0.0, 1)?;
    b.set_params(&ck.params)?;
    let ev = b.evaluate(Split::Test)?;
    if centers_differ {
        eprintln!(
            "warning: {} holds RBF centres that differ from this build's; evaluating with this build's",
            a.model.display()
        );
    }
    if plain {
        println!("{}: plain weights", file.display());
    } else {
        println!(
            "{}: pass {}, seed {}, loss {}",
            file.display(),
            ck.meta.epoch,
            ck.meta.seed,
            ck.meta.loss
        );
    }
    println!(
        "test error {:.2}% ({} of {}), accuracy {:.2}%",
        100.0 * ev.error_rate(),
        ev.errors,
        ev.predictions.len(),
        100.0 * (1.0 - ev.error_rate())
    );
    let mut conf = [[0u32; 10]; 10];
    for (&p, &l) in ev.predictions.iter().zip(&test_set.labels) {
        conf[l as usize][p as usize] += 1;
    }
    if let Some(out) = &a.errors_png {
        let wrong: Vec<usize> = (0..test_set.len())
            .filter(|&i| ev.predictions[i] != test_set.labels[i])
            .collect();
        let images: Vec<[u8; 784]> = wrong
            .iter()
            .map(|&i| digit28(&test_set, i))
            .collect::<Result<_>>()?;
        let truth: Vec<u8> = wrong.iter().map(|&i| test_set.labels[i]).collect();
        let pred: Vec<u8> = wrong.iter().map(|&i| ev.predictions[i]).collect();
        lenet_gpu::render::error_grid_indexed(&images, &truth, &pred, Some(&wrong), out)?;
        println!(
            "wrote {} ({} misclassified digits)",
            out.display(),
            wrong.len()
        );
    }
    println!("confusion matrix (rows: true digit, columns: predicted; last: per-class accuracy)");
    println!(
        "      {} accuracy",
        (0..10).map(|d| format!("{d:>5}")).collect::<String>()
    );
    for (d, row) in conf.iter().enumerate() {
        let total: u32 = row.iter().sum();
        let acc = if total > 0 {
            100.0 * row[d] as f64 / total as f64
        } else {
            0.0
        };
        println!(
            "{d:>5} {} {acc:>7.2}%",
            row.iter().map(|c| format!("{c:>5}")).collect::<String>()
        );
    }
    Ok(())
}

fn run_fetch(a: FetchArgs) -> Result<()> {
    let dir = a.dir.unwrap_or_else(|| data::data_dir(None));
    let mut opts = fetch::FetchOptions::new(&dir);
    if !a.mirrors.is_empty() {
        opts.mirrors = a.mirrors;
    }
    let done = fetch::fetch(&opts)?;
    for (name, outcome) in done {
        match outcome {
            fetch::FileOutcome::AlreadyValid => println!("{name}: already present and valid"),
            fetch::FileOutcome::Downloaded { mirror } => {
                println!("{name}: downloaded from {mirror}")
            }
        }
    }
    println!("MNIST is ready in {}", dir.display());
    Ok(())
}

/// The per-pass record file of `train --log`: CSV or JSON lines, flushed after every pass.
struct RunLog {
    file: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    csv: bool,
}

impl RunLog {
    const FIELDS: &'static str = "epoch,eta,train_loss,train_error,test_loss,test_error,seconds,samples_per_s,step_c1,step_s2,step_c3,step_s4,step_c5,step_f6";

    fn open(path: &Path, append: bool) -> Result<Self> {
        let csv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        let exists = path.exists();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let mut log = RunLog {
            file: std::io::BufWriter::new(file),
            path: path.to_path_buf(),
            csv,
        };
        if csv && !(append && exists) {
            log.line(Self::FIELDS.to_string())?;
        }
        Ok(log)
    }

    fn line(&mut self, s: String) -> Result<()> {
        use std::io::Write;
        writeln!(self.file, "{s}")
            .and_then(|_| self.file.flush())
            .map_err(|e| Error::io(&self.path, e))
    }

    fn write(&mut self, r: &EpochReport) -> Result<()> {
        let steps: Vec<f64> = r.eps_layers.iter().map(|s| s[2]).collect();
        let values = [
            r.eta,
            r.train_loss,
            r.train_error,
            r.test_loss,
            r.test_error,
            r.seconds,
            r.samples_per_s,
        ];
        let line = if self.csv {
            let mut v: Vec<String> = vec![r.epoch.to_string()];
            // Plain decimals ("0.0125", "0.0000125"): shortest round-trip form, no exponent.
            v.extend(values.iter().chain(&steps).map(|x| format!("{x}")));
            v.join(",")
        } else {
            let names: Vec<&str> = Self::FIELDS.split(',').collect();
            let mut obj = serde_json::Map::new();
            obj.insert(names[0].into(), r.epoch.into());
            for (n, x) in names[1..].iter().zip(values.iter().chain(&steps)) {
                obj.insert((*n).into(), serde_json::json!(x));
            }
            serde_json::Value::Object(obj).to_string()
        };
        self.line(line)
    }
}

/// A bar over the patterns of a pass on a terminal; None when output is not a terminal (CI, a
/// pipe), where the per-pass lines are the progress, or with --quiet.
fn progress_bar(quiet: bool, n: usize) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(n as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix:>8} [{bar:40}] {pos}/{len} {rate} ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .with_key(
            "rate",
            |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0} samples/s", s.per_sec());
            },
        )
        .progress_chars("=> "),
    );
    Some(bar)
}

/// Test image `i` as 28x28 (a 32x32 set is cropped to its centre).
fn digit28(set: &Dataset, i: usize) -> Result<[u8; 784]> {
    let img = set.image(i);
    let pad = (set.side - 28) / 2;
    let mut out = [0u8; 784];
    for r in 0..28 {
        for c in 0..28 {
            out[r * 28 + c] = img[(r + pad) * set.side + c + pad];
        }
    }
    Ok(out)
}

/// The (pass, train error, test error) records of a `train --log` file.
fn read_log(path: &Path) -> Result<Vec<lenet_gpu::render::CurvePoint>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let bad = |n: usize, why: &str| {
        Error::Config(format!(
            "{}:{n}: {why}; expected a log written by `lenet-gpu train --log`",
            path.display()
        ))
    };
    let mut points = Vec::new();
    let mut header: Option<Vec<String>> = None;
    for (n, line) in text.lines().enumerate().map(|(n, l)| (n + 1, l.trim())) {
        if line.is_empty() {
            continue;
        }
        // Each record as (field, value) pairs, from JSON or from a CSV row under its header.
        let record: std::collections::HashMap<String, f64> = if line.starts_with('{') {
            let v: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(line).map_err(|_| bad(n, "not JSON"))?;
            v.into_iter()
                .filter_map(|(k, x)| Some((k, x.as_f64()?)))
                .collect()
        } else if let Some(h) = &header {
            h.iter()
                .cloned()
                .zip(
                    line.split(',')
                        .map(|v| v.trim().parse().unwrap_or(f64::NAN)),
                )
                .collect()
        } else {
            header = Some(line.split(',').map(|c| c.trim().to_string()).collect());
            continue;
        };
        let get = |k: &str| record.get(k).copied().filter(|v| v.is_finite());
        let (Some(e), Some(tr), Some(te)) = (get("epoch"), get("train_error"), get("test_error"))
        else {
            return Err(bad(n, "missing epoch, train_error or test_error"));
        };
        points.push(lenet_gpu::render::CurvePoint {
            epoch: e as u32,
            train_error: tr,
            test_error: te,
        });
    }
    if points.is_empty() {
        return Err(bad(0, "no records"));
    }
    Ok(points)
}

fn run_plot(a: PlotArgs) -> Result<()> {
    let out = a.out.unwrap_or_else(|| a.log.with_extension("png"));
    lenet_gpu::render::learning_curve(&read_log(&a.log)?, &out)?;
    println!("wrote {}", out.display());
    Ok(())
}

fn run_visualize(a: VisualizeArgs) -> Result<()> {
    let (ck, _, _) = load_model(&a.model)?;
    let (_, test_set) = load_data(&a.data)?;
    if a.index >= test_set.len() {
        return Err(Error::Config(format!(
            "--index {} is past the {} test images",
            a.index,
            test_set.len()
        )));
    }
    let caption = format!("test digit {}, label {}", a.index, test_set.labels[a.index]);
    lenet_gpu::render::feature_maps_captioned(
        &ck.params,
        &digit28(&test_set, a.index)?,
        Some(&caption),
        &a.out,
    )?;
    println!(
        "wrote {} (test image {}, label {})",
        a.out.display(),
        a.index,
        test_set.labels[a.index]
    );
    Ok(())
}

fn run_predict(a: PredictArgs) -> Result<ExitCode> {
    let (ck, _, _) = load_model(&a.model)?;
    let mut failed = 0;
    for path in &a.images {
        match lenet_gpu::predict::load_prepared(path) {
            Ok(img) => {
                let p = lenet_gpu::predict::classify(&ck.params, &img.pixels);
                if a.json {
                    println!(
                        "{}",
                        serde_json::json!({"file": path.display().to_string(), "digit": p.digit, "distances": p.distances, "warning": img.warning})
                    );
                } else {
                    let d: Vec<String> = p.distances.iter().map(|v| format!("{v:.1}")).collect();
                    println!(
                        "{}: {} (RBF distances to the centres of 0-9, smallest wins: {})",
                        path.display(),
                        p.digit,
                        d.join(" ")
                    );
                    if let Some(w) = &img.warning {
                        eprintln!("warning: {}: {w}", path.display());
                    }
                }
            }
            Err(e) => {
                failed += 1;
                if a.json {
                    println!(
                        "{}",
                        serde_json::json!({"file": path.display().to_string(), "error": e.to_string()})
                    );
                }
                eprintln!("error: {e}");
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
