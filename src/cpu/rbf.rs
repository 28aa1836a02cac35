//! Output family: the Euclidean RBF units and the loss. y_i = sum_j (x_j - c_ij)^2 for the
//! ten fixed centres c (10,84); the prediction is argmin_i y_i.
//!
//! Losses, per pattern with correct class D:
//! - `Mse` (the paper's maximum-likelihood criterion): E = y_D.
//! - `Map { j }` (the paper's MAP criterion): E = y_D + ln(e^-j + sum_i e^-y_i).
//!
//! Second derivative handed to F6 by the SDLM pass: d2E/dx_j^2 = 2 for both losses: the
//! Gauss-Newton term of y_D. For `Map` the competitive term is dropped, as its curvature
//! can be negative and SDLM needs non-negative estimates.

use super::Real;
use crate::model::Loss;

/// x6: (84), centers: (10,84) -> y: (10)
pub fn rbf_forward<T: Real>(centers: &[T], x6: &[T], y: &mut [T]) {
    for i in 0..10 {
        let mut s = T::zero();
        for (&x, &c) in x6.iter().zip(&centers[i * 84..(i + 1) * 84]) {
            s += (x - c) * (x - c);
        }
        y[i] = s;
    }
}

/// The loss of one pattern given y: (10) and its class; writes dE/dy: (10).
pub fn loss_forward_backward<T: Real>(loss: Loss, y: &[T], label: usize, dy: &mut [T]) -> T {
    match loss {
        Loss::Mse => {
            dy.fill(T::zero());
            dy[label] = T::one();
            y[label]
        }
        Loss::Map { j } => {
            // ln(e^-j + sum e^-y_i), computed around m = min(j, min y) so nothing overflows.
            let j = T::c(j);
            let m = y.iter().fold(j, |m, &v| m.min(v));
            let mut z = (m - j).exp();
            for &v in y {
                z += (m - v).exp();
            }
            for i in 0..10 {
                dy[i] = -(m - y[i]).exp() / z;
            }
            dy[label] += T::one();
            y[label] - m + z.ln()
        }
    }
}

/// dy: (10) -> dx6: (84), dE/dx_j = sum_i dy_i * 2 (x_j - c_ij).
pub fn rbf_backward<T: Real>(centers: &[T], x6: &[T], dy: &[T], dx6: &mut [T]) {
    dx6.fill(T::zero());
    for i in 0..10 {
        if dy[i] == T::zero() {
            continue;
        }
        let d = dy[i] * T::c(2.0);
        for ((g, &x), &c) in dx6.iter_mut().zip(x6).zip(&centers[i * 84..(i + 1) * 84]) {
            *g += d * (x - c);
        }
    }
}

/// d2E/dx6^2: (84) for the SDLM pass (see the module comment).
pub fn rbf_hessian<T: Real>(d2x6: &mut [T]) {
    d2x6.fill(T::c(2.0));
}

/// argmin_i y_i (the first on ties).
pub fn predict<T: Real>(y: &[T]) -> usize {
    let mut best = 0;
    for i in 1..y.len() {
        if y[i] < y[best] {
            best = i;
        }
    }
    best
}
