//! The GPU backend: every pass of LeNet-5 as WGSL compute kernels (`shaders/`), run through
//! wgpu. Device, pipelines, buffers and bind groups are built once. The training and test
//! sets are uploaded once as bytes; each pass uploads only its shuffled index list and one
//! small uniform record per batch, encodes all its batches into a few command buffers and
//! reads back only the per-pattern (loss, prediction) records at the end. Every sum has a
//! fixed order (no float atomics), so a seed gives the same weights on the same adapter.

pub mod device;

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

/// The constants every shader sees, generated from the Rust layout so the two never differ.
fn header() -> String {
    let mut h = String::new();
    h += &format!("const N_PARAMS: u32 = {N_PARAMS}u;\n");
    assert!(
        N_PARAMS.is_multiple_of(4),
        "update.wgsl updates four parameters at a time"
    );
    for t in params::TENSORS {
        h += &format!(
            "const {}: u32 = {}u;\n",
            t.name
                .replace('.', "_")
                .to_uppercase()
                .replace("WEIGHT", "W")
                .replace("BIAS", "B"),
            t.offset
        );
    }
    // Every region starts on a texel (4 floats): kernels read and write whole texels.
    let mut off = 0;
    for (n, len) in ACT_LAYOUT {
        assert_eq!(off % 4, 0, "{n}");
        h += &format!("const {n}: u32 = {off}u;\n");
        off += len;
    }
    assert!(off <= ACT_STRIDE && ACT_STRIDE.is_multiple_of(64));
    h += &format!("const ACT_STRIDE: u32 = {ACT_STRIDE}u;\n");
    let mut off = 0;
    for (n, len) in DELTA_LAYOUT {
        assert_eq!(off % 4, 0, "{n}");
        h += &format!("const {n}: u32 = {off}u;\n");
        off += len;
    }
    assert!(off <= PART && PART.is_multiple_of(4));
    h += &format!("const PART: u32 = {PART}u;\n");
    h += &format!("const C3_PART_BIAS: u32 = {C3_PART_BIAS}u;\n");
    const { assert!(PART + PART_LEN <= DELTA_STRIDE && DELTA_STRIDE.is_multiple_of(64)) };
    h += &format!("const DELTA_STRIDE: u32 = {DELTA_STRIDE}u;\n");
    h += &format!("const RBF_CENTERS: u32 = {SMALL_PARAMS}u;\n");
    assert_eq!(SMALL_PARAMS % 4, 0);
    h += &format!("const SMALL_PARAMS: u32 = {SMALL_PARAMS}u;\n");
    h += &format!(
        "const INPUT_BACKGROUND: f32 = {:?};\n",
        crate::cpu::INPUT_BACKGROUND as f32
    );
    h += &format!(
        "const INPUT_SCALE: f32 = {:?};\n",
        crate::cpu::INPUT_SCALE as f32
    );
    let (mut start, mut ins, mut maps) = (vec![0u32], Vec::new(), Vec::new());
    for (o, table) in C3_TABLE.iter().enumerate() {
        for &m in table.iter() {
            ins.push(m as u32);
            maps.push(o as u32);
        }
        start.push(ins.len() as u32);
    }
    let list = |v: &[u32]| {
        v.iter()
            .map(|x| format!("{x}u"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    h += &format!("const C3_START_INIT = array<u32, 17>({});\n", list(&start));
    h += &format!("const C3_IN_INIT = array<u32, 60>({});\n", list(&ins));
    h += &format!("const C3_MAP_INIT = array<u32, 60>({});\n", list(&maps));
    // The same links grouped by the S2 map they read, for gathering C3's input gradient.
    let (mut by_start, mut by_link) = (vec![0u32], Vec::new());
    for m in 0..6u32 {
        by_link.extend((0..ins.len() as u32).filter(|&l| ins[l as usize] == m));
        by_start.push(by_link.len() as u32);
    }
    h += &format!(
        "const C3_BY_INPUT_START_INIT = array<u32, 7>({});\n",
        list(&by_start)
    );
    h += &format!(
        "const C3_BY_INPUT_LINK_INIT = array<u32, 60>({});\n",
        list(&by_link)
    );
    h
}

/// Unrolls every loop marked `/*unroll*/`, of the form
/// `/*unroll*/ for (var NAME = Au; NAME < Bu; NAME++) { BODY }`, into the blocks
/// `{ let NAME = Au; BODY } { let NAME = A+1u; BODY } ...`, outermost first, until none is left.
///
/// Why: on CPU adapters (lavapipe, llvmpipe) a function-local array indexed by a loop
/// variable compiles to a chain of branches or a per-lane memory access, while a constant
/// index keeps the element in a register. The kernels hold their tiles (an input patch, a
/// row of sums) in such arrays; unrolling the loops over the tile makes every index a
/// constant, which the compiler folds. GPUs' compilers do the same with unrolled code.
/// A marked loop's body must not `break` or `continue` (it would leave the wrong loop).
pub fn unroll(src: &str) -> String {
    const MARK: &str = "/*unroll*/";
    let mut s = src.to_string();
    while let Some(at) = s.find(MARK) {
        let rest = &s[at + MARK.len()..];
        let open = rest.find('{').expect("an unrolled loop has a body");
        let head = rest[..open].trim();
        // for (var NAME = Au; NAME < Bu; NAME++)
        let parse = || -> Option<(String, u32, u32)> {
            let inner = head.strip_prefix("for (var ")?.strip_suffix(')')?;
            let mut parts = inner.split(';').map(str::trim);
            let (name, from) = parts.next()?.split_once(" = ")?;
            let (cond_name, to) = parts.next()?.split_once(" < ")?;
            let inc = parts.next()?;
            let num = |t: &str| t.strip_suffix('u')?.parse::<u32>().ok();
            (cond_name == name && inc == format!("{name}++"))
                .then(|| Some((name.to_string(), num(from)?, num(to)?)))?
        };
        let (name, from, to) = parse().unwrap_or_else(|| panic!("malformed unrolled loop: {head}"));
        let body_start = at + MARK.len() + open + 1;
        let mut depth = 1;
        let mut end = body_start;
        for (i, c) in s[body_start..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = body_start + i;
                break;
            }
        }
        let body = &s[body_start..end];
        assert!(
            !body.contains("continue") && !body.contains("break"),
            "an unrolled loop's body must not break or continue: {head}"
        );
        let copies: String = (from..to)
            .map(|k| format!("{{ let {name} = {k}u;{body}}}"))
            .collect();
        s.replace_range(at..end + 1, &copies);
    }
    s
}

/// The shader files, each compiled with the header and common.wgsl in front.
const SHADERS: [(&str, &str); 6] = [
    ("input", include_str!("../../shaders/input.wgsl")),
    ("conv", include_str!("../../shaders/conv.wgsl")),
    ("subsample", include_str!("../../shaders/subsample.wgsl")),
    ("full", include_str!("../../shaders/full.wgsl")),
    ("rbf", include_str!("../../shaders/rbf.wgsl")),
    ("update", include_str!("../../shaders/update.wgsl")),
];
const COMMON: &str = include_str!("../../shaders/common.wgsl");
/// Where activations and deltas live, with the helpers that read and write them (`Reads`).
const TEXTURES: &str = include_str!("../../shaders/textures.wgsl");
const BUFFERS: &str = include_str!("../../shaders/buffers.wgsl");

/// What every kernel file needs in front of it: the generated constants, the storage of
/// `reads` and common.wgsl.
fn prelude(reads: Reads) -> String {
    let store = match reads {
        Reads::Textures => TEXTURES,
        Reads::Storage => BUFFERS,
    };
    format!("{}\n{store}\n{COMMON}\n", header())
}

/// How many workgroups a kernel needs.
#[derive(Clone, Copy)]
enum Size {
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
const KERNELS: [(&str, &str, Size); 25] = [
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
const FORWARD: std::ops::Range<usize> = 0..8;
/// input_forward, the first kernel of the forward pass.
const INPUT: usize = 0;
const LOSS: usize = 8;
const BACKWARD: std::ops::Range<usize> = 9..22;
const UPDATE: usize = 22;
/// Replaces input_forward (INPUT) in batches whose step record says distort.
const INPUT_DISTORTED: usize = 23;
/// Writes d1, which no training kernel reads.
const S2_BACKWARD_INPUT: usize = 24;

/// Buffers of one split.
struct SplitBuffers {
    bind_group: wgpu::BindGroup,
    images: wgpu::Buffer,
    labels_buf: wgpu::Buffer,
    order: wgpu::Buffer,
    stats: wgpu::Buffer,
    labels: Vec<u8>,
    side: u32,
    len: usize,
}

/// Where activations and deltas live on the device (`Reads`). One per backend, so the
/// variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Store {
    /// textures.wgsl: acts_t, deltas_t and params_t, rgba32float storage textures.
    Textures {
        acts: wgpu::Texture,
        deltas: wgpu::Texture,
        params: wgpu::Texture,
        views: [wgpu::TextureView; 3],
    },
    /// buffers.wgsl: acts_v and deltas_v, storage buffers.
    Buffers {
        acts: wgpu::Buffer,
        deltas: wgpu::Buffer,
    },
}

impl Store {
    fn bytes(&self) -> u64 {
        let texture = |t: &wgpu::Texture| t.width() as u64 * t.height() as u64 * 16;
        match self {
            Store::Textures {
                acts,
                deltas,
                params,
                ..
            } => texture(acts) + texture(deltas) + texture(params),
            Store::Buffers { acts, deltas } => acts.size() + deltas.size(),
        }
    }

    /// The bind-group entries for the bindings the store's file declares.
    fn entries(&self) -> Vec<wgpu::BindGroupEntry<'_>> {
        match self {
            Store::Textures { views, .. } => (0..3)
                .map(|i| wgpu::BindGroupEntry {
                    binding: 8 + i as u32,
                    resource: wgpu::BindingResource::TextureView(&views[i]),
                })
                .collect(),
            Store::Buffers { acts, deltas } => vec![
                wgpu::BindGroupEntry {
                    binding: 8,
                    resource: acts.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 9,
                    resource: deltas.as_entire_binding(),
                },
            ],
        }
    }
}

/// Where the kernels keep activations and deltas, and read the parameters from
/// (`act4`/`put_act4`, `delta4`/`put_delta4`, `param4`/`put_param4`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    /// rgba32float storage textures, read and written in place (shaders/textures.wgsl): on
    /// a CPU adapter a texel load costs about what one float costs from a storage buffer,
    /// whose loads llvmpipe runs lane by lane. Needs an adapter that can read and write
    /// rgba32float storage textures (lavapipe can; GL adapters cannot).
    Textures,
    /// Storage buffers (shaders/buffers.wgsl): on a hardware GPU a vec4 load from a buffer
    /// is as fast as a texel fetch, and buffers need nothing beyond WebGPU's baseline.
    Storage,
}

impl Reads {
    /// Textures on a software (CPU) adapter that supports them, storage buffers elsewhere.
    pub fn for_adapter(adapter: &wgpu::Adapter) -> Self {
        if adapter.get_info().device_type == wgpu::DeviceType::Cpu && Self::textures_work(adapter) {
            Reads::Textures
        } else {
            Reads::Storage
        }
    }

    /// Whether `adapter` can bind rgba32float textures for reading and writing in a kernel.
    pub fn textures_work(adapter: &wgpu::Adapter) -> bool {
        adapter
            .features()
            .contains(wgpu::Features::TEXTURE_ADAPTER_SPECIFIC_FORMAT_FEATURES)
            && adapter
                .get_texture_format_features(wgpu::TextureFormat::Rgba32Float)
                .flags
                .contains(wgpu::TextureFormatFeatureFlags::STORAGE_READ_WRITE)
    }
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
fn upload(device: &wgpu::Device, queue: &wgpu::Queue, buffer: &wgpu::Buffer, bytes: &[u8]) {
    const PIECE: usize = 4 << 20;
    for (i, piece) in bytes.chunks(PIECE).enumerate() {
        queue.write_buffer(buffer, (i * PIECE) as u64, piece);
        queue.submit([]);
        let _ = device.poll(wgpu::PollType::wait_indefinitely());
    }
}

/// One kernel's SPIR-V words and workgroup size.
type SpirvKernel = (Vec<u32>, [u32; 3]);

/// Translates the kernels' WGSL to SPIR-V, one module per entry of `KERNELS`, with wgpu's
/// translator and the settings `ShaderRuntimeChecks::unchecked()` gives the WGSL path; with
/// each, the kernel's workgroup size.
fn spirv_kernels(code: &str) -> std::result::Result<Vec<SpirvKernel>, String> {
    use naga::back::spv;
    let module = naga::front::wgsl::parse_str(code).map_err(|e| e.emit_to_string(code))?;
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .map_err(|e| e.emit_to_string(code))?;
    let options = spv::Options {
        flags: spv::WriterFlags::empty(),
        // Descriptor set = @group, binding = @binding: wgpu's Vulkan backend numbers a
        // layout's bindings 0, 1, ... in order, and the layout's entries are 0, 1, ... (asserted
        // where the layout is made).
        fake_missing_bindings: true,
        bounds_check_policies: naga::proc::BoundsCheckPolicies {
            index: naga::proc::BoundsCheckPolicy::Unchecked,
            buffer: naga::proc::BoundsCheckPolicy::Unchecked,
            image_load: naga::proc::BoundsCheckPolicy::Unchecked,
            binding_array: naga::proc::BoundsCheckPolicy::Unchecked,
        },
        zero_initialize_workgroup_memory: spv::ZeroInitializeWorkgroupMemoryMode::None,
        force_loop_bounding: false,
        emit_int_div_checks: false,
        ..Default::default()
    };
    KERNELS
        .iter()
        .map(|(_, entry, _)| {
            let pipeline = spv::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: entry.to_string(),
            };
            let size = module
                .entry_points
                .iter()
                .find(|e| e.name == *entry)
                .ok_or_else(|| format!("no entry point {entry}"))?
                .workgroup_size;
            let words = spv::write_vec(&module, &info, &options, Some(&pipeline))
                .map_err(|e| format!("{entry}: {e}"))?;
            Ok((words, size))
        })
        .collect()
}

fn gpu_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Gpu(format!("{what}: {e}"))
}

