//! The fast CPU path: the same math as the reference in the parent module, computed for a
//! block of `LANES` patterns at once in a layout made for SIMD units and a GEMM library.
//!
//! Layout. Every tensor of a block is lane-major: feature f of pattern l sits at
//! `f * LANES + l`. A (maps, positions) activation is therefore a row-major matrix of
//! shape (maps, positions * LANES), and a dense layer's input is a (features, LANES)
//! matrix. It follows that:
//! - element-wise work (squashing, subsampling, the RBF units) runs over eight patterns in
//!   one vector, with no shuffles, and its per-pattern arithmetic is exactly the
//!   reference's;
//! - C1 and C3 are direct convolutions on those vectors, register-blocked, computing only
//!   the links of the connection table (`conv`);
//! - C5 and F6 are matrix products, (120,400) x (400, L) and (84,120) x (120, L) and their
//!   transposes, run by `matrixmultiply`'s packed kernels (`full`).
//!
//! Results differ from the reference only by rounding (sums run in another order, the
//! squashing function uses its own exp, and the AVX-512 build fuses multiply-adds; the
//! pre-activations of C1 and C3 are even summed in the reference's order); `tests/fast.rs`
//! checks every tensor against it, in every build.
//! A block's result depends only on its patterns, so the batch sum, taken block by block
//! in order, is bit-identical for any number of threads.
//!
//! Names and contracts are the reference's: `<layer>_forward` writes the layer's squashed
//! output, `<layer>_backward` writes the derivative for the layer's input and adds the
//! layer's parameter gradients into `g` (called with squared inputs and parameters, it is
//! the SDLM pass, as the reference's `<layer>_hessian` is).

#[macro_use]
mod simd;

pub mod conv;
pub mod full;
pub mod rbf;
pub mod subsample;

use super::{loss_forward_backward, predict, squash_derivative};
use crate::model::layout::*;
use crate::model::params::N_PARAMS;
use crate::model::{Loss, SQUASH_A, SQUASH_S, Sweep};

// The layer passes under the reference's names (each a block's version of the reference
// function of that name; none is re-exported, so the two sets never meet in one scope).
use conv::{c1_backward, c1_forward, c3_backward, c3_forward};
use full::{c5_backward, c5_forward, dense_forward_wide, f6_backward, f6_forward};
use rbf::{rbf_backward, rbf_forward, rbf_hessian};
use subsample::{s2_backward, s2_forward, s4_backward, s4_forward};

pub use conv::c3_transposed;
pub use simd::{Simd, simd, with_simd};

/// Patterns per block: one 256-bit vector of f32.
pub const LANES: usize = 8;
const L: usize = LANES;

/// C = A B + beta C, with A (m,k) and B (k,n) given by (row, column) strides and C
/// row-major with row stride `rsc`. Panics (before any unsafe access) if a stride would
/// reach outside its slice.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    beta: f32,
    c: &mut [f32],
    rsc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(
        k == 0 || last(m, k, rsa, csa) < a.len(),
        "gemm: A out of bounds"
    );
    assert!(
        k == 0 || last(k, n, rsb, csb) < b.len(),
        "gemm: B out of bounds"
    );
    assert!(last(m, n, rsc, 1) < c.len(), "gemm: C out of bounds");
    // SAFETY: the asserts above keep every element matrixmultiply reads or writes inside
    // the slices; `c` is borrowed mutably, so it cannot alias `a` or `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            rsc as isize,
            1,
        );
    }
}

/// f(a) = A tanh(S a), written so that a loop of it vectorises: tanh(u) = sign(u) (1 - e) /
/// (1 + e) with e = exp(-2|u|), as in the reference, but with an exp made of arithmetic
/// and bit operations instead of a call into the C library. Absolute error below 4e-7
/// (`squash_fast_matches_tanh`).
#[inline(always)]
pub fn squash_fast(a: f32) -> f32 {
    let u = SQUASH_S as f32 * a;
    let e = exp_nonpositive(-2.0 * u.abs());
    let t = (1.0 - e) / (1.0 + e);
    SQUASH_A as f32 * t.copysign(u)
}

