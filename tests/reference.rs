//! The CPU reference checked against independent computations in f64:
//! - first derivatives against central finite differences of the loss;
//! - second derivatives (a) for F6 and C5 against the exact Gauss-Newton diagonal
//!   J^T H J with the Jacobian by finite differences, (b) for every layer against a
//!   brute-force evaluation of the SDLM rule over an explicit list of connections.

mod common;

use lenet_gpu::cpu::{self, Workspace};
use lenet_gpu::model::Loss;
use lenet_gpu::model::RBF_CENTERS;
use lenet_gpu::model::params::{self, C3_TABLE, N_PARAMS, TENSORS, Tensor};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn centers() -> Vec<f64> {
    RBF_CENTERS.iter().map(|&v| v as f64).collect()
}

/// The shared test parameters (biases and subsampling terms drawn wider than at
/// initialisation, so no derivative is trivially zero), as f64.
fn test_params(seed: u64) -> Vec<f64> {
    common::test_params(seed)
        .iter()
        .map(|&v| v as f64)
        .collect()
}

/// Random images (some ink, some background) and labels.
fn patterns(seed: u64, n: usize) -> Vec<(Vec<f64>, usize)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let img: Vec<u8> = (0..784)
                .map(|_| {
                    if rng.random_bool(0.3) {
                        rng.random_range(0..=255u8)
                    } else {
                        0
                    }
                })
                .collect();
            let mut x0 = vec![0.0; 1024];
            cpu::input_forward(&img, 28, &mut x0);
            (x0, rng.random_range(0..10usize))
        })
        .collect()
}

fn loss_of(p: &[f64], pats: &[(Vec<f64>, usize)], loss: Loss) -> f64 {
    let c = centers();
    let mut ws = Workspace::<f64>::default();
    let mut dy = [0.0; 10];
    pats.iter()
        .map(|(x0, label)| {
            ws.x0.copy_from_slice(x0);
            cpu::pattern_forward(p, &c, &mut ws);
            cpu::loss_forward_backward(loss, &ws.y, *label, &mut dy)
        })
        .sum()
}

/// Indices to probe in a tensor: all of a small one, a seeded sample of a large one.
fn probe(t: Tensor, rng: &mut ChaCha8Rng, n: usize) -> Vec<usize> {
    if t.len <= n {
        t.range().collect()
    } else {
        (0..n)
            .map(|_| t.offset + rng.random_range(0..t.len))
            .collect()
    }
}

fn gradient_check(loss: Loss) {
    let p = test_params(11);
    let pats = patterns(12, 3);
    let c = centers();
    let mut g = vec![0.0; N_PARAMS];
    let mut ws = Workspace::<f64>::default();
    for (x0, label) in &pats {
        ws.x0.copy_from_slice(x0);
        cpu::pattern_forward(&p, &c, &mut ws);
        cpu::pattern_backward(&p, &c, loss, *label, &mut ws, &mut g);
    }
    // Central differences in f64: truncation error ~h^2 (1e-12), rounding ~1e-16*E/h
    // (~1e-9 for E ~ 100), so 1e-7 absolute + 1e-6 relative is a margin of ~100x.
    let (h, atol, rtol) = (1e-5, 1e-7, 1e-6);
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for t in TENSORS {
        let mut worst: f64 = 0.0;
        let mut fails = Vec::new();
        let mut nonzero = 0;
        for k in probe(t, &mut rng, 60) {
            let mut q = p.clone();
            q[k] = p[k] + h;
            let up = loss_of(&q, &pats, loss);
            q[k] = p[k] - h;
            let down = loss_of(&q, &pats, loss);
            let fd = (up - down) / (2.0 * h);
            let diff = (fd - g[k]).abs();
            worst = worst.max(diff);
            if fd.abs() > 1e-6 {
                nonzero += 1;
            }
            if diff > atol + rtol * fd.abs() {
                fails.push(format!(
                    "  {}[{}]: backward {:.9e}, finite difference {:.9e}",
                    t.name,
                    k - t.offset,
                    g[k],
                    fd
                ));
            }
        }
        println!("{loss:?} {:10}: max |backward - fd| = {worst:.2e}", t.name);
        assert!(
            fails.is_empty(),
            "{} mismatches in {}:\n{}",
            fails.len(),
            t.name,
            fails[..fails.len().min(5)].join("\n")
        );
        assert!(
            nonzero > 0,
            "{}: every probed derivative is zero; the check would prove nothing",
            t.name
        );
    }
}

#[test]
fn backward_matches_finite_differences_mse() {
    gradient_check(Loss::Mse);
}

#[test]
fn backward_matches_finite_differences_map() {
    gradient_check(Loss::Map { j: 1.5 });
}

/// The SDLM estimate of one pattern by the layer code.
fn sdlm(p: &[f64], x0: &[f64]) -> (Vec<f64>, Workspace<f64>) {
    let mut ws = Workspace::<f64>::default();
    ws.x0.copy_from_slice(x0);
    cpu::pattern_forward(p, &centers(), &mut ws);
    let p2: Vec<f64> = p.iter().map(|v| v * v).collect();
    let mut h = vec![0.0; N_PARAMS];
    cpu::pattern_hessian(&p2, &mut ws, &mut h);
    (h, ws)
}

