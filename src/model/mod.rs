//! *Internal:* The model every implementation shares, the spec the CPU reference, the fast CPU path
//! and the GPU kernels all derive from: the parameter layout (`params`), the per-pattern
//! activation and delta layout (`layout`), the layers' arithmetic (`layers`), the loss, the squashing function's constants,
//! the input scaling and the RBF centres.

pub mod layers;
pub mod layout;
pub mod params;

pub use layout::*;

/// The training criterion (LeCun et al. 1998, section II-C), per pattern with correct
/// class D:
/// - `Mse` (the paper's maximum-likelihood criterion): E = y_D.
/// - `Map { j }` (the paper's MAP criterion): E = y_D + ln(e^-j + sum_i e^-y_i).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    Mse,
    Map { j: f64 },
}

/// Squashing function constants: f(a) = A tanh(S a) (appendix A of the paper).
pub const SQUASH_A: f64 = 1.7159;
pub const SQUASH_S: f64 = 2.0 / 3.0;

/// Background and ink levels of the input: x = p/255 * 1.275 - 0.1, so the background is
/// -0.1 and full ink 1.175 (section III-A: mean about 0, variance about 1).
pub const INPUT_BACKGROUND: f64 = -0.1;
pub const INPUT_SCALE: f64 = 1.275 / 255.0;

/// Output classes, and the RBF centre of each: a 7x12 picture of its digit.
pub const CLASSES: usize = 10;
pub const CENTRE_LEN: usize = 84;
/// Values in `RBF_CENTERS`: (CLASSES, CENTRE_LEN).
pub const N_CENTRES: usize = CLASSES * CENTRE_LEN;

include!(concat!(env!("OUT_DIR"), "/rbf_centers.rs"));
const _: () =
    assert!(RBF_CENTERS.len() == N_CENTRES && Y.len() == CLASSES && X6.len() == CENTRE_LEN);

/// What a backward sweep computes: the paper's two passes over the same layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// First derivatives (the `<layer>_backward` functions).
    Backward,
    /// SDLM second derivatives (`<layer>_hessian`): squared parameters, squared inputs,
    /// f'^2, the f'' term dropped.
    Hessian,
}
