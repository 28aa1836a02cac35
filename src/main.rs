//! The `lenet-gpu` command line. clap structs (their doc comments are the help) ->
//! a config value -> the library.

use clap::{Parser, Subcommand, ValueEnum};
use lenet_gpu::backend::{Backend, Split};
use lenet_gpu::checkpoint::{self, Meta};
use lenet_gpu::cpu::{Loss, batch::CpuBackend};
use lenet_gpu::data::{self, Dataset};
use lenet_gpu::params;
use lenet_gpu::train::{self, EpochReport, TrainConfig};
use lenet_gpu::{Error, RBF_CENTERS, Result, fetch, gpu};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

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
    Devices,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Debug)]
enum BackendKind {
    /// The best GPU adapter through any graphics API (a CPU adapter such as lavapipe when
    /// no GPU exists).
    Gpu,
    /// The GPU backend through Vulkan only.
    Vulkan,
    /// The GPU backend through Metal only.
    Metal,
    /// The GPU backend through DirectX 12 only.
    Dx12,
    /// The GPU backend through OpenGL (ES) only.
    Gl,
    /// The plain-Rust reference, parallel over the batch.
    Cpu,
}

/// Which device runs the math.
#[derive(clap::Args)]
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
}

impl DeviceArgs {
    fn backend(
        &self,
        train: Arc<Dataset>,
        test: Arc<Dataset>,
        loss: Loss,
        momentum: f32,
        batch: usize,
    ) -> Result<Box<dyn Backend>> {
        let api = match self.backend {
            BackendKind::Cpu => {
                if self.adapter.is_some() || self.cpu_adapter {
                    return Err(Error::Config(
                        "--adapter and --cpu-adapter choose a GPU adapter; drop them or --backend cpu".into(),
                    ));
                }
                return Ok(Box::new(CpuBackend::new(train, test, loss, momentum)));
            }
            BackendKind::Gpu => None,
            BackendKind::Vulkan => gpu::parse_api("vulkan"),
            BackendKind::Metal => gpu::parse_api("metal"),
            BackendKind::Dx12 => gpu::parse_api("dx12"),
            BackendKind::Gl => gpu::parse_api("gl"),
        };
        let adapter = match gpu::pick(&gpu::AdapterChoice {
            backends: api,
            name: self.adapter.clone(),
            cpu: self.cpu_adapter,
        }) {
            Ok(a) => a,
            // Plain `--backend gpu` on a machine with no GPU at all: the CPU backend does the
            // same math far faster than a software GPU adapter would.
            Err(Error::NoAdapter(_))
                if self.backend == BackendKind::Gpu
                    && self.adapter.is_none()
                    && !self.cpu_adapter =>
            {
                eprintln!(
                    "note: no GPU adapter found; training on the CPU backend (see `lenet-gpu devices`)"
                );
                return Ok(Box::new(CpuBackend::new(train, test, loss, momentum)));
            }
            Err(e) => return Err(e),
        };
        let plain_gpu =
            self.backend == BackendKind::Gpu && self.adapter.is_none() && !self.cpu_adapter;
        if plain_gpu && adapter.get_info().device_type == wgpu::DeviceType::Cpu {
            eprintln!(
                "note: the only GPU adapter is {} (software); training on the CPU backend, which is \
                 faster. --cpu-adapter (or --adapter NAME) runs the GPU kernels on it anyway.",
                adapter.get_info().name
            );
            return Ok(Box::new(CpuBackend::new(train, test, loss, momentum)));
        }
        Ok(Box::new(gpu::GpuBackend::new(
            adapter, train, test, loss, momentum, batch,
        )?))
    }
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum LossKind {
    /// The paper's maximum-likelihood criterion: E = y_D.
    Mse,
    /// The paper's MAP criterion: E = y_D + ln(e^-j + sum_i e^-y_i).
    Map,
}

#[derive(clap::Args)]
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
    #[arg(long, value_enum, default_value = "mse")]
    loss: LossKind,
    /// The constant j of the MAP criterion.
    #[arg(long, default_value_t = 1.0)]
    map_j: f64,
    /// Multiplies every eta of the schedule.
    #[arg(long, default_value_t = 1.0)]
    eta_scale: f64,
    /// Per-pattern eta by pass, as LAST_PASS:ETA,... (the last eta holds after), or
    /// `paper` for the paper's online schedule 2:5e-4,5:2e-4,8:1e-4,12:5e-5,20:1e-5.
    /// Default: 1:1.25e-5,3:5e-5,6:2.5e-5,10:1.25e-5,15:5e-6,20:2e-6 (for batch 16).
    #[arg(long, value_name = "SCHEDULE")]
    schedule: Option<String>,
    /// SDLM's mu in eps_k = eta / (mu + h_kk).
    #[arg(long, default_value_t = 0.02)]
    mu: f64,
    /// Training patterns drawn before each pass to estimate the Hessian diagonal.
    #[arg(long, default_value_t = 500)]
    hessian_samples: usize,
    /// Momentum on the summed batch gradient (0 = the paper's plain SDLM).
    #[arg(long, default_value_t = 0.0)]
    momentum: f32,
    /// Save a checkpoint (safetensors) here after every pass, replacing it atomically.
    #[arg(long, value_name = "PATH")]
    save: Option<PathBuf>,
    /// Continue from a checkpoint: its weights, its seed and the pass after its epoch.
    #[arg(long, value_name = "PATH")]
    resume: Option<PathBuf>,
    /// Re-estimate the Hessian in pass 1 after N patterns, then 2N, 4N, ... (0: once per
    /// pass).
    #[arg(long, value_name = "N", default_value_t = TrainConfig::default().warmup)]
    warmup: usize,
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
    /// The checkpoint to evaluate.
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
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
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => run_train(a),
        Command::Eval(a) => run_eval(a),
        Command::Fetch(a) => run_fetch(a),
        Command::Devices => {
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

fn run_train(a: TrainArgs) -> Result<()> {
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
        ..TrainConfig::default()
    };
    if let Some(s) = &a.schedule {
        cfg.schedule = parse_schedule(s)?;
    }
    cfg.validate()?;
    let (init, first) = match &a.resume {
        Some(path) => {
            let ck = checkpoint::load(path)?;
            cfg.seed = ck.meta.seed;
            if ck.meta.epoch >= cfg.epochs {
                return Err(Error::Config(format!(
                    "{} already holds {} passes; ask for more with --epochs",
                    path.display(),
                    ck.meta.epoch
                )));
            }
            (ck.params, ck.meta.epoch + 1)
        }
        None => (params::init(cfg.seed), 1),
    };
    let (train_set, test_set) = load_data(&a.data)?;
    let n_train = train_set.len();
    let mut backend = a.device.backend(
        train_set,
        test_set.clone(),
        cfg.loss,
        cfg.momentum,
        cfg.batch,
    )?;
    backend.set_params(&init)?;
    println!(
        "LeNet-5, {} parameters | backend {} | {} training, {} test images | batch {} | loss {} | seed {}",
        params::N_PARAMS,
        backend.describe(),
        n_train,
        test_set.len(),
        cfg.batch,
        loss_name(cfg.loss),
        cfg.seed
    );
    println!(
        "{:>5} {:>9} {:>10} {:>9} {:>9} {:>8} {:>9}  mean step size C1 S2 C3 S4 C5 F6",
        "pass", "eta", "train loss", "train err", "test err", "seconds", "samples/s"
    );
    let start = std::time::Instant::now();
    let mut last: Option<EpochReport> = None;
    train::train(backend.as_mut(), &cfg, n_train, first, |r, b| {
        let steps: Vec<String> = r
            .eps_layers
            .iter()
            .map(|s| format!("{:.2e}", s[2]))
            .collect();
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
        if a.sdlm_stats {
            println!("      SDLM   h_kk min / median / max               eps_k min / median / max");
            for (((name, _), h), e) in params::LAYERS.iter().zip(&r.h_layers).zip(&r.eps_layers) {
                println!(
                    "      {name}   {:.2e} / {:.2e} / {:.2e}   {:.2e} / {:.2e} / {:.2e}",
                    h[0], h[1], h[3], e[0], e[1], e[3]
                );
            }
        }
        if let Some(path) = &a.save {
            save(path, &b.params()?, &cfg, r)?;
        }
        last = Some(r.clone());
        Ok(())
    })?;
    if let Some(r) = last {
        println!(
            "done: test error {:.2}% after {} passes, {:.1} s{}",
            100.0 * r.test_error,
            r.epoch,
            start.elapsed().as_secs_f64(),
            a.save
                .as_ref()
                .map(|p| format!("; saved {}", p.display()))
                .unwrap_or_default()
        );
    }
    Ok(())
}

fn save(path: &Path, p: &[f32], cfg: &TrainConfig, r: &EpochReport) -> Result<()> {
    let mut extra = std::collections::BTreeMap::new();
    extra.insert("batch".into(), cfg.batch.to_string());
    extra.insert("test_error".into(), format!("{:.6}", r.test_error));
    extra.insert("eta".into(), format!("{:e}", r.eta));
    let meta = Meta {
        epoch: r.epoch,
        seed: cfg.seed,
        loss: loss_name(cfg.loss),
        extra,
    };
    checkpoint::save(path, p, &RBF_CENTERS, &meta)
}

fn run_eval(a: EvalArgs) -> Result<()> {
    let ck = checkpoint::load(&a.model)?;
    let (train_set, test_set) = load_data(&a.data)?;
    let mut centers_differ = false;
    if ck.centers.as_slice() != RBF_CENTERS.as_slice() {
        centers_differ = true;
    }
    let mut b = a
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
    println!(
        "{}: pass {}, seed {}, loss {}",
        a.model.display(),
        ck.meta.epoch,
        ck.meta.seed,
        ck.meta.loss
    );
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
    println!("confusion matrix (rows: true digit, columns: predicted)");
    println!(
        "      {}",
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
