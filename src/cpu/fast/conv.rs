//! Convolution family, fast path: C1 and C3 as direct convolutions over a block of LANES
//! patterns (C5, whose kernels cover its whole input, is a dense layer in `full`).
//!
//! In the lane-major layout every input value is a vector of LANES patterns, so a
//! convolution is the reference loop with each scalar multiply-add turned into a vector
//! one, broadcasting the weight. The work is register-blocked: a strip of P outputs of one
//! row is accumulated in registers over all taps and links before it is stored, so each
//! input vector loaded serves up to 5 multiply-adds. Only the connections of the C3 table
//! are computed (no zero weights), and there is no im2col buffer.
//!
//! The forward sums run in the reference's order (bias, then link by link, tap by tap), so
//! in the portable and AVX2 builds the pre-activations are bit-identical to the
//! reference's; the AVX-512 build's kernels (`*_avx512`) keep that order with fused
//! multiply-adds, which round once per term, so they agree to rounding.

use super::{L, add_row_sums, reduce_lanes};
use crate::model::params::{self, C3_TABLE};

const K: usize = 5;

/// C1's table: each map reads the single input map.
const C1_MAPS: [&[usize]; 6] = [&[0]; 6];

/// acc[p] += sum over (ky, kx) of w[ky*5+kx] * x[oy+ky][ox+p+kx], x one (hin, hin L) map.
#[inline(always)]
fn conv_strip<const P: usize>(
    x: &[f32],
    hin: usize,
    (oy, ox): (usize, usize),
    w: &[f32],
    acc: &mut [[f32; L]; P],
) {
    for ky in 0..K {
        let row = &x[((oy + ky) * hin + ox) * L..][..(P + K - 1) * L];
        for kx in 0..K {
            let wv = w[ky * K + kx];
            for (p, a) in acc.iter_mut().enumerate() {
                let xv = &row[(p + kx) * L..(p + kx + 1) * L];
                for l in 0..L {
                    a[l] += wv * xv[l];
                }
            }
        }
    }
}

/// `y[o] = b[o] +` the sum over the links (o, m) of the valid 5x5 correlation of `x[m]` with the
/// link's kernel; x: (maps_in, hin*hin L), y: (maps.len(), ho*ho L), ho = hin - 4, which
/// P must divide. `w` holds 25 weights per link, link-major in table order.
#[inline(always)]
pub fn conv_forward<const P: usize>(
    x: &[f32],
    hin: usize,
    maps: &[&[usize]],
    w: &[f32],
    b: &[f32],
    y: &mut [f32],
) {
    let ho = hin - K + 1;
    debug_assert_eq!(ho % P, 0);
    let plane = hin * hin * L;
    let mut link = 0;
    for (o, ins) in maps.iter().enumerate() {
        for oy in 0..ho {
            for ox in (0..ho).step_by(P) {
                let mut acc = [[b[o]; L]; P];
                for (li, &m) in ins.iter().enumerate() {
                    let wk = &w[(link + li) * K * K..][..K * K];
                    let xm = &x[m * plane..][..plane];
                    conv_strip::<P>(xm, hin, (oy, ox), wk, &mut acc);
                }
                let out = &mut y[((o * ho + oy) * ho + ox) * L..][..P * L];
                for (p, a) in acc.iter().enumerate() {
                    out[p * L..(p + 1) * L].copy_from_slice(a);
                }
            }
        }
        link += ins.len();
    }
}

