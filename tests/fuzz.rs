//! Mutation fuzzing of the two readers of untrusted files: the IDX reader (plain and gzip)
//! and the checkpoint loader. Each target runs for LENET_FUZZ_SECONDS (default 5; CI runs
//! 60) on random mutations of valid files (byte flips, truncations, insertions, header
//! fields set to extreme values) and asserts that every input gives Ok or Err, never a
//! panic. The number of executions is printed.

use flate2::{Compression, write::GzEncoder};
use lenet_gpu::model::params;
use lenet_gpu::{checkpoint, data};
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
        &lenet_gpu::model::RBF_CENTERS,
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

/// The files of a folder of the fuzz corpus (fuzz/seeds/<target>, fuzz/regressions/<target>).
fn corpus(kind: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".gitkeep"))
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    out
}

/// The coverage-guided fuzzers' seeds (fuzz/make_seeds.rs) are valid files: each is read
/// without error by the reader its target fuzzes, so libFuzzer starts from inputs that
/// reach past the first check.
#[test]
fn fuzz_seeds_are_valid_files() {
    let idx = corpus("seeds", "idx");
    assert!(idx.len() >= 4, "{idx:?}");
    for (name, bytes) in &idx {
        let p = Path::new(name);
        let ok = if name.contains("labels") {
            data::parse_labels(bytes, p).map(|_| ())
        } else {
            data::parse_images(bytes, p).map(|_| ())
        };
        ok.unwrap_or_else(|e| panic!("{e}"));
    }
    let ck = corpus("seeds", "checkpoint");
    assert!(ck.len() >= 2);
    for (name, bytes) in &ck {
        let plain = name.contains("plain");
        let c = checkpoint::parse(bytes, plain).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(c.params, params::init(1), "{name}");
        if plain {
            // Without metadata the strict loader refuses it, with a reason.
            let e = checkpoint::parse(bytes, false).unwrap_err();
            assert!(e.contains("__metadata__"), "{e}");
        }
    }
}

/// The server's seeds are requests the router answers, every route of the API among them.
#[test]
fn http_seeds_reach_every_route() {
    use lenet_gpu::serve::{fuzz_served, router, wire};
    let served = std::sync::Arc::new(fuzz_served());
    let seeds = corpus("seeds", "http");
    assert!(seeds.len() >= 9, "{seeds:?}");
    let mut ok = 0;
    for (name, bytes) in &seeds {
        let req = wire::parse(bytes).unwrap_or_else(|| panic!("{name}: not a request"));
        let (status, body) = wire::answer(router(served.clone()), req);
        if name.contains("unknown") {
            assert_eq!(status, 404, "{name}");
        } else if name.contains("run") {
            // The fuzz target's server follows no run log.
            assert_eq!(status, 404, "{name}");
        } else {
            assert_eq!(status, 200, "{name}: {}", String::from_utf8_lossy(&body));
            ok += 1;
        }
    }
    assert!(ok >= 7);
}

/// Every input a coverage-guided fuzzer ever crashed on (fuzz/regressions/) gives Ok or an
/// error now, never a panic.
#[test]
fn fuzz_regressions_do_not_panic() {
    let mut n = 0;
    for (name, bytes) in corpus("regressions", "idx") {
        let p = Path::new(&name);
        let r = catch_unwind(AssertUnwindSafe(|| {
            let _ = data::parse_images(&bytes, p);
            let _ = data::parse_labels(&bytes, p);
        }));
        assert!(r.is_ok(), "{name}: the IDX reader panicked");
        n += 1;
    }
    for (name, bytes) in corpus("regressions", "checkpoint") {
        let r = catch_unwind(AssertUnwindSafe(|| {
            let _ = checkpoint::parse(&bytes, false);
            let _ = checkpoint::parse(&bytes, true);
        }));
        assert!(r.is_ok(), "{name}: the checkpoint loader panicked");
        n += 1;
    }
    let served = std::sync::Arc::new(lenet_gpu::serve::fuzz_served());
    for (name, bytes) in corpus("regressions", "http") {
        let r = catch_unwind(AssertUnwindSafe(|| {
            if let Some(req) = lenet_gpu::serve::wire::parse(&bytes) {
                let _ =
                    lenet_gpu::serve::wire::answer(lenet_gpu::serve::router(served.clone()), req);
            }
        }));
        assert!(r.is_ok(), "{name}: the server panicked");
        n += 1;
    }
    println!("{n} regression inputs");
}
