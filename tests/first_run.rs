//! What a new user meets in the first hour, through the binary: a first run without the
//! network, resuming a stopped run as the program says to, output files checked before
//! training, adapter messages, `eval`/`predict` on checkpoint folders and plain weights,
//! the low-ink warning, and the log's number format.

mod common;

use common::tmp;

use std::path::{Path, PathBuf};
use std::process::Command;

fn s(p: &Path) -> String {
    p.display().to_string()
}

use common::output as run;

fn lenet(args: &[&str]) -> Command {
    let mut c = common::bin();
    c.args(args).env_remove(lenet_gpu::fault::ENV);
    c
}

/// A small CPU training command into a checkpoint folder.
fn small_train(dir: &Path, extra: &[&str]) -> Command {
    let data = s(&common::mnist_dir());
    let mut args = vec![
        "train",
        "--backend",
        "cpu",
        "--data",
        &data,
        "--train-limit",
        "480",
        "--test-limit",
        "100",
        "--epochs",
        "2",
        "--hessian-samples",
        "50",
    ];
    args.extend_from_slice(extra);
    let d = s(dir);
    args.extend_from_slice(&["--checkpoint-dir", &d]);
    lenet(&args)
}

/// A small CPU run into a checkpoint folder.
fn small_run(dir: &Path, extra: &[&str]) -> (bool, String, String) {
    run(small_train(dir, extra))
}

