//! Writes the fuzz targets' seed corpus, valid files of each kind the readers take, into
//! fuzz/seeds/ (committed; tests/fuzz.rs checks that every seed still loads):
//! `cargo run --release --example make_fuzz_seeds`.
//!
//! - idx/: image files of 28x28 and 32x32 digits and a label file, plain and gzip. The
//!   pixels are a synthetic pattern, not MNIST.
//! - checkpoint/: a checkpoint as `train --save` writes it (seeded initial weights), and the
//!   same weights as plain safetensors without metadata or centres.

use flate2::{Compression, write::GzEncoder};
use lenet_gpu::checkpoint;
use lenet_gpu::model::params;
use std::io::Write;
use std::path::Path;

fn gz(b: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::best());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn images(n: u32, side: u32) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 3];
    for x in [n, side, side] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    // A stroke-like diagonal band per image, so the body is neither constant nor random.
    for i in 0..n {
        for r in 0..side {
            for c in 0..side {
                let d = (r as i32 - c as i32 - i as i32).unsigned_abs();
                v.push(if d < 3 { 255 - 60 * d as u8 } else { 0 });
            }
        }
    }
    v
}

fn labels(l: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 1];
    v.extend_from_slice(&(l.len() as u32).to_be_bytes());
    v.extend_from_slice(l);
    v
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
    println!("{} ({} bytes)", dir.join(name).display(), bytes.len());
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let idx = root.join("idx");
    let img28 = images(2, 28);
    let img32 = images(1, 32);
    let lab = labels(&[3, 9]);
    write(&idx, "images-28.idx", &img28);
    write(&idx, "images-28.idx.gz", &gz(&img28));
    write(&idx, "images-32.idx", &img32);
    write(&idx, "labels.idx", &lab);
    write(&idx, "labels.idx.gz", &gz(&lab));

    let ck = root.join("checkpoint");
    std::fs::create_dir_all(&ck).unwrap();
    let meta = checkpoint::Meta {
        epoch: 1,
        seed: 1,
        loss: "mse".into(),
        extra: [("batch".to_string(), "16".to_string())].into(),
    };
    let p = params::init(1);
    let full = ck.join("checkpoint.safetensors");
    checkpoint::save(&full, &p, &lenet_gpu::model::RBF_CENTERS, &meta).unwrap();
    println!("{}", full.display());
    // The same tensors without metadata or centres: what a PyTorch `save_file` gives.
    let bytes = std::fs::read(&full).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let views: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != checkpoint::CENTERS_NAME)
        .collect();
    let plain = safetensors::serialize(views, None).unwrap();
    write(&ck, "plain-weights.safetensors", &plain);
}
