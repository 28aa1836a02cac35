//! The `Backend` implementation and the adapter's description.

use super::*;

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

impl Backend for GpuBackend {
    fn device_memory(&self) -> Option<u64> {
        Some(self.buffer_bytes())
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
        self.queue.write_buffer(
            &self.state,
            Region::Params.byte_offset(),
            bytemuck::cast_slice(p),
        );
        Ok(())
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        self.read(&self.state, Region::Params.offset(), N_PARAMS)
    }

    fn hessian(&mut self, idx: &[u32]) -> Result<Vec<f32>> {
        self.upload_order(Split::Train, idx);
        let b = self.capacity;
        let steps: Vec<Step> = Self::batches(idx.len(), b)
            .map(|(s, n)| self.step(Split::Train, s, n, Sweep::Hessian))
            .collect();
        self.prepare_steps(&steps);
        self.clear_hessian();
        let kernels = sequence(&[self.family.forward(), self.family.backward()]);
        self.run(Split::Train, &steps, &kernels);
        let h = self.read(&self.state, Region::Hacc.offset(), N_PARAMS)?;
        let n = idx.len().max(1) as f32;
        Ok(h.into_iter().map(|v| v / n).collect())
    }

    fn set_step_sizes(&mut self, eps: &[f32]) -> Result<()> {
        self.queue.write_buffer(
            &self.state,
            Region::Eps.byte_offset(),
            bytemuck::cast_slice(eps),
        );
        Ok(())
    }

    fn patterns_per_call(&self, batch: usize) -> usize {
        crate::train::CHECK_EVERY.div_ceil(batch) * batch
    }

    fn velocity(&mut self) -> Result<Vec<f32>> {
        self.read(&self.state, Region::Velocity.offset(), N_PARAMS)
    }

    fn set_velocity(&mut self, v: &[f32]) -> Result<()> {
        self.queue.write_buffer(
            &self.state,
            Region::Velocity.byte_offset(),
            bytemuck::cast_slice(v),
        );
        Ok(())
    }

    fn train(&mut self, order: &[u32], batch: usize) -> Result<TrainStats> {
        if batch > self.capacity {
            return Err(Error::Config(format!(
                "batch {batch} exceeds the {} this GPU backend was built for",
                self.capacity
            )));
        }
        self.upload_order(Split::Train, order);
        let steps: Vec<Step> = Self::batches(order.len(), batch)
            .map(|(s, n)| self.step(Split::Train, s, n, Sweep::Backward))
            .collect();
        self.prepare_steps(&steps);
        let kernels = self.family.training();
        self.run(Split::Train, &steps, &kernels);
        let (loss_sum, errors, _, first_non_finite) =
            self.stats_to(Split::Train, Some(order), order.len())?;
        Ok(TrainStats {
            loss_sum,
            errors,
            patterns: order.len() as u64,
            first_non_finite,
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
                .write_buffer(&self.warps, 0, bytemuck::cast_slice(d));
        }
        self.distorting = d.is_some();
        Ok(())
    }

    fn evaluate(&mut self, split: Split) -> Result<Evaluation> {
        let n = self.split(split).len;
        let identity: Vec<u32> = (0..n as u32).collect();
        self.upload_order(split, &identity);
        let steps: Vec<Step> = Self::batches(n, self.capacity)
            .map(|(s, b)| self.step(split, s, b, Sweep::Backward))
            .collect();
        self.prepare_steps(&steps);
        let kernels = sequence(&[self.family.forward(), self.family.loss()]);
        self.run(split, &steps, &kernels);
        let (loss_sum, errors, predictions, _) = self.stats_to(split, None, n)?;
        Ok(Evaluation {
            loss_sum,
            errors,
            predictions,
        })
    }
}
