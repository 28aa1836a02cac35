//! Interrupted runs: a run stopped mid-pass (the path Ctrl-C takes) and resumed from the
//! exact pattern where it stopped, or killed mid-pass (no chance to save) and resumed from
//! its last checkpoint, ends with the same weights and momentum, bit for bit, as an
//! uninterrupted run.
//!
//! No test waits a fixed time for the run to get somewhere: the interruption lands at a
//! chosen pattern through the test-only `LENET_FAULT` hook (`src/fault.rs`), on the CPU
//! and on the GPU backend. The tests that send real signals from outside first let the run
//! pause itself inside pass 2 (`LENET_FAULT=pause:2:N`) and say so on stderr, so the
//! signal lands mid-pass on a machine of any speed.

mod common;

use common::tmp;

use lenet_gpu::checkpoint;
use std::io::BufRead;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn train(args: &[&str], dir: &Path) -> Command {
    let mut c = common::bin();
    c.arg("train")
        .args(args)
        .arg("--data")
        .arg(common::mnist_dir())
        .arg("--checkpoint-dir")
        .arg(dir)
        .env_remove(lenet_gpu::fault::ENV);
    c
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

/// How an interruption is brought about.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Cut {
    /// `LENET_FAULT=stop:2:N`: the run raises its own stop request, as SIGINT does.
    FaultStop,
    /// `LENET_FAULT=kill:2:N`: the process ends at once, nothing saved.
    FaultKill,
    /// A real SIGINT from outside, once the run has paused itself inside pass 2.
    Sigint,
    /// A real SIGKILL from outside, once the run has paused itself inside pass 2.
    Sigkill,
}

/// A spawned run whose stderr is collected by a thread; `paused` receives once the run
/// says it paused inside pass 2.
struct Running {
    child: Child,
    stderr: std::thread::JoinHandle<String>,
    paused: mpsc::Receiver<()>,
}

fn spawn(mut c: Command) -> Running {
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, paused) = mpsc::channel();
    let stderr = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(err).lines().map_while(|l| l.ok()) {
            if line.starts_with("fault: paused in pass 2") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    Running {
        child,
        stderr,
        paused,
    }
}

impl Running {
    /// Waits for the pause inside pass 2; fails (and ends the run) if the run exits first.
    fn wait_paused(&mut self) {
        loop {
            match self.paused.recv_timeout(Duration::from_millis(50)) {
                Ok(()) => return,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(s) = self.child.try_wait().unwrap() {
                        panic!("the run ended ({s}) before pausing in pass 2");
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let s = self.child.wait().unwrap();
                    panic!("the run closed stderr ({s}) before pausing in pass 2");
                }
            }
        }
    }

    fn signal(&self, sig: i32) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    fn finish(mut self) -> (ExitStatus, String) {
        let status = self.child.wait().unwrap();
        (status, self.stderr.join().unwrap())
    }
}

/// Pattern of pass 2 where every interruption lands: mid-pass, a whole number of batches.
const AT: usize = 600;

fn interrupt_and_resume(tag: &str, args: &[&str], cut: Cut) {
    interrupt_check_resume(tag, args, cut, |_| {});
}

/// `interrupt_and_resume`, with `check` run on the interrupted run's folder before it is
/// resumed.
fn interrupt_check_resume(tag: &str, args: &[&str], cut: Cut, check: impl Fn(&Path)) {
    let whole = tmp(&format!("{tag}-whole"));
    run_ok(train(args, &whole));
    let dir = tmp(&format!("{tag}-cut"));
    let mut c = train(args, &dir);
    let fault = match cut {
        Cut::FaultStop => "stop",
        Cut::FaultKill => "kill",
        Cut::Sigint | Cut::Sigkill => "pause",
    };
    c.env(lenet_gpu::fault::ENV, format!("{fault}:2:{AT}"));
    let mut run = spawn(c);
    match cut {
        Cut::Sigint | Cut::Sigkill => {
            run.wait_paused();
            // The check that the signal lands before the end of pass 2 comes first.
            assert!(
                !dir.join("epoch-002.safetensors").exists(),
                "pass 2 was already saved when the run said it paused inside it"
            );
            if cut == Cut::Sigint {
                run.signal(2);
            } else {
                run.child.kill().unwrap();
            }
        }
        Cut::FaultStop | Cut::FaultKill => {}
    }
    let (status, text) = run.finish();
    assert!(!text.contains("panicked"), "{text}");
    assert!(
        !dir.join("epoch-002.safetensors").exists(),
        "pass 2 ended before the interruption ({cut:?}) landed; the test proves nothing: {text}"
    );
    match cut {
        Cut::FaultStop | Cut::Sigint => {
            assert_eq!(status.code(), Some(130), "{text}");
            assert!(
                text.contains(&format!("in pass 2 after {AT} patterns")),
                "the run must say where it stopped: {text}"
            );
            assert!(
                text.contains("--resume"),
                "the message must say how to resume: {text}"
            );
        }
        Cut::FaultKill | Cut::Sigkill => {
            assert_eq!(status.signal(), Some(9), "{status}: {text}");
        }
    }
    // The checkpoint left behind is whole and loadable.
    let last = checkpoint::load(&dir.join("last.safetensors")).unwrap();
    let position = last.meta.extra.get("position").cloned();
    match cut {
        Cut::FaultStop | Cut::Sigint => assert_eq!(position.as_deref(), Some("600")),
        // Killed: nothing was saved after pass 1.
        Cut::FaultKill | Cut::Sigkill => {
            assert_eq!(last.meta.epoch, 1);
            assert_eq!(position, None);
        }
    }
    check(&dir);
    let mut resume = common::bin();
    resume
        .arg("train")
        .arg("--data")
        .arg(common::mnist_dir())
        .arg("--resume")
        .arg(&dir)
        .env_remove(lenet_gpu::fault::ENV);
    let text = run_ok(resume);
    println!("{text}");
    assert_eq!(
        state(&dir.join("epoch-002.safetensors")),
        state(&whole.join("epoch-002.safetensors")),
        "resumed run differs from the uninterrupted one"
    );
    let _ = std::fs::remove_dir_all(&whole);
    let _ = std::fs::remove_dir_all(&dir);
}

