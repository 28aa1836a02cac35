//! Shader assembly: the header of constants generated from Rust, the marked loops
//! unrolled, the prelude of the chosen storage, and SPIR-V per kernel for Vulkan.

use super::*;

/// The constants, records and bindings every shader sees, generated from the Rust
/// definitions (the model, the registry's sizes, `bindings`) so the two never differ.
pub(super) fn header(reads: Reads) -> String {
    let mut h = String::new();
    h += &parameter_constants();
    h += &layout_constants();
    h += &model_constants();
    h += &kernel_constants();
    h += STEP_WGSL;
    h += &wgsl_bindings(reads);
    h += &c3_tables();
    h
}

fn constant(name: &str, v: u32) -> String {
    format!("const {name}: u32 = {v}u;\n")
}

/// N_PARAMS, each tensor's offset (C1_W, C1_B, ...) and the regions of `state`.
fn parameter_constants() -> String {
    assert!(
        N_PARAMS.is_multiple_of(4),
        "update.wgsl updates four parameters at a time"
    );
    let mut h = constant("N_PARAMS", N_PARAMS as u32);
    for t in params::TENSORS {
        let name = t.name.replace('.', "_").to_uppercase();
        let name = name.replace("WEIGHT", "W").replace("BIAS", "B");
        h += &constant(&name, t.offset as u32);
    }
    for r in Region::ALL {
        h += &constant(r.wgsl(), r.offset() as u32);
    }
    assert_eq!(SMALL_PARAMS % 4, 0);
    h += &constant("SMALL_PARAMS", SMALL_PARAMS);
    h += &constant("RBF_CENTERS", SMALL_PARAMS);
    h += &constant("SMALL_LEN", SMALL_LEN);
    h += &constant("PARAM_ROWS", PARAM_ROWS);
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
    const { assert!(PART + PART_LEN <= DELTA_STRIDE && DELTA_STRIDE.is_multiple_of(64)) };
    h += &constant("PART", PART);
    h += &constant("C3_PART_BIAS", C3_PART_BIAS);
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

/// The workgroup sizes and tile sizes the registry's dispatch arithmetic assumes.
fn kernel_constants() -> String {
    let mut h = constant("WG", WG);
    h += &constant("DENSE_WG", DENSE_WG);
    h += &constant("TILE_B", TILE_B);
    h += &constant("SUM_WG", SUM_WG);
    for (name, v) in [
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

/// C3's connection table, by output map and by input map.
fn c3_tables() -> String {
    let mut h = String::new();
    let (mut start, mut ins, mut maps) = (vec![0u32], Vec::new(), Vec::new());
    for (o, table) in C3_TABLE.iter().enumerate() {
        for &m in table.iter() {
            ins.push(m as u32);
            maps.push(o as u32);
        }
        start.push(ins.len() as u32);
    }
    let list = |v: &[u32]| {
        v.iter()
            .map(|x| format!("{x}u"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    h += &format!("const C3_START_INIT = array<u32, 17>({});\n", list(&start));
    h += &format!("const C3_IN_INIT = array<u32, 60>({});\n", list(&ins));
    h += &format!("const C3_MAP_INIT = array<u32, 60>({});\n", list(&maps));
    // The same links grouped by the S2 map they read, for gathering C3's input gradient.
    let (mut by_start, mut by_link) = (vec![0u32], Vec::new());
    for m in 0..6u32 {
        by_link.extend((0..ins.len() as u32).filter(|&l| ins[l as usize] == m));
        by_start.push(by_link.len() as u32);
    }
    h += &format!(
        "const C3_BY_INPUT_START_INIT = array<u32, 7>({});\n",
        list(&by_start)
    );
    h += &format!(
        "const C3_BY_INPUT_LINK_INIT = array<u32, 60>({});\n",
        list(&by_link)
    );
    h
}

/// Unrolls every loop marked `/*unroll*/`, of the form
/// `/*unroll*/ for (var NAME = Au; NAME < Bu; NAME++) { BODY }`, into the blocks
/// `{ let NAME = Au; BODY } { let NAME = A+1u; BODY } ...`, outermost first, until none is left.
///
/// Why: on CPU adapters (lavapipe, llvmpipe) a function-local array indexed by a loop
/// variable compiles to a chain of branches or a per-lane memory access, while a constant
/// index keeps the element in a register. The kernels hold their tiles (an input patch, a
/// row of sums) in such arrays; unrolling the loops over the tile makes every index a
/// constant, which the compiler folds. GPUs' compilers do the same with unrolled code.
/// A marked loop's body must not `break` or `continue` (it would leave the wrong loop).
pub fn unroll(src: &str) -> String {
    const MARK: &str = "/*unroll*/";
    let mut s = src.to_string();
    while let Some(at) = s.find(MARK) {
        let rest = &s[at + MARK.len()..];
        let open = rest.find('{').expect("an unrolled loop has a body");
        let head = rest[..open].trim();
        // for (var NAME = Au; NAME < Bu; NAME++)
        let parse = || -> Option<(String, u32, u32)> {
            let inner = head.strip_prefix("for (var ")?.strip_suffix(')')?;
            let mut parts = inner.split(';').map(str::trim);
            let (name, from) = parts.next()?.split_once(" = ")?;
            let (cond_name, to) = parts.next()?.split_once(" < ")?;
            let inc = parts.next()?;
            let num = |t: &str| t.strip_suffix('u')?.parse::<u32>().ok();
            (cond_name == name && inc == format!("{name}++"))
                .then(|| Some((name.to_string(), num(from)?, num(to)?)))?
        };
        let (name, from, to) = parse().unwrap_or_else(|| panic!("malformed unrolled loop: {head}"));
        let body_start = at + MARK.len() + open + 1;
        let mut depth = 1;
        let mut end = body_start;
        for (i, c) in s[body_start..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = body_start + i;
                break;
            }
        }
        let body = &s[body_start..end];
        assert!(
            !body.contains("continue") && !body.contains("break"),
            "an unrolled loop's body must not break or continue: {head}"
        );
        let copies: String = (from..to)
            .map(|k| format!("{{ let {name} = {k}u;{body}}}"))
            .collect();
        s.replace_range(at..end + 1, &copies);
    }
    s
}

/// The shader files, each compiled with the header and common.wgsl in front.
pub(super) const SHADERS: [(&str, &str); 10] = [
    ("input", include_str!("../../shaders/input.wgsl")),
    ("dense", include_str!("../../shaders/dense.wgsl")),
    ("conv", include_str!("../../shaders/conv.wgsl")),
    ("subsample", include_str!("../../shaders/subsample.wgsl")),
    ("full", include_str!("../../shaders/full.wgsl")),
    ("rbf", include_str!("../../shaders/rbf.wgsl")),
    ("loss", include_str!("../../shaders/loss.wgsl")),
    ("update", include_str!("../../shaders/update.wgsl")),
    ("simple", include_str!("../../shaders/simple.wgsl")),
    ("fused", include_str!("../../shaders/fused.wgsl")),
];
pub(super) const COMMON: &str = include_str!("../../shaders/common.wgsl");
/// Where activations and deltas live, with the helpers that read and write them (`Reads`).
pub(super) const TEXTURES: &str = include_str!("../../shaders/textures.wgsl");
pub(super) const BUFFERS: &str = include_str!("../../shaders/buffers.wgsl");

/// What every kernel file needs in front of it: the generated constants, the storage of
/// `reads` and common.wgsl.
pub(super) fn prelude(reads: Reads) -> String {
    let store = match reads {
        Reads::Textures => TEXTURES,
        Reads::Storage => BUFFERS,
    };
    format!("{}\n{store}\n{COMMON}\n", header(reads))
}

/// The kernel files of `family` behind the prelude of `reads`, as one module, before
/// unrolling.
pub(super) fn module_text(reads: Reads, family: Family) -> String {
    let head = prelude(reads);
    let files = SHADERS
        .iter()
        .filter(|(name, _)| family.files().contains(name))
        .map(|(_, src)| *src);
    std::iter::once(head.as_str())
        .chain(files)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `module_text` with the marked loops unrolled: the module's source.
pub(super) fn module_source(reads: Reads, family: Family) -> String {
    unroll(&module_text(reads, family))
}

/// One kernel's SPIR-V words and workgroup size.
pub(super) type SpirvKernel = (Vec<u32>, [u32; 3]);

/// Translates the family's parsed module to SPIR-V, one module per kernel of `family`, with
/// wgpu's translator and the settings `ShaderRuntimeChecks::unchecked()` gives the WGSL
/// path; with each, the kernel's workgroup size.
pub(super) fn spirv_kernels(
    module: &naga::Module,
    family: Family,
) -> std::result::Result<Vec<SpirvKernel>, String> {
    use naga::back::spv;
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(module)
    .map_err(|e| format!("{e:?}"))?;
    let options = spv::Options {
        flags: spv::WriterFlags::empty(),
        // Descriptor set = @group, binding = @binding: wgpu's Vulkan backend numbers a
        // layout's bindings 0, 1, ... in order, and the layout's entries are 0, 1, ... (asserted
        // where the layout is made).
        fake_missing_bindings: true,
        bounds_check_policies: naga::proc::BoundsCheckPolicies {
            index: naga::proc::BoundsCheckPolicy::Unchecked,
            buffer: naga::proc::BoundsCheckPolicy::Unchecked,
            image_load: naga::proc::BoundsCheckPolicy::Unchecked,
            binding_array: naga::proc::BoundsCheckPolicy::Unchecked,
        },
        zero_initialize_workgroup_memory: spv::ZeroInitializeWorkgroupMemoryMode::None,
        force_loop_bounding: false,
        emit_int_div_checks: false,
        ..Default::default()
    };
    family
        .kernels()
        .map(|k| {
            let entry = k.entry;
            let pipeline = spv::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: entry.to_string(),
            };
            let size = module
                .entry_points
                .iter()
                .find(|e| e.name == entry)
                .ok_or_else(|| format!("no entry point {entry}"))?
                .workgroup_size;
            let words = spv::write_vec(module, &info, &options, Some(&pipeline))
                .map_err(|e| format!("{entry}: {e}"))?;
            Ok((words, size))
        })
        .collect()
}
