//! *Internal:* The CPU reference: LeNet-5 as plain loops, one function per layer and pass
//! (`<layer>_forward`, `<layer>_backward`, `<layer>_hessian`), generic over f32 (training)
//! and f64 (the tests' independent checks). This code is the spec every GPU kernel is tested
//! against. Every `<layer>_backward` (and `_hessian`) writes its input's derivative and
//! adds the layer's parameter gradients into `g`, as the fast path's do.
//!
//! Per pattern, the buffers are (shapes as (maps, rows, cols); sizes in `model::layout`):
//! x0 (1,32,32) -C1-> x1 (6,28,28) -S2-> x2 (6,14,14) -C3-> x3 (16,10,10) -S4-> x4 (16,5,5)
//! -C5-> x5 (120) -F6-> x6 (84) -RBF-> y (10). Every x is already squashed; the squashing
//! derivative is computed from it: f'(a) = A S (1 - (x/A)^2).

pub mod batch;
pub mod conv;
pub mod fast;
pub mod full;
pub mod rbf;
pub mod subsample;

pub use conv::*;
pub use full::*;
pub use rbf::*;
pub use subsample::*;

use crate::model::{INPUT_BACKGROUND, INPUT_SCALE, Loss, SQUASH_A, SQUASH_S};
use std::ops::{AddAssign, MulAssign, SubAssign};

/// The float type a pass runs in: f32 for training, f64 for the reference checks.
pub trait Real:
    num_traits::Float
    + AddAssign
    + SubAssign
    + MulAssign
    + Default
    + Send
    + Sync
    + std::fmt::Debug
    + 'static
{
    fn c(v: f64) -> Self;
}
impl Real for f32 {
    fn c(v: f64) -> Self {
        v as f32
    }
}
impl Real for f64 {
    fn c(v: f64) -> Self {
        v
    }
}

/// Sum of `a[i] * b[i]`. Eight independent partial sums let the compiler vectorise what
/// would otherwise be one long chain of dependent float additions; the order is fixed, so
/// results are reproducible.
#[inline]
pub fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [T::zero(); 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (&x, &y) in ar.iter().zip(br) {
        s += x * y;
    }
    s
}

/// f(a) = A tanh(S a), with tanh(u) = sign(u) (1 - e) / (1 + e), e = exp(-2|u|): exact to
/// rounding, and several times faster than the C library's tanhf, which dominated the
/// forward pass.
#[inline]
pub fn squash<T: Real>(a: T) -> T {
    let u = T::c(SQUASH_S) * a;
    let e = (T::c(-2.0) * u.abs()).exp();
    let t = (T::one() - e) / (T::one() + e);
    T::c(SQUASH_A) * if u < T::zero() { -t } else { t }
}

/// f'(a) expressed through x = f(a).
#[inline]
pub fn squash_derivative<T: Real>(x: T) -> T {
    let t = x / T::c(SQUASH_A);
    T::c(SQUASH_A * SQUASH_S) * (T::one() - t * t)
}

#[cfg(test)]
#[test]
fn squash_matches_tanh() {
    for i in -2000..=2000 {
        let a = i as f64 / 100.0;
        let want = SQUASH_A * (SQUASH_S * a).tanh();
        assert!((squash(a) - want).abs() < 1e-15, "f64 at {a}");
        assert!((squash(a as f32) as f64 - want).abs() < 4e-7, "f32 at {a}");
    }
}

/// dE/dx -> dE/da in place, x the layer's squashed output.
pub fn squash_backward<T: Real>(x: &[T], d: &mut [T]) {
    for (d, &x) in d.iter_mut().zip(x) {
        *d *= squash_derivative(x);
    }
}

/// d2E/dx2 -> d2E/da2 in place: times f'(a)^2 (the f'' term is dropped, per SDLM).
pub fn squash_hessian<T: Real>(x: &[T], d2: &mut [T]) {
    for (d, &x) in d2.iter_mut().zip(x) {
        let f = squash_derivative(x);
        *d *= f * f;
    }
}

/// A u8 image of side 28 (padded by 2 with background) or 32 -> x0: (1,32,32).
pub fn input_forward<T: Real>(img: &[u8], side: usize, x0: &mut [T]) {
    let pad = (32 - side) / 2;
    x0.fill(T::c(INPUT_BACKGROUND));
    for r in 0..side {
        for c in 0..side {
            x0[(r + pad) * 32 + c + pad] =
                T::c(img[r * side + c] as f64 * INPUT_SCALE + INPUT_BACKGROUND);
        }
    }
}

/// All per-pattern buffers of one forward/backward/second-derivative pass, sized from
/// the model's layout table (`model::layout`).
#[derive(Clone)]
pub struct Workspace<T> {
    pub x0: Vec<T>, // (1,32,32)
    pub x1: Vec<T>, // (6,28,28)
    pub x2: Vec<T>, // (6,14,14)
    pub x3: Vec<T>, // (16,10,10)
    pub x4: Vec<T>, // (16,5,5)
    pub x5: Vec<T>, // (120)
    pub x6: Vec<T>, // (84)
    pub y: Vec<T>,  // (10)
    // First (or second) derivatives w.r.t. each layer's output, then its pre-activation.
    pub d1: Vec<T>, // (6,28,28)
    pub d2: Vec<T>, // (6,14,14)
    pub d3: Vec<T>, // (16,10,10)
    pub d4: Vec<T>, // (16,5,5)
    pub d5: Vec<T>, // (120)
    pub d6: Vec<T>, // (84)
    pub dy: Vec<T>, // (10)
    /// Squared activations x0..x5 (`layout::SQUARED`) for the second-derivative pass.
    pub sq: [Vec<T>; 6],
}

