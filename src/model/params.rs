//! The 60,000 trainable parameters of LeNet-5 in one flat buffer, with named offsets.
//!
//! Gradients, the SDLM Hessian diagonal, step sizes and momentum use the same layout, so
//! the update is one element-wise loop and a checkpoint is one walk over [`TENSORS`].
//!
//! C3 weights are stored compactly: only the 60 links of the connection table, 25 weights
//! each, map by map, and within a map in the order its inputs appear in [`C3_TABLE`].

use rand::{RngExt, SeedableRng};

/// Which S2 maps each C3 map reads (LeCun et al. 1998, table I).
pub const C3_TABLE: [&[usize]; 16] = [
    &[0, 1, 2],
    &[1, 2, 3],
    &[2, 3, 4],
    &[3, 4, 5],
    &[4, 5, 0],
    &[5, 0, 1],
    &[0, 1, 2, 3],
    &[1, 2, 3, 4],
    &[2, 3, 4, 5],
    &[3, 4, 5, 0],
    &[4, 5, 0, 1],
    &[5, 0, 1, 2],
    &[0, 1, 3, 4],
    &[1, 2, 4, 5],
    &[0, 2, 3, 5],
    &[0, 1, 2, 3, 4, 5],
];

/// Number of (C3 map, S2 map) links in the table.
pub const C3_LINKS: usize = 60;

/// Index of the first link of C3 map `o` in the compact weight layout (in links, not weights).
pub const fn c3_link_start(o: usize) -> usize {
    let mut s = 0;
    let mut i = 0;
    while i < o {
        s += C3_TABLE[i].len();
        i += 1;
    }
    s
}

/// One named tensor of the flat buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tensor {
    /// Name in checkpoints (PyTorch style).
    pub name: &'static str,
    /// Offset in the flat buffer.
    pub offset: usize,
    /// Number of values stored in the flat buffer.
    pub len: usize,
    /// Fan-in of the units this tensor feeds, for the initialisation range 2.4/F.
    pub fan_in: usize,
}

macro_rules! layout {
    ($( $konst:ident = $name:literal, $len:expr, $fan:expr; )*) => {
        layout!(@acc 0usize; $( $konst = $name, $len, $fan; )*);
        /// Every tensor, in buffer order.
        pub const TENSORS: [Tensor; layout!(@count $($konst)*)] = [$($konst),*];
    };
    (@acc $off:expr; $konst:ident = $name:literal, $len:expr, $fan:expr; $($rest:tt)*) => {
        pub const $konst: Tensor = Tensor { name: $name, offset: $off, len: $len, fan_in: $fan };
        layout!(@acc $off + $len; $($rest)*);
    };
    (@acc $off:expr;) => {
        /// Total number of trainable parameters.
        pub const N_PARAMS: usize = $off;
    };
    (@count $($x:ident)*) => { <[()]>::len(&[$(layout!(@unit $x)),*]) };
    (@unit $x:ident) => { () };
}

// Fan-in of a C3 unit depends on its map (25 x maps read); FAN_C3 = 0 marks "per map".
layout! {
    C1_W = "c1.weight", 6 * 25, 25;
    C1_B = "c1.bias", 6, 25;
    S2_W = "s2.weight", 6, 4;
    S2_B = "s2.bias", 6, 4;
    C3_W = "c3.weight", C3_LINKS * 25, 0;
    C3_B = "c3.bias", 16, 0;
    S4_W = "s4.weight", 16, 4;
    S4_B = "s4.bias", 16, 4;
    C5_W = "c5.weight", 120 * 16 * 25, 400;
    C5_B = "c5.bias", 120, 400;
    F6_W = "f6.weight", 84 * 120, 120;
    F6_B = "f6.bias", 84, 120;
}

/// The layers that own parameters, for per-layer reports: (name, tensors).
pub const LAYERS: [(&str, [Tensor; 2]); 6] = [
    ("C1", [C1_W, C1_B]),
    ("S2", [S2_W, S2_B]),
    ("C3", [C3_W, C3_B]),
    ("S4", [S4_W, S4_B]),
    ("C5", [C5_W, C5_B]),
    ("F6", [F6_W, F6_B]),
];

impl Tensor {
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len
    }
    pub fn of<'a, T>(&self, buf: &'a [T]) -> &'a [T] {
        &buf[self.range()]
    }
    pub fn of_mut<'a, T>(&self, buf: &'a mut [T]) -> &'a mut [T] {
        &mut buf[self.range()]
    }
}

/// Fan-in of the unit that parameter `i` of the flat buffer feeds.
pub fn fan_in(i: usize) -> usize {
    for t in TENSORS {
        if t.range().contains(&i) {
            if t.fan_in != 0 {
                return t.fan_in;
            }
            let map = if t == C3_W {
                let link = (i - t.offset) / 25;
                (0..16).rev().find(|&o| c3_link_start(o) <= link).unwrap()
            } else {
                i - t.offset
            };
            return 25 * C3_TABLE[map].len();
        }
    }
    panic!("parameter index {i} out of range (N_PARAMS = {N_PARAMS})");
}

/// Initial parameters: each uniform in [-2.4/F, 2.4/F], F the fan-in of its unit, drawn in
/// buffer order from ChaCha8 seeded with `seed`, so every backend starts from the same values.
pub fn init(seed: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..N_PARAMS)
        .map(|i| {
            let r = 2.4 / fan_in(i) as f32;
            rng.random_range(-r..r)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_counts_per_layer() {
        let counts: Vec<usize> = LAYERS.iter().map(|(_, t)| t[0].len + t[1].len).collect();
        assert_eq!(counts, [156, 12, 1516, 32, 48120, 10164]);
        assert_eq!(N_PARAMS, 60_000);
        assert_eq!(F6_B.offset + F6_B.len, N_PARAMS);
        assert_eq!(c3_link_start(16), C3_LINKS);
    }

    #[test]
    fn init_is_seeded_and_in_range() {
        let a = init(7);
        assert_eq!(a, init(7));
        assert_ne!(a, init(8));
        for (i, &w) in a.iter().enumerate() {
            assert!(w.abs() <= 2.4 / fan_in(i) as f32, "param {i} = {w}");
        }
        assert_eq!(fan_in(C3_W.offset), 75);
        assert_eq!(fan_in(C3_B.offset + 15), 150);
        assert_eq!(fan_in(C5_W.offset + 5), 400);
    }
}
