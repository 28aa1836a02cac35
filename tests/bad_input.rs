//! Every mistake a user can make gets one clear message, a non-zero exit and never a panic.

mod common;

use common::tmp;

use std::path::{Path, PathBuf};

use common::fails;

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A data folder holding the real label files and the given bytes as train images.
fn data_with_train_images(tag: &str, bytes: &[u8]) -> PathBuf {
    let src = common::mnist_dir();
    let d = tmp(tag);
    for f in [
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        std::fs::copy(src.join(f), d.join(f)).unwrap();
    }
    std::fs::write(d.join("train-images-idx3-ubyte"), bytes).unwrap();
    d
}

#[test]
fn broken_data_files() {
    let mut header = vec![0, 0, 8, 3];
    header.extend_from_slice(&60000u32.to_be_bytes());
    header.extend_from_slice(&28u32.to_be_bytes());
    header.extend_from_slice(&28u32.to_be_bytes());
    let mut huge = header.clone();
    huge[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    let mut wrong_magic = header.clone();
    wrong_magic[3] = 1;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "header"),
        ("truncated-header", header[..7].to_vec(), "header"),
        (
            "truncated-body",
            [header.clone(), vec![0; 1000]].concat(),
            "truncated",
        ),
        ("absurd-count", [huge, vec![0; 100]].concat(), "truncated"),
        ("wrong-magic", [wrong_magic, vec![0; 100]].concat(), "magic"),
        (
            "corrupt-gzip",
            vec![0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
            "header",
        ),
    ];
    for (tag, bytes, what) in cases {
        let d = data_with_train_images(tag, &bytes);
        let file = d.join("train-images-idx3-ubyte");
        fails(
            &[
                "train",
                "--backend",
                "cpu",
                "--epochs",
                "1",
                "--data",
                &s(&d),
            ],
            &[&s(&file), what],
        );
        let _ = std::fs::remove_dir_all(&d);
    }
    // A folder where a file is expected.
    let d = data_with_train_images("dir-as-file", b"");
    std::fs::remove_file(d.join("train-images-idx3-ubyte")).unwrap();
    std::fs::create_dir(d.join("train-images-idx3-ubyte")).unwrap();
    fails(
        &["train", "--backend", "cpu", "--data", &s(&d)],
        &["directory"],
    );
    // A file where the data folder is expected, and a folder that does not exist.
    let f = d.join("t10k-labels-idx1-ubyte.gz");
    fails(
        &["train", "--backend", "cpu", "--data", &s(&f)],
        &["lenet-gpu fetch"],
    );
    fails(
        &[
            "train",
            "--backend",
            "cpu",
            "--data",
            &s(&d.join("nowhere")),
        ],
        &["lenet-gpu fetch", "nowhere"],
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn broken_checkpoints() {
    let data = s(&common::mnist_dir());
    let d = tmp("ckpt");
    let empty = d.join("empty.safetensors");
    std::fs::write(&empty, b"").unwrap();
    let junk = d.join("junk.safetensors");
    std::fs::write(&junk, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......").unwrap();
    for f in [&empty, &junk] {
        fails(
            &[
                "eval",
                "--backend",
                "cpu",
                "--data",
                &data,
                "--model",
                &s(f),
            ],
            &[&s(f)],
        );
        fails(
            &[
                "train",
                "--backend",
                "cpu",
                "--data",
                &data,
                "--resume",
                &s(f),
            ],
            &[&s(f)],
        );
    }
    fails(
        &[
            "eval",
            "--backend",
            "cpu",
            "--data",
            &data,
            "--model",
            &s(&d.join("missing.safetensors")),
        ],
        &["missing.safetensors"],
    );
    // A checkpoint folder without last.safetensors.
    fails(
        &[
            "train",
            "--backend",
            "cpu",
            "--data",
            &data,
            "--resume",
            &s(&d),
        ],
        &["last.safetensors"],
    );
    // --save into a folder that does not exist is refused before any training.
    fails(
        &[
            "train",
            "--backend",
            "cpu",
            "--data",
            &data,
            "--save",
            &s(&d.join("no/such/dir/x.safetensors")),
        ],
        &["does not exist"],
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn out_of_range_flags() {
    let data = s(&common::mnist_dir());
    let cases: &[(&[&str], &str)] = &[
        (&["--batch", "0"], "--batch"),
        (&["--epochs", "0"], "--epochs"),
        (&["--eta-scale", "-1"], "--eta-scale"),
        (&["--eta-scale", "NaN"], "--eta-scale"),
        (&["--eta-scale", "inf"], "--eta-scale"),
        (&["--mu", "0"], "--mu"),
        (&["--momentum", "1.5"], "--momentum"),
        (&["--momentum", "-0.1"], "--momentum"),
        (&["--hessian-samples", "0"], "--hessian-samples"),
        (&["--schedule", "2:0.1,1:0.2"], "--schedule"),
        (&["--schedule", "fast"], "--schedule"),
        (&["--schedule", "2:-1"], "--schedule"),
        (&["--threads", "0"], "--threads"),
        (&["--train-limit", "0"], "--train-limit"),
        (&["--loss", "map", "--map-j", "-1"], "--map-j"),
        (&["--batch", "-3"], "--batch"),
        (&["--epochs", "many"], "--epochs"),
        (&["--backend", "tpu"], "--backend"),
        (
            &["--adapter", "no-such-gpu-anywhere"],
            "no-such-gpu-anywhere",
        ),
    ];
    for (flags, what) in cases {
        let mut args = vec!["train", "--data", &data];
        args.extend_from_slice(flags);
        fails(&args, &[what]);
    }
}

/// An absurd eta makes the weights infinite: the run stops naming the pass and batch, exits
/// non-zero, and the last good checkpoint stays as it was.
#[test]
fn divergence_stops_and_keeps_the_last_good_checkpoint() {
    let data = s(&common::mnist_dir());
    let d = tmp("diverge");
    let err = fails(
        &[
            "train",
            "--backend",
            "cpu",
            "--data",
            &data,
            "--train-limit",
            "500",
            "--test-limit",
            "100",
            "--epochs",
            "3",
            "--schedule",
            "1:2e-5,2:1e38",
            "--checkpoint-dir",
            &s(&d),
        ],
        &["pass 2, batch", "not finite"],
    );
    println!("{err}");
    let last = lenet_gpu::checkpoint::load(&d.join("last.safetensors")).unwrap();
    assert_eq!(last.meta.epoch, 1);
    assert!(last.params.iter().all(|v| v.is_finite()));
    assert!(!d.join("epoch-002.safetensors").exists());
    let _ = std::fs::remove_dir_all(&d);
}

/// Broken images given to `predict`: each named in its own message, the run exits non-zero,
/// and a broken model file is named too.
#[test]
fn broken_images_for_predict() {
    let d = tmp("predict");
    let model = d.join("m.safetensors");
    let meta = lenet_gpu::checkpoint::Meta {
        epoch: 0,
        seed: 1,
        loss: "mse".into(),
        extra: Default::default(),
    };
    lenet_gpu::checkpoint::save(
        &model,
        &lenet_gpu::model::params::init(1),
        &lenet_gpu::model::RBF_CENTERS,
        &meta,
    )
    .unwrap();
    let empty = d.join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let mut png = Vec::new();
    image::GrayImage::from_pixel(30, 30, image::Luma([0]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let truncated = d.join("truncated.png");
    std::fs::write(&truncated, &png[..png.len() / 2]).unwrap();
    let folder = d.join("folder.png");
    std::fs::create_dir(&folder).unwrap();
    let missing = d.join("missing.png");
    for f in [&empty, &truncated, &folder, &missing] {
        fails(&["predict", "--model", &s(&model), &s(f)], &[&s(f)]);
    }
    fails(
        &[
            "predict",
            "--model",
            &s(&d.join("nope.safetensors")),
            &s(&empty),
        ],
        &["nope.safetensors"],
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// A data file the user may not read. As root every file is readable, so there the binary
/// runs as the unprivileged user `nobody` (with setpriv) to see the refusal.
#[test]
fn unreadable_data_file() {
    use std::os::unix::fs::PermissionsExt;
    let d = data_with_train_images("noperm", &[0, 0, 8, 3]);
    let file = d.join("train-images-idx3-ubyte");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();
    let bin = env!("CARGO_BIN_EXE_lenet-gpu");
    let as_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    let mut cmd = if as_root {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin]);
        c
    } else {
        std::process::Command::new(bin)
    };
    let out = match cmd
        .args(["train", "--backend", "cpu", "--data", &s(&d)])
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("skipped: cannot run setpriv: {e}");
            return;
        }
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&s(&file)) && err.contains("ermission denied"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}
