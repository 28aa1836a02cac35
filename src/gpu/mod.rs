//! The GPU backend: every pass of LeNet-5 as WGSL compute kernels (`shaders/`), run through
//! wgpu. Device, pipelines, buffers and bind groups are built once. The training and test
//! sets are uploaded once as bytes; each pass uploads only its shuffled index list and one
//! small uniform record per batch, encodes all its batches into a few command buffers and
//! reads back only the per-pattern (loss, prediction) records at the end. Every sum has a
//! fixed order (no float atomics), so a seed gives the same weights on the same adapter.

mod api;
mod bindings;
pub mod cache;
pub mod costs;
pub mod device;
mod encode;
mod inspect;
mod kernels;
mod portable;
mod readback;
mod setup;
mod shader;
mod storage;

pub use api::describe_adapter;
use bindings::*;
pub use inspect::{Snapshot, snapshot_kernels};
use kernels::*;
pub use kernels::{Family, KERNELS, Kernel, KernelSpec, Size};
use setup::Shared;
pub use shader::unroll;
use shader::*;
pub use storage::Reads;
use storage::*;

use crate::backend::{Backend, Evaluation, KernelTime, KernelTimes, Split, TrainStats};
use crate::data::Dataset;
use crate::distort::Affine;
use crate::model::RBF_CENTERS;
use crate::model::params::{self, C3_TABLE, N_PARAMS};
use crate::model::{ACTIVATIONS, DELTAS, Loss, N_CENTRES, Sweep, packed};
use crate::{Error, Result};
use std::sync::Arc;
use wgpu::util::DeviceExt;

pub use device::{
    AdapterChoice, Probed, describe_all, parse_api, pick, probe_in_child, probe_lines,
};

/// Where each tensor of `model::ACTIVATIONS` starts in a pattern's activation record, each
/// on a texel (4 floats): kernels read and write whole texels.
pub const ACT_OFFSETS: [usize; 8] = ACT_RECORD.0;
const ACT_RECORD: ([usize; 8], usize) = packed(&ACTIVATIONS, 4);
/// Floats per pattern in the activation buffer: the record, padded to a multiple of 64
/// floats (256 bytes, the row alignment of a texture-to-buffer copy, for read-backs).
pub const ACT_STRIDE: u32 = (ACT_RECORD.1 as u32).next_multiple_of(64);
/// Where each tensor of `model::DELTAS` starts in a pattern's delta record.
pub const DELTA_OFFSETS: [usize; 7] = DELTA_RECORD.0;
const DELTA_RECORD: ([usize; 7], usize) = packed(&DELTAS, 4);
/// After the deltas, each pattern has room for its partial parameter sums (`PART`): the
/// first stage of the two-stage C1, S2, C3 and S4 gradient reductions. The software
/// family's are in whole texels, C3's the largest: 60 links of 28 floats (25 weights and
/// padding), then 6 texels of bias sums at `C3_PART_BIAS`. The hardware family's mirror the
/// flat layout of those layers' parameters, SMALL_PARAMS floats.
pub const PART_LEN: u32 = max(60 * 28 + 6 * 4, SMALL_PARAMS.next_multiple_of(4));
const fn max(a: u32, b: u32) -> u32 {
    if a > b { a } else { b }
}
const C3_PART_BIAS: u32 = 60 * 28;
/// Where `PART` starts: after the deltas, at a whole texel.
const PART: u32 = (DELTA_RECORD.1 as u32).next_multiple_of(4);
/// Floats per pattern in the delta buffer, padded as `ACT_STRIDE`.
pub const DELTA_STRIDE: u32 = (PART + PART_LEN).next_multiple_of(64);
/// The parameters of C1, S2, C3 and S4 (those before C5's), which kernels also read from a
/// uniform buffer: reads of a uniform buffer are the cheapest kind on CPU adapters.
const SMALL_PARAMS: u32 = params::C5_W.offset as u32;
/// Rows of 256 parameters (64 texels) in the parameter texture (textures.wgsl).
const PARAM_ROWS: u32 = (N_PARAMS as u32).div_ceil(256);
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

