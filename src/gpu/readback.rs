//! Reading results back, and waiting for the device: every wait turns a device error (or
//! the first error wgpu reported outside an error scope) into a message where it happens.

use super::setup::buffer;
use super::{GpuBackend, gpu_err};
use crate::{Error, Result};

impl GpuBackend {
    /// Copies `len` floats at `offset` (floats) of `buf` back to the host.
    pub(super) fn read(&self, buf: &wgpu::Buffer, offset: u64, len: usize) -> Result<Vec<f32>> {
        let usage = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
        let staging = buffer(&self.device, "read-back", (len as u64 * 4).max(4), usage);
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("read-back"),
            });
        enc.copy_buffer_to_buffer(buf, offset * 4, &staging, 0, len as u64 * 4);
        self.queue.submit([enc.finish()]);
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

    /// Waits for all submitted work.
    pub(super) fn wait(&self) -> Result<()> {
        self.wait_for(None)
    }

    /// Waits for submission `index` (None: all submitted work).
    pub(super) fn wait_for(&self, index: Option<wgpu::SubmissionIndex>) -> Result<()> {
        let polled = self.device.poll(wgpu::PollType::Wait {
            submission_index: index,
            timeout: None,
        });
        if let Some(e) = self.fault.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let hint = if e.starts_with("the device was lost") {
                "the last checkpoint written is intact"
            } else {
                "the last checkpoint written is intact; try a smaller --batch or --backend cpu"
            };
            return Err(Error::Gpu(format!(
                "{} failed: {e}; {hint}",
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
