//! Shared by the integration tests: where real MNIST is, found the way the program finds
//! it (`LENET_DATA`, then `data/mnist/`), and fetched there when it is absent.

#![allow(dead_code)]

use lenet_gpu::data::Dataset;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

static FETCH: Mutex<()> = Mutex::new(());

pub fn mnist_dir() -> PathBuf {
    let dir = lenet_gpu::data::data_dir(None);
    let dir = if dir.is_absolute() {
        dir
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir)
    };
    let _guard = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    if lenet_gpu::data::load_mnist(&dir).is_err() {
        eprintln!("MNIST not found in {}: fetching it", dir.display());
        let mut opts = lenet_gpu::fetch::FetchOptions::new(&dir);
        opts.progress = false;
        lenet_gpu::fetch::fetch(&opts).unwrap_or_else(|e| panic!("tests need MNIST: {e}"));
    }
    dir
}

/// A fresh, empty temporary folder for one test: `lenet-<name>-<pid>`.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lenet-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The built binary.
pub fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_lenet-gpu"))
}

/// Whether wgpu offers a software (CPU) Vulkan adapter such as lavapipe. Where it does not,
/// tests that need one are skipped with a message, unless LENET_REQUIRE_GPU is set (as in
/// CI), where that is a failure.
pub fn cpu_adapter_available() -> bool {
    let choice = lenet_gpu::gpu::AdapterChoice {
        backends: lenet_gpu::gpu::parse_api("vulkan"),
        cpu: true,
        ..Default::default()
    };
    match lenet_gpu::gpu::pick(&choice) {
        Ok(_) => true,
        Err(e) => {
            assert!(
                std::env::var_os("LENET_REQUIRE_GPU").is_none(),
                "LENET_REQUIRE_GPU is set but: {e}"
            );
            // libtest names each test's thread after the test.
            let test = std::thread::current()
                .name()
                .unwrap_or("this test")
                .to_string();
            eprintln!(
                "skipped {test}: no software Vulkan adapter ({e}); `apt-get install mesa-vulkan-drivers` gives lavapipe"
            );
            false
        }
    }
}

/// Initial weights with biases and subsampling terms drawn wide, so no pass is trivial.
pub fn test_params(seed: u64) -> Vec<f32> {
    use lenet_gpu::params;
    use rand::{RngExt, SeedableRng};
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

/// Checks a tensor against its reference: |got - want| <= atol + rtol |want|, with atol =
/// `abs` times the largest |want| of the tensor. Prints the largest difference and returns,
/// on failure, the first mismatches.
pub fn compare(what: &str, got: &[f32], want: &[f32], abs: f32, rtol: f32) -> Option<String> {
    let (gpu, cpu) = (got, want);
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths");
    let scale = cpu.iter().fold(0f32, |m, v| m.max(v.abs()));
    let atol = abs * scale;
    let mut worst = 0f32;
    let mut bad = Vec::new();
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        let d = (g - c).abs();
        worst = worst.max(d);
        if d.is_nan() || d > atol + rtol * c.abs() {
            bad.push(format!("    [{i}] got {g:.7e} reference {c:.7e}"));
        }
    }
    println!("  {what:12} max |diff| = {worst:.2e} (max |reference| {scale:.2e})");
    (!bad.is_empty()).then(|| {
        format!(
            "{what}: {} of {} differ:\n{}",
            bad.len(),
            gpu.len(),
            bad[..bad.len().min(5)].join("\n")
        )
    })
}
