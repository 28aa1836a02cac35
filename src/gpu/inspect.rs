//! Looking inside: every intermediate of a batch for the kernel tests, and kernel times
//! for `bench --profile`.

use super::batch::PassKind;
use super::bindings::Region;
use super::kernels::Kernel;
use super::setup::buffer;
use super::{GpuBackend, STEPS_PER_SUBMIT};
use crate::backend::{KernelTime, KernelTimes, Split};
use crate::model::Sweep;
use crate::model::params::N_PARAMS;
use crate::{Error, Result};

/// Every intermediate of one batch, read back for the kernel tests.
pub struct Snapshot {
    /// (B, ACT_STRIDE): x0 .. x6, y per pattern, at `ACT_OFFSETS`.
    pub acts: Vec<f32>,
    /// (B, DELTA_STRIDE): d1 .. d6, dy per pattern, at `DELTA_OFFSETS`.
    pub deltas: Vec<f32>,
    /// (N_PARAMS): the batch gradient (Backward) or the summed second derivatives
    /// (Hessian).
    pub grad: Vec<f32>,
}

impl Snapshot {
    /// Layout tensor `a` (`model::ACTIVATIONS` or `DELTAS`) of pattern `b` of the batch.
    ///
    /// Panics if `a` is in neither table.
    pub fn tensor(&self, a: &crate::model::Activation, b: usize) -> &[f32] {
        use crate::model::{ACTIVATIONS, DELTAS};
        let (values, at) = match (
            ACTIVATIONS.iter().position(|x| x == a),
            DELTAS.iter().position(|x| x == a),
        ) {
            (Some(i), _) => (
                &self.acts,
                b * super::ACT_STRIDE as usize + super::ACT_OFFSETS[i],
            ),
            (_, Some(i)) => (
                &self.deltas,
                b * super::DELTA_STRIDE as usize + super::DELTA_OFFSETS[i],
            ),
            _ => panic!("{} is not a layout tensor", a.name),
        };
        &values[at..at + a.len()]
    }
}

impl GpuBackend {
    /// Runs a training batch (or the SDLM sweep) of the family on the training patterns
    /// `idx` as one batch, without updating, and reads back every intermediate.
    pub fn snapshot(&mut self, idx: &[u32], sweep: Sweep) -> Result<Snapshot> {
        if idx.len() > self.capacity {
            return Err(Error::Config(format!(
                "snapshot of {} patterns exceeds the batch capacity {}",
                idx.len(),
                self.capacity
            )));
        }
        self.clear_hessian();
        let kind = PassKind {
            sweep,
            update: false,
        };
        self.pass(Split::Train, idx, idx.len(), kind, self.family.training())?;
        let b = idx.len();
        let grad = match sweep {
            Sweep::Backward => Region::Grad,
            Sweep::Hessian => Region::Hacc,
        };
        Ok(Snapshot {
            acts: self.read(&self.buf.acts, 0, b * super::ACT_STRIDE as usize)?,
            deltas: self.read(&self.buf.deltas, 0, b * super::DELTA_STRIDE as usize)?,
            grad: self.read(&self.buf.state, grad.offset(), N_PARAMS)?,
        })
    }

