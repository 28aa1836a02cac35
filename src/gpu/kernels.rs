//! The kernel registry: one row per kernel says everything about it (its WGSL entry point,
//! also its pipeline's label; the family whose module holds it; its dispatch and workgroup
//! size; the CPU passes it is the twin of; what it computes, reads and writes, which gives
//! `bench --profile` its FLOP and bytes and the kernel tests the tensors to compare), and
//! each family lists the order its kernels run in. Each kernel is a `Kernel`, never a
//! number or a string: inserting one shifts nothing.

use super::costs::{Cost, Data, Layer, Work, cost};
use crate::model::params::{C5_W, N_PARAMS};
use crate::model::{D1, D2, D3, D4, D5, D6, DY, X0, X1, X2, X3, X4, X5, X6, Y};

/// How many invocations a kernel needs for a batch, which also decides its workgroup size
/// (`workgroup`): the WGSL entry points declare theirs with the constants the header
/// generates from these (`shader::header`), and a test checks every entry point.
#[derive(Clone, Copy, Debug)]
pub enum Size {
    /// One invocation per (pattern, unit): units per pattern, in workgroups of `WG`.
    PerPattern(u32),
    /// One invocation each for this many items, in workgroups of `WG`.
    Threads(u32),
    /// `groups` workgroups of `wg` invocations for every `patterns` patterns (the fused
    /// kernels that own a pattern, or a group of them).
    Groups { patterns: u32, groups: u32, wg: u32 },
}

/// Invocations per workgroup of `Size::PerPattern` and `Size::Threads` kernels.
pub const WG: u32 = 64;

// The fused family's workgroups (fused.wgsl; why these sizes: shaders/README.md).
/// c1s2_forward: one invocation per S2 position, 14 x 14.
pub const C1S2_WG: u32 = 196;
/// c3s4_forward: one invocation per (C3 map, S4 position), 8 maps x 25 positions.
pub const C3S4_WG: u32 = 200;
/// head_forward(_backward): patterns per workgroup (the lanes of a vec4)...
pub const HEAD_B: u32 = 4;
/// ... and invocations (C5's 120 outputs, rounded up to whole 32-wide SIMD groups).
pub const HEAD_WG: u32 = 128;
/// conv_backward_input: invocations per workgroup, one workgroup per pattern.
pub const C3B_WG: u32 = 256;
/// conv_backward_params: invocations per workgroup...
pub const PARAMS_WG: u32 = 64;
/// ... and workgroups per pattern: one per C1/S2 map (6) and per C3/S4 map (16).
pub const PARAM_GROUPS: u32 = 22;
const _: () = assert!(HEAD_B == 4, "the head holds HEAD_B patterns in a vec4");

/// Floats of the fused family's per-pattern partial sums (`PART`): C1, S2, C3 and S4's
/// flat parameter layout, the parameters before C5's.
pub const SMALL_PARAMS: u32 = C5_W.offset as u32;

impl Size {
    /// Invocations per workgroup.
    pub const fn workgroup(self) -> u32 {
        match self {
            Size::PerPattern(_) | Size::Threads(_) => WG,
            Size::Groups { wg, .. } => wg,
        }
    }

    /// Workgroups for a batch of `b` patterns, in one dimension.
    pub const fn groups(self, b: u32) -> u32 {
        match self {
            Size::PerPattern(u) => (b * u).div_ceil(WG),
            Size::Threads(t) => t.div_ceil(WG),
            Size::Groups {
                patterns, groups, ..
            } => b.div_ceil(patterns) * groups,
        }
    }
}

/// A set of kernels that together run every pass (`--kernels`), each in a module of its
/// own: its file (shaders/) behind the shared ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// Fused kernels with workgroup memory, shaped for GPUs (fused.wgsl): 6 dispatches per
    /// training batch. The default.
    Fused,
    /// One invocation per output value, plain loops: the readable form of every pass
    /// (simple.wgsl), 22 dispatches per training batch.
    Simple,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::Fused, Family::Simple];

    /// Its name, as `--kernels` and the saved run's device record say it.
    pub fn name(self) -> &'static str {
        match self {
            Family::Fused => "fused",
            Family::Simple => "simple",
        }
    }

    /// The family named `name` (`name`'s inverse).
    pub fn from_name(name: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Its kernels, in registry order.
    pub fn kernels(self) -> impl Iterator<Item = &'static KernelSpec> {
        KERNELS.iter().filter(move |k| k.family == self)
    }

    /// A training batch (and, with the step record's mode 1, the SDLM sweep): forward,
    /// loss, backward, and the update where the step record asks for it.
    pub fn training(self) -> &'static [Kernel] {
        match self {
            Family::Fused => &FUSED_TRAINING,
            Family::Simple => &SIMPLE_TRAINING,
        }
    }

    /// An evaluation batch: forward and loss.
    pub fn evaluation(self) -> &'static [Kernel] {
        match self {
            Family::Fused => &FUSED_EVALUATION,
            Family::Simple => &SIMPLE_TRAINING[..9],
        }
    }
}

