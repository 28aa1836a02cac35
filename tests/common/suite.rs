//! One parity suite for every fast implementation of the network, instantiated per backend
//! (as burn instantiates one suite per backend): each build of the CPU fast path
//! (tests/fast.rs) and each GPU kernel family on each adapter (tests/gpu.rs) is a
//! `Subject`, and `parity_suite!` makes the same tests for a list of them. Every check is
//! against the CPU reference, at the tolerances of `parity` (per tensor) and below (per
//! step, per weight).

use super::{compare, mnist_subset, parity, test_params};
use lenet_gpu::backend::{Backend, Split};
use lenet_gpu::cpu::batch::CpuBackend;
use lenet_gpu::model::params::{TENSORS, init};
use lenet_gpu::model::{Activation, Loss, Sweep};
use lenet_gpu::{distort, train};

/// Pattern p's values of layout tensor a.
pub type TensorOf = Box<dyn Fn(&Activation, usize) -> Vec<f32>>;

/// One batch's tensors, and the summed gradient (or SDLM sum).
pub struct BatchTensors {
    pub tensor: TensorOf,
    pub grad: Vec<f32>,
}

/// An implementation under test.
pub trait Subject: Sync {
    fn name(&self) -> String;

    /// A backend over the test subsets of MNIST, for batches of up to `batch`.
    fn backend(&self, loss: Loss, momentum: f32, batch: usize) -> Box<dyn Backend>;

    /// Training patterns `idx` as one batch through the forward pass and `sweep`, from
    /// weights `p` (the subject squares them for the SDLM sweep as it does in training),
    /// without an update.
    fn batch(&self, idx: &[usize], p: &[f32], sweep: Sweep, loss: Loss) -> BatchTensors;

    /// Runs `f` as this subject runs its passes (a CPU build on one thread, say).
    fn run(&self, f: &mut (dyn FnMut() + Send)) {
        f()
    }
}

/// Every layout tensor of a full batch of 8 patterns and a partial one of 5 (unused lanes
/// or invocations must add nothing), and every gradient, against the reference: the
/// gradient sweep with mse and MAP, and the SDLM sweep.
pub fn batch_matches_reference(s: &dyn Subject) {
    let (train_set, _) = mnist_subset().clone();
    let p = test_params(7);
    for idx in [
        &[3, 141, 59, 26, 535, 897, 932, 384][..],
        &[1999, 0, 626, 433, 83],
    ] {
        for (mode, sweep, loss) in [
            ("mse", Sweep::Backward, Loss::Mse),
            ("map", Sweep::Backward, Loss::Map { j: 5.0 }),
            ("sdlm", Sweep::Hessian, Loss::Mse),
        ] {
            println!("{}: {} patterns, {mode}", s.name(), idx.len());
            let want = parity::reference(&train_set, idx, &p, sweep, loss);
            let mut fails = Vec::new();
            s.run(&mut || {
                let got = s.batch(idx, &p, sweep, loss);
                fails = want.check_all(&*got.tensor, &got.grad);
            });
            assert!(
                fails.is_empty(),
                "{}, {} patterns, {mode}:\n{}",
                s.name(),
                idx.len(),
                fails.join("\n")
            );
        }
    }
}

/// Trains 20 steps of `batch` from init(3) with SDLM step sizes and momentum 0.5; returns
/// (Hessian, per-step losses, final weights).
pub fn train_steps(
    b: &mut dyn Backend,
    batch: usize,
    distort: bool,
) -> (Vec<f32>, Vec<f64>, Vec<f32>) {
    let order: Vec<u32> = (0..20 * batch as u32).map(|i| (i * 7) % 2000).collect();
    b.set_params(&init(3)).unwrap();
    let h = b.hessian(&(0..61).collect::<Vec<u32>>()).unwrap();
    // eta x batch within the stable range measured in docs/experiments.md (section 4).
    b.set_step_sizes(&train::step_sizes(&h, 1.6e-4 / batch as f64, 0.02))
        .unwrap();
    if distort {
        let d = distort::pass_distortions(4, 1, 2000, &distort::RANGES);
        b.set_distortions(Some(&d)).unwrap();
    }
    let losses = order
        .chunks(batch)
        .map(|c| b.train(c, batch).unwrap().loss_sum)
        .collect();
    (h, losses, b.params().unwrap())
}

