//! Times the fast path's block passes in each build this CPU can run (portable, AVX2,
//! AVX-512), one thread, best of several rounds, so builds can be compared without the
//! noise of a whole training run: `cargo run --release --example cpu_builds`.

use lenet_gpu::cpu;
use lenet_gpu::cpu::fast::{self, Block, LANES, Simd, Weights};
use lenet_gpu::model::Loss;
use lenet_gpu::model::RBF_CENTERS;
use std::time::Instant;

fn main() {
    let p = lenet_gpu::model::params::init(1);
    let mut w3t = vec![0f32; 1500];
    fast::c3_transposed(&p, &mut w3t);
    let w = Weights { p: &p, w3t: &w3t };
    // Synthetic digits: a diagonal band per pattern.
    let img: Vec<Vec<u8>> = (0..LANES)
        .map(|l| {
            (0..784)
                .map(|i| {
                    let (r, c) = (i / 28, i % 28);
                    if (r - c - l as i32).abs() < 3 { 255 } else { 0 }
                })
                .collect()
        })
        .collect();
    let labels = [0u8, 1, 2, 3, 4, 5, 6, 7];
    let reps = 200;
    println!("per pattern, one thread, best of 7 rounds of {reps} blocks of {LANES}:");
    for s in Simd::available() {
        fast::with_simd(s, || {
            let mut b = Block::default();
            b.load(LANES, |l, x0| cpu::input_forward(&img[l], 28, x0));
            let mut g = vec![0f32; lenet_gpu::model::params::N_PARAMS];
            let (mut fwd, mut bwd) = (f64::MAX, f64::MAX);
            for _ in 0..7 {
                let t = Instant::now();
                for _ in 0..reps {
                    b.forward(w, &RBF_CENTERS);
                }
                fwd = fwd.min(t.elapsed().as_secs_f64());
                let t = Instant::now();
                for _ in 0..reps {
                    b.backward(w, &RBF_CENTERS, Loss::Mse, &labels, &mut g);
                }
                bwd = bwd.min(t.elapsed().as_secs_f64());
            }
            let per = |t: f64| t / (reps * LANES) as f64 * 1e6;
            let flop = lenet_gpu::bench::TRAIN_FLOP_PER_PATTERN as f64;
            println!(
                "  {:<9} forward {:6.2} us, backward {:6.2} us, step {:6.2} us = {:5.1} GFLOP/s",
                s.name(),
                per(fwd),
                per(bwd),
                per(fwd + bwd),
                flop / (per(fwd + bwd) * 1e3)
            );
            #[cfg(target_arch = "x86_64")]
            if s == Simd::Avx512 && std::env::args().any(|a| a == "--stages") {
                // SAFETY: this CPU runs the AVX-512 build (Simd::available).
                unsafe { stages(&mut b, w, reps) };
            }
        });
    }
}

/// Where the AVX-512 build's forward and backward time goes, stage by stage (each stage
/// compiled with the build's target features, as inside `Block`).
///
/// # Safety
/// The CPU must run the AVX-512 build (`Simd::available()` lists it).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
pub unsafe fn stages(b: &mut Block, w: Weights, reps: usize) {
    use lenet_gpu::cpu::fast::conv::{c1_backward, c1_forward, c3_backward, c3_forward};
    use lenet_gpu::cpu::fast::full::{c5_backward, c5_forward, f6_backward, f6_forward};
    use lenet_gpu::cpu::fast::squash_backward;
    use lenet_gpu::cpu::fast::subsample::{s2_backward, s2_forward, s4_backward, s4_forward};
    let mut g = vec![0f32; lenet_gpu::model::params::N_PARAMS];
    let mut t = |name: &str, f: &mut dyn FnMut(&mut Block, &mut [f32])| {
        let mut best = f64::MAX;
        for _ in 0..5 {
            let s = Instant::now();
            for _ in 0..reps {
                f(b, &mut g);
            }
            best = best.min(s.elapsed().as_secs_f64());
        }
        println!(
            "    {name:<22} {:6.2} us",
            best / (reps * LANES) as f64 * 1e6
        );
    };
    // The forward passes include their squashing.
    t("c1_forward", &mut |b, _| c1_forward(w.p, &b.x0, &mut b.x1));
    t("s2_forward", &mut |b, _| s2_forward(w.p, &b.x1, &mut b.x2));
    t("c3_forward", &mut |b, _| c3_forward(w.p, &b.x2, &mut b.x3));
    t("s4_forward", &mut |b, _| s4_forward(w.p, &b.x3, &mut b.x4));
    t("c5_forward", &mut |b, _| c5_forward(w.p, &b.x4, &mut b.x5));
    t("f6_forward", &mut |b, _| f6_forward(w.p, &b.x5, &mut b.x6));
    t("f6_backward", &mut |b, g| {
        f6_backward(w.p, &b.x5, &b.d6, g, &mut b.d5)
    });
    t("c5_backward", &mut |b, g| {
        c5_backward(w.p, &b.x4, &b.d5, g, &mut b.d4)
    });
    t("s4_backward", &mut |b, g| {
        s4_backward(w.p, &b.x3, &b.d4, g, &mut b.d3)
    });
    t("squash_backward x3", &mut |b, _| {
        squash_backward(&b.x3, &mut b.d3)
    });
    t("c3_backward", &mut |b, g| {
        c3_backward(&b.x2, w.w3t, &b.d3, g, &mut b.d2)
    });
    t("s2_backward", &mut |b, g| {
        s2_backward(w.p, &b.x1, &b.d2, g, &mut b.d1)
    });
    t("squash_backward x1", &mut |b, _| {
        squash_backward(&b.x1, &mut b.d1)
    });
    t("c1_backward", &mut |b, g| c1_backward(&b.x0, &b.d1, g));
}