pub struct GpuBackend {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    /// Indexed by `Kernel`: the pipelines of the family in use.
    pipelines: Vec<Option<wgpu::ComputePipeline>>,
    family: Family,
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

    /// Each family with each storage it runs on.
    const COMBINATIONS: [(super::Reads, super::Family); 4] = [
        (super::Reads::Textures, super::Family::Software),
        (super::Reads::Storage, super::Family::Software),
        (super::Reads::Storage, super::Family::Hardware),
        (super::Reads::Storage, super::Family::Simple),
    ];

    #[test]
    fn every_kernel_file_unrolls_to_valid_wgsl() {
        for (reads, family) in COMBINATIONS {
            for (name, src) in super::SHADERS
                .iter()
                .filter(|(n, _)| family.files().contains(n))
            {
                // The software family's files share the dense-layer code, and the hardware
                // family's head_forward calls loss.wgsl's loss_at.
                let shared = match family {
                    super::Family::Software if *name != "dense" => "dense",
                    super::Family::Hardware if *name == "fused" => "loss",
                    _ => "",
                };
                let dense = super::SHADERS
                    .iter()
                    .find(|(n, _)| *n == shared)
                    .map_or("", |f| f.1);
                let code = unroll(&format!("{}\n{dense}\n{src}", super::prelude(reads)));
                naga::front::wgsl::parse_str(&code)
                    .unwrap_or_else(|e| panic!("{name}, {reads:?}: {e}"));
            }
        }
    }

    #[test]
    fn every_kernel_is_in_its_file() {
        for k in super::KERNELS {
            let (_, src) = super::SHADERS
                .iter()
                .find(|(name, _)| *name == k.file)
                .unwrap_or_else(|| panic!("{}: no shader file {}", k.entry, k.file));
            assert!(
                src.contains(&format!("fn {}(", k.entry)),
                "{} is not in {}.wgsl",
                k.entry,
                k.file
            );
        }
    }

    /// Every entry point declares the workgroup size its registry entry's dispatch
    /// arithmetic assumes, and every entry point in the files is in the registry.
    #[test]
    fn workgroup_sizes_agree_with_the_registry() {
        for (reads, family) in COMBINATIONS {
            let code = super::module_source(reads, family);
            let module = naga::front::wgsl::parse_str(&code).unwrap();
            for k in family.kernels() {
                let e = module
                    .entry_points
                    .iter()
                    .find(|e| e.name == k.entry)
                    .unwrap_or_else(|| panic!("no entry point {}", k.entry));
                assert_eq!(e.workgroup_size, [k.size.workgroup(), 1, 1], "{}", k.entry);
            }
            for e in &module.entry_points {
                assert!(
                    family.kernels().any(|k| k.entry == e.name),
                    "{} is in no registry entry of its family",
                    e.name
                );
            }
        }
    }

    /// The generated `Step` is the Rust record, field for field (naga's layout of the
    /// WGSL struct against the Rust struct's size).
    #[test]
    fn step_record_matches_its_wgsl_twin() {
        let code = format!(
            "{}\n@compute @workgroup_size(1) fn main() {{ _ = step.start; }}",
            super::header(super::Reads::Storage)
        );
        let module = naga::front::wgsl::parse_str(&code).unwrap();
        let ty = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some("Step"))
            .unwrap()
            .1;
        let naga::TypeInner::Struct { members, span } = &ty.inner else {
            panic!("Step is not a struct")
        };
        assert_eq!(*span as u64, super::STEP_BYTES);
        assert_eq!(members.len(), super::STEP_BYTES as usize / 4);
        for (i, m) in members.iter().enumerate() {
            assert_eq!(m.offset as usize, 4 * i, "{:?}", m.name);
        }
    }

    #[test]
    #[should_panic(expected = "must not break or continue")]
    fn unroll_refuses_a_body_that_continues() {
        unroll("/*unroll*/ for (var i = 0u; i < 2u; i++) { if (x) { continue; } }");
    }
}