impl GpuBackend {
    /// Builds everything once for batches of up to `max_batch` patterns, reading as suits
    /// the adapter (`Reads::for_adapter`).
    pub fn new(
        adapter: wgpu::Adapter,
        train: Arc<Dataset>,
        test: Arc<Dataset>,
        loss: Loss,
        momentum: f32,
        max_batch: usize,
    ) -> Result<Self> {
        let reads = Reads::for_adapter(&adapter);
        Self::with_reads(adapter, train, test, loss, momentum, max_batch, reads)
    }

    /// `new`, with the kernels' reads chosen by the caller (tests run both on one adapter).
    pub fn with_reads(
        adapter: wgpu::Adapter,
        train: Arc<Dataset>,
        test: Arc<Dataset>,
        loss: Loss,
        momentum: f32,
        max_batch: usize,
        reads: Reads,
    ) -> Result<Self> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let capacity = max_batch.max(EVAL_BATCH);
        // Check up front what the trainer needs against what the adapter offers.
        let act_bytes = capacity as u64 * ACT_STRIDE.max(DELTA_STRIDE) as u64 * 4;
        let image_bytes = (train.images.len().max(test.images.len()) as u64).div_ceil(4) * 4;
        let need_binding = act_bytes.max(image_bytes).max(STATE_LEN * 4);
        if need_binding > limits.max_storage_buffer_binding_size {
            return Err(Error::Config(format!(
                "{} allows storage buffers of {} MiB, but batch {max_batch} needs {} MiB (activations) and the \
                 images {} MiB; use a smaller --batch or --train-limit, or another adapter",
                info.name,
                limits.max_storage_buffer_binding_size >> 20,
                act_bytes >> 20,
                image_bytes >> 20
            )));
        }
        if limits.max_storage_buffers_per_shader_stage < 8
            || limits.max_compute_invocations_per_workgroup < WG
        {
            return Err(Error::Gpu(format!(
                "{} offers {} storage buffers per shader stage and {} invocations per workgroup; LeNet-5's kernels need 8 and 64",
                info.name,
                limits.max_storage_buffers_per_shader_stage,
                limits.max_compute_invocations_per_workgroup
            )));
        }
        if reads == Reads::Textures && !Reads::textures_work(&adapter) {
            return Err(Error::Config(format!(
                "{} cannot read and write rgba32float storage textures; use Reads::Storage there",
                info.name
            )));
        }
        let need_texture = (DELTA_STRIDE / 4).max(capacity as u32);
        if reads == Reads::Textures && need_texture > limits.max_texture_dimension_2d {
            return Err(Error::Config(format!(
                "{} allows textures of {} texels a side, but batch {max_batch} needs {need_texture}; \
                 use a smaller --batch, or another adapter",
                info.name, limits.max_texture_dimension_2d
            )));
        }
        let required_limits = wgpu::Limits {
            max_storage_buffer_binding_size: need_binding,
            max_buffer_size: limits.max_buffer_size,
            max_storage_buffers_per_shader_stage: 8,
            max_storage_textures_per_shader_stage: 3,
            ..wgpu::Limits::downlevel_defaults().using_resolution(limits.clone())
        };
        let textures = match reads {
            Reads::Textures => wgpu::Features::TEXTURE_ADAPTER_SPECIFIC_FORMAT_FEATURES,
            Reads::Storage => wgpu::Features::empty(),
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("lenet-gpu"),
            required_features: adapter.features()
                & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::PASSTHROUGH_SHADERS)
                | textures,
            required_limits,
            ..Default::default()
        }))
        .map_err(|e| gpu_err(&format!("cannot open {}", info.name), e))?;

        // Errors after setup (a lost device, an allocation that fails mid-run) must become
        // messages, not wgpu's default panic: keep the first one and report it at the next wait.
        let fault: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        {
            let fault = fault.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                let mut f = fault.lock().unwrap_or_else(|p| p.into_inner());
                f.get_or_insert_with(|| e.to_string());
            }));
        }
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let storage = |binding: u32, read_only: bool| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let texture = |binding: u32| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::StorageTexture {
                access: wgpu::StorageTextureAccess::ReadWrite,
                format: wgpu::TextureFormat::Rgba32Float,
                view_dimension: wgpu::TextureViewDimension::D2,
            },
            count: None,
        };
        let mut entries = vec![
            wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: true,
                    min_binding_size: wgpu::BufferSize::new(std::mem::size_of::<Step>() as u64),
                },
                count: None,
            },
            storage(1, false), // state
            storage(2, true),  // images
            storage(3, true),  // labels
            storage(4, true),  // order
            storage(5, false), // stats
            storage(6, true),  // warps
            wgpu::BindGroupLayoutEntry {
                binding: 7, // small
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: wgpu::BufferSize::new((SMALL_PARAMS as u64 + 840) * 4),
                },
                count: None,
            },
        ];
        match reads {
            // textures.wgsl
            Reads::Textures => entries.extend([texture(8), texture(9), texture(10)]),
            // buffers.wgsl
            Reads::Storage => entries.extend([storage(8, false), storage(9, false)]),
        }
        // wgpu's Vulkan backend numbers the descriptor bindings 0, 1, ... in the order of
        // the layout's entries, and the SPIR-V passed through below keeps the WGSL numbers
        // (spirv_kernels): they agree only while the entries are numbered 0, 1, ... in order.
        assert!(
            entries
                .iter()
                .enumerate()
                .all(|(i, e)| e.binding == i as u32)
        );
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("lenet bind group layout"),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("lenet pipeline layout"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });

        let state_init = vec![0f32; STATE_LEN as usize];
        let state = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("state [params | grad | eps | velocity | hacc]"),
            contents: bytemuck::cast_slice(&state_init),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
        });
        let texture = |label: &str, width: u32, height: u32| {
            device.create_texture(&wgpu::TextureDescriptor {
                label: Some(label),
                size: wgpu::Extent3d {
                    width,
                    height,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: wgpu::TextureFormat::Rgba32Float,
                usage: wgpu::TextureUsages::STORAGE_BINDING
                    | wgpu::TextureUsages::COPY_DST
                    | wgpu::TextureUsages::COPY_SRC,
                view_formats: &[],
            })
        };
        let store = match reads {
            Reads::Textures => {
                let acts = texture(
                    "acts_t (B, ACT_STRIDE / 4) rgba32f",
                    ACT_STRIDE / 4,
                    capacity as u32,
                );
                let deltas = texture(
                    "deltas_t (B, DELTA_STRIDE / 4) rgba32f",
                    DELTA_STRIDE / 4,
                    capacity as u32,
                );
                let params = texture("params_t (PARAM_ROWS, 64) rgba32f", 64, PARAM_ROWS);
                let views = [&acts, &deltas, &params].map(|t| t.create_view(&Default::default()));
                Store::Textures {
                    acts,
                    deltas,
                    params,
                    views,
                }
            }
            Reads::Storage => Store::Buffers {
                acts: device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("acts (B, ACT_STRIDE)"),
                    size: capacity as u64 * ACT_STRIDE as u64 * 4,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                }),
                deltas: device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("deltas (B, DELTA_STRIDE)"),
                    size: capacity as u64 * DELTA_STRIDE as u64 * 4,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                }),
            },
        };
        let small = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("small [C1, S2, C3, S4 params | RBF centres]"),
            size: (SMALL_PARAMS as u64 + 840) * 4,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        queue.write_buffer(
            &small,
            SMALL_PARAMS as u64 * 4,
            bytemuck::cast_slice(&RBF_CENTERS),
        );
        let steps_capacity = 1024;
        let steps = Self::steps_buffer(&device, steps_capacity);
        let warps = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("warps (N, 6): the distortion of each training image"),
            size: train.len().max(1) as u64 * std::mem::size_of::<Affine>() as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let split = |set: &Dataset, name: &str, state: &wgpu::Buffer| -> SplitBuffers {
            // The buffer holds whole u32 words; copy (47 MB for MNIST's training set, a
            // large part of peak memory on a software adapter) only if the bytes need padding.
            let padded;
            let bytes: &[u8] = if set.images.len().is_multiple_of(4) {
                &set.images
            } else {
                let mut b = set.images.clone();
                b.resize(b.len().div_ceil(4) * 4, 0);
                padded = b;
                &padded
            };
            let images = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&format!("{name} images (u8 x4 per word)")),
                size: bytes.len() as u64,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            upload(&device, &queue, &images, bytes);
            let labels32: Vec<u32> = set.labels.iter().map(|&l| l as u32).collect();
            let labels = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(&format!("{name} labels")),
                contents: bytemuck::cast_slice(&labels32),
                usage: wgpu::BufferUsages::STORAGE,
            });
            let identity: Vec<u32> = (0..set.len() as u32).collect();
            let order = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(&format!("{name} order")),
                contents: bytemuck::cast_slice(&identity),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            });
            let stats = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&format!("{name} stats (loss, prediction)")),
                size: set.len() as u64 * 8,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let bind_group = Self::bind_group(
                &device, &layout, &steps, state, &store, &small, &images, &labels, &order, &stats,
                &warps, name,
            );
            SplitBuffers {
                bind_group,
                images,
                labels_buf: labels,
                order,
                stats,
                labels: set.labels.clone(),
                side: set.side as u32,
                len: set.len(),
            }
        };
        let train_b = split(&train, "train", &state);
        let test_b = split(&test, "test", &state);
        // The images are on the device now: free the host copies (when the caller handed
        // over its only reference) before LLVM-based drivers compile the kernels, which
        // takes memory of its own, so the two do not add up in the peak.
        drop((train, test));
        let head = prelude(reads);
        // One module for all kernels: every file needs common.wgsl's helpers, and a module
        // per file would hold (in wgpu and the driver) a parsed copy of them for each file.
        let code = unroll(
            &std::iter::once(head.as_str())
                .chain(SHADERS.iter().map(|(_, src)| *src))
                .collect::<Vec<_>>()
                .join("\n"),
        );
        // On Vulkan the kernels go to the driver as SPIR-V translated here, one small module
        // per kernel, and the parsed source is freed before the driver compiles them; a
        // WGSL module would keep wgpu's parsed copy of all kernels (65 MB with the unrolled
        // tiles) alive as long as the pipelines, host memory that counts in the peak.
        let modules = if info.backend == wgpu::Backend::Vulkan
            && device
                .features()
                .contains(wgpu::Features::PASSTHROUGH_SHADERS)
        {
            let spirv = spirv_kernels(&code)
                .map_err(|e| gpu_err("translating the kernels to SPIR-V", e))?;
            drop(code);
            spirv
                .into_iter()
                .zip(KERNELS)
                .map(|((words, size), (_, entry, _))| {
                    // SAFETY: naga wrote this SPIR-V from WGSL it validated; the kernels are
                    // the same as on the WGSL path, which wgpu checks against the layout (on
                    // GL in tests/gpu.rs), and their bounds are argued below.
                    unsafe {
                        device.create_shader_module_passthrough(
                            wgpu::ShaderModuleDescriptorPassthrough {
                                label: Some(entry),
                                entry_points: std::borrow::Cow::Owned(vec![
                                    wgpu::PassthroughShaderEntryPoint {
                                        name: std::borrow::Cow::Borrowed(entry),
                                        workgroup_size: (size[0], size[1], size[2]),
                                    },
                                ]),
                                spirv: Some(std::borrow::Cow::Owned(words)),
                                ..Default::default()
                            },
                        )
                    }
                })
                .collect()
        } else {
            let desc = wgpu::ShaderModuleDescriptor {
                label: Some("lenet kernels"),
                source: wgpu::ShaderSource::Wgsl(code.into()),
            };
            // SAFETY: every index in these kernels is bounded by construction (per-pattern
            // offsets below the strides, patterns below `step.batch` <= the capacity the
            // buffers were sized for; tests/gpu.rs checks every tensor against the CPU), all
            // loops have constant or uniform bounds, and divisors are non-zero constants.
            // wgpu's injected bounds checks cost ~10% on lavapipe; drivers with robust
            // buffer access (wgpu enables it where offered) still clamp.
            vec![unsafe {
                device.create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
            }]
        };
        let pipelines = KERNELS
            .iter()
            .enumerate()
            .map(|(k, (_, entry, _))| {
                let module = &modules[k.min(modules.len() - 1)];
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: Some(&pipeline_layout),
                    module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                })
            })
            .collect();
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(gpu_err(
                &format!("setting up the kernels on {}", info.name),
                e,
            ));
        }
        if let Some(e) = pollster::block_on(oom.pop()) {
            return Err(gpu_err(
                &format!(
                    "{} has not enough memory for batch {max_batch} and the data; use a smaller --batch, or --backend cpu",
                    info.name
                ),
                e,
            ));
        }
        let timestamps = device.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        Ok(GpuBackend {
            device,
            queue,
            info,
            pipelines,
            state,
            steps,
            steps_capacity,
            layout,
            store,
            small,
            capacity,
            train: train_b,
            test: test_b,
            loss,
            momentum,
            max_groups: limits.max_compute_workgroups_per_dimension.min(65535),
            warps,
            distorting: false,
            timestamps,
            fault,
        })
    }

    fn steps_buffer(device: &wgpu::Device, n: u64) -> wgpu::Buffer {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("steps (one uniform record per batch)"),
            size: n * STEP_STRIDE,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn bind_group(
        device: &wgpu::Device,
        layout: &wgpu::BindGroupLayout,
        steps: &wgpu::Buffer,
        state: &wgpu::Buffer,
        store: &Store,
        small: &wgpu::Buffer,
        images: &wgpu::Buffer,
        labels: &wgpu::Buffer,
        order: &wgpu::Buffer,
        stats: &wgpu::Buffer,
        warps: &wgpu::Buffer,
        name: &str,
    ) -> wgpu::BindGroup {
        let mut entries = vec![
            wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: steps,
                    offset: 0,
                    size: wgpu::BufferSize::new(std::mem::size_of::<Step>() as u64),
                }),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: state.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: images.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 3,
                resource: labels.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 4,
                resource: order.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 5,
                resource: stats.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 6,
                resource: warps.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 7,
                resource: small.as_entire_binding(),
            },
        ];
        entries.extend(store.entries());
        device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&format!("{name} bind group")),
            layout,
            entries: &entries,
        })
    }

    /// Workgroups (x, y) for kernel `k` on a batch of `b` patterns.
    fn groups(&self, size: Size, b: u32) -> (u32, u32, u32) {
        let n = match size {
            Size::PerPattern(u) => (b * u).div_ceil(WG),
            Size::Threads(t) => t.div_ceil(WG),
            Size::Sum(t) => t.div_ceil(SUM_WG),
            Size::Tiles(blocks) => return ((b.div_ceil(TILE_B) * blocks).div_ceil(DENSE_WG), 1, 1),
        };
        if n <= self.max_groups {
            (n, 1, 1)
        } else {
            (self.max_groups, n.div_ceil(self.max_groups), 1)
        }
    }

    /// Writes the step records, growing the buffer (and rebuilding the bind groups that
    /// point at it) when a pass has more batches than any before.
    fn prepare_steps(&mut self, steps: &[Step]) {
        let n = steps.len() as u64;
        if n > self.steps_capacity {
            self.steps_capacity = n.next_power_of_two();
            self.steps = Self::steps_buffer(&self.device, self.steps_capacity);
            for (split, name) in [(Split::Train, "train"), (Split::Test, "test")] {
                let s = self.split(split);
                let bg = Self::bind_group(
                    &self.device,
                    &self.layout,
                    &self.steps,
                    &self.state,
                    &self.store,
                    &self.small,
                    &s.images,
                    &s.labels_buf,
                    &s.order,
                    &s.stats,
                    &self.warps,
                    name,
                );
                match split {
                    Split::Train => self.train.bind_group = bg,
                    Split::Test => self.test.bind_group = bg,
                }
            }
        }
        let mut bytes = vec![0u8; steps.len() * STEP_STRIDE as usize];
        for (i, s) in steps.iter().enumerate() {
            bytes[i * STEP_STRIDE as usize..i * STEP_STRIDE as usize + 32]
                .copy_from_slice(bytemuck::bytes_of(s));
        }
        self.queue.write_buffer(&self.steps, 0, &bytes);
    }

    fn step(&self, split: Split, start: usize, batch: usize, mode: u32) -> Step {
        let (loss, map_j) = match self.loss {
            Loss::Mse => (0, 0.0),
            Loss::Map { j } => (1, j as f32),
        };
        Step {
            start: start as u32,
            batch: batch as u32,
            mode,
            loss,
            map_j,
            momentum: self.momentum,
            side: self.split(split).side,
            distort: (split == Split::Train && mode == 0 && self.distorting) as u32,
        }
    }

    /// Bytes of every buffer this backend holds on the device.
    pub fn buffer_bytes(&self) -> u64 {
        let split = |s: &SplitBuffers| {
            s.images.size() + s.labels_buf.size() + s.order.size() + s.stats.size()
        };
        self.state.size()
            + self.store.bytes()
            + self.small.size()
            + self.steps.size()
            + self.warps.size()
            + split(&self.train)
            + split(&self.test)
    }

    fn split(&self, s: Split) -> &SplitBuffers {
        match s {
            Split::Train => &self.train,
            Split::Test => &self.test,
        }
    }

    /// Encodes `kernels` for each step record (dynamic offset i), in chunks of command
    /// buffers, and submits them: one compute pass per batch, then, after an update, the
    /// copy of the new parameters into the uniform buffer. The kernels' own copy of the
    /// parameters is refreshed at the start of every command buffer, since the host may
    /// have written new ones.
    fn run(&self, split: Split, steps: &[Step], kernels: &[usize]) {
        let bg = &self.split(split).bind_group;
        let mut in_flight = std::collections::VecDeque::new();
        for (c, chunk) in steps.chunks(STEPS_PER_SUBMIT).enumerate() {
            let mut enc = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("batches"),
                });
            self.copy_params(&mut enc, true);
            for (i, s) in chunk.iter().enumerate() {
                let offset = ((c * STEPS_PER_SUBMIT + i) as u64 * STEP_STRIDE) as u32;
                {
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("lenet"),
                        timestamp_writes: None,
                    });
                    pass.set_bind_group(0, bg, &[offset]);
                    for &k in kernels {
                        let k = if k == INPUT && s.distort == 1 {
                            INPUT_DISTORTED
                        } else {
                            k
                        };
                        let (x, y, z) = self.groups(KERNELS[k].2, s.batch);
                        pass.set_pipeline(&self.pipelines[k]);
                        pass.dispatch_workgroups(x, y, z);
                    }
                }
                if kernels.contains(&UPDATE) {
                    self.copy_params(&mut enc, false);
                }
            }
            in_flight.push_back(self.queue.submit([enc.finish()]));
            if in_flight.len() > MAX_IN_FLIGHT {
                // A device error here also reaches the fault handler, reported at the next wait.
                let _ = self.device.poll(wgpu::PollType::Wait {
                    submission_index: in_flight.pop_front(),
                    timeout: None,
                });
            }
        }
    }

    /// Copies the parameters of C1 .. S4 from `state` into the uniform buffer `small`, and
    /// with `texture` all parameters into the texture kernels read them from (with
    /// `Reads::Textures`; the update kernel keeps it current within a command buffer).
    fn copy_params(&self, enc: &mut wgpu::CommandEncoder, texture: bool) {
        enc.copy_buffer_to_buffer(&self.state, 0, &self.small, 0, SMALL_PARAMS as u64 * 4);
        if let (true, Store::Textures { params, .. }) = (texture, &self.store) {
            // Whole rows of 256: the copy may read past the parameters into the gradient
            // region, which is never fetched.
            enc.copy_buffer_to_texture(
                wgpu::TexelCopyBufferInfo {
                    buffer: &self.state,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: 0,
                        bytes_per_row: Some(256 * 4),
                        rows_per_image: None,
                    },
                },
                wgpu::TexelCopyTextureInfo {
                    texture: params,
                    mip_level: 0,
                    origin: wgpu::Origin3d::ZERO,
                    aspect: wgpu::TextureAspect::All,
                },
                wgpu::Extent3d {
                    width: 64,
                    height: PARAM_ROWS,
                    depth_or_array_layers: 1,
                },
            );
        }
    }

    /// The first `rows` patterns' activations (`deltas` false) or deltas, (rows, stride).
    fn read_store(&self, deltas: bool, rows: usize) -> Result<Vec<f32>> {
        let stride = if deltas { DELTA_STRIDE } else { ACT_STRIDE } as usize;
        match &self.store {
            Store::Buffers { acts, deltas: d } => {
                self.read(if deltas { d } else { acts }, 0, rows * stride)
            }
            Store::Textures {
                acts, deltas: d, ..
            } => {
                let texture = if deltas { d } else { acts };
                let staging = self.staging(rows * stride);
                let mut enc = self
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("read-back (texture)"),
                    });
                // Rows are whole multiples of 256 bytes (ACT_STRIDE, DELTA_STRIDE).
                enc.copy_texture_to_buffer(
                    wgpu::TexelCopyTextureInfo {
                        texture,
                        mip_level: 0,
                        origin: wgpu::Origin3d::ZERO,
                        aspect: wgpu::TextureAspect::All,
                    },
                    wgpu::TexelCopyBufferInfo {
                        buffer: &staging,
                        layout: wgpu::TexelCopyBufferLayout {
                            offset: 0,
                            bytes_per_row: Some(stride as u32 * 4),
                            rows_per_image: None,
                        },
                    },
                    wgpu::Extent3d {
                        width: stride as u32 / 4,
                        height: rows as u32,
                        depth_or_array_layers: 1,
                    },
                );
                self.queue.submit([enc.finish()]);
                self.map_back(&staging, rows * stride)
            }
        }
    }

    /// Copies `len` floats at `offset` (floats) of `buf` back to the host.
    fn read(&self, buf: &wgpu::Buffer, offset: u64, len: usize) -> Result<Vec<f32>> {
        let staging = self.staging(len);
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("read-back"),
            });
        enc.copy_buffer_to_buffer(buf, offset * 4, &staging, 0, len as u64 * 4);
        self.queue.submit([enc.finish()]);
        self.map_back(&staging, len)
    }

    /// A host-mappable buffer for `len` floats, to copy into and read back with `map_back`.
    fn staging(&self, len: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read-back"),
            size: (len as u64 * 4).max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Waits for the copies submitted into `staging`, then returns its first `len` floats.
    fn map_back(&self, staging: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        let bytes = len as u64 * 4;
        let (tx, rx) = std::sync::mpsc::channel();
        staging
            .slice(..bytes)
            .map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
        self.wait()?;
        rx.recv()
            .map_err(|e| gpu_err("read-back", e))?
            .map_err(|e| gpu_err("read-back", e))?;
        let view = staging
            .slice(..bytes)
            .get_mapped_range()
            .map_err(|e| gpu_err("read-back", e))?;
        let out = bytemuck::cast_slice(&view).to_vec();
        drop(view);
        staging.unmap();
        Ok(out)
    }

    /// Uploads `idx` as the order of `split` (from position 0).
    fn upload_order(&self, split: Split, idx: &[u32]) {
        self.queue
            .write_buffer(&self.split(split).order, 0, bytemuck::cast_slice(idx));
    }

    fn stats_to(
        &self,
        split: Split,
        idx: Option<&[u32]>,
        n: usize,
    ) -> Result<(f64, u64, Vec<u8>, Option<u64>)> {
        let s = self.split(split);
        let raw = self.read(&s.stats, 0, 2 * n)?;
        let mut loss = 0.0;
        let mut errors = 0;
        let mut first_bad = None;
        let mut preds = Vec::with_capacity(n);
        for p in 0..n {
            if !raw[2 * p].is_finite() && first_bad.is_none() {
                first_bad = Some(p as u64);
            }
            loss += raw[2 * p] as f64;
            let pred = raw[2 * p + 1] as u8;
            let i = idx.map_or(p, |v| v[p] as usize);
            if pred != s.labels[i] {
                errors += 1;
            }
            preds.push(pred);
        }
        Ok((loss, errors, preds, first_bad))
    }

    fn batches(n: usize, b: usize) -> impl Iterator<Item = (usize, usize)> {
        (0..n).step_by(b).map(move |s| (s, b.min(n - s)))
    }
}

