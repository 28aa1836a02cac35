//! ONNX export: a trained LeNet-5 as a graph any ONNX runtime runs (onnxruntime, tract,
//! the browser's onnxruntime-web) and Netron draws, each layer as the operators that say
//! what it is. The graph, with the CPU reference's names for the tensors between layers
//! (`cpu::Workspace`: x0 .. x6):
//!
//! | step | operators | output |
//! |---|---|---|
//! | input | `Pad` by 2 with 0 (MNIST's background), `Mul` 1.275/255, `Add` -0.1 | x0 `[N,1,32,32]` |
//! | C1 | `Conv` 5x5 (`c1.weight`, `c1.bias`), squash | x1 `[N,6,28,28]` |
//! | S2 | `Reshape` + `Expand` of `s2.weight` (one coefficient per map) to a 2x2 kernel, depthwise `Conv` stride 2 (`group` 6), squash | x2 `[N,6,14,14]` |
//! | C3 | `Conv` 5x5 with `c3.weight` `[16,6,5,5]`, zero where the paper's table has no link (the table is in `metadata_props` and the node's doc string), squash | x3 `[N,16,10,10]` |
//! | S4 | as S2, 16 maps | x4 `[N,16,5,5]` |
//! | C5 | `Conv` 5x5, squash, `Flatten` | x5 `[N,120]` |
//! | F6 | `Gemm` (`f6.weight` transposed), squash | x6 `[N,84]` |
//! | RBF | `Unsqueeze`, `Sub` the fixed centres `output.centers` `[10,84]`, `Mul` by itself, `ReduceSum` | distances `[N,10]` |
//! | answer | `ArgMin` | digit `[N]` (int64) |
//!
//! The squashing function f(a) = 1.7159 tanh(2a/3) is `Mul`, `Tanh`, `Mul`. Initialisers
//! carry the checkpoint's tensor names and shapes. Opset [`OPSET`] of the default domain,
//! IR version [`IR_VERSION`]; the batch dimension is the symbol `N`. The messages are
//! `prost` derives (`proto`), so nothing is encoded by hand and no `protoc` is needed.

pub mod proto;

use crate::checkpoint::{self, CENTERS_NAME, Meta};
use crate::model::params::{self, C3_TABLE, Tensor};
use crate::model::{INPUT_BACKGROUND, INPUT_SCALE, SQUASH_A, SQUASH_S};
use prost::Message;
use proto::{
    AttributeProto, AttributeType, DataType, Dimension, DimensionValue, GraphProto, ModelProto,
    NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto,
    TensorTypeProto, TypeProto, ValueInfoProto,
};
use std::path::Path;

/// The operator set version of the default domain the graph uses (onnxruntime 1.13 and
/// later, tract, onnx 1.12 and later read it).
pub const OPSET: i64 = 17;
/// The ONNX IR version that goes with [`OPSET`].
pub const IR_VERSION: i64 = 8;

/// Name of the graph's input: raw pixels `[N,1,28,28]`, 0 (background) to 255 (ink), as in
/// MNIST's files.
pub const INPUT: &str = "input";
/// Name of the output of the ten RBF distances `[N,10]` (the smallest wins).
pub const DISTANCES: &str = "distances";
/// Name of the output of the answer `[N]`, int64.
pub const DIGIT: &str = "digit";

/// The model as ONNX protobuf bytes: `params` the flat parameter buffer (C3 compact),
/// `centers` the 10x84 RBF centres, `meta` the checkpoint's metadata (copied into
/// `metadata_props`; `None` for plain weights, whose pass, seed and loss are unknown).
pub fn to_bytes(params: &[f32], centers: &[f32], meta: Option<&Meta>) -> Vec<u8> {
    model(params, centers, meta).encode_to_vec()
}

/// [`to_bytes`], written atomically to `path` (as checkpoints are: a complete file or
/// none; the folder must exist).
pub fn save(
    path: &Path,
    params: &[f32],
    centers: &[f32],
    meta: Option<&Meta>,
) -> crate::Result<()> {
    checkpoint::write_atomic(path, &to_bytes(params, centers, meta))
}

