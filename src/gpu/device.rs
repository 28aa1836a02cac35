//! Choosing a wgpu adapter: the best GPU by default; `--adapter NAME` (substring),
//! `--backend vulkan|metal|dx12|gl`, `--cpu-adapter` (a software adapter such as lavapipe);
//! `WGPU_BACKEND` and `WGPU_ADAPTER_NAME` work as in every wgpu program.

use crate::{Error, Result};

/// Which adapter to use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdapterChoice {
    /// Only these graphics APIs (None: every API, or `WGPU_BACKEND`).
    pub backends: Option<wgpu::Backends>,
    /// A case-insensitive substring of the adapter name (None: `WGPU_ADAPTER_NAME`, if set).
    pub name: Option<String>,
    /// Only software (CPU) adapters.
    pub cpu: bool,
}

pub fn instance(backends: Option<wgpu::Backends>) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    if let Some(b) = backends {
        desc.backends = b;
    }
    wgpu::Instance::new(desc)
}

/// Every adapter the machine offers for these APIs.
pub fn adapters(backends: Option<wgpu::Backends>) -> Vec<wgpu::Adapter> {
    quiet_drivers(|| {
        let inst = instance(backends);
        let b = backends.unwrap_or_else(|| wgpu::Backends::all().with_env());
        pollster::block_on(inst.enumerate_adapters(b))
    })
}

/// Runs `f` with the process's stderr captured, then passes on what drivers wrote there,
/// less the lines that only say a desktop session is missing: in a plain shell Mesa writes
/// `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` at every probe, and
/// a user reads "error:" as a failure of ours. Everything else comes through unchanged.
fn quiet_drivers<T>(f: impl FnOnce() -> T) -> T {
    #[cfg(unix)]
    {
        use std::io::Read;
        // One capture at a time: the redirection is the whole process's.
        static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
        let Ok(mut capture) = gag::BufferRedirect::stderr() else {
            return f();
        };
        // stderr comes back when `capture` drops, also when `f` panics.
        let out = f();
        let mut text = String::new();
        let _ = capture.read_to_string(&mut text);
        drop(capture);
        for line in text.lines().filter(|l| !l.contains("XDG_RUNTIME_DIR")) {
            eprintln!("{line}");
        }
        out
    }
    #[cfg(not(unix))]
    f()
}

/// What a probe found, in the form `probe_line` writes: one adapter a line.
#[derive(Debug, Clone, PartialEq)]
pub struct Probed {
    pub software: bool,
    pub api: String,
    pub name: String,
}

/// One line for `lenet-gpu devices --probe`: `software|hardware<TAB>api<TAB>name`.
pub fn probe_lines() -> Vec<String> {
    adapters(None)
        .iter()
        .map(|a| {
            let i = a.get_info();
            format!(
                "{}\t{:?}\t{}",
                if i.device_type == wgpu::DeviceType::Cpu {
                    "software"
                } else {
                    "hardware"
                },
                i.backend,
                i.name
            )
        })
        .collect()
}

/// The adapters of this machine as a child process (`exe devices --probe`) sees them, so
/// that this process loads no graphics driver when none of them is a hardware GPU: a
/// software driver (lavapipe, llvmpipe) keeps about 60 MB mapped for the rest of the
/// process once loaded. None when the child cannot be run.
pub fn probe_in_child(exe: &std::path::Path) -> Option<Vec<Probed>> {
    let out = std::process::Command::new(exe)
        .args(["devices", "--probe"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    text.lines()
        .map(|l| {
            let mut f = l.splitn(3, '\t');
            Some(Probed {
                software: f.next()? == "software",
                api: f.next()?.to_lowercase(),
                name: f.next()?.to_string(),
            })
        })
        .collect()
}

/// Higher is better: discrete GPU first, software adapters last; a native API beats GL.
fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 4,
        wgpu::DeviceType::IntegratedGpu => 3,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 1,
        wgpu::DeviceType::Cpu => 0,
    };
    let api = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 1,
        _ => 0,
    };
    (kind, api)
}

/// Picks the adapter: filters by `choice`, then takes the best by `rank`.
pub fn pick(choice: &AdapterChoice) -> Result<wgpu::Adapter> {
    // Native APIs first: starting GL (EGL and a GL driver) costs about 11 MB of host memory
    // that stays for the whole run, so it is asked only when it could offer a better adapter
    // than the best native one (a GL adapter wins only on a better device type).
    let backends = choice
        .backends
        .unwrap_or_else(|| wgpu::Backends::all().with_env());
    let native = backends - wgpu::Backends::GL;
    if backends.contains(wgpu::Backends::GL) && !native.is_empty() {
        let best = best(adapters(Some(native)), choice);
        if let Some(a) = best
            && (choice.cpu || a.get_info().device_type == wgpu::DeviceType::DiscreteGpu)
        {
            return Ok(a);
        }
    }
    pick_from(adapters(Some(backends)), choice)
}

