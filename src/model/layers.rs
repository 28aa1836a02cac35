//! The seven layers as the arithmetic counts see them: each one's inputs, outputs and
//! multiply-adds per pattern, once, for `bench`'s GFLOP/s (`bench::TRAIN_FLOP_PER_PATTERN`)
//! and the GPU kernels' per-kernel counts (`gpu::costs`).

use super::params::{C3_LINKS, LAYERS, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    C1,
    S2,
    C3,
    S4,
    C5,
    F6,
    Rbf,
}

impl Layer {
    pub const ALL: [Layer; 7] = [
        Layer::C1,
        Layer::S2,
        Layer::C3,
        Layer::S4,
        Layer::C5,
        Layer::F6,
        Layer::Rbf,
    ];

    /// Its parameter tensors (weight, bias) from `params::LAYERS`, in whose order the first
    /// six are; none for the RBF layer, whose centres are fixed.
    pub fn tensors(self) -> &'static [Tensor] {
        match self {
            Layer::Rbf => &[],
            l => &LAYERS[l as usize].1,
        }
    }

    /// (inputs, outputs, multiply-adds) of one pattern's forward pass: C1's 6 maps of 28x28
    /// with 25 taps, S2's 2x2 sums, C3's 60 links x 10x10 x 25, S4's sums, C5 120x400, F6
    /// 84x120, the RBF units 10x84. The input gradient and the weight gradient take as many
    /// multiply-adds.
    pub const fn shape(self) -> (u64, u64, u64) {
        match self {
            Layer::C1 => (1024, 4704, 4704 * 25),
            Layer::S2 => (4704, 1176, 1176 * 4),
            Layer::C3 => (1176, 1600, C3_LINKS as u64 * 100 * 25),
            Layer::S4 => (1600, 400, 400 * 4),
            Layer::C5 => (400, 120, 400 * 120),
            Layer::F6 => (120, 84, 120 * 84),
            Layer::Rbf => (84, 10, 84 * 10),
        }
    }
}

/// Multiply-adds of one pattern's forward pass, every layer's (squashing left out).
pub const FORWARD_MACS: u64 = {
    let mut sum = 0;
    let mut i = 0;
    while i < Layer::ALL.len() {
        sum += Layer::ALL[i].shape().2;
        i += 1;
    }
    sum
};

#[cfg(test)]
mod tests {
    /// The figure `bench` divides by: 332,824 multiply-adds forward, 1.76 MFLOP a training
    /// pattern.
    #[test]
    fn forward_multiply_adds_from_the_layer_shapes() {
        assert_eq!(super::FORWARD_MACS, 332_824);
        assert_eq!(crate::bench::TRAIN_FLOP_PER_PATTERN, 1_761_744);
    }
}
