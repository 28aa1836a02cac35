//! `lenet-gpu export`: a trained model in the format the field exchanges (ONNX).

use super::{check_output_file, load_model};
use lenet_gpu::Result;
use lenet_gpu::onnx;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ExportArgs {
    /// The model to export: a checkpoint, a `--checkpoint-dir` folder (its last
    /// checkpoint), or plain safetensors weights with the tensor names of a checkpoint.
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// Write it as an ONNX graph here (written atomically; the folder must exist): input
    /// `input` float32 [N,1,28,28], raw pixels 0-255 with ink high as in MNIST (padding
    /// and scaling are in the graph); outputs `distances` [N,10] (the RBF outputs, the
    /// smallest wins) and `digit` [N] (int64).
    #[arg(long, value_name = "OUT.onnx")]
    onnx: PathBuf,
}

pub fn run(a: ExportArgs) -> Result<()> {
    check_output_file("--onnx", &a.onnx, "lenet.onnx")?;
    let model = load_model(&a.model)?;
    if model.centres_differ() {
        eprintln!(
            "warning: {} holds RBF centres that differ from this build's; exporting with this build's",
            a.model.display()
        );
    }
    model.export_onnx(&a.onnx)?;
    println!(
        "wrote {} from {} (ONNX opset {}, IR {}): input `{}` float32 [N,1,28,28] raw pixels 0-255; \
         outputs `{}` [N,10], `{}` [N]",
        a.onnx.display(),
        model.file().unwrap_or(&a.model).display(),
        onnx::OPSET,
        onnx::IR_VERSION,
        onnx::INPUT,
        onnx::DISTANCES,
        onnx::DIGIT
    );
    Ok(())
}