impl<T: Real> Default for Workspace<T> {
    fn default() -> Self {
        use crate::model::layout::*;
        let z = |a: Activation| vec![T::zero(); a.len()];
        Workspace {
            x0: z(X0),
            x1: z(X1),
            x2: z(X2),
            x3: z(X3),
            x4: z(X4),
            x5: z(X5),
            x6: z(X6),
            y: z(Y),
            d1: z(D1),
            d2: z(D2),
            d3: z(D3),
            d4: z(D4),
            d5: z(D5),
            d6: z(D6),
            dy: z(DY),
            sq: SQUARED.map(z),
        }
    }
}

impl<T> Workspace<T> {
    /// The buffer of tensor `a` of the layout table (`model::ACTIVATIONS`, `DELTAS`).
    pub fn tensor(&self, a: &crate::model::Activation) -> &[T] {
        crate::model::layout::field_of!(self, a)
    }
}

/// The SDLM step with momentum, element-wise over the flat parameter layout (all buffers
/// (N_PARAMS)): v = momentum v + g, then p -= eps v.
pub fn update(p: &mut [f32], v: &mut [f32], g: &[f32], eps: &[f32], momentum: f32) {
    for k in 0..p.len() {
        v[k] = momentum * v[k] + g[k];
        p[k] -= eps[k] * v[k];
    }
}

/// Forward pass of one pattern whose input is already in `ws.x0`; fills x1..x6 and y.
pub fn pattern_forward<T: Real>(p: &[T], centers: &[T], ws: &mut Workspace<T>) {
    c1_forward(p, &ws.x0, &mut ws.x1);
    s2_forward(p, &ws.x1, &mut ws.x2);
    c3_forward(p, &ws.x2, &mut ws.x3);
    s4_forward(p, &ws.x3, &mut ws.x4);
    c5_forward(p, &ws.x4, &mut ws.x5);
    f6_forward(p, &ws.x5, &mut ws.x6);
    rbf_forward(centers, &ws.x6, &mut ws.y);
}

/// Backward pass of one pattern after `pattern_forward`: adds dE/dp into `g` and returns E.
pub fn pattern_backward<T: Real>(
    p: &[T],
    centers: &[T],
    loss: Loss,
    label: usize,
    ws: &mut Workspace<T>,
    g: &mut [T],
) -> T {
    let e = loss_forward_backward(loss, &ws.y, label, &mut ws.dy);
    rbf_backward(centers, &ws.x6, &ws.dy, &mut ws.d6);
    squash_backward(&ws.x6, &mut ws.d6);
    f6_backward(p, &ws.x5, &ws.d6, g, &mut ws.d5);
    squash_backward(&ws.x5, &mut ws.d5);
    c5_backward(p, &ws.x4, &ws.d5, g, &mut ws.d4);
    squash_backward(&ws.x4, &mut ws.d4);
    s4_backward(p, &ws.x3, &ws.d4, g, &mut ws.d3);
    squash_backward(&ws.x3, &mut ws.d3);
    c3_backward(p, &ws.x2, &ws.d3, g, &mut ws.d2);
    squash_backward(&ws.x2, &mut ws.d2);
    s2_backward(p, &ws.x1, &ws.d2, g, &mut ws.d1);
    squash_backward(&ws.x1, &mut ws.d1);
    c1_backward(p, &ws.x0, &ws.d1, g);
    e
}

/// SDLM second-derivative pass of one pattern after `pattern_forward`: adds this pattern's
/// estimate of each h_kk into `h`. `p2` holds the squared parameters.
pub fn pattern_hessian<T: Real>(p2: &[T], ws: &mut Workspace<T>, h: &mut [T]) {
    let acts: [&Vec<T>; 6] = [&ws.x0, &ws.x1, &ws.x2, &ws.x3, &ws.x4, &ws.x5];
    for (sq, x) in ws.sq.iter_mut().zip(acts) {
        for (s, &v) in sq.iter_mut().zip(x.iter()) {
            *s = v * v;
        }
    }
    let [sq0, sq1, sq2, sq3, sq4, sq5] = &ws.sq;
    rbf_hessian(&mut ws.d6);
    squash_hessian(&ws.x6, &mut ws.d6);
    f6_hessian(p2, sq5, &ws.d6, h, &mut ws.d5);
    squash_hessian(&ws.x5, &mut ws.d5);
    c5_hessian(p2, sq4, &ws.d5, h, &mut ws.d4);
    squash_hessian(&ws.x4, &mut ws.d4);
    s4_hessian(p2, sq3, &ws.d4, h, &mut ws.d3);
    squash_hessian(&ws.x3, &mut ws.d3);
    c3_hessian(p2, sq2, &ws.d3, h, &mut ws.d2);
    squash_hessian(&ws.x2, &mut ws.d2);
    s2_hessian(p2, sq1, &ws.d2, h, &mut ws.d1);
    squash_hessian(&ws.x1, &mut ws.d1);
    c1_hessian(p2, sq0, &ws.d1, h);
}
