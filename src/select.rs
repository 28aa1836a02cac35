//! Which backend runs the math: the one policy that `train`, `eval`, `bench` and the tests
//! use. `--backend gpu` (the default) takes the best hardware GPU adapter; where the only
//! adapters are software ones (lavapipe, llvmpipe), the CPU backend, which is faster there.
//! Naming an API, an adapter or `--cpu-adapter` runs the GPU kernels wherever asked.

use crate::backend::Backend;
use crate::cpu::batch::{CpuBackend, CpuKernels};
use crate::data::Dataset;
use crate::model::Loss;
use crate::{Error, Result, gpu};
use std::sync::Arc;

/// Where the math runs, as `--backend` names it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// The best adapter of any graphics API (software-only machines: the CPU backend).
    Gpu,
    Vulkan,
    Metal,
    Dx12,
    Gl,
    /// The CPU backend's fast path.
    Cpu,
    /// The CPU backend on the reference loops.
    CpuRef,
}

impl Kind {
    pub fn is_cpu(self) -> bool {
        matches!(self, Kind::Cpu | Kind::CpuRef)
    }
}

/// A device request (`Default`: [`DeviceChoice::gpu`]): `--backend`, `--adapter`, `--cpu-adapter`, and whether a plain
/// `--backend gpu` may fall back to the CPU backend (not in `bench`, which measures what
/// it was asked to, nor for a resumed run, which goes back to where it ran).
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceChoice {
    pub kind: Kind,
    pub adapter: Option<String>,
    pub cpu_adapter: bool,
    pub fallback: bool,
    /// The GPU kernel family (`--kernels`).
    pub kernels: gpu::Family,
    /// The family or the API was chosen by the user (or is a resumed run's): a family that
    /// fails the on-device check stops a run instead of being replaced.
    pub forced: bool,
}

/// Where a run trains, saved with it (the checkpoint's `device` entry) so that `--resume`
/// goes back to the same backend, adapter and kernel family: `cpu`, `cpu-ref`, or
/// `API:software|hardware:FAMILY:ADAPTER` (`Display` and `parse`).
///
/// ```
/// use lenet_gpu::RunDevice;
/// let d = RunDevice::parse("vulkan:software:fused:llvmpipe (LLVM 15.0.6, 256 bits)").unwrap();
/// assert_eq!(RunDevice::parse(&d.to_string()), Some(d));
/// assert_eq!(RunDevice::parse("cpu"), Some(RunDevice::Cpu));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunDevice {
    Cpu,
    CpuRef,
    Gpu {
        /// The graphics API, as `--backend` names it (`vulkan`, `metal`, `dx12`, `gl`).
        api: String,
        /// A software (CPU) adapter: lavapipe, llvmpipe.
        software: bool,
        kernels: gpu::Family,
        adapter: String,
    },
}

impl std::fmt::Display for RunDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            RunDevice::Cpu => write!(f, "cpu"),
            RunDevice::CpuRef => write!(f, "cpu-ref"),
            RunDevice::Gpu {
                api,
                software,
                kernels,
                adapter,
            } => write!(
                f,
                "{api}:{}:{}:{adapter}",
                if *software { "software" } else { "hardware" },
                kernels.name()
            ),
        }
    }
}

impl RunDevice {
    /// The record `Display` wrote; None for anything else. A record written before the
    /// family was saved (`API:software|hardware:ADAPTER`) reads as the fused family, the
    /// one such runs trained with on hardware GPUs.
    pub fn parse(saved: &str) -> Option<RunDevice> {
        match saved {
            "cpu" => return Some(RunDevice::Cpu),
            "cpu-ref" => return Some(RunDevice::CpuRef),
            _ => {}
        }
        let (api, rest) = saved.split_once(':')?;
        gpu::parse_api(api)?;
        let (kind, rest) = rest.split_once(':')?;
        let software = match kind {
            "software" => true,
            "hardware" => false,
            _ => return None,
        };
        let (kernels, adapter) = rest
            .split_once(':')
            .and_then(|(f, name)| Some((gpu::Family::from_name(f)?, name)))
            .unwrap_or((gpu::Family::Fused, rest));
        Some(RunDevice::Gpu {
            api: api.to_string(),
            software,
            kernels,
            adapter: adapter.to_string(),
        })
    }

    /// The kernel family of a GPU run.
    pub fn kernels(&self) -> Option<gpu::Family> {
        match self {
            RunDevice::Gpu { kernels, .. } => Some(*kernels),
            _ => None,
        }
    }
}

impl DeviceChoice {
    /// The CPU backend's fast path (`--backend cpu`).
    ///
    /// ```
    /// assert!(lenet_gpu::DeviceChoice::cpu().kind.is_cpu());
    /// ```
    pub fn cpu() -> Self {
        DeviceChoice {
            kind: Kind::Cpu,
            ..DeviceChoice::gpu()
        }
    }

    /// The best hardware GPU adapter of any graphics API with the fused kernels, or the CPU
    /// backend where the only adapters are software ones (plain `--backend gpu`, the
    /// command line's default).
    ///
    /// ```
    /// assert_eq!(lenet_gpu::DeviceChoice::gpu(), lenet_gpu::DeviceChoice::default());
    /// ```
    pub fn gpu() -> Self {
        DeviceChoice {
            kind: Kind::Gpu,
            adapter: None,
            cpu_adapter: false,
            fallback: true,
            kernels: gpu::Family::Fused,
            forced: false,
        }
    }

