//! The IDX reader (`data::parse_images`, `data::parse_labels`), plain and gzip: every input
//! gives Ok or an error, never a panic, and memory stays bounded by what the input holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|bytes: &[u8]| {
    let name = Path::new("fuzz-input");
    if let Ok((pixels, n, side)) = lenet_gpu::data::parse_images(bytes, name) {
        assert_eq!(pixels.len(), n * side * side);
        assert!(side == 28 || side == 32);
    }
    if let Ok(labels) = lenet_gpu::data::parse_labels(bytes, name) {
        assert!(labels.iter().all(|&l| l <= 9));
    }
});
