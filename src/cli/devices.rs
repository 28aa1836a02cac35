//! `lenet-gpu devices`: every GPU adapter with the limits that matter here; `--check` runs
//! both kernel families on each against the CPU reference (`lenet_gpu::check`); with the
//! hidden `--probe`, one line per adapter for `select`'s child-process probe.

use lenet_gpu::check::{self, FamilyCheck};
use lenet_gpu::gpu::{self, Family, GpuBackend};
use lenet_gpu::model::Loss;
use lenet_gpu::{Error, Result};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct DevicesArgs {
    /// Check both kernel families on every adapter (or the one --adapter names) against the
    /// CPU reference, tensor by tensor (the test suite's MSE, MAP and SDLM modes on a full
    /// and a partial batch, then an update), and print a table for a bug report: adapter,
    /// driver, API, family, each kernel's worst error against its tolerance, verdict, time.
    /// Exits 1 when a family fails.
    #[arg(long)]
    check: bool,
    /// With --check: only the adapter whose name contains NAME (case-insensitive).
    #[arg(long, value_name = "NAME", requires = "check")]
    adapter: Option<String>,
    /// With --check: one JSON object per family and adapter, for scripts.
    #[arg(long, requires = "check")]
    json: bool,
    /// One line per adapter (software|hardware, API, name), for `--backend gpu`'s probe.
    #[arg(long, hide = true)]
    probe: bool,
}

pub fn run(a: DevicesArgs) -> Result<ExitCode> {
    if a.probe {
        // The child side of `gpu::probe_in_child`: one adapter a line.
        for l in gpu::probe_lines() {
            println!("{l}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if a.check {
        return check_all(&a);
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
    Ok(ExitCode::SUCCESS)
}

/// `--check`: every family on every adapter asked for.
fn check_all(a: &DevicesArgs) -> Result<ExitCode> {
    let wanted = a.adapter.as_ref().map(|n| n.to_lowercase());
    let adapters: Vec<wgpu::Adapter> = gpu::adapters(None)
        .into_iter()
        .filter(|ad| {
            wanted
                .as_ref()
                .is_none_or(|n| ad.get_info().name.to_lowercase().contains(n))
        })
        .collect();
    if adapters.is_empty() {
        return Err(Error::NoAdapter(match &a.adapter {
            Some(n) => format!("no GPU adapter's name contains {n:?}; `lenet-gpu devices` lists them"),
            None => "no GPU adapter found; `apt-get install mesa-vulkan-drivers` (Debian/Ubuntu) gives lavapipe".into(),
        }));
    }
    let sample = Arc::new(check::synthetic(check::PATTERNS));
    let mut all_passed = true;
    if !a.json {
        println!(
            "| adapter | API | driver | family | kernel | worst tensor | error / tolerance | verdict | time |"
        );
        println!("|---|---|---|---|---|---|---:|---|---:|");
    }
    for adapter in &adapters {
        let info = adapter.get_info();
        for family in Family::ALL {
            let result = GpuBackend::new(
                adapter.clone(),
                sample.clone(),
                sample.clone(),
                Loss::Map { j: 5.0 },
                0.0,
                check::PATTERNS,
                family,
            )
            .and_then(|mut b| check::run(&mut b, &sample, check::Depth::Full));
            all_passed &= result.as_ref().is_ok_and(FamilyCheck::passed);
            if a.json {
                println!("{}", json(&info, family, &result));
            } else {
                print_rows(&info, family, &result);
            }
        }
    }
    if !a.json {
        println!(
            "(error / tolerance: the largest |GPU - CPU reference| of the tensors a kernel writes, \
             over {} + {} relative; at most 1 passes)",
            format_args!("{:e} x the tensor's largest value", check::ABS),
            format_args!("{:e}", check::REL)
        );
    }
    Ok(if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_rows(info: &wgpu::AdapterInfo, family: Family, result: &Result<FamilyCheck>) {
    let driver = format!("{} {}", info.driver, info.driver_info);
    let head = format!(
        "| {} | {} | {} | {} ",
        info.name,
        gpu::api_name(info.backend),
        driver.trim(),
        family.name()
    );
    match result {
        Err(e) => {
            // One table cell: no column bars or line breaks from the message.
            let e = e.to_string().replace('|', "/").replace('\n', " ");
            println!("{head}| - | - | - | error: {e} | - |")
        }
        Ok(c) => {
            for (i, k) in c.kernels.iter().enumerate() {
                println!(
                    "{head}| {} | {} | {:.3} | {} | {} |",
                    k.kernel,
                    k.worst.tensor,
                    k.worst.ratio,
                    if k.worst.passed() { "pass" } else { "FAIL" },
                    if i == 0 {
                        format!("{:.2} s", c.seconds)
                    } else {
                        String::new()
                    }
                );
            }
        }
    }
}

fn json(
    info: &wgpu::AdapterInfo,
    family: Family,
    result: &Result<FamilyCheck>,
) -> serde_json::Value {
    let mut v = serde_json::json!({
        "adapter": info.name,
        "api": gpu::api_name(info.backend),
        "driver": format!("{} {}", info.driver, info.driver_info).trim(),
        "family": family.name(),
    });
    match result {
        Err(e) => {
            v["verdict"] = "error".into();
            v["error"] = e.to_string().into();
        }
        Ok(c) => {
            v["verdict"] = if c.passed() { "pass" } else { "fail" }.into();
            v["seconds"] = c.seconds.into();
            v["failure"] = c.failure().into();
            v["kernels"] = c
                .kernels
                .iter()
                .map(|k| {
                    serde_json::json!({
                        "kernel": k.kernel,
                        "worst_tensor": k.worst.tensor,
                        "error_over_tolerance": if k.worst.ratio.is_nan() { None } else { Some(k.worst.ratio) },
                        "max_abs_error": if k.worst.max_diff.is_nan() { None } else { Some(k.worst.max_diff) },
                        "largest_value": k.worst.scale,
                        "verdict": if k.worst.passed() { "pass" } else { "fail" },
                    })
                })
                .collect();
        }
    }
    v
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
