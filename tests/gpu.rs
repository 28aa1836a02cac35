//! The GPU kernels against their CPU twins, on every adapter this machine has (lavapipe
//! Vulkan and llvmpipe GL in CI). With LENET_REQUIRE_GPU set (CI sets it to "vulkan,gl"),
//! a missing adapter is a failure, not a skip.

mod common;

use common::parity;
use lenet_gpu::backend::Backend;
use lenet_gpu::cpu::{self, batch::CpuBackend};
use lenet_gpu::gpu::{
    self, ACT_OFFSETS, ACT_STRIDE, AdapterChoice, DELTA_OFFSETS, DELTA_STRIDE, Family, GpuBackend,
    Reads,
};
use lenet_gpu::model::params::{self, TENSORS};
use lenet_gpu::model::{ACTIVATIONS, DELTAS, Loss, Sweep};
use lenet_gpu::train;

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

/// A GPU backend on `choice` over the test subsets of MNIST with kernel family `family`,
/// reading as suits the adapter and the family.
fn backend(
    choice: &AdapterChoice,
    family: Family,
    loss: Loss,
    momentum: f32,
    batch: usize,
) -> GpuBackend {
    let adapter = gpu::pick(choice).unwrap();
    let reads = Reads::for_family(&adapter, family);
    backend_with(choice, (family, reads), loss, momentum, batch)
}

/// The same with the kernels' storage given: the tests that cover every kernel and the
/// training step run every way an adapter supports (`adapters_and_kernels`), so the way a
/// hardware GPU runs them (`Reads::Storage`, buffers) is tested on the software adapters.
fn backend_with(
    choice: &AdapterChoice,
    (family, reads): (Family, Reads),
    loss: Loss,
    momentum: f32,
    batch: usize,
) -> GpuBackend {
    let (train_set, test_set) = mnist().clone();
    let adapter = gpu::pick(choice).unwrap();
    GpuBackend::with_kernels(
        adapter, train_set, test_set, loss, momentum, batch, family, reads,
    )
    .unwrap()
}

const FAMILIES: [Family; 3] = [Family::Software, Family::Hardware, Family::Simple];

/// Each adapter with each kernel family, reading as suits the two.
fn adapters_and_families() -> Vec<((String, AdapterChoice), Family)> {
    adapters()
        .into_iter()
        .flat_map(|a| FAMILIES.map(|f| ((format!("{}, {f:?} kernels", a.0), a.1.clone()), f)))
        .collect()
}

/// Each adapter with each kernel family and storage it supports: the software family on
/// textures where the adapter can read and write rgba32float storage textures (a Vulkan
/// CPU adapter must: that is the speed path lavapipe users get) and on buffers
/// everywhere; the hardware family on buffers.
fn adapters_and_kernels() -> Vec<((String, AdapterChoice), (Family, Reads))> {
    let mut out = Vec::new();
    for (name, choice) in adapters() {
        let adapter = gpu::pick(&choice).unwrap();
        let info = adapter.get_info();
        if Reads::textures_work(&adapter) {
            out.push((
                (name.clone(), choice.clone()),
                (Family::Software, Reads::Textures),
            ));
        } else {
            assert!(
                !(info.backend == wgpu::Backend::Vulkan
                    && info.device_type == wgpu::DeviceType::Cpu),
                "{name}: a Vulkan CPU adapter without read-write rgba32float storage textures"
            );
            println!("{name}: no read-write rgba32float storage textures, buffers only");
        }
        out.push((
            (name.clone(), choice.clone()),
            (Family::Software, Reads::Storage),
        ));
        out.push((
            (name.clone(), choice.clone()),
            (Family::Hardware, Reads::Storage),
        ));
        out.push(((name, choice), (Family::Simple, Reads::Storage)));
    }
    out
}

