//! Looking inside: every intermediate of a batch for the kernel tests, and kernel times.

use super::*;

/// Every intermediate of one batch, read back for the kernel tests.
pub struct Snapshot {
    /// (B, ACT_STRIDE): x0 .. x6, y per pattern, at `ACT_OFFSETS`.
    pub acts: Vec<f32>,
    /// (B, DELTA_STRIDE): d1 .. d6, dy per pattern, at `DELTA_OFFSETS`.
    pub deltas: Vec<f32>,
    /// (N_PARAMS): the batch gradient (mode 0) or the summed second derivatives (mode 1).
    pub grad: Vec<f32>,
}

/// The kernels `GpuBackend::snapshot` runs for a sweep, in order: a training batch without
/// the update (and, for the SDLM sweep, without the loss), then, for the software family
/// (whose training computes d1 in registers), the kernel that writes d1.
pub fn snapshot_kernels(sweep: Sweep, family: Family) -> Vec<Kernel> {
    let loss: &[Kernel] = match sweep {
        Sweep::Backward => family.loss(),
        Sweep::Hessian => &[],
    };
    let d1: &[Kernel] = match family {
        Family::Software => &[Kernel::S2BackwardInput],
        Family::Hardware | Family::Simple => &[],
    };
    sequence(&[family.forward(), loss, family.backward(), d1])
}

impl GpuBackend {
    /// Runs the forward pass, then the backward or second-derivative sweep, on the
    /// training patterns `idx` as one batch, without updating, and reads back every
    /// intermediate.
    pub fn snapshot(&mut self, idx: &[u32], sweep: Sweep) -> Result<Snapshot> {
        if idx.len() > self.capacity {
            return Err(Error::Config(format!(
                "snapshot of {} patterns exceeds the batch capacity {}",
                idx.len(),
                self.capacity
            )));
        }
        self.upload_order(Split::Train, idx);
        let steps = vec![self.step(Split::Train, 0, idx.len(), sweep)];
        self.prepare_steps(&steps);
        self.clear_hessian();
        let kernels = snapshot_kernels(sweep, self.family);
        self.run(Split::Train, &steps, &kernels);
        let b = idx.len();
        Ok(Snapshot {
            acts: self.read_store(false, b)?,
            deltas: self.read_store(true, b)?,
            grad: self.read(
                &self.state,
                match sweep {
                    Sweep::Backward => Region::Grad,
                    Sweep::Hessian => Region::Hacc,
                }
                .offset(),
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
        let steps = vec![self.step(Split::Train, 0, batch, Sweep::Backward)];
        self.prepare_steps(&steps);
        let kernels = self.family.training();
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
            out.push((k.entry(), t.elapsed().as_secs_f64() / reps as f64));
        }
        Ok((out, false))
    }

    /// One compute pass per kernel, `reps` dispatches each, timed by timestamp queries at
    /// the pass's start and end.
    pub(super) fn profile_timestamps(
        &self,
        kernels: &[Kernel],
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
        let bg = self.split(Split::Train).bind_group();
        for (i, &k) in kernels.iter().enumerate() {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(k.entry()),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &queries,
                    beginning_of_pass_write_index: Some(2 * i as u32),
                    end_of_pass_write_index: Some(2 * i as u32 + 1),
                }),
            });
            pass.set_bind_group(0, bg, &[0]);
            pass.set_pipeline(self.pipeline(k));
            let (x, y, z) = self.groups(k, batch);
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
                (k.entry(), dt / reps as f64)
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
            &self.state,
            Region::Hacc.byte_offset(),
            Some(N_PARAMS as u64 * 4),
        );
        self.queue.submit([enc.finish()]);
    }

    pub(super) fn wait(&self) -> Result<()> {
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
