//! End to end through the binary: train on a subset, save, evaluate the checkpoint.

mod common;

use common::tmp;

/// "test error X.XX%" from the last line that has it.
fn test_error(out: &str) -> f64 {
    out.lines()
        .rev()
        .find_map(|l| {
            let i = l.find("test error ")?;
            l[i + 11..].split('%').next()?.trim().parse().ok()
        })
        .unwrap_or_else(|| panic!("no test error in:\n{out}"))
}

/// Trains on 2,000 images for 2 passes with `device` flags, saves, and evaluates the
/// checkpoint on the CPU backend: >= 90% on 1,000 test images, and the same figure twice.
fn train_then_eval(tag: &str, device: &[&str]) {
    let data = common::mnist_dir();
    let dir = tmp(tag);
    let model = dir.join("lenet.safetensors");
    let out = common::bin()
        // Online (batch 1) with a larger eta than the defaults, which are tuned for 20 passes
        // over 60,000 images, not 3 over 2,000; and the mse criterion, which learns faster
        // in the first few thousand patterns (measured on the CPU backend with these
        // settings after 2 passes: mse 9.4% test error, the default map criterion 9.9-10.6%
        // over four schedules). Three passes, because after two the error sits at the 10%
        // line and online training at this eta turns rounding into whole points: on
        // lavapipe 9.6% or 11.8% depending only on the order of the SDLM estimate's float
        // sums. After three: 7.9% on the CPU backend, 7.6% on lavapipe.
        .args([
            "train",
            "--train-limit",
            "2000",
            "--test-limit",
            "1000",
            "--epochs",
            "3",
        ])
        .args([
            "--batch",
            "1",
            "--schedule",
            "1:5e-5,2:1.5e-4",
            "--loss",
            "mse",
        ])
        .args(device)
        .arg("--data")
        .arg(&data)
        .arg("--save")
        .arg(&model)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "train failed:\n{stdout}\n{stderr}");
    let trained = test_error(&stdout);
    println!("{stdout}");
    assert!(
        trained <= 10.0,
        "accuracy below 90% after 3 passes on 2,000 images: error {trained}%"
    );

    let out = common::bin()
        .args([
            "eval",
            "--backend",
            "cpu",
            "--test-limit",
            "1000",
            "--model",
        ])
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "eval failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{stdout}");
    assert_eq!(
        test_error(&stdout),
        trained,
        "eval on the CPU disagrees with training"
    );
    assert!(stdout.contains("confusion matrix"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn train_then_eval_on_a_subset() {
    train_then_eval("cpu", &["--backend", "cpu"]);
}

/// The same through the GPU backend on wgpu's software adapter (lavapipe in CI). Skipped,
/// with a message, only where no CPU adapter exists and LENET_REQUIRE_GPU is unset.
#[test]
fn train_on_cpu_adapter_then_eval_on_cpu() {
    if !common::cpu_adapter_available() {
        return;
    }
    train_then_eval("cpu-adapter", &["--backend", "vulkan", "--cpu-adapter"]);
}

#[test]
fn missing_data_is_a_clear_error() {
    let dir = tmp("nodata");
    let out = common::bin()
        .args(["train", "--epochs", "1", "--data"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("lenet-gpu fetch") && stderr.contains(&dir.display().to_string()),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_flags_are_clear_errors() {
    let data = common::mnist_dir();
    for args in [
        vec!["--batch", "0"],
        vec!["--epochs", "0"],
        vec!["--eta-scale", "-1"],
        vec!["--eta-scale", "NaN"],
        vec!["--schedule", "2:0.1,1:0.2"],
        vec!["--momentum", "1.5"],
    ] {
        let out = common::bin()
            .arg("train")
            .arg("--data")
            .arg(&data)
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(
            stderr.starts_with("error:") && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
}