/// e^z for z <= 0 (NaN stays NaN): z = k ln2 + r with |r| <= ln2/2, e^r by a degree-5
/// polynomial (a least-squares fit of the relative error at 4,000 Chebyshev nodes of that
/// interval, computed for this code; max relative error 7.7e-8, below f32's 6e-8 ulp
/// spacing plus rounding), times 2^k built in the exponent bits.
#[inline(always)]
fn exp_nonpositive(z: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that k * LN2_HI is exact for the k that occur (|k| < 128).
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 * 2^23 rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    // The fit's coefficients as printed (the compiler rounds them to f32).
    #[allow(clippy::excessive_precision)]
    const C: [f32; 6] = [
        1.000_000_071,
        0.999_999_666,
        0.499_988_991,
        0.166_676_628,
        0.041_915_029,
        0.008_291_717,
    ];
    // Below -87, e^z < 2^-125: clamping keeps 2^k a normal number and changes nothing
    // that 1 + e can see. (A comparison, not f32::max, so that NaN stays NaN.)
    let z = if z < -87.0 { -87.0 } else { z };
    let t = z * LOG2E + ROUND;
    let k = t - ROUND;
    let ki = t.to_bits() as i32 - ROUND.to_bits() as i32;
    let r = (z - k * LN2_HI) - k * LN2_LO;
    let p = C[0] + r * (C[1] + r * (C[2] + r * (C[3] + r * (C[4] + r * C[5]))));
    p * f32::from_bits(((ki + 127) << 23) as u32)
}

/// Squashes a whole buffer of pre-activations in place.
#[inline(always)]
pub fn squash_in_place(a: &mut [f32]) {
    for v in a {
        *v = squash_fast(*v);
    }
}

/// d *= f'(a), with f'(a) computed from x = f(a) (the gradient pass).
#[inline(always)]
pub fn squash_backward(x: &[f32], d: &mut [f32]) {
    for (d, &x) in d.iter_mut().zip(x) {
        *d *= squash_derivative(x);
    }
}

/// d2 *= f'(a)^2 (the SDLM pass).
#[inline(always)]
pub fn squash_hessian(x: &[f32], d2: &mut [f32]) {
    for (d, &x) in d2.iter_mut().zip(x) {
        let f = squash_derivative(x);
        *d *= f * f;
    }
}

/// Sum of the LANES partial sums of one lane vector, in a fixed order.
#[inline(always)]
pub fn reduce_lanes(v: &[f32; L]) -> f32 {
    ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]))
}

/// Sum of every element of each row of `d`: (rows, len) -> added into out: (rows).
#[inline(always)]
pub fn add_row_sums(d: &[f32], rows: usize, out: &mut [f32]) {
    let len = d.len() / rows;
    for (r, o) in out.iter_mut().enumerate().take(rows) {
        let mut acc = [0f32; L];
        for v in d[r * len..(r + 1) * len].chunks_exact(L) {
            for l in 0..L {
                acc[l] += v[l];
            }
        }
        *o += reduce_lanes(&acc);
    }
}

/// The parameters a block pass reads: the flat buffer (or its square, for the SDLM pass)
/// and C3's kernels rearranged by `c3_transposed` for the input gradient.
#[derive(Clone, Copy)]
pub struct Weights<'a> {
    pub p: &'a [f32],   // (N_PARAMS)
    pub w3t: &'a [f32], // (6,10,25)
}

/// The dense end of the forward pass (C5, F6, the RBF units) for up to `cap` patterns at
/// once, in evaluation: each buffer is lane-major with `cap` lanes (feature f of pattern p
/// at `f * cap + p`), so one matrix product per layer serves a whole chunk of blocks (in
/// the portable and AVX2 builds `matrixmultiply` then packs C5's 48,000 weights once per
/// chunk instead of once per block of eight). Every output is the same sum, in the same
/// order, as `Block::forward`'s, in every build.
pub struct Wide {
    cap: usize,
    pub x4: Vec<f32>, // (400, cap)
    x5: Vec<f32>,     // (120, cap)
    x6: Vec<f32>,     // (84, cap)
    y: Vec<f32>,      // (10, cap)
}

