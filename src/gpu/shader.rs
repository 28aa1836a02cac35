//! Shader assembly: each family's module is the header of constants generated from Rust,
//! common.wgsl, the shared helper files and the family's own file.

use super::bindings::{C3_TABLE, C3_TABLE_LEN, Region, SMALL_LEN, STEP_WGSL, wgsl_bindings};
use super::kernels::{
    C1S2_WG, C3B_WG, C3S4_WG, Family, HEAD_B, HEAD_WG, PARAM_GROUPS, PARAMS_WG, SMALL_PARAMS, WG,
};
use super::{ACT_OFFSETS, ACT_STRIDE, DELTA_OFFSETS, DELTA_STRIDE, PART};
use crate::model::params::{self, C3_TABLE as C3_LINKS_BY_MAP, N_PARAMS};
use crate::model::{ACTIVATIONS, DELTAS};

/// The constants, records and bindings every shader sees, generated from the Rust
/// definitions (the model, the registry's sizes, `bindings`) so the two never differ.
pub(super) fn header() -> String {
    let mut h = String::new();
    h += &parameter_constants();
    h += &layout_constants();
    h += &model_constants();
    h += &kernel_constants();
    h += STEP_WGSL;
    h += &wgsl_bindings();
    h
}

fn constant(name: &str, v: u32) -> String {
    format!("const {name}: u32 = {v}u;\n")
}

/// N_PARAMS, each tensor's offset (C1_W, C1_B, ...), the regions of `state` and what
/// `small` holds where.
fn parameter_constants() -> String {
    let mut h = constant("N_PARAMS", N_PARAMS as u32);
    for t in params::TENSORS {
        let name = t.name.replace('.', "_").to_uppercase();
        let name = name.replace("WEIGHT", "W").replace("BIAS", "B");
        h += &constant(&name, t.offset as u32);
    }
    for r in Region::ALL {
        h += &constant(r.wgsl(), r.offset() as u32);
    }
    h += &constant("SMALL_PARAMS", SMALL_PARAMS);
    h += &constant("RBF_CENTERS", SMALL_PARAMS);
    h += &constant("C3_TABLE", C3_TABLE);
    for (name, at) in C3Lists::OFFSETS {
        h += &constant(name, at);
    }
    h += &constant("SMALL_LEN", SMALL_LEN);
    h
}

/// The offset of each activation (X0 .. Y) and delta (D1 .. DY) in its per-pattern
/// record, the records' strides and the partial sums' place.
fn layout_constants() -> String {
    let mut h = String::new();
    for (a, off) in ACTIVATIONS.iter().zip(ACT_OFFSETS) {
        h += &constant(&a.name.to_uppercase(), off as u32);
    }
    h += &constant("ACT_STRIDE", ACT_STRIDE);
    for (a, off) in DELTAS.iter().zip(DELTA_OFFSETS) {
        h += &constant(&a.name.to_uppercase(), off as u32);
    }
    h += &constant("PART", PART);
    h += &constant("DELTA_STRIDE", DELTA_STRIDE);
    h
}

/// The squashing function's and the input's constants, and the RBF layer's sizes.
fn model_constants() -> String {
    use crate::model::*;
    let float = |name: &str, v: f64| format!("const {name}: f32 = {:?};\n", v as f32);
    let mut h = float("SQUASH_A", SQUASH_A);
    h += &float("SQUASH_S", SQUASH_S);
    h += &float("INPUT_BACKGROUND", INPUT_BACKGROUND);
    h += &float("INPUT_SCALE", INPUT_SCALE);
    h += &constant("CLASSES", CLASSES as u32);
    h += &constant("CENTRE_LEN", CENTRE_LEN as u32);
    h += &constant("N_CENTRES", N_CENTRES as u32);
    h
}

/// The workgroup sizes the registry's dispatch arithmetic assumes.
fn kernel_constants() -> String {
    let mut h = String::new();
    for (name, v) in [
        ("WG", WG),
        ("C1S2_WG", C1S2_WG),
        ("C3S4_WG", C3S4_WG),
        ("HEAD_B", HEAD_B),
        ("HEAD_WG", HEAD_WG),
        ("C3B_WG", C3B_WG),
        ("PARAMS_WG", PARAMS_WG),
        ("PARAM_GROUPS", PARAM_GROUPS),
    ] {
        h += &constant(name, v);
    }
    h
}

/// C3's connection table as the kernels read it from `small` (common.wgsl, `c3_start` ..
/// `c3_by_input_link`): by output map (where each map's links start, each link's input map
/// and output map) and by input map (where each S2 map's links start, and the links).
pub(super) struct C3Lists;

