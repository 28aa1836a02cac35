//! Subsampling family, fast path: S2 and S4 over a block of LANES patterns, the
//! reference's arithmetic per lane (same order of the four additions).

use super::{L, reduce_lanes, squash_in_place};
use crate::model::params;

/// x: (c, 2h*2h L) -> y: (c, h*h L)
#[inline(always)]
pub fn subsample_forward(x: &[f32], c: usize, h: usize, coef: &[f32], bias: &[f32], y: &mut [f32]) {
    let hin = 2 * h;
    for m in 0..c {
        for i in 0..h {
            let r0 = &x[(m * hin + 2 * i) * hin * L..][..hin * L];
            let r1 = &x[(m * hin + 2 * i + 1) * hin * L..][..hin * L];
            for j in 0..h {
                let out = &mut y[((m * h + i) * h + j) * L..][..L];
                for l in 0..L {
                    let s = r0[2 * j * L + l]
                        + r0[(2 * j + 1) * L + l]
                        + r1[2 * j * L + l]
                        + r1[(2 * j + 1) * L + l];
                    out[l] = coef[m] * s + bias[m];
                }
            }
        }
    }
    squash_in_place(y);
}

/// da: (c, H*H L) -> gcoef, gbias (added), dx: (c, 2H*2H L) (overwritten: every input
/// unit feeds exactly one output unit). H is a constant so that the loop over a row
/// unrolls into vector code (as a plain loop it is vectorised across j, with gathers).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn subsample_backward<const H: usize>(
    x: &[f32],
    c: usize,
    coef: &[f32],
    da: &[f32],
    gcoef: &mut [f32],
    gbias: &mut [f32],
    dx: &mut [f32],
) {
    let hin = 2 * H;
    for m in 0..c {
        let (mut sc, mut sb) = ([0f32; L], [0f32; L]);
        for i in 0..H {
            let (top, bottom) = ((m * hin + 2 * i) * hin * L, (m * hin + 2 * i + 1) * hin * L);
            let d = &da[(m * H + i) * H * L..][..H * L];
            let (xt, xb) = (&x[top..][..hin * L], &x[bottom..][..hin * L]);
            let (dt, db) = dx[top..bottom + hin * L].split_at_mut(hin * L);
            let db = &mut db[..hin * L];
            for j in 0..H {
                let dv: &[f32; L] = d[j * L..(j + 1) * L].try_into().unwrap();
                for l in 0..L {
                    let (a, b) = (2 * j * L + l, (2 * j + 1) * L + l);
                    let s = xt[a] + xt[b] + xb[a] + xb[b];
                    sc[l] += dv[l] * s;
                    sb[l] += dv[l];
                    let g = coef[m] * dv[l];
                    dt[a] = g;
                    dt[b] = g;
                    db[a] = g;
                    db[b] = g;
                }
            }
        }
        gcoef[m] += reduce_lanes(&sc);
        gbias[m] += reduce_lanes(&sb);
    }
}

/// x1: (6, 784 L) -> x2: (6, 196 L)
#[inline(always)]
pub fn s2_forward(p: &[f32], x1: &[f32], x2: &mut [f32]) {
    subsample_forward(x1, 6, 14, params::S2_W.of(p), params::S2_B.of(p), x2);
}
/// da2: (6, 196 L) -> dx1: (6, 784 L) (written), gradients added into g.
#[inline(always)]
pub fn s2_backward(p: &[f32], x1: &[f32], da2: &[f32], g: &mut [f32], dx1: &mut [f32]) {
    let (gc, gb) = crate::cpu::conv::split2(g, params::S2_W, params::S2_B);
    subsample_backward::<14>(x1, 6, params::S2_W.of(p), da2, gc, gb, dx1);
}

/// x3: (16, 100 L) -> x4: (16, 25 L) = (400, L)
#[inline(always)]
pub fn s4_forward(p: &[f32], x3: &[f32], x4: &mut [f32]) {
    subsample_forward(x3, 16, 5, params::S4_W.of(p), params::S4_B.of(p), x4);
}
/// da4: (400, L) -> dx3: (16, 100 L) (written), gradients added into g.
#[inline(always)]
pub fn s4_backward(p: &[f32], x3: &[f32], da4: &[f32], g: &mut [f32], dx3: &mut [f32]) {
    let (gc, gb) = crate::cpu::conv::split2(g, params::S4_W, params::S4_B);
    subsample_backward::<5>(x3, 16, params::S4_W.of(p), da4, gc, gb, dx3);
}