    /// A training batch of `batch` patterns kernel by kernel: seconds per batch of each
    /// kernel (entry point), averaged over `reps` dispatches, from GPU timestamp queries
    /// where the adapter has them (the kernel's own time), else from the wall clock around
    /// one submission of the `reps` dispatches (which includes its fixed cost); with
    /// each kernel's counts (its registry row), and the host time to encode and submit a
    /// batch. One training batch from the start of the training set runs first, so every
    /// buffer holds real values; the timed dispatches do not update.
    pub fn profile(&mut self, batch: usize, reps: usize) -> Result<KernelTimes> {
        let reps = reps.max(1);
        let order: Vec<u32> = (0..batch as u32).collect();
        let kind = PassKind {
            sweep: Sweep::Backward,
            update: false,
        };
        self.pass(Split::Train, &order, batch, kind, self.family.training())?;
        self.wait()?;
        let kernels = self.family.training();
        let times = if self.timestamps {
            self.profile_timestamps(kernels, batch as u32, reps)?
        } else {
            let mut out = Vec::new();
            for &k in kernels {
                let time = |reps| -> Result<f64> {
                    let mut enc = self.device.create_command_encoder(&Default::default());
                    self.encode_repeated(&mut enc, k, batch as u32, reps, None);
                    let t = std::time::Instant::now();
                    self.queue.submit([enc.finish()]);
                    self.wait()?;
                    Ok(t.elapsed().as_secs_f64())
                };
                time(1)?;
                out.push(time(reps)? / reps as f64);
            }
            out
        };
        let (encode_s, submit_s) = self.host_cost(batch, kernels)?;
        Ok(KernelTimes {
            kernels: kernels
                .iter()
                .zip(times)
                .map(|(&k, seconds)| {
                    let c = k.spec().cost(batch as u64);
                    KernelTime {
                        name: k.entry().to_string(),
                        seconds,
                        flop: c.flop,
                        read: c.read,
                        written: c.written,
                    }
                })
                .collect(),
            timestamps: self.timestamps,
            dispatches: kernels.len(),
            encode_s,
            submit_s,
        })
    }

    /// Host seconds per training batch to encode (record its compute pass and the
    /// parameter copy, as a pass does) and to submit, best of five command buffers of
    /// STEPS_PER_SUBMIT batches each, waiting for the device between them so only the
    /// host's work is timed.
    fn host_cost(&mut self, batch: usize, kernels: &[Kernel]) -> Result<(f64, f64)> {
        let n = STEPS_PER_SUBMIT;
        let kind = PassKind {
            sweep: Sweep::Backward,
            update: true,
        };
        // Encoded as a training batch (with the parameter copy), run without the update.
        let encoded_steps = vec![self.step(Split::Train, 0, batch, kind); n];
        let mut quiet = encoded_steps[0];
        quiet.update = 0;
        self.write_steps(&vec![quiet; n]);
        let (mut encode, mut submit) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..5 {
            let t = std::time::Instant::now();
            let buffer = self.encode(Split::Train, &encoded_steps, 0, kernels);
            let encoded = t.elapsed().as_secs_f64();
            let t = std::time::Instant::now();
            self.queue.submit([buffer]);
            let submitted = t.elapsed().as_secs_f64();
            self.wait()?;
            encode = encode.min(encoded / n as f64);
            submit = submit.min(submitted / n as f64);
        }
        Ok((encode, submit))
    }

    /// One compute pass per kernel, `reps` dispatches each, timed by timestamp queries at
    /// the pass's start and end.
    fn profile_timestamps(&self, kernels: &[Kernel], batch: u32, reps: usize) -> Result<Vec<f64>> {
        let n = 2 * kernels.len() as u32;
        let queries = self.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("profile timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: n,
        });
        let bytes = n as u64 * wgpu::QUERY_SIZE as u64;
        let usage = wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC;
        let resolved = buffer(&self.device, "profile timestamps (resolved)", bytes, usage);
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("profile"),
            });
        for (i, &k) in kernels.iter().enumerate() {
            let writes = wgpu::ComputePassTimestampWrites {
                query_set: &queries,
                beginning_of_pass_write_index: Some(2 * i as u32),
                end_of_pass_write_index: Some(2 * i as u32 + 1),
            };
            self.encode_repeated(&mut enc, k, batch, reps, Some(writes));
        }
        enc.resolve_query_set(&queries, 0..n, &resolved, 0);
        self.queue.submit([enc.finish()]);
        let raw = self.read(&resolved, 0, 2 * n as usize)?;
        let ticks: Vec<u64> = bytemuck::cast_slice::<f32, u64>(&raw).to_vec();
        let period = self.queue.get_timestamp_period() as f64 * 1e-9;
        Ok((0..kernels.len())
            .map(|i| {
                let dt = ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period;
                dt / reps as f64
            })
            .collect())
    }

    /// Zeroes the Hessian accumulator (the `hacc` region of `state`) before an estimate.
    pub(super) fn clear_hessian(&self) {
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("clear hacc"),
            });
        enc.clear_buffer(
            &self.buf.state,
            Region::Hacc.byte_offset(),
            Some(N_PARAMS as u64 * 4),
        );
        self.queue.submit([enc.finish()]);
    }
}
