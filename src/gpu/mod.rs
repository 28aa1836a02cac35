//! The GPU backend: every pass of LeNet-5 as WGSL compute kernels (`shaders/`), run through
//! wgpu. Device, pipelines, buffers and bind groups are built once. The training and test
//! sets are uploaded once as bytes; each pass uploads only its shuffled index list and one
//! small uniform record per batch, encodes all its batches into a few command buffers and
//! reads back only the per-pattern (loss, prediction) records at the end. Every sum has a
//! fixed order (no float atomics), so a seed gives the same weights on the same adapter.

mod api;
pub mod device;
mod encode;
mod inspect;
mod kernels;
mod readback;
mod setup;
mod shader;
mod storage;

pub use api::describe_adapter;
pub use inspect::Snapshot;
use kernels::*;
pub use shader::unroll;
use shader::*;
pub use storage::Reads;
use storage::*;

use crate::backend::{Backend, Evaluation, KernelTimes, Split, TrainStats};
use crate::cpu::Loss;
use crate::data::Dataset;
use crate::distort::Affine;
use crate::params::{self, C3_TABLE, N_PARAMS};
use crate::{Error, RBF_CENTERS, Result};
use std::sync::Arc;
use wgpu::util::DeviceExt;

pub use device::{
    AdapterChoice, Probed, describe_all, parse_api, pick, probe_in_child, probe_lines,
};

/// Per-pattern layout of the activation buffer: x0 .. x6, y.
pub const ACT_LAYOUT: [(&str, u32); 8] = [
    ("X0", 1024),
    ("X1", 4704),
    ("X2", 1176),
    ("X3", 1600),
    ("X4", 400),
    ("X5", 120),
    ("X6", 84),
    ("Y", 10),
];
/// Per-pattern layout of the delta buffer: d1 .. d6, dy.
pub const DELTA_LAYOUT: [(&str, u32); 7] = [
    ("D1", 4704),
    ("D2", 1176),
    ("D3", 1600),
    ("D4", 400),
    ("D5", 120),
    ("D6", 84),
    ("DY", 10),
];
/// Floats per pattern in the activation buffer: the layout, padded to a multiple of 64
/// floats (256 bytes, the row alignment of a texture-to-buffer copy, for read-backs).
pub const ACT_STRIDE: u32 = 9152;
/// After the deltas, each pattern has room for its partial parameter sums (`PART`): the
/// first stage of the two-stage C1, S2, C3 and S4 gradient reductions, in whole texels.
/// C3's is the largest: 60 links of 28 floats (25 weights and padding), then 6 texels of
/// bias sums at `C3_PART_BIAS`.
pub const PART_LEN: u32 = 60 * 28 + 6 * 4;
const C3_PART_BIAS: u32 = 60 * 28;
/// Where `PART` starts: after the deltas (8094 floats), at a whole texel.
const PART: u32 = 8096;
/// Floats per pattern in the delta buffer, padded as `ACT_STRIDE`.
pub const DELTA_STRIDE: u32 = (PART + PART_LEN).next_multiple_of(64);
/// The parameters of C1, S2, C3 and S4 (those before C5's), which kernels also read from a
/// uniform buffer: reads of a uniform buffer are the cheapest kind on CPU adapters.
const SMALL_PARAMS: u32 = params::C5_W.offset as u32;
/// Rows of 256 parameters (64 texels) in the parameter texture (textures.wgsl).
const PARAM_ROWS: u32 = (N_PARAMS as u32).div_ceil(256);
/// Floats in the state buffer: five parameter regions.
const STATE_LEN: u64 = 5 * N_PARAMS as u64;
const WG: u32 = 64;
/// Workgroup size of the dense-layer forward and input-gradient kernels (common.wgsl).
const DENSE_WG: u32 = 16;
/// Patterns per tile of the dense layers' forward and input-gradient kernels (common.wgsl).
const TILE_B: u32 = 16;
/// Workgroup size of the gradients' second-stage sums (`Size::Sum`).
const SUM_WG: u32 = 8;
/// Batches recorded into one command buffer, and how many such buffers may wait for the
/// device at once. Recorded work holds host memory (in wgpu and, on a CPU adapter, in the
/// driver) until it has run, so a pass of thousands of small batches must not all be queued
/// up front; two buffers of 16 batches keep any GPU busy.
const STEPS_PER_SUBMIT: usize = 16;
const MAX_IN_FLIGHT: usize = 2;
/// Uniform records are this far apart (the largest min_uniform_buffer_offset_alignment).
const STEP_STRIDE: u64 = 256;
/// The fewest patterns per batch when only evaluating; evaluation uses batches as large as
/// the buffers (the training batch, if larger). Each pattern of capacity costs 150 KB of
/// activations and deltas, host memory on a CPU adapter.
const EVAL_BATCH: usize = 64;