/// Every intermediate of one batch, read back for the kernel tests.
pub struct Snapshot {
    /// (B, ACT_STRIDE): x0 .. x6, y per pattern (see `ACT_LAYOUT`).
    pub acts: Vec<f32>,
    /// (B, DELTA_STRIDE): d1 .. d6, dy per pattern (see `DELTA_LAYOUT`).
    pub deltas: Vec<f32>,
    /// (N_PARAMS): the batch gradient (mode 0) or the summed second derivatives (mode 1).
    pub grad: Vec<f32>,
}

impl GpuBackend {
    /// Runs the forward pass, then the backward (mode 0) or second-derivative (mode 1)
    /// pass on the training patterns `idx` as one batch, without updating, and reads back
    /// every intermediate.
    pub fn snapshot(&mut self, idx: &[u32], mode: u32) -> Result<Snapshot> {
        if idx.len() > self.capacity {
            return Err(Error::Config(format!(
                "snapshot of {} patterns exceeds the batch capacity {}",
                idx.len(),
                self.capacity
            )));
        }
        self.upload_order(Split::Train, idx);
        let steps = vec![self.step(Split::Train, 0, idx.len(), mode)];
        self.prepare_steps(&steps);
        self.clear_hessian();
        let loss = if mode == 0 { vec![LOSS] } else { vec![] };
        let kernels: Vec<usize> = FORWARD
            .chain(loss)
            .chain(BACKWARD)
            .chain([S2_BACKWARD_INPUT])
            .collect();
        self.run(Split::Train, &steps, &kernels);
        let b = idx.len();
        Ok(Snapshot {
            acts: self.read_store(false, b)?,
            deltas: self.read_store(true, b)?,
            grad: self.read(
                &self.state,
                if mode == 0 {
                    N_PARAMS as u64
                } else {
                    4 * N_PARAMS as u64
                },
                N_PARAMS,
            )?,
        })
    }

