//! The command line's shared pieces: the device and data flags every subcommand takes,
//! and loading data and models from them. Each subcommand lives in its own file; `main.rs`
//! only dispatches.

pub mod bench;
pub mod devices;
pub mod eval;
pub mod export;
pub mod fetch;
pub mod plot;
pub mod predict;
pub mod serve;
pub mod train;
pub mod visualize;

use clap::ValueEnum;
use lenet_gpu::checkpoint;
use lenet_gpu::data::{self, Dataset};
use lenet_gpu::select::{DeviceChoice, Kind};
use lenet_gpu::{Error, Result};
use lenet_gpu::{Mnist, Model};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Clone, Copy, ValueEnum, PartialEq, Debug)]
pub enum BackendKind {
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
    pub fn is_cpu(self) -> bool {
        matches!(self, BackendKind::Cpu | BackendKind::CpuRef)
    }
}

impl From<BackendKind> for Kind {
    fn from(k: BackendKind) -> Kind {
        match k {
            BackendKind::Gpu => Kind::Gpu,
            BackendKind::Vulkan => Kind::Vulkan,
            BackendKind::Metal => Kind::Metal,
            BackendKind::Dx12 => Kind::Dx12,
            BackendKind::Gl => Kind::Gl,
            BackendKind::Cpu => Kind::Cpu,
            BackendKind::CpuRef => Kind::CpuRef,
        }
    }
}

/// Which device runs the math.
#[derive(clap::Args, Clone)]
pub struct DeviceArgs {
    /// Where the math runs.
    #[arg(long, value_enum, default_value = "gpu")]
    pub backend: BackendKind,
    /// Use the GPU adapter whose name contains NAME (case-insensitive; see `lenet-gpu
    /// devices`). WGPU_ADAPTER_NAME does the same.
    #[arg(long, value_name = "NAME")]
    pub adapter: Option<String>,
    /// Use a software (CPU) GPU adapter, such as lavapipe or llvmpipe.
    #[arg(long)]
    pub cpu_adapter: bool,
    /// Which GPU kernels run (shaders/README.md describes each family) [default: fused].
    /// Naming them (or an API with --backend) makes a failed on-device check stop `train`
    /// instead of moving it to the other family or the CPU backend.
    #[arg(long, value_enum)]
    pub kernels: Option<KernelsArg>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Debug)]
pub enum KernelsArg {
    /// Fused kernels with workgroup memory, 6 dispatches per training batch: shaped for
    /// GPUs (`hardware` is its earlier name)
    #[value(alias = "hardware")]
    Fused,
    /// One invocation per output value, plain loops: the readable form of every pass
    Simple,
}

impl KernelsArg {
    /// The library's family.
    pub fn family(self) -> lenet_gpu::gpu::Family {
        match self {
            KernelsArg::Fused => lenet_gpu::gpu::Family::Fused,
            KernelsArg::Simple => lenet_gpu::gpu::Family::Simple,
        }
    }
}

impl DeviceArgs {
    /// The library's device request for these flags.
    pub fn choice(&self) -> DeviceChoice {
        DeviceChoice {
            kind: self.backend.into(),
            adapter: self.adapter.clone(),
            cpu_adapter: self.cpu_adapter,
            fallback: true,
            kernels: self.kernels.unwrap_or(KernelsArg::Fused).family(),
            forced: self.kernels.is_some() || self.backend != BackendKind::Gpu,
        }
    }
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum LossKind {
    /// The paper's maximum-likelihood criterion: E = y_D.
    Mse,
    /// The paper's MAP criterion: E = y_D + ln(e^-j + sum_i e^-y_i).
    Map,
}

#[derive(clap::Args, Clone)]
pub struct DataArgs {
    /// Folder with the four MNIST-format IDX files (plain or .gz). Default: $LENET_DATA,
    /// else data/mnist (fetched there on first use when missing).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Use only the first N training images.
    #[arg(long, value_name = "N")]
    pub train_limit: Option<usize>,
    /// Use only the first N test images.
    #[arg(long, value_name = "N")]
    pub test_limit: Option<usize>,
}

/// The training and test splits the flags name, as the library's [`Mnist`].
pub fn load_mnist(a: &DataArgs) -> Result<Mnist> {
    let dir = data::data_dir(a.data.as_deref());
    let explicit =
        a.data.is_some() || std::env::var_os("LENET_DATA").is_some_and(|v| !v.is_empty());
    // The default folder is ours to fill: fetch MNIST there on first use, so that
    // `lenet-gpu train` works on a fresh machine. A folder the user named is only read.
    let mnist = if explicit {
        Mnist::load(&dir)?
    } else {
        Mnist::load_or_fetch(&dir)?
    };
    mnist.limit(a.train_limit, a.test_limit)
}

pub fn load_data(a: &DataArgs) -> Result<(Arc<Dataset>, Arc<Dataset>)> {
    let m = load_mnist(a)?;
    Ok((m.train, m.test))
}

/// Whether the user wrote flag `id` (clap's field name) on the command line.
pub fn given(m: &clap::ArgMatches, id: &str) -> bool {
    m.try_get_raw(id).is_ok_and(|v| v.is_some())
        && m.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
}

/// Refuses an output file whose folder does not exist or which is a folder itself.
pub fn check_output_file(flag: &str, path: &Path, example: &str) -> Result<()> {
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
pub const LAST: &str = checkpoint::LAST;

/// `--model PATH` of eval, predict, visualize, serve and export: a checkpoint, a checkpoint
/// folder, or plain weights (with a note on stderr); the library's [`Model::load`].
pub fn load_model(path: &Path) -> Result<Model> {
    let model = Model::load(path)?;
    if let Some(n) = model.note() {
        eprintln!("note: {n}");
    }
    Ok(model)
}
