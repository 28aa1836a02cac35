//! The one per-tensor parity harness: the CPU reference run pattern by pattern, and the
//! comparison of another implementation's tensors against it, walking the model's layout
//! table (`model::ACTIVATIONS`, `DELTAS`) and the parameter table (`params::TENSORS`). The
//! fast-path tests (tests/fast.rs) and the GPU kernel tests (tests/gpu.rs) both use it.

use super::compare;
use lenet_gpu::cpu::Workspace;
use lenet_gpu::data::Dataset;
use lenet_gpu::model::params::TENSORS;
use lenet_gpu::model::{ACTIVATIONS, Activation, DELTAS, DY, Loss, Sweep};

/// Tolerances for every tensor: f32 sums of up to 20,000 terms in another order, so 1e-5
/// of the tensor's largest value plus 1e-4 relative.
pub const ABS: f32 = 1e-5;
pub const REL: f32 = 1e-4;

/// The reference's tensors for some training patterns, after one forward pass and one
/// sweep.
pub struct Reference {
    pub sweep: Sweep,
    /// One workspace per pattern.
    pub ws: Vec<Workspace<f32>>,
    /// (N_PARAMS): the patterns' summed gradient (Backward) or second derivatives (Hessian).
    pub grad: Vec<f32>,
}

/// Runs the reference on training patterns `idx` of `set` with parameters `p` (squared
/// for the Hessian sweep): the on-device check's reference (`lenet_gpu::check::reference`).
pub fn reference(set: &Dataset, idx: &[usize], p: &[f32], sweep: Sweep, loss: Loss) -> Reference {
    let (ws, grad) = lenet_gpu::check::reference(set, idx, p, sweep, loss);
    Reference { sweep, ws, grad }
}

impl Reference {
    /// The layout tensors this sweep computes: every activation and delta, but dy in the
    /// Hessian sweep (which starts from the RBF layer's constant second derivative).
    pub fn tensors(&self) -> impl Iterator<Item = &'static Activation> {
        let sweep = self.sweep;
        ACTIVATIONS
            .iter()
            .chain(DELTAS.iter())
            .filter(move |a| !(sweep == Sweep::Hessian && **a == DY))
    }

    /// Whether this sweep computes tensor `name`: a parameter's gradient, or one of
    /// `tensors`.
    pub fn computes(&self, name: &str) -> bool {
        TENSORS.iter().any(|t| t.name == name) || self.tensors().any(|a| a.name == name)
    }

    /// Compares layout tensor `a` of every pattern, `got(p)` giving pattern p's values;
    /// `what` prefixes the failure message.
    pub fn check_tensor(
        &self,
        what: &str,
        a: &Activation,
        got: impl Fn(usize) -> Vec<f32>,
    ) -> Option<String> {
        let got: Vec<f32> = (0..self.ws.len()).flat_map(got).collect();
        let want: Vec<f32> = self.ws.iter().flat_map(|w| w.tensor(a).to_vec()).collect();
        compare(&format!("{what}{}", a.name), &got, &want, ABS, REL)
    }

    /// Compares gradient tensor `name` (`params::TENSORS`) of `grad`.
    pub fn check_grad(&self, what: &str, name: &str, grad: &[f32]) -> Option<String> {
        let t = TENSORS
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no parameter tensor {name}"));
        compare(
            &format!("{what}{name}"),
            t.of(grad),
            t.of(&self.grad),
            ABS,
            REL,
        )
    }

    /// Every layout tensor this sweep computes (`got(a, p)`), then every gradient tensor.
    pub fn check_all(
        &self,
        got: impl Fn(&Activation, usize) -> Vec<f32>,
        grad: &[f32],
    ) -> Vec<String> {
        let mut fails: Vec<String> = self
            .tensors()
            .filter_map(|a| self.check_tensor("", a, |p| got(a, p)))
            .collect();
        fails.extend(
            TENSORS
                .iter()
                .filter_map(|t| self.check_grad("", t.name, grad)),
        );
        fails
    }
}
