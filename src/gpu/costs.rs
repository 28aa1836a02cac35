//! What a kernel does per batch, in the terms its registry row states them
//! (`kernels::KERNELS`): the passes it runs (`Work`, for its arithmetic: FLOP, a
//! multiply-add counted as two, squashing functions left out) and what it reads and writes
//! in device memory (`Data`, its compulsory traffic: every tensor counted once, parameters
//! once per batch; what a kernel re-reads from a cache, and its workgroup memory, are not
//! counted). `bench --profile` divides them by the kernel's measured time for GFLOP/s and
//! GB/s; the kernel tests walk the tensors a row says it writes.

pub use crate::model::layers::Layer;
use crate::model::params::N_PARAMS;
use crate::model::{ACTIVATIONS, Activation, DELTAS};

/// One kernel's counts for one batch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    pub flop: u64,
    pub read: u64,
    pub written: u64,
}

/// A pass of one layer (or of the input, loss and update), for its arithmetic.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Work {
    /// x0 from the u8 image (scale and offset per pixel; warped batches cost more, not
    /// counted).
    Input,
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

impl Work {
    /// FLOP for a batch of b.
    pub fn flop(self, b: u64) -> u64 {
        match self {
            Work::Input => 2 * 1024 * b,
            // Sums (or weighted sums) and a bias per output.
            Work::Forward(l) => {
                let (_, o, m) = l.shape();
                (2 * m + o) * b
            }
            // Ten exponentials, sums and differences.
            Work::Loss => 40 * b,
            // Multiply-adds, then the squashing derivative (three) per input.
            Work::InputGrad(l) => {
                let (i, _, m) = l.shape();
                (2 * m + 3 * i) * b
            }
            // Multiply-adds, and the bias's sum per output.
            Work::ParamGrad(l) => {
                let (_, o, m) = l.shape();
                (2 * m + o) * b
            }
            Work::Sum(n) => n * b,
            Work::Update => 4 * N_PARAMS as u64,
        }
    }
}

/// Something a kernel reads or writes in device memory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Data {
    /// A layout tensor (`model::ACTIVATIONS` or `DELTAS`), per pattern.
    T(Activation),
    /// A layer's parameters (or their gradient), once per batch.
    P(Layer),
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
    pub fn bytes(self, b: u64) -> u64 {
        match self {
            Data::T(a) => 4 * a.len() as u64 * b,
            Data::P(layer) => 4 * layer.tensors().iter().map(|t| t.len as u64).sum::<u64>(),
            Data::Image => (784 + 8) * b,
            Data::Part(n) => 4 * n * b,
            Data::Stats => 8 * b,
            Data::State(n) => 4 * n * N_PARAMS as u64,
        }
    }

    /// The names of the tensors this is, as the parity tests know them: a layout tensor's
    /// (`x3`), a layer's gradient tensors (`c3.weight`, `c3.bias`); none for the rest.
    pub fn tensor_names(self) -> Vec<&'static str> {
        match self {
            Data::T(a) => {
                debug_assert!(ACTIVATIONS.contains(&a) || DELTAS.contains(&a));
                vec![a.name]
            }
            Data::P(layer) => layer.tensors().iter().map(|t| t.name).collect(),
            _ => Vec::new(),
        }
    }
}

/// The counts of a kernel whose row says it runs `work`, reads `read` and writes
/// `written`, for a batch of `b` patterns.
pub fn cost(work: &[Work], read: &[Data], written: &[Data], b: u64) -> Cost {
    Cost {
        flop: work.iter().map(|w| w.flop(b)).sum(),
        read: read.iter().map(|d| d.bytes(b)).sum(),
        written: written.iter().map(|d| d.bytes(b)).sum(),
    }
}