/// Every kernel of a training batch against its CPU twins, on 5 training patterns,
/// walking the registry: each tensor a kernel writes (`KernelSpec::writes`) is compared
/// with the reference's (`common::parity`, its tolerances), for the gradient and the SDLM
/// sweep; and every tensor of the layout and parameter tables is written by some kernel.
#[test]
fn kernels_match_cpu_twins() {
    let (train_set, _) = mnist().clone();
    let idx: Vec<u32> = vec![3, 141, 59, 26, 535];
    let p = common::test_params(7);
    for sweep in [Sweep::Backward, Sweep::Hessian] {
        let idx_usize: Vec<usize> = idx.iter().map(|&i| i as usize).collect();
        let want = parity::reference(&train_set, &idx_usize, &p, sweep, Loss::Mse);
        for family in FAMILIES {
            let kernels = gpu::snapshot_kernels(sweep, family);
            let written: Vec<&str> = kernels
                .iter()
                .flat_map(|k| k.spec().writes.to_vec())
                .collect();
            for a in want.tensors() {
                let what = a.name;
                assert!(
                    written.contains(&what),
                    "{family:?} {sweep:?}: no kernel writes {what}"
                );
            }
            for t in TENSORS {
                let what = t.name;
                assert!(
                    written.contains(&what),
                    "{family:?} {sweep:?}: no kernel writes {what}"
                );
            }
        }
        for ((name, choice), (family, reads)) in adapters_and_kernels() {
            println!("{name}, {sweep:?}, {family:?} kernels, reads {reads:?}");
            let kernels = gpu::snapshot_kernels(sweep, family);
            let mut g = backend_with(&choice, (family, reads), Loss::Mse, 0.0, 8);
            g.set_params(&p).unwrap();
            let snap = g.snapshot(&idx, sweep).unwrap();
            let mut failures = Vec::new();
            for k in &kernels {
                let spec = k.spec();
                let what = format!("{} (twin of {}): ", spec.entry, spec.twins.join(", "));
                // What this sweep computes: the hardware family's head_forward writes dy
                // in the backward sweep only, as the reference does.
                for &out in spec.writes.iter().filter(|&&w| want.computes(w)) {
                    let act = ACTIVATIONS.iter().position(|a| a.name == out);
                    let delta = DELTAS.iter().position(|a| a.name == out);
                    failures.extend(match (act, delta) {
                        (Some(i), _) => want.check_tensor(&what, &ACTIVATIONS[i], |b| {
                            let at = b * ACT_STRIDE as usize + ACT_OFFSETS[i];
                            snap.acts[at..at + ACTIVATIONS[i].len()].to_vec()
                        }),
                        (_, Some(i)) => want.check_tensor(&what, &DELTAS[i], |b| {
                            let at = b * DELTA_STRIDE as usize + DELTA_OFFSETS[i];
                            snap.deltas[at..at + DELTAS[i].len()].to_vec()
                        }),
                        _ => want.check_grad(&what, out, &snap.grad),
                    });
                }
            }
            assert!(
                failures.is_empty(),
                "{name}, {sweep:?}:\n{}",
                failures.join("\n")
            );
        }
    }
}

