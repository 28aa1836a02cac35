//! What users do around training, through the binary: logs, curves, the error grid, the
//! feature-map picture, predicting their own images, quiet output.

mod common;

use common::tmp;

use std::path::Path;

use common::run;

fn png_size(p: &Path) -> (u32, u32) {
    let img = image::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (img.width(), img.height())
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn log_curve_eval_visualize_predict() {
    let data = s(&common::mnist_dir());
    let d = tmp("all");
    let model = d.join("m.safetensors");
    train_with_logs(&d, &data, &model);
    eval_on_both_backends(&d, &data, &model);
    visualize_a_digit(&d, &data, &model);
    predict_pictures(&d, &model);
    let _ = std::fs::remove_dir_all(&d);
}

/// Trains 2 passes with a CSV and a JSON-lines log: one line per pass, the curve at the
/// end, and `plot` drawing the same picture again.
fn train_with_logs(d: &Path, data: &str, model: &Path) {
    for log in ["log.csv", "log.jsonl"] {
        let log = d.join(log);
        let (ok, out, err) = run(&[
            "train",
            "--backend",
            "cpu",
            "--data",
            data,
            "--train-limit",
            "1000",
            "--test-limit",
            "300",
            "--epochs",
            "2",
            "--batch",
            "4",
            "--log",
            &s(&log),
            "--save",
            &s(model),
        ]);
        assert!(ok, "{out}{err}");
        // Not a terminal: no progress bar, one line per pass.
        assert_eq!(
            out.lines()
                .filter(|l| l.trim_start().starts_with("1 ") || l.trim_start().starts_with("2 "))
                .count(),
            2,
            "{out}"
        );
        let text = std::fs::read_to_string(&log).unwrap();
        let records = text.lines().filter(|l| !l.starts_with("epoch")).count();
        assert_eq!(records, 2, "{text}");
        assert!(text.contains("test_error"), "{text}");
        let png = log.with_extension("png");
        assert_eq!(
            png_size(&png),
            lenet_gpu::render::CURVE_SIZE,
            "learning curve written at the end"
        );
        let again = d.join("again.png");
        let (ok, _, err) = run(&["plot", &s(&log), "--out", &s(&again)]);
        assert!(ok, "{err}");
        assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&png).unwrap());
    }
}

