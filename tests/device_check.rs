//! On a GPU nobody here has seen: the on-device check of the kernel families (`devices
//! --check`, and `train`'s check before its first pass, remembered in the cache folder),
//! a failing kernel (the test-only `LENET_FAULT=corrupt:KERNEL`) moving the run to the
//! other family or the CPU backend unless the family was chosen, and a device lost in the
//! middle of a run (`LENET_FAULT=lose:P:N`) leaving the last pass's checkpoint intact and
//! a command that continues the run, bit-identical to a run moved to the CPU after that
//! pass. On lavapipe; with LENET_REQUIRE_GPU (CI) a missing adapter fails.

mod common;

use std::path::Path;

/// The binary with a private cache folder and the test data.
fn lenet(cache: &Path) -> std::process::Command {
    let mut c = common::bin();
    c.env("LENET_CACHE_DIR", cache)
        .env("LENET_DATA", common::mnist_dir())
        .env_remove("LENET_FAULT");
    c
}

const SMALL: [&str; 7] = [
    "--epochs",
    "1",
    "--train-limit",
    "300",
    "--test-limit",
    "100",
    "--quiet",
];

fn train(cache: &Path, fault: Option<&str>, extra: &[&str]) -> (bool, String, String) {
    let mut c = lenet(cache);
    c.args(["train", "--cpu-adapter"]).args(extra);
    if let Some(f) = fault {
        c.env("LENET_FAULT", f);
    }
    common::output(c)
}