/// Offline, with no MNIST anywhere: the first `train` says every way out (a mirror through
/// `fetch --mirror`, `--data`, `LENET_DATA`) and leaves no empty data folder behind.
#[test]
fn offline_first_run_names_every_way_out_and_leaves_nothing() {
    let dir = tmp("offline");
    let mut c = lenet(&["train", "--epochs", "1"]);
    c.current_dir(&dir)
        .env_remove("LENET_DATA")
        // A mirror that refuses at once, so the test needs no network and never reaches one.
        .env("LENET_MIRRORS", "http://127.0.0.1:9/");
    let (ok, _, err) = run(c);
    assert!(!ok);
    for way in ["fetch --mirror", "--data", "LENET_DATA"] {
        assert!(
            err.contains(way),
            "the message does not mention {way}: {err}"
        );
    }
    assert!(
        !dir.join("data").exists(),
        "a failed first fetch left {} behind",
        dir.join("data").display()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A run stopped mid-pass prints how to continue; that command, run exactly as printed
/// (no --data, --train-limit or --epochs), continues it, and ends bit-identical to an
/// uninterrupted run. A flag that would change the resumed run is refused; one that repeats
/// the saved value is not.
#[test]
fn the_printed_resume_command_works_and_changes_are_refused() {
    let whole = tmp("resume-whole");
    let (ok, o, e) = small_run(&whole, &[]);
    assert!(ok, "{o}{e}");
    let dir = tmp("resume-cut");
    let mut c = small_train(&dir, &[]);
    c.env(lenet_gpu::fault::ENV, "stop:2:160");
    let (ok, _, err) = run(c);
    assert!(!ok);
    let line = err
        .lines()
        .find(|l| l.contains("Continue with: "))
        .unwrap_or_else(|| panic!("no resume command in: {err}"));
    let cmd = line.split("Continue with: ").nth(1).unwrap().trim();
    let words: Vec<&str> = cmd.split_whitespace().collect();
    assert_eq!(words[..2], ["lenet-gpu", "train"], "{cmd}");

    // A flag that changes the run is refused, naming it; nothing is trained.
    let mut changed: Vec<&str> = words[1..].to_vec();
    changed.extend_from_slice(&["--batch", "64"]);
    let mut c = lenet(&changed);
    c.env_remove("LENET_DATA");
    let (ok, _, err) = run(c);
    assert!(!ok);
    assert!(err.contains("--batch") && err.contains("--resume"), "{err}");
    assert!(!dir.join("epoch-002.safetensors").exists());

    // As printed, in another folder and without LENET_DATA: the checkpoint says it all.
    let mut c = lenet(&words[1..]);
    c.env_remove("LENET_DATA")
        .current_dir(dir.parent().unwrap());
    let (ok, o, e) = run(c);
    assert!(ok, "{o}{e}");
    let bits = |p: PathBuf| {
        let ck = lenet_gpu::checkpoint::load(&p).unwrap();
        let v = ck.optimizer.unwrap().velocity;
        (
            ck.params.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        bits(dir.join("epoch-002.safetensors")),
        bits(whole.join("epoch-002.safetensors")),
        "the resumed run differs from the uninterrupted one"
    );
    // The same value as saved is no change: accepted (the run is already complete, so it
    // only asks for more passes).
    let mut same: Vec<&str> = words[1..].to_vec();
    same.extend_from_slice(&["--batch", "16"]);
    let (ok, _, err) = run(lenet(&same));
    assert!(!ok && err.contains("already holds 2 passes"), "{err}");
    let _ = std::fs::remove_dir_all(&whole);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--log` and `--save` into a folder that does not exist fail before anything is printed
/// or trained, naming the folder.
#[test]
fn output_files_are_checked_before_training() {
    let dir = tmp("outputs");
    let data = s(&common::mnist_dir());
    for flag in ["--log", "--save"] {
        let target = s(&dir.join("missing").join("x.csv"));
        let (ok, out, err) = run(lenet(&[
            "train",
            "--backend",
            "cpu",
            "--data",
            &data,
            "--train-limit",
            "100",
            flag,
            &target,
        ]));
        assert!(!ok);
        assert!(
            err.contains(flag) && err.contains("does not exist"),
            "{flag}: {err}"
        );
        assert!(out.is_empty(), "{flag}: printed before failing: {out}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The CSV log holds plain decimals, and a fresh run starts it afresh, as the help says.
#[test]
fn csv_log_is_plain_and_a_new_run_starts_it_afresh() {
    let dir = tmp("csv");
    let log = dir.join("run.csv");
    let l = s(&log);
    for _ in 0..2 {
        let (ok, o, e) = small_run(&dir.join("ck"), &["--log", &l]);
        assert!(ok, "{o}{e}");
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "header and two passes: {text}");
    for line in &lines[1..] {
        for v in line.split(',') {
            assert!(
                !v.contains('e') && v.parse::<f64>().is_ok(),
                "{v:?} in {line}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `eval`, `predict` and `visualize` take a checkpoint folder (its last checkpoint) and a
/// file of plain weights without lenet-gpu metadata (with a note); `--resume` refuses plain
/// weights.
#[test]
fn eval_predict_visualize_take_folders_and_plain_weights() {
    let dir = tmp("models");
    let ck = dir.join("ck");
    let (ok, o, e) = small_run(&ck, &[]);
    assert!(ok, "{o}{e}");
    let data = s(&common::mnist_dir());
    let eval = |model: &Path| {
        run(lenet(&[
            "eval",
            "--backend",
            "cpu",
            "--data",
            &data,
            "--test-limit",
            "100",
            "--model",
            &s(model),
        ]))
    };
    let test_error = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("test error"))
            .map(str::to_string)
    };
    let (ok, full, err) = eval(&ck);
    assert!(ok, "{full}{err}");
    assert!(full.contains("last.safetensors: pass 2"), "{full}");

    // The weights alone, as PyTorch's safetensors `save_file` writes them: no metadata.
    let bytes = std::fs::read(ck.join("last.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let views: Vec<_> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| !n.starts_with("optimizer."))
        .collect();
    let plain = dir.join("plain.safetensors");
    std::fs::write(&plain, safetensors::serialize(views, None).unwrap()).unwrap();
    let p = s(&plain);
    let (ok, out, err) = eval(&plain);
    assert!(ok, "{out}{err}");
    assert!(err.contains("without lenet-gpu metadata"), "{err}");
    // The same test error as the checkpoint it came from.
    assert_eq!(test_error(&full), test_error(&out));
    let png = s(&dir.join("maps.png"));
    let (ok, out, err) = run(lenet(&[
        "visualize",
        "--data",
        &data,
        "--model",
        &p,
        "--index",
        "3",
        "--out",
        &png,
    ]));
    assert!(ok, "{out}{err}");
    // --resume needs the whole checkpoint.
    let (ok, _, err) = run(lenet(&["train", "--data", &data, "--resume", &p]));
    assert!(!ok && err.contains("__metadata__"), "{err}");
    // A folder without a checkpoint in it.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (ok, _, err) = run(lenet(&["eval", "--data", &data, "--model", &s(&empty)]));
    assert!(!ok && err.contains("last.safetensors"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `predict` on a tiny picture with one dark pixel still answers, with a warning that
/// there is too little ink, and says that the smallest distance wins; a real digit gets
/// no warning.
#[test]
fn predict_warns_when_there_is_too_little_ink() {
    let dir = tmp("ink");
    let ck = dir.join("ck");
    let (ok, o, e) = small_run(&ck, &[]);
    assert!(ok, "{o}{e}");
    let mut tiny = image::GrayImage::from_pixel(3, 3, image::Luma([255]));
    tiny.put_pixel(1, 1, image::Luma([0]));
    let tiny_png = dir.join("tiny.png");
    tiny.save(&tiny_png).unwrap();
    let (tr, _) = lenet_gpu::data::load_mnist(&common::mnist_dir()).unwrap();
    let digit = image::GrayImage::from_fn(28, 28, |x, y| {
        image::Luma([255 - tr.image(0)[(y * 28 + x) as usize]])
    });
    let digit_png = dir.join("digit.png");
    digit.save(&digit_png).unwrap();
    let (ok, out, err) = run(lenet(&[
        "predict",
        "--model",
        &s(&ck),
        &s(&tiny_png),
        &s(&digit_png),
    ]));
    assert!(ok, "{out}{err}");
    assert!(out.contains("smallest wins"), "{out}");
    assert!(
        out.contains("tiny.png: ") && out.contains("digit.png: "),
        "{out}"
    );
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].contains("tiny.png") && warnings[0].contains("little ink"),
        "{err}"
    );
    let (ok, out, _) = run(lenet(&[
        "predict",
        "--json",
        "--model",
        &s(&ck),
        &s(&tiny_png),
    ]));
    assert!(ok);
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(
        j["warning"]
            .as_str()
            .is_some_and(|w| w.contains("little ink")),
        "{j}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A graphics API the machine lacks is named as missing, with the adapters that do exist;
/// and probing adapters in a plain shell (no XDG_RUNTIME_DIR) prints no driver "error:"
/// lines.
#[test]
fn adapter_messages_say_what_is_there() {
    if !common::cpu_adapter_available() {
        return;
    }
    let data = s(&common::mnist_dir());
    let mut c = lenet(&[
        "train",
        "--backend",
        "metal",
        "--data",
        &data,
        "--train-limit",
        "100",
    ]);
    c.env_remove("XDG_RUNTIME_DIR");
    let (ok, out, err) = run(c);
    if cfg!(target_os = "macos") {
        return;
    }
    assert!(!ok, "{out}");
    assert!(err.contains("no Metal adapter"), "{err}");
    assert!(
        err.contains("Vulkan"),
        "the Vulkan adapter is not named: {err}"
    );
    assert!(!err.contains("XDG_RUNTIME_DIR"), "{err}");
    let mut c = lenet(&["devices"]);
    c.env_remove("XDG_RUNTIME_DIR");
    let (ok, out, err) = run(c);
    assert!(ok);
    assert!(!out.is_empty());
    assert!(!err.contains("XDG_RUNTIME_DIR"), "{err}");
    // Plain `train` on a machine whose adapters are all software: the CPU backend, said
    // once, without a driver's error line.
    let mut c = lenet(&[
        "train",
        "--data",
        &data,
        "--train-limit",
        "100",
        "--test-limit",
        "50",
        "--epochs",
        "1",
    ]);
    c.env_remove("XDG_RUNTIME_DIR")
        .env_remove("WGPU_BACKEND")
        .env_remove("WGPU_ADAPTER_NAME");
    let (ok, out, err) = run(c);
    assert!(ok, "{out}{err}");
    if out.contains("backend cpu") {
        assert_eq!(err.matches("note:").count(), 1, "{err}");
    }
    assert!(!err.contains("error"), "{err}");
}