/// Exact Gauss-Newton diagonal of E = y_D at parameter k: the RBF output is a sum of squares
/// of x6 - c_D, so H_out = 2 I and GN_kk = 2 * sum_j (dx6_j/dp_k)^2, with the Jacobian
/// column by central differences.
fn exact_gn(p: &[f64], x0: &[f64], k: usize) -> f64 {
    let c = centers();
    let h = 1e-5;
    let mut ws = Workspace::<f64>::default();
    ws.x0.copy_from_slice(x0);
    let mut q = p.to_vec();
    q[k] = p[k] + h;
    cpu::pattern_forward(&q, &c, &mut ws);
    let up = ws.x6.clone();
    q[k] = p[k] - h;
    cpu::pattern_forward(&q, &c, &mut ws);
    2.0 * up
        .iter()
        .zip(&ws.x6)
        .map(|(u, d)| ((u - d) / (2.0 * h)).powi(2))
        .sum::<f64>()
}

#[test]
fn hessian_equals_exact_gauss_newton_for_f6_and_c5() {
    let p = test_params(21);
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    for (x0, _) in patterns(23, 2) {
        let (h, _) = sdlm(&p, &x0);
        for t in [params::C5_W, params::C5_B, params::F6_W, params::F6_B] {
            let mut worst: f64 = 0.0;
            for k in probe(t, &mut rng, 40) {
                let gn = exact_gn(&p, &x0, k);
                let diff = (gn - h[k]).abs();
                worst = worst.max(diff / gn.abs().max(1e-12));
                // Finite-difference Jacobian: relative error ~1e-9; allow 1e-6.
                assert!(
                    diff <= 1e-12 + 1e-6 * gn.abs(),
                    "{}[{}]: SDLM {:.9e} vs exact Gauss-Newton {:.9e}",
                    t.name,
                    k - t.offset,
                    h[k],
                    gn
                );
            }
            println!(
                "{:10}: max relative |SDLM - exact GN| = {worst:.2e}",
                t.name
            );
        }
    }
}

/// One unit of the explicit network: bias parameter and (input unit, weight parameter) links.
struct Unit {
    bias: usize,
    links: Vec<(usize, usize)>,
}

/// LeNet-5 as explicit lists of units per layer (C1, S2, C3, S4, C5, F6), written from the
/// paper's description without the layer code's loops.
fn explicit_network() -> Vec<Vec<Unit>> {
    let conv = |cin: usize,
                hin: usize,
                reads: &dyn Fn(usize) -> Vec<usize>,
                cout: usize,
                w0: usize,
                b0: usize| {
        let ho = hin - 4;
        let mut units = Vec::new();
        let mut kernel = 0; // kernels are stored output map by output map, inputs in table order
        let mut first_kernel = Vec::new();
        for o in 0..cout {
            first_kernel.push(kernel);
            kernel += reads(o).len();
        }
        for (o, &first) in first_kernel.iter().enumerate() {
            for y in 0..ho {
                for x in 0..ho {
                    let mut links = Vec::new();
                    for (n, m) in reads(o).into_iter().enumerate() {
                        assert!(m < cin);
                        for ky in 0..5 {
                            for kx in 0..5 {
                                links.push((
                                    (m * hin + y + ky) * hin + x + kx,
                                    w0 + (first + n) * 25 + ky * 5 + kx,
                                ));
                            }
                        }
                    }
                    units.push(Unit {
                        bias: b0 + o,
                        links,
                    });
                }
            }
        }
        units
    };
    let sub = |c: usize, h: usize, w0: usize, b0: usize| {
        let mut units = Vec::new();
        for m in 0..c {
            for i in 0..h {
                for j in 0..h {
                    let links = [(0, 0), (0, 1), (1, 0), (1, 1)]
                        .iter()
                        .map(|(di, dj)| ((m * 2 * h + 2 * i + di) * 2 * h + 2 * j + dj, w0 + m))
                        .collect();
                    units.push(Unit {
                        bias: b0 + m,
                        links,
                    });
                }
            }
        }
        units
    };
    let f6: Vec<Unit> = (0..84)
        .map(|j| Unit {
            bias: params::F6_B.offset + j,
            links: (0..120)
                .map(|i| (i, params::F6_W.offset + j * 120 + i))
                .collect(),
        })
        .collect();
    vec![
        conv(
            1,
            32,
            &|_| vec![0],
            6,
            params::C1_W.offset,
            params::C1_B.offset,
        ),
        sub(6, 14, params::S2_W.offset, params::S2_B.offset),
        conv(
            6,
            14,
            &|o| C3_TABLE[o].to_vec(),
            16,
            params::C3_W.offset,
            params::C3_B.offset,
        ),
        sub(16, 5, params::S4_W.offset, params::S4_B.offset),
        conv(
            16,
            5,
            &|_| (0..16).collect(),
            120,
            params::C5_W.offset,
            params::C5_B.offset,
        ),
        f6,
    ]
}