    /// Wall time per batch of each kernel (entry point), measured by running it `reps`
    /// times alone and waiting for the device; one training batch of `batch` patterns
    /// from the start of the training set is run first so every buffer holds real values.
    /// Seconds per batch of `batch` in each kernel (entry point), averaged over `reps`
    /// dispatches, and whether they come from GPU timestamp queries (where the adapter
    /// has them: the kernel's own time) or from the wall clock around repeated single
    /// submissions (which includes each submission's fixed cost).
    pub fn profile(
        &mut self,
        batch: usize,
        reps: usize,
    ) -> Result<(Vec<(&'static str, f64)>, bool)> {
        let reps = reps.max(1);
        let order: Vec<u32> = (0..batch as u32).collect();
        self.train(&order, batch)?;
        let steps = vec![self.step(Split::Train, 0, batch, 0)];
        self.prepare_steps(&steps);
        let kernels: Vec<usize> = FORWARD
            .chain([LOSS])
            .chain(BACKWARD)
            .chain([UPDATE])
            .collect();
        if self.timestamps {
            return Ok((self.profile_timestamps(&kernels, batch as u32, reps)?, true));
        }
        let mut out = Vec::new();
        for k in kernels {
            self.run(Split::Train, &steps, &[k]);
            self.wait()?;
            let t = std::time::Instant::now();
            for _ in 0..reps {
                self.run(Split::Train, &steps, &[k]);
            }
            self.wait()?;
            out.push((KERNELS[k].1, t.elapsed().as_secs_f64() / reps as f64));
        }
        Ok((out, false))
    }

    /// One compute pass per kernel, `reps` dispatches each, timed by timestamp queries at
    /// the pass's start and end.
    fn profile_timestamps(
        &self,
        kernels: &[usize],
        batch: u32,
        reps: usize,
    ) -> Result<Vec<(&'static str, f64)>> {
        let n = 2 * kernels.len() as u32;
        let queries = self.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("profile timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: n,
        });
        let bytes = n as u64 * wgpu::QUERY_SIZE as u64;
        let resolved = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("profile timestamps (resolved)"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("profile"),
            });
        let bg = &self.split(Split::Train).bind_group;
        for (i, &k) in kernels.iter().enumerate() {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(KERNELS[k].1),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &queries,
                    beginning_of_pass_write_index: Some(2 * i as u32),
                    end_of_pass_write_index: Some(2 * i as u32 + 1),
                }),
            });
            pass.set_bind_group(0, bg, &[0]);
            pass.set_pipeline(&self.pipelines[k]);
            let (x, y, z) = self.groups(KERNELS[k].2, batch);
            for _ in 0..reps {
                pass.dispatch_workgroups(x, y, z);
            }
        }
        enc.resolve_query_set(&queries, 0..n, &resolved, 0);
        self.queue.submit([enc.finish()]);
        let raw = self.read(&resolved, 0, 2 * n as usize)?;
        let ticks: Vec<u64> = bytemuck::cast_slice::<f32, u64>(&raw).to_vec();
        let period = self.queue.get_timestamp_period() as f64 * 1e-9;
        Ok(kernels
            .iter()
            .enumerate()
            .map(|(i, &k)| {
                let dt = ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period;
                (KERNELS[k].1, dt / reps as f64)
            })
            .collect())
    }

    /// Zeroes the Hessian accumulator (the `hacc` region of `state`) before an estimate.
    fn clear_hessian(&self) {
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("clear hacc"),
            });
        enc.clear_buffer(
            &self.state,
            4 * N_PARAMS as u64 * 4,
            Some(N_PARAMS as u64 * 4),
        );
        self.queue.submit([enc.finish()]);
    }

    fn wait(&self) -> Result<()> {
        let polled = self.device.poll(wgpu::PollType::wait_indefinitely());
        if let Some(e) = self.fault.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(Error::Gpu(format!(
                "{} failed: {e}. The last checkpoint written is intact; try a smaller --batch or --backend cpu",
                self.info.name
            )));
        }
        polled.map(|_| ()).map_err(|e| {
            gpu_err(
                &format!("{} stopped responding (device lost?); the last checkpoint written is intact; try --backend cpu", self.info.name),
                e,
            )
        })
    }
}

