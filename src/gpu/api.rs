//! The `Backend` implementation and the adapter's description.

use super::GpuBackend;
use super::batch::PassKind;
use super::bindings::Region;
use crate::backend::{Backend, Evaluation, KernelTimes, Split, TrainStats};
use crate::distort::Affine;
use crate::model::Sweep;
use crate::model::params::N_PARAMS;
use crate::{Error, Result};

/// "gpu: NAME (API, DRIVER)", saying nothing twice: Mesa's software adapters repeat
/// their name and LLVM version in the driver fields ("llvmpipe (LLVM 15.0.6, 256 bits)",
/// driver "llvmpipe", "Mesa 22.3.6 (LLVM 15.0.6)") -> "gpu: llvmpipe (LLVM 15.0.6, 256
/// bits) (Vulkan, Mesa 22.3.6)".
pub fn describe_adapter(info: &wgpu::AdapterInfo) -> String {
    let name = info.name.to_lowercase();
    let mut parts = vec![format!("{:?}", info.backend)];
    for field in [info.driver.as_str(), info.driver_info.as_str()] {
        let mut f = field.trim().to_string();
        // Drop parenthesised groups the name already says.
        while let (Some(a), Some(b)) = (f.find('('), f.find(')')) {
            if b < a || !name.contains(&f[a + 1..b].to_lowercase()) {
                break;
            }
            f = format!("{}{}", f[..a].trim_end(), &f[b + 1..]);
        }
        let f = f.trim().to_string();
        if !f.is_empty() && !name.contains(&f.to_lowercase()) && !parts.contains(&f) {
            parts.push(f);
        }
    }
    format!("gpu: {} ({})", info.name, parts.join(", "))
}

impl GpuBackend {
    /// Bytes of every buffer this backend holds on the device.
    pub fn buffer_bytes(&self) -> u64 {
        let split = |s: &super::SplitBuffers| {
            s.images.size() + s.labels_buf.size() + s.order.size() + s.stats.size()
        };
        let b = &self.buf;
        [&b.state, &b.acts, &b.deltas, &b.small, &b.steps, &b.warps]
            .iter()
            .map(|b| b.size())
            .sum::<u64>()
            + split(&self.train)
            + split(&self.test)
    }

    /// The most patterns a batch (or a snapshot) may hold.
    pub fn capacity_patterns(&self) -> usize {
        self.capacity
    }

    /// The kernel family in use.
    pub fn family(&self) -> super::Family {
        self.family
    }

    /// The criterion of the following training batches.
    pub fn set_loss(&mut self, loss: crate::model::Loss) {
        self.loss = loss;
    }

    /// The adapter's name, driver and API.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    fn write_region(&self, r: Region, v: &[f32]) {
        self.queue
            .write_buffer(&self.buf.state, r.byte_offset(), bytemuck::cast_slice(v));
    }
}

impl Backend for GpuBackend {
    fn device_memory(&self) -> Option<u64> {
        Some(self.buffer_bytes())
    }

    fn self_check(
        &mut self,
        sample: &crate::data::Dataset,
    ) -> Result<Option<crate::check::FamilyCheck>> {
        let loss = self.loss;
        let check = crate::check::run(self, sample, crate::check::Depth::Quick);
        self.loss = loss;
        check.map(Some)
    }

    fn self_check_key(&self) -> Option<String> {
        let mut key = crate::check::key(&self.info, self.family);
        if !self.skip.is_empty() {
            let skipped: Vec<&str> = self.skip.iter().map(|k| k.entry()).collect();
            key.push_str(&format!(
                "; test fault: {} not dispatched",
                skipped.join(",")
            ));
        }
        Some(key)
    }

    fn lose_device(&mut self) {
        self.device.destroy();
    }

    fn profile(&mut self, batch: usize, reps: usize) -> Result<Option<KernelTimes>> {
        GpuBackend::profile(self, batch, reps).map(Some)
    }

    /// The adapter, and which kernel family runs on it.
    fn describe(&self) -> String {
        format!(
            "{}, {} kernels",
            describe_adapter(&self.info),
            self.family.name()
        )
    }

    fn set_params(&mut self, p: &[f32]) -> Result<()> {
        self.write_region(Region::Params, p);
        Ok(())
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        self.read(&self.buf.state, Region::Params.offset(), N_PARAMS)
    }

    fn hessian(&mut self, idx: &[u32]) -> Result<Vec<f32>> {
        self.clear_hessian();
        let kind = PassKind {
            sweep: Sweep::Hessian,
            update: false,
        };
        self.pass(
            Split::Train,
            idx,
            self.capacity,
            kind,
            self.family.training(),
        )?;
        let h = self.read(&self.buf.state, Region::Hacc.offset(), N_PARAMS)?;
        let n = idx.len().max(1) as f32;
        Ok(h.into_iter().map(|v| v / n).collect())
    }

    fn set_step_sizes(&mut self, eps: &[f32]) -> Result<()> {
        self.write_region(Region::Eps, eps);
        Ok(())
    }

    fn patterns_per_call(&self, batch: usize) -> usize {
        crate::train::CHECK_EVERY.div_ceil(batch) * batch
    }

    fn velocity(&mut self) -> Result<Vec<f32>> {
        self.read(&self.buf.state, Region::Velocity.offset(), N_PARAMS)
    }

    fn set_velocity(&mut self, v: &[f32]) -> Result<()> {
        self.write_region(Region::Velocity, v);
        Ok(())
    }

    fn train(&mut self, order: &[u32], batch: usize) -> Result<TrainStats> {
        if batch > self.capacity {
            return Err(Error::Config(format!(
                "batch {batch} exceeds the {} this GPU backend was built for",
                self.capacity
            )));
        }
        let kind = PassKind {
            sweep: Sweep::Backward,
            update: true,
        };
        self.pass(Split::Train, order, batch, kind, self.family.training())?;
        let s = self.pass_stats(Split::Train, Some(order), order.len())?;
        Ok(TrainStats {
            loss_sum: s.loss_sum,
            errors: s.errors,
            patterns: order.len() as u64,
            first_non_finite: s.first_non_finite,
        })
    }

    fn set_distortions(&mut self, d: Option<&[Affine]>) -> Result<()> {
        if let Some(d) = d {
            if d.len() != self.train.len {
                return Err(Error::Config(format!(
                    "{} distortions for {} training images",
                    d.len(),
                    self.train.len
                )));
            }
            self.queue
                .write_buffer(&self.buf.warps, 0, bytemuck::cast_slice(d));
        }
        self.distorting = d.is_some();
        Ok(())
    }

    fn evaluate(&mut self, split: Split) -> Result<Evaluation> {
        let n = self.split(split).len;
        let identity: Vec<u32> = (0..n as u32).collect();
        let kind = PassKind {
            sweep: Sweep::Backward,
            update: false,
        };
        self.pass(
            split,
            &identity,
            self.capacity,
            kind,
            self.family.evaluation(),
        )?;
        let s = self.pass_stats(split, None, n)?;
        Ok(Evaluation {
            loss_sum: s.loss_sum,
            errors: s.errors,
            predictions: s.predictions,
        })
    }
}
