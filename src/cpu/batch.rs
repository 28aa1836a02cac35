//! The CPU backend: the reference passes of this module's parent, run over a batch in
//! parallel. Patterns are split into fixed chunks of `CHUNK`; each chunk sums its patterns'
//! gradients in order into its own buffer, then the chunk buffers are added in chunk order.
//! The result depends only on the batch, never on the thread count or the scheduling, so
//! the same seed gives bit-identical weights.

use super::{
    Loss, Workspace, input_forward, pattern_backward, pattern_forward, pattern_hessian, predict,
};
use crate::backend::{Backend, Evaluation, Split, TrainStats};
use crate::data::Dataset;
use crate::distort::{Affine, input_forward_distorted};
use crate::params::N_PARAMS;
use crate::{RBF_CENTERS, Result};
use rayon::prelude::*;
use std::sync::Arc;

/// Patterns per parallel task.
pub const CHUNK: usize = 8;

struct Slot {
    ws: Workspace<f32>,
    acc: Vec<f32>, // (N_PARAMS) gradient or Hessian sum of this chunk
    stats: TrainStats,
}

impl Slot {
    fn new() -> Self {
        Slot {
            ws: Workspace::default(),
            acc: vec![0.0; N_PARAMS],
            stats: TrainStats::default(),
        }
    }
}

pub struct CpuBackend {
    train: Arc<Dataset>,
    test: Arc<Dataset>,
    loss: Loss,
    momentum: f32,
    params: Vec<f32>,   // (N_PARAMS)
    eps: Vec<f32>,      // (N_PARAMS) step sizes
    velocity: Vec<f32>, // (N_PARAMS)
    grad: Vec<f32>,     // (N_PARAMS) reduced over the batch
    slots: Vec<Slot>,
    /// Per training image, the warp of the current pass (`train --distort`).
    distortions: Option<Arc<Vec<Affine>>>,
}

impl CpuBackend {
    pub fn new(train: Arc<Dataset>, test: Arc<Dataset>, loss: Loss, momentum: f32) -> Self {
        CpuBackend {
            train,
            test,
            loss,
            momentum,
            params: vec![0.0; N_PARAMS],
            eps: vec![0.0; N_PARAMS],
            velocity: vec![0.0; N_PARAMS],
            grad: vec![0.0; N_PARAMS],
            slots: Vec::new(),
            distortions: None,
        }
    }

    /// The gradient summed over the last batch (for tests).
    pub fn last_gradient(&self) -> &[f32] {
        &self.grad
    }

    fn ensure_slots(&mut self, n: usize) {
        while self.slots.len() < n {
            self.slots.push(Slot::new());
        }
    }

    /// Runs `per_pattern` over `idx` in chunks, then sums the chunks' `acc` into `self.grad`
    /// in chunk order, and returns the summed stats.
    fn run_chunks<F>(&mut self, idx: &[u32], per_pattern: F) -> TrainStats
    where
        F: Fn(&mut Slot, usize) + Sync,
    {
        let n = idx.len().div_ceil(CHUNK);
        self.ensure_slots(n);
        let slots = &mut self.slots[..n];
        slots
            .par_iter_mut()
            .zip(idx.par_chunks(CHUNK))
            .for_each(|(slot, ids)| {
                slot.acc.fill(0.0);
                slot.stats = TrainStats::default();
                for &i in ids {
                    per_pattern(slot, i as usize);
                }
            });
        // Deterministic reduction: every parameter is summed over chunks 0, 1, 2, ... in order;
        // parameter blocks are independent, so they may run in parallel.
        let slots = &self.slots[..n];
        self.grad
            .par_chunks_mut(4096)
            .enumerate()
            .for_each(|(b, out)| {
                let r = b * 4096..b * 4096 + out.len();
                out.copy_from_slice(&slots[0].acc[r.clone()]);
                for s in &slots[1..] {
                    for (o, &v) in out.iter_mut().zip(&s.acc[r.clone()]) {
                        *o += v;
                    }
                }
            });
        let mut stats = TrainStats::default();
        for s in slots {
            stats.add(s.stats);
        }
        stats
    }

