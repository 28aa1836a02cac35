//! What the kernels and the host must agree on, declared once here and generated into the
//! shader header (`shader::header`): the bind-group layout (one table of bindings, which
//! also makes the WGSL declarations, the layout entries and the bind-group entries), the
//! `Step` record of each batch and the regions of the `state` buffer.

use super::*;

/// How a binding is declared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// A uniform buffer; `dynamic`: bound at a per-batch offset.
    Uniform { dynamic: bool },
    /// A storage buffer.
    Storage { read_only: bool },
    /// A read-write rgba32float 2-D storage texture.
    Texture,
}

/// One binding of group 0: its WGSL name and type, how it is declared, and what it holds.
pub(super) struct Binding {
    pub name: &'static str,
    pub kind: Kind,
    /// The WGSL type (may use the header's constants).
    pub ty: &'static str,
    pub about: &'static str,
}

const fn binding(name: &'static str, kind: Kind, ty: &'static str, about: &'static str) -> Binding {
    Binding {
        name,
        kind,
        ty,
        about,
    }
}

const READ: Kind = Kind::Storage { read_only: true };
const READ_WRITE: Kind = Kind::Storage { read_only: false };

/// Every kernel's bindings, then those of the storage in use (`store_bindings`).
pub(super) const COMMON_BINDINGS: [Binding; 8] = [
    binding(
        "step",
        Kind::Uniform { dynamic: true },
        "Step",
        "this batch's record",
    ),
    binding(
        "state",
        READ_WRITE,
        "array<f32>",
        "[params | grad | eps | velocity | hacc], N_PARAMS each",
    ),
    binding(
        "images",
        READ,
        "array<u32>",
        "the split's u8 pixels, four to a word",
    ),
    binding("labels", READ, "array<u32>", "one per pattern"),
    binding(
        "order",
        READ,
        "array<u32>",
        "pattern indices; a batch is order[start .. start + batch]",
    ),
    binding(
        "stats",
        READ_WRITE,
        "array<f32>",
        "per position in order: (loss, predicted class)",
    ),
    binding(
        "warps",
        READ,
        "array<f32>",
        "per training image, its distortion (Affine: m00 m01 m10 m11 tx ty)",
    ),
    binding(
        "small",
        Kind::Uniform { dynamic: false },
        "array<vec4<f32>, SMALL_LEN / 4u>",
        "the parameters of C1, S2, C3 and S4 (the first SMALL_PARAMS), then the RBF centres from RBF_CENTERS",
    ),
];

/// Activations, deltas and (textures only) the parameters' second home.
pub(super) fn store_bindings(reads: Reads) -> &'static [Binding] {
    const TEXTURES: [Binding; 3] = [
        binding(
            "acts_t",
            Kind::Texture,
            "texture_storage_2d<rgba32float, read_write>",
            "(B, ACT_STRIDE / 4)",
        ),
        binding(
            "deltas_t",
            Kind::Texture,
            "texture_storage_2d<rgba32float, read_write>",
            "(B, DELTA_STRIDE / 4)",
        ),
        binding(
            "params_t",
            Kind::Texture,
            "texture_storage_2d<rgba32float, read_write>",
            "(PARAM_ROWS, 64)",
        ),
    ];
    const BUFFERS: [Binding; 2] = [
        binding(
            "acts_v",
            READ_WRITE,
            "array<vec4<f32>>",
            "(B, ACT_STRIDE / 4)",
        ),
        binding(
            "deltas_v",
            READ_WRITE,
            "array<vec4<f32>>",
            "(B, DELTA_STRIDE / 4)",
        ),
    ];
    match reads {
        Reads::Textures => &TEXTURES,
        Reads::Storage => &BUFFERS,
    }
}

/// All bindings for `reads`, numbered 0, 1, ... in this order. (wgpu's Vulkan backend
/// numbers descriptor bindings by their order in the layout, and the SPIR-V handed to it
/// keeps the WGSL numbers: the two agree because both come from this list.)
pub(super) fn bindings(reads: Reads) -> impl Iterator<Item = (u32, &'static Binding)> {
    COMMON_BINDINGS
        .iter()
        .chain(store_bindings(reads))
        .enumerate()
        .map(|(i, b)| (i as u32, b))
}

/// The WGSL declarations of every binding.
pub(super) fn wgsl_bindings(reads: Reads) -> String {
    let mut s = String::new();
    for (i, b) in bindings(reads) {
        let space = match b.kind {
            Kind::Uniform { .. } => "<uniform>",
            Kind::Storage { read_only: true } => "<storage, read>",
            Kind::Storage { read_only: false } => "<storage, read_write>",
            Kind::Texture => "",
        };
        s += &format!(
            "@group(0) @binding({i}) var{space} {}: {}; // {}\n",
            b.name, b.ty, b.about
        );
    }
    s
}