/// The uniform record of one batch (shaders/common.wgsl, `Step`).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Step {
    start: u32,
    batch: u32,
    mode: u32,
    loss: u32,
    map_j: f32,
    momentum: f32,
    side: u32,
    /// 1: warp each training image by its entry in `warps` (train --distort).
    distort: u32,
}

pub struct GpuBackend {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    pipelines: Vec<wgpu::ComputePipeline>,
    state: wgpu::Buffer,
    steps: wgpu::Buffer,
    steps_capacity: u64,
    layout: wgpu::BindGroupLayout,
    store: Store,
    /// The first SMALL_PARAMS parameters, then the RBF centres, as a uniform buffer.
    small: wgpu::Buffer,
    capacity: usize,
    train: SplitBuffers,
    test: SplitBuffers,
    loss: Loss,
    momentum: f32,
    max_groups: u32,
    /// Per training image, the 6 floats of its warp for this pass (distort::Affine).
    warps: wgpu::Buffer,
    distorting: bool,
    /// The device can time passes with timestamp queries (used by `profile`).
    timestamps: bool,
    /// The first error wgpu reported outside an error scope.
    fault: Arc<std::sync::Mutex<Option<String>>>,
}

/// Writes `bytes` into `buffer` a few MiB at a time, waiting for each piece, so the staging
/// memory wgpu takes for a write (host memory, on a CPU adapter) stays small instead of
/// holding a second copy of the whole training set.
pub(super) fn upload(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    buffer: &wgpu::Buffer,
    bytes: &[u8],
) {
    const PIECE: usize = 4 << 20;
    for (i, piece) in bytes.chunks(PIECE).enumerate() {
        queue.write_buffer(buffer, (i * PIECE) as u64, piece);
        queue.submit([]);
        let _ = device.poll(wgpu::PollType::wait_indefinitely());
    }
}

pub(super) fn gpu_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Gpu(format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::unroll;

    #[test]
    fn unroll_expands_nested_marked_loops_only() {
        let src = "var a: array<f32, 4>;\n\
                   /*unroll*/ for (var i = 0u; i < 2u; i++) {\n\
                   /*unroll*/ for (var j = 1u; j < 3u; j++) { a[i * 2u + j - 1u] = f(j); }\n\
                   }\n\
                   for (var k = 0u; k < n; k++) { g(k); }";
        let out = unroll(src);
        assert!(!out.contains("/*unroll*/"), "{out}");
        // 2 x 2 copies of the inner body, each in a block binding the loop variables.
        assert_eq!(
            out.matches("a[i * 2u + j - 1u] = f(j);").count(),
            4,
            "{out}"
        );
        assert_eq!(out.matches("let i = 0u;").count(), 1);
        assert_eq!(out.matches("let i = 1u;").count(), 1);
        assert_eq!(out.matches("let j = 1u;").count(), 2);
        assert_eq!(out.matches("let j = 2u;").count(), 2);
        // An unmarked loop is left alone.
        assert!(out.contains("for (var k = 0u; k < n; k++) { g(k); }"));
    }

    #[test]
    fn every_kernel_file_unrolls_to_valid_wgsl() {
        for (name, src) in super::SHADERS {
            for reads in [super::Reads::Textures, super::Reads::Storage] {
                let code = unroll(&format!("{}\n{src}", super::prelude(reads)));
                naga::front::wgsl::parse_str(&code)
                    .unwrap_or_else(|e| panic!("{name}, {reads:?}: {e}"));
            }
        }
    }

    #[test]
    fn every_kernel_is_in_its_file() {
        for (file, entry, _) in super::KERNELS {
            let (_, src) = super::SHADERS
                .iter()
                .find(|(name, _)| *name == file)
                .unwrap_or_else(|| panic!("{entry}: no shader file {file}"));
            assert!(
                src.contains(&format!("fn {entry}(")),
                "{entry} is not in {file}.wgsl"
            );
        }
    }

    #[test]
    #[should_panic(expected = "must not break or continue")]
    fn unroll_refuses_a_body_that_continues() {
        unroll("/*unroll*/ for (var i = 0u; i < 2u; i++) { if (x) { continue; } }");
    }
}
