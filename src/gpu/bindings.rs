//! What the kernels and the host must agree on, declared once here and generated into the
//! shader header (`shader::header`): the bind-group layout (one `Binding` per entry, which
//! also makes the WGSL declarations, the layout entries and, through an exhaustive match
//! at the one place that binds buffers, the bind-group entries), the `Step` record of each
//! batch and the regions of the `state` buffer.

use crate::model::params::N_PARAMS;
use crate::model::{Loss, Sweep};

/// How a binding is declared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// A uniform buffer of this many bytes; `dynamic`: bound at a per-batch offset.
    Uniform { dynamic: bool, bytes: u64 },
    /// A storage buffer.
    Storage { read_only: bool },
}

const READ: Kind = Kind::Storage { read_only: true };
const READ_WRITE: Kind = Kind::Storage { read_only: false };

/// Declares the bindings once: the `Binding` enum (a binding's number is its place in
/// `Binding::ALL`) and each one's WGSL name, kind, WGSL type and what it holds.
macro_rules! bindings {
    ($( $binding:ident = $name:literal, $kind:expr, $ty:literal, $about:literal; )*) => {
        /// One binding of group 0.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(super) enum Binding { $($binding),* }

        impl Binding {
            /// Every binding, numbered 0, 1, ... in this order.
            pub(super) const ALL: [Binding; [$($name),*].len()] = [$(Binding::$binding),*];

            /// (WGSL name, how it is declared, WGSL type, what it holds).
            const fn declaration(self) -> (&'static str, Kind, &'static str, &'static str) {
                match self { $(Binding::$binding => ($name, $kind, $ty, $about)),* }
            }
        }
    };
}

bindings! {
    Step = "step", Kind::Uniform { dynamic: true, bytes: STEP_BYTES }, "Step",
        "this batch's record";
    State = "state", READ_WRITE, "array<f32>",
        "[params | grad | eps | velocity | hacc], N_PARAMS each";
    Images = "images", READ, "array<u32>", "the split's u8 pixels, four to a word";
    Labels = "labels", READ, "array<u32>", "one per pattern";
    Order = "order", READ, "array<u32>",
        "pattern indices; a batch is order[start .. start + batch]";
    Stats = "stats", READ_WRITE, "array<f32>", "per position in order: (loss, predicted class)";
    Warps = "warps", READ, "array<f32>",
        "per training image, its distortion (Affine: m00 m01 m10 m11 tx ty)";
    Small = "small", Kind::Uniform { dynamic: false, bytes: SMALL_LEN as u64 * 4 },
        "array<vec4<f32>, SMALL_LEN / 4u>",
        "the parameters of C1, S2, C3 and S4 (the first SMALL_PARAMS), the RBF centres, the C3 table";
    Acts = "acts", READ_WRITE, "array<f32>", "(B, ACT_STRIDE): x0 .. y of each pattern";
    Deltas = "deltas", READ_WRITE, "array<f32>",
        "(B, DELTA_STRIDE): d1 .. dy and PART of each pattern";
}

impl Binding {
    pub(super) const fn kind(self) -> Kind {
        self.declaration().1
    }

    /// Its `@binding` number: its place in `ALL`, which `bindings!` lists in the enum's
    /// order.
    pub(super) fn number(self) -> u32 {
        self as u32
    }
}

/// How many bindings are storage buffers.
pub(super) const STORAGE_BUFFERS: u32 = {
    let mut n = 0;
    let mut i = 0;
    while i < Binding::ALL.len() {
        if matches!(Binding::ALL[i].kind(), Kind::Storage { .. }) {
            n += 1;
        }
        i += 1;
    }
    n
};

/// The WGSL declarations of every binding.
pub(super) fn wgsl_bindings() -> String {
    let mut s = String::new();
    for b in Binding::ALL {
        let (name, kind, ty, about) = b.declaration();
        let space = match kind {
            Kind::Uniform { .. } => "<uniform>",
            Kind::Storage { read_only: true } => "<storage, read>",
            Kind::Storage { read_only: false } => "<storage, read_write>",
        };
        s += &format!(
            "@group(0) @binding({}) var{space} {name}: {ty}; // {about}\n",
            b.number()
        );
    }
    s
}

/// The bind-group layout entries of every binding.
pub(super) fn layout_entries() -> Vec<wgpu::BindGroupLayoutEntry> {
    Binding::ALL
        .iter()
        .map(|b| wgpu::BindGroupLayoutEntry {
            binding: b.number(),
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: match b.kind() {
                Kind::Uniform { dynamic, bytes } => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: dynamic,
                    min_binding_size: wgpu::BufferSize::new(bytes),
                },
                Kind::Storage { read_only } => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
            },
            count: None,
        })
        .collect()
}

/// Bind-group entries for every binding, each resource given by `resource`.
pub(super) fn group_entries<'a>(
    resource: impl Fn(Binding) -> wgpu::BindingResource<'a>,
) -> Vec<wgpu::BindGroupEntry<'a>> {
    Binding::ALL
        .iter()
        .map(|&b| wgpu::BindGroupEntry {
            binding: b.number(),
            resource: resource(b),
        })
        .collect()
}

/// Where the C3 table's lists sit in `small`, after the RBF centres (`shader::c3_table`).
pub(super) const C3_TABLE: u32 = super::SMALL_PARAMS + crate::model::N_CENTRES as u32;
/// Floats of the C3 table: 17 link starts, 60 input maps, 60 output maps, 7 starts of the
/// links by input map and those 60 links; padded to whole vec4s.
pub(super) const C3_TABLE_LEN: u32 = (17 + 60 + 60 + 7 + 60u32).next_multiple_of(4);
/// Floats in the uniform buffer `small`: the parameters before C5's, the centres, the table.
pub(super) const SMALL_LEN: u32 = C3_TABLE + C3_TABLE_LEN;

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
    /// 1: apply the SDLM step after the gradient (training batches)
    update: u32,
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
