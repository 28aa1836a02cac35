//! *Internal:* the on-device check (docs/design.md section 4.7): a kernel family on the user's adapter
//! against the CPU reference, tensor by tensor, before it is trusted with a run. A few
//! patterns go through every kernel of a training batch (MAP loss) and of the SDLM
//! second-derivative pass, then one training batch with its update; every activation,
//! delta, parameter sum and updated parameter is compared with the reference at the test
//! suite's tolerances, and each kernel is given
//! the worst ratio of error to tolerance among the tensors it writes (the registry's
//! `writes`). `train` runs it on the first patterns of its training set, once per
//! (adapter, driver, API, family, build), remembered in the user's cache folder;
//! `devices --check` runs it on synthetic patterns on every adapter.

use crate::Result;
use crate::cpu::{self, Workspace};
use crate::data::Dataset;
use crate::gpu::{Family, GpuBackend, Kernel};
use crate::model::params::{self, N_PARAMS, TENSORS};
use crate::model::{ACTIVATIONS, DELTAS, DY, Loss, RBF_CENTERS, Sweep};
use rand::{RngExt, SeedableRng};
use std::path::PathBuf;
use std::time::Instant;

/// Tolerances for every tensor, the test suite's: f32 sums of up to 20,000 terms in
/// another order, so `ABS` of the tensor's largest value plus `REL` relative.
pub const ABS: f32 = 1e-5;
pub const REL: f32 = 1e-4;

/// Patterns checked: not a multiple of the fused head's 4 patterns per workgroup, so a
/// partly filled workgroup is checked too.
pub const PATTERNS: usize = 10;
/// The partial batch of `Depth::Full`.
const PARTIAL: usize = 5;

/// How much a check runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    /// Before training (`train`): a batch of the MAP loss and the SDLM sweep, then a batch
    /// with its update.
    Quick,
    /// `devices --check`: the parity suite's modes (MSE, MAP, SDLM) on a full batch and a
    /// partial one, then the update.
    Full,
}

/// Parameters for checking: `seed`'s initial weights with the biases and subsampling
/// coefficients drawn wide (+-0.5), so that no layer's pass is trivial (the check uses
/// seed 7; the parity tests use these too).
pub fn params(seed: u64) -> Vec<f32> {
    let mut p = params::init(seed);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed + 100);
    for t in [
        params::C1_B,
        params::S2_W,
        params::S2_B,
        params::C3_B,
        params::S4_W,
        params::S4_B,
    ] {
        for v in t.of_mut(&mut p) {
            *v = rng.random_range(-0.5..0.5);
        }
    }
    p
}

/// Synthetic patterns for checking without a dataset: `n` 28x28 images of random strokes
/// (bright on black, as MNIST) with labels 0..9 in turn.
pub fn synthetic(n: usize) -> Dataset {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(28);
    let mut images = vec![0u8; n * 784];
    for img in images.chunks_mut(784) {
        for _ in 0..3 {
            let (mut x, mut y) = (
                rng.random_range(6.0..22.0f32),
                rng.random_range(6.0..22.0f32),
            );
            let (dx, dy) = (
                rng.random_range(-1.0..1.0f32),
                rng.random_range(-1.0..1.0f32),
            );
            for _ in 0..12 {
                for (ox, oy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let (c, r) = (x as usize + ox, y as usize + oy);
                    if c < 28 && r < 28 {
                        img[r * 28 + c] = 255;
                    }
                }
                x = (x + dx).clamp(2.0, 25.0);
                y = (y + dy).clamp(2.0, 25.0);
            }
        }
    }
    Dataset {
        images,
        labels: (0..n).map(|i| (i % 10) as u8).collect(),
        side: 28,
    }
}

