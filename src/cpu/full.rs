//! Fully connected family: F6, 120 -> 84, a = W x + b, then squash. W is (84,120), row-major
//! as in PyTorch's Linear. The same dense routines serve C5, whose 5x5 kernels cover its
//! whole 5x5 input: each C5 unit is a dot product of its 400 weights with the 400 inputs. The SDLM pass is the backward pass with W and x squared (for F6
//! this equals the exact Gauss-Newton diagonal: each weight has one connection).

use super::{Real, conv::split2, dot, squash};
use crate::model::params;

/// y = f(W x + b), W: (n_out, n_in) row-major, x: (n_in), y: (n_out).
pub fn dense_forward<T: Real>(w: &[T], b: &[T], x: &[T], y: &mut [T]) {
    let n_in = x.len();
    for (j, out) in y.iter_mut().enumerate() {
        *out = squash(b[j] + dot(&w[j * n_in..(j + 1) * n_in], x));
    }
}

/// Given da = dE/da: (n_out), add dE/dW into gw, dE/db into gb, dE/dx into dx: (n_in).
pub fn dense_backward<T: Real>(
    w: &[T],
    x: &[T],
    da: &[T],
    gw: &mut [T],
    gb: &mut [T],
    dx: &mut [T],
) {
    let n_in = x.len();
    for (j, &d) in da.iter().enumerate() {
        gb[j] += d;
        let row = j * n_in..(j + 1) * n_in;
        for ((gv, &xv), (dxv, &wv)) in gw[row.clone()]
            .iter_mut()
            .zip(x)
            .zip(dx.iter_mut().zip(&w[row]))
        {
            *gv += d * xv;
            *dxv += wv * d;
        }
    }
}

/// x5: (120) -> x6: (84)
pub fn f6_forward<T: Real>(p: &[T], x5: &[T], x6: &mut [T]) {
    dense_forward(params::F6_W.of(p), params::F6_B.of(p), x5, x6);
}

/// da6: (84) -> dx5: (120) (written), gradients added into g.
pub fn f6_backward<T: Real>(p: &[T], x5: &[T], da6: &[T], g: &mut [T], dx5: &mut [T]) {
    dx5.fill(T::zero());
    let (gw, gb) = split2(g, params::F6_W, params::F6_B);
    dense_backward(params::F6_W.of(p), x5, da6, gw, gb, dx5);
}

pub fn f6_hessian<T: Real>(p2: &[T], x5sq: &[T], d2a6: &[T], h: &mut [T], d2x5: &mut [T]) {
    f6_backward(p2, x5sq, d2a6, h, d2x5);
}
