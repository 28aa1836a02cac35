//! Portability: both families' modules through the translations wgpu makes for each
//! graphics API (naga's SPIR-V for Vulkan, MSL for Metal, HLSL for DX12), after validation
//! with no capability beyond WebGPU's baseline; the SPIR-V also through `spirv-val`
//! (Debian's spirv-tools). Tests only.

#[cfg(test)]
mod tests {
    use super::super::kernels::Family;
    use super::super::shader::module_source;
    use naga::back::{hlsl, msl, spv};
    use naga::valid::{Capabilities, ValidationFlags, Validator};

    /// `spirv-val`, or why it cannot run; with LENET_REQUIRE_SPIRV_VAL=1 (as in CI) a
    /// missing one fails the test.
    fn spirv_val() -> Option<&'static str> {
        let found = std::process::Command::new("spirv-val")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        let required = std::env::var("LENET_REQUIRE_SPIRV_VAL").is_ok_and(|v| v == "1");
        assert!(
            found || !required,
            "LENET_REQUIRE_SPIRV_VAL=1 but no spirv-val on PATH (apt-get install spirv-tools)"
        );
        if !found {
            println!(
                "spirv-val not found (apt-get install spirv-tools): SPIR-V checked by naga only"
            );
        }
        found.then_some("spirv-val")
    }

    #[test]
    fn every_module_translates_for_vulkan_metal_and_dx12() {
        let val = spirv_val();
        let dir = std::env::temp_dir().join(format!("lenet-spirv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for family in Family::ALL {
            let what = format!("{family:?} kernels");
            let code = module_source(family);
            let module = naga::front::wgsl::parse_str(&code)
                .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(&code)));
            let info = Validator::new(ValidationFlags::all(), Capabilities::empty())
                .validate(&module)
                .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(&code)));

            // Vulkan: one SPIR-V module per kernel, as the backend hands to the driver.
            let mut spirv_bytes = 0;
            for k in family.kernels() {
                let pipeline = spv::PipelineOptions {
                    shader_stage: naga::ShaderStage::Compute,
                    entry_point: k.entry.to_string(),
                };
                let words =
                    spv::write_vec(&module, &info, &spv::Options::default(), Some(&pipeline))
                        .unwrap_or_else(|e| panic!("{what}: SPIR-V of {}: {e}", k.entry));
                spirv_bytes += words.len() * 4;
                if let Some(val) = val {
                    let f = dir.join(format!("{}.spv", k.entry));
                    std::fs::write(&f, bytemuck::cast_slice::<u32, u8>(&words)).unwrap();
                    let out = std::process::Command::new(val)
                        .args(["--target-env", "vulkan1.1"])
                        .arg(&f)
                        .output()
                        .unwrap();
                    assert!(
                        out.status.success(),
                        "{what}: spirv-val rejects {}: {}",
                        k.entry,
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }

            // Metal: MSL 2.1 (macOS 10.14, iOS 12), every entry point in one library.
            let msl_options = msl::Options {
                lang_version: (2, 1),
                ..Default::default()
            };
            let (msl_code, _) = msl::write_string(
                &module,
                &info,
                &msl_options,
                &msl::PipelineOptions::default(),
            )
            .unwrap_or_else(|e| panic!("{what}: MSL: {e}"));

            // DX12: HLSL shader model 5.1, every entry point.
            let mut hlsl_code = String::new();
            hlsl::Writer::new(
                &mut hlsl_code,
                &hlsl::Options::default(),
                &hlsl::PipelineOptions::default(),
            )
            .write(&module, &info, None)
            .unwrap_or_else(|e| panic!("{what}: HLSL: {e}"));

            println!(
                "{what}: WGSL {} KB, SPIR-V {} KB ({} modules), MSL {} KB, HLSL {} KB",
                code.len() / 1024,
                spirv_bytes / 1024,
                family.kernels().count(),
                msl_code.len() / 1024,
                hlsl_code.len() / 1024
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// WebGPU's baseline limits, which both families ask for: at most
    /// 256 invocations and 16 KiB of workgroup memory per workgroup (maxComputeInvocations
    /// PerWorkgroup, maxComputeWorkgroupStorageSize). naga does not check these; this test
    /// adds up the workgroup variables each entry point uses.
    #[test]
    fn gpu_families_fit_baseline_workgroup_limits() {
        for family in Family::ALL {
            let code = module_source(family);
            let module = naga::front::wgsl::parse_str(&code).unwrap();
            let info = Validator::new(ValidationFlags::all(), Capabilities::empty())
                .validate(&module)
                .unwrap();
            for (i, e) in module.entry_points.iter().enumerate() {
                let uses = info.get_entry_point(i);
                let bytes: u32 = module
                    .global_variables
                    .iter()
                    .filter(|(h, v)| {
                        v.space == naga::AddressSpace::WorkGroup && !uses[*h].is_empty()
                    })
                    .map(|(_, v)| module.types[v.ty].inner.size(module.to_ctx()))
                    .sum();
                let invocations: u32 = e.workgroup_size.iter().product();
                println!(
                    "{family:?} {}: {invocations} invocations, {bytes} B of workgroup memory",
                    e.name
                );
                assert!(invocations <= 256, "{}: {invocations} invocations", e.name);
                assert!(bytes <= 16384, "{}: {bytes} B of workgroup memory", e.name);
            }
        }
    }
}