const CPU_RUN: [&str; 14] = [
    "--backend",
    "cpu",
    "--train-limit",
    "3000",
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

const GPU_RUN: [&str; 17] = [
    "--backend",
    "vulkan",
    "--cpu-adapter",
    "--train-limit",
    "1200",
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
];

#[test]
fn stop_mid_pass_saves_and_resumes_bit_identical_on_cpu() {
    interrupt_and_resume("stop-cpu", &CPU_RUN, Cut::FaultStop);
}

#[test]
fn kill_mid_pass_then_resume_is_bit_identical_on_cpu() {
    interrupt_and_resume("kill-cpu", &CPU_RUN, Cut::FaultKill);
}

#[test]
fn stop_mid_pass_saves_and_resumes_bit_identical_on_gpu() {
    if !common::cpu_adapter_available() {
        return;
    }
    interrupt_and_resume("stop-gpu", &GPU_RUN, Cut::FaultStop);
}

#[test]
fn kill_mid_pass_then_resume_is_bit_identical_on_gpu() {
    if !common::cpu_adapter_available() {
        return;
    }
    interrupt_and_resume("kill-gpu", &GPU_RUN, Cut::FaultKill);
}

/// A run saves its kernel family with its device: `--resume` continues on it (bit for
/// bit, as an uninterrupted run of that family), and refuses `--kernels` with another.
#[test]
fn a_resumed_gpu_run_keeps_its_kernel_family() {
    if !common::cpu_adapter_available() {
        return;
    }
    let args: Vec<&str> = GPU_RUN
        .iter()
        .copied()
        .chain(["--kernels", "simple"])
        .collect();
    interrupt_check_resume("family-gpu", &args, Cut::FaultStop, |dir| {
        let saved = checkpoint::load(&dir.join("last.safetensors")).unwrap();
        let device = saved.meta.extra.get("device").cloned().unwrap_or_default();
        assert!(device.contains(":simple:"), "saved device: {device}");
        let out = common::bin()
            .args(["train", "--kernels", "fused", "--resume"])
            .arg(dir)
            .arg("--data")
            .arg(common::mnist_dir())
            .env_remove(lenet_gpu::fault::ENV)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--kernels fused was accepted: {err}");
        assert!(
            err.contains("--kernels fused would change the run") && err.contains("simple kernels"),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    });
}

#[test]
fn real_sigint_mid_pass_saves_and_resumes_bit_identical() {
    interrupt_and_resume("sigint", &CPU_RUN, Cut::Sigint);
}

#[test]
fn real_sigkill_mid_pass_then_resume_is_bit_identical() {
    interrupt_and_resume("sigkill", &CPU_RUN, Cut::Sigkill);
}

/// A second Ctrl-C exits at once (130), and whatever the first one was doing, the
/// checkpoint on disk is whole: it loads.
#[test]
fn second_sigint_exits_at_once_and_the_checkpoint_stays_whole() {
    let dir = tmp("twice");
    let mut c = train(&CPU_RUN, &dir);
    c.env(lenet_gpu::fault::ENV, format!("pause:2:{AT}"));
    let mut run = spawn(c);
    run.wait_paused();
    run.signal(2);
    run.signal(2);
    let (status, text) = run.finish();
    assert_eq!(status.code(), Some(130), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    let ck = checkpoint::load(&dir.join("last.safetensors")).unwrap();
    assert!(ck.params.iter().all(|v| v.is_finite()));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A malformed `LENET_FAULT` is refused before any training, naming the variable.
#[test]
fn malformed_fault_setting_is_refused() {
    let dir = tmp("badfault");
    let mut c = train(&CPU_RUN, &dir);
    c.env(lenet_gpu::fault::ENV, "stop:two:5");
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("LENET_FAULT"), "{err}");
    assert!(!dir.join("epoch-001.safetensors").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
