//! `lenet-gpu visualize`: a test digit as the network sees it, layer by layer.

use super::{DataArgs, load_data, load_model};
use lenet_gpu::{Error, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct VisualizeArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The checkpoint whose weights to show (a file, a checkpoint folder, or plain weights).
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// Which test image (0-based).
    #[arg(long, default_value_t = 0)]
    index: usize,
    /// The PNG to write.
    #[arg(long, value_name = "PNG")]
    out: PathBuf,
}

pub fn run(a: VisualizeArgs) -> Result<()> {
    let model = load_model(&a.model)?;
    let (_, test_set) = load_data(&a.data)?;
    if a.index >= test_set.len() {
        return Err(Error::Config(format!(
            "--index {} is past the {} test images",
            a.index,
            test_set.len()
        )));
    }
    let caption = format!("test digit {}, label {}", a.index, test_set.labels[a.index]);
    lenet_gpu::render::feature_maps_captioned(
        model.params(),
        &test_set.digit28(a.index),
        Some(&caption),
        &a.out,
    )?;
    println!(
        "wrote {} (test image {}, label {})",
        a.out.display(),
        a.index,
        test_set.labels[a.index]
    );
    Ok(())
}
