//! The fast CPU path (`cpu::fast`, blocks of eight patterns, direct convolutions, GEMMs
//! for C5 and F6) against the reference loops: the shared parity suite
//! (`common::suite`: every tensor, the SDLM estimate, training steps, evaluation,
//! determinism) for every build of the block passes this CPU runs (portable, AVX2,
//! AVX-512), then what is the fast path's own: thread counts, the wide dense layers, the
//! builds through the binary.

mod common;

use common::suite::{BatchTensors, Subject, train_steps};
use common::{compare, mnist_subset as mnist};
use lenet_gpu::backend::Backend;
use lenet_gpu::cpu;
use lenet_gpu::cpu::batch::{CpuBackend, CpuKernels};
use lenet_gpu::cpu::fast::{self, Block, LANES, Simd, Weights, Wide};
use lenet_gpu::model::RBF_CENTERS;
use lenet_gpu::model::params::{N_PARAMS, TENSORS};
use lenet_gpu::model::{Loss, Sweep};

/// The fast path in one build of its block passes, run on one thread (the build is chosen
/// per thread: `fast::with_simd`).
struct Build(Simd);

impl Subject for Build {
    fn name(&self) -> String {
        format!("fast path, {} build", self.0.name())
    }

    fn backend(&self, loss: Loss, momentum: f32, _batch: usize) -> Box<dyn Backend> {
        let (train_set, test_set) = mnist().clone();
        Box::new(CpuBackend::with_kernels(
            train_set,
            test_set,
            loss,
            momentum,
            CpuKernels::Fast,
        ))
    }

    /// One block of `idx.len()` patterns (at most 8).
    fn batch(&self, idx: &[usize], p: &[f32], sweep: Sweep, loss: Loss) -> BatchTensors {
        let (train_set, _) = mnist().clone();
        let p2: Vec<f32> = p.iter().map(|v| v * v).collect();
        let (mut w3, mut w3sq) = (vec![0f32; 1500], vec![0f32; 1500]);
        fast::c3_transposed(p, &mut w3);
        fast::c3_transposed(&p2, &mut w3sq);
        let labels: Vec<u8> = idx.iter().map(|&i| train_set.labels[i]).collect();
        let mut b = Block::default();
        b.load(idx.len(), |l, x0| {
            cpu::input_forward(train_set.image(idx[l]), 28, x0)
        });
        b.forward(Weights { p, w3t: &w3 }, &RBF_CENTERS);
        let mut grad = vec![0f32; N_PARAMS];
        match sweep {
            Sweep::Backward => {
                b.backward(
                    Weights { p, w3t: &w3 },
                    &RBF_CENTERS,
                    loss,
                    &labels,
                    &mut grad,
                );
            }
            Sweep::Hessian => b.hessian(Weights { p: &p2, w3t: &w3sq }, &mut grad),
        }
        BatchTensors {
            tensor: Box::new(move |a, l| Block::lane(b.tensor(a), l)),
            grad,
        }
    }

    fn run(&self, f: &mut (dyn FnMut() + Send)) {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        pool.install(|| fast::with_simd(self.0, f));
    }
}

fn builds() -> Vec<Box<dyn Subject>> {
    Simd::available()
        .into_iter()
        .map(|s| Box::new(Build(s)) as Box<dyn Subject>)
        .collect()
}

parity_suite!(builds, 1e-5);

fn backend(kernels: CpuKernels, loss: Loss) -> CpuBackend {
    let (train_set, test_set) = mnist().clone();
    CpuBackend::with_kernels(train_set, test_set, loss, 0.5, kernels)
}

/// The batch sum is taken chunk by chunk in a fixed order, the chunks set by the batch size
/// alone, so 1, 2, 3 and 12 threads give bit-identical weights; and a batch of 256 is cut
/// into 16 chunks, so more than 8 threads have work.
#[test]
fn fast_training_is_deterministic_across_thread_counts() {
    use lenet_gpu::cpu::batch::chunk_len;
    assert_eq!(256 / chunk_len(256), 16);
    assert_eq!(64 / chunk_len(64), 8);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| train_steps(&mut backend(CpuKernels::Fast, Loss::Mse), 64, false).2)
    };
    let a = run(1);
    for t in [2, 3, 12] {
        let b = run(t);
        assert!(
            a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "1 and {t} threads differ"
        );
    }
    assert_ne!(
        a,
        lenet_gpu::model::params::init(3),
        "training changed nothing"
    );
    assert_eq!(LANES, 8);
}