/// 20 training steps against the reference's, at a batch that fills whole blocks of 8 and
/// one that does not, with MAP loss and with `--distort`'s warps: the SDLM estimates,
/// per-step losses (1e-4 relative) and final weights (1e-4 of each tensor's scale: f32
/// rounding compounds over the steps) agree.
pub fn training_steps_match_reference(s: &dyn Subject) {
    let (train_set, test_set) = mnist_subset().clone();
    for (batch, loss, distort) in [
        (16, Loss::Map { j: 5.0 }, false),
        (13, Loss::Mse, false),
        (8, Loss::Map { j: 5.0 }, true),
    ] {
        println!("{}: batch {batch}, {loss:?}, distort {distort}", s.name());
        let mut r = CpuBackend::reference(train_set.clone(), test_set.clone(), loss, 0.5);
        let (h0, l0, p0) = train_steps(&mut r, batch, distort);
        let mut got = None;
        s.run(&mut || {
            got = Some(train_steps(
                &mut *s.backend(loss, 0.5, batch),
                batch,
                distort,
            ))
        });
        let (h1, l1, p1) = got.unwrap();
        let mut fails: Vec<String> = TENSORS
            .iter()
            .filter_map(|t| compare(&format!("h {}", t.name), t.of(&h1), t.of(&h0), 1e-5, 1e-4))
            .collect();
        for (i, (a, b)) in l1.iter().zip(&l0).enumerate() {
            if (a - b).abs() > 1e-4 * b.abs() {
                fails.push(format!("step {i}: loss {a}, reference loss {b}"));
            }
        }
        println!(
            "  losses: first {:.5} / {:.5}, last {:.5} / {:.5} (subject / reference)",
            l1[0], l0[0], l1[19], l0[19]
        );
        assert!(
            l0[19] < l0[0],
            "training did not lower the loss; the check would prove little"
        );
        fails.extend(
            TENSORS
                .iter()
                .filter_map(|t| compare(t.name, t.of(&p1), t.of(&p0), 1e-4, 0.0)),
        );
        assert!(
            fails.is_empty(),
            "{}, batch {batch}:\n{}",
            s.name(),
            fails.join("\n")
        );
    }
}

/// Evaluation of 500 test images (MAP loss): at most one prediction differs from the
/// reference's (a near tie), and the summed loss agrees to `rtol`.
pub fn evaluation_matches_reference(s: &dyn Subject, rtol: f64) {
    let (train_set, test_set) = mnist_subset().clone();
    let p = test_params(9);
    let loss = Loss::Map { j: 2.0 };
    let mut r = CpuBackend::reference(train_set, test_set, loss, 0.0);
    r.set_params(&p).unwrap();
    let want = r.evaluate(Split::Test).unwrap();
    let mut got = None;
    s.run(&mut || {
        let mut b = s.backend(loss, 0.0, 16);
        b.set_params(&p).unwrap();
        got = Some(b.evaluate(Split::Test).unwrap());
    });
    let got = got.unwrap();
    assert_eq!(got.predictions.len(), 500);
    let differ = got
        .predictions
        .iter()
        .zip(&want.predictions)
        .filter(|(a, b)| a != b)
        .count();
    println!(
        "{}: {differ} of 500 predictions differ; loss {} vs {}",
        s.name(),
        got.loss_sum,
        want.loss_sum
    );
    assert!(
        differ <= 1,
        "{}: {differ} of 500 predictions differ",
        s.name()
    );
    assert!(
        (got.loss_sum - want.loss_sum).abs() <= rtol * want.loss_sum.abs(),
        "{}: loss {} vs {}",
        s.name(),
        got.loss_sum,
        want.loss_sum
    );
}

/// Two runs of the same steps from the same weights give bit-identical weights, and
/// training changed them.
pub fn training_is_deterministic(s: &dyn Subject) {
    let run = || {
        let mut out = None;
        s.run(&mut || out = Some(train_steps(&mut *s.backend(Loss::Mse, 0.5, 32), 32, false).2));
        out.unwrap()
    };
    let (a, b) = (run(), run());
    assert!(
        a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
        "{}: two identical runs gave different weights",
        s.name()
    );
    assert_ne!(a, init(3), "{}: training changed nothing", s.name());
}

/// The suite's tests, for the subjects `$subjects()` gives (a `Vec<Box<dyn Subject>>`);
/// `$eval_rtol`: the evaluation's loss tolerance.
#[macro_export]
macro_rules! parity_suite {
    ($subjects:path, $eval_rtol:expr) => {
        #[test]
        fn batch_matches_reference() {
            for s in $subjects() {
                common::suite::batch_matches_reference(&*s);
            }
        }

        #[test]
        fn training_steps_match_reference() {
            for s in $subjects() {
                common::suite::training_steps_match_reference(&*s);
            }
        }

        #[test]
        fn evaluation_matches_reference() {
            for s in $subjects() {
                common::suite::evaluation_matches_reference(&*s, $eval_rtol);
            }
        }

        #[test]
        fn training_is_deterministic() {
            for s in $subjects() {
                common::suite::training_is_deterministic(&*s);
            }
        }
    };
}
