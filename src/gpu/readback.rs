//! Reading results back: activations, deltas, buffers, the per-pattern records.

use super::*;

impl GpuBackend {
    /// The first `rows` patterns' activations (`deltas` false) or deltas, (rows, stride).
    pub(super) fn read_store(&self, deltas: bool, rows: usize) -> Result<Vec<f32>> {
        let stride = if deltas { DELTA_STRIDE } else { ACT_STRIDE } as usize;
        match &self.store {
            Store::Buffers { acts, deltas: d } => {
                self.read(if deltas { d } else { acts }, 0, rows * stride)
            }
            Store::Textures {
                acts, deltas: d, ..
            } => {
                let texture = if deltas { d } else { acts };
                let staging = self.staging(rows * stride);
                let mut enc = self
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("read-back (texture)"),
                    });
                // Rows are whole multiples of 256 bytes (ACT_STRIDE, DELTA_STRIDE).
                enc.copy_texture_to_buffer(
                    wgpu::TexelCopyTextureInfo {
                        texture,
                        mip_level: 0,
                        origin: wgpu::Origin3d::ZERO,
                        aspect: wgpu::TextureAspect::All,
                    },
                    wgpu::TexelCopyBufferInfo {
                        buffer: &staging,
                        layout: wgpu::TexelCopyBufferLayout {
                            offset: 0,
                            bytes_per_row: Some(stride as u32 * 4),
                            rows_per_image: None,
                        },
                    },
                    wgpu::Extent3d {
                        width: stride as u32 / 4,
                        height: rows as u32,
                        depth_or_array_layers: 1,
                    },
                );
                self.queue.submit([enc.finish()]);
                self.map_back(&staging, rows * stride)
            }
        }
    }

    /// Copies `len` floats at `offset` (floats) of `buf` back to the host.
    pub(super) fn read(&self, buf: &wgpu::Buffer, offset: u64, len: usize) -> Result<Vec<f32>> {
        let staging = self.staging(len);
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("read-back"),
            });
        enc.copy_buffer_to_buffer(buf, offset * 4, &staging, 0, len as u64 * 4);
        self.queue.submit([enc.finish()]);
        self.map_back(&staging, len)
    }

    /// A host-mappable buffer for `len` floats, to copy into and read back with `map_back`.
    pub(super) fn staging(&self, len: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read-back"),
            size: (len as u64 * 4).max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Waits for the copies submitted into `staging`, then returns its first `len` floats.
    pub(super) fn map_back(&self, staging: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        let bytes = len as u64 * 4;
        let (tx, rx) = std::sync::mpsc::channel();
        staging
            .slice(..bytes)
            .map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
        self.wait()?;
        rx.recv()
            .map_err(|e| gpu_err("read-back", e))?
            .map_err(|e| gpu_err("read-back", e))?;
        let view = staging
            .slice(..bytes)
            .get_mapped_range()
            .map_err(|e| gpu_err("read-back", e))?;
        let out = bytemuck::cast_slice(&view).to_vec();
        drop(view);
        staging.unmap();
        Ok(out)
    }

    /// Uploads `idx` as the order of `split` (from position 0).
    pub(super) fn upload_order(&self, split: Split, idx: &[u32]) {
        self.queue
            .write_buffer(&self.split(split).order, 0, bytemuck::cast_slice(idx));
    }

    pub(super) fn stats_to(
        &self,
        split: Split,
        idx: Option<&[u32]>,
        n: usize,
    ) -> Result<(f64, u64, Vec<u8>, Option<u64>)> {
        let s = self.split(split);
        let raw = self.read(&s.stats, 0, 2 * n)?;
        let mut loss = 0.0;
        let mut errors = 0;
        let mut first_bad = None;
        let mut preds = Vec::with_capacity(n);
        for p in 0..n {
            if !raw[2 * p].is_finite() && first_bad.is_none() {
                first_bad = Some(p as u64);
            }
            loss += raw[2 * p] as f64;
            let pred = raw[2 * p + 1] as u8;
            let i = idx.map_or(p, |v| v[p] as usize);
            if pred != s.labels[i] {
                errors += 1;
            }
            preds.push(pred);
        }
        Ok((loss, errors, preds, first_bad))
    }

    pub(super) fn batches(n: usize, b: usize) -> impl Iterator<Item = (usize, usize)> {
        (0..n).step_by(b).map(move |s| (s, b.min(n - s)))
    }
}
