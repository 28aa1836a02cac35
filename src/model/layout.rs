//! The per-pattern tensors of one forward and backward pass, in one table: every
//! implementation sizes its buffers from it (the CPU reference's `Workspace`, the fast
//! path's `Block` and `Wide`, the GPU's per-pattern records and the shader constants), and
//! the parity tests walk it. As llm.c's `fill_in_activation_sizes`, for activations what
//! `params::TENSORS` is for parameters.
//!
//! x0 (1,32,32) -C1-> x1 (6,28,28) -S2-> x2 (6,14,14) -C3-> x3 (16,10,10) -S4-> x4 (16,5,5)
//! -C5-> x5 (120) -F6-> x6 (84) -RBF-> y (10). Every x is already squashed. The deltas d1 ..
//! d6, dy have the shapes of x1 .. x6, y: first (or, in the SDLM pass, second) derivatives
//! of the loss with respect to that layer's output, then its pre-activation.

/// One per-pattern tensor: its name (as in the code: `x3`, `d3`) and shape (maps, rows,
/// cols).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activation {
    pub name: &'static str,
    pub shape: [usize; 3],
}

impl Activation {
    const fn new(name: &'static str, shape: [usize; 3]) -> Self {
        Activation { name, shape }
    }

    /// Values per pattern.
    pub const fn len(&self) -> usize {
        self.shape[0] * self.shape[1] * self.shape[2]
    }

    /// Values per map (positions of a feature map, 1 for a dense layer).
    pub const fn map_len(&self) -> usize {
        self.shape[1] * self.shape[2]
    }

    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub const X0: Activation = Activation::new("x0", [1, 32, 32]);
pub const X1: Activation = Activation::new("x1", [6, 28, 28]);
pub const X2: Activation = Activation::new("x2", [6, 14, 14]);
pub const X3: Activation = Activation::new("x3", [16, 10, 10]);
pub const X4: Activation = Activation::new("x4", [16, 5, 5]);
pub const X5: Activation = Activation::new("x5", [120, 1, 1]);
pub const X6: Activation = Activation::new("x6", [84, 1, 1]);
pub const Y: Activation = Activation::new("y", [10, 1, 1]);

pub const D1: Activation = Activation::new("d1", X1.shape);
pub const D2: Activation = Activation::new("d2", X2.shape);
pub const D3: Activation = Activation::new("d3", X3.shape);
pub const D4: Activation = Activation::new("d4", X4.shape);
pub const D5: Activation = Activation::new("d5", X5.shape);
pub const D6: Activation = Activation::new("d6", X6.shape);
pub const DY: Activation = Activation::new("dy", Y.shape);

/// The forward pass's outputs, input first.
pub const ACTIVATIONS: [Activation; 8] = [X0, X1, X2, X3, X4, X5, X6, Y];
/// The backward pass's derivatives, in the same order as the activations they belong to.
pub const DELTAS: [Activation; 7] = [D1, D2, D3, D4, D5, D6, DY];
/// The inputs of the layers with weights, which the SDLM pass squares (x0 .. x5).
pub const SQUARED: [Activation; 6] = [X0, X1, X2, X3, X4, X5];

/// Offset of each tensor of `list` in a record that holds them one after another, each
/// starting on a multiple of `align` values, and the record's length.
pub const fn packed<const N: usize>(list: &[Activation; N], align: usize) -> ([usize; N], usize) {
    let mut off = [0; N];
    let mut end: usize = 0;
    let mut i = 0;
    while i < N {
        off[i] = end.next_multiple_of(align);
        end = off[i] + list[i].len();
        i += 1;
    }
    (off, end)
}

/// `&s.<name>` for layout tensor `a`, in a struct with one field per tensor named as in
/// the table (the reference's `Workspace`, the fast path's `Block`).
macro_rules! field_of {
    ($s:expr, $a:expr) => {
        match $a.name {
            "x0" => &$s.x0,
            "x1" => &$s.x1,
            "x2" => &$s.x2,
            "x3" => &$s.x3,
            "x4" => &$s.x4,
            "x5" => &$s.x5,
            "x6" => &$s.x6,
            "y" => &$s.y,
            "d1" => &$s.d1,
            "d2" => &$s.d2,
            "d3" => &$s.d3,
            "d4" => &$s.d4,
            "d5" => &$s.d5,
            "d6" => &$s.d6,
            "dy" => &$s.dy,
            n => panic!("no tensor {n} in the layout"),
        }
    };
}
pub(crate) use field_of;
