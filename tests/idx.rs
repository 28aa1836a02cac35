//! The IDX reader on good files and on broken ones written here; every failure is an
//! error naming the file and what is wrong, never a panic.

mod common;

use flate2::{Compression, write::GzEncoder};
use lenet_gpu::Error;
use lenet_gpu::data::{self, Dataset};
use std::io::Write;
use std::path::{Path, PathBuf};

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("lenet-idx-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn images_bytes(n: u32, side: u32, magic: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [magic, n, side, side] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend((0..n * side * side).map(|i| (i % 251) as u8));
    v
}

fn labels_bytes(labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x801u32.to_be_bytes());
    v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The error's message, checked to name the file and mention `what`.
fn expect_err<T: std::fmt::Debug>(r: lenet_gpu::Result<T>, path: &Path, what: &str) {
    let e = r.expect_err("a broken file must be rejected");
    let msg = e.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "message does not name the file: {msg}"
    );
    assert!(
        msg.to_lowercase().contains(what),
        "message does not say {what:?}: {msg}"
    );
}

#[test]
fn reads_plain_and_gzipped_files() {
    let t = TempDir::new("good");
    let img = images_bytes(3, 28, 0x803);
    let lab = labels_bytes(&[7, 0, 9]);
    for (ip, lp) in [
        (t.write("i", &img), t.write("l", &lab)),
        (t.write("i.gz", &gz(&img)), t.write("l.gz", &gz(&lab))),
    ] {
        let d = data::read_split(&ip, &lp).unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(d.side, 28);
        assert_eq!(d.labels, [7, 0, 9]);
        assert_eq!(d.images, img[16..]);
        assert_eq!(d.image(1)[0], (784 % 251) as u8);
    }
    let (_, n, side) = data::read_images(&t.write("i32", &images_bytes(2, 32, 0x803))).unwrap();
    assert_eq!((n, side), (2, 32));
}

#[test]
fn rejects_broken_files() {
    let t = TempDir::new("bad");
    let img = images_bytes(3, 28, 0x803);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "header"),
        ("short-header", img[..10].to_vec(), "header"),
        ("truncated", img[..16 + 784 + 5].to_vec(), "truncated"),
        ("truncated-gz", gz(&img[..500]), "truncated"),
        ("trailing", [img.clone(), vec![0; 3]].concat(), "more than"),
        ("labels-magic", images_bytes(3, 28, 0x801), "magic"),
        ("wrong-size", images_bytes(3, 20, 0x803), "20x20"),
        ("zero-count", images_bytes(0, 28, 0x803), "0 images"),
        (
            "corrupt-gz",
            {
                let mut g = gz(&img);
                let n = g.len();
                g[n / 2] ^= 0xff;
                g[n / 2 + 1] ^= 0xff;
                g
            },
            "corrupt",
        ),
    ];
    for (name, bytes, what) in cases {
        let p = t.write(name, &bytes);
        expect_err(data::read_images(&p), &p, what);
    }
    // A header that claims a billion images in a small file: rejected without allocating them.
    let mut huge = images_bytes(1, 28, 0x803);
    huge[4..8].copy_from_slice(&1_000_000_000u32.to_be_bytes());
    let p = t.write("huge", &huge);
    expect_err(data::read_images(&p), &p, "truncated");

    let p = t.write("label-range", &labels_bytes(&[1, 2, 10]));
    expect_err(data::read_labels(&p), &p, "label 2 is 10");
    let p = t.write("label-magic", &images_bytes(1, 28, 0x803));
    expect_err(data::read_labels(&p), &p, "magic");

    // A directory where a file is expected, and a missing file.
    std::fs::create_dir_all(t.0.join("adir")).unwrap();
    expect_err(
        data::read_images(&t.0.join("adir")),
        &t.0.join("adir"),
        "directory",
    );
    let missing = t.0.join("missing");
    assert!(matches!(data::read_images(&missing), Err(Error::Io { .. })));
}

#[test]
fn image_and_label_counts_must_agree() {
    let t = TempDir::new("count");
    let ip = t.write("i", &images_bytes(3, 28, 0x803));
    let lp = t.write("l", &labels_bytes(&[1, 2]));
    let msg = data::read_split(&ip, &lp).unwrap_err().to_string();
    assert!(msg.contains("3 images but 2 labels"), "{msg}");
}

#[test]
fn missing_data_names_files_folder_and_fetch_command() {
    let t = TempDir::new("missing");
    t.write(
        "train-images-idx3-ubyte.gz",
        &gz(&images_bytes(2, 28, 0x803)),
    );
    let msg = data::load_mnist(&t.0).unwrap_err().to_string();
    for want in [
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        "lenet-gpu fetch",
    ] {
        assert!(msg.contains(want), "missing {want:?} in: {msg}");
    }
    assert!(
        !msg.contains("train-images-idx3-ubyte["),
        "a present file is listed as missing: {msg}"
    );
    assert!(msg.contains(&t.0.display().to_string()), "{msg}");
}

#[test]
fn truncated_keeps_the_first_patterns() {
    let d = Dataset {
        images: (0..4 * 784).map(|i| (i / 784) as u8).collect(),
        labels: vec![1, 2, 3, 4],
        side: 28,
    };
    let t = d.truncated(2);
    assert_eq!(t.labels, [1, 2]);
    assert_eq!(t.images.len(), 2 * 784);
    assert_eq!(t.image(1)[0], 1);
}

/// The real MNIST in the shared folder reads as 60,000 + 10,000 images of 28x28.
#[test]
fn reads_real_mnist() {
    let dir = common::mnist_dir();
    let (train, test) = data::load_mnist(&dir).unwrap();
    assert_eq!((train.len(), test.len(), train.side), (60_000, 10_000, 28));
    let mut counts = [0usize; 10];
    for &l in &test.labels {
        counts[l as usize] += 1;
    }
    assert_eq!(
        counts,
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
}