/// `conv_forward` in AVX-512 with fused multiply-adds: a whole output row (HO = 2 P2
/// positions) in P2 512-bit accumulators, each holding two adjacent positions of eight
/// patterns; same order of terms (bias, link by link, tap by tap), but each multiply-add
/// rounded once, so the pre-activations agree with the reference to rounding.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn conv_forward_avx512<const P2: usize>(
    x: &[f32],
    hin: usize,
    maps: &[&[usize]],
    w: &[f32],
    b: &[f32],
    y: &mut [f32],
) {
    use std::arch::x86_64::*;
    let ho = hin - K + 1;
    let plane = hin * hin * L;
    let links: usize = maps.iter().map(|m| m.len()).sum();
    let max_in = maps
        .iter()
        .flat_map(|m| m.iter())
        .max()
        .map_or(0, |&m| m + 1);
    assert!(
        ho == 2 * P2
            && x.len() >= max_in * plane
            && y.len() >= maps.len() * ho * ho * L
            && w.len() >= links * K * K
            && b.len() >= maps.len()
    );
    let mut link = 0;
    for (o, ins) in maps.iter().enumerate() {
        for oy in 0..ho {
            // SAFETY: the accumulator for positions (2p, 2p+1) with tap kx reads positions
            // 2p+kx and 2p+kx+1 <= ho-1+4 = hin-1 of input row oy+ky <= hin-1 of map m <
            // max_in, inside x by the assert; the stores fill output row oy of map o,
            // inside y by the assert.
            unsafe {
                let mut acc = [_mm512_set1_ps(b[o]); P2];
                for (li, &m) in ins.iter().enumerate() {
                    let wk = w.as_ptr().add((link + li) * K * K);
                    let xm = x.as_ptr().add(m * plane);
                    for ky in 0..K {
                        let row = xm.add((oy + ky) * hin * L);
                        for kx in 0..K {
                            let wv = _mm512_set1_ps(*wk.add(ky * K + kx));
                            for (p, a) in acc.iter_mut().enumerate() {
                                let xv = _mm512_loadu_ps(row.add((2 * p + kx) * L));
                                *a = _mm512_fmadd_ps(wv, xv, *a);
                            }
                        }
                    }
                }
                let out = y.as_mut_ptr().add((o * ho + oy) * ho * L);
                for (p, a) in acc.iter().enumerate() {
                    _mm512_storeu_ps(out.add(2 * p * L), *a);
                }
            }
        }
        link += ins.len();
    }
}

/// Lane vector `i` of a lane-major slice.
#[inline(always)]
fn vec_at(s: &[f32], i: usize) -> &[f32; L] {
    s[i * L..(i + 1) * L].try_into().unwrap()
}

/// For one tap row ky: acc[kx] += sum over (oy, ox) of d[oy][ox] * x[oy+ky][ox+kx], d one
/// (HO, HO L) map and x one (HO+4, HO+4 L) map. HO is a constant so the inner loops unroll.
#[inline(always)]
fn correlate<const HO: usize>(d: &[f32], x: &[f32], ky: usize, acc: &mut [[f32; L]; K]) {
    let hin = HO + K - 1;
    let (d, x) = (&d[..HO * HO * L], &x[..hin * hin * L]);
    #[cfg(target_arch = "x86_64")]
    match super::simd() {
        // SAFETY: the CPU has AVX-512 F and VL, and FMA (checked at run time).
        super::Simd::Avx512 => return unsafe { correlate_avx512::<HO>(d, x, ky, acc) },
        // SAFETY: the CPU has AVX2 (checked at run time).
        super::Simd::Avx2 => return unsafe { correlate_avx2::<HO>(d, x, ky, acc) },
        super::Simd::Portable => {}
    }
    for oy in 0..HO {
        let (drow, xrow) = (
            &d[oy * HO * L..][..HO * L],
            &x[(oy + ky) * hin * L..][..hin * L],
        );
        for ox in 0..HO {
            let dv = vec_at(drow, ox);
            for (kx, a) in acc.iter_mut().enumerate() {
                let xv = vec_at(xrow, ox + kx);
                for l in 0..L {
                    a[l] += dv[l] * xv[l];
                }
            }
        }
    }
}

/// `correlate` in AVX intrinsics: left to itself, the compiler vectorises that loop across
/// ox, with shuffles and spills, and runs it 8 times slower. The arithmetic is the same (a
/// multiply, then an add, per lane, in the same order), so results are bit-identical.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn correlate_avx2<const HO: usize>(
    d: &[f32],
    x: &[f32],
    ky: usize,
    acc: &mut [[f32; L]; K],
) {
    use std::arch::x86_64::*;
    let hin = HO + K - 1;
    assert!(d.len() >= HO * HO * L && x.len() >= hin * hin * L && ky < K);
    // SAFETY (all loads and stores): the largest offsets are (HO*HO - 1) L + 7 into d and
    // ((HO-1+ky) hin + HO-1+4) L + 7 < hin*hin L into x, by the assert; `acc`'s rows are
    // L = 8 floats.
    unsafe {
        let mut a: [__m256; K] = std::array::from_fn(|kx| _mm256_loadu_ps(acc[kx].as_ptr()));
        for oy in 0..HO {
            let drow = d.as_ptr().add(oy * HO * L);
            let xrow = x.as_ptr().add((oy + ky) * hin * L);
            for ox in 0..HO {
                let dv = _mm256_loadu_ps(drow.add(ox * L));
                for (kx, a) in a.iter_mut().enumerate() {
                    let xv = _mm256_loadu_ps(xrow.add((ox + kx) * L));
                    *a = _mm256_add_ps(*a, _mm256_mul_ps(dv, xv));
                }
            }
        }
        for (kx, a) in a.iter().enumerate() {
            _mm256_storeu_ps(acc[kx].as_mut_ptr(), *a);
        }
    }
}

