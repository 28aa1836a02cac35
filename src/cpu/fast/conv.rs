//! Convolution family, fast path: C1 and C3 as im2col + GEMM over a block of LANES
//! patterns (C5, whose kernels cover its whole input, is a dense layer in `full`).
//!
//! In the lane-major layout, row (m, ky, kx) of the im2col matrix holds input map m at
//! (oy + ky, ox + kx) for every output position (oy, ox) and lane; each output row oy of it
//! is a contiguous run of `ho * LANES` values of the input, so im2col is a series of
//! copies and col2im a series of vector additions.

use super::{L, add_row_sums, gemm, squash_fast};
use crate::params::{self, C3_TABLE};

const K: usize = 5;

/// x: (maps, hin*hin L) -> cols: (maps*25, ho*ho L), ho = hin - 4.
#[inline(always)]
pub fn im2col(x: &[f32], maps: usize, hin: usize, cols: &mut [f32]) {
    let ho = hin - K + 1;
    let run = ho * L;
    for m in 0..maps {
        for ky in 0..K {
            for kx in 0..K {
                let row = &mut cols[((m * K + ky) * K + kx) * ho * run..][..ho * run];
                for oy in 0..ho {
                    let src = ((m * hin + oy + ky) * hin + kx) * L;
                    row[oy * run..(oy + 1) * run].copy_from_slice(&x[src..src + run]);
                }
            }
        }
    }
}

/// The adjoint of `im2col`: dcols: (maps*25, ho*ho L) -> dx: (maps, hin*hin L), overwritten.
#[inline(always)]
pub fn col2im(dcols: &[f32], maps: usize, hin: usize, dx: &mut [f32]) {
    let ho = hin - K + 1;
    let run = ho * L;
    dx.fill(0.0);
    for m in 0..maps {
        for ky in 0..K {
            for kx in 0..K {
                let row = &dcols[((m * K + ky) * K + kx) * ho * run..][..ho * run];
                for oy in 0..ho {
                    let dst = ((m * hin + oy + ky) * hin + kx) * L;
                    for (d, &v) in dx[dst..dst + run].iter_mut().zip(&row[oy * run..]) {
                        *d += v;
                    }
                }
            }
        }
    }
}

/// a: (maps, n) pre-activations without bias -> x = f(a + b[map]) in place.
#[inline(always)]
fn bias_squash(a: &mut [f32], b: &[f32]) {
    let n = a.len() / b.len();
    for (row, &bm) in a.chunks_exact_mut(n).zip(b) {
        for v in row {
            *v = squash_fast(*v + bm);
        }
    }
}

/// x0: (1024 L) -> cols1: (25, 784 L)
#[inline(always)]
pub fn c1_im2col(x0: &[f32], cols1: &mut [f32]) {
    im2col(x0, 1, 32, cols1);
}

/// cols1: (25, 784 L) -> x1: (6, 784 L) = f(W1 cols1 + b1), W1: (6,25)
#[inline(always)]
pub fn c1_forward(p: &[f32], cols1: &[f32], x1: &mut [f32]) {
    let n = 784 * L;
    gemm((6, 25, n), params::C1_W.of(p), (25, 1), cols1, (n, 1), 0.0, x1, n);
    bias_squash(x1, params::C1_B.of(p));
}

/// da1: (6, 784 L): dE/dW1 += da1 cols1^T, dE/db1 += row sums. (No input gradient.)
#[inline(always)]
pub fn c1_backward(cols1: &[f32], da1: &[f32], g: &mut [f32]) {
    let n = 784 * L;
    gemm((6, n, 25), da1, (n, 1), cols1, (1, n), 1.0, params::C1_W.of_mut(g), 25);
    add_row_sums(da1, 6, params::C1_B.of_mut(g));
}

/// x2: (6, 196 L) -> cols2: (150, 100 L)
#[inline(always)]
pub fn c3_im2col(x2: &[f32], cols2: &mut [f32]) {
    im2col(x2, 6, 14, cols2);
}

/// cols2: (150, 100 L) -> x3: (16, 100 L) = f(W3 cols2 + b3), W3: (16,150) dense.
#[inline(always)]
pub fn c3_forward(p: &[f32], w3: &[f32], cols2: &[f32], x3: &mut [f32]) {
    let n = 100 * L;
    gemm((16, 150, n), w3, (150, 1), cols2, (n, 1), 0.0, x3, n);
    bias_squash(x3, params::C3_B.of(p));
}

/// da3: (16, 100 L) -> dE/dW3 (the table's links only) and dE/db3 added into g; dx2:
/// (6, 196 L) overwritten with dE/dx2. `w3grad` (16,150) and `dcols2` (150, 100 L) are
/// scratch.
#[inline(always)]
pub fn c3_backward(
    w3: &[f32],
    cols2: &[f32],
    da3: &[f32],
    g: &mut [f32],
    w3grad: &mut [f32],
    dcols2: &mut [f32],
    dx2: &mut [f32],
) {
    let n = 100 * L;
    gemm((16, n, 150), da3, (n, 1), cols2, (1, n), 0.0, w3grad, 150);
    let gw = params::C3_W.of_mut(g);
    for (o, ins) in C3_TABLE.iter().enumerate() {
        for (li, &m) in ins.iter().enumerate() {
            let link = params::c3_link_start(o) + li;
            let src = &w3grad[o * 150 + m * 25..o * 150 + m * 25 + 25];
            for (d, &v) in gw[link * 25..link * 25 + 25].iter_mut().zip(src) {
                *d += v;
            }
        }
    }
    add_row_sums(da3, 16, params::C3_B.of_mut(g));
    gemm((150, 16, n), w3, (1, 150), da3, (n, 1), 0.0, dcols2, n);
    col2im(dcols2, 6, 14, dx2);
}
