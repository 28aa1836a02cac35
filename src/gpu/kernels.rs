//! The kernel registry: for every kernel its WGSL entry point (also its pipeline's label),
//! file, dispatch size and workgroup size, the CPU passes it is the twin of and the tensors
//! it writes; and the order kernels run in for each kind of batch. Each kernel is a
//! `Kernel`, never a number: inserting one shifts nothing.

use super::*;

/// How many invocations a kernel needs for a batch, which also decides its workgroup size
/// (`workgroup`): the WGSL entry points declare theirs with the constants the header
/// generates from these (`shader::header`), and a test checks every entry point.
#[derive(Clone, Copy, Debug)]
pub enum Size {
    /// One invocation per (pattern, unit): units per pattern.
    PerPattern(u32),
    /// One invocation each for this many items.
    Threads(u32),
    /// One invocation per tile of `TILE_B` patterns, times this many blocks of 8 units, in
    /// workgroups of `DENSE_WG` (dense layers; under 65535 groups for any batch below 80
    /// million).
    Tiles(u32),
    /// One invocation each for this many parameters (or groups of four) of a gradient's
    /// second stage, in workgroups of `SUM_WG`: there are few, and a CPU adapter runs each
    /// workgroup on one core, so small groups keep every core busy.
    Sum(u32),
    /// `groups` workgroups of `wg` invocations for every `patterns` patterns (the hardware
    /// family's kernels that own a pattern, or a group of them: fused.wgsl).
    Groups { patterns: u32, groups: u32, wg: u32 },
}

/// Invocations per workgroup of most kernels (`Size::PerPattern`, `Size::Threads`).
pub const WG: u32 = 64;
/// Workgroup size of the dense-layer forward and input-gradient kernels (`Size::Tiles`).
pub const DENSE_WG: u32 = 16;
/// Patterns per tile of those kernels.
pub const TILE_B: u32 = 16;
/// Workgroup size of the gradients' second-stage sums (`Size::Sum`).
pub const SUM_WG: u32 = 8;

// The hardware family's workgroups (fused.wgsl; why these sizes: shaders/README.md).
/// c1s2_forward: one invocation per S2 position, 14 x 14.
pub const C1S2_WG: u32 = 196;
/// c3s4_forward: one invocation per (C3 map, S4 position), 8 maps x 25 positions.
pub const C3S4_WG: u32 = 200;
/// head_forward and head_backward_input: patterns per workgroup (the lanes of a vec4)...
pub const HEAD_B: u32 = 4;
/// ... and invocations (C5's 120 outputs, rounded up to whole 32-wide SIMD groups).
pub const HEAD_WG: u32 = 128;
/// conv_backward_input: invocations per workgroup, one workgroup per pattern.
pub const C3B_WG: u32 = 256;
/// conv_backward_params: invocations per workgroup...
pub const PARAMS_WG: u32 = 64;
/// ... and workgroups per pattern: one per C1/S2 map (6) and per C3/S4 map (16).
pub const PARAM_GROUPS: u32 = 22;
const _: () = assert!(HEAD_B == 4, "head_forward holds HEAD_B patterns in a vec4");

impl Size {
    /// Invocations per workgroup.
    pub const fn workgroup(self) -> u32 {
        match self {
            Size::PerPattern(_) | Size::Threads(_) => WG,
            Size::Tiles(_) => DENSE_WG,
            Size::Sum(_) => SUM_WG,
            Size::Groups { wg, .. } => wg,
        }
    }

    /// Workgroups for a batch of `b` patterns, in one dimension.
    pub const fn groups(self, b: u32) -> u32 {
        match self {
            Size::PerPattern(u) => (b * u).div_ceil(WG),
            Size::Threads(t) => t.div_ceil(WG),
            Size::Sum(t) => t.div_ceil(SUM_WG),
            Size::Tiles(blocks) => (b.div_ceil(TILE_B) * blocks).div_ceil(DENSE_WG),
            Size::Groups {
                patterns, groups, ..
            } => b.div_ceil(patterns) * groups,
        }
    }
}