impl C3Lists {
    /// Each list's WGSL name and its offset in the table.
    const OFFSETS: [(&'static str, u32); 5] = [
        ("C3_START", 0),
        ("C3_IN", 17),
        ("C3_MAP", 17 + 60),
        ("C3_BY_INPUT_START", 17 + 60 + 60),
        ("C3_BY_INPUT_LINK", 17 + 60 + 60 + 7),
    ];

    /// The table's C3_TABLE_LEN values, as floats (small integers, exact).
    pub(super) fn values() -> Vec<f32> {
        let (mut start, mut ins, mut maps) = (vec![0u32], Vec::new(), Vec::new());
        for (o, links) in C3_LINKS_BY_MAP.iter().enumerate() {
            for &m in links.iter() {
                ins.push(m as u32);
                maps.push(o as u32);
            }
            start.push(ins.len() as u32);
        }
        // The same links grouped by the S2 map they read, for gathering C3's input gradient.
        let (mut by_start, mut by_link) = (vec![0u32], Vec::new());
        for m in 0..6u32 {
            by_link.extend((0..ins.len() as u32).filter(|&l| ins[l as usize] == m));
            by_start.push(by_link.len() as u32);
        }
        let mut v: Vec<f32> = [start, ins, maps, by_start, by_link]
            .concat()
            .into_iter()
            .map(|x| x as f32)
            .collect();
        assert_eq!(
            v.len(),
            204,
            "the table's lists have the lengths of OFFSETS"
        );
        v.resize(C3_TABLE_LEN as usize, 0.0);
        v
    }
}

/// The helper files every family's module holds, in this order, after the header.
const SHARED: [&str; 4] = [
    include_str!("../../shaders/common.wgsl"),
    include_str!("../../shaders/input.wgsl"),
    include_str!("../../shaders/loss.wgsl"),
    include_str!("../../shaders/update.wgsl"),
];

/// The family's own file.
fn family_file(family: Family) -> &'static str {
    match family {
        Family::Fused => include_str!("../../shaders/fused.wgsl"),
        Family::Simple => include_str!("../../shaders/simple.wgsl"),
    }
}

/// The WGSL source of the family's module.
pub(super) fn module_source(family: Family) -> String {
    let mut s = header();
    for f in SHARED.iter().chain([&family_file(family)]) {
        s.push('\n');
        s += f;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::{C3_LINKS_BY_MAP, C3Lists, Family, module_source};
    use crate::gpu::bindings::STEP_BYTES;
    use crate::gpu::kernels::KERNELS;

    fn parse(family: Family) -> naga::Module {
        let code = module_source(family);
        naga::front::wgsl::parse_str(&code)
            .unwrap_or_else(|e| panic!("{family:?}: {}", e.emit_to_string(&code)))
    }

    /// Every entry point declares the workgroup size its registry row's dispatch
    /// arithmetic assumes, every row's entry point is in its family's module, and every
    /// entry point of a module is a row of its family.
    #[test]
    fn workgroup_sizes_agree_with_the_registry() {
        for family in Family::ALL {
            let module = parse(family);
            for k in family.kernels() {
                let e = module
                    .entry_points
                    .iter()
                    .find(|e| e.name == k.entry)
                    .unwrap_or_else(|| panic!("no entry point {}", k.entry));
                assert_eq!(e.workgroup_size, [k.size.workgroup(), 1, 1], "{}", k.entry);
            }
            for e in &module.entry_points {
                assert!(
                    family.kernels().any(|k| k.entry == e.name),
                    "{} is in no registry row of the {family:?} family",
                    e.name
                );
            }
        }
        assert_eq!(
            KERNELS.len(),
            Family::ALL
                .iter()
                .map(|f| f.kernels().count())
                .sum::<usize>()
        );
    }

    /// The generated `Step` is the Rust record, field for field (naga's layout of the
    /// WGSL struct against the Rust struct's size).
    #[test]
    fn step_record_matches_its_wgsl_twin() {
        let module = parse(Family::Simple);
        let ty = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some("Step"))
            .unwrap()
            .1;
        let naga::TypeInner::Struct { members, span } = &ty.inner else {
            panic!("Step is not a struct")
        };
        assert_eq!(*span as u64, STEP_BYTES);
        assert_eq!(members.len(), STEP_BYTES as usize / 4);
        for (i, m) in members.iter().enumerate() {
            assert_eq!(m.offset as usize, 4 * i, "{:?}", m.name);
        }
    }

    /// The table lists read back as `params::C3_TABLE` says.
    #[test]
    fn c3_lists_hold_the_connection_table() {
        let v = C3Lists::values();
        let at = |name: &str| C3Lists::OFFSETS.iter().find(|o| o.0 == name).unwrap().1 as usize;
        for (o, links) in C3_LINKS_BY_MAP.iter().enumerate() {
            let (a, b) = (
                v[at("C3_START") + o] as usize,
                v[at("C3_START") + o + 1] as usize,
            );
            let ins: Vec<usize> = (a..b).map(|l| v[at("C3_IN") + l] as usize).collect();
            assert_eq!(ins, links.to_vec(), "map {o}");
            assert!((a..b).all(|l| v[at("C3_MAP") + l] as usize == o));
        }
        for c in 0..6 {
            let (a, b) = (
                v[at("C3_BY_INPUT_START") + c] as usize,
                v[at("C3_BY_INPUT_START") + c + 1] as usize,
            );
            for k in a..b {
                let l = v[at("C3_BY_INPUT_LINK") + k] as usize;
                assert_eq!(v[at("C3_IN") + l] as usize, c);
            }
        }
    }
}
