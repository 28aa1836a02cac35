//! Shared by the integration tests: where real MNIST is, found the way the program finds
//! it (`LENET_DATA`, then `data/mnist/`), and fetched there when it is absent.

#![allow(dead_code)]

pub mod parity;
pub mod server;
pub mod suite;

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

/// A fresh, empty temporary folder for one test: `lenet-<test file>-<name>-<pid>`.
pub fn tmp(name: &str) -> PathBuf {
    let file = env!("CARGO_CRATE_NAME");
    let d = std::env::temp_dir().join(format!("lenet-{file}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The built binary.
pub fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_lenet-gpu"))
}

/// The one rule for GPU tests: the adapter of graphics API `api` (a software one with
/// `cpu`), or None, with a message naming the test that skips; but where
/// LENET_REQUIRE_GPU (as in CI, "vulkan,gl") names that API, a missing adapter is a
/// failure (and `LENET_REQUIRE_GPU=1` asks for at least one adapter of any API).
pub fn adapter(api: &str, cpu: bool) -> Option<(String, lenet_gpu::gpu::AdapterChoice)> {
    let choice = lenet_gpu::gpu::AdapterChoice {
        backends: lenet_gpu::gpu::parse_api(api),
        cpu,
        ..Default::default()
    };
    match lenet_gpu::gpu::pick(&choice) {
        Ok(a) => Some((format!("{api}: {}", a.get_info().name), choice)),
        Err(e) => {
            let required = std::env::var("LENET_REQUIRE_GPU").unwrap_or_default();
            assert!(
                !required.split(',').any(|r| r.trim() == api),
                "LENET_REQUIRE_GPU={required} but no {api} adapter: {e}"
            );
            // libtest names each test's thread after the test.
            let test = std::thread::current()
                .name()
                .unwrap_or("this test")
                .to_string();
            eprintln!(
                "skipped {test} on {api}: no {}adapter ({e}); `apt-get install mesa-vulkan-drivers` gives lavapipe",
                if cpu { "software " } else { "" }
            );
            None
        }
    }
}

/// Whether wgpu offers a software (CPU) Vulkan adapter such as lavapipe (`adapter`'s rule).
pub fn cpu_adapter_available() -> bool {
    adapter("vulkan", true).is_some()
}

/// The first 2,000 training and 500 test images of MNIST, read once per test binary.
pub fn mnist_subset() -> &'static (Arc<Dataset>, Arc<Dataset>) {
    static D: OnceLock<(Arc<Dataset>, Arc<Dataset>)> = OnceLock::new();
    D.get_or_init(|| {
        let (tr, te) = lenet_gpu::data::load_mnist(&mnist_dir()).unwrap();
        (Arc::new(tr.truncated(2000)), Arc::new(te.truncated(500)))
    })
}

/// Runs a command: (success, stdout, stderr), asserting that nothing panicked.
pub fn output(mut c: std::process::Command) -> (bool, String, String) {
    let out = c.output().unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(
        !o.contains("panicked") && !e.contains("panicked"),
        "{c:?}:\n{o}{e}"
    );
    (out.status.success(), o, e)
}

/// Runs the binary with `args`: (success, stdout, stderr), asserting that nothing panicked.
pub fn run(args: &[&str]) -> (bool, String, String) {
    let mut c = bin();
    c.args(args);
    output(c)
}

/// Runs the binary; asserts failure, no panic, and that stderr mentions each of `want`.
pub fn fails(args: &[&str], want: &[&str]) -> String {
    let (ok, out, err) = run(args);
    assert!(!ok, "{args:?} succeeded:\n{out}{err}");
    for w in want {
        assert!(
            err.contains(w),
            "{args:?}: stderr does not mention {w:?}:\n{err}"
        );
    }
    err
}

/// Initial weights with biases and subsampling terms drawn wide, so no pass is trivial
/// (the on-device check's parameters, `lenet_gpu::check::params`).
pub fn test_params(seed: u64) -> Vec<f32> {
    lenet_gpu::check::params(seed)
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