/// `correlate` in AVX-512: two output positions (ox, ox + 1) at once, each 512-bit vector
/// holding eight patterns of each, with fused multiply-adds; the even and odd positions'
/// partial sums are added at the end, so the result agrees with `correlate_avx2` to
/// rounding. An odd HO leaves its last position to a 256-bit step.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn correlate_avx512<const HO: usize>(
    d: &[f32],
    x: &[f32],
    ky: usize,
    acc: &mut [[f32; L]; K],
) {
    use std::arch::x86_64::*;
    let hin = HO + K - 1;
    assert!(d.len() >= HO * HO * L && x.len() >= hin * hin * L && ky < K);
    // SAFETY (all loads and stores): a 512-bit load at position ox reads lanes of ox and
    // ox + 1, and ox + 1 < HO; so the largest offsets are as in `correlate_avx2`, inside
    // the slices by the assert; `acc`'s rows are L = 8 floats.
    unsafe {
        let mut a: [__m512; K] = [_mm512_setzero_ps(); K];
        let mut tail: [__m256; K] = [_mm256_setzero_ps(); K];
        for oy in 0..HO {
            let drow = d.as_ptr().add(oy * HO * L);
            let xrow = x.as_ptr().add((oy + ky) * hin * L);
            let mut ox = 0;
            while ox + 1 < HO {
                let dv = _mm512_loadu_ps(drow.add(ox * L));
                for (kx, a) in a.iter_mut().enumerate() {
                    let xv = _mm512_loadu_ps(xrow.add((ox + kx) * L));
                    *a = _mm512_fmadd_ps(dv, xv, *a);
                }
                ox += 2;
            }
            if ox < HO {
                let dv = _mm256_loadu_ps(drow.add(ox * L));
                for (kx, t) in tail.iter_mut().enumerate() {
                    let xv = _mm256_loadu_ps(xrow.add((ox + kx) * L));
                    *t = _mm256_fmadd_ps(dv, xv, *t);
                }
            }
        }
        for kx in 0..K {
            let even = _mm512_castps512_ps256(a[kx]);
            let odd = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(a[kx])));
            let sum = _mm256_add_ps(_mm256_add_ps(even, odd), tail[kx]);
            let prev = _mm256_loadu_ps(acc[kx].as_ptr());
            _mm256_storeu_ps(acc[kx].as_mut_ptr(), _mm256_add_ps(prev, sum));
        }
    }
}

/// `gw[link] +=` for each tap (ky, kx): the sum over outputs (oy, ox) and lanes of
/// `da[o][oy][ox] * x[m][oy+ky][ox+kx]`, for every link (o, m) of `maps`; HO = hin - 4.
#[inline(always)]
pub fn conv_backward_params<const HO: usize>(
    x: &[f32],
    maps: &[&[usize]],
    da: &[f32],
    gw: &mut [f32],
) {
    let (hin, out_plane) = (HO + K - 1, HO * HO * L);
    let in_plane = hin * hin * L;
    let mut link = 0;
    for (o, ins) in maps.iter().enumerate() {
        for &m in ins.iter() {
            for ky in 0..K {
                let mut acc = [[0f32; L]; K];
                let (dm, xm) = (
                    &da[o * out_plane..][..out_plane],
                    &x[m * in_plane..][..in_plane],
                );
                correlate::<HO>(dm, xm, ky, &mut acc);
                for (kx, a) in acc.iter().enumerate() {
                    gw[link * K * K + ky * K + kx] += reduce_lanes(a);
                }
            }
            link += 1;
        }
    }
}

/// x0: (1024 L) -> x1: (6, 784 L), squashed, as the reference's `c1_forward`.
#[inline(always)]
pub fn c1_forward(p: &[f32], x0: &[f32], x1: &mut [f32]) {
    c1_sums(p, x0, x1);
    super::squash_in_place(x1);
}

/// x0: (1024 L) -> a1: (6, 784 L), the pre-activations.
#[inline(always)]
fn c1_sums(p: &[f32], x0: &[f32], a1: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::simd() == super::Simd::Avx512 {
        let (w, b) = (params::C1_W.of(p), params::C1_B.of(p));
        // SAFETY: the CPU has AVX-512 F and VL, and FMA (checked at run time).
        return unsafe { conv_forward_avx512::<14>(x0, 32, &C1_MAPS, w, b, a1) };
    }
    conv_forward::<7>(x0, 32, &C1_MAPS, params::C1_W.of(p), params::C1_B.of(p), a1);
}

