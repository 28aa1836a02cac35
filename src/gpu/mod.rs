//! *Internal:* The GPU backend: every pass of LeNet-5 as WGSL compute kernels (`shaders/`), run through
//! wgpu, in one of two kernel families (`Family`): `fused`, shaped for GPUs, and `simple`,
//! one invocation per output value. Device, pipelines, buffers and bind groups are built
//! once (`setup.rs`). The training and test sets are uploaded once as bytes; each pass
//! uploads only its shuffled index list and one small uniform record per batch, encodes all
//! its batches into a few command buffers and reads back only the per-pattern (loss,
//! prediction) records at the end (`batch.rs`). Every sum has a fixed order (no float
//! atomics), so a seed gives the same weights on the same adapter and family.

mod api;
mod batch;
mod bindings;
pub mod costs;
pub mod device;
mod encode;
mod inspect;
mod kernels;
mod portable;
mod readback;
mod setup;
mod shader;

pub use api::describe_adapter;
pub use device::{
    AdapterChoice, Probed, adapters, api_name, parse_api, pick, probe_in_child, probe_lines,
};

/// A short hash of a family's WGSL module as this build generates it: a check done with
/// other kernels does not count (`check::key`).
pub fn kernel_hash(family: Family) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(shader::module_source(family).as_bytes());
    h[..8].iter().map(|b| format!("{b:02x}")).collect()
}
pub use inspect::Snapshot;
pub use kernels::{Family, KERNELS, Kernel, KernelSpec, Size};

use crate::Error;
use crate::model::{ACTIVATIONS, DELTAS, Loss, packed};
use kernels::SMALL_PARAMS;
use std::sync::{Arc, Mutex};

/// Where each tensor of `model::ACTIVATIONS` starts in a pattern's activation record.
pub const ACT_OFFSETS: [usize; 8] = ACT_RECORD.0;
const ACT_RECORD: ([usize; 8], usize) = packed(&ACTIVATIONS, 4);
/// Floats per pattern in the activation buffer.
pub const ACT_STRIDE: u32 = ACT_RECORD.1 as u32;
/// Where each tensor of `model::DELTAS` starts in a pattern's delta record.
pub const DELTA_OFFSETS: [usize; 7] = DELTA_RECORD.0;
const DELTA_RECORD: ([usize; 7], usize) = packed(&DELTAS, 4);
/// After the deltas, each pattern has room for its share of the C1, S2, C3 and S4
/// parameter gradients (the fused family's first stage), in their flat layout.
const PART: u32 = DELTA_RECORD.1 as u32;
/// Floats per pattern in the delta buffer.
pub const DELTA_STRIDE: u32 = (PART + SMALL_PARAMS).next_multiple_of(4);
/// Batches recorded into one command buffer, and how many such buffers may wait for the
/// device at once. Recorded work holds host memory (in wgpu and, on a CPU adapter, in the
/// driver) until it has run, so a pass of thousands of small batches must not all be queued
/// up front; two buffers of 16 batches keep any GPU busy.
const STEPS_PER_SUBMIT: usize = 16;
const MAX_IN_FLIGHT: usize = 2;
/// Uniform records are this far apart (the largest min_uniform_buffer_offset_alignment).
const STEP_STRIDE: u64 = 256;
/// The largest batch the GPU backend runs. Every kernel's dispatch grows with the batch
/// (the per-pattern kernels' grids, `grad_sum_update`'s loop over the batch); at this one
/// the largest, `conv_backward_params`, is 2.3 GFLOP, under 0.6 s even at 4 GFLOP/s, so no
/// dispatch nears a display driver's 2 s watchdog on a slow GPU (docs/design.md 4.7).
pub const MAX_BATCH: usize = 4096;
/// The fewest patterns per batch when only evaluating; evaluation uses batches as large as
/// the buffers (the training batch, if larger).
const EVAL_BATCH: usize = 64;

pub struct GpuBackend {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    /// Indexed by `Kernel`: the pipelines of the family in use (None for the other's).
    pipelines: Vec<Option<wgpu::ComputePipeline>>,
    family: Family,
    buf: Buffers,
    steps_capacity: u64,
    layout: wgpu::BindGroupLayout,
    capacity: usize,
    train: SplitBuffers,
    test: SplitBuffers,
    loss: Loss,
    momentum: f32,
    max_groups: u32,
    distorting: bool,
    /// The device can time passes with timestamp queries (used by `profile`).
    timestamps: bool,
    /// The first error wgpu reported outside an error scope, or the device's loss.
    fault: Arc<Mutex<Option<String>>>,
    /// Test-only: kernels not dispatched (`LENET_FAULT=corrupt:...`, `fault::corrupted`).
    skip: Vec<Kernel>,
}

/// The buffers every bind group shares, besides a split's own.
struct Buffers {
    /// [params | grad | eps | velocity | hacc] (`bindings::Region`).
    state: wgpu::Buffer,
    /// One `Step` record per batch of a pass, STEP_STRIDE apart.
    steps: wgpu::Buffer,
    /// (capacity, ACT_STRIDE): each pattern's activations.
    acts: wgpu::Buffer,
    /// (capacity, DELTA_STRIDE): each pattern's deltas and partial sums.
    deltas: wgpu::Buffer,
    /// The first SMALL_PARAMS parameters, then the RBF centres and the C3 table, as a
    /// uniform buffer.
    small: wgpu::Buffer,
    /// Per training image, the 6 floats of its warp for this pass (distort::Affine).
    warps: wgpu::Buffer,
}

/// The buffers of one split, and its bind group (every binding: these and the backend's).
struct SplitBuffers {
    bind_group: wgpu::BindGroup,
    images: wgpu::Buffer,
    labels_buf: wgpu::Buffer,
    order: wgpu::Buffer,
    stats: wgpu::Buffer,
    labels: Vec<u8>,
    side: u32,
    len: usize,
    /// "train" or "test", for labels.
    name: String,
}

fn gpu_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Gpu(format!("{what}: {e}"))
}
