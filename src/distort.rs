//! *Internal:* Random affine distortions of the training digits (`train --distort`), as in LeCun et al.
//! (1998) section III-C-7: horizontal and vertical translation, scaling, squeezing
//! (horizontal compression with vertical elongation, or the reverse) and horizontal
//! shearing. Each training image gets a fresh distortion every pass.
//!
//! The parameters are drawn on the host from (seed, pass), so a run is reproducible and
//! both backends see the same distribution (the same draws, even); the warp itself runs
//! where the input layer runs: `input_forward_distorted` on the CPU, `input_forward` in
//! shaders/input.wgsl on the GPU (its twin).

use crate::cpu::Real;
use crate::model::{INPUT_BACKGROUND, INPUT_SCALE};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Ranges of the random distortion, each drawn uniformly in [-x, x].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranges {
    /// Shift in pixels, each direction.
    pub translate: f32,
    /// log of the overall scale factor.
    pub log_scale: f32,
    /// log of the squeeze: width x e^-q, height x e^q (area unchanged).
    pub log_squeeze: f32,
    /// Horizontal shear: x' = x + shear * y.
    pub shear: f32,
}

/// The default ranges: up to 2 px of shift (the padding of the 32x32 input), +-10% scale,
/// +-10% squeeze, +-0.3 shear (about 17 degrees of slant).
pub const RANGES: Ranges = Ranges {
    translate: 2.0,
    log_scale: 0.1,
    log_squeeze: 0.1,
    shear: 0.3,
};

/// An affine map of the 32x32 input plane, stored as its inverse: the input pixel centre
/// u (relative to the plane's centre (16, 16)) samples the source image at
/// `m * u + t` (relative to the same centre). Laid out as the GPU reads it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Affine {
    /// Row-major 2x2 inverse matrix m00, m01, m10, m11, then the offset t (x, y).
    pub m: [f32; 4],
    pub t: [f32; 2],
}

impl Affine {
    pub const IDENTITY: Affine = Affine {
        m: [1.0, 0.0, 0.0, 1.0],
        t: [0.0, 0.0],
    };

    /// The forward map's area factor (ink mass scales by it).
    pub fn area(&self) -> f32 {
        1.0 / (self.m[0] * self.m[3] - self.m[1] * self.m[2])
    }

    /// One random distortion with the given ranges.
    pub fn draw(rng: &mut ChaCha8Rng, r: &Ranges) -> Affine {
        let mut u = |x: f32| {
            if x > 0.0 {
                rng.random_range(-x..x)
            } else {
                0.0
            }
        };
        let (tx, ty) = (u(r.translate), u(r.translate));
        let s = u(r.log_scale).exp();
        let q = u(r.log_squeeze).exp();
        let h = u(r.shear);
        // Forward: A = diag(s / q, s * q) * [[1, h], [0, 1]]; p' = A p + (tx, ty).
        let (a00, a01, a10, a11) = (s / q, s / q * h, 0.0f32, s * q);
        let det = a00 * a11 - a01 * a10;
        let m = [a11 / det, -a01 / det, -a10 / det, a00 / det];
        // Inverse: p = A^-1 (p' - t).
        let t = [-(m[0] * tx + m[1] * ty), -(m[2] * tx + m[3] * ty)];
        Affine { m, t }
    }
}

/// The distortions of pass `epoch` for training images 0..n (one each, by image index).
pub fn pass_distortions(seed: u64, epoch: u32, n: usize, r: &Ranges) -> Vec<Affine> {
    // A stream of its own, so that a run with --distort shuffles and samples the Hessian
    // exactly as one without.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream((1u64 << 32) | epoch as u64);
    (0..n).map(|_| Affine::draw(&mut rng, r)).collect()
}

/// A u8 image of side 28 or 32, warped by `a` with bilinear interpolation (outside the
/// image is background) -> x0: (1,32,32), scaled like `input_forward`.
pub fn input_forward_distorted<T: Real>(img: &[u8], side: usize, a: &Affine, x0: &mut [T]) {
    let pad = (32 - side) as f32 / 2.0;
    let px = |x: i32, y: i32| -> f32 {
        if x < 0 || y < 0 || x >= side as i32 || y >= side as i32 {
            0.0
        } else {
            img[y as usize * side + x as usize] as f32
        }
    };
    // From plane coordinates (relative to the centre) to image pixel coordinates (pixel
    // centres at integers).
    let shift = 16.0 - pad - 0.5;
    for r in 0..32 {
        for c in 0..32 {
            let (ux, uy) = (c as f32 + 0.5 - 16.0, r as f32 + 0.5 - 16.0);
            let sx = a.m[0] * ux + a.m[1] * uy + a.t[0] + shift;
            let sy = a.m[2] * ux + a.m[3] * uy + a.t[1] + shift;
            let (x0f, y0f) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0f, sy - y0f);
            let (xi, yi) = (x0f as i32, y0f as i32);
            let top = px(xi, yi) * (1.0 - fx) + px(xi + 1, yi) * fx;
            let bottom = px(xi, yi + 1) * (1.0 - fx) + px(xi + 1, yi + 1) * fx;
            let v = top * (1.0 - fy) + bottom * fy;
            x0[r * 32 + c] = T::c(v as f64 * INPUT_SCALE + INPUT_BACKGROUND);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::input_forward;

    #[test]
    fn identity_reproduces_the_plain_input() {
        let img: Vec<u8> = (0..784).map(|i| (i * 7 % 256) as u8).collect();
        let (mut a, mut b) = (vec![0f32; 1024], vec![0f32; 1024]);
        input_forward(&img, 28, &mut a);
        input_forward_distorted(&img, 28, &Affine::IDENTITY, &mut b);
        let d = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(d < 1e-5, "max diff {d}");
    }

    #[test]
    fn draws_stay_in_range_and_are_reproducible() {
        let d = pass_distortions(3, 2, 1000, &RANGES);
        assert_eq!(d, pass_distortions(3, 2, 1000, &RANGES));
        assert_ne!(d, pass_distortions(3, 3, 1000, &RANGES));
        for a in &d {
            let area = a.area();
            assert!(
                (0.2f32.exp().recip()..=0.2f32.exp()).contains(&area),
                "{a:?}"
            );
        }
    }
}