/// da1: (6, 784 L): dE/dW1 and dE/db1 added into g. (No input gradient.)
#[inline(always)]
pub fn c1_backward(x0: &[f32], da1: &[f32], g: &mut [f32]) {
    conv_backward_params::<28>(x0, &C1_MAPS, da1, params::C1_W.of_mut(g));
    add_row_sums(da1, 6, params::C1_B.of_mut(g));
}

/// x2: (6, 196 L) -> x3: (16, 100 L), squashed, over the links of the table.
#[inline(always)]
pub fn c3_forward(p: &[f32], x2: &[f32], x3: &mut [f32]) {
    c3_sums(p, x2, x3);
    super::squash_in_place(x3);
}

/// x2: (6, 196 L) -> a3: (16, 100 L), the pre-activations.
#[inline(always)]
fn c3_sums(p: &[f32], x2: &[f32], a3: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::simd() == super::Simd::Avx512 {
        let (w, b) = (params::C3_W.of(p), params::C3_B.of(p));
        // SAFETY: the CPU has AVX-512 F and VL, and FMA (checked at run time).
        return unsafe { conv_forward_avx512::<5>(x2, 14, &C3_TABLE, w, b, a3) };
    }
    conv_forward::<5>(
        x2,
        14,
        &C3_TABLE,
        params::C3_W.of(p),
        params::C3_B.of(p),
        a3,
    );
}

/// For each S2 map m, the 10 C3 maps that read it, in increasing order.
pub const C3_READERS: [[usize; 10]; 6] = {
    let mut r = [[0usize; 10]; 6];
    let mut n = [0usize; 6];
    let mut o = 0;
    while o < 16 {
        let ins = C3_TABLE[o];
        let mut i = 0;
        while i < ins.len() {
            let m = ins[i];
            r[m][n[m]] = o;
            n[m] += 1;
            i += 1;
        }
        o += 1;
    }
    r
};

/// C3's weights rearranged for the input gradient: for S2 map m and its j-th reader o
/// (C3_READERS), the kernel of link (o, m) rotated by 180 degrees, at (m*10 + j)*25.
/// `dE/dx2[m]` is then the full correlation of its readers' dE/da3 maps with these kernels
/// (`c3_backward_input`).
pub fn c3_transposed(p: &[f32], w3t: &mut [f32]) {
    let c3 = params::C3_W.of(p);
    for (m, readers) in C3_READERS.iter().enumerate() {
        for (j, &o) in readers.iter().enumerate() {
            let li = C3_TABLE[o].iter().position(|&v| v == m).unwrap();
            let src = &c3[(params::c3_link_start(o) + li) * K * K..][..K * K];
            let dst = &mut w3t[(m * 10 + j) * K * K..][..K * K];
            for t in 0..K * K {
                dst[t] = src[K * K - 1 - t];
            }
        }
    }
}

/// acc[p] += sum over (ky in kys, kx) of w[ky*5+kx] * d[iy+ky-4][X0+p+kx-4], d one
/// (10, 10 L) map of dE/da3 seen with a zero border of 4: the terms that fall in the
/// border are left out. X0 and P are constants, so which those are is settled at compile
/// time, and `kys` skips the border rows.
#[inline(always)]
fn full_strip<const P: usize, const X0: usize>(
    d: &[f32],
    iy: usize,
    kys: std::ops::Range<usize>,
    w: &[f32],
    acc: &mut [[f32; L]; P],
) {
    for ky in kys {
        let row = &d[(iy + ky - 4) * 10 * L..][..10 * L];
        for kx in 0..K {
            let wv = w[ky * K + kx];
            for (p, a) in acc.iter_mut().enumerate() {
                let c = X0 + p + kx;
                if (4..14).contains(&c) {
                    let xv = &row[(c - 4) * L..(c - 3) * L];
                    for l in 0..L {
                        a[l] += wv * xv[l];
                    }
                }
            }
        }
    }
}

