//! The CPU backend: the passes of this module's parent, run over a batch in parallel, with
//! either kernel set ([`CpuKernels`]): the plain reference loops, one pattern at a time, or
//! the fast path of `cpu::fast`, one block of eight patterns at a time. Patterns are split
//! into chunks whose size depends only on the batch size (`chunk_len`); each chunk sums its
//! patterns' gradients into its own buffer, then the chunk buffers are added in chunk order. The result depends only on the
//! batch and the kernel set, never on the thread count or the scheduling, so the same seed
//! gives bit-identical weights.

use super::fast::{self, Block, Weights, Wide};
use super::{
    Loss, Workspace, input_forward, pattern_backward, pattern_forward, pattern_hessian, predict,
};
use crate::Result;
use crate::backend::{Backend, Evaluation, Split, TrainStats};
use crate::data::Dataset;
use crate::distort::{Affine, input_forward_distorted};
use crate::model::RBF_CENTERS;
use crate::model::params::N_PARAMS;
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// Patterns per parallel task for a training batch of `n`: a whole number of fast-path
/// blocks, and at most `TRAIN_CHUNKS` tasks per batch: enough for a machine of 16 cores (a
/// batch of 256 is 16 tasks of two blocks), few enough that zeroing and adding the tasks'
/// 60,000-value gradient buffers (240 KB each, memory traffic more than arithmetic) stays
/// small: on 2 cores 8, 16 and 32 tasks at batch 256 trained within the machine's noise of
/// each other (bench/README.md). It depends on the batch size only, so results do not
/// depend on the thread count. (Up to a batch of 64 it is one block a task, as it always
/// was.)
pub fn chunk_len(n: usize) -> usize {
    chunks_of(n, TRAIN_CHUNKS)
}
const TRAIN_CHUNKS: usize = 16;

/// The same for the SDLM estimate's patterns (500 by default): about 8 tasks, so its sums
/// keep the order they have always had and a seed gives the runs it always gave.
pub fn hessian_chunk_len(n: usize) -> usize {
    chunks_of(n, 8)
}

fn chunks_of(n: usize, tasks: usize) -> usize {
    n.div_ceil(tasks)
        .next_multiple_of(fast::LANES)
        .max(fast::LANES)
}
/// Patterns per task in evaluation, which has no gradient buffers to add.
const EVAL_CHUNK: usize = 256;

/// Which implementation of the passes the CPU backend runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CpuKernels {
    /// The plain loops of `cpu`, the spec every other kernel is tested against.
    Reference,
    /// `cpu::fast`: blocks of eight patterns, direct SIMD convolutions, GEMMs for C5 and F6
    /// (the default).
    #[default]
    Fast,
}

impl std::str::FromStr for CpuKernels {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "reference" => Ok(CpuKernels::Reference),
            "fast" => Ok(CpuKernels::Fast),
            _ => Err(format!(
                "unknown CPU kernel set {s:?}: use reference or fast"
            )),
        }
    }
}

/// The sums of one chunk.
struct Slot {
    acc: Vec<f32>, // (N_PARAMS) gradient or Hessian sum of this chunk
    stats: TrainStats,
}

/// Per-task working memory, reused across chunks and batches (a block's buffers take about
/// 1 MB: allocating and zeroing them per chunk would cost more than the chunk's work at
/// small batches).
#[derive(Default)]
struct Scratch {
    ws: Option<Box<Workspace<f32>>>,
    block: Option<Box<Block>>,
    wide: Option<Box<Wide>>,
}

impl Scratch {
    fn ws(&mut self) -> &mut Workspace<f32> {
        self.ws.get_or_insert_with(Default::default)
    }
    fn block(&mut self) -> &mut Block {
        self.block.get_or_insert_with(Default::default)
    }
    /// A block, and room for the dense layers of an evaluation chunk.
    fn block_and_wide(&mut self) -> (&mut Block, &mut Wide) {
        (
            self.block.get_or_insert_with(Default::default),
            self.wide
                .get_or_insert_with(|| Box::new(Wide::new(EVAL_CHUNK))),
        )
    }
}

/// A stack of scratch spaces shared by the tasks of a parallel loop.
#[derive(Default)]
struct Pool(Mutex<Vec<Scratch>>);

impl Pool {
    fn with<R>(&self, f: impl FnOnce(&mut Scratch) -> R) -> R {
        let mut s = self.0.lock().unwrap().pop().unwrap_or_default();
        let r = f(&mut s);
        self.0.lock().unwrap().push(s);
        r
    }
}

