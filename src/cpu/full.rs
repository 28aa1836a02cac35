//! Fully connected family: F6, 120 -> 84, a = W x + b, then squash. W is (84,120), row-major
//! as in PyTorch's Linear. The SDLM pass is the backward pass with W and x squared (for F6
//! this equals the exact Gauss-Newton diagonal: each weight has one connection).

use super::{Real, conv::split2, squash};
use crate::params;

/// x5: (120) -> x6: (84)
pub fn f6_forward<T: Real>(p: &[T], x5: &[T], x6: &mut [T]) {
    let w = params::F6_W.of(p); // (84,120)
    let b = params::F6_B.of(p); // (84)
    for j in 0..84 {
        let mut a = b[j];
        for (&wv, &xv) in w[j * 120..(j + 1) * 120].iter().zip(x5) {
            a += wv * xv;
        }
        x6[j] = squash(a);
    }
}

/// da6: (84) -> dx5: (120) (added), gradients into g.
pub fn f6_backward<T: Real>(p: &[T], x5: &[T], da6: &[T], g: &mut [T], dx5: &mut [T]) {
    let w = params::F6_W.of(p);
    let (gw, gb) = split2(g, params::F6_W, params::F6_B);
    for j in 0..84 {
        let d = da6[j];
        gb[j] += d;
        let row = j * 120..(j + 1) * 120;
        for ((gv, &xv), (dxv, &wv)) in gw[row.clone()]
            .iter_mut()
            .zip(x5)
            .zip(dx5.iter_mut().zip(&w[row]))
        {
            *gv += d * xv;
            *dxv += wv * d;
        }
    }
}

pub fn f6_hessian<T: Real>(p2: &[T], x5sq: &[T], d2a6: &[T], h: &mut [T], d2x5: &mut [T]) {
    f6_backward(p2, x5sq, d2a6, h, d2x5);
}