/// dx2: (6, 196 L) = dE/dx2 from da3: (16, 100 L): for each S2 map, the full correlation
/// of its 10 readers' dE/da3 maps with their rotated kernels (`w3t`), in strips of 7.
#[inline(always)]
fn c3_backward_input(w3t: &[f32], da3: &[f32], dx2: &mut [f32]) {
    for (m, readers) in C3_READERS.iter().enumerate() {
        for iy in 0..14 {
            let kys = 4usize.saturating_sub(iy)..K.min(14 - iy);
            // One half-row at a time: its 7 accumulators stay in registers over all readers
            // (both halves at once would need 14 of AVX2's 16 and spill). Each output's sum
            // runs in the same order either way.
            let out = &mut dx2[(m * 196 + iy * 14) * L..][..14 * L];
            let (left_out, right_out) = out.split_at_mut(7 * L);
            let mut left = [[0f32; L]; 7];
            for (j, &o) in readers.iter().enumerate() {
                let d = &da3[o * 100 * L..][..100 * L];
                let wk = &w3t[(m * 10 + j) * K * K..][..K * K];
                full_strip::<7, 0>(d, iy, kys.clone(), wk, &mut left);
            }
            let mut right = [[0f32; L]; 7];
            for (j, &o) in readers.iter().enumerate() {
                let d = &da3[o * 100 * L..][..100 * L];
                let wk = &w3t[(m * 10 + j) * K * K..][..K * K];
                full_strip::<7, 7>(d, iy, kys.clone(), wk, &mut right);
            }
            for (p, a) in left.iter().enumerate() {
                left_out[p * L..(p + 1) * L].copy_from_slice(a);
            }
            for (p, a) in right.iter().enumerate() {
                right_out[p * L..(p + 1) * L].copy_from_slice(a);
            }
        }
    }
}

/// `c3_backward_input` in AVX-512 with fused multiply-adds: each dE/da3 map is first copied
/// into a zero border of 4 columns on each side, so every tap is one unaligned 512-bit load
/// of two adjacent positions, and a whole row of 14 outputs sits in 7 accumulators over
/// all readers, rows and taps; the terms come in the same order as in `full_strip`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn c3_backward_input_avx512(w3t: &[f32], da3: &[f32], dx2: &mut [f32]) {
    use std::arch::x86_64::*;
    const PW: usize = 18; // 4 + 10 + 4 columns
    assert!(w3t.len() >= 60 * K * K && da3.len() >= 16 * 100 * L && dx2.len() >= 6 * 196 * L);
    let mut pad = vec![0f32; 16 * 10 * PW * L];
    for o in 0..16 {
        for r in 0..10 {
            let src = &da3[(o * 100 + r * 10) * L..][..10 * L];
            pad[((o * 10 + r) * PW + 4) * L..][..10 * L].copy_from_slice(src);
        }
    }
    for (m, readers) in C3_READERS.iter().enumerate() {
        for iy in 0..14 {
            let kys = 4usize.saturating_sub(iy)..K.min(14 - iy);
            // SAFETY: rows iy+ky-4 in 0..10 (kys keeps them there) of reader maps o < 16;
            // columns 2p+kx+1 <= 17 < PW; the stores fill row iy of S2 map m: all inside
            // pad and dx2 by the assert and pad's size.
            unsafe {
                let mut acc = [_mm512_setzero_ps(); 7];
                for (j, &o) in readers.iter().enumerate() {
                    let wk = w3t.as_ptr().add((m * 10 + j) * K * K);
                    for ky in kys.clone() {
                        let row = pad.as_ptr().add((o * 10 + iy + ky - 4) * PW * L);
                        for kx in 0..K {
                            let wv = _mm512_set1_ps(*wk.add(ky * K + kx));
                            for (p, a) in acc.iter_mut().enumerate() {
                                let dv = _mm512_loadu_ps(row.add((2 * p + kx) * L));
                                *a = _mm512_fmadd_ps(wv, dv, *a);
                            }
                        }
                    }
                }
                let out = dx2.as_mut_ptr().add((m * 196 + iy * 14) * L);
                for (p, a) in acc.iter().enumerate() {
                    _mm512_storeu_ps(out.add(2 * p * L), *a);
                }
            }
        }
    }
}

/// da3: (16, 100 L) -> dE/dW3 (the table's links) and dE/db3 added into g; dx2:
/// (6, 196 L) overwritten with dE/dx2. `w3t` from `c3_transposed`.
#[inline(always)]
pub fn c3_backward(x2: &[f32], w3t: &[f32], da3: &[f32], g: &mut [f32], dx2: &mut [f32]) {
    conv_backward_params::<10>(x2, &C3_TABLE, da3, params::C3_W.of_mut(g));
    add_row_sums(da3, 16, params::C3_B.of_mut(g));
    #[cfg(target_arch = "x86_64")]
    if super::simd() == super::Simd::Avx512 {
        // SAFETY: the CPU has AVX-512 F and VL, and FMA (checked at run time).
        return unsafe { c3_backward_input_avx512(w3t, da3, dx2) };
    }
    c3_backward_input(w3t, da3, dx2);
}