pub struct CpuBackend {
    train: Arc<Dataset>,
    test: Arc<Dataset>,
    loss: Loss,
    momentum: f32,
    kernels: CpuKernels,
    params: Vec<f32>,   // (N_PARAMS)
    w3t: Vec<f32>,      // (6,10,25) C3 kernels rearranged for the fast path
    eps: Vec<f32>,      // (N_PARAMS) step sizes
    velocity: Vec<f32>, // (N_PARAMS)
    grad: Vec<f32>,     // (N_PARAMS) reduced over the batch
    slots: Vec<Slot>,
    pool: Pool,
    /// Per training image, the warp of the current pass (`train --distort`).
    distortions: Option<Arc<Vec<Affine>>>,
}

impl CpuBackend {
    /// A backend running the fast kernels (`CpuKernels::default()`), as `--backend cpu`.
    pub fn new(train: Arc<Dataset>, test: Arc<Dataset>, loss: Loss, momentum: f32) -> Self {
        Self::with_kernels(train, test, loss, momentum, CpuKernels::default())
    }

    /// A backend running the reference kernels, the spec (`--backend cpu-ref`).
    pub fn reference(train: Arc<Dataset>, test: Arc<Dataset>, loss: Loss, momentum: f32) -> Self {
        Self::with_kernels(train, test, loss, momentum, CpuKernels::Reference)
    }

    pub fn with_kernels(
        train: Arc<Dataset>,
        test: Arc<Dataset>,
        loss: Loss,
        momentum: f32,
        kernels: CpuKernels,
    ) -> Self {
        CpuBackend {
            train,
            test,
            loss,
            momentum,
            kernels,
            params: vec![0.0; N_PARAMS],
            w3t: vec![0.0; 6 * 10 * 25],
            eps: vec![0.0; N_PARAMS],
            velocity: vec![0.0; N_PARAMS],
            grad: vec![0.0; N_PARAMS],
            slots: Vec::new(),
            pool: Pool::default(),
            distortions: None,
        }
    }

    /// The gradient summed over the last batch (for tests).
    pub fn last_gradient(&self) -> &[f32] {
        &self.grad
    }

    fn ensure_slots(&mut self, n: usize) {
        while self.slots.len() < n {
            self.slots.push(Slot {
                acc: vec![0.0; N_PARAMS],
                stats: TrainStats::default(),
            });
        }
    }