/// 20 training steps (batch 8) on the CPU and on each GPU adapter from the same weights and
/// step sizes: per-step losses within 1e-4 relative, final weights within 1e-4 of each
/// tensor's scale (f32 rounding compounds over the steps).
#[test]
fn twenty_training_steps_agree() {
    let (train_set, test_set) = mnist().clone();
    let p0 = params::init(3);
    let order: Vec<u32> = (0..160).map(|i| (i * 7) % 2000).collect();
    let mut cpu_b = CpuBackend::reference(train_set.clone(), test_set.clone(), Loss::Mse, 0.5);
    cpu_b.set_params(&p0).unwrap();
    let h = cpu_b.hessian(&(0..64).collect::<Vec<u32>>()).unwrap();
    let eps = train::step_sizes(&h, 2e-5, 0.02);
    cpu_b.set_step_sizes(&eps).unwrap();
    let cpu_losses: Vec<f64> = order
        .chunks(8)
        .map(|c| cpu_b.train(c, 8).unwrap().loss_sum)
        .collect();
    let cpu_p = cpu_b.params().unwrap();
    for ((name, choice), kernels) in adapters_and_kernels() {
        println!("{name}, {kernels:?}");
        let mut g = backend_with(&choice, kernels, Loss::Mse, 0.5, 8);
        g.set_params(&p0).unwrap();
        let gh = g.hessian(&(0..64).collect::<Vec<u32>>()).unwrap();
        let mut fails: Vec<String> = TENSORS
            .iter()
            .filter_map(|t| {
                common::compare(&format!("h {}", t.name), t.of(&gh), t.of(&h), 1e-5, 1e-4)
            })
            .collect();
        g.set_step_sizes(&eps).unwrap();
        let gpu_losses: Vec<f64> = order
            .chunks(8)
            .map(|c| g.train(c, 8).unwrap().loss_sum)
            .collect();
        for (s, (a, b)) in gpu_losses.iter().zip(&cpu_losses).enumerate() {
            if (a - b).abs() > 1e-4 * b.abs() {
                fails.push(format!("step {s}: gpu loss {a}, cpu loss {b}"));
            }
        }
        println!(
            "  losses: first {:.5} / {:.5}, last {:.5} / {:.5} (gpu / cpu)",
            gpu_losses[0], cpu_losses[0], gpu_losses[19], cpu_losses[19]
        );
        assert!(
            cpu_losses[19] < cpu_losses[0],
            "training did not lower the loss; the check would prove little"
        );
        let gp = g.params().unwrap();
        fails.extend(
            TENSORS
                .iter()
                .filter_map(|t| common::compare(t.name, t.of(&gp), t.of(&cpu_p), 1e-4, 0.0)),
        );
        assert!(fails.is_empty(), "{name}:\n{}", fails.join("\n"));
    }
}

/// The same weights, step sizes and patterns give bit-identical weights on one adapter,
/// also when every dispatch over 5 workgroups is split over a 2-D grid (as on a device
/// with that limit: batches of thousands on a real one).
#[test]
fn gpu_training_is_deterministic() {
    let order: Vec<u32> = (0..96).collect();
    for ((name, choice), family) in adapters_and_families() {
        let mut limit = None;
        let mut run = || {
            let mut g = backend(&choice, family, Loss::Mse, 0.0, 32);
            if let Some(n) = limit.replace(5) {
                g.limit_workgroups(n);
            }
            g.set_params(&params::init(5)).unwrap();
            let h = g.hessian(&(100..164).collect::<Vec<u32>>()).unwrap();
            g.set_step_sizes(&train::step_sizes(&h, 1e-5, 0.02))
                .unwrap();
            g.train(&order, 32).unwrap();
            g.params().unwrap()
        };
        let (a, b) = (run(), run());
        let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{name}: two identical runs gave different weights");
        assert_ne!(a, params::init(5), "{name}: training changed nothing");
    }
}

/// The GPU evaluation of the test set agrees with the CPU's.
#[test]
fn evaluation_matches_cpu() {
    let (train_set, test_set) = mnist().clone();
    let p = params::init(9);
    let mut c = CpuBackend::reference(
        train_set.clone(),
        test_set.clone(),
        Loss::Map { j: 2.0 },
        0.0,
    );
    c.set_params(&p).unwrap();
    let ce = c.evaluate(lenet_gpu::backend::Split::Test).unwrap();
    for ((name, choice), family) in adapters_and_families() {
        let mut g = backend(&choice, family, Loss::Map { j: 2.0 }, 0.0, 16);
        g.set_params(&p).unwrap();
        let ge = g.evaluate(lenet_gpu::backend::Split::Test).unwrap();
        assert_eq!(ge.predictions.len(), 500);
        let differ = ge
            .predictions
            .iter()
            .zip(&ce.predictions)
            .filter(|(a, b)| a != b)
            .count();
        assert!(differ <= 1, "{name}: {differ} of 500 predictions differ");
        assert!(
            (ge.loss_sum - ce.loss_sum).abs() <= 1e-4 * ce.loss_sum.abs(),
            "{name}: loss {} vs {}",
            ge.loss_sum,
            ce.loss_sum
        );
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
    for ((name, choice), family) in adapters_and_families() {
        let mut g = backend(&choice, family, Loss::Mse, 0.0, 8);
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