#[test]
fn devices_check_passes_both_families_and_names_a_corrupted_kernel() {
    if common::adapter("vulkan", true).is_none() {
        return;
    }
    let dir = common::tmp("devices");
    let mut c = lenet(&dir);
    c.args(["devices", "--check", "--json", "--adapter", "llvmpipe"]);
    let (ok, out, err) = common::output(c);
    assert!(ok, "{out}{err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows.len() >= 2, "{out}");
    for family in ["fused", "simple"] {
        assert!(rows.iter().any(|r| r["family"] == family), "{out}");
    }
    for r in &rows {
        assert_eq!(r["verdict"], "pass", "{r}");
        let kernels = r["kernels"].as_array().unwrap();
        assert!(
            kernels
                .iter()
                .all(|k| k["error_over_tolerance"].as_f64().unwrap() <= 1.0)
        );
    }

    // A kernel that does not run: its family fails, naming it; the other passes; exit 1.
    let mut c = lenet(&dir);
    c.args(["devices", "--check", "--adapter", "llvmpipe"])
        .env("LENET_FAULT", "corrupt:c3s4_forward");
    let (ok, out, _) = common::output(c);
    assert!(!ok, "{out}");
    let fail_rows: Vec<&str> = out.lines().filter(|l| l.contains("| FAIL |")).collect();
    assert!(
        !fail_rows.is_empty() && fail_rows.iter().all(|l| l.contains("| fused |")),
        "{out}"
    );
    assert!(fail_rows[0].contains("| c3s4_forward | mse:x3 |"), "{out}");
    assert!(out.contains("| simple | c3_forward | mse:x3 |"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn train_checks_an_adapter_once_and_remembers_it() {
    if common::adapter("vulkan", true).is_none() {
        return;
    }
    let cache = common::tmp("remember");
    let args = [
        "--epochs",
        "1",
        "--train-limit",
        "300",
        "--test-limit",
        "100",
    ];
    let (ok, out, err) = train(&cache, None, &args);
    assert!(ok, "{err}");
    assert!(
        out.contains("kernels against the CPU reference: checked on this adapter ("),
        "{out}"
    );
    let (ok, out, err) = train(&cache, None, &args);
    assert!(ok, "{err}");
    assert!(
        out.contains("kernels against the CPU reference: checked earlier"),
        "{out}"
    );

    // A damaged record, and one from another build or adapter, do not count.
    let records: Vec<_> = std::fs::read_dir(cache.join("checks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(records.len(), 1);
    for bad in [
        "\u{0}\u{1}garbage",
        "adapter=another one; family=fused; build=0.0.0\n",
    ] {
        std::fs::write(&records[0], bad).unwrap();
        let (ok, out, err) = train(&cache, None, &args);
        assert!(ok, "{err}");
        assert!(out.contains("checked on this adapter ("), "{out}");
    }
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn a_failed_check_moves_the_run_unless_the_kernels_were_chosen() {
    if common::adapter("vulkan", true).is_none() {
        return;
    }
    let cache = common::tmp("moves");
    // The fused family fails: the run says which kernel and tensor, and trains on `simple`.
    let (ok, out, err) = train(&cache, Some("corrupt:c3s4_forward"), &SMALL);
    assert!(ok, "{err}");
    assert!(
        err.contains("the fused kernels disagree with the CPU reference"),
        "{err}"
    );
    assert!(
        err.contains("kernel c3s4_forward writes x3 off by up to"),
        "{err}"
    );
    assert!(
        err.contains("training on the simple kernels instead"),
        "{err}"
    );
    assert!(out.contains("done: test error"), "{out}");

    // Both families fail: the CPU backend.
    let (ok, out, err) = train(&cache, Some("corrupt:c3s4_forward,c3_forward"), &SMALL);
    assert!(ok, "{err}");
    assert!(
        err.contains("the simple kernels disagree") && err.contains("kernel c3_forward"),
        "{err}"
    );
    assert!(err.contains("training on the CPU backend instead"), "{err}");
    assert!(out.contains("done: test error"), "{out}");

    // The family was chosen: the run stops with the same message, before any pass.
    let mut args = SMALL.to_vec();
    args.extend(["--kernels", "fused"]);
    let (ok, out, err) = train(&cache, Some("corrupt:c3s4_forward"), &args);
    assert!(!ok, "{out}");
    assert!(
        err.contains("kernel c3s4_forward writes x3") && err.contains("the run stops"),
        "{err}"
    );
    assert!(!out.contains("done:"), "{out}");
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn a_lost_device_keeps_the_last_checkpoint_and_the_run_continues_on_the_cpu() {
    if common::adapter("vulkan", true).is_none() {
        return;
    }
    let dir = common::tmp("lost");
    let cache = dir.join("cache");
    let (a, b) = (dir.join("a"), dir.join("b"));
    let run = |args: &[&str], fault: Option<&str>| {
        let mut c = lenet(&cache);
        c.args(args);
        if let Some(f) = fault {
            c.env("LENET_FAULT", f);
        }
        common::output(c)
    };
    let base = [
        "train",
        "--cpu-adapter",
        "--train-limit",
        "400",
        "--test-limit",
        "100",
        "--quiet",
    ];

    // Run A loses its device in pass 2: non-zero, what happened, the commands that go on.
    let mut args = base.to_vec();
    args.extend(["--epochs", "2", "--checkpoint-dir", a.to_str().unwrap()]);
    let (ok, _, err) = run(&args, Some("lose:2:64"));
    assert!(!ok, "{err}");
    assert!(err.contains("the device was lost"), "{err}");
    assert!(err.contains("last.safetensors (pass 1) is intact"), "{err}");
    let cpu_cmd = format!("lenet-gpu train --resume {} --backend cpu", a.display());
    assert!(err.contains(&cpu_cmd), "{err}");
    let ck = lenet_gpu::checkpoint::load(&a.join("last.safetensors")).unwrap();
    assert_eq!(ck.meta.epoch, 1);
    let (ok, _, err) = run(
        &[
            "train",
            "--resume",
            a.to_str().unwrap(),
            "--backend",
            "cpu",
            "--quiet",
        ],
        None,
    );
    assert!(ok, "{err}");

    // Run B: pass 1 on the same adapter, then moved to the CPU for pass 2 on purpose.
    let mut args = base.to_vec();
    args.extend(["--epochs", "1", "--checkpoint-dir", b.to_str().unwrap()]);
    let (ok, _, err) = run(&args, None);
    assert!(ok, "{err}");
    let (ok, _, err) = run(
        &[
            "train",
            "--resume",
            b.to_str().unwrap(),
            "--epochs",
            "2",
            "--backend",
            "cpu",
            "--quiet",
        ],
        None,
    );
    assert!(ok, "{err}");
    let (a2, b2) = (
        lenet_gpu::checkpoint::load(&a.join("last.safetensors")).unwrap(),
        lenet_gpu::checkpoint::load(&b.join("last.safetensors")).unwrap(),
    );
    assert_eq!(a2.meta.epoch, 2);
    assert!(
        a2.params == b2.params,
        "the continued run differs from the one moved on purpose"
    );
    assert_eq!(
        a2.optimizer.unwrap().velocity,
        b2.optimizer.unwrap().velocity
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_gpu_batch_over_the_dispatch_bound_is_refused() {
    if common::adapter("vulkan", true).is_none() {
        return;
    }
    let cache = common::tmp("bound");
    let (ok, out, err) = train(
        &cache,
        None,
        &["--batch", "4097", "--epochs", "1", "--train-limit", "5000"],
    );
    assert!(!ok, "{out}");
    assert!(
        err.contains("--batch 4097 is over 4096") && err.contains("watchdog"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&cache);
}
