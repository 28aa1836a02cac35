//! ONNX export: the exported graph, run by tract (a pure-Rust ONNX runtime) and by
//! onnxruntime with `onnx.checker` (Python, `tests/onnx_check.py`), gives the CPU
//! reference's distances (1e-4 relative) and labels (exactly) on real test digits; the
//! graph is built from the operators the design notes name; bad input to `export` gets
//! `eval`'s and `--save`'s errors and leaves nothing behind. With LENET_REQUIRE_ONNXRUNTIME=1
//! (as in CI) a Python without onnx and onnxruntime is a failure; elsewhere that one check
//! says it skipped.

mod common;

use lenet_gpu::onnx::proto::{DimensionValue, ModelProto};
use lenet_gpu::{DeviceChoice, Mnist, Model, TrainConfig, Trainer};
use prost::Message;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::AtomicBool;
use tract_onnx::prelude::*;

/// Test digits compared.
const DIGITS: usize = 200;
/// Relative tolerance on the distances.
const RTOL: f32 = 1e-4;

/// A model trained 2 passes on 3,000 digits through the library's front door (CPU
/// backend), exported once: (model, test digits, the .onnx file).
fn exported() -> &'static (Model, Vec<[u8; 784]>, PathBuf) {
    static E: OnceLock<(Model, Vec<[u8; 784]>, PathBuf)> = OnceLock::new();
    E.get_or_init(|| {
        let mnist = Mnist::load(common::mnist_dir())
            .unwrap()
            .limit(Some(3000), Some(DIGITS))
            .unwrap();
        let config = TrainConfig {
            epochs: 2,
            ..TrainConfig::default()
        };
        let mut t = Trainer::new(config, &DeviceChoice::cpu(), mnist.clone()).unwrap();
        t.run(&AtomicBool::new(false), |_, _| {}, |_, _| Ok(()))
            .unwrap();
        let model = t.model().unwrap();
        let dir = common::tmp("exported");
        let path = dir.join("lenet.onnx");
        model.export_onnx(&path).unwrap();
        let digits = (0..DIGITS).map(|i| mnist.test.digit28(i)).collect();
        (model, digits, path)
    })
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= RTOL * a.abs().max(b.abs())
}

#[test]
fn tract_runs_the_graph_as_the_cpu_reference_does() {
    let (model, digits, path) = exported();
    let plan = tract_onnx::onnx()
        .model_for_path(path)
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let pixels: Vec<f32> = digits.iter().flatten().map(|&p| p as f32).collect();
    let input = tract_ndarray::Array4::from_shape_vec((DIGITS, 1, 28, 28), pixels).unwrap();
    let out = plan.run(tvec!(Tensor::from(input).into())).unwrap();
    let distances = out[0].to_plain_array_view::<f32>().unwrap();
    let labels = out[1].to_plain_array_view::<i64>().unwrap();
    assert_eq!(distances.shape(), &[DIGITS, 10]);
    assert_eq!(labels.shape(), &[DIGITS]);
    let mut worst = 0f32;
    for (i, digit) in digits.iter().enumerate() {
        let want = model.classify(digit);
        for k in 0..10 {
            let got = distances[[i, k]];
            assert!(
                close(got, want.distances[k]),
                "digit {i}, class {k}: tract {got}, CPU reference {}",
                want.distances[k]
            );
            worst = worst.max((got - want.distances[k]).abs() / want.distances[k].abs());
        }
        assert_eq!(labels[i], want.digit as i64, "digit {i}");
    }
    eprintln!("tract vs CPU reference on {DIGITS} test digits: worst relative error {worst:.2e}");

    // The batch dimension is symbolic: one digit alone runs too.
    let one: Vec<f32> = digits[0].iter().map(|&p| p as f32).collect();
    let input = tract_ndarray::Array4::from_shape_vec((1, 1, 28, 28), one).unwrap();
    let out = plan.run(tvec!(Tensor::from(input).into())).unwrap();
    assert_eq!(
        out[1].to_plain_array_view::<i64>().unwrap()[[0]],
        model.classify(&digits[0]).digit as i64
    );
}

