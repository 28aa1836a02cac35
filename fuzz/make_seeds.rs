//! Writes the fuzz targets' seed corpus, valid files of each kind the readers take, into
//! fuzz/seeds/ (committed; tests/fuzz.rs checks that every seed still loads):
//! `cargo run --release --example make_fuzz_seeds`.
//!
//! - idx/: image files of 28x28 and 32x32 digits and a label file, plain and gzip. The
//!   pixels are a synthetic pattern, not MNIST.
//! - checkpoint/: a checkpoint as `train --save` writes it (seeded initial weights), and the
//!   same weights as plain safetensors without metadata or centres.
//! - http/: requests to `serve` in the form of `serve::wire`: every route, a pixel JSON
//!   body, a PNG and a JPEG of a synthetic digit.

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

    let http = root.join("http");
    let digit = image::GrayImage::from_fn(56, 56, |x, y| {
        image::Luma([if (x as i32 - y as i32 / 2 - 14).abs() < 4 {
            0
        } else {
            255
        }])
    });
    let picture = |format| {
        let mut b = std::io::Cursor::new(Vec::new());
        digit.write_to(&mut b, format).unwrap();
        b.into_inner()
    };
    let pixels: Vec<u8> = (0..784)
        .map(|i| if (i % 28) == 14 { 255 } else { 0 })
        .collect();
    let post = |ctype: &str, body: &[u8]| {
        [format!("POST /api/classify\n{ctype}\n").as_bytes(), body].concat()
    };
    let requests: [(&str, Vec<u8>); 9] = [
        ("page.req", b"GET /\n\n".to_vec()),
        ("model.req", b"GET /api/model\n\n".to_vec()),
        ("test-list.req", b"GET /api/test?misclassified\n\n".to_vec()),
        ("test-digit.req", b"GET /api/test/3\n\n".to_vec()),
        ("run.req", b"GET /api/run\n\n".to_vec()),
        (
            "pixels.req",
            post(
                "application/json",
                serde_json::json!({ "pixels": pixels })
                    .to_string()
                    .as_bytes(),
            ),
        ),
        (
            "png.req",
            post("image/png", &picture(image::ImageFormat::Png)),
        ),
        (
            "jpeg.req",
            post("image/jpeg", &picture(image::ImageFormat::Jpeg)),
        ),
        ("unknown.req", b"DELETE /api/x?y=1\n\n".to_vec()),
    ];
    for (name, bytes) in requests {
        write(&http, name, &bytes);
    }
}
