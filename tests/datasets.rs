//! Any IDX dataset of 28x28 images in 10 classes trains the same way (Fashion-MNIST, KMNIST):
//! here a small one made by the test, with transposed MNIST images and relabelled classes.

mod common;

use std::io::Write;

fn write_idx(path: &std::path::Path, magic: u32, dims: &[u32], body: &[u8]) {
    let mut f = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    );
    f.write_all(&magic.to_be_bytes()).unwrap();
    for d in dims {
        f.write_all(&d.to_be_bytes()).unwrap();
    }
    f.write_all(body).unwrap();
    f.finish().unwrap();
}

#[test]
fn trains_on_another_idx_dataset() {
    let (train, test) = lenet_gpu::data::load_mnist(&common::mnist_dir()).unwrap();
    let dir = std::env::temp_dir().join(format!("lenet-other-data-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (set, n, img_name, lab_name) in [
        (
            &train,
            3000usize,
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
        ),
        (
            &test,
            500,
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ),
    ] {
        let mut images = Vec::with_capacity(n * 784);
        for i in 0..n {
            let img = set.image(i);
            images.extend((0..784).map(|k| img[(k % 28) * 28 + k / 28])); // transposed
        }
        let labels: Vec<u8> = set.labels[..n].iter().map(|&l| (l + 3) % 10).collect();
        write_idx(&dir.join(img_name), 0x803, &[n as u32, 28, 28], &images);
        write_idx(&dir.join(lab_name), 0x801, &[n as u32], &labels);
    }
    let out = common::bin()
        .args([
            "train",
            "--backend",
            "cpu",
            "--epochs",
            "2",
            "--batch",
            "1",
            "--schedule",
            "1:5e-5,2:1.5e-4",
            "--data",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(text.contains("3000 training, 500 test images"), "{text}");
    let err: f64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("done: test error ")?
                .split('%')
                .next()?
                .parse()
                .ok()
        })
        .unwrap();
    // It learns the relabelled, transposed digits as well as the originals (about 10% error
    // after 2 passes over 2,000 originals).
    assert!(err < 15.0, "test error {err}%");
    let _ = std::fs::remove_dir_all(&dir);
}
