//! The GPU kernels against the CPU reference, on every adapter this machine has (lavapipe
//! Vulkan and llvmpipe GL in CI), for both kernel families: the shared parity suite
//! (`common::suite`: every tensor, the SDLM estimate, training steps, evaluation,
//! determinism) for each family on each adapter, then what is the GPU's own: the registry
//! covers every tensor, split dispatches, the warped input. With LENET_REQUIRE_GPU set (CI
//! sets it to "vulkan,gl"), a missing adapter is a failure, not a skip.

mod common;

use common::suite::{BatchTensors, Subject, train_steps};
use lenet_gpu::backend::Backend;
use lenet_gpu::cpu;
use lenet_gpu::gpu::{self, ACT_STRIDE, AdapterChoice, Family, GpuBackend};
use lenet_gpu::model::params::TENSORS;
use lenet_gpu::model::{ACTIVATIONS, DELTAS, Loss, Sweep};

/// The adapters to test, by API (`common::adapter`'s rule: a required one missing fails).
fn adapters() -> Vec<(String, AdapterChoice)> {
    let found: Vec<_> = ["vulkan", "gl"]
        .iter()
        .filter_map(|api| common::adapter(api, false))
        .collect();
    assert!(
        !(std::env::var("LENET_REQUIRE_GPU").is_ok_and(|r| r.trim() == "1") && found.is_empty()),
        "LENET_REQUIRE_GPU=1 but no adapter at all"
    );
    found
}

use common::mnist_subset as mnist;

/// A kernel family on an adapter.
struct OnAdapter {
    name: String,
    choice: AdapterChoice,
    family: Family,
}

impl OnAdapter {
    /// A GPU backend over the test subsets of MNIST.
    fn gpu(&self, loss: Loss, momentum: f32, batch: usize) -> GpuBackend {
        let (train_set, test_set) = mnist().clone();
        let adapter = gpu::pick(&self.choice).unwrap();
        GpuBackend::new(
            adapter,
            train_set,
            test_set,
            loss,
            momentum,
            batch,
            self.family,
        )
        .unwrap()
    }
}

impl Subject for OnAdapter {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn backend(&self, loss: Loss, momentum: f32, batch: usize) -> Box<dyn Backend> {
        Box::new(self.gpu(loss, momentum, batch))
    }

    /// One batch through the family's training kernels, without the update
    /// (`GpuBackend::snapshot`), every tensor read back.
    fn batch(&self, idx: &[usize], p: &[f32], sweep: Sweep, loss: Loss) -> BatchTensors {
        let mut g = self.gpu(loss, 0.0, idx.len());
        g.set_params(p).unwrap();
        let idx: Vec<u32> = idx.iter().map(|&i| i as u32).collect();
        let mut snap = g.snapshot(&idx, sweep).unwrap();
        let grad = std::mem::take(&mut snap.grad);
        BatchTensors {
            tensor: Box::new(move |a, b| snap.tensor(a, b).to_vec()),
            grad,
        }
    }
}

/// Each kernel family on each adapter.
fn on_adapters() -> Vec<OnAdapter> {
    adapters()
        .into_iter()
        .flat_map(|(name, choice)| {
            Family::ALL.map(|family| OnAdapter {
                name: format!("{name}, {family:?} kernels"),
                choice: choice.clone(),
                family,
            })
        })
        .collect()
}

fn families_on_adapters() -> Vec<Box<dyn Subject>> {
    on_adapters()
        .into_iter()
        .map(|s| Box::new(s) as Box<dyn Subject>)
        .collect()
}

parity_suite!(families_on_adapters, 1e-4);

/// Walking the registry: every layout tensor and every parameter's gradient is written by
/// some kernel of each family's training batch, which the suite's per-tensor comparison
/// then checks.
#[test]
fn each_family_writes_every_tensor() {
    for family in Family::ALL {
        let written: Vec<&str> = family
            .training()
            .iter()
            .flat_map(|k| k.spec().written_tensors())
            .collect();
        let names = ACTIVATIONS.iter().chain(DELTAS.iter()).map(|a| a.name);
        for name in names.chain(TENSORS.iter().map(|t| t.name)) {
            assert!(
                written.contains(&name),
                "{family:?}: no kernel writes {name}"
            );
        }
    }
}

/// Dispatches split over 2-D grids, as on a device allowing only 5 workgroups per
/// dimension (batches of thousands on a real one), give the same weights bit for bit.
#[test]
fn split_dispatches_train_bit_identically() {
    for s in on_adapters() {
        let run = |limit: Option<u32>| {
            let mut g = s.gpu(Loss::Mse, 0.5, 32);
            if let Some(n) = limit {
                g.limit_workgroups(n);
            }
            train_steps(&mut g, 32, false).2
        };
        let (a, b) = (run(None), run(Some(5)));
        let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{}: split dispatches gave other weights", s.name);
    }
}

/// `train --distort`: the GPU's warped input (input_forward with step.distort) against the
/// CPU's input_forward_distorted, for the same draws.
#[test]
fn distorted_input_matches_cpu() {
    use lenet_gpu::distort::{RANGES, input_forward_distorted, pass_distortions};
    let (train_set, _) = mnist().clone();
    let warps = pass_distortions(5, 1, train_set.len(), &RANGES);
    let idx: Vec<u32> = vec![0, 7, 1234, 1500, 1999];
    for s in on_adapters() {
        let name = &s.name;
        let mut g = s.gpu(Loss::Mse, 0.0, 8);
        g.set_params(&common::test_params(3)).unwrap();
        g.set_distortions(Some(&warps)).unwrap();
        let snap = g.snapshot(&idx, Sweep::Backward).unwrap();
        let mut max = 0f32;
        let mut changed = 0f32;
        for (b, &i) in idx.iter().enumerate() {
            let mut cpu_x0 = vec![0f32; 1024];
            input_forward_distorted(
                train_set.image(i as usize),
                28,
                &warps[i as usize],
                &mut cpu_x0,
            );
            let mut plain = vec![0f32; 1024];
            cpu::input_forward(train_set.image(i as usize), 28, &mut plain);
            let gpu_x0 = &snap.acts[b * ACT_STRIDE as usize..][..1024];
            for k in 0..1024 {
                let d = (gpu_x0[k] - cpu_x0[k]).abs();
                if d > 1e-4 && max <= 1e-4 {
                    println!(
                        "  first mismatch: pattern {i}, pixel {k}: gpu {} cpu {}",
                        gpu_x0[k], cpu_x0[k]
                    );
                }
                max = max.max(d);
                changed = changed.max((cpu_x0[k] - plain[k]).abs());
            }
        }
        println!("{name}: warped x0 max |gpu - cpu| = {max:.2e}");
        assert!(max <= 1e-4, "{name}: warped input differs by {max}");
        assert!(changed > 0.5, "the draws should change the images");
        // Off again: the plain input.
        g.set_distortions(None).unwrap();
        let snap = g.snapshot(&idx, Sweep::Backward).unwrap();
        let mut plain = vec![0f32; 1024];
        cpu::input_forward(train_set.image(idx[1] as usize), 28, &mut plain);
        let off = snap.acts[ACT_STRIDE as usize..][..1024]
            .iter()
            .zip(&plain)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            off <= 1e-6,
            "{name}: with distortions off, x0 differs from the plain input by {off}"
        );
    }
}
