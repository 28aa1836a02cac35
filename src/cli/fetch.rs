//! `lenet-gpu fetch`: download MNIST from public mirrors and verify its SHA-256.

use lenet_gpu::{Result, data, fetch};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct FetchArgs {
    /// Folder to put the files in (default: $LENET_DATA, else data/mnist).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Mirror base URL serving <name>.gz; repeat to try several in order (replaces the
    /// built-in list).
    #[arg(long = "mirror", value_name = "URL")]
    mirrors: Vec<String>,
}

pub fn run(a: FetchArgs) -> Result<()> {
    let dir = a.dir.unwrap_or_else(|| data::data_dir(None));
    let mut opts = fetch::FetchOptions::new(&dir);
    if !a.mirrors.is_empty() {
        opts.mirrors = a.mirrors;
    }
    let done = fetch::fetch(&opts)?;
    for (name, outcome) in done {
        match outcome {
            fetch::FileOutcome::AlreadyValid => println!("{name}: already present and valid"),
            fetch::FileOutcome::Downloaded { mirror } => {
                println!("{name}: downloaded from {mirror}")
            }
        }
    }
    println!("MNIST is ready in {}", dir.display());
    Ok(())
}
