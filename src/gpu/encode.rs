//! Encoding batches: workgroup counts, the per-batch records, the compute pass.

use super::*;

impl GpuBackend {
    /// Workgroups (x, y, z) for kernel `k` on a batch of `b` patterns: 2-D where one
    /// dimension would exceed the device's limit (`flat_id` in common.wgsl, `group_index`
    /// in fused.wgsl). Tiles and second-stage sums stay 1-D: their kernels index in one
    /// dimension (a sum's workgroups are not `WG` wide), and their counts are fixed or
    /// bounded far below any device's limit.
    pub(super) fn groups(&self, k: Kernel, b: u32) -> (u32, u32, u32) {
        let size = k.spec().size;
        let n = size.groups(b);
        if matches!(size, Size::Tiles(_) | Size::Sum(_)) || n <= self.max_groups {
            (n, 1, 1)
        } else {
            (self.max_groups, n.div_ceil(self.max_groups), 1)
        }
    }

    /// Splits dispatches over 2-D grids as a device allowing only `groups` workgroups per
    /// dimension would (at least 1): the kernels' 2-D indexing (`flat_id`, `group_index`)
    /// is then tested without batches of thousands. For tests.
    pub fn limit_workgroups(&mut self, groups: u32) {
        self.max_groups = self.max_groups.min(groups.max(1));
    }

    /// Writes the step records, growing the buffer (and rebuilding the bind groups that
    /// point at it) when a pass has more batches than any before.
    pub(super) fn prepare_steps(&mut self, steps: &[Step]) {
        let n = steps.len() as u64;
        if n > self.steps_capacity {
            self.steps_capacity = n.next_power_of_two();
            self.steps = Self::steps_buffer(&self.device, self.steps_capacity);
            // The bind groups point at the old buffer: make them again.
            let shared = Shared {
                steps: &self.steps,
                state: &self.state,
                store: &self.store,
                small: &self.small,
                warps: &self.warps,
            };
            self.train.bind(&self.device, &self.layout, &shared);
            self.test.bind(&self.device, &self.layout, &shared);
        }
        let mut bytes = vec![0u8; steps.len() * STEP_STRIDE as usize];
        for (record, s) in bytes.chunks_exact_mut(STEP_STRIDE as usize).zip(steps) {
            record[..STEP_BYTES as usize].copy_from_slice(bytemuck::bytes_of(s));
        }
        self.queue.write_buffer(&self.steps, 0, &bytes);
    }

    /// The record of one batch of `split`: `batch` patterns from position `start` of its
    /// order, through the backward or the SDLM sweep.
    pub(super) fn step(&self, split: Split, start: usize, batch: usize, sweep: Sweep) -> Step {
        let (loss, map_j) = Step::loss(self.loss);
        let training = split == Split::Train && sweep == Sweep::Backward;
        Step {
            start: start as u32,
            batch: batch as u32,
            mode: Step::mode(sweep),
            loss,
            map_j,
            momentum: self.momentum,
            side: self.split(split).side,
            distort: (training && self.distorting) as u32,
        }
    }

    /// Kernel k's pipeline; a sequence of one family holds only that family's kernels.
    pub(super) fn pipeline(&self, k: Kernel) -> &wgpu::ComputePipeline {
        self.pipelines[k as usize]
            .as_ref()
            .unwrap_or_else(|| panic!("{} is not a {} kernel", k.entry(), self.family.name()))
    }

    /// Bytes of every buffer this backend holds on the device.
    pub fn buffer_bytes(&self) -> u64 {
        let split = |s: &SplitBuffers| {
            s.images.size() + s.labels_buf.size() + s.order.size() + s.stats.size()
        };
        self.state.size()
            + self.store.bytes()
            + self.small.size()
            + self.steps.size()
            + self.warps.size()
            + split(&self.train)
            + split(&self.test)
    }

    pub(super) fn split(&self, s: Split) -> &SplitBuffers {
        match s {
            Split::Train => &self.train,
            Split::Test => &self.test,
        }
    }

    /// Encodes `kernels` for each step record (dynamic offset i), in chunks of command
    /// buffers, and submits them: one compute pass per batch, then, after an update, the
    /// copy of the new parameters into the uniform buffer. The kernels' own copy of the
    /// parameters is refreshed at the start of every command buffer, since the host may
    /// have written new ones.
    pub(super) fn run(&self, split: Split, steps: &[Step], kernels: &[Kernel]) {
        let mut in_flight = std::collections::VecDeque::new();
        for (c, chunk) in steps.chunks(STEPS_PER_SUBMIT).enumerate() {
            let buffer = self.encode(split, chunk, c * STEPS_PER_SUBMIT, kernels);
            in_flight.push_back(self.queue.submit([buffer]));
            if in_flight.len() > MAX_IN_FLIGHT {
                // A device error here also reaches the fault handler, reported at the next wait.
                let _ = self.device.poll(wgpu::PollType::Wait {
                    submission_index: in_flight.pop_front(),
                    timeout: None,
                });
            }
        }
    }

    /// One command buffer: `kernels` for each of `chunk`'s step records (at dynamic offsets
    /// from record `first`), a compute pass per batch, each followed, after an update, by
    /// the copy of the new parameters into the uniform buffer.
    pub(super) fn encode(
        &self,
        split: Split,
        chunk: &[Step],
        first: usize,
        kernels: &[Kernel],
    ) -> wgpu::CommandBuffer {
        let bg = self.split(split).bind_group();
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("batches"),
            });
        self.copy_params(&mut enc, true);
        for (i, s) in chunk.iter().enumerate() {
            let offset = ((first + i) as u64 * STEP_STRIDE) as u32;
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("lenet"),
                    timestamp_writes: None,
                });
                pass.set_bind_group(0, bg, &[offset]);
                for &k in kernels {
                    let k = if k == Kernel::InputForward && s.distort == 1 {
                        Kernel::InputForwardDistorted
                    } else {
                        k
                    };
                    let (x, y, z) = self.groups(k, s.batch);
                    pass.set_pipeline(self.pipeline(k));
                    pass.dispatch_workgroups(x, y, z);
                }
            }
            if kernels.contains(&Kernel::Update) {
                self.copy_params(&mut enc, false);
            }
        }
        enc.finish()
    }

    /// Copies the parameters of C1 .. S4 from `state` into the uniform buffer `small`, and
    /// with `texture` all parameters into the texture kernels read them from (with
    /// `Reads::Textures`; the update kernel keeps it current within a command buffer).
    pub(super) fn copy_params(&self, enc: &mut wgpu::CommandEncoder, texture: bool) {
        enc.copy_buffer_to_buffer(&self.state, 0, &self.small, 0, SMALL_PARAMS as u64 * 4);
        if let (true, Store::Textures { params, .. }) = (texture, &self.store) {
            // Whole rows of 256: the copy may read past the parameters into the gradient
            // region, which is never fetched.
            enc.copy_buffer_to_texture(
                wgpu::TexelCopyBufferInfo {
                    buffer: &self.state,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: 0,
                        bytes_per_row: Some(256 * 4),
                        rows_per_image: None,
                    },
                },
                wgpu::TexelCopyTextureInfo {
                    texture: params,
                    mip_level: 0,
                    origin: wgpu::Origin3d::ZERO,
                    aspect: wgpu::TextureAspect::All,
                },
                wgpu::Extent3d {
                    width: 64,
                    height: PARAM_ROWS,
                    depth_or_array_layers: 1,
                },
            );
        }
    }
}