/// A set of kernels that together run every pass (`--kernels`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Large per-invocation register tiles from loops unrolled at load (conv.wgsl,
    /// subsample.wgsl, full.wgsl): shaped for CPU adapters (lavapipe, llvmpipe), where an
    /// invocation is a SIMD lane of a CPU core and few, fat invocations win.
    Software,
    /// Fused kernels, one output or a few per invocation, workgroup memory for what a
    /// workgroup reuses (fused.wgsl): shaped for GPUs, where thousands of small
    /// invocations hide memory latency and every dispatch costs microseconds. Storage
    /// buffers only.
    Hardware,
    /// One invocation per output value, plain loops, one kernel per pass (simple.wgsl):
    /// the simplest readable form of every pass, kept beside the fast families and
    /// tested like them. Storage buffers only.
    Simple,
}

impl Family {
    /// `software` on CPU adapters, `hardware` on GPUs (`--kernels auto`).
    pub fn for_adapter(info: &wgpu::AdapterInfo) -> Family {
        match info.device_type {
            wgpu::DeviceType::Cpu => Family::Software,
            _ => Family::Hardware,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::Software => "software",
            Family::Hardware => "hardware",
            Family::Simple => "simple",
        }
    }

    /// The shader files its module is made of (`shader::SHADERS`).
    pub fn files(self) -> &'static [&'static str] {
        match self {
            Family::Software => &[
                "input",
                "dense",
                "conv",
                "subsample",
                "full",
                "rbf",
                "loss",
                "update",
            ],
            Family::Hardware => &["input", "loss", "update", "fused"],
            Family::Simple => &["input", "loss", "update", "simple"],
        }
    }

    /// Its kernels, in registry order.
    pub fn kernels(self) -> impl Iterator<Item = &'static KernelSpec> {
        KERNELS
            .iter()
            .filter(move |k| self.files().contains(&k.file))
    }

    /// The forward pass, input to RBF outputs.
    pub fn forward(self) -> &'static [Kernel] {
        match self {
            Family::Software => &FORWARD,
            Family::Hardware => &FORWARD_FUSED,
            Family::Simple => &FORWARD_SIMPLE,
        }
    }

    /// The backward sweep (first or second derivatives, by the step record's `mode`), from
    /// dy (or its constant) to every parameter's gradient.
    pub fn backward(self) -> &'static [Kernel] {
        match self {
            Family::Software => &BACKWARD,
            Family::Hardware => &BACKWARD_FUSED,
            Family::Simple => &BACKWARD_SIMPLE,
        }
    }

    /// The loss, dE/dy and the statistics after the forward pass, where it is a kernel of
    /// its own (the hardware family's head_forward computes it).
    pub fn loss(self) -> &'static [Kernel] {
        match self {
            Family::Software | Family::Simple => &LOSS,
            Family::Hardware => &[],
        }
    }

    /// A training batch: forward, loss, backward, update.
    pub fn training(self) -> Vec<Kernel> {
        sequence(&[self.forward(), self.loss(), self.backward(), &UPDATE])
    }

    /// Whether its kernels need activations and deltas in storage buffers (they write
    /// one float at a time).
    pub fn needs_storage(self) -> bool {
        self != Family::Software
    }
}

/// One kernel of the registry.
#[derive(Debug)]
pub struct KernelSpec {
    pub kernel: Kernel,
    /// The WGSL entry point and the pipeline's label.
    pub entry: &'static str,
    /// The file under shaders/ that holds it (without `.wgsl`).
    pub file: &'static str,
    pub size: Size,
    /// The CPU functions (`cpu::*`) whose work this kernel does, in part or fused.
    pub twins: &'static [&'static str],
    /// What it leaves for later kernels and the read-backs: layout tensors
    /// (`model::ACTIVATIONS`, `DELTAS`, by name) and parameter gradients (`params::TENSORS`,
    /// by name). Empty for a first stage whose partial sums only its second stage reads.
    pub writes: &'static [&'static str],
}

macro_rules! registry {
    ($( $kernel:ident = $file:literal, $entry:literal, $size:expr, twins $twins:expr, writes $writes:expr; )*) => {
        /// Every kernel, one pipeline each (`KERNELS` in the same order).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Kernel { $($kernel),* }

        /// The registry, indexed by `Kernel`.
        pub const KERNELS: &[KernelSpec] = &[$(
            KernelSpec {
                kernel: Kernel::$kernel,
                entry: $entry,
                file: $file,
                size: $size,
                twins: &$twins,
                writes: &$writes,
            }
        ),*];
    };
}

