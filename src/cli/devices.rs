//! `lenet-gpu devices`: every GPU adapter with the limits that matter here; with the
//! hidden `--probe`, one line per adapter for `select`'s child-process probe.

use lenet_gpu::{Result, gpu};

#[derive(clap::Args)]
pub struct DevicesArgs {
    /// One line per adapter (software|hardware, API, name), for `--backend gpu`'s probe.
    #[arg(long, hide = true)]
    probe: bool,
}

pub fn run(a: DevicesArgs) -> Result<()> {
    if a.probe {
        // The child side of `gpu::probe_in_child`: one adapter a line.
        for l in gpu::probe_lines() {
            println!("{l}");
        }
        return Ok(());
    }
    let all = gpu::describe_all();
    if all.is_empty() {
        println!(
            "no GPU adapter found; `apt-get install mesa-vulkan-drivers` (Debian/Ubuntu) gives lavapipe, or use --backend cpu"
        );
    }
    for d in all {
        println!("{d}");
    }
    Ok(())
}
