//! `lenet-gpu plot`: redraw the learning curve of a `train --log` file.

use lenet_gpu::Result;
use lenet_gpu::train::log::read_log;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct PlotArgs {
    /// A log written by `train --log` (CSV or JSON lines).
    log: PathBuf,
    /// The PNG to write (default: the log's name with .png).
    #[arg(long, value_name = "PNG")]
    out: Option<PathBuf>,
}

pub fn run(a: PlotArgs) -> Result<()> {
    let out = a.out.unwrap_or_else(|| a.log.with_extension("png"));
    lenet_gpu::render::learning_curve(&read_log(&a.log)?, &out)?;
    println!("wrote {}", out.display());
    Ok(())
}
