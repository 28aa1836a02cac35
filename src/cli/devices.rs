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
    let all: Vec<String> = gpu::adapters(None).iter().map(describe).collect();
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

/// An adapter, with the limits that matter to the trainer.
fn describe(a: &wgpu::Adapter) -> String {
    let i = a.get_info();
    let l = a.limits();
    format!(
        "{}\n  backend {:?}, type {:?}, driver {} {}\n  limits: storage buffer binding {} MiB, \
         storage buffers per stage {}, workgroup size x {}, invocations per workgroup {}, \
         workgroups per dimension {}",
        i.name,
        i.backend,
        i.device_type,
        i.driver,
        i.driver_info,
        l.max_storage_buffer_binding_size / (1 << 20),
        l.max_storage_buffers_per_shader_stage,
        l.max_compute_workgroup_size_x,
        l.max_compute_invocations_per_workgroup,
        l.max_compute_workgroups_per_dimension
    )
}