fn wanted_name(choice: &AdapterChoice) -> Option<String> {
    choice.name.clone().or_else(|| {
        std::env::var("WGPU_ADAPTER_NAME")
            .ok()
            .filter(|s| !s.is_empty())
    })
}

fn qualifies(a: &wgpu::Adapter, choice: &AdapterChoice, name: &Option<String>) -> bool {
    let i = a.get_info();
    (!choice.cpu || i.device_type == wgpu::DeviceType::Cpu)
        && name
            .as_ref()
            .is_none_or(|n| i.name.to_lowercase().contains(&n.to_lowercase()))
}

/// The best of `all` that `choice` allows.
fn best(all: Vec<wgpu::Adapter>, choice: &AdapterChoice) -> Option<wgpu::Adapter> {
    let name = wanted_name(choice);
    all.into_iter()
        .filter(|a| qualifies(a, choice, &name))
        .min_by_key(|a| std::cmp::Reverse(rank(&a.get_info())))
}

fn pick_from(all: Vec<wgpu::Adapter>, choice: &AdapterChoice) -> Result<wgpu::Adapter> {
    let name = wanted_name(choice);
    let seen: Vec<String> = all
        .iter()
        .map(|a| {
            let i = a.get_info();
            format!("{} ({:?}, {:?})", i.name, i.backend, i.device_type)
        })
        .collect();
    let restricted = choice
        .backends
        .is_some_and(|b| b != wgpu::Backends::all().with_env());
    match best(all, choice) {
        Some(a) => Ok(a),
        None if seen.is_empty() && restricted => {
            let b = choice.backends.unwrap_or(wgpu::Backends::empty());
            let apis = [
                (wgpu::Backends::VULKAN, "Vulkan"),
                (wgpu::Backends::METAL, "Metal"),
                (wgpu::Backends::DX12, "DX12"),
                (wgpu::Backends::GL, "GL"),
            ]
            .iter()
            .filter(|(f, _)| b.contains(*f))
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(" or ");
            let others: Vec<String> = adapters(None)
                .iter()
                .map(|a| {
                    let i = a.get_info();
                    format!("{} ({:?}, {:?})", i.name, i.backend, i.device_type)
                })
                .collect();
            Err(Error::NoAdapter(if others.is_empty() {
                format!(
                    "no {apis} adapter here, and no adapter on any other graphics API. On \
                     Debian/Ubuntu, `apt-get install mesa-vulkan-drivers` gives the lavapipe CPU \
                     adapter; or train on the CPU with `--backend cpu`."
                )
            } else {
                format!(
                    "no {apis} adapter here; the adapters this machine has: {}. Choose one of \
                     their APIs with --backend, or use --backend cpu.",
                    others.join("; ")
                )
            }))
        }
        None => Err(Error::NoAdapter(if seen.is_empty() {
            "no GPU adapter found (no Vulkan, Metal, DX12 or GL driver). On Debian/Ubuntu, \
             `apt-get install mesa-vulkan-drivers` gives the lavapipe CPU adapter; or train on \
             the CPU with `--backend cpu`."
                .into()
        } else {
            let want = match (&name, choice.cpu) {
                (Some(n), true) => format!("CPU adapter named like {n:?}"),
                (Some(n), false) => format!("adapter named like {n:?}"),
                (None, _) => "CPU adapter".into(),
            };
            format!(
                "no {want} among: {}. Pick one of these with --adapter, or use --backend cpu.",
                seen.join("; ")
            )
        })),
    }
}

/// The API's name as `--backend` spells it (`vulkan`, `metal`, `dx12`, `gl`).
pub fn api_name(b: wgpu::Backend) -> String {
    format!("{b:?}").to_lowercase()
}

/// Parses `vulkan|metal|dx12|gl`.
pub fn parse_api(s: &str) -> Option<wgpu::Backends> {
    Some(match s {
        "vulkan" => wgpu::Backends::VULKAN,
        "metal" => wgpu::Backends::METAL,
        "dx12" => wgpu::Backends::DX12,
        "gl" => wgpu::Backends::GL,
        _ => return None,
    })
}
