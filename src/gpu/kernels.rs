//! The kernel table: entry point, WGSL file and dispatch size of every kernel, and the
//! positions of the passes in it.

use super::*;

/// How many workgroups a kernel needs.
#[derive(Clone, Copy)]
pub(super) enum Size {
    /// One thread per (pattern, unit): units per pattern.
    PerPattern(u32),
    /// One thread each for this many items.
    Threads(u32),
    /// One thread per tile of TILE_B patterns, times this many blocks of 8 units, in workgroups of
    /// `DENSE_WG` (dense layers; under 65535 groups for any batch below 80 million).
    Tiles(u32),
    /// One thread each for this many parameters (or groups of four) of a gradient's
    /// second stage, in workgroups of `SUM_WG`: there are few, and a CPU adapter runs each
    /// workgroup on one core, so small groups keep every core busy.
    Sum(u32),
}

/// Every kernel: (shader file, entry point, size). All files go into one module; the file
/// column says where to find the kernel (`every_kernel_is_in_its_file`).
pub(super) const KERNELS: [(&str, &str, Size); 25] = [
    ("input", "input_forward", Size::PerPattern(32)),
    ("conv", "c1_forward", Size::PerPattern(49)),
    ("subsample", "s2_forward", Size::PerPattern(1176 / 4)),
    ("conv", "c3_forward", Size::PerPattern(16)),
    ("subsample", "s4_forward", Size::PerPattern(400 / 4)),
    ("conv", "c5_forward", Size::Tiles(15)),
    ("full", "f6_forward", Size::Tiles(11)),
    ("rbf", "rbf_forward", Size::PerPattern(1)),
    ("rbf", "loss_forward_backward", Size::PerPattern(1)),
    ("rbf", "rbf_backward", Size::PerPattern(1)),
    ("full", "f6_backward_input", Size::Tiles(15)),
    ("conv", "c5_backward_input", Size::Tiles(50)),
    ("subsample", "s4_backward_input", Size::PerPattern(80)),
    ("conv", "c3_backward_input", Size::PerPattern(6)),
    ("full", "f6_backward_params", Size::Threads(6 * 15)),
    ("conv", "c5_backward_params", Size::Threads(8 * 50)),
    ("subsample", "s4_backward_params", Size::PerPattern(16)),
    ("subsample", "s4_backward_params_sum", Size::Sum(16)),
    ("conv", "c3_backward_params", Size::PerPattern(6)),
    ("conv", "c3_backward_params_sum", Size::Sum(60 * 7 + 6)),
    // Also computes d1 (from d2) and S2's parameter gradients (conv.wgsl), whose sums
    // c1_backward_params_sum adds with C1's.
    ("conv", "c1_backward_params", Size::PerPattern(7)),
    ("conv", "c1_backward_params_sum", Size::Sum(6 * 7)),
    ("update", "update", Size::Threads(N_PARAMS as u32 / 4)),
    ("input", "input_forward_distorted", Size::PerPattern(32)),
    // d1 for inspection (snapshot): training computes it inside c1_backward_params.
    ("subsample", "s2_backward_input", Size::PerPattern(588)),
];
/// Kernel index ranges: the forward pass, the loss, the backward pass, the update.
pub(super) const FORWARD: std::ops::Range<usize> = 0..8;
/// input_forward, the first kernel of the forward pass.
pub(super) const INPUT: usize = 0;
pub(super) const LOSS: usize = 8;
pub(super) const BACKWARD: std::ops::Range<usize> = 9..22;
pub(super) const UPDATE: usize = 22;
/// Replaces input_forward (INPUT) in batches whose step record says distort.
pub(super) const INPUT_DISTORTED: usize = 23;
/// Writes d1, which no training kernel reads.
pub(super) const S2_BACKWARD_INPUT: usize = 24;
