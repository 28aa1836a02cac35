//! Fully connected family, fast path: C5 (400 -> 120) and F6 (120 -> 84) as GEMMs over a
//! block of LANES patterns. x: (n_in, L) and y: (n_out, L) are lane-major, W: (n_out, n_in)
//! row-major as in the flat parameter buffer.

use super::{L, add_row_sums, gemm, squash_fast};
use crate::model::params;

/// y = f(W x + b)
#[inline(always)]
pub fn dense_forward(w: &[f32], b: &[f32], x: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::simd() == super::Simd::Avx512 {
        let (n_in, n_out) = (x.len() / L, y.len() / L);
        // SAFETY: the CPU has AVX-512 F and VL, and FMA (checked at run time).
        unsafe { matvec_avx512((n_out, n_in), w, (n_in, 1), x, y, (L, L)) };
        for (row, &bj) in y.chunks_exact_mut(L).zip(b) {
            for v in row {
                *v = squash_fast(*v + bj);
            }
        }
        return;
    }
    dense_forward_wide(w, b, x, y, (L, L));
}

/// gw (n_out, n_in) += da x^T over the block's lanes: da: (n_out, L), x: (n_in, L) lane-major,
/// n_in a multiple of 8. x is transposed to (L, n_in) first, so each row of gw takes, 16 or
/// 8 columns at a time, one fused multiply-add per lane, lanes in order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn outer_avx512(da: &[f32], x: &[f32], gw: &mut [f32]) {
    use std::arch::x86_64::*;
    let (n_in, n_out) = (x.len() / L, da.len() / L);
    assert!(n_in.is_multiple_of(8) && gw.len() >= n_out * n_in);
    let mut xt = vec![0f32; L * n_in];
    for (i, v) in x.chunks_exact(L).enumerate() {
        for (l, &e) in v.iter().enumerate() {
            xt[l * n_in + i] = e;
        }
    }
    // SAFETY: rows o < n_out of gw and da, columns i + 16 <= n_in (or i + 8 for the
    // 256-bit tail) of gw and xt, by the assert.
    unsafe {
        for o in 0..n_out {
            let d: [__m512; L] = std::array::from_fn(|l| _mm512_set1_ps(da[o * L + l]));
            let g = gw.as_mut_ptr().add(o * n_in);
            let mut i = 0;
            while i + 16 <= n_in {
                let mut acc = _mm512_loadu_ps(g.add(i));
                for (l, dv) in d.iter().enumerate() {
                    acc = _mm512_fmadd_ps(*dv, _mm512_loadu_ps(xt.as_ptr().add(l * n_in + i)), acc);
                }
                _mm512_storeu_ps(g.add(i), acc);
                i += 16;
            }
            if i < n_in {
                let mut acc = _mm256_loadu_ps(g.add(i));
                for (l, dv) in d.iter().enumerate() {
                    let xv = _mm256_loadu_ps(xt.as_ptr().add(l * n_in + i));
                    acc = _mm256_fmadd_ps(_mm512_castps512_ps256(*dv), xv, acc);
                }
                _mm256_storeu_ps(g.add(i), acc);
            }
        }
    }
}