/// One kernel of the registry.
#[derive(Debug)]
pub struct KernelSpec {
    pub kernel: Kernel,
    /// The WGSL entry point and the pipeline's label.
    pub entry: &'static str,
    /// The family whose module holds it.
    pub family: Family,
    pub size: Size,
    /// The CPU functions (`cpu::*`) whose work this kernel does, in part or fused.
    pub twins: &'static [&'static str],
    /// The passes it computes.
    pub work: &'static [Work],
    /// What it reads from device memory.
    pub reads: &'static [Data],
    /// What it writes: for later kernels, the read-backs and the kernel tests.
    pub writes: &'static [Data],
}

impl KernelSpec {
    /// Its counts for a batch of `b` patterns.
    pub fn cost(&self, b: u64) -> Cost {
        cost(self.work, self.reads, self.writes, b)
    }

    /// The layout and gradient tensors it writes, by name (`Data::tensor_names`).
    pub fn written_tensors(&self) -> Vec<&'static str> {
        self.writes.iter().flat_map(|d| d.tensor_names()).collect()
    }
}

macro_rules! registry {
    ($( $kernel:ident = $family:ident, $entry:literal, $size:expr,
        twins $twins:expr, work $work:expr, reads $reads:expr, writes $writes:expr; )*) => {
        /// Every kernel, one pipeline each (`KERNELS` in the same order).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Kernel { $($kernel),* }

        /// The registry, indexed by `Kernel`.
        pub const KERNELS: &[KernelSpec] = &[$(
            KernelSpec {
                kernel: Kernel::$kernel,
                entry: $entry,
                family: Family::$family,
                size: $size,
                twins: &$twins,
                work: &$work,
                reads: &$reads,
                writes: &$writes,
            }
        ),*];
    };
}

use Data::{Image, P, Part, State, Stats, T};
use Layer::{C1, C3, C5, F6, Rbf, S2, S4};
use Work::{Forward, Input, InputGrad, Loss, ParamGrad, Sum, Update as Step};

/// The fused family's per-pattern partial sums, in floats.
const PART: u64 = SMALL_PARAMS as u64;

