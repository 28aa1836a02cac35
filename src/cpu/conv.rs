//! Convolution family: C1, C3 and C5. All three are 5x5 "valid" convolutions with one bias
//! per output map, followed by the squashing function; they differ only in which input
//! maps each output map reads (`maps[o]`). Weights are stored link by link: output map `o`
//! has `maps[o].len()` kernels of 25 weights, starting after those of maps `0..o`, so C1 and
//! C5 use PyTorch's `[out, in, 5, 5]` order and C3 the compact table order of `params`.
//!
//! Each layer has three passes, named like their WGSL twins:
//! - `<layer>_forward`: x_out = f(conv(x_in, w) + b)
//! - `<layer>_backward`: given dE/da (pre-activation), accumulate dE/dw, dE/db and
//!   (optionally) add dE/dx_in
//! - `<layer>_hessian`: the SDLM second-derivative pass. By the rule of docs/design.md section 2.1
//!   it is exactly the backward pass with every weight and every input squared, so it is
//!   that, called with squared arguments.

use super::{Real, dense_backward, dense_forward, dot, squash};
use crate::model::params::{self, C3_TABLE};

const K: usize = 5;

/// C1 reads the single input map.
pub const C1_MAPS: [&[usize]; 6] = [&[0]; 6];
/// C5 reads all 16 S4 maps.
pub const C5_MAPS: [&[usize]; 120] = [&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]; 120];

/// y = f(conv(x, w) + b), x: (cin, hin, hin), y: (maps.len(), hin-4, hin-4).
pub fn conv_forward<T: Real>(
    x: &[T],
    hin: usize,
    maps: &[&[usize]],
    w: &[T],
    b: &[T],
    y: &mut [T],
) {
    let ho = hin - K + 1;
    let mut link = 0;
    for (o, ins) in maps.iter().enumerate() {
        let out = &mut y[o * ho * ho..(o + 1) * ho * ho];
        out.fill(b[o]);
        for &m in ins.iter() {
            let xm = &x[m * hin * hin..(m + 1) * hin * hin];
            let wk = &w[link * K * K..(link + 1) * K * K];
            for ky in 0..K {
                for kx in 0..K {
                    let wv = wk[ky * K + kx];
                    for oy in 0..ho {
                        let xrow = &xm[(oy + ky) * hin + kx..(oy + ky) * hin + kx + ho];
                        let orow = &mut out[oy * ho..(oy + 1) * ho];
                        for (o, &xv) in orow.iter_mut().zip(xrow) {
                            *o += wv * xv;
                        }
                    }
                }
            }
            link += 1;
        }
        for v in out.iter_mut() {
            *v = squash(*v);
        }
    }
}

/// Given da = dE/da: (maps.len(), ho, ho), add dE/dw into gw, dE/db into gb and, when
/// `dx` is given, dE/dx into dx: (cin, hin, hin).
#[allow(clippy::too_many_arguments)]
pub fn conv_backward<T: Real>(
    x: &[T],
    hin: usize,
    maps: &[&[usize]],
    w: &[T],
    da: &[T],
    gw: &mut [T],
    gb: &mut [T],
    mut dx: Option<&mut [T]>,
) {
    let ho = hin - K + 1;
    let mut link = 0;
    for (o, ins) in maps.iter().enumerate() {
        let dao = &da[o * ho * ho..(o + 1) * ho * ho];
        let mut sb = T::zero();
        for &d in dao {
            sb += d;
        }
        gb[o] += sb;
        for &m in ins.iter() {
            let xm = &x[m * hin * hin..(m + 1) * hin * hin];
            for ky in 0..K {
                for kx in 0..K {
                    let mut s = T::zero();
                    for oy in 0..ho {
                        let xrow = &xm[(oy + ky) * hin + kx..(oy + ky) * hin + kx + ho];
                        s += dot(&dao[oy * ho..(oy + 1) * ho], xrow);
                    }
                    gw[link * K * K + ky * K + kx] += s;
                }
            }
            if let Some(dx) = dx.as_deref_mut() {
                let dxm = &mut dx[m * hin * hin..(m + 1) * hin * hin];
                for ky in 0..K {
                    for kx in 0..K {
                        let wv = w[link * K * K + ky * K + kx];
                        for oy in 0..ho {
                            let row = &mut dxm[(oy + ky) * hin + kx..(oy + ky) * hin + kx + ho];
                            for (r, &d) in row.iter_mut().zip(&dao[oy * ho..(oy + 1) * ho]) {
                                *r += wv * d;
                            }
                        }
                    }
                }
            }
            link += 1;
        }
    }
}