#[test]
fn hessian_matches_brute_force_rule_on_every_layer() {
    let net = explicit_network();
    let links: usize = net.iter().flatten().map(|u| u.links.len()).sum();
    assert_eq!(
        links,
        117_600 + 4 * 1176 + 150_000 + 4 * 400 + 48_000 + 10_080
    );
    let p = test_params(31);
    let f = |a: f64| 1.7159 * (2.0 / 3.0 * a).tanh();
    let fp = |a: f64| 1.7159 * 2.0 / 3.0 * (1.0 - (2.0 / 3.0 * a).tanh().powi(2));
    let mut rng = ChaCha8Rng::seed_from_u64(32);
    for (x0, _) in patterns(33, 2) {
        // Forward over the explicit connections, keeping pre-activations.
        let mut xs = vec![x0.clone()];
        let mut pre = Vec::new();
        for layer in &net {
            let xin = xs.last().unwrap();
            let a: Vec<f64> = layer
                .iter()
                .map(|u| p[u.bias] + u.links.iter().map(|&(j, k)| p[k] * xin[j]).sum::<f64>())
                .collect();
            xs.push(a.iter().map(|&v| f(v)).collect());
            pre.push(a);
        }
        let (h, ws) = sdlm(&p, &x0);
        let fwd = ws
            .x6
            .iter()
            .zip(&xs[6])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            fwd < 1e-12,
            "explicit forward differs from the layer code by {fwd:e}"
        );
        // The rule: d2E/dx6^2 = 2; d2a = f'(a)^2 d2x; d2x_j += w^2 d2a_i; h_k += x_j^2 d2a_i.
        let mut brute = vec![0.0; N_PARAMS];
        let mut d2x = vec![2.0; 84];
        for l in (0..6).rev() {
            let mut d2x_in = vec![0.0; xs[l].len()];
            for (i, u) in net[l].iter().enumerate() {
                let d2a = fp(pre[l][i]).powi(2) * d2x[i];
                brute[u.bias] += d2a;
                for &(j, k) in &u.links {
                    brute[k] += xs[l][j].powi(2) * d2a;
                    d2x_in[j] += p[k].powi(2) * d2a;
                }
            }
            d2x = d2x_in;
        }
        for t in TENSORS {
            let mut worst: f64 = 0.0;
            for k in t.range() {
                let d = (h[k] - brute[k]).abs() / brute[k].abs().max(1e-300);
                worst = worst.max(d);
                assert!(
                    h[k] >= 0.0,
                    "{}[{}] = {} is negative",
                    t.name,
                    k - t.offset,
                    h[k]
                );
                assert!(
                    (h[k] - brute[k]).abs() <= 1e-10 * brute[k].abs() + 1e-300,
                    "{}[{}]: layer code {:.12e}, brute force {:.12e}",
                    t.name,
                    k - t.offset,
                    h[k],
                    brute[k]
                );
            }
            // How far the rule (which drops cross terms) is from the exact Gauss-Newton
            // diagonal: printed, not asserted; equal for C5 and F6, not for shared weights.
            let ratios: Vec<f64> = probe(t, &mut rng, 8)
                .iter()
                .map(|&k| h[k] / exact_gn(&p, &x0, k))
                .collect();
            let mut r = ratios.clone();
            r.sort_by(f64::total_cmp);
            println!(
                "{:10}: rule = brute force (max rel diff {worst:.1e}); rule / exact GN: min {:.3} median {:.3} max {:.3}",
                t.name,
                r[0],
                r[r.len() / 2],
                r[r.len() - 1]
            );
        }
    }
}

/// The batch is split into fixed chunks whose sums are added in order, so the weights after
/// training do not depend on how many threads ran it.
#[test]
fn cpu_training_is_independent_of_thread_count() {
    use lenet_gpu::backend::Backend;
    let n = 64;
    let images: Vec<u8> = (0..n * 784)
        .map(|i| ((i * 2654435761usize) >> 13) as u8)
        .collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let set = std::sync::Arc::new(lenet_gpu::data::Dataset {
        images,
        labels,
        side: 28,
    });
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut b = lenet_gpu::cpu::batch::CpuBackend::reference(
                set.clone(),
                set.clone(),
                Loss::Mse,
                0.5,
            );
            b.set_params(&params::init(4)).unwrap();
            let h = b.hessian(&(0..32).collect::<Vec<u32>>()).unwrap();
            b.set_step_sizes(&lenet_gpu::train::step_sizes(&h, 2e-5, 0.02))
                .unwrap();
            b.train(&(0..n as u32).rev().collect::<Vec<u32>>(), 32)
                .unwrap();
            b.params().unwrap()
        })
    };
    let (one, two, three) = (run(1), run(2), run(3));
    assert!(
        one.iter()
            .zip(&two)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "1 vs 2 threads differ"
    );
    assert!(
        one.iter()
            .zip(&three)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "1 vs 3 threads differ"
    );
    assert_ne!(one, params::init(4));
}