registry! {
    // The simple family (simple.wgsl): one invocation per output value or parameter.
    InputForward = Simple, "input_forward", Size::PerPattern(1024),
        twins ["input_forward", "input_forward_distorted"],
        work [Input], reads [Image], writes [T(X0)];
    C1Forward = Simple, "c1_forward", Size::PerPattern(4704),
        twins ["c1_forward"], work [Forward(C1)], reads [T(X0), P(C1)], writes [T(X1)];
    S2Forward = Simple, "s2_forward", Size::PerPattern(1176),
        twins ["s2_forward"], work [Forward(S2)], reads [T(X1), P(S2)], writes [T(X2)];
    C3Forward = Simple, "c3_forward", Size::PerPattern(1600),
        twins ["c3_forward"], work [Forward(C3)], reads [T(X2), P(C3)], writes [T(X3)];
    S4Forward = Simple, "s4_forward", Size::PerPattern(400),
        twins ["s4_forward"], work [Forward(S4)], reads [T(X3), P(S4)], writes [T(X4)];
    C5Forward = Simple, "c5_forward", Size::PerPattern(120),
        twins ["c5_forward"], work [Forward(C5)], reads [T(X4), P(C5)], writes [T(X5)];
    F6Forward = Simple, "f6_forward", Size::PerPattern(84),
        twins ["f6_forward"], work [Forward(F6)], reads [T(X5), P(F6)], writes [T(X6)];
    RbfForward = Simple, "rbf_forward", Size::PerPattern(10),
        twins ["rbf_forward"], work [Forward(Rbf)], reads [T(X6)], writes [T(Y)];
    LossForwardBackward = Simple, "loss_forward_backward", Size::PerPattern(1),
        twins ["loss_forward_backward"], work [Loss], reads [T(Y), Image], writes [T(DY), Stats];
    RbfBackward = Simple, "rbf_backward", Size::PerPattern(84),
        twins ["rbf_backward", "rbf_hessian"],
        work [InputGrad(Rbf)], reads [T(DY), T(X6)], writes [T(D6)];
    F6BackwardInput = Simple, "f6_backward_input", Size::PerPattern(120),
        twins ["f6_backward", "f6_hessian"],
        work [InputGrad(F6)], reads [T(D6), T(X5), P(F6)], writes [T(D5)];
    C5BackwardInput = Simple, "c5_backward_input", Size::PerPattern(400),
        twins ["c5_backward", "c5_hessian"],
        work [InputGrad(C5)], reads [T(D5), T(X4), P(C5)], writes [T(D4)];
    S4BackwardInput = Simple, "s4_backward_input", Size::PerPattern(1600),
        twins ["s4_backward", "s4_hessian"],
        work [InputGrad(S4)], reads [T(D4), T(X3), P(S4)], writes [T(D3)];
    C3BackwardInput = Simple, "c3_backward_input", Size::PerPattern(1176),
        twins ["c3_backward", "c3_hessian"],
        work [InputGrad(C3)], reads [T(D3), T(X2), P(C3)], writes [T(D2)];
    S2BackwardInput = Simple, "s2_backward_input", Size::PerPattern(4704),
        twins ["s2_backward", "s2_hessian"],
        work [InputGrad(S2)], reads [T(D2), T(X1), P(S2)], writes [T(D1)];
    F6BackwardParams = Simple, "f6_backward_params", Size::Threads(84 * 121),
        twins ["f6_backward", "f6_hessian"],
        work [ParamGrad(F6)], reads [T(D6), T(X5)], writes [P(F6)];
    C5BackwardParams = Simple, "c5_backward_params", Size::Threads(120 * 401),
        twins ["c5_backward", "c5_hessian"],
        work [ParamGrad(C5)], reads [T(D5), T(X4)], writes [P(C5)];
    S4BackwardParams = Simple, "s4_backward_params", Size::Threads(32),
        twins ["s4_backward", "s4_hessian"],
        work [ParamGrad(S4)], reads [T(D4), T(X3)], writes [P(S4)];
    C3BackwardParams = Simple, "c3_backward_params", Size::Threads(1516),
        twins ["c3_backward", "c3_hessian"],
        work [ParamGrad(C3)], reads [T(D3), T(X2)], writes [P(C3)];
    S2BackwardParams = Simple, "s2_backward_params", Size::Threads(12),
        twins ["s2_backward", "s2_hessian"],
        work [ParamGrad(S2)], reads [T(D2), T(X1)], writes [P(S2)];
    C1BackwardParams = Simple, "c1_backward_params", Size::Threads(156),
        twins ["c1_backward", "c1_hessian"],
        work [ParamGrad(C1)], reads [T(D1), T(X0)], writes [P(C1)];
    Update = Simple, "update", Size::Threads(N_PARAMS as u32),
        twins ["update"], work [Step], reads [State(4)], writes [State(2)];

    // The fused family (fused.wgsl): fused kernels with workgroup memory.
    C1S2Forward = Fused, "c1s2_forward",
        Size::Groups { patterns: 1, groups: 1, wg: C1S2_WG },
        twins ["input_forward", "input_forward_distorted", "c1_forward", "s2_forward"],
        work [Input, Forward(C1), Forward(S2)],
        reads [Image, P(C1), P(S2)],
        writes [T(X0), T(X1), T(X2)];
    C3S4Forward = Fused, "c3s4_forward",
        Size::Groups { patterns: 1, groups: 2, wg: C3S4_WG },
        twins ["c3_forward", "s4_forward"],
        work [Forward(C3), Forward(S4)],
        reads [T(X2), P(C3), P(S4)],
        writes [T(X3), T(X4)];
    HeadForward = Fused, "head_forward",
        Size::Groups { patterns: HEAD_B, groups: 1, wg: HEAD_WG },
        twins ["c5_forward", "f6_forward", "rbf_forward", "loss_forward_backward"],
        work [Forward(C5), Forward(F6), Forward(Rbf), Loss],
        reads [T(X4), P(C5), P(F6), Image],
        writes [T(X5), T(X6), T(Y), T(DY), Stats];
    HeadForwardBackward = Fused, "head_forward_backward",
        Size::Groups { patterns: HEAD_B, groups: 1, wg: HEAD_WG },
        twins ["c5_forward", "f6_forward", "rbf_forward", "loss_forward_backward",
               "rbf_backward", "f6_backward", "c5_backward",
               "rbf_hessian", "f6_hessian", "c5_hessian"],
        work [Forward(C5), Forward(F6), Forward(Rbf), Loss,
              InputGrad(Rbf), InputGrad(F6), InputGrad(C5)],
        reads [T(X4), P(C5), P(F6), Image],
        writes [T(X5), T(X6), T(Y), T(DY), Stats, T(D6), T(D5), T(D4)];
    ConvBackwardInput = Fused, "conv_backward_input",
        Size::Groups { patterns: 1, groups: 1, wg: C3B_WG },
        twins ["s4_backward", "c3_backward", "s2_backward",
               "s4_hessian", "c3_hessian", "s2_hessian"],
        work [InputGrad(S4), InputGrad(C3), InputGrad(S2)],
        reads [T(D4), T(X3), T(X2), T(X1), P(S4), P(C3), P(S2)],
        writes [T(D3), T(D2), T(D1)];
    ConvBackwardParams = Fused, "conv_backward_params",
        Size::Groups { patterns: 1, groups: PARAM_GROUPS, wg: PARAMS_WG },
        twins ["c1_backward", "s2_backward", "c3_backward", "s4_backward",
               "c1_hessian", "s2_hessian", "c3_hessian", "s4_hessian"],
        work [ParamGrad(C1), ParamGrad(S2), ParamGrad(C3), ParamGrad(S4)],
        reads [T(X0), T(D1), T(X1), T(D2), T(X2), T(D3), T(X3), T(D4)],
        writes [Part(PART)];
    GradSumUpdate = Fused, "grad_sum_update", Size::Threads(N_PARAMS as u32),
        twins ["c1_backward", "s2_backward", "c3_backward", "s4_backward",
               "c5_backward", "f6_backward", "c1_hessian", "s2_hessian", "c3_hessian",
               "s4_hessian", "c5_hessian", "f6_hessian", "update"],
        work [Sum(PART), ParamGrad(C5), ParamGrad(F6), Step],
        reads [Part(PART), T(D5), T(X4), T(D6), T(X5), State(3)],
        writes [P(C1), P(S2), P(C3), P(S4), P(C5), P(F6), State(2)];
}