/// x0: (1,32,32) -> x1: (6,28,28)
pub fn c1_forward<T: Real>(p: &[T], x0: &[T], x1: &mut [T]) {
    conv_forward(x0, 32, &C1_MAPS, params::C1_W.of(p), params::C1_B.of(p), x1);
}
/// da1: (6,28,28); C1's input is the image, so no input gradient.
pub fn c1_backward<T: Real>(p: &[T], x0: &[T], da1: &[T], g: &mut [T]) {
    let (gw, gb) = split2(g, params::C1_W, params::C1_B);
    conv_backward(x0, 32, &C1_MAPS, params::C1_W.of(p), da1, gw, gb, None);
}
/// p2 = p squared, x0sq = x0 squared, d2a1: (6,28,28); adds into h.
pub fn c1_hessian<T: Real>(p2: &[T], x0sq: &[T], d2a1: &[T], h: &mut [T]) {
    c1_backward(p2, x0sq, d2a1, h);
}

/// x2: (6,14,14) -> x3: (16,10,10), each map reading the S2 maps of the table.
pub fn c3_forward<T: Real>(p: &[T], x2: &[T], x3: &mut [T]) {
    conv_forward(
        x2,
        14,
        &C3_TABLE,
        params::C3_W.of(p),
        params::C3_B.of(p),
        x3,
    );
}
/// da3: (16,10,10) -> dx2: (6,14,14) (written), gradients added into g.
pub fn c3_backward<T: Real>(p: &[T], x2: &[T], da3: &[T], g: &mut [T], dx2: &mut [T]) {
    dx2.fill(T::zero());
    let (gw, gb) = split2(g, params::C3_W, params::C3_B);
    conv_backward(
        x2,
        14,
        &C3_TABLE,
        params::C3_W.of(p),
        da3,
        gw,
        gb,
        Some(dx2),
    );
}
pub fn c3_hessian<T: Real>(p2: &[T], x2sq: &[T], d2a3: &[T], h: &mut [T], d2x2: &mut [T]) {
    c3_backward(p2, x2sq, d2a3, h, d2x2);
}

/// x4: (16,5,5) -> x5: (120) (a 1x1 map each). A 5x5 valid convolution of a 5x5 input is
/// one dot product per output map, and the `[120,16,5,5]` weights are row-major (120, 400),
/// so this is `conv_forward(x4, 5, &C5_MAPS, ..)` computed as a dense layer.
pub fn c5_forward<T: Real>(p: &[T], x4: &[T], x5: &mut [T]) {
    dense_forward(params::C5_W.of(p), params::C5_B.of(p), x4, x5);
}
/// da5: (120) -> dx4: (16,5,5) (written), gradients added into g.
pub fn c5_backward<T: Real>(p: &[T], x4: &[T], da5: &[T], g: &mut [T], dx4: &mut [T]) {
    dx4.fill(T::zero());
    let (gw, gb) = split2(g, params::C5_W, params::C5_B);
    dense_backward(params::C5_W.of(p), x4, da5, gw, gb, dx4);
}
pub fn c5_hessian<T: Real>(p2: &[T], x4sq: &[T], d2a5: &[T], h: &mut [T], d2x4: &mut [T]) {
    c5_backward(p2, x4sq, d2a5, h, d2x4);
}

/// The (weight, bias) slices of one layer in a flat buffer; the bias must follow the weight.
pub(crate) fn split2<T>(
    buf: &mut [T],
    w: params::Tensor,
    b: params::Tensor,
) -> (&mut [T], &mut [T]) {
    debug_assert_eq!(w.offset + w.len, b.offset);
    let (wpart, bpart) = buf[w.offset..b.offset + b.len].split_at_mut(w.len);
    (wpart, bpart)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// C5 runs as a dense layer; it must equal the generic convolution with C5_MAPS.
    #[test]
    fn c5_dense_equals_generic_convolution() {
        let p: Vec<f64> = params::init(5).iter().map(|&v| v as f64 * 40.0).collect();
        let x4: Vec<f64> = (0..400)
            .map(|i| ((i * 37 % 101) as f64 / 50.0) - 1.0)
            .collect();
        let da5: Vec<f64> = (0..120)
            .map(|i| ((i * 13 % 29) as f64 / 14.0) - 1.0)
            .collect();
        let (mut y_dense, mut y_conv) = (vec![0.0; 120], vec![0.0; 120]);
        c5_forward(&p, &x4, &mut y_dense);
        conv_forward(
            &x4,
            5,
            &C5_MAPS,
            params::C5_W.of(&p),
            params::C5_B.of(&p),
            &mut y_conv,
        );
        let mut g1 = vec![0.0; params::N_PARAMS];
        let mut g2 = vec![0.0; params::N_PARAMS];
        let (mut dx1, mut dx2) = (vec![0.0; 400], vec![0.0; 400]);
        c5_backward(&p, &x4, &da5, &mut g1, &mut dx1);
        let (gw, gb) = split2(&mut g2, params::C5_W, params::C5_B);
        conv_backward(
            &x4,
            5,
            &C5_MAPS,
            params::C5_W.of(&p),
            &da5,
            gw,
            gb,
            Some(&mut dx2),
        );
        let close = |a: &[f64], b: &[f64]| {
            a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-12 * (1.0 + y.abs()))
        };
        assert!(close(&y_dense, &y_conv));
        assert!(close(&g1, &g2));
        assert!(close(&dx1, &dx2));
        assert!(y_conv.iter().any(|v| v.abs() > 0.1));
    }
}