/// The bind-group layout entries of every binding.
pub(super) fn layout_entries(reads: Reads) -> Vec<wgpu::BindGroupLayoutEntry> {
    bindings(reads)
        .map(|(i, b)| wgpu::BindGroupLayoutEntry {
            binding: i,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: match b.kind {
                Kind::Uniform { dynamic } => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: dynamic,
                    min_binding_size: wgpu::BufferSize::new(if dynamic {
                        STEP_BYTES
                    } else {
                        SMALL_LEN as u64 * 4
                    }),
                },
                Kind::Storage { read_only } => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                Kind::Texture => wgpu::BindingType::StorageTexture {
                    access: wgpu::StorageTextureAccess::ReadWrite,
                    format: wgpu::TextureFormat::Rgba32Float,
                    view_dimension: wgpu::TextureViewDimension::D2,
                },
            },
            count: None,
        })
        .collect()
}

/// Bind-group entries for every binding of `reads`, each resource found by its name.
pub(super) fn group_entries<'a>(
    reads: Reads,
    mut resource: impl FnMut(&str) -> wgpu::BindingResource<'a>,
) -> Vec<wgpu::BindGroupEntry<'a>> {
    bindings(reads)
        .map(|(i, b)| wgpu::BindGroupEntry {
            binding: i,
            resource: resource(b.name),
        })
        .collect()
}

/// Floats in the uniform buffer `small`: the parameters before C5's, then the centres.
pub(super) const SMALL_LEN: u32 = SMALL_PARAMS + N_CENTRES as u32;

/// Declares the per-batch record once, as the Rust struct and its WGSL twin (`STEP_WGSL`):
/// fields of `u32` and `f32` only, so both have the same layout.
macro_rules! step_record {
    ($( #[doc = $doc:literal] $field:ident: $ty:ident, )*) => {
        /// The uniform record of one batch (`step` in the kernels).
        #[repr(C)]
        #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
        pub(super) struct Step { $( #[doc = $doc] pub $field: $ty, )* }

        /// `Step` in WGSL.
        pub(super) const STEP_WGSL: &str = concat!(
            "struct Step {\n",
            $( "    ", stringify!($field), ": ", stringify!($ty), ", //", $doc, "\n", )*
            "}\n"
        );
    };
}

step_record! {
    /// first position of this batch in `order`
    start: u32,
    /// patterns in this batch
    batch: u32,
    /// the sweep: 0 first derivatives (backward), 1 SDLM second derivatives (hessian)
    mode: u32,
    /// 0: mse, 1: map
    loss: u32,
    /// the MAP criterion's constant j
    map_j: f32,
    /// update: v = momentum * v + g
    momentum: f32,
    /// image side, 28 or 32
    side: u32,
    /// 1: warp each training image by its entry in `warps` (train --distort)
    distort: u32,
}

/// Bytes of one `Step`.
pub(super) const STEP_BYTES: u64 = std::mem::size_of::<Step>() as u64;

impl Step {
    /// The record's code for a sweep.
    pub(super) fn mode(sweep: Sweep) -> u32 {
        match sweep {
            Sweep::Backward => 0,
            Sweep::Hessian => 1,
        }
    }

    /// The record's (loss, map_j) for a loss.
    pub(super) fn loss(loss: Loss) -> (u32, f32) {
        match loss {
            Loss::Mse => (0, 0.0),
            Loss::Map { j } => (1, j as f32),
        }
    }
}

/// The regions of the `state` buffer, N_PARAMS floats each, in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Region {
    /// The parameters (`P_OFF` in WGSL).
    Params,
    /// The batch gradient (`G_OFF`).
    Grad,
    /// The SDLM step sizes (`E_OFF`).
    Eps,
    /// The momentum term (`V_OFF`).
    Velocity,
    /// The second-derivative sums of an SDLM estimate (`H_OFF`).
    Hacc,
}

impl Region {
    pub(super) const ALL: [Region; 5] = [
        Region::Params,
        Region::Grad,
        Region::Eps,
        Region::Velocity,
        Region::Hacc,
    ];

    /// The WGSL constant of its offset.
    pub(super) const fn wgsl(self) -> &'static str {
        match self {
            Region::Params => "P_OFF",
            Region::Grad => "G_OFF",
            Region::Eps => "E_OFF",
            Region::Velocity => "V_OFF",
            Region::Hacc => "H_OFF",
        }
    }

    /// Offset in floats.
    pub(super) const fn offset(self) -> u64 {
        self as u64 * N_PARAMS as u64
    }

    /// Offset in bytes.
    pub(super) const fn byte_offset(self) -> u64 {
        self.offset() * 4
    }
}

/// Floats in the state buffer.
pub(super) const STATE_LEN: u64 = Region::ALL.len() as u64 * N_PARAMS as u64;