#[test]
fn the_graph_names_each_layer_by_its_operators() {
    let (model, _, path) = exported();
    let m = ModelProto::decode(std::fs::read(path).unwrap().as_slice()).unwrap();
    assert_eq!(m.ir_version, Some(lenet_gpu::onnx::IR_VERSION));
    assert_eq!(m.opset_import[0].version, Some(lenet_gpu::onnx::OPSET));
    let g = m.graph.as_ref().unwrap();
    let ops: Vec<&str> = g
        .node
        .iter()
        .map(|n| n.op_type.as_deref().unwrap())
        .collect();
    let squash = ["Mul", "Tanh", "Mul"];
    let subsample = ["Reshape", "Expand", "Conv"];
    let want: Vec<&str> = [
        &["Pad", "Mul", "Add", "Conv"][..],
        &squash,
        &subsample,
        &squash,
        &["Conv"],
        &squash,
        &subsample,
        &squash,
        &["Conv"],
        &squash,
        &["Flatten", "Gemm"],
        &squash,
        &["Unsqueeze", "Sub", "Mul", "ReduceSum", "ArgMin"],
    ]
    .concat();
    assert_eq!(ops, want);

    // Initialisers carry the checkpoint's names and shapes; C3 is zero off the table.
    let init = |name: &str| {
        g.initializer
            .iter()
            .find(|t| t.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no initialiser {name}"))
    };
    for name in [
        "c1.weight",
        "c1.bias",
        "s2.weight",
        "s2.bias",
        "c3.weight",
        "c3.bias",
        "s4.weight",
        "s4.bias",
        "c5.weight",
        "c5.bias",
        "f6.weight",
        "f6.bias",
        "output.centers",
    ] {
        let shape: Vec<i64> = lenet_gpu::checkpoint::shape_of(name)
            .unwrap()
            .iter()
            .map(|&d| d as i64)
            .collect();
        assert_eq!(init(name).dims, shape, "{name}");
    }
    let c3: Vec<f32> = init("c3.weight")
        .raw_data
        .as_ref()
        .unwrap()
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(
        c3,
        lenet_gpu::checkpoint::c3_to_dense(lenet_gpu::model::params::C3_W.of(model.params()))
    );
    for (o, ins) in lenet_gpu::model::params::C3_TABLE.iter().enumerate() {
        for i in 0..6 {
            let zero = c3[(o * 6 + i) * 25..(o * 6 + i + 1) * 25]
                .iter()
                .all(|&w| w == 0.0);
            assert_eq!(zero, !ins.contains(&i), "C3 map {o}, input {i}");
        }
    }

    // Symbolic batch; the model's metadata.
    let input = &g.input[0];
    let dims = &input
        .r#type
        .as_ref()
        .unwrap()
        .tensor_type
        .as_ref()
        .unwrap()
        .shape
        .as_ref()
        .unwrap()
        .dim;
    assert_eq!(dims[0].value, Some(DimensionValue::DimParam("N".into())));
    let meta: std::collections::HashMap<_, _> = m
        .metadata_props
        .iter()
        .map(|p| (p.key.clone().unwrap(), p.value.clone().unwrap()))
        .collect();
    assert_eq!(meta["pass"], "2");
    assert_eq!(meta["seed"], "1");
    assert_eq!(meta["test_error"].parse::<f64>().ok(), model.test_error());
    assert!(
        meta["c3_table"].starts_with("0: 0 1 2; 1: 1 2 3;"),
        "{}",
        meta["c3_table"]
    );
}

/// The Python interpreter with onnx and onnxruntime (`LENET_PYTHON`, else `python3`), or
/// why there is none.
fn python() -> Result<String, String> {
    let py = std::env::var("LENET_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = std::process::Command::new(&py)
        .args(["-c", "import onnx, onnxruntime, numpy"])
        .output()
        .map_err(|e| format!("{py} does not run: {e}"))?;
    if !probe.status.success() {
        return Err(format!(
            "{py} lacks onnx, onnxruntime or numpy (`pip install onnx onnxruntime numpy`): {}",
            String::from_utf8_lossy(&probe.stderr).trim()
        ));
    }
    Ok(py)
}

#[test]
fn onnxruntime_and_the_onnx_checker_accept_the_graph() {
    let py = match python() {
        Ok(py) => py,
        Err(why) => {
            let required = std::env::var("LENET_REQUIRE_ONNXRUNTIME").is_ok_and(|v| v == "1");
            assert!(!required, "LENET_REQUIRE_ONNXRUNTIME=1 but {why}");
            eprintln!("skipped the onnxruntime check: {why}");
            return;
        }
    };
    let (model, digits, path) = exported();
    let answers: Vec<_> = digits.iter().map(|d| model.classify(d)).collect();
    let reference = serde_json::json!({
        "pixels": digits.iter().map(|d| d.to_vec()).collect::<Vec<_>>(),
        "distances": answers.iter().map(|a| a.distances.to_vec()).collect::<Vec<_>>(),
        "digits": answers.iter().map(|a| a.digit).collect::<Vec<_>>(),
        "rtol": RTOL,
    });
    let json = path.with_extension("reference.json");
    std::fs::write(&json, reference.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx_check.py");
    let out = std::process::Command::new(py)
        .arg(script)
        .arg(path)
        .arg(&json)
        .output()
        .unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "tests/onnx_check.py failed:\n{o}\n{e}"
    );
    eprintln!("{o}");
}

#[test]
fn export_refuses_bad_input_and_keeps_good_files() {
    let dir = common::tmp("bad");
    let good = dir.join("good.onnx");
    std::fs::write(&good, b"a good file").unwrap();
    let ck = dir.join("lenet.safetensors");
    Model::initial(1).save(&ck).unwrap();

    // Not a checkpoint: eval's error, naming the file; the output untouched.
    let text = dir.join("notes.txt");
    std::fs::write(&text, "not a model").unwrap();
    let mut c = common::bin();
    c.args(["export", "--model"])
        .arg(&text)
        .arg("--onnx")
        .arg(&good);
    let (ok, _, err) = common::output(c);
    assert!(!ok);
    assert!(
        err.contains("notes.txt") && err.contains("not a usable checkpoint"),
        "{err}"
    );
    assert_eq!(std::fs::read(&good).unwrap(), b"a good file");

    // A missing model.
    let mut c = common::bin();
    c.args(["export", "--model"])
        .arg(dir.join("none.safetensors"))
        .arg("--onnx")
        .arg(&good);
    let (ok, _, err) = common::output(c);
    assert!(!ok && err.contains("none.safetensors"), "{err}");

    // An output folder that does not exist, and an output that is a folder: --save's errors.
    let mut c = common::bin();
    c.args(["export", "--model"])
        .arg(&ck)
        .arg("--onnx")
        .arg(dir.join("missing/out.onnx"));
    let (ok, _, err) = common::output(c);
    assert!(
        !ok && err.contains("does not exist; create it first"),
        "{err}"
    );
    assert!(!dir.join("missing").exists());
    let mut c = common::bin();
    c.args(["export", "--model"])
        .arg(&ck)
        .arg("--onnx")
        .arg(&dir);
    let (ok, _, err) = common::output(c);
    assert!(!ok && err.contains("is a folder"), "{err}");

    // A good run replaces the file whole and leaves no temporary file.
    let mut c = common::bin();
    c.args(["export", "--model"])
        .arg(&ck)
        .arg("--onnx")
        .arg(&good);
    let (ok, out, err) = common::output(c);
    assert!(ok, "{err}");
    assert!(out.contains("opset 17"), "{out}");
    let m = ModelProto::decode(std::fs::read(&good).unwrap().as_slice()).unwrap();
    assert_eq!(m.graph.unwrap().name.as_deref(), Some("lenet5"));
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
