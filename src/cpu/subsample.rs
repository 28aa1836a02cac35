//! Subsampling family: S2 and S4. Each output unit sums a 2x2 block of its input map
//! (stride 2), multiplies by the map's trainable coefficient, adds the map's bias and
//! squashes: `a = coef[c] * (x00 + x01 + x10 + x11) + bias[c]`.
//!
//! The coefficient is one weight shared by the 4 connections of each unit, so its SDLM
//! term is sum over units of d2E/da^2 * (sum of the 4 squared inputs), and each input's
//! second derivative gets coef^2 * d2E/da^2: again the backward pass with squared inputs
//! and squared parameters.

use super::{Real, conv::split2, squash};
use crate::model::params;

/// x: (c, 2h, 2h) -> y: (c, h, h)
pub fn subsample_forward<T: Real>(
    x: &[T],
    c: usize,
    h: usize,
    coef: &[T],
    bias: &[T],
    y: &mut [T],
) {
    let hin = 2 * h;
    for m in 0..c {
        let xm = &x[m * hin * hin..(m + 1) * hin * hin];
        for i in 0..h {
            for j in 0..h {
                let s = xm[2 * i * hin + 2 * j]
                    + xm[2 * i * hin + 2 * j + 1]
                    + xm[(2 * i + 1) * hin + 2 * j]
                    + xm[(2 * i + 1) * hin + 2 * j + 1];
                y[(m * h + i) * h + j] = squash(coef[m] * s + bias[m]);
            }
        }
    }
}

/// da: (c, h, h) -> gcoef, gbias (added), dx: (c, 2h, 2h) (added).
#[allow(clippy::too_many_arguments)]
pub fn subsample_backward<T: Real>(
    x: &[T],
    c: usize,
    h: usize,
    coef: &[T],
    da: &[T],
    gcoef: &mut [T],
    gbias: &mut [T],
    dx: &mut [T],
) {
    let hin = 2 * h;
    for m in 0..c {
        let xm = &x[m * hin * hin..(m + 1) * hin * hin];
        let dxm = &mut dx[m * hin * hin..(m + 1) * hin * hin];
        let (mut sc, mut sb) = (T::zero(), T::zero());
        for i in 0..h {
            for j in 0..h {
                let d = da[(m * h + i) * h + j];
                let idx = [
                    2 * i * hin + 2 * j,
                    2 * i * hin + 2 * j + 1,
                    (2 * i + 1) * hin + 2 * j,
                    (2 * i + 1) * hin + 2 * j + 1,
                ];
                let mut s = T::zero();
                for k in idx {
                    s += xm[k];
                    dxm[k] += coef[m] * d;
                }
                sc += d * s;
                sb += d;
            }
        }
        gcoef[m] += sc;
        gbias[m] += sb;
    }
}

/// x1: (6,28,28) -> x2: (6,14,14)
pub fn s2_forward<T: Real>(p: &[T], x1: &[T], x2: &mut [T]) {
    subsample_forward(x1, 6, 14, params::S2_W.of(p), params::S2_B.of(p), x2);
}
/// da2: (6,14,14) -> dx1: (6,28,28) (written), gradients added into g.
pub fn s2_backward<T: Real>(p: &[T], x1: &[T], da2: &[T], g: &mut [T], dx1: &mut [T]) {
    dx1.fill(T::zero());
    let (gc, gb) = split2(g, params::S2_W, params::S2_B);
    subsample_backward(x1, 6, 14, params::S2_W.of(p), da2, gc, gb, dx1);
}
pub fn s2_hessian<T: Real>(p2: &[T], x1sq: &[T], d2a2: &[T], h: &mut [T], d2x1: &mut [T]) {
    s2_backward(p2, x1sq, d2a2, h, d2x1);
}

/// x3: (16,10,10) -> x4: (16,5,5)
pub fn s4_forward<T: Real>(p: &[T], x3: &[T], x4: &mut [T]) {
    subsample_forward(x3, 16, 5, params::S4_W.of(p), params::S4_B.of(p), x4);
}
/// da4: (16,5,5) -> dx3: (16,10,10) (written), gradients added into g.
pub fn s4_backward<T: Real>(p: &[T], x3: &[T], da4: &[T], g: &mut [T], dx3: &mut [T]) {
    dx3.fill(T::zero());
    let (gc, gb) = split2(g, params::S4_W, params::S4_B);
    subsample_backward(x3, 16, 5, params::S4_W.of(p), da4, gc, gb, dx3);
}
pub fn s4_hessian<T: Real>(p2: &[T], x3sq: &[T], d2a4: &[T], h: &mut [T], d2x3: &mut [T]) {
    s4_backward(p2, x3sq, d2a4, h, d2x3);
}
