//! A pass of batches on the host, top-down, as every kind of pass runs it (training, the
//! SDLM estimate, evaluation, the kernel tests' snapshot): upload the order, build and
//! write the step records, encode the dispatches, submit, read back the statistics.

use super::bindings::Step;
use super::kernels::Kernel;
use super::{GpuBackend, MAX_IN_FLIGHT, STEPS_PER_SUBMIT};
use crate::Result;
use crate::backend::Split;
use crate::model::Sweep;

/// What a pass's statistics say: the summed loss, the errors, each position's predicted
/// class, and the first position whose loss is not finite.
pub(super) struct PassStats {
    pub loss_sum: f64,
    pub errors: u64,
    pub predictions: Vec<u8>,
    pub first_non_finite: Option<u64>,
}

/// How a pass's batches run.
#[derive(Clone, Copy)]
pub(super) struct PassKind {
    pub sweep: Sweep,
    /// Apply the SDLM step after each batch's gradient (training).
    pub update: bool,
}

impl GpuBackend {
    /// Runs the kernels `kernels` over the patterns `order` of `split` in batches of
    /// `batch`, each batch one compute pass.
    pub(super) fn pass(
        &mut self,
        split: Split,
        order: &[u32],
        batch: usize,
        kind: PassKind,
        kernels: &[Kernel],
    ) -> Result<()> {
        // 1. The order: which pattern each position of the pass is.
        self.queue
            .write_buffer(&self.split(split).order, 0, bytemuck::cast_slice(order));
        // 2. One step record per batch, at its dynamic offset in `steps`.
        let steps: Vec<Step> = (0..order.len())
            .step_by(batch.max(1))
            .map(|start| self.step(split, start, batch.min(order.len() - start), kind))
            .collect();
        self.write_steps(&steps);
        // 3. The dispatches, STEPS_PER_SUBMIT batches to a command buffer; at most
        //    MAX_IN_FLIGHT buffers wait for the device while the next is recorded.
        let mut in_flight = std::collections::VecDeque::new();
        for (c, chunk) in steps.chunks(STEPS_PER_SUBMIT).enumerate() {
            let buffer = self.encode(split, chunk, c * STEPS_PER_SUBMIT, kernels);
            in_flight.push_back(self.queue.submit([buffer]));
            if in_flight.len() > MAX_IN_FLIGHT {
                self.wait_for(in_flight.pop_front())?;
            }
        }
        Ok(())
    }

    /// 4. The statistics of a pass over `order` (None: the identity) of `split`, read back
    ///    once the pass has run.
    pub(super) fn pass_stats(
        &self,
        split: Split,
        order: Option<&[u32]>,
        n: usize,
    ) -> Result<PassStats> {
        let s = self.split(split);
        let raw = self.read(&s.stats, 0, 2 * n)?;
        let mut out = PassStats {
            loss_sum: 0.0,
            errors: 0,
            predictions: Vec::with_capacity(n),
            first_non_finite: None,
        };
        for p in 0..n {
            if !raw[2 * p].is_finite() && out.first_non_finite.is_none() {
                out.first_non_finite = Some(p as u64);
            }
            out.loss_sum += raw[2 * p] as f64;
            let pred = raw[2 * p + 1] as u8;
            let i = order.map_or(p, |v| v[p] as usize);
            if pred != s.labels[i] {
                out.errors += 1;
            }
            out.predictions.push(pred);
        }
        Ok(out)
    }
}
