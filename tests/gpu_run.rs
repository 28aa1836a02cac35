//! `bench/gpu-run.sh --short`, the first-GPU script's short mode, on this machine's
//! software adapter: every step runs, and the results file holds each one's output and
//! exit status.

mod common;

#[test]
fn the_gpu_run_script_runs_every_step_in_short_mode() {
    if common::adapter("vulkan", true).is_none() {
        return;
    }
    let dir = common::tmp("short");
    let results = dir.join("gpu-run.txt");
    let out = std::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/bench/gpu-run.sh"))
        .arg("--short")
        .arg(&results)
        .env("LENET_BIN", env!("CARGO_BIN_EXE_lenet-gpu"))
        .env("LENET_DATA", common::mnist_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&results).unwrap();
    for step in [
        "devices",
        "bench, fused kernels",
        "bench, simple kernels",
        "train, defaults",
    ] {
        assert!(
            text.contains(&format!("-- {step}: exit 0,")),
            "step {step:?} did not succeed:\n{text}"
        );
    }
    assert!(text.contains("== PyTorch on CUDA"), "{text}");
    assert!(
        text.contains("fused kernels") && text.contains("simple kernels"),
        "{text}"
    );
    assert!(text.contains("done: test error"), "{text}");
    assert!(text.trim_end().ends_with("end of run"), "{text}");
}