/// The reference's tensors for patterns `0..n` of `set` with parameters `p` (squared for
/// the Hessian sweep): one workspace per pattern and the summed gradient (or second
/// derivatives), (N_PARAMS).
pub fn reference(
    set: &Dataset,
    idx: &[usize],
    p: &[f32],
    sweep: Sweep,
    loss: Loss,
) -> (Vec<Workspace<f32>>, Vec<f32>) {
    let p2: Vec<f32> = p.iter().map(|v| v * v).collect();
    let mut grad = vec![0f32; N_PARAMS];
    let ws = idx
        .iter()
        .map(|&i| {
            let mut ws = Workspace::<f32>::default();
            cpu::input_forward(set.image(i), set.side, &mut ws.x0);
            cpu::pattern_forward(p, &RBF_CENTERS, &mut ws);
            match sweep {
                Sweep::Backward => {
                    let label = set.labels[i] as usize;
                    cpu::pattern_backward(p, &RBF_CENTERS, loss, label, &mut ws, &mut grad);
                }
                Sweep::Hessian => cpu::pattern_hessian(&p2, &mut ws, &mut grad),
            }
            ws
        })
        .collect();
    (ws, grad)
}

/// How far one tensor is from the reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Diff {
    /// The tensor (`x3`, `d5`, `c3.weight`, ...), with the sweep (`sdlm:` for the
    /// second-derivative pass).
    pub tensor: String,
    /// max |got - want| / (ABS max|want| + REL |want|): at most 1 passes (NaN fails).
    pub ratio: f32,
    /// The largest |got - want|, and the largest |want| of the tensor.
    pub max_diff: f32,
    pub scale: f32,
}

impl Diff {
    /// Compares `got` with `want` at the tolerances.
    pub fn of(tensor: String, got: &[f32], want: &[f32]) -> Diff {
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let (mut ratio, mut max_diff) = (0f32, 0f32);
        for (&g, &w) in got.iter().zip(want) {
            let d = (g - w).abs();
            let r = d / (ABS * scale + REL * w.abs()).max(f32::MIN_POSITIVE);
            if d.is_nan() || r.is_nan() {
                ratio = f32::NAN;
                max_diff = f32::NAN;
                break;
            }
            ratio = ratio.max(r);
            max_diff = max_diff.max(d);
        }
        Diff {
            tensor,
            ratio,
            max_diff,
            scale,
        }
    }

    pub fn passed(&self) -> bool {
        self.ratio <= 1.0
    }

    /// Worse of two (NaN is worst).
    fn worse(self, other: Diff) -> Diff {
        if other.ratio.is_nan() || other.ratio > self.ratio {
            other
        } else {
            self
        }
    }
}

/// One kernel's verdict: the worst of the tensors it writes.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelCheck {
    /// Its entry point.
    pub kernel: &'static str,
    pub worst: Diff,
}

/// A family checked on an adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct FamilyCheck {
    pub adapter: String,
    pub driver: String,
    pub api: String,
    pub family: Family,
    /// Every kernel of the family's training batch, in order.
    pub kernels: Vec<KernelCheck>,
    /// Patterns checked.
    pub patterns: usize,
    pub seconds: f64,
}

impl FamilyCheck {
    pub fn passed(&self) -> bool {
        self.kernels.iter().all(|k| k.worst.passed())
    }

    /// For a failed check: which kernel and tensor disagree with the CPU reference and by
    /// how much. The first failing kernel in the batch's order is named: the kernels after
    /// it read its outputs, so they fail with it.
    pub fn failure(&self) -> Option<String> {
        let bad: Vec<&KernelCheck> = self.kernels.iter().filter(|k| !k.worst.passed()).collect();
        let k = bad.first()?;
        Some(format!(
            "the {} kernels disagree with the CPU reference on {} ({}, driver {}): kernel {} \
             writes {} off by up to {:.3e} (largest value {:.3e}; {} times the tolerance {:e} of \
             the largest value + {:e} relative){}",
            self.family.name(),
            self.adapter,
            self.api,
            self.driver,
            k.kernel,
            k.worst.tensor,
            k.worst.max_diff,
            k.worst.scale,
            if k.worst.ratio.is_nan() {
                "NaN".to_string()
            } else {
                format!("{:.0}", k.worst.ratio)
            },
            ABS,
            REL,
            if bad.len() > 1 {
                format!("; {} kernels after it too", bad.len() - 1)
            } else {
                String::new()
            }
        ))
    }
}