/// "gpu: NAME (API, DRIVER)", saying nothing twice: Mesa's software adapters repeat
/// their name and LLVM version in the driver fields ("llvmpipe (LLVM 15.0.6, 256 bits)",
/// driver "llvmpipe", "Mesa 22.3.6 (LLVM 15.0.6)") -> "gpu: llvmpipe (LLVM 15.0.6, 256
/// bits) (Vulkan, Mesa 22.3.6)".
pub fn describe_adapter(info: &wgpu::AdapterInfo) -> String {
    let name = info.name.to_lowercase();
    let mut parts = vec![format!("{:?}", info.backend)];
    for field in [info.driver.as_str(), info.driver_info.as_str()] {
        let mut f = field.trim().to_string();
        // Drop parenthesised groups the name already says.
        while let (Some(a), Some(b)) = (f.find('('), f.find(')')) {
            if b < a || !name.contains(&f[a + 1..b].to_lowercase()) {
                break;
            }
            f = format!("{}{}", f[..a].trim_end(), &f[b + 1..]);
        }
        let f = f.trim().to_string();
        if !f.is_empty() && !name.contains(&f.to_lowercase()) && !parts.contains(&f) {
            parts.push(f);
        }
    }
    format!("gpu: {} ({})", info.name, parts.join(", "))
}