impl Wide {
    /// Room for `cap` patterns (a multiple of LANES).
    pub fn new(cap: usize) -> Self {
        assert!(cap.is_multiple_of(L), "Wide holds whole blocks");
        let z = |a: Activation| vec![0f32; a.len() * cap];
        Wide {
            cap,
            x4: z(X4),
            x5: z(X5),
            x6: z(X6),
            y: z(Y),
        }
    }

    /// Puts block k's x4 (after `Block::forward_conv`) in patterns k L .. k L + L.
    pub fn put(&mut self, k: usize, b: &Block) {
        for (f, v) in b.x4.chunks_exact(L).enumerate() {
            self.x4[f * self.cap + k * L..][..L].copy_from_slice(v);
        }
    }

    /// C5, F6 and the RBF units for the first `n` patterns (a multiple of LANES).
    pub fn forward(&mut self, w: Weights, centers: &[f32], n: usize) {
        assert!(n <= self.cap && n.is_multiple_of(L));
        dispatch!(self.forward_any / forward_avx2 / forward_avx512(w, centers, n))
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn forward_avx2(&mut self, w: Weights, centers: &[f32], n: usize) {
        self.forward_any(w, centers, n)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    unsafe fn forward_avx512(&mut self, w: Weights, centers: &[f32], n: usize) {
        self.forward_any(w, centers, n)
    }

    #[inline(always)]
    fn forward_any(&mut self, w: Weights, centers: &[f32], n: usize) {
        use crate::model::params::{C5_B, C5_W, F6_B, F6_W};
        let cap = self.cap;
        dense_forward_wide(C5_W.of(w.p), C5_B.of(w.p), &self.x4, &mut self.x5, (n, cap));
        dense_forward_wide(F6_W.of(w.p), F6_B.of(w.p), &self.x5, &mut self.x6, (n, cap));
        for i in 0..10 {
            let s = &mut self.y[i * cap..i * cap + n];
            s.fill(0.0);
            for j in 0..84 {
                let c = centers[i * 84 + j];
                for (s, &x) in s.iter_mut().zip(&self.x6[j * cap..j * cap + n]) {
                    let d = x - c;
                    *s += d * d;
                }
            }
        }
    }

    /// Pattern p's RBF outputs.
    pub fn outputs(&self, p: usize) -> [f32; 10] {
        std::array::from_fn(|i| self.y[i * self.cap + p])
    }
}

/// Every buffer of one block, lane-major (shapes in (rows, columns), L = LANES).
pub struct Block {
    /// Patterns in use, 1..=LANES; the other lanes hold background images and get zero
    /// derivatives, so they add nothing to any sum.
    pub n: usize,
    pub x0: Vec<f32>, // (1024, L)
    pub x1: Vec<f32>, // (6, 784 L)
    pub x2: Vec<f32>, // (6, 196 L)
    pub x3: Vec<f32>, // (16, 100 L)
    pub x4: Vec<f32>, // (400, L)
    pub x5: Vec<f32>, // (120, L)
    pub x6: Vec<f32>, // (84, L)
    pub y: Vec<f32>,  // (10, L)
    pub dy: Vec<f32>, // (10, L)
    pub d6: Vec<f32>, // (84, L)
    pub d5: Vec<f32>, // (120, L)
    pub d4: Vec<f32>, // (400, L)
    pub d3: Vec<f32>, // (16, 100 L)
    pub d2: Vec<f32>, // (6, 196 L)
    pub d1: Vec<f32>, // (6, 784 L)
    /// Squared x0..x5 for the SDLM pass.
    pub sq: [Vec<f32>; 6],
    /// One pattern's input in the reference layout (1,32,32), before it goes into its lane.
    pub img: Vec<f32>,
}

impl Default for Block {
    fn default() -> Self {
        let z = |a: Activation| vec![0f32; a.len() * L];
        Block {
            n: 0,
            x0: z(X0),
            x1: z(X1),
            x2: z(X2),
            x3: z(X3),
            x4: z(X4),
            x5: z(X5),
            x6: z(X6),
            y: z(Y),
            dy: z(DY),
            d6: z(D6),
            d5: z(D5),
            d4: z(D4),
            d3: z(D3),
            d2: z(D2),
            d1: z(D1),
            sq: SQUARED.map(z),
            img: vec![0f32; X0.len()],
        }
    }
}

impl Block {
    /// The lane-major buffer of tensor `a` of the layout table (`model::ACTIVATIONS`,
    /// `DELTAS`): (a.len(), LANES).
    pub fn tensor(&self, a: &Activation) -> &[f32] {
        crate::model::layout::field_of!(self, a)
    }

    /// Loads the inputs: `fill(l, x0)` writes pattern l's (1,32,32) input for l < n.
    pub fn load(&mut self, n: usize, mut fill: impl FnMut(usize, &mut [f32])) {
        assert!(
            (1..=L).contains(&n),
            "a block holds 1..={L} patterns, not {n}"
        );
        self.n = n;
        for l in 0..L {
            if l < n {
                fill(l, &mut self.img);
            } else {
                self.img.fill(super::INPUT_BACKGROUND as f32);
            }
            for (i, &v) in self.img.iter().enumerate() {
                self.x0[i * L + l] = v;
            }
        }
    }

    /// Pattern l's values of a lane-major buffer, in the reference layout.
    pub fn lane(buf: &[f32], l: usize) -> Vec<f32> {
        buf.iter().skip(l).step_by(L).copied().collect()
    }

    /// Forward pass of the loaded block: x1..x6 and y.
    pub fn forward(&mut self, w: Weights, centers: &[f32]) {
        dispatch!(self.forward_any / forward_avx2 / forward_avx512(w, centers))
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn forward_avx2(&mut self, w: Weights, centers: &[f32]) {
        self.forward_any(w, centers)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    unsafe fn forward_avx512(&mut self, w: Weights, centers: &[f32]) {
        self.forward_any(w, centers)
    }

    #[inline(always)]
    fn forward_any(&mut self, w: Weights, centers: &[f32]) {
        self.forward_conv_any(w);
        c5_forward(w.p, &self.x4, &mut self.x5);
        f6_forward(w.p, &self.x5, &mut self.x6);
        rbf_forward(centers, &self.x6, &mut self.y);
    }

    /// The convolutional part of the forward pass of the loaded block: x1 .. x4 (for
    /// `Wide`, which runs the rest for many blocks at once).
    pub fn forward_conv(&mut self, w: Weights) {
        dispatch!(self.forward_conv_any / forward_conv_avx2 / forward_conv_avx512(w))
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn forward_conv_avx2(&mut self, w: Weights) {
        self.forward_conv_any(w)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    unsafe fn forward_conv_avx512(&mut self, w: Weights) {
        self.forward_conv_any(w)
    }

    #[inline(always)]
    fn forward_conv_any(&mut self, w: Weights) {
        c1_forward(w.p, &self.x0, &mut self.x1);
        s2_forward(w.p, &self.x1, &mut self.x2);
        c3_forward(w.p, &self.x2, &mut self.x3);
        s4_forward(w.p, &self.x3, &mut self.x4);
    }

    /// Pattern l's RBF outputs.
    pub fn outputs(&self, l: usize) -> [f32; 10] {
        std::array::from_fn(|i| self.y[i * L + l])
    }

    /// After `forward`: the loss of each pattern in use and dE/dy, then the backward pass
    /// adding the block's gradient into `g`. Returns (loss, predicted class) per pattern.
    pub fn backward(
        &mut self,
        w: Weights,
        centers: &[f32],
        loss: Loss,
        labels: &[u8],
        g: &mut [f32],
    ) -> [(f32, usize); L] {
        let mut out = [(0f32, 0usize); L];
        self.dy.fill(0.0);
        for (l, o) in out.iter_mut().enumerate().take(self.n) {
            let y = self.outputs(l);
            let mut dy = [0f32; 10];
            let e = loss_forward_backward(loss, &y, labels[l] as usize, &mut dy);
            for (i, &v) in dy.iter().enumerate() {
                self.dy[i * L + l] = v;
            }
            *o = (e, predict(&y));
        }
        rbf_backward(centers, &self.x6, &self.dy, &mut self.d6);
        self.sweep(w, Sweep::Backward, g);
        out
    }

    /// After `forward`: adds the block's SDLM second-derivative estimates into `h`; `w2`
    /// holds the squared parameters.
    pub fn hessian(&mut self, w2: Weights, h: &mut [f32]) {
        rbf_hessian(self.n, &mut self.d6);
        for (sq, x) in self
            .sq
            .iter_mut()
            .zip([&self.x0, &self.x1, &self.x2, &self.x3, &self.x4, &self.x5])
        {
            for (s, &v) in sq.iter_mut().zip(x.iter()) {
                *s = v * v;
            }
        }
        self.sweep(w2, Sweep::Hessian, h);
    }

    /// From d6 = dE/dx6 (or its second derivative) down to C1's parameters.
    fn sweep(&mut self, w: Weights, sweep: Sweep, g: &mut [f32]) {
        dispatch!(self.sweep_any / sweep_avx2 / sweep_avx512(w, sweep, g))
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sweep_avx2(&mut self, w: Weights, sweep: Sweep, g: &mut [f32]) {
        self.sweep_any(w, sweep, g)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    unsafe fn sweep_avx512(&mut self, w: Weights, sweep: Sweep, g: &mut [f32]) {
        self.sweep_any(w, sweep, g)
    }

    #[inline(always)]
    fn sweep_any(&mut self, w: Weights, sweep: Sweep, g: &mut [f32]) {
        debug_assert_eq!(g.len(), N_PARAMS);
        // A closure over `pass`, not a function pointer, so that it inlines into this
        // (AVX2) function.
        let squash_back = |x: &[f32], d: &mut [f32]| match sweep {
            Sweep::Backward => squash_backward(x, d),
            Sweep::Hessian => squash_hessian(x, d),
        };
        let b = self;
        let [sq0, sq1, sq2, sq3, sq4, sq5] = &b.sq;
        let (x0, x1, x2, x3, x4, x5) = match sweep {
            Sweep::Backward => (&b.x0, &b.x1, &b.x2, &b.x3, &b.x4, &b.x5),
            Sweep::Hessian => (sq0, sq1, sq2, sq3, sq4, sq5),
        };
        squash_back(&b.x6, &mut b.d6);
        f6_backward(w.p, x5, &b.d6, g, &mut b.d5);
        squash_back(&b.x5, &mut b.d5);
        c5_backward(w.p, x4, &b.d5, g, &mut b.d4);
        squash_back(&b.x4, &mut b.d4);
        s4_backward(w.p, x3, &b.d4, g, &mut b.d3);
        squash_back(&b.x3, &mut b.d3);
        c3_backward(x2, w.w3t, &b.d3, g, &mut b.d2);
        squash_back(&b.x2, &mut b.d2);
        s2_backward(w.p, x1, &b.d2, g, &mut b.d1);
        squash_back(&b.x1, &mut b.d1);
        c1_backward(x0, &b.d1, g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squash_fast_matches_tanh() {
        let mut worst = 0f64;
        for i in -40000..=40000 {
            let a = i as f64 / 1000.0;
            let want = SQUASH_A * (SQUASH_S * a).tanh();
            let got = squash_fast(a as f32) as f64;
            worst = worst.max((got - want).abs());
        }
        assert!(worst < 4e-7, "max abs error {worst}");
        assert_eq!(squash_fast(1e30), SQUASH_A as f32);
        assert_eq!(squash_fast(-1e30), -SQUASH_A as f32);
        assert!(squash_fast(f32::NAN).is_nan());
    }

    #[test]
    fn gemm_matches_loops() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i % 11) as f32 - 5.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.5).collect();
        let mut c = vec![1f32; m * n];
        // A row-major, B given transposed (column-major), C accumulated.
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        gemm((m, k, n), &a, (k, 1), &bt, (1, k), 1.0, &mut c, n);
        for i in 0..m {
            for j in 0..n {
                let want: f32 = 1.0 + (0..k).map(|t| a[i * k + t] * b[t * n + j]).sum::<f32>();
                assert_eq!(c[i * n + j], want, "({i},{j})");
            }
        }
    }
}