/// Evaluation runs the convolutions block by block and the dense layers (C5, F6, RBF) for a
/// whole chunk at once (`fast::Wide`): its outputs are `Block::forward`'s bit for bit, for
/// every block of 5 (40 patterns, one of them partial), in a chunk with room for 64.
#[test]
fn wide_dense_layers_match_block_forward_bit_for_bit() {
    let (train_set, _) = mnist().clone();
    let p = common::test_params(11);
    let mut w3t = vec![0f32; 1500];
    fast::c3_transposed(&p, &mut w3t);
    let w = Weights { p: &p, w3t: &w3t };
    let mut wide = Wide::new(64);
    let mut want = Vec::new();
    let sizes = [8, 8, 8, 8, 3];
    let mut first = 0;
    for (k, &n) in sizes.iter().enumerate() {
        let mut b = Block::default();
        b.load(n, |l, x0| {
            cpu::input_forward(train_set.image(first + l), 28, x0)
        });
        b.forward(w, &RBF_CENTERS);
        want.extend((0..n).map(|l| b.outputs(l)));
        b.forward_conv(w);
        wide.put(k, &b);
        first += n;
    }
    wide.forward(w, &RBF_CENTERS, sizes.len() * LANES);
    let mut p_wide = 0;
    let mut i = 0;
    for &n in &sizes {
        for l in 0..n {
            let got = wide.outputs(p_wide + l);
            assert_eq!(
                got.map(f32::to_bits),
                want[i].map(f32::to_bits),
                "pattern {i}: {got:?} vs {:?}",
                want[i]
            );
            i += 1;
        }
        p_wide += LANES;
    }
}

/// The AVX2 build of the block passes (`LENET_CPU_AVX2=1`, where the CPU also has AVX-512)
/// and the portable one (`LENET_CPU_PORTABLE=1`) do the same per-lane arithmetic: a short
/// training run through the binary ends with bit-identical weights either way.
#[test]
fn portable_build_matches_avx2_bit_for_bit() {
    let dir = std::env::temp_dir().join(format!("lenet-fast-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = common::mnist_dir();
    let run = |portable: bool| {
        let out = dir.join(format!("portable-{portable}.safetensors"));
        let mut cmd = common::bin();
        cmd.args([
            "train",
            "--backend",
            "cpu",
            "--epochs",
            "1",
            "--train-limit",
            "800",
        ])
        .args(["--test-limit", "200", "--quiet", "--data"])
        .arg(&data)
        .arg("--save")
        .arg(&out);
        if portable {
            cmd.env("LENET_CPU_PORTABLE", "1");
        } else {
            cmd.env_remove("LENET_CPU_PORTABLE")
                .env("LENET_CPU_AVX2", "1");
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        lenet_gpu::checkpoint::load(&out).unwrap().params
    };
    let (simd, portable) = (run(false), run(true));
    #[cfg(target_arch = "x86_64")]
    if !std::arch::is_x86_feature_detected!("avx2") {
        println!("this CPU has no AVX2: both runs used the portable build");
    }
    let differ = simd
        .iter()
        .zip(&portable)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    assert_eq!(differ, 0, "{differ} of {} weights differ", simd.len());
    assert_ne!(
        simd,
        lenet_gpu::model::params::init(1),
        "training changed nothing"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A run checkpointed by one build resumes on another: pass 1 on the portable build, pass 2
/// on the widest this CPU has (the banner names each), ending close to a run made on the
/// widest build throughout (the builds differ by rounding only).
#[test]
fn a_checkpoint_of_one_build_resumes_on_another() {
    let dir = common::tmp("fast-cross-build");
    let data = common::mnist_dir();
    let train = |ck: &std::path::Path, epochs: &str, portable: bool, resume: bool| {
        let mut cmd = common::bin();
        cmd.args(["train", "--backend", "cpu", "--epochs", epochs])
            .args(["--train-limit", "800", "--test-limit", "200", "--data"])
            .arg(&data)
            // A gentle step, so 2 passes stay in the stable regime where rounding
            // differences between builds stay rounding-sized.
            .args(["--loss", "mse", "--schedule", "2:1e-5"])
            .env_remove("LENET_CPU_AVX2")
            .env_remove(lenet_gpu::fault::ENV);
        if resume {
            cmd = common::bin();
            cmd.args(["train", "--epochs", epochs, "--resume"])
                .arg(ck)
                .env_remove("LENET_CPU_AVX2")
                .env_remove(lenet_gpu::fault::ENV);
        } else {
            cmd.arg("--checkpoint-dir").arg(ck);
        }
        if portable {
            cmd.env("LENET_CPU_PORTABLE", "1");
        } else {
            cmd.env_remove("LENET_CPU_PORTABLE");
        }
        let o = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(
            o.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        text
    };
    let (cross, same) = (dir.join("cross"), dir.join("same"));
    let t = train(&cross, "1", true, false);
    assert!(
        t.contains("portable"),
        "the banner does not name the build: {t}"
    );
    let t = train(&cross, "2", false, true);
    let widest = fast::Simd::available()[0].name();
    assert!(t.contains(widest), "the banner does not name {widest}: {t}");
    train(&same, "2", false, false);
    let load = |d: &std::path::Path| {
        lenet_gpu::checkpoint::load(&d.join("epoch-002.safetensors"))
            .unwrap()
            .params
    };
    let (a, b) = (load(&cross), load(&same));
    let fails: Vec<String> = TENSORS
        .iter()
        .filter_map(|t| compare(t.name, t.of(&a), t.of(&b), 1e-5, 0.0))
        .collect();
    assert!(fails.is_empty(), "{}", fails.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
}