impl Backend for GpuBackend {
    fn device_memory(&self) -> Option<u64> {
        Some(self.buffer_bytes())
    }

    fn profile(&mut self, batch: usize, reps: usize) -> Result<Option<KernelTimes>> {
        let (times, timestamps) = GpuBackend::profile(self, batch, reps)?;
        Ok(Some((
            times.into_iter().map(|(n, t)| (n.to_string(), t)).collect(),
            timestamps,
        )))
    }

    fn describe(&self) -> String {
        describe_adapter(&self.info)
    }

    fn set_params(&mut self, p: &[f32]) -> Result<()> {
        self.queue
            .write_buffer(&self.state, 0, bytemuck::cast_slice(p));
        Ok(())
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        self.read(&self.state, 0, N_PARAMS)
    }

    fn hessian(&mut self, idx: &[u32]) -> Result<Vec<f32>> {
        self.upload_order(Split::Train, idx);
        let b = self.capacity;
        let steps: Vec<Step> = Self::batches(idx.len(), b)
            .map(|(s, n)| self.step(Split::Train, s, n, 1))
            .collect();
        self.prepare_steps(&steps);
        self.clear_hessian();
        let kernels: Vec<usize> = FORWARD.chain(BACKWARD).collect();
        self.run(Split::Train, &steps, &kernels);
        let h = self.read(&self.state, 4 * N_PARAMS as u64, N_PARAMS)?;
        let n = idx.len().max(1) as f32;
        Ok(h.into_iter().map(|v| v / n).collect())
    }

