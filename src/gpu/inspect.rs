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

    /// A training batch of `batch` patterns kernel by kernel: seconds per batch of each
    /// kernel (entry point), averaged over `reps` dispatches, from GPU timestamp queries
    /// where the adapter has them (the kernel's own time), else from the wall clock around
    /// repeated single submissions (which includes each submission's fixed cost); with
    /// each kernel's counts (`costs::cost`), and the host time to encode and submit a
    /// batch. One training batch from the start of the training set runs first, so every
    /// buffer holds real values.
    pub fn profile(&mut self, batch: usize, reps: usize) -> Result<KernelTimes> {
        let reps = reps.max(1);
        let order: Vec<u32> = (0..batch as u32).collect();
        self.train(&order, batch)?;
        let steps = vec![self.step(Split::Train, 0, batch, Sweep::Backward)];
        self.prepare_steps(&steps);
        let kernels = self.family.training();
        let times = if self.timestamps {
            self.profile_timestamps(&kernels, batch as u32, reps)?
        } else {
            let mut out = Vec::new();
            for &k in &kernels {
                self.run(Split::Train, &steps, &[k]);
                self.wait()?;
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    self.run(Split::Train, &steps, &[k]);
                }
                self.wait()?;
                out.push(t.elapsed().as_secs_f64() / reps as f64);
            }
            out
        };
        let (encode_s, submit_s) = self.host_cost(batch, &kernels)?;
        Ok(KernelTimes {
            kernels: kernels
                .iter()
                .zip(times)
                .map(|(&k, seconds)| {
                    let c = costs::cost(k, batch as u64);
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
    /// parameter copy, as `run` does) and to submit, best of five command buffers of
    /// STEPS_PER_SUBMIT batches each, waiting for the device between them so only the
    /// host's work is timed.
    fn host_cost(&mut self, batch: usize, kernels: &[Kernel]) -> Result<(f64, f64)> {
        let n = STEPS_PER_SUBMIT;
        let steps = vec![self.step(Split::Train, 0, batch, Sweep::Backward); n];
        self.prepare_steps(&steps);
        let (mut encode, mut submit) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..5 {
            let t = std::time::Instant::now();
            let buffer = self.encode(Split::Train, &steps, 0, kernels);
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
    pub(super) fn profile_timestamps(
        &self,
        kernels: &[Kernel],
        batch: u32,
        reps: usize,
    ) -> Result<Vec<f64>> {
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
