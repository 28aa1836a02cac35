//! Fully connected family, fast path: C5 (400 -> 120) and F6 (120 -> 84) as GEMMs over a
//! block of LANES patterns. x: (n_in, L) and y: (n_out, L) are lane-major, W: (n_out, n_in)
//! row-major as in the flat parameter buffer.

use super::{L, add_row_sums, gemm, squash_fast};
use crate::params;

/// y = f(W x + b)
#[inline(always)]
pub fn dense_forward(w: &[f32], b: &[f32], x: &[f32], y: &mut [f32]) {
    dense_forward_wide(w, b, x, y, (L, L));
}

/// The same for the first n of `cap` lanes: x: (n_in, cap) -> y: (n_out, cap) (`Wide`).
#[inline(always)]
pub fn dense_forward_wide(
    w: &[f32],
    b: &[f32],
    x: &[f32],
    y: &mut [f32],
    (n, cap): (usize, usize),
) {
    let (n_in, n_out) = (x.len() / cap, y.len() / cap);
    gemm((n_out, n_in, n), w, (n_in, 1), x, (cap, 1), 0.0, y, cap);
    for (row, &bj) in y.chunks_exact_mut(cap).zip(b) {
        for v in &mut row[..n] {
            *v = squash_fast(*v + bj);
        }
    }
}

/// Given da: (n_out, L): dE/dW += da x^T, dE/db += row sums, dx: (n_in, L) = W^T da
/// (overwritten).
#[inline(always)]
pub fn dense_backward(
    w: &[f32],
    x: &[f32],
    da: &[f32],
    gw: &mut [f32],
    gb: &mut [f32],
    dx: &mut [f32],
) {
    let (n_in, n_out) = (x.len() / L, da.len() / L);
    gemm((n_out, L, n_in), da, (L, 1), x, (1, L), 1.0, gw, n_in);
    add_row_sums(da, n_out, gb);
    gemm((n_in, n_out, L), w, (1, n_in), da, (L, 1), 0.0, dx, L);
}

/// x4: (400, L) -> x5: (120, L)
#[inline(always)]
pub fn c5_forward(p: &[f32], x4: &[f32], x5: &mut [f32]) {
    dense_forward(params::C5_W.of(p), params::C5_B.of(p), x4, x5);
}
/// da5: (120, L) -> dx4: (400, L), gradients added into g.
#[inline(always)]
pub fn c5_backward(p: &[f32], x4: &[f32], da5: &[f32], g: &mut [f32], dx4: &mut [f32]) {
    let (gw, gb) = crate::cpu::conv::split2(g, params::C5_W, params::C5_B);
    dense_backward(params::C5_W.of(p), x4, da5, gw, gb, dx4);
}

/// x5: (120, L) -> x6: (84, L)
#[inline(always)]
pub fn f6_forward(p: &[f32], x5: &[f32], x6: &mut [f32]) {
    dense_forward(params::F6_W.of(p), params::F6_B.of(p), x5, x6);
}
/// da6: (84, L) -> dx5: (120, L), gradients added into g.
#[inline(always)]
pub fn f6_backward(p: &[f32], x5: &[f32], da6: &[f32], g: &mut [f32], dx5: &mut [f32]) {
    let (gw, gb) = crate::cpu::conv::split2(g, params::F6_W, params::F6_B);
    dense_backward(params::F6_W.of(p), x5, da6, gw, gb, dx5);
}