    /// Runs `per_chunk` over `idx` in chunks of `chunk` patterns, then sums the chunks' `acc`
    /// into `self.grad` in chunk order, and returns the summed stats.
    fn run_chunks<F>(&mut self, idx: &[u32], chunk: usize, per_chunk: F) -> TrainStats
    where
        F: Fn(&mut Scratch, &mut Slot, &[u32]) + Sync,
    {
        let n = idx.len().div_ceil(chunk);
        self.ensure_slots(n);
        let slots = &mut self.slots[..n];
        let pool = &self.pool;
        slots
            .par_iter_mut()
            .zip(idx.par_chunks(chunk))
            .for_each(|(slot, ids)| {
                slot.acc.fill(0.0);
                slot.stats = TrainStats::default();
                pool.with(|scratch| per_chunk(scratch, slot, ids));
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
        let (train, p, w3t, loss, warps, kernels) = (
            self.train.clone(),
            std::mem::take(&mut self.params),
            std::mem::take(&mut self.w3t),
            self.loss,
            self.distortions.clone(),
            self.kernels,
        );
        let input = |i: usize, x0: &mut [f32]| match &warps {
            Some(w) => input_forward_distorted(train.image(i), train.side, &w[i], x0),
            None => input_forward(train.image(i), train.side, x0),
        };
        let stats = self.run_chunks(idx, chunk_len(idx.len()), |scratch, slot, ids| {
            let record = |stats: &mut TrainStats, e: f32, predicted: usize, label: usize| {
                if predicted != label {
                    stats.errors += 1;
                }
                if !e.is_finite() && stats.first_non_finite.is_none() {
                    stats.first_non_finite = Some(stats.patterns);
                }
                stats.loss_sum += e as f64;
                stats.patterns += 1;
            };
            match kernels {
                CpuKernels::Reference => {
                    let ws = scratch.ws();
                    for &i in ids {
                        let i = i as usize;
                        input(i, &mut ws.x0);
                        pattern_forward(&p, &RBF_CENTERS, ws);
                        let label = train.labels[i] as usize;
                        let predicted = predict(&ws.y);
                        let e = pattern_backward(&p, &RBF_CENTERS, loss, label, ws, &mut slot.acc);
                        record(&mut slot.stats, e, predicted, label);
                    }
                }
                CpuKernels::Fast => {
                    let b = scratch.block();
                    let w = Weights { p: &p, w3t: &w3t };
                    for ids in ids.chunks(fast::LANES) {
                        b.load(ids.len(), |l, x0| input(ids[l] as usize, x0));
                        b.forward(w, &RBF_CENTERS);
                        let mut labels = [0u8; fast::LANES];
                        for (l, &i) in labels.iter_mut().zip(ids) {
                            *l = train.labels[i as usize];
                        }
                        let labels = &labels[..ids.len()];
                        let out = b.backward(w, &RBF_CENTERS, loss, labels, &mut slot.acc);
                        for (&(e, predicted), &label) in out.iter().zip(labels) {
                            record(&mut slot.stats, e, predicted, label as usize);
                        }
                    }
                }
            }
        });
        self.params = p;
        self.w3t = w3t;
        super::update(
            &mut self.params,
            &mut self.velocity,
            &self.grad,
            &self.eps,
            self.momentum,
        );
        fast::c3_transposed(&self.params, &mut self.w3t);
        stats
    }
}

impl Backend for CpuBackend {
    fn describe(&self) -> String {
        let k = match self.kernels {
            CpuKernels::Reference => "reference",
            CpuKernels::Fast => "fast",
        };
        format!(
            "cpu ({} threads, {k} kernels{})",
            rayon::current_num_threads(),
            match self.kernels {
                CpuKernels::Fast => format!(", {}", fast::simd().name()),
                CpuKernels::Reference => String::new(),
            }
        )
    }

    fn set_params(&mut self, p: &[f32]) -> Result<()> {
        self.params.copy_from_slice(p);
        fast::c3_transposed(&self.params, &mut self.w3t);
        Ok(())
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        Ok(self.params.clone())
    }

    fn hessian(&mut self, idx: &[u32]) -> Result<Vec<f32>> {
        let train = self.train.clone();
        let p = self.params.clone();
        let p2: Vec<f32> = p.iter().map(|v| v * v).collect();
        let (mut w3t, mut w3tsq) = (vec![0f32; 6 * 10 * 25], vec![0f32; 6 * 10 * 25]);
        fast::c3_transposed(&p, &mut w3t);
        fast::c3_transposed(&p2, &mut w3tsq);
        let kernels = self.kernels;
        self.run_chunks(
            idx,
            hessian_chunk_len(idx.len()),
            |scratch, slot, ids| match kernels {
                CpuKernels::Reference => {
                    let ws = scratch.ws();
                    for &i in ids {
                        input_forward(train.image(i as usize), train.side, &mut ws.x0);
                        pattern_forward(&p, &RBF_CENTERS, ws);
                        pattern_hessian(&p2, ws, &mut slot.acc);
                    }
                }
                CpuKernels::Fast => {
                    let b = scratch.block();
                    for ids in ids.chunks(fast::LANES) {
                        b.load(ids.len(), |l, x0| {
                            input_forward(train.image(ids[l] as usize), train.side, x0)
                        });
                        b.forward(Weights { p: &p, w3t: &w3t }, &RBF_CENTERS);
                        b.hessian(
                            Weights {
                                p: &p2,
                                w3t: &w3tsq,
                            },
                            &mut slot.acc,
                        );
                    }
                }
            },
        );
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
        let (p, w3t, loss, kernels, pool) =
            (&self.params, &self.w3t, self.loss, self.kernels, &self.pool);
        let n = set.len();
        let mut predictions = vec![0u8; n];
        let mut losses = vec![0f64; n.div_ceil(EVAL_CHUNK)];
        predictions
            .par_chunks_mut(EVAL_CHUNK)
            .zip(losses.par_iter_mut())
            .enumerate()
            .for_each(|(c, (preds, lsum))| {
                let mut dy = [0f32; 10];
                let label = |i: usize| set.labels[i] as usize;
                pool.with(|scratch| match kernels {
                    CpuKernels::Reference => {
                        let ws = scratch.ws();
                        for (k, pr) in preds.iter_mut().enumerate() {
                            let i = c * EVAL_CHUNK + k;
                            input_forward(set.image(i), set.side, &mut ws.x0);
                            pattern_forward(p, &RBF_CENTERS, ws);
                            *pr = predict(&ws.y) as u8;
                            *lsum +=
                                super::loss_forward_backward(loss, &ws.y, label(i), &mut dy) as f64;
                        }
                    }
                    CpuKernels::Fast => {
                        // The convolutions block by block, then the dense layers for the
                        // whole chunk in one product each (fast::Wide).
                        let (b, wide) = scratch.block_and_wide();
                        let w = Weights { p, w3t };
                        let mut n = 0;
                        for (k, prs) in preds.chunks(fast::LANES).enumerate() {
                            let first = c * EVAL_CHUNK + k * fast::LANES;
                            b.load(prs.len(), |l, x0| {
                                input_forward(set.image(first + l), set.side, x0)
                            });
                            b.forward_conv(w);
                            wide.put(k, b);
                            n += fast::LANES;
                        }
                        wide.forward(w, &RBF_CENTERS, n);
                        for (k, pr) in preds.iter_mut().enumerate() {
                            let y = wide.outputs(k);
                            *pr = predict(&y) as u8;
                            *lsum += super::loss_forward_backward(
                                loss,
                                &y,
                                label(c * EVAL_CHUNK + k),
                                &mut dy,
                            ) as f64;
                        }
                    }
                });
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
