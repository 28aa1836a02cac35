//! What each kernel does per batch, counted from the layer shapes and the tensors it reads
//! and writes: its arithmetic (FLOP, a multiply-add counted as two, squashing functions
//! left out) and its compulsory memory traffic (every tensor it reads from or writes to
//! device memory counted once, parameters once per batch; what a kernel re-reads from a
//! cache, and its workgroup memory, are not counted). `bench --profile` divides them by
//! the kernel's measured time for GFLOP/s and GB/s. The match below is exhaustive: a new
//! kernel does not build without its counts.

use super::*;
use crate::model::params::LAYERS;

/// One kernel's counts for one batch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    pub flop: u64,
    pub read: u64,
    pub written: u64,
}

/// A pass of one layer (or of the input, loss and update), for its arithmetic.
#[derive(Clone, Copy, Debug)]
enum Work {
    /// x0 from the u8 image (scale and offset per pixel); `true`: warped, bilinear.
    Input(bool),
    Forward(Layer),
    /// The loss, dE/dy and the prediction.
    Loss,
    /// dE/dx (or its second derivative) of the layer's input.
    InputGrad(Layer),
    /// Its parameters' gradient, first stage included.
    ParamGrad(Layer),
    /// A second stage: this many per-pattern floats summed over the batch.
    Sum(u64),
    /// The SDLM step of every parameter.
    Update,
}

#[derive(Clone, Copy, Debug)]
enum Layer {
    C1,
    S2,
    C3,
    S4,
    C5,
    F6,
    Rbf,
}
use Layer::*;

/// (inputs, outputs, multiply-adds) of one pattern's forward pass of a layer; the input
/// gradient and the weight gradient take as many multiply-adds.
const fn shape(l: Layer) -> (u64, u64, u64) {
    match l {
        C1 => (1024, 4704, 4704 * 25),
        S2 => (4704, 1176, 1176 * 4),
        C3 => (1176, 1600, params::C3_LINKS as u64 * 100 * 25),
        S4 => (1600, 400, 400 * 4),
        C5 => (400, 120, 400 * 120),
        F6 => (120, 84, 120 * 84),
        Rbf => (84, 10, 84 * 10),
    }
}

impl Work {
    /// FLOP for a batch of b.
    fn flop(self, b: u64) -> u64 {
        match self {
            Work::Input(false) => 2 * 1024 * b,
            // Four taps, three lerps, the scale: about 20 per pixel.
            Work::Input(true) => 20 * 1024 * b,
            // Sums (or weighted sums) and a bias per output.
            Work::Forward(l) => {
                let (_, o, m) = shape(l);
                (2 * m + o) * b
            }
            // Ten exponentials, sums and differences.
            Work::Loss => 40 * b,
            // Multiply-adds, then the squashing derivative (three) per input.
            Work::InputGrad(l) => {
                let (i, _, m) = shape(l);
                (2 * m + 3 * i) * b
            }
            // Multiply-adds, and the bias's sum per output.
            Work::ParamGrad(l) => {
                let (_, o, m) = shape(l);
                (2 * m + o) * b
            }
            Work::Sum(n) => n * b,
            Work::Update => 4 * N_PARAMS as u64,
        }
    }
}

