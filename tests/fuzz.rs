//! Mutation fuzzing of the two readers of untrusted files: the IDX reader (plain and gzip)
//! and the checkpoint loader. Each target runs for LENET_FUZZ_SECONDS (default 5; CI runs
//! 60) on random mutations of valid files (byte flips, truncations, insertions, header
//! fields set to extreme values) and asserts that every input gives Ok or Err, never a
//! panic. The number of executions is printed.

use flate2::{Compression, write::GzEncoder};
use lenet_gpu::{checkpoint, data, params};
use rand::{Rng, RngExt, SeedableRng};
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

fn budget() -> Duration {
    let s = std::env::var("LENET_FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5.0);
    Duration::from_secs_f64(s)
}

fn gz(b: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn mutate(rng: &mut impl Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..rng.random_range(1..4) {
        match rng.random_range(0..5) {
            0 if !v.is_empty() => {
                let i = rng.random_range(0..v.len());
                v[i] ^= 1 << rng.random_range(0..8);
            }
            1 => v.truncate(rng.random_range(0..=v.len())),
            2 => {
                let i = rng.random_range(0..=v.len());
                let junk: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
                v.splice(i..i, junk);
            }
            3 if v.len() >= 16 => {
                // A header field (count, rows, cols, or the safetensors header length) set to
                // an extreme value.
                let i = 4 * rng.random_range(0..4usize);
                let x: u32 =
                    [0, 1, 28, 32, 0x7fff_ffff, u32::MAX, rng.random()][rng.random_range(0..7)];
                v[i..i + 4].copy_from_slice(&x.to_be_bytes());
            }
            _ if !v.is_empty() => {
                let i = rng.random_range(0..v.len());
                v[i] = rng.random();
            }
            _ => {}
        }
    }
    v
}

/// Feeds mutations of `seeds` to `read` until the time budget is spent.
fn fuzz(name: &str, seeds: &[Vec<u8>], read: impl Fn(&Path)) {
    let dir = std::env::temp_dir().join(format!("lenet-fuzz-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("input");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0xf022);
    let (start, mut runs) = (Instant::now(), 0u64);
    while start.elapsed() < budget() {
        let seed = &seeds[rng.random_range(0..seeds.len())];
        let input = mutate(&mut rng, seed);
        std::fs::write(&file, &input).unwrap();
        if catch_unwind(AssertUnwindSafe(|| read(&file))).is_err() {
            let keep = dir.with_extension("crash");
            std::fs::write(&keep, &input).unwrap();
            panic!(
                "{name}: the reader panicked on an input kept in {}",
                keep.display()
            );
        }
        runs += 1;
    }
    println!(
        "{name}: {runs} executions in {:.0} s, no panic",
        start.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fuzz_idx_reader() {
    let mut img = vec![0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 28, 0, 0, 0, 28];
    img.extend((0..3 * 784).map(|i| (i % 256) as u8));
    let lab = vec![0, 0, 8, 1, 0, 0, 0, 3, 1, 7, 9];
    let seeds = vec![img.clone(), gz(&img), lab.clone(), gz(&lab)];
    fuzz("idx", &seeds, |p| {
        let _ = data::read_images(p);
        let _ = data::read_labels(p);
    });
}

#[test]
fn fuzz_checkpoint_loader() {
    let dir = std::env::temp_dir().join(format!("lenet-fuzz-seed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("seed.safetensors");
    let meta = checkpoint::Meta {
        epoch: 1,
        seed: 2,
        loss: "mse".into(),
        extra: Default::default(),
    };
    let opt = checkpoint::Optimizer {
        velocity: vec![0.5; params::N_PARAMS],
        eps: vec![1e-3; params::N_PARAMS],
    };
    checkpoint::save_training(
        &path,
        &params::init(1),
        &lenet_gpu::RBF_CENTERS,
        &meta,
        Some(&opt),
    )
    .unwrap();
    let seed = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    fuzz("checkpoint", &[seed], |p| {
        let _ = checkpoint::load(p);
    });
}