impl Kernel {
    /// Its row: `registry!` makes the enum and the table in one order.
    pub fn spec(self) -> &'static KernelSpec {
        &KERNELS[self as usize]
    }

    pub fn entry(self) -> &'static str {
        self.spec().entry
    }
}

use Kernel::*;

/// The simple family's training batch: forward, loss, input gradients down to d1, every
/// parameter's gradient, the update. Its first 9 are an evaluation batch.
#[rustfmt::skip]
const SIMPLE_TRAINING: [Kernel; 22] = [
    InputForward, C1Forward, S2Forward, C3Forward, S4Forward, C5Forward, F6Forward, RbfForward,
    LossForwardBackward,
    RbfBackward, F6BackwardInput, C5BackwardInput, S4BackwardInput, C3BackwardInput,
    S2BackwardInput,
    F6BackwardParams, C5BackwardParams, S4BackwardParams, C3BackwardParams, S2BackwardParams,
    C1BackwardParams,
    Update,
];

/// The fused family's training batch (why it cannot be shorter: shaders/README.md) and
/// evaluation batch.
#[rustfmt::skip]
const FUSED_TRAINING: [Kernel; 6] = [
    C1S2Forward, C3S4Forward, HeadForwardBackward, ConvBackwardInput, ConvBackwardParams,
    GradSumUpdate,
];
const FUSED_EVALUATION: [Kernel; 3] = [C1S2Forward, C3S4Forward, HeadForward];

#[cfg(test)]
mod tests {
    use super::{Family, Kernel, Work};

    /// Each family's training batch does the same arithmetic, give or take its own
    /// second stages, and every kernel of a family is in one of its sequences.
    #[test]
    fn families_count_the_same_layer_arithmetic() {
        let b = 16;
        let layers = |f: Family| -> u64 {
            f.training()
                .iter()
                .flat_map(|&k| k.spec().work.iter())
                .filter(|w| !matches!(w, Work::Sum(_)))
                .map(|w| w.flop(b))
                .sum()
        };
        assert_eq!(layers(Family::Fused), layers(Family::Simple));
        for f in Family::ALL {
            for k in f.kernels() {
                assert!(
                    f.training().contains(&k.kernel) || f.evaluation().contains(&k.kernel),
                    "{} runs in no sequence of its family",
                    k.entry
                );
            }
            // An evaluation batch is a training batch's forward pass and loss.
            let head = |s: &[Kernel]| -> Vec<Work> {
                s.iter()
                    .flat_map(|k| k.spec().work.iter().copied())
                    .filter(|w| matches!(w, Work::Input | Work::Forward(_) | Work::Loss))
                    .collect()
            };
            assert_eq!(head(f.evaluation()), head(f.training()), "{f:?}");
        }
        // A known figure: C1's forward pass at batch 1.
        assert_eq!(Kernel::C1Forward.spec().cost(1).flop, 2 * 117_600 + 4704);
    }
}