registry! {
    InputForward = "input", "input_forward", Size::PerPattern(32),
        twins ["input_forward"], writes ["x0"];
    C1Forward = "conv", "c1_forward", Size::PerPattern(49),
        twins ["c1_forward"], writes ["x1"];
    S2Forward = "subsample", "s2_forward", Size::PerPattern(1176 / 4),
        twins ["s2_forward"], writes ["x2"];
    C3Forward = "conv", "c3_forward", Size::PerPattern(16),
        twins ["c3_forward"], writes ["x3"];
    S4Forward = "subsample", "s4_forward", Size::PerPattern(400 / 4),
        twins ["s4_forward"], writes ["x4"];
    C5Forward = "conv", "c5_forward", Size::Tiles(15),
        twins ["c5_forward"], writes ["x5"];
    F6Forward = "full", "f6_forward", Size::Tiles(11),
        twins ["f6_forward"], writes ["x6"];
    RbfForward = "rbf", "rbf_forward", Size::PerPattern(1),
        twins ["rbf_forward"], writes ["y"];
    LossForwardBackward = "loss", "loss_forward_backward", Size::PerPattern(1),
        twins ["loss_forward_backward"], writes ["dy"];
    RbfBackward = "rbf", "rbf_backward", Size::PerPattern(1),
        twins ["rbf_backward", "rbf_hessian"], writes ["d6"];
    F6BackwardInput = "full", "f6_backward_input", Size::Tiles(15),
        twins ["f6_backward", "f6_hessian"], writes ["d5"];
    C5BackwardInput = "conv", "c5_backward_input", Size::Tiles(50),
        twins ["c5_backward", "c5_hessian"], writes ["d4"];
    S4BackwardInput = "subsample", "s4_backward_input", Size::PerPattern(80),
        twins ["s4_backward", "s4_hessian"], writes ["d3"];
    C3BackwardInput = "conv", "c3_backward_input", Size::PerPattern(6),
        twins ["c3_backward", "c3_hessian"], writes ["d2"];
    F6BackwardParams = "full", "f6_backward_params", Size::Threads(6 * 15),
        twins ["f6_backward", "f6_hessian"], writes ["f6.weight", "f6.bias"];
    C5BackwardParams = "conv", "c5_backward_params", Size::Threads(8 * 50),
        twins ["c5_backward", "c5_hessian"], writes ["c5.weight", "c5.bias"];
    S4BackwardParams = "subsample", "s4_backward_params", Size::PerPattern(16),
        twins ["s4_backward", "s4_hessian"], writes [];
    S4BackwardParamsSum = "subsample", "s4_backward_params_sum", Size::Sum(16),
        twins ["s4_backward", "s4_hessian"], writes ["s4.weight", "s4.bias"];
    C3BackwardParams = "conv", "c3_backward_params", Size::PerPattern(6),
        twins ["c3_backward", "c3_hessian"], writes [];
    C3BackwardParamsSum = "conv", "c3_backward_params_sum", Size::Sum(60 * 7 + 6),
        twins ["c3_backward", "c3_hessian"], writes ["c3.weight", "c3.bias"];
    // Also computes d1 from d2 (S2's input gradient) into registers and the first stage of
    // S2's parameter gradients (conv.wgsl); d1 itself is written only by S2BackwardInput.
    C1BackwardParams = "conv", "c1_backward_params", Size::PerPattern(7),
        twins ["s2_backward", "c1_backward", "s2_hessian", "c1_hessian"], writes [];
    C1BackwardParamsSum = "conv", "c1_backward_params_sum", Size::Sum(6 * 7),
        twins ["s2_backward", "c1_backward", "s2_hessian", "c1_hessian"],
        writes ["s2.weight", "s2.bias", "c1.weight", "c1.bias"];
    Update = "update", "update", Size::Threads(N_PARAMS as u32 / 4),
        twins ["update"], writes [];
    // Replaces InputForward in batches whose step record says distort.
    InputForwardDistorted = "input", "input_forward_distorted", Size::PerPattern(32),
        twins ["input_forward_distorted"], writes ["x0"];
    // d1 for inspection (`snapshot`): training computes it inside c1_backward_params.
    S2BackwardInput = "subsample", "s2_backward_input", Size::PerPattern(588),
        twins ["s2_backward", "s2_hessian"], writes ["d1"];
    // The hardware family (simple.wgsl): one invocation per output value; it shares the
    // input, loss and update kernels above.
    C1ForwardSimple = "simple", "c1_forward_simple", Size::PerPattern(4704),
        twins ["c1_forward"], writes ["x1"];
    S2ForwardSimple = "simple", "s2_forward_simple", Size::PerPattern(1176),
        twins ["s2_forward"], writes ["x2"];
    C3ForwardSimple = "simple", "c3_forward_simple", Size::PerPattern(1600),
        twins ["c3_forward"], writes ["x3"];
    S4ForwardSimple = "simple", "s4_forward_simple", Size::PerPattern(400),
        twins ["s4_forward"], writes ["x4"];
    C5ForwardSimple = "simple", "c5_forward_simple", Size::PerPattern(120),
        twins ["c5_forward"], writes ["x5"];
    F6ForwardSimple = "simple", "f6_forward_simple", Size::PerPattern(84),
        twins ["f6_forward"], writes ["x6"];
    RbfForwardSimple = "simple", "rbf_forward_simple", Size::PerPattern(10),
        twins ["rbf_forward"], writes ["y"];
    RbfBackwardSimple = "simple", "rbf_backward_simple", Size::PerPattern(84),
        twins ["rbf_backward", "rbf_hessian"], writes ["d6"];
    F6BackwardInputSimple = "simple", "f6_backward_input_simple", Size::PerPattern(120),
        twins ["f6_backward", "f6_hessian"], writes ["d5"];
    C5BackwardInputSimple = "simple", "c5_backward_input_simple", Size::PerPattern(400),
        twins ["c5_backward", "c5_hessian"], writes ["d4"];
    S4BackwardInputSimple = "simple", "s4_backward_input_simple", Size::PerPattern(1600),
        twins ["s4_backward", "s4_hessian"], writes ["d3"];
    C3BackwardInputSimple = "simple", "c3_backward_input_simple", Size::PerPattern(1176),
        twins ["c3_backward", "c3_hessian"], writes ["d2"];
    S2BackwardInputSimple = "simple", "s2_backward_input_simple", Size::PerPattern(4704),
        twins ["s2_backward", "s2_hessian"], writes ["d1"];
    F6BackwardParamsSimple = "simple", "f6_backward_params_simple", Size::Threads(84 * 121),
        twins ["f6_backward", "f6_hessian"], writes ["f6.weight", "f6.bias"];
    C5BackwardParamsSimple = "simple", "c5_backward_params_simple", Size::Threads(120 * 401),
        twins ["c5_backward", "c5_hessian"], writes ["c5.weight", "c5.bias"];
    S4BackwardParamsSimple = "simple", "s4_backward_params_simple", Size::Threads(32),
        twins ["s4_backward", "s4_hessian"], writes ["s4.weight", "s4.bias"];
    C3BackwardParamsSimple = "simple", "c3_backward_params_simple", Size::Threads(1516),
        twins ["c3_backward", "c3_hessian"], writes ["c3.weight", "c3.bias"];
    S2BackwardParamsSimple = "simple", "s2_backward_params_simple", Size::Threads(12),
        twins ["s2_backward", "s2_hessian"], writes ["s2.weight", "s2.bias"];
    C1BackwardParamsSimple = "simple", "c1_backward_params_simple", Size::Threads(156),
        twins ["c1_backward", "c1_hessian"], writes ["c1.weight", "c1.bias"];
    // The hardware family (fused.wgsl): fused kernels with workgroup memory; it shares the
    // input and update kernels and loss.wgsl's loss_at.
    C1S2Forward = "fused", "c1s2_forward",
        Size::Groups { patterns: 1, groups: 1, wg: C1S2_WG },
        twins ["c1_forward", "s2_forward"], writes ["x1", "x2"];
    C3S4Forward = "fused", "c3s4_forward",
        Size::Groups { patterns: 1, groups: 2, wg: C3S4_WG },
        twins ["c3_forward", "s4_forward"], writes ["x3", "x4"];
    HeadForward = "fused", "head_forward",
        Size::Groups { patterns: HEAD_B, groups: 1, wg: HEAD_WG },
        twins ["c5_forward", "f6_forward", "rbf_forward", "loss_forward_backward"],
        writes ["x5", "x6", "y", "dy"];
    HeadBackwardInput = "fused", "head_backward_input",
        Size::Groups { patterns: HEAD_B, groups: 1, wg: HEAD_WG },
        twins ["rbf_backward", "f6_backward", "c5_backward", "rbf_hessian", "f6_hessian", "c5_hessian"],
        writes ["d6", "d5", "d4"];
    ConvBackwardInput = "fused", "conv_backward_input",
        Size::Groups { patterns: 1, groups: 1, wg: C3B_WG },
        twins ["s4_backward", "c3_backward", "s2_backward", "s4_hessian", "c3_hessian", "s2_hessian"],
        writes ["d3", "d2", "d1"];
    ConvBackwardParams = "fused", "conv_backward_params",
        Size::Groups { patterns: 1, groups: PARAM_GROUPS, wg: PARAMS_WG },
        twins ["c1_backward", "s2_backward", "c3_backward", "s4_backward",
               "c1_hessian", "s2_hessian", "c3_hessian", "s4_hessian"],
        writes [];
    DenseBackwardParams = "fused", "dense_backward_params",
        Size::Threads((N_PARAMS - params::C5_W.offset) as u32),
        twins ["c5_backward", "f6_backward", "c5_hessian", "f6_hessian"],
        writes ["c5.weight", "c5.bias", "f6.weight", "f6.bias"];
    ConvBackwardParamsSum = "fused", "conv_backward_params_sum",
        Size::Threads(params::C5_W.offset as u32),
        twins ["c1_backward", "s2_backward", "c3_backward", "s4_backward",
               "c1_hessian", "s2_hessian", "c3_hessian", "s4_hessian"],
        writes ["c1.weight", "c1.bias", "s2.weight", "s2.bias",
                "c3.weight", "c3.bias", "s4.weight", "s4.bias"];
}