/// Checks `backend`'s family: training patterns `0..n` of its training set, `sample`
/// holding (at least) those patterns as the host sees them.
pub fn run(backend: &mut GpuBackend, sample: &Dataset, depth: Depth) -> Result<FamilyCheck> {
    let start = Instant::now();
    let n = PATTERNS.min(sample.len()).min(backend.capacity_patterns());
    let idx: Vec<usize> = (0..n).collect();
    let idx32: Vec<u32> = (0..n as u32).collect();
    let map = Loss::Map { j: 5.0 };
    let modes: Vec<(Sweep, Loss, String, usize)> = match depth {
        Depth::Quick => vec![
            (Sweep::Backward, map, String::new(), n),
            (Sweep::Hessian, map, "sdlm:".into(), n),
        ],
        // The parity suite's modes (tests/common/suite.rs), on a full and a partial batch.
        Depth::Full => [n, PARTIAL.min(n)]
            .into_iter()
            .flat_map(|b| {
                let at = if b == n {
                    String::new()
                } else {
                    format!("{b} patterns, ")
                };
                [
                    (Sweep::Backward, Loss::Mse, format!("{at}mse:"), b),
                    (Sweep::Backward, map, at.clone(), b),
                    (Sweep::Hessian, map, format!("{at}sdlm:"), b),
                ]
            })
            .collect(),
    };
    let p = params(7);
    let family = backend.family();
    let writers: Vec<(Kernel, Vec<&'static str>)> = family
        .training()
        .iter()
        .map(|&k| (k, k.spec().written_tensors()))
        .collect();
    let mut worst: Vec<Option<Diff>> = vec![None; writers.len()];
    crate::backend::Backend::set_params(backend, &p)?;
    // The reference's MAP gradient of the whole batch, for the update below.
    let mut map_grad = None;
    for (sweep, loss, tag, n) in modes {
        backend.set_loss(loss);
        let snap = backend.snapshot(&idx32[..n], sweep)?;
        let (ws, grad) = reference(sample, &idx[..n], &p, sweep, loss);
        let mut diffs: Vec<(&'static str, Diff)> = Vec::new();
        // The second-derivative pass starts from a constant: no dy.
        let computed = ACTIVATIONS
            .iter()
            .chain(DELTAS.iter())
            .filter(|a| !(sweep == Sweep::Hessian && **a == DY));
        for a in computed {
            let got: Vec<f32> = (0..n).flat_map(|b| snap.tensor(a, b).to_vec()).collect();
            let want: Vec<f32> = ws.iter().flat_map(|w| w.tensor(a).to_vec()).collect();
            diffs.push((a.name, Diff::of(format!("{tag}{}", a.name), &got, &want)));
        }
        if sweep == Sweep::Backward && loss == map && n == idx.len() {
            map_grad = Some(grad.clone());
        }
        for t in TENSORS {
            diffs.push((
                t.name,
                Diff::of(format!("{tag}{}", t.name), t.of(&snap.grad), t.of(&grad)),
            ));
        }
        for (name, d) in diffs {
            for (w, (_, writes)) in worst.iter_mut().zip(&writers) {
                if writes.contains(&name) {
                    *w = Some(match w.take() {
                        Some(prev) => prev.worse(d.clone()),
                        None => d.clone(),
                    });
                }
            }
        }
    }
    // One batch with its update (v = g from a zero velocity, w -= eps v): the updated
    // parameters, written by the last kernel of the batch in both families.
    let eps: Vec<f32> = (0..N_PARAMS).map(|i| 1e-3 * (1 + i % 7) as f32).collect();
    let zero = vec![0f32; N_PARAMS];
    backend.set_loss(map);
    crate::backend::Backend::set_step_sizes(backend, &eps)?;
    crate::backend::Backend::set_velocity(backend, &zero)?;
    crate::backend::Backend::train(backend, &idx32, n)?;
    let got = crate::backend::Backend::params(backend)?;
    let grad = map_grad.expect("every depth runs the MAP batch on all the patterns");
    let want: Vec<f32> = p
        .iter()
        .zip(&grad)
        .zip(&eps)
        .map(|((w, g), e)| w - e * g)
        .collect();
    // What training would see next must not depend on the check.
    crate::backend::Backend::set_velocity(backend, &zero)?;
    crate::backend::Backend::set_params(backend, &p)?;
    let last = worst.len() - 1;
    for t in TENSORS {
        let d = Diff::of(format!("updated {}", t.name), t.of(&got), t.of(&want));
        worst[last] = Some(match worst[last].take() {
            Some(prev) => prev.worse(d),
            None => d,
        });
    }
    let info = backend.adapter_info();
    Ok(FamilyCheck {
        adapter: info.name.clone(),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
        api: crate::gpu::api_name(info.backend).to_string(),
        family,
        kernels: writers
            .iter()
            .zip(worst)
            .map(|((k, _), w)| KernelCheck {
                kernel: k.entry(),
                // Partial sums: checked through the kernels that read them.
                worst: w.unwrap_or_else(|| {
                    Diff::of("(partial sums: via the next kernels)".into(), &[], &[])
                }),
            })
            .collect(),
        patterns: n,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// What identifies a check: adapter, driver, API, family and this build (its version, the
/// hash of the family's kernel source, and the wgpu release that translates it).
pub fn key(info: &wgpu::AdapterInfo, family: Family) -> String {
    format!(
        "adapter={}; vendor={:#x}; device={:#x}; driver={} {}; api={}; family={}; build={} {} wgpu 30",
        info.name,
        info.vendor,
        info.device,
        info.driver,
        info.driver_info,
        crate::gpu::api_name(info.backend),
        family.name(),
        env!("CARGO_PKG_VERSION"),
        crate::gpu::kernel_hash(family)
    )
}

/// The folder checks are remembered in: `$LENET_CACHE_DIR`, else the user's cache folder
/// (`~/.cache/lenet-gpu` on Linux), else none.
pub fn cache_dir() -> Option<PathBuf> {
    match std::env::var_os("LENET_CACHE_DIR") {
        Some(d) if !d.is_empty() => Some(PathBuf::from(d)),
        _ => dirs::cache_dir().map(|d| d.join("lenet-gpu")),
    }
}

/// The record of a passed check with this key: `checks/<hash>.txt` holding the key.
fn record(key: &str) -> Option<PathBuf> {
    use sha2::Digest;
    let h = sha2::Sha256::digest(key.as_bytes());
    let name: String = h[..8].iter().map(|b| format!("{b:02x}")).collect();
    Some(cache_dir()?.join("checks").join(format!("{name}.txt")))
}

/// Whether a check with this key passed before (its record holds exactly the key; a
/// damaged or foreign record does not count).
pub fn passed_before(key: &str) -> bool {
    record(key)
        .and_then(|r| std::fs::read_to_string(r).ok())
        .is_some_and(|text| text.lines().next() == Some(key))
}

/// Remembers a passed check (best effort: a cache folder that cannot be written only
/// means the check runs again next time). Returns the record's path when written. A check
/// on fewer than `PATTERNS` patterns (a tiny training set) is not remembered.
pub fn remember(key: &str, check: &FamilyCheck) -> Option<PathBuf> {
    if check.patterns < PATTERNS {
        return None;
    }
    let path = record(key)?;
    std::fs::create_dir_all(path.parent()?).ok()?;
    let text = format!(
        "{key}\npassed in {:.3} s; worst kernel ratio to tolerance {:.3}\n",
        check.seconds,
        check
            .kernels
            .iter()
            .map(|k| k.worst.ratio)
            .fold(0f32, f32::max)
    );
    crate::checkpoint::write_atomic(&path, text.as_bytes()).ok()?;
    Some(path)
}
