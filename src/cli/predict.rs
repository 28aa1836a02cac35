//! `lenet-gpu predict`: classify the user's own digit pictures.

use super::load_model;
use lenet_gpu::Result;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct PredictArgs {
    /// The checkpoint to classify with (a file, a checkpoint folder, or plain weights).
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// Print one JSON object per image instead of text.
    #[arg(long)]
    json: bool,
    /// Images of one digit each.
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<PathBuf>,
}

pub fn run(a: PredictArgs) -> Result<ExitCode> {
    let model = load_model(&a.model)?;
    let mut failed = 0;
    for path in &a.images {
        match model.classify_file(path) {
            Ok(p) => {
                if a.json {
                    println!(
                        "{}",
                        serde_json::json!({"file": path.display().to_string(), "digit": p.digit, "distances": p.distances, "warning": p.warning})
                    );
                } else {
                    let d: Vec<String> = p.distances.iter().map(|v| format!("{v:.1}")).collect();
                    println!(
                        "{}: {} (RBF distances to the centres of 0-9, smallest wins: {})",
                        path.display(),
                        p.digit,
                        d.join(" ")
                    );
                    if let Some(w) = &p.warning {
                        eprintln!("warning: {}: {w}", path.display());
                    }
                }
            }
            Err(e) => {
                failed += 1;
                if a.json {
                    println!(
                        "{}",
                        serde_json::json!({"file": path.display().to_string(), "error": e.to_string()})
                    );
                }
                eprintln!("error: {e}");
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
