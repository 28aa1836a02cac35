//! lenet-gpu: the original LeNet-5 (LeCun, Bottou, Bengio and Haffner, 1998) trained on
//! MNIST with the paper's SDLM, on the CPU or on any GPU through WGSL compute shaders, as a
//! library. The `lenet-gpu` command line is built on the same front door.
//!
//! # The front door
//!
//! | what | how |
//! |---|---|
//! | load a model, classify a picture or 28x28 pixels | [`Model::load`], [`Model::classify_image`], [`Model::classify_file`], [`Model::classify`] |
//! | train with a configuration, a backend, progress and cancel | [`Mnist::load`], [`Trainer::new`] with a [`TrainConfig`] and a [`DeviceChoice`], [`Trainer::run`], [`Trainer::model`] |
//! | save and load | [`Model::save`] (safetensors, PyTorch's names), [`Model::load`], [`Model::export_onnx`] |
//!
//! # From the dependency to a classified digit
//!
//! The crate is not published; depend on it by path or git in your `Cargo.toml`:
//!
//! ```toml
//! [dependencies]
//! lenet-gpu = { path = "../lenet-gpu" }   # or { git = "<this repository's URL>" }
//! ```
//!
//! Then train a network on part of MNIST (fetched into `data/mnist` on first use;
//! `LENET_DATA` names another folder), keep it, and read a digit with it:
//!
//! ```
//! use lenet_gpu::{DeviceChoice, Mnist, Model, TrainConfig, Trainer};
//! use std::sync::atomic::AtomicBool;
//!
//! // 1. The data: MNIST's four IDX files (plain or .gz; downloaded when the folder lacks
//! //    them), here the first 2,000 training digits.
//! let mnist = Mnist::load_or_fetch(lenet_gpu::data::data_dir(None))?.limit(Some(2000), Some(500))?;
//!
//! // 2. Train one pass with the paper's defaults on the CPU backend (DeviceChoice::gpu()
//! //    takes the best GPU), printing each pass; raising `cancel` stops after a batch.
//! let config = TrainConfig { epochs: 1, ..TrainConfig::default() };
//! let mut trainer = Trainer::new(config, &DeviceChoice::cpu(), mnist)?;
//! let cancel = AtomicBool::new(false);
//! trainer.run(&cancel, |_pass, _done| {}, |report, _| {
//!     println!("pass {}: test error {:.2}%", report.epoch, 100.0 * report.test_error);
//!     Ok(())
//! })?;
//!
//! // 3. Keep it (a safetensors checkpoint PyTorch reads) and load it back.
//! let path = std::env::temp_dir().join(format!("lenet-doc-{}.safetensors", std::process::id()));
//! trainer.model()?.save(&path)?;
//! let model = Model::load(&path)?;
//!
//! // 4. Read a picture of a digit: any PNG or JPEG, prepared as MNIST prepared its own.
//! let answer = model.classify_file("examples/seven.png")?;
//! println!("{} (distances {:?})", answer.digit, answer.distances);
//! assert_eq!(answer.digit, 7);
//! # std::fs::remove_file(&path).ok();
//! # Ok::<(), lenet_gpu::Error>(())
//! ```
//!
//! `examples/classify.rs` does step 4 from the command line: `cargo run --release
//! --example classify -- MODEL PICTURE`.
//!
//! # The rest
//!
//! The modules below are public because the command line and the tests use them. Those
//! marked *Internal* are the implementation (the CPU reference and fast path, the GPU
//! backend, the web page, ...): documented, but with no promise that they stay as they
//! are. [`checkpoint`] and [`onnx`] describe the file formats; [`data`], [`train`] and
//! [`select`] hold types the front door takes.

mod front;

pub use front::{Classification, Mnist, Model, PassEnd, Trainer};
pub use select::{DeviceChoice, RunDevice};
pub use train::{EpochReport, Outcome, Progress, TrainConfig};

pub mod backend;
pub mod bench;
pub mod check;
pub mod checkpoint;
pub mod cpu;
pub mod data;
pub mod distort;
pub mod error;
pub mod fault;
pub mod fetch;
pub mod gpu;
pub mod model;
pub mod onnx;
pub mod predict;
pub mod render;
pub mod select;
pub mod serve;
pub mod train;

pub use error::{Error, Result};