/// Something a kernel reads or writes in device memory.
#[derive(Clone, Copy, Debug)]
enum Data {
    /// A layout tensor (`model::ACTIVATIONS` or `DELTAS`), per pattern.
    T(&'static str),
    /// A layer's parameters (or their gradient) by layer name, once per batch.
    P(&'static str),
    /// The u8 image, its index and label, per pattern.
    Image,
    /// This many floats of partial sums per pattern.
    Part(u64),
    /// (loss, prediction) per pattern.
    Stats,
    /// This many regions of `state` (N_PARAMS floats each), once per batch.
    State(u64),
}

impl Data {
    fn bytes(self, b: u64) -> u64 {
        match self {
            Data::T(name) => {
                let a = ACTIVATIONS
                    .iter()
                    .chain(DELTAS.iter())
                    .find(|a| a.name == name)
                    .unwrap_or_else(|| panic!("no layout tensor {name}"));
                4 * a.len() as u64 * b
            }
            Data::P(layer) => {
                let (_, tensors) = LAYERS
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(layer))
                    .unwrap_or_else(|| panic!("no layer {layer}"));
                4 * tensors.iter().map(|t| t.len as u64).sum::<u64>()
            }
            Data::Image => (784 + 8) * b,
            Data::Part(n) => 4 * n * b,
            Data::Stats => 8 * b,
            Data::State(n) => 4 * n * N_PARAMS as u64,
        }
    }
}

/// A kernel's passes, what it reads and what it writes.
type Counts = (&'static [Work], &'static [Data], &'static [Data]);

/// Floats of the software family's per-pattern partial sums (conv.wgsl, subsample.wgsl):
/// C1 and S2 in 7 row blocks of 6 maps x 28, C3 in 60 links x 28 and 6 bias texels, S4 a
/// texel per map.
const SW_C1_PART: u64 = 7 * 168;
const SW_C3_PART: u64 = 60 * 28 + 24;
const SW_S4_PART: u64 = 16 * 4;
/// The hardware family's: C1, S2, C3 and S4's flat parameter layout.
const HW_PART: u64 = SMALL_PARAMS as u64;

fn counts(k: Kernel) -> Counts {
    use Data::*;
    use Kernel::*;
    use Work::*;
    match k {
        InputForward => (&[Input(false)], &[Image], &[T("x0")]),
        InputForwardDistorted => (&[Input(true)], &[Image], &[T("x0")]),
        LossForwardBackward => (&[Loss], &[T("y"), Image], &[T("dy"), Stats]),
        Kernel::Update => (&[Work::Update], &[State(4)], &[State(2)]),
        // The software family.
        C1Forward | C1ForwardSimple => (&[Forward(C1)], &[T("x0"), P("c1")], &[T("x1")]),
        S2Forward | S2ForwardSimple => (&[Forward(S2)], &[T("x1"), P("s2")], &[T("x2")]),
        C3Forward | C3ForwardSimple => (&[Forward(C3)], &[T("x2"), P("c3")], &[T("x3")]),
        S4Forward | S4ForwardSimple => (&[Forward(S4)], &[T("x3"), P("s4")], &[T("x4")]),
        C5Forward | C5ForwardSimple => (&[Forward(C5)], &[T("x4"), P("c5")], &[T("x5")]),
        F6Forward | F6ForwardSimple => (&[Forward(F6)], &[T("x5"), P("f6")], &[T("x6")]),
        RbfForward | RbfForwardSimple => (&[Forward(Rbf)], &[T("x6")], &[T("y")]),
        RbfBackward | RbfBackwardSimple => (&[InputGrad(Rbf)], &[T("dy"), T("x6")], &[T("d6")]),
        F6BackwardInput | F6BackwardInputSimple => {
            (&[InputGrad(F6)], &[T("d6"), T("x5"), P("f6")], &[T("d5")])
        }
        C5BackwardInput | C5BackwardInputSimple => {
            (&[InputGrad(C5)], &[T("d5"), T("x4"), P("c5")], &[T("d4")])
        }
        S4BackwardInput | S4BackwardInputSimple => {
            (&[InputGrad(S4)], &[T("d4"), T("x3"), P("s4")], &[T("d3")])
        }
        C3BackwardInput | C3BackwardInputSimple => {
            (&[InputGrad(C3)], &[T("d3"), T("x2"), P("c3")], &[T("d2")])
        }
        S2BackwardInput | S2BackwardInputSimple => {
            (&[InputGrad(S2)], &[T("d2"), T("x1"), P("s2")], &[T("d1")])
        }
        F6BackwardParams | F6BackwardParamsSimple => {
            (&[ParamGrad(F6)], &[T("d6"), T("x5")], &[P("f6")])
        }
        C5BackwardParams | C5BackwardParamsSimple => {
            (&[ParamGrad(C5)], &[T("d5"), T("x4")], &[P("c5")])
        }
        S4BackwardParams => (&[ParamGrad(S4)], &[T("d4"), T("x3")], &[Part(SW_S4_PART)]),
        S4BackwardParamsSum => (&[Sum(SW_S4_PART)], &[Part(SW_S4_PART)], &[P("s4")]),
        C3BackwardParams => (&[ParamGrad(C3)], &[T("d3"), T("x2")], &[Part(SW_C3_PART)]),
        C3BackwardParamsSum => (&[Sum(SW_C3_PART)], &[Part(SW_C3_PART)], &[P("c3")]),
        // d1 in registers from d2, then C1's and S2's first stage.
        C1BackwardParams => (
            &[InputGrad(S2), ParamGrad(S2), ParamGrad(C1)],
            &[T("d2"), T("x1"), T("x0"), P("s2")],
            &[Part(SW_C1_PART)],
        ),
        C1BackwardParamsSum => (&[Sum(SW_C1_PART)], &[Part(SW_C1_PART)], &[P("c1"), P("s2")]),
        // The simple family's parameter kernels sum over the batch in one stage.
        S4BackwardParamsSimple => (&[ParamGrad(S4)], &[T("d4"), T("x3")], &[P("s4")]),
        C3BackwardParamsSimple => (&[ParamGrad(C3)], &[T("d3"), T("x2")], &[P("c3")]),
        S2BackwardParamsSimple => (&[ParamGrad(S2)], &[T("d2"), T("x1")], &[P("s2")]),
        C1BackwardParamsSimple => (&[ParamGrad(C1)], &[T("d1"), T("x0")], &[P("c1")]),
        // The hardware family.
        C1S2Forward => (
            &[Forward(C1), Forward(S2)],
            &[T("x0"), P("c1"), P("s2")],
            &[T("x1"), T("x2")],
        ),
        C3S4Forward => (
            &[Forward(C3), Forward(S4)],
            &[T("x2"), P("c3"), P("s4")],
            &[T("x3"), T("x4")],
        ),
        HeadForward => (
            &[Forward(C5), Forward(F6), Forward(Rbf), Loss],
            &[T("x4"), P("c5"), P("f6"), Image],
            &[T("x5"), T("x6"), T("y"), T("dy"), Stats],
        ),
        HeadBackwardInput => (
            &[InputGrad(Rbf), InputGrad(F6), InputGrad(C5)],
            &[T("dy"), T("x6"), T("x5"), T("x4"), P("f6"), P("c5")],
            &[T("d6"), T("d5"), T("d4")],
        ),
        ConvBackwardInput => (
            &[InputGrad(S4), InputGrad(C3), InputGrad(S2)],
            &[
                T("d4"),
                T("x3"),
                T("x2"),
                T("x1"),
                P("s4"),
                P("c3"),
                P("s2"),
            ],
            &[T("d3"), T("d2"), T("d1")],
        ),
        ConvBackwardParams => (
            &[ParamGrad(C1), ParamGrad(S2), ParamGrad(C3), ParamGrad(S4)],
            &[
                T("x0"),
                T("d1"),
                T("x1"),
                T("d2"),
                T("x2"),
                T("d3"),
                T("x3"),
                T("d4"),
            ],
            &[Part(HW_PART)],
        ),
        DenseBackwardParams => (
            &[ParamGrad(C5), ParamGrad(F6)],
            &[T("d5"), T("x4"), T("d6"), T("x5")],
            &[P("c5"), P("f6")],
        ),
        ConvBackwardParamsSum => (
            &[Sum(HW_PART)],
            &[Part(HW_PART)],
            &[P("c1"), P("s2"), P("c3"), P("s4")],
        ),
    }
}

/// Kernel k's counts for a batch of `b` patterns.
pub fn cost(k: Kernel, b: u64) -> Cost {
    let (work, read, written) = counts(k);
    Cost {
        flop: work.iter().map(|w| w.flop(b)).sum(),
        read: read.iter().map(|d| d.bytes(b)).sum(),
        written: written.iter().map(|d| d.bytes(b)).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each family's training batch does the same arithmetic, give or take its own
    /// second stages and the work a family does twice, and every layer's three passes
    /// appear in it.
    #[test]
    fn families_count_the_same_layer_arithmetic() {
        let b = 16;
        let layers = |f: Family| -> u64 {
            f.training()
                .iter()
                .flat_map(|&k| counts(k).0.iter())
                .filter(|w| !matches!(w, Work::Sum(_)))
                .map(|w| w.flop(b))
                .sum()
        };
        // The software family's C1 kernel also computes S2's input gradient, which
        // S2BackwardInput (inspection only) is the twin of.
        assert_eq!(layers(Family::Hardware), layers(Family::Simple));
        assert_eq!(layers(Family::Software), layers(Family::Simple));
        // Written tensors: every kernel's `writes` (layout tensors and gradients) are in
        // its counts.
        for k in KERNELS {
            let (_, _, written) = counts(k.kernel);
            for &w in k.writes {
                let found = written.iter().any(|d| match *d {
                    Data::T(n) => n == w,
                    Data::P(layer) => w.split('.').next() == Some(layer),
                    _ => false,
                });
                assert!(found, "{}: writes {w}, not in its counts", k.entry);
            }
        }
        // A known figure: C1's forward pass at batch 1.
        assert_eq!(cost(Kernel::C1ForwardSimple, 1).flop, 2 * 117_600 + 4704);
    }
}
