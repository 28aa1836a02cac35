//! lenet-gpu: the original LeNet-5 (LeCun et al., 1998) trained on MNIST.

pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod cpu;
pub mod data;
pub mod distort;
pub mod error;
pub mod fault;
pub mod fetch;
pub mod gpu;
pub mod model;
pub mod predict;
pub mod render;
pub mod select;
pub mod serve;
pub mod train;

pub use error::{Error, Result};