/// The whole `ModelProto`.
pub fn model(params: &[f32], centers: &[f32], meta: Option<&Meta>) -> ModelProto {
    assert_eq!(params.len(), params::N_PARAMS, "a full parameter buffer");
    assert_eq!(centers.len(), checkpoint::N_CENTERS, "10 x 84 centres");
    ModelProto {
        ir_version: Some(IR_VERSION),
        producer_name: Some("lenet-gpu".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(
            "LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998): input raw pixels [N,1,28,28] \
             0-255, ink high; outputs the ten RBF distances [N,10] (the smallest wins) and \
             the digit [N]."
                .into(),
        ),
        graph: Some(graph(params, centers)),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        metadata_props: metadata(meta),
    }
}

/// The C3 connection table as text: `map: inputs; ...`, e.g. `0: 0 1 2; 1: 1 2 3; ...`.
pub fn c3_table_text() -> String {
    let maps: Vec<String> = C3_TABLE
        .iter()
        .enumerate()
        .map(|(o, ins)| {
            let ins: Vec<String> = ins.iter().map(|i| i.to_string()).collect();
            format!("{o}: {}", ins.join(" "))
        })
        .collect();
    maps.join("; ")
}

/// `metadata_props`: the checkpoint's metadata (pass, seed, loss, test error when it was
/// recorded, the run's settings; "unknown" for plain weights), the input's scaling, and
/// the C3 table. A checkpoint entry with the name of one of these is left out: keys are
/// unique.
fn metadata(meta: Option<&Meta>) -> Vec<StringStringEntryProto> {
    let known = |f: fn(&Meta) -> String| meta.map_or_else(|| "unknown".to_string(), f);
    let mut props = vec![
        ("format".to_string(), checkpoint::FORMAT.to_string()),
        ("pass".into(), known(|m| m.epoch.to_string())),
        ("seed".into(), known(|m| m.seed.to_string())),
        ("loss".into(), known(|m| m.loss.clone())),
        ("input".into(), "raw pixels [N,1,28,28], 0 background to 255 ink (MNIST's polarity); padded to 32x32 and scaled to -0.1..1.175 in the graph".into()),
        ("normalisation".into(), checkpoint::NORMALISATION.into()),
        ("c3_table".into(), c3_table_text()),
    ];
    for (k, v) in meta.iter().flat_map(|m| &m.extra) {
        if !props.iter().any(|(key, _)| key == k) {
            props.push((k.clone(), v.clone()));
        }
    }
    props
        .into_iter()
        .map(|(k, v)| StringStringEntryProto {
            key: Some(k),
            value: Some(v),
        })
        .collect()
}

/// The graph, layer by layer (the table of the module docs).
fn graph(params: &[f32], centers: &[f32]) -> GraphProto {
    let mut g = Builder::default();
    let p = |t: Tensor| t.of(params);
    let shape = |name: &str| -> Vec<i64> {
        checkpoint::shape_of(name)
            .expect("a checkpoint tensor")
            .iter()
            .map(|&d| d as i64)
            .collect()
    };

    // Constants shared by every layer.
    g.f32s("squash.S", &[], &[SQUASH_S as f32]);
    g.f32s("squash.A", &[], &[SQUASH_A as f32]);

    // Input: pad by 2 with MNIST's background, then scale as the paper does.
    g.i64s("input.pads", &[8], &[0, 0, 2, 2, 0, 0, 2, 2]);
    g.f32s("input.pad_value", &[], &[0.0]);
    g.f32s("input.scale", &[], &[INPUT_SCALE as f32]);
    g.f32s("input.background", &[], &[INPUT_BACKGROUND as f32]);
    g.node(
        "input.pad",
        "Pad",
        &[INPUT, "input.pads", "input.pad_value"],
        "x0.pixels",
        vec![],
    );
    g.node(
        "input.mul",
        "Mul",
        &["x0.pixels", "input.scale"],
        "x0.scaled",
        vec![],
    );
    g.node(
        "input.add",
        "Add",
        &["x0.scaled", "input.background"],
        "x0",
        vec![],
    );

    // C1.
    g.f32s("c1.weight", &shape("c1.weight"), p(params::C1_W));
    g.f32s("c1.bias", &shape("c1.bias"), p(params::C1_B));
    g.conv("c1", "x0", "c1.weight", "c1.bias", 5, 1, 1, "a1");
    g.squash("c1", "a1", "x1");

    // S2.
    g.subsample("s2", 6, p(params::S2_W), p(params::S2_B), "x1", "a2");
    g.squash("s2", "a2", "x2");

    // C3: the dense [16,6,5,5] weights of the checkpoint, zero off the table.
    g.f32s(
        "c3.weight",
        &shape("c3.weight"),
        &checkpoint::c3_to_dense(p(params::C3_W)),
    );
    g.f32s("c3.bias", &shape("c3.bias"), p(params::C3_B));
    g.conv("c3", "x2", "c3.weight", "c3.bias", 5, 1, 1, "a3");
    g.doc(&format!(
        "C3: each of the 16 maps reads only the S2 maps of LeCun et al. 1998, table I (map: \
         S2 maps): {}; the other weights are zero",
        c3_table_text()
    ));
    g.squash("c3", "a3", "x3");

    // S4.
    g.subsample("s4", 16, p(params::S4_W), p(params::S4_B), "x3", "a4");
    g.squash("s4", "a4", "x4");

    // C5: a 5x5 convolution of a 5x5 input, one value per map.
    g.f32s("c5.weight", &shape("c5.weight"), p(params::C5_W));
    g.f32s("c5.bias", &shape("c5.bias"), p(params::C5_B));
    g.conv("c5", "x4", "c5.weight", "c5.bias", 5, 1, 1, "a5");
    g.squash("c5", "a5", "x5.maps");
    g.node(
        "c5.flatten",
        "Flatten",
        &["x5.maps"],
        "x5",
        vec![int("axis", 1)],
    );

    // F6.
    g.f32s("f6.weight", &shape("f6.weight"), p(params::F6_W));
    g.f32s("f6.bias", &shape("f6.bias"), p(params::F6_B));
    g.node(
        "f6",
        "Gemm",
        &["x5", "f6.weight", "f6.bias"],
        "a6",
        vec![int("transB", 1)],
    );
    g.squash("f6", "a6", "x6");

    // RBF: squared Euclidean distance to each fixed centre.
    g.f32s(CENTERS_NAME, &shape(CENTERS_NAME), centers);
    g.i64s("rbf.unsqueeze_axes", &[1], &[1]);
    g.i64s("rbf.sum_axes", &[1], &[2]);
    g.node(
        "rbf.unsqueeze",
        "Unsqueeze",
        &["x6", "rbf.unsqueeze_axes"],
        "x6.row",
        vec![],
    );
    g.node(
        "rbf.sub",
        "Sub",
        &["x6.row", CENTERS_NAME],
        "rbf.diff",
        vec![],
    );
    g.node(
        "rbf.square",
        "Mul",
        &["rbf.diff", "rbf.diff"],
        "rbf.squared",
        vec![],
    );
    g.node(
        "rbf.sum",
        "ReduceSum",
        &["rbf.squared", "rbf.sum_axes"],
        DISTANCES,
        vec![int("keepdims", 0)],
    );
    g.node(
        "answer",
        "ArgMin",
        &[DISTANCES],
        DIGIT,
        vec![int("axis", 1), int("keepdims", 0)],
    );

    GraphProto {
        node: g.nodes,
        name: Some("lenet5".into()),
        initializer: g.inits,
        doc_string: Some(
            "LeNet-5 forward pass; tensor names between layers follow lenet-gpu's CPU \
             reference (x0 .. x6)"
                .into(),
        ),
        input: vec![value(
            INPUT,
            DataType::Float,
            &[None, Some(1), Some(28), Some(28)],
        )],
        output: vec![
            value(DISTANCES, DataType::Float, &[None, Some(10)]),
            value(DIGIT, DataType::Int64, &[None]),
        ],
    }
}

/// Nodes and initialisers as they are added, in order.
#[derive(Default)]
struct Builder {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
}

impl Builder {
    fn node(
        &mut self,
        name: &str,
        op: &str,
        inputs: &[&str],
        output: &str,
        attrs: Vec<AttributeProto>,
    ) {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            name: Some(name.into()),
            op_type: Some(op.into()),
            attribute: attrs,
            doc_string: None,
        });
    }

    /// A doc string on the last node added.
    fn doc(&mut self, text: &str) {
        if let Some(n) = self.nodes.last_mut() {
            n.doc_string = Some(text.into());
        }
    }

    fn f32s(&mut self, name: &str, dims: &[i64], values: &[f32]) {
        assert_eq!(
            dims.iter().product::<i64>() as usize,
            values.len(),
            "{name}"
        );
        self.inits.push(TensorProto {
            dims: dims.to_vec(),
            data_type: Some(DataType::Float as i32),
            name: Some(name.into()),
            raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
            doc_string: None,
        });
    }

    fn i64s(&mut self, name: &str, dims: &[i64], values: &[i64]) {
        self.inits.push(TensorProto {
            dims: dims.to_vec(),
            data_type: Some(DataType::Int64 as i32),
            name: Some(name.into()),
            raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
            doc_string: None,
        });
    }

    /// A square `k`x`k` convolution, stride `stride`, `group` groups, no padding.
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        name: &str,
        x: &str,
        w: &str,
        b: &str,
        k: i64,
        stride: i64,
        group: i64,
        out: &str,
    ) {
        self.node(
            name,
            "Conv",
            &[x, w, b],
            out,
            vec![
                ints("kernel_shape", &[k, k]),
                ints("strides", &[stride, stride]),
                int("group", group),
            ],
        );
    }

    /// f(a) = A tanh(S a).
    fn squash(&mut self, layer: &str, a: &str, x: &str) {
        let (sa, t) = (format!("{a}.scaled"), format!("{a}.tanh"));
        self.node(
            &format!("{layer}.squash.mul_s"),
            "Mul",
            &[a, "squash.S"],
            &sa,
            vec![],
        );
        self.node(&format!("{layer}.squash.tanh"), "Tanh", &[&sa], &t, vec![]);
        self.node(
            &format!("{layer}.squash.mul_a"),
            "Mul",
            &[&t, "squash.A"],
            x,
            vec![],
        );
    }

    /// A subsampling layer of `maps` maps: each 2x2 block summed, times the map's
    /// coefficient, plus its bias, as a depthwise 2x2 stride-2 convolution whose four taps
    /// are the coefficient (the checkpoint's `[maps]` tensor, reshaped and expanded in
    /// the graph).
    fn subsample(
        &mut self,
        layer: &str,
        maps: i64,
        coef: &[f32],
        bias: &[f32],
        x: &str,
        out: &str,
    ) {
        let (w, b) = (format!("{layer}.weight"), format!("{layer}.bias"));
        let (shape, expand) = (
            format!("{layer}.kernel_shape"),
            format!("{layer}.kernel_expand"),
        );
        let (column, kernel) = (format!("{layer}.weight.column"), format!("{layer}.kernel"));
        self.f32s(&w, &[maps], coef);
        self.f32s(&b, &[maps], bias);
        self.i64s(&shape, &[4], &[maps, 1, 1, 1]);
        self.i64s(&expand, &[4], &[maps, 1, 2, 2]);
        self.node(
            &format!("{layer}.reshape"),
            "Reshape",
            &[&w, &shape],
            &column,
            vec![],
        );
        self.node(
            &format!("{layer}.expand"),
            "Expand",
            &[&column, &expand],
            &kernel,
            vec![],
        );
        self.conv(layer, x, &kernel, &b, 2, 2, maps, out);
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        i: Some(v),
        r#type: Some(AttributeType::Int as i32),
        ..Default::default()
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        ints: v.to_vec(),
        r#type: Some(AttributeType::Ints as i32),
        ..Default::default()
    }
}

/// A graph input or output: `None` is the batch symbol `N`.
fn value(name: &str, ty: DataType, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(n) => DimensionValue::DimValue(*n),
                None => DimensionValue::DimParam("N".into()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: Some(ty as i32),
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
        doc_string: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(meta: Option<&Meta>) -> Vec<(String, String)> {
        metadata(meta)
            .into_iter()
            .map(|p| (p.key.unwrap(), p.value.unwrap()))
            .collect()
    }

    #[test]
    fn plain_weights_say_unknown_and_keys_stay_unique() {
        let plain = props(None);
        for key in ["pass", "seed", "loss"] {
            assert!(plain.contains(&(key.into(), "unknown".into())), "{key}");
        }
        let mut meta = Meta::unknown();
        meta.epoch = 3;
        meta.extra.insert("pass".into(), "99".into());
        meta.extra.insert("test_error".into(), "0.0090".into());
        let p = props(Some(&meta));
        let passes: Vec<_> = p.iter().filter(|(k, _)| k == "pass").collect();
        assert_eq!(passes, [&("pass".to_string(), "3".to_string())]);
        assert!(p.contains(&("test_error".into(), "0.0090".into())));
    }
}
