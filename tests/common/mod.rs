//! Shared by the integration tests: where real MNIST is, found the way the program finds
//! it (`LENET_DATA`, then `data/mnist/`), and fetched there when it is absent.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Mutex;

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
            eprintln!("skipped: {e}");
            false
        }
    }
}