/// y = A x for the first n of `cap` lanes: A (m, k) given by (row, column) strides, x:
/// (k, cap) and y: (m, cap) lane-major; for each chunk of eight lanes, eight rows at a time
/// in 256-bit accumulators (AVX-512 VL gives 32 of them), each sum in order of k with fused
/// multiply-adds, so a lane's result does not depend on the chunk it is in. For one block
/// of eight patterns this beats a packed GEMM, which spends longer packing A than
/// multiplying it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn matvec_avx512(
    (m, k): (usize, usize),
    a: &[f32],
    (rsa, csa): (usize, usize),
    x: &[f32],
    y: &mut [f32],
    (n, cap): (usize, usize),
) {
    use std::arch::x86_64::*;
    assert!(m > 0 && m.is_multiple_of(4) && k > 0 && n.is_multiple_of(L) && n <= cap);
    assert!(x.len() >= k * cap && y.len() >= m * cap);
    assert!(
        (m - 1) * rsa + (k - 1) * csa < a.len(),
        "matvec: A out of bounds"
    );
    #[inline(always)]
    unsafe fn rows<const R: usize>(
        r0: usize,
        k: usize,
        a: *const f32,
        (rsa, csa): (usize, usize),
        x: *const f32,
        y: *mut f32,
        cap: usize,
    ) {
        // SAFETY: the caller's asserts bound rows r0..r0+R <= m, columns < k, and the
        // eight lanes from x and y (already offset to the chunk) below cap.
        unsafe {
            let mut acc = [_mm256_setzero_ps(); R];
            for t in 0..k {
                let xv = _mm256_loadu_ps(x.add(t * cap));
                for (j, c) in acc.iter_mut().enumerate() {
                    let wv = _mm256_set1_ps(*a.add((r0 + j) * rsa + t * csa));
                    *c = _mm256_fmadd_ps(wv, xv, *c);
                }
            }
            for (j, c) in acc.iter().enumerate() {
                _mm256_storeu_ps(y.add((r0 + j) * cap), *c);
            }
        }
    }
    let ap = a.as_ptr();
    for c0 in (0..n).step_by(L) {
        // SAFETY: lanes c0..c0+8 <= n <= cap, rows below m (m is a multiple of 4), by the
        // asserts.
        unsafe {
            let (xp, yp) = (x.as_ptr().add(c0), y.as_mut_ptr().add(c0));
            let mut r = 0;
            while r + 8 <= m {
                rows::<8>(r, k, ap, (rsa, csa), xp, yp, cap);
                r += 8;
            }
            if r < m {
                rows::<4>(r, k, ap, (rsa, csa), xp, yp, cap);
            }
        }
    }
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
    #[cfg(target_arch = "x86_64")]
    if super::simd() == super::Simd::Avx512 {
        // The same sums, in the same order, as a block's (`dense_forward`), chunk of eight
        // lanes by chunk. SAFETY: the CPU has AVX-512 F and VL, and FMA (checked).
        unsafe { matvec_avx512((n_out, n_in), w, (n_in, 1), x, y, (n, cap)) };
    } else {
        gemm((n_out, n_in, n), w, (n_in, 1), x, (cap, 1), 0.0, y, cap);
    }
    #[cfg(not(target_arch = "x86_64"))]
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
    #[cfg(target_arch = "x86_64")]
    if super::simd() == super::Simd::Avx512 && n_in.is_multiple_of(8) {
        // SAFETY: the CPU has AVX-512 F and VL, and FMA (checked at run time).
        unsafe {
            outer_avx512(da, x, gw);
            add_row_sums(da, n_out, gb);
            return matvec_avx512((n_in, n_out), w, (1, n_in), da, dx, (L, L));
        }
    }
    gemm((n_out, L, n_in), da, (L, 1), x, (1, L), 1.0, gw, n_in);
    add_row_sums(da, n_out, gb);
    gemm((n_in, n_out, L), w, (1, n_in), da, (L, 1), 0.0, dx, L);
}

/// x4: (400, L) -> x5: (120, L)
#[inline(always)]
pub fn c5_forward(p: &[f32], x4: &[f32], x5: &mut [f32]) {
    dense_forward(params::C5_W.of(p), params::C5_B.of(p), x4, x5);
}
/// da5: (120, L) -> dx4: (400, L) (written), gradients added into g.
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
/// da6: (84, L) -> dx5: (120, L) (written), gradients added into g.
#[inline(always)]
pub fn f6_backward(p: &[f32], x5: &[f32], da6: &[f32], g: &mut [f32], dx5: &mut [f32]) {
    let (gw, gb) = crate::cpu::conv::split2(g, params::F6_W, params::F6_B);
    dense_backward(params::F6_W.of(p), x5, da6, gw, gb, dx5);
}