impl Kernel {
    pub fn spec(self) -> &'static KernelSpec {
        &KERNELS[self as usize]
    }

    pub fn entry(self) -> &'static str {
        self.spec().entry
    }
}

// `Kernel::spec` indexes the table by the enum: the macro keeps them in one order.
const _: () = {
    let mut k = 0;
    while k < KERNELS.len() {
        assert!(KERNELS[k].kernel as usize == k);
        k += 1;
    }
};

use Kernel::*;

/// The software family's forward pass, input to RBF outputs.
pub const FORWARD: [Kernel; 8] = [
    InputForward,
    C1Forward,
    S2Forward,
    C3Forward,
    S4Forward,
    C5Forward,
    F6Forward,
    RbfForward,
];
/// The loss and dE/dy (training batches only: the SDLM sweep starts from a constant).
pub const LOSS: [Kernel; 1] = [LossForwardBackward];
/// The software family's backward sweep. Input gradients first, then the parameter
/// gradients, which read them.
pub const BACKWARD: [Kernel; 13] = [
    RbfBackward,
    F6BackwardInput,
    C5BackwardInput,
    S4BackwardInput,
    C3BackwardInput,
    F6BackwardParams,
    C5BackwardParams,
    S4BackwardParams,
    S4BackwardParamsSum,
    C3BackwardParams,
    C3BackwardParamsSum,
    C1BackwardParams,
    C1BackwardParamsSum,
];
/// The hardware family's forward pass.
pub const FORWARD_SIMPLE: [Kernel; 8] = [
    InputForward,
    C1ForwardSimple,
    S2ForwardSimple,
    C3ForwardSimple,
    S4ForwardSimple,
    C5ForwardSimple,
    F6ForwardSimple,
    RbfForwardSimple,
];
/// The hardware family's backward sweep: input gradients down to d1, then every
/// parameter's gradient.
pub const BACKWARD_SIMPLE: [Kernel; 12] = [
    RbfBackwardSimple,
    F6BackwardInputSimple,
    C5BackwardInputSimple,
    S4BackwardInputSimple,
    C3BackwardInputSimple,
    S2BackwardInputSimple,
    F6BackwardParamsSimple,
    C5BackwardParamsSimple,
    S4BackwardParamsSimple,
    C3BackwardParamsSimple,
    S2BackwardParamsSimple,
    C1BackwardParamsSimple,
];
/// The hardware family's forward pass; its last kernel also computes the loss in the
/// backward sweep (step record mode 0), so `Family::loss` is empty.
pub const FORWARD_FUSED: [Kernel; 4] = [InputForward, C1S2Forward, C3S4Forward, HeadForward];
/// The hardware family's backward sweep: input gradients down to d1, then every
/// parameter's gradient (C1 .. S4 in two stages).
pub const BACKWARD_FUSED: [Kernel; 5] = [
    HeadBackwardInput,
    ConvBackwardInput,
    ConvBackwardParams,
    DenseBackwardParams,
    ConvBackwardParamsSum,
];
/// The step from the batch gradient.
pub const UPDATE: [Kernel; 1] = [Update];

/// The kernels of one kind of batch, in order.
pub fn sequence(parts: &[&[Kernel]]) -> Vec<Kernel> {
    parts.concat()
}