    fn set_step_sizes(&mut self, eps: &[f32]) -> Result<()> {
        self.queue.write_buffer(
            &self.state,
            2 * N_PARAMS as u64 * 4,
            bytemuck::cast_slice(eps),
        );
        Ok(())
    }

    fn patterns_per_call(&self, batch: usize) -> usize {
        crate::train::CHECK_EVERY.div_ceil(batch) * batch
    }

    fn velocity(&mut self) -> Result<Vec<f32>> {
        self.read(&self.state, 3 * N_PARAMS as u64, N_PARAMS)
    }

    fn set_velocity(&mut self, v: &[f32]) -> Result<()> {
        self.queue.write_buffer(
            &self.state,
            3 * N_PARAMS as u64 * 4,
            bytemuck::cast_slice(v),
        );
        Ok(())
    }

    fn train(&mut self, order: &[u32], batch: usize) -> Result<TrainStats> {
        if batch > self.capacity {
            return Err(Error::Config(format!(
                "batch {batch} exceeds the {} this GPU backend was built for",
                self.capacity
            )));
        }
        self.upload_order(Split::Train, order);
        let steps: Vec<Step> = Self::batches(order.len(), batch)
            .map(|(s, n)| self.step(Split::Train, s, n, 0))
            .collect();
        self.prepare_steps(&steps);
        let kernels: Vec<usize> = FORWARD
            .chain([LOSS])
            .chain(BACKWARD)
            .chain([UPDATE])
            .collect();
        self.run(Split::Train, &steps, &kernels);
        let (loss_sum, errors, _, first_non_finite) =
            self.stats_to(Split::Train, Some(order), order.len())?;
        Ok(TrainStats {
            loss_sum,
            errors,
            patterns: order.len() as u64,
            first_non_finite,
        })
    }

    fn set_distortions(&mut self, d: Option<&[Affine]>) -> Result<()> {
        if let Some(d) = d {
            if d.len() != self.train.len {
                return Err(Error::Config(format!(
                    "{} distortions for {} training images",
                    d.len(),
                    self.train.len
                )));
            }
            self.queue
                .write_buffer(&self.warps, 0, bytemuck::cast_slice(d));
        }
        self.distorting = d.is_some();
        Ok(())
    }

    fn evaluate(&mut self, split: Split) -> Result<Evaluation> {
        let n = self.split(split).len;
        let identity: Vec<u32> = (0..n as u32).collect();
        self.upload_order(split, &identity);
        let steps: Vec<Step> = Self::batches(n, self.capacity)
            .map(|(s, b)| self.step(split, s, b, 0))
            .collect();
        self.prepare_steps(&steps);
        let kernels: Vec<usize> = FORWARD.chain([LOSS]).collect();
        self.run(split, &steps, &kernels);
        let (loss_sum, errors, predictions, _) = self.stats_to(split, None, n)?;
        Ok(Evaluation {
            loss_sum,
            errors,
            predictions,
        })
    }
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
