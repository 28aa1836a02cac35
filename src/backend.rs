//! *Internal:* What the trainer needs from a backend (the CPU reference, the GPU): the same epoch loop
//! runs on either. A backend owns the training and test sets, the parameters, the step
//! sizes and the momentum buffer; the host owns the SDLM schedule.

use crate::Result;

/// Running totals of a training pass, measured on each pattern just before its update.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TrainStats {
    pub loss_sum: f64,
    pub errors: u64,
    pub patterns: u64,
    /// Index (within the patterns given) of the first pattern whose loss was not finite.
    pub first_non_finite: Option<u64>,
}

impl TrainStats {
    pub fn add(&mut self, o: TrainStats) {
        if self.first_non_finite.is_none() {
            self.first_non_finite = o.first_non_finite.map(|p| p + self.patterns);
        }
        self.loss_sum += o.loss_sum;
        self.errors += o.errors;
        self.patterns += o.patterns;
    }
}

/// The outcome of classifying a whole split.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub loss_sum: f64,
    pub errors: u64,
    /// argmin of the RBF outputs, per pattern.
    pub predictions: Vec<u8>,
}

impl Evaluation {
    pub fn error_rate(&self) -> f64 {
        self.errors as f64 / self.predictions.len().max(1) as f64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// One training batch of a GPU backend, kernel by kernel (`bench --profile`).
#[derive(Debug, Clone)]
pub struct KernelTimes {
    /// Per kernel (entry point), in the batch's order: seconds per batch, and its own
    /// counts of FLOP and of bytes read and written per batch (`gpu::costs`).
    pub kernels: Vec<KernelTime>,
    /// Whether GPU timestamp queries measured the kernels (else the wall clock around
    /// repeated single dispatches, each submission's fixed cost included).
    pub timestamps: bool,
    /// Dispatches per training batch.
    pub dispatches: usize,
    /// Host seconds per batch to record its compute pass (wgpu's checks and the driver's
    /// command recording), and to submit it, measured over a full command buffer.
    pub encode_s: f64,
    pub submit_s: f64,
}

#[derive(Debug, Clone)]
pub struct KernelTime {
    pub name: String,
    pub seconds: f64,
    pub flop: u64,
    pub read: u64,
    pub written: u64,
}

pub trait Backend {
    /// What runs the math, for reports ("cpu (2 threads)", an adapter name).
    fn describe(&self) -> String;
    /// Replaces the parameters (flat layout of `params`).
    fn set_params(&mut self, p: &[f32]) -> Result<()>;
    /// The current parameters.
    fn params(&mut self) -> Result<Vec<f32>>;
    /// The SDLM estimate of the Hessian diagonal: the mean over the training patterns `idx`
    /// of each pattern's back-propagated second derivatives (docs/design.md section 2.2).
    fn hessian(&mut self, idx: &[u32]) -> Result<Vec<f32>>;
    /// Per-parameter step sizes used by every following update.
    fn set_step_sizes(&mut self, eps: &[f32]) -> Result<()>;
    /// The momentum buffer (flat layout), for checkpoints.
    fn velocity(&mut self) -> Result<Vec<f32>>;
    fn set_velocity(&mut self, v: &[f32]) -> Result<()>;
    /// Trains on the training patterns `order`, `batch` at a time: for each batch, forward,
    /// backward, then v = momentum * v + g and w -= eps * v, with g the gradient summed over
    /// the batch.
    fn train(&mut self, order: &[u32], batch: usize) -> Result<TrainStats>;
    /// How many patterns to hand `train` at once, between checks of the stop flag and the
    /// loss: one batch on the CPU (a stop request is honoured after the current batch); a
    /// GPU encodes many batches per submission, so it checks less often.
    fn patterns_per_call(&self, batch: usize) -> usize {
        batch
    }
    /// Classifies every pattern of a split with the current parameters.
    fn evaluate(&mut self, split: Split) -> Result<Evaluation>;
    /// From now on, training steps warp training image i by `d[i]` before the input layer
    /// (`train --distort`; `d` has one entry per training image); None: no warp. Hessian
    /// estimates and evaluation always see the images as they are.
    fn set_distortions(&mut self, d: Option<&[crate::distort::Affine]>) -> Result<()>;
    /// Bytes of device (GPU) memory held in buffers; None where the math runs on the host.
    fn device_memory(&self) -> Option<u64> {
        None
    }
    /// Each kernel of a training batch of `batch`, timed over `reps` runs, with its
    /// counts, and the host's cost of the batch (`KernelTimes`); None for a backend
    /// without kernels.
    fn profile(&mut self, _batch: usize, _reps: usize) -> Result<Option<KernelTimes>> {
        Ok(None)
    }
    /// Checks the kernels against the CPU reference on the first training patterns
    /// (`sample` holds them as the host sees them; `check::run`); None for a backend
    /// without kernels. Leaves the parameters to be set again.
    fn self_check(
        &mut self,
        _sample: &crate::data::Dataset,
    ) -> Result<Option<crate::check::FamilyCheck>> {
        Ok(None)
    }
    /// What identifies `self_check`'s result for the cache (`check::key`); None without
    /// kernels.
    fn self_check_key(&self) -> Option<String> {
        None
    }
    /// Test-only (`LENET_FAULT=lose:P:N`): destroys the device, as a driver reset would;
    /// nothing where there is no device.
    fn lose_device(&mut self) {}
}