/// `eval` with `--errors-png`, and the same figure on the GPU backend.
fn eval_on_both_backends(d: &Path, data: &str, model: &Path) {
    let errors = d.join("errors.png");
    let (ok, out, err) = run(&[
        "eval",
        "--backend",
        "cpu",
        "--data",
        data,
        "--test-limit",
        "300",
        "--model",
        &s(model),
        "--errors-png",
        &s(&errors),
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("misclassified") && png_size(&errors).0 > 0,
        "{out}"
    );
    // The same evaluation on the GPU backend (the software adapter) gives the same figure.
    if lenet_gpu::gpu::pick(&lenet_gpu::gpu::AdapterChoice {
        cpu: true,
        ..Default::default()
    })
    .is_ok()
    {
        let (ok, gout, err) = run(&[
            "eval",
            "--cpu-adapter",
            "--data",
            data,
            "--test-limit",
            "300",
            "--model",
            &s(model),
        ]);
        assert!(ok, "{gout}{err}");
        let line = |t: &str| {
            t.lines()
                .find(|l| l.starts_with("test error"))
                .map(str::to_string)
        };
        assert_eq!(line(&gout), line(&out), "GPU and CPU evaluation differ");
    }
}

/// `visualize` of a test digit, and a refused index.
fn visualize_a_digit(d: &Path, data: &str, model: &Path) {
    let vis = d.join("vis.png");
    let (ok, out, err) = run(&[
        "visualize",
        "--data",
        data,
        "--model",
        &s(model),
        "--index",
        "3",
        "--out",
        &s(&vis),
    ]);
    assert!(ok, "{out}{err}");
    assert!(png_size(&vis).0 > 100);
    let (ok, _, err) = run(&[
        "visualize",
        "--data",
        data,
        "--model",
        &s(model),
        "--index",
        "99999",
        "--out",
        &s(&vis),
    ]);
    assert!(!ok && err.contains("--index"), "{err}");
}

/// `predict` on a user's picture of a test digit, a blank image and a file that is not one.
fn predict_pictures(d: &Path, model: &Path) {
    // predict: a real test digit as a user's picture (scaled up, dark on light), a blank
    // image and a file that is not an image; the good one is still classified.
    let (_, test) = lenet_gpu::data::load_mnist(&common::mnist_dir()).unwrap();
    let i = (0..test.len()).find(|&i| test.labels[i] == 3).unwrap();
    let mut pic = image::GrayImage::from_pixel(150, 150, image::Luma([255]));
    for y in 0..112 {
        for x in 0..112 {
            pic.put_pixel(
                x + 19,
                y + 19,
                image::Luma([255 - test.image(i)[(y / 4 * 28 + x / 4) as usize]]),
            );
        }
    }
    let three = d.join("three.png");
    pic.save(&three).unwrap();
    let blank = d.join("blank.png");
    image::GrayImage::from_pixel(40, 40, image::Luma([255]))
        .save(&blank)
        .unwrap();
    let junk = d.join("junk.jpg");
    std::fs::write(&junk, b"not a picture").unwrap();
    let (ok, out, err) = run(&[
        "predict",
        "--model",
        &s(model),
        &s(&three),
        &s(&blank),
        &s(&junk),
    ]);
    assert!(!ok, "failures must give a non-zero exit");
    assert!(
        out.contains("three.png: ") && out.contains("RBF distances"),
        "{out}"
    );
    assert!(
        err.contains("blank.png") && err.contains("junk.jpg"),
        "{err}"
    );
    let (ok, out, err) = run(&["predict", "--json", "--model", &s(model), &s(&three)]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["distances"].as_array().unwrap().len(), 10);
    assert!(v["digit"].as_u64().unwrap() < 10);
}

#[test]
fn quiet_prints_only_the_summary() {
    let data = s(&common::mnist_dir());
    let (ok, out, err) = run(&[
        "train",
        "--backend",
        "cpu",
        "--data",
        &data,
        "--train-limit",
        "300",
        "--test-limit",
        "100",
        "--epochs",
        "1",
        "--quiet",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("done: test error"), "{out}");
}

#[test]
fn broken_logs_are_clear_errors() {
    let d = tmp("badlog");
    let f = d.join("x.csv");
    std::fs::write(&f, "epoch,foo\n1,2\n").unwrap();
    let (ok, _, err) = run(&["plot", &s(&f)]);
    assert!(!ok && err.contains("x.csv"), "{err}");
    let (ok, _, err) = run(&["plot", &s(&d.join("missing.csv"))]);
    assert!(!ok && err.contains("missing.csv"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

/// Training through the GPU backend (the software adapter) writes the same kind of log and
/// curve, and --quiet holds there too.
#[test]
fn gpu_training_logs_and_quiet() {
    if !common::cpu_adapter_available() {
        return;
    }
    let data = s(&common::mnist_dir());
    let d = tmp("gpu-log");
    let log = d.join("gpu.jsonl");
    let (ok, out, err) = run(&[
        "train",
        "--cpu-adapter",
        "--data",
        &data,
        "--train-limit",
        "256",
        "--test-limit",
        "100",
        "--epochs",
        "1",
        "--batch",
        "16",
        "--hessian-samples",
        "32",
        "--log",
        &s(&log),
        "--quiet",
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.starts_with("done: test error") && out.lines().count() == 1,
        "{out}"
    );
    let rec: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(rec["epoch"], 1);
    assert!(
        rec["test_error"].as_f64().is_some() && rec["step_f6"].as_f64().is_some(),
        "{rec}"
    );
    assert_eq!(
        png_size(&log.with_extension("png")),
        lenet_gpu::render::CURVE_SIZE
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// `train --distort` through the binary: it changes what the network trains on, the GPU
/// backend (lavapipe) warps like the CPU backend (same draws, so the same pass loss up to
/// float rounding), and checkpoints remember the setting for --resume.
#[test]
fn distorted_training_on_both_backends() {
    let data = s(&common::mnist_dir());
    let d = tmp("distort");
    let pass_loss = |device: &[&str], distort: bool, name: &str| -> f64 {
        let log = d.join(format!("{name}.jsonl"));
        let model = d.join(format!("{name}.safetensors"));
        let mut args = vec![
            "train",
            "--data",
            &data,
            "--train-limit",
            "512",
            "--test-limit",
            "100",
            "--epochs",
            "1",
            "--hessian-samples",
            "64",
            "--quiet",
        ];
        args.extend_from_slice(device);
        if distort {
            args.push("--distort");
        }
        let (log_s, model_s) = (s(&log), s(&model));
        args.extend_from_slice(&["--log", &log_s, "--save", &model_s]);
        let (ok, out, err) = run(&args);
        assert!(ok, "{args:?}\n{out}{err}");
        let meta = lenet_gpu::checkpoint::load(&model).unwrap().meta;
        assert_eq!(meta.extra["distort"], distort.to_string());
        // --distort brings its own default schedule (eta held at 5e-5 to pass 12).
        let expected = if distort {
            "1:1.25e-5,12:5e-5,"
        } else {
            "1:1.25e-5,6:5e-5,"
        };
        assert!(
            meta.extra["schedule"].starts_with(expected),
            "{:?}",
            meta.extra["schedule"]
        );
        let text = std::fs::read_to_string(&log).unwrap();
        let rec: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        rec["train_loss"].as_f64().unwrap()
    };
    let cpu_plain = pass_loss(&["--backend", "cpu"], false, "cpu-plain");
    let cpu_warped = pass_loss(&["--backend", "cpu"], true, "cpu-warped");
    println!("pass-1 train loss: cpu {cpu_plain}, cpu --distort {cpu_warped}");
    // Runs are bit-reproducible, so a flag without effect would give identical weights.
    let weights = |n: &str| lenet_gpu::checkpoint::load(&d.join(n)).unwrap().params;
    assert_ne!(
        weights("cpu-plain.safetensors"),
        weights("cpu-warped.safetensors"),
        "--distort had no effect"
    );
    if common::cpu_adapter_available() {
        let gpu_warped = pass_loss(&["--cpu-adapter"], true, "gpu-warped");
        let rel = (gpu_warped - cpu_warped).abs() / cpu_warped;
        println!("lavapipe --distort {gpu_warped}: relative difference to cpu {rel:.1e}");
        assert!(
            rel < 1e-5,
            "GPU and CPU --distort passes differ: {gpu_warped} vs {cpu_warped}"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// `bench`: validated, timed rows for each backend (lavapipe and CPU), as JSON; and with no
/// GPU adapter at all, the CPU row alone with a note.
#[test]
fn bench_measures_each_backend() {
    let data = s(&common::mnist_dir());
    let small = [
        "--data",
        &data,
        "--train-limit",
        "300",
        "--test-limit",
        "100",
        "--batch",
        "8",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--hessian-samples",
        "16",
    ];
    let mut args = vec!["bench", "--json", "--backend", "gpu,cpu,cpu-ref"];
    args.extend_from_slice(&small);
    if common::cpu_adapter_available() {
        let (ok, out, err) = run(&args);
        assert!(ok, "{out}{err}");
        let rows: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(rows.len(), 3, "{out}");
        let names: Vec<&str> = rows
            .iter()
            .map(|r| r["backend"].as_str().unwrap())
            .collect();
        assert!(names[0].starts_with("gpu: "), "{out}");
        assert!(
            names[1].starts_with("cpu") && names[1].contains("fast"),
            "{out}"
        );
        assert!(
            names[2].starts_with("cpu") && names[2].contains("reference"),
            "{out}"
        );
        for r in &rows {
            assert!(r["train_samples_per_s"].as_f64().unwrap() > 0.0, "{r}");
            assert!(r["eval_samples_per_s"].as_f64().unwrap() > 0.0, "{r}");
            let (c, reference) = (
                r["check_loss"].as_f64().unwrap(),
                r["reference_loss"].as_f64().unwrap(),
            );
            assert!((c - reference).abs() <= 1e-4 * reference, "{r}");
        }
        assert!(rows[0]["device_bytes"].as_u64().unwrap() > 0, "{}", rows[0]);
    }
    // No adapter at all (an API this OS lacks): the CPU row, and a note.
    let missing = if cfg!(target_os = "macos") {
        "dx12"
    } else {
        "metal"
    };
    let out = common::bin()
        .args(&args)
        .env("WGPU_BACKEND", missing)
        .output()
        .unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{o}{e}");
    assert!(e.contains("skipping --backend gpu"), "{e}");
    assert_eq!(o.lines().count(), 2, "{o}");
    assert!(o.contains("\"backend\":\"cpu"), "{o}");
}