    /// The device a saved run trained on (`open`'s second result), chosen exactly again: a
    /// run on the CPU backend stays there, a GPU run goes back to its adapter and family.
    pub fn resolved(saved: &RunDevice) -> Self {
        let mut d = DeviceChoice {
            kind: Kind::Cpu,
            adapter: None,
            cpu_adapter: false,
            fallback: false,
            kernels: gpu::Family::Fused,
            forced: true,
        };
        match saved {
            RunDevice::Cpu => {}
            RunDevice::CpuRef => d.kind = Kind::CpuRef,
            RunDevice::Gpu {
                api,
                software,
                kernels,
                adapter,
            } => {
                d.kind = match api.as_str() {
                    "metal" => Kind::Metal,
                    "dx12" => Kind::Dx12,
                    "gl" => Kind::Gl,
                    _ => Kind::Vulkan,
                };
                d.cpu_adapter = *software;
                d.kernels = *kernels;
                d.adapter = Some(adapter.clone());
            }
        }
        d
    }

    /// Plain `--backend gpu`, free to use the CPU backend on a software-only machine.
    fn plain_gpu(&self) -> bool {
        self.kind == Kind::Gpu && self.adapter.is_none() && !self.cpu_adapter && self.fallback
    }

    /// The backend this choice gives, and where it runs (`resolved` reads it back). Notes
    /// for the user (a fallback, a software adapter) go to stderr. Whether the adapter is
    /// a software one is decided here, once.
    pub fn open(
        &self,
        train: Arc<Dataset>,
        test: Arc<Dataset>,
        loss: Loss,
        momentum: f32,
        batch: usize,
    ) -> Result<(Box<dyn Backend>, RunDevice)> {
        let cpu = |kernels| -> Result<(Box<dyn Backend>, RunDevice)> {
            let on = match kernels {
                CpuKernels::Reference => RunDevice::CpuRef,
                _ => RunDevice::Cpu,
            };
            let b = CpuBackend::with_kernels(train.clone(), test.clone(), loss, momentum, kernels);
            Ok((Box::new(b), on))
        };
        let api = match self.kind {
            Kind::Cpu | Kind::CpuRef => {
                if self.adapter.is_some() || self.cpu_adapter {
                    return Err(Error::Config(
                        "--adapter and --cpu-adapter choose a GPU adapter; drop them or --backend cpu".into(),
                    ));
                }
                return cpu(if self.kind == Kind::Cpu {
                    CpuKernels::Fast
                } else {
                    CpuKernels::Reference
                });
            }
            Kind::Gpu => None,
            Kind::Vulkan => gpu::parse_api("vulkan"),
            Kind::Metal => gpu::parse_api("metal"),
            Kind::Dx12 => gpu::parse_api("dx12"),
            Kind::Gl => gpu::parse_api("gl"),
        };
        if self.plain_gpu() && !hardware_adapter_exists() {
            return cpu(CpuKernels::Fast);
        }
        let adapter = match gpu::pick(&gpu::AdapterChoice {
            backends: api,
            name: self.adapter.clone(),
            cpu: self.cpu_adapter,
        }) {
            Ok(a) => a,
            Err(Error::NoAdapter(_)) if self.plain_gpu() => {
                eprintln!(
                    "note: no GPU adapter found; using the CPU backend (see `lenet-gpu devices`)"
                );
                return cpu(CpuKernels::Fast);
            }
            Err(e) => return Err(e),
        };
        let info = adapter.get_info();
        let software = info.device_type == wgpu::DeviceType::Cpu;
        if self.plain_gpu() && software {
            eprintln!(
                "note: the only GPU adapter is {} (software); using the CPU backend, which is \
                 faster. --cpu-adapter (or --adapter NAME) runs the GPU kernels on it anyway.",
                info.name
            );
            return cpu(CpuKernels::Fast);
        }
        if software && !self.cpu_adapter && self.fallback {
            eprintln!(
                "note: {} is a software adapter (a CPU pretending to be a GPU); --backend cpu is \
                 faster here",
                info.name
            );
        }
        let on = RunDevice::Gpu {
            api: gpu::api_name(info.backend),
            software,
            kernels: self.kernels,
            adapter: info.name.clone(),
        };
        let b = gpu::GpuBackend::new(adapter, train, test, loss, momentum, batch, self.kernels)?;
        Ok((Box::new(b), on))
    }
}

/// Whether a child process (`lenet-gpu devices --probe`) finds a hardware adapter; true
/// when it cannot tell, so that this process probes itself. Asking a child keeps this
/// process free of any graphics driver when there is no hardware GPU to train on; the
/// note says what was found.
fn hardware_adapter_exists() -> bool {
    if std::env::var_os("WGPU_ADAPTER_NAME").is_some() {
        return true;
    }
    // Only the lenet-gpu binary answers `devices --probe` (not, say, a test harness).
    let Some(found) = std::env::current_exe()
        .ok()
        .filter(|exe| exe.file_stem().is_some_and(|n| n == "lenet-gpu"))
        .and_then(|exe| gpu::probe_in_child(&exe))
    else {
        return true;
    };
    if found.iter().any(|p| !p.software) {
        return true;
    }
    match found.first() {
        None => {
            eprintln!("note: no GPU adapter found; using the CPU backend (see `lenet-gpu devices`)")
        }
        Some(p) => eprintln!(
            "note: the only GPU adapter is {} (software); using the CPU backend, which is \
             faster. --cpu-adapter (or --adapter NAME) runs the GPU kernels on it anyway.",
            p.name
        ),
    }
    false
}

impl Default for DeviceChoice {
    fn default() -> Self {
        DeviceChoice::gpu()
    }
}
