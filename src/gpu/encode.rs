//! Encoding batches: the per-batch records, workgroup counts and the compute pass.

use super::batch::PassKind;
use super::bindings::{STEP_BYTES, Step};
use super::kernels::{Kernel, SMALL_PARAMS};
use super::setup::steps_buffer;
use super::{GpuBackend, STEP_STRIDE, SplitBuffers};
use crate::backend::Split;
use crate::model::Sweep;

impl GpuBackend {
    /// The record of one batch of `split`: `batch` patterns from position `start` of its
    /// order.
    pub(super) fn step(&self, split: Split, start: usize, batch: usize, kind: PassKind) -> Step {
        let (loss, map_j) = Step::loss(self.loss);
        let training = split == Split::Train && kind.sweep == Sweep::Backward;
        Step {
            start: start as u32,
            batch: batch as u32,
            mode: Step::mode(kind.sweep),
            loss,
            map_j,
            momentum: self.momentum,
            side: self.split(split).side,
            distort: (training && self.distorting) as u32,
            update: (training && kind.update) as u32,
        }
    }

    /// Writes the step records, growing the buffer (and rebuilding the bind groups that
    /// point at it) when a pass has more batches than any before.
    pub(super) fn write_steps(&mut self, steps: &[Step]) {
        let n = steps.len() as u64;
        if n > self.steps_capacity {
            self.steps_capacity = n.next_power_of_two();
            self.buf.steps = steps_buffer(&self.device, self.steps_capacity);
            // The bind groups point at the old buffer: make them again.
            self.train.rebind(&self.device, &self.layout, &self.buf);
            self.test.rebind(&self.device, &self.layout, &self.buf);
        }
        let mut bytes = vec![0u8; steps.len() * STEP_STRIDE as usize];
        for (record, s) in bytes.chunks_exact_mut(STEP_STRIDE as usize).zip(steps) {
            record[..STEP_BYTES as usize].copy_from_slice(bytemuck::bytes_of(s));
        }
        self.queue.write_buffer(&self.buf.steps, 0, &bytes);
    }

    /// Workgroups (x, y, z) for kernel `k` on a batch of `b` patterns: 2-D where one
    /// dimension would exceed the device's limit (`flat_id` and `group_index` in
    /// common.wgsl).
    pub(super) fn groups(&self, k: Kernel, b: u32) -> (u32, u32, u32) {
        let n = k.spec().size.groups(b);
        if n <= self.max_groups {
            (n, 1, 1)
        } else {
            (self.max_groups, n.div_ceil(self.max_groups), 1)
        }
    }

    /// Splits dispatches over 2-D grids as a device allowing only `groups` workgroups per
    /// dimension would (at least 1): the kernels' 2-D indexing is then tested without
    /// batches of thousands. For tests.
    pub fn limit_workgroups(&mut self, groups: u32) {
        self.max_groups = self.max_groups.min(groups.max(1));
    }

    /// Kernel k's pipeline; a sequence of one family holds only that family's kernels.
    fn pipeline(&self, k: Kernel) -> &wgpu::ComputePipeline {
        self.pipelines[k as usize]
            .as_ref()
            .unwrap_or_else(|| panic!("{} is not a {} kernel", k.entry(), self.family.name()))
    }

    pub(super) fn split(&self, s: Split) -> &SplitBuffers {
        match s {
            Split::Train => &self.train,
            Split::Test => &self.test,
        }
    }

    /// One command buffer: `kernels` for each of `chunk`'s step records (at dynamic
    /// offsets from record `first`), a compute pass per batch. The kernels' uniform copy of
    /// the small layers' parameters is refreshed at the start (the host may have written
    /// new ones) and after each batch that updates.
    pub(super) fn encode(
        &self,
        split: Split,
        chunk: &[Step],
        first: usize,
        kernels: &[Kernel],
    ) -> wgpu::CommandBuffer {
        let bg = &self.split(split).bind_group;
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("batches"),
            });
        self.copy_params(&mut enc);
        for (i, s) in chunk.iter().enumerate() {
            let offset = ((first + i) as u64 * STEP_STRIDE) as u32;
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("lenet batch"),
                    timestamp_writes: None,
                });
                pass.set_bind_group(0, bg, &[offset]);
                for &k in kernels.iter().filter(|k| !self.skip.contains(k)) {
                    let (x, y, z) = self.groups(k, s.batch);
                    pass.set_pipeline(self.pipeline(k));
                    pass.dispatch_workgroups(x, y, z);
                }
            }
            if s.update == 1 {
                self.copy_params(&mut enc);
            }
        }
        enc.finish()
    }

    /// Encodes `reps` dispatches of kernel `k` for step record 0 in one compute pass
    /// (`profile`), with `timestamps` at its start and end.
    pub(super) fn encode_repeated(
        &self,
        enc: &mut wgpu::CommandEncoder,
        k: Kernel,
        batch: u32,
        reps: usize,
        timestamps: Option<wgpu::ComputePassTimestampWrites>,
    ) {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(k.entry()),
            timestamp_writes: timestamps,
        });
        pass.set_bind_group(0, &self.split(Split::Train).bind_group, &[0]);
        pass.set_pipeline(self.pipeline(k));
        let (x, y, z) = self.groups(k, batch);
        for _ in 0..reps {
            pass.dispatch_workgroups(x, y, z);
        }
    }

    /// Copies the parameters of C1 .. S4 from `state` into the uniform buffer `small`.
    fn copy_params(&self, enc: &mut wgpu::CommandEncoder) {
        enc.copy_buffer_to_buffer(
            &self.buf.state,
            0,
            &self.buf.small,
            0,
            SMALL_PARAMS as u64 * 4,
        );
    }
}
