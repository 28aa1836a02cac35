//! `lenet-gpu bench`: samples/s of each backend, validated against the CPU reference first,
//! as a table or JSON lines, with the time per GPU kernel on request.

use super::{BackendKind, DataArgs, load_data};
use lenet_gpu::backend::{KernelTime, KernelTimes};
use lenet_gpu::bench::{self, BenchConfig, BenchResult};
use lenet_gpu::cpu::batch::CpuBackend;
use lenet_gpu::select::DeviceChoice;
use lenet_gpu::{Error, Result, train};

#[derive(clap::Args)]
pub struct BenchArgs {
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
    /// Which GPU kernels run (shaders/README.md describes each family).
    #[arg(long, value_enum, default_value = "fused")]
    kernels: super::KernelsArg,
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

/// One kernel profile: backend, batch, what `Backend::profile` measured.
type Profile = (String, usize, KernelTimes);

/// What `measure_all` found.
struct Measured {
    results: Vec<BenchResult>,
    profiles: Vec<Profile>,
    train_len: usize,
    test_len: usize,
}

pub fn run(a: BenchArgs) -> Result<()> {
    let m = measure_all(&a)?;
    if a.json {
        print_json(&a, &m.results);
    } else {
        print_table(&a, &m);
    }
    print_profiles(m.profiles);
    Ok(())
}

fn measure_all(a: &BenchArgs) -> Result<Measured> {
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
    let mut reference = CpuBackend::reference(train_set.clone(), test_set.clone(), loss, 0.0);
    let refs: Vec<f64> = a
        .batch
        .iter()
        .map(|&b| bench::reference_loss(&mut reference, train_set.len(), b, a.seed))
        .collect::<Result<_>>()?;
    drop(reference);
    let mut results: Vec<BenchResult> = Vec::new();
    let mut profiles = Vec::new();
    for &kind in &a.backend {
        // `bench` measures what it is asked to: no fallback to the CPU backend.
        let device = DeviceChoice {
            kind: kind.into(),
            adapter: if kind.is_cpu() {
                None
            } else {
                a.adapter.clone()
            },
            cpu_adapter: a.cpu_adapter && !kind.is_cpu(),
            fallback: false,
            kernels: a.kernels.family(),
            forced: true,
        };
        let mut b = match device
            .open(train_set.clone(), test_set.clone(), loss, 0.0, max_batch)
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
                && let Some(p) = b.profile(batch, 20)?
            {
                profiles.push((res.backend.clone(), batch, p));
            }
            results.push(res);
        }
    }
    Ok(Measured {
        results,
        profiles,
        train_len: train_set.len(),
        test_len: test_set.len(),
    })
}

fn print_json(a: &BenchArgs, results: &[BenchResult]) {
    for r in results {
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
}

fn print_table(a: &BenchArgs, m: &Measured) {
    let mb = |x: Option<u64>| x.map_or("-".to_string(), |v| format!("{:.0}", v as f64 / 1048576.0));
    let results = &m.results;
    println!(
        "{} training, {} test images; {} timed steps after {} warm-up; SDLM estimate over {} patterns",
        m.train_len, m.test_len, a.steps, a.warmup, a.hessian_samples
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
    for r in results {
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

fn print_profiles(profiles: Vec<Profile>) {
    if profiles.is_empty() {
        return;
    }
    for (backend, batch, p) in profiles {
        let total: f64 = p.kernels.iter().map(|k| k.seconds).sum();
        let how = if p.timestamps {
            "GPU timestamp queries"
        } else {
            "wall time per dispatch, submission included: the adapter has no timestamp queries"
        };
        println!("\nkernel times, {backend}, batch {batch} ({how}):");
        println!(
            "  {:<26} {:>9} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "kernel", "ms", "%", "MFLOP", "GFLOP/s", "MB read", "MB writ", "GB/s"
        );
        let mut kernels = p.kernels.clone();
        kernels.sort_by(|x, y| y.seconds.total_cmp(&x.seconds));
        let line = |name: &str, t: f64, flop: u64, bytes: (u64, u64)| {
            println!(
                "  {name:<26} {:>9.3} {:>5.1}% {:>8.2} {:>8.2} {:>8.3} {:>8.3} {:>8.2}",
                t * 1e3,
                100.0 * t / total,
                flop as f64 / 1e6,
                flop as f64 / t / 1e9,
                bytes.0 as f64 / 1e6,
                bytes.1 as f64 / 1e6,
                (bytes.0 + bytes.1) as f64 / t / 1e9
            );
        };
        for k in &kernels {
            line(&k.name, k.seconds, k.flop, (k.read, k.written));
        }
        let sum = |f: fn(&KernelTime) -> u64| kernels.iter().map(f).sum::<u64>();
        line(
            "total",
            total,
            sum(|k| k.flop),
            (sum(|k| k.read), sum(|k| k.written)),
        );
        println!(
            "  = {:.0} samples/s on the device; per batch {} dispatches, host {:.1} us to encode and {:.1} us to submit ({:.0} samples/s if the host alone bounded it)",
            batch as f64 / total,
            p.dispatches,
            p.encode_s * 1e6,
            p.submit_s * 1e6,
            batch as f64 / (p.encode_s + p.submit_s)
        );
    }
    println!(
        "\ncounts: each kernel's FLOP (multiply-add = 2, squashing left out) and its compulsory \
         bytes (each tensor it reads or writes in device memory once, parameters once per batch), \
         from the layer shapes (src/gpu/costs.rs)"
    );
}
