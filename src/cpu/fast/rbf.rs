//! Output family, fast path: the RBF units over a block of LANES patterns (the losses are
//! per pattern and use the reference's `loss_forward_backward`).

use super::L;

/// x6: (84, L), centers: (10,84) -> y: (10, L)
#[inline(always)]
pub fn rbf_forward(centers: &[f32], x6: &[f32], y: &mut [f32]) {
    for i in 0..10 {
        let mut s = [0f32; L];
        for j in 0..84 {
            let c = centers[i * 84 + j];
            for l in 0..L {
                let d = x6[j * L + l] - c;
                s[l] += d * d;
            }
        }
        y[i * L..(i + 1) * L].copy_from_slice(&s);
    }
}

/// dy: (10, L) -> dx6: (84, L), dE/dx_j = sum_i dy_i * 2 (x_j - c_ij).
#[inline(always)]
pub fn rbf_backward(centers: &[f32], x6: &[f32], dy: &[f32], dx6: &mut [f32]) {
    dx6.fill(0.0);
    for i in 0..10 {
        for j in 0..84 {
            let c = centers[i * 84 + j];
            for l in 0..L {
                let d = dy[i * L + l] * 2.0;
                dx6[j * L + l] += d * (x6[j * L + l] - c);
            }
        }
    }
}

/// d2E/dx6^2 = 2 for the n patterns in use, 0 in the unused lanes.
#[inline(always)]
pub fn rbf_hessian(n: usize, d2x6: &mut [f32]) {
    for row in d2x6.chunks_exact_mut(L) {
        for (l, v) in row.iter_mut().enumerate() {
            *v = if l < n { 2.0 } else { 0.0 };
        }
    }
}