    fn train_batch(&mut self, idx: &[u32]) -> TrainStats {
        let (train, p, loss, warps) = (
            self.train.clone(),
            std::mem::take(&mut self.params),
            self.loss,
            self.distortions.clone(),
        );
        let stats = self.run_chunks(idx, |slot, i| {
            match &warps {
                Some(w) => {
                    input_forward_distorted(train.image(i), train.side, &w[i], &mut slot.ws.x0)
                }
                None => input_forward(train.image(i), train.side, &mut slot.ws.x0),
            }
            pattern_forward(&p, &RBF_CENTERS, &mut slot.ws);
            let label = train.labels[i] as usize;
            if predict(&slot.ws.y) != label {
                slot.stats.errors += 1;
            }
            let e = pattern_backward(&p, &RBF_CENTERS, loss, label, &mut slot.ws, &mut slot.acc);
            if !e.is_finite() && slot.stats.first_non_finite.is_none() {
                slot.stats.first_non_finite = Some(slot.stats.patterns);
            }
            slot.stats.loss_sum += e as f64;
            slot.stats.patterns += 1;
        });
        self.params = p;
        let m = self.momentum;
        for k in 0..N_PARAMS {
            self.velocity[k] = m * self.velocity[k] + self.grad[k];
            self.params[k] -= self.eps[k] * self.velocity[k];
        }
        stats
    }
}

impl Backend for CpuBackend {
    fn describe(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }

    fn set_params(&mut self, p: &[f32]) -> Result<()> {
        self.params.copy_from_slice(p);
        Ok(())
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        Ok(self.params.clone())
    }

    fn hessian(&mut self, idx: &[u32]) -> Result<Vec<f32>> {
        let train = self.train.clone();
        let p = &self.params;
        let p2: Vec<f32> = p.iter().map(|v| v * v).collect();
        let p = p.clone();
        self.run_chunks(idx, |slot, i| {
            input_forward(train.image(i), train.side, &mut slot.ws.x0);
            pattern_forward(&p, &RBF_CENTERS, &mut slot.ws);
            pattern_hessian(&p2, &mut slot.ws, &mut slot.acc);
        });
        let n = idx.len().max(1) as f32;
        Ok(self.grad.iter().map(|h| h / n).collect())
    }

    fn set_step_sizes(&mut self, eps: &[f32]) -> Result<()> {
        self.eps.copy_from_slice(eps);
        Ok(())
    }

    fn velocity(&mut self) -> Result<Vec<f32>> {
        Ok(self.velocity.clone())
    }

    fn set_velocity(&mut self, v: &[f32]) -> Result<()> {
        self.velocity.copy_from_slice(v);
        Ok(())
    }

    fn train(&mut self, order: &[u32], batch: usize) -> Result<TrainStats> {
        let mut total = TrainStats::default();
        for idx in order.chunks(batch.max(1)) {
            total.add(self.train_batch(idx));
        }
        Ok(total)
    }

    fn set_distortions(&mut self, d: Option<&[Affine]>) -> Result<()> {
        self.distortions = d.map(|d| Arc::new(d.to_vec()));
        Ok(())
    }

    fn evaluate(&mut self, split: Split) -> Result<Evaluation> {
        let set = match split {
            Split::Train => self.train.clone(),
            Split::Test => self.test.clone(),
        };
        let p = &self.params;
        let loss = self.loss;
        let n = set.len();
        let mut predictions = vec![0u8; n];
        let mut losses = vec![0f64; n.div_ceil(256)];
        predictions
            .par_chunks_mut(256)
            .zip(losses.par_iter_mut())
            .enumerate()
            .for_each_init(Workspace::<f32>::default, |ws, (c, (preds, lsum))| {
                let mut dy = [0f32; 10];
                for (k, pr) in preds.iter_mut().enumerate() {
                    let i = c * 256 + k;
                    input_forward(set.image(i), set.side, &mut ws.x0);
                    pattern_forward(p, &RBF_CENTERS, ws);
                    *pr = predict(&ws.y) as u8;
                    *lsum +=
                        super::loss_forward_backward(loss, &ws.y, set.labels[i] as usize, &mut dy)
                            as f64;
                }
            });
        let errors = predictions
            .iter()
            .zip(&set.labels)
            .filter(|(p, l)| p != l)
            .count() as u64;
        Ok(Evaluation {
            loss_sum: losses.iter().sum(),
            errors,
            predictions,
        })
    }
}
