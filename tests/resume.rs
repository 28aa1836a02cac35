//! Interrupted runs: a run killed with SIGKILL mid-pass (no chance to save) and resumed from
//! its last checkpoint, or stopped with SIGINT and resumed from the exact pattern where it
//! stopped, ends with the same weights, bit for bit, as an uninterrupted run.

mod common;

use lenet_gpu::checkpoint;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lenet-resume-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn train(args: &[&str], dir: &Path) -> Command {
    let mut c = common::bin();
    c.arg("train")
        .args(args)
        .arg("--data")
        .arg(common::mnist_dir())
        .arg("--checkpoint-dir")
        .arg(dir);
    c
}

fn wait_for(path: &Path, child: &mut Child) {
    let t = Instant::now();
    while !path.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before writing {}",
            path.display()
        );
        assert!(
            t.elapsed() < Duration::from_secs(600),
            "no {} after 10 minutes",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Weights and momentum of a checkpoint, as bits.
fn state(path: &Path) -> (Vec<u32>, Vec<u32>) {
    let ck = checkpoint::load(path).unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    (
        bits(&ck.params),
        bits(&ck.optimizer.expect("optimizer state").velocity),
    )
}

fn run_ok(mut c: Command) -> String {
    let out = c.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    text
}

fn kill_and_resume(tag: &str, args: &[&str], signal: Option<i32>) {
    let whole = tmp(&format!("{tag}-whole"));
    run_ok(train(args, &whole));
    let cut = tmp(&format!("{tag}-cut"));
    let mut child = train(args, &cut)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Let pass 1 finish, then stop the run a little way into pass 2.
    wait_for(&cut.join("epoch-001.safetensors"), &mut child);
    std::thread::sleep(Duration::from_millis(400));
    match signal {
        None => child.kill().unwrap(), // SIGKILL: no chance to save anything
        Some(sig) => {
            let status = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(child.id().to_string())
                .status()
                .unwrap();
            assert!(status.success());
        }
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("panicked"), "{text}");
    if signal == Some(2) {
        assert_eq!(out.status.code(), Some(130), "{text}");
        assert!(
            text.contains("--resume"),
            "the message must say how to resume: {text}"
        );
    }
    assert!(
        !cut.join("epoch-002.safetensors").exists(),
        "the run finished before it was stopped; the test proves nothing"
    );
    // The checkpoint left behind is whole and loadable.
    checkpoint::load(&cut.join("last.safetensors")).unwrap();
    let mut resume = common::bin();
    resume
        .arg("train")
        .args(args)
        .arg("--data")
        .arg(common::mnist_dir())
        .arg("--resume")
        .arg(&cut);
    let text = run_ok(resume);
    println!("{text}");
    assert_eq!(
        state(&cut.join("epoch-002.safetensors")),
        state(&whole.join("epoch-002.safetensors")),
        "resumed run differs from the uninterrupted one"
    );
    let _ = std::fs::remove_dir_all(&whole);
    let _ = std::fs::remove_dir_all(&cut);
}

const CPU_RUN: [&str; 14] = [
    "--backend",
    "cpu",
    "--train-limit",
    "9000",
    "--test-limit",
    "200",
    "--epochs",
    "2",
    "--batch",
    "8",
    "--momentum",
    "0.5",
    "--schedule",
    "1:2e-5,2:4e-5",
];

#[test]
fn sigkill_mid_pass_then_resume_is_bit_identical_on_cpu() {
    kill_and_resume("kill-cpu", &CPU_RUN, None);
}

#[test]
fn sigint_mid_pass_saves_and_resumes_bit_identical_on_cpu() {
    kill_and_resume("int-cpu", &CPU_RUN, Some(2));
}

#[test]
fn sigkill_mid_pass_then_resume_is_bit_identical_on_gpu() {
    if !common::cpu_adapter_available() {
        return;
    }
    kill_and_resume(
        "kill-gpu",
        &[
            "--backend",
            "vulkan",
            "--cpu-adapter",
            // Enough patterns that pass 2 outlasts the 400 ms before the kill: lavapipe
            // trains about 1,600 patterns a second at batch 8.
            "--train-limit",
            "2400",
            "--test-limit",
            "100",
            "--epochs",
            "2",
            "--batch",
            "8",
            "--momentum",
            "0.5",
            "--hessian-samples",
            "32",
            "--schedule",
            "1:2e-5,2:4e-5",
        ],
        None,
    );
}

/// A second Ctrl-C exits at once (130), and whatever the first one was doing, the
/// checkpoint on disk is whole: it loads.
#[test]
fn second_sigint_exits_at_once_and_the_checkpoint_stays_whole() {
    let dir = tmp("twice");
    let mut child = train(&CPU_RUN, &dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&dir.join("epoch-001.safetensors"), &mut child);
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..2 {
        assert!(
            Command::new("kill")
                .arg("-2")
                .arg(child.id().to_string())
                .status()
                .unwrap()
                .success()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(130), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    let ck = checkpoint::load(&dir.join("last.safetensors")).unwrap();
    assert!(ck.params.iter().all(|v| v.is_finite()));
    let _ = std::fs::remove_dir_all(&dir);
}
