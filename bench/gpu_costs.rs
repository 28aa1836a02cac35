//! What memory accesses, arithmetic and passes cost on a GPU adapter: the measurements
//! behind the way the kernels in `shaders/` are written (see shaders/README.md).
//!
//! `cargo run --release --example gpu_costs [-- --cpu-adapter] [-- --adapter NAME]`
//!
//! Each probe is a compute kernel whose 16,384 invocations (256 workgroups of 64) each do
//! 256 of one operation; the time per dispatch (median of 5 after one warm-up) divided by
//! 16,384 x 256 is the cost of one operation in one invocation.
use std::time::Instant;
use wgpu::util::DeviceExt;

const INVOCATIONS: u32 = 64 * 256;
const OPS: f64 = 256.0;

/// One probe: a name and the WGSL statements that accumulate into `acc` (the invocation's
/// index is `i`, its local index `lid`).
struct Probe {
    name: &'static str,
    body: String,
}

fn probes() -> Vec<Probe> {
    let unrolled = |f: &dyn Fn(usize) -> String| (0..256).map(f).collect::<Vec<_>>().join("\n");
    // 256 multiply-adds into `n` accumulators held in a function-local array.
    let mac = |n: usize| {
        let mut b = format!("var a: array<f32, {n}>; var x: array<f32, {}>;\n", n + 1);
        for j in 0..=n {
            b += &format!("x[{j}] = f32(i + {j}u);\n");
        }
        for j in 0..n {
            b += &format!("a[{j}] = 0.0;\n");
        }
        b += &format!(
            "for (var r = 0u; r < {}u; r++) {{ let w = f32(r) * 0.5;\n",
            256 / n
        );
        for j in 0..n {
            b += &format!("a[{j}] += w * x[{}];\n", j + 1);
        }
        b += "}\n";
        for j in 0..n {
            b += &format!("acc += a[{j}];\n");
        }
        b
    };
    let p = |name, body: &str| Probe {
        name,
        body: body.to_string(),
    };
    vec![
        p(
            "storage load, neighbouring invocations 1 KB apart",
            "for (var k = 0u; k < 256u; k++) { acc += data[i * 256u + k]; }",
        ),
        p(
            "storage load, same address in every invocation (loop index)",
            "for (var k = 0u; k < 256u; k++) { acc += data[k]; }",
        ),
        Probe {
            name: "storage load, constant address",
            body: unrolled(&|k| format!("acc += data[{k}u];")),
        },
        p(
            "storage load of a vec4 (cost per float)",
            "for (var k = 0u; k < 64u; k++) { let v = data4[i * 64u + k]; acc += v.x + v.y + v.z + v.w; }",
        ),
        p(
            "workgroup memory load",
            "for (var k = 0u; k < 256u; k++) { acc += shared_mem[(k + lid) % 256u]; }",
        ),
        p(
            "uniform load, address differs between invocations",
            "for (var k = 0u; k < 256u; k++) { acc += uni[(k + i) % 1024u][k % 4u]; }",
        ),
        p(
            "uniform load, loop index",
            "for (var k = 0u; k < 256u; k++) { acc += uni[k / 4u][k % 4u]; }",
        ),
        Probe {
            name: "uniform load, constant index",
            body: unrolled(&|k| format!("acc += uni[{}u][{}u];", k / 4, k % 4)),
        },
        p(
            "texel fetch rgba32float (cost per float)",
            "for (var k = 0u; k < 64u; k++) { let v = textureLoad(tex, vec2<u32>(k, i % 4096u), 0); acc += v.x + v.y + v.z + v.w; }",
        ),
        p(
            "storage store",
            "for (var k = 0u; k < 256u; k++) { out[(k * 64u + i) % 16384u] = f32(k); }",
        ),
        p(
            "storage store of a vec4 (cost per float)",
            "for (var k = 0u; k < 64u; k++) { out4[(k * 64u + i) % 16384u] = vec4<f32>(f32(k)); }",
        ),
        Probe {
            name: "multiply-add, 16 accumulators",
            body: mac(16),
        },
        Probe {
            name: "multiply-add, 128 accumulators",
            body: mac(128),
        },
    ]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let choice = lenet_gpu::gpu::AdapterChoice {
        cpu: args.iter().any(|a| a == "--cpu-adapter"),
        name: args
            .iter()
            .position(|a| a == "--adapter")
            .and_then(|i| args.get(i + 1).cloned()),
        ..Default::default()
    };
    let adapter = match lenet_gpu::gpu::pick(&choice) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let info = adapter.get_info();
    println!(
        "{} ({:?}, {} {})",
        info.name, info.backend, info.driver, info.driver_info
    );
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))
            .expect("open the adapter");

    let data = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("data"),
        contents: bytemuck::cast_slice(&vec![1.0f32; (INVOCATIONS * 256) as usize]),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    });
    let uni = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("uniforms"),
        contents: bytemuck::cast_slice(&vec![1.0f32; 4096]),
        usage: wgpu::BufferUsages::UNIFORM,
    });
    let out = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("out"),
        size: 16384 * 16,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let texture = |label, width, usage| {
        device.create_texture(&wgpu::TextureDescriptor {
            label: Some(label),
            size: wgpu::Extent3d {
                width,
                height: 4096,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba32Float,
            usage,
            view_formats: &[],
        })
    };
    let tex = texture(
        "tex",
        1176,
        wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
    );
    let tex_view = tex.create_view(&Default::default());

    println!("\nper operation and invocation:");
    for probe in probes() {
        // Every binding is used (behind a condition that never holds), so that one bind
        // group fits every probe's automatic layout.
        let src = format!(
            "@group(0) @binding(0) var<storage, read> data: array<f32>;
@group(0) @binding(1) var<storage, read> data4: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> uni: array<vec4<f32>, 1024>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> out4: array<vec4<f32>>;
@group(0) @binding(5) var tex: texture_2d<f32>;
var<workgroup> shared_mem: array<f32, 256>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{
    let i = gid.x;
    var acc = 0.0;
    {}
    if (acc == 12345.0) {{
        out[i] = acc + data[0] + data4[0].x + uni[0].x + shared_mem[0] + textureLoad(tex, vec2<u32>(0u, 0u), 0).x;
        out4[i] = vec4<f32>(acc);
    }}
}}",
            probe.body
        );
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(probe.name),
            source: wgpu::ShaderSource::Wgsl(src.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(probe.name),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(probe.name),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: data.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: data.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: uni.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: out.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: out.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 5,
                    resource: wgpu::BindingResource::TextureView(&tex_view),
                },
            ],
        });
        let seconds = median_time(&device, &queue, |enc| {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(INVOCATIONS / 64, 1, 1);
        });
        println!(
            "  {:62} {:6.3} ns",
            probe.name,
            seconds * 1e9 / (INVOCATIONS as f64 * OPS)
        );
    }

    println!("\nfixed costs:");
    let empty = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("empty"),
        source: wgpu::ShaderSource::Wgsl("@compute @workgroup_size(64) fn main() {}".into()),
    });
    let empty = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("empty"),
        layout: None,
        module: &empty,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    for width in [0u32, 8, 1176] {
        let seconds = median_time(&device, &queue, |enc| {
            for _ in 0..100 {
                {
                    let mut pass = enc.begin_compute_pass(&Default::default());
                    pass.set_pipeline(&empty);
                    pass.dispatch_workgroups(1, 1, 1);
                }
                if width > 0 {
                    enc.copy_buffer_to_texture(
                        wgpu::TexelCopyBufferInfo {
                            buffer: &data,
                            layout: wgpu::TexelCopyBufferLayout {
                                offset: 0,
                                bytes_per_row: Some(2048 * 16),
                                rows_per_image: None,
                            },
                        },
                        wgpu::TexelCopyTextureInfo {
                            texture: &tex,
                            mip_level: 0,
                            origin: wgpu::Origin3d::ZERO,
                            aspect: wgpu::TextureAspect::All,
                        },
                        wgpu::Extent3d {
                            width,
                            height: 256,
                            depth_or_array_layers: 1,
                        },
                    );
                }
            }
        }) / 100.0;
        let what = if width == 0 {
            "compute pass with one empty dispatch".to_string()
        } else {
            format!("... then a buffer-to-texture copy of {width} texels x 256 rows")
        };
        println!("  {what:62} {:6.1} us", seconds * 1e6);
    }
}

/// Median wall time of 5 submissions of what `encode` records (after one warm-up).
fn median_time(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    encode: impl Fn(&mut wgpu::CommandEncoder),
) -> f64 {
    let run = || {
        let mut enc = device.create_command_encoder(&Default::default());
        encode(&mut enc);
        let t = Instant::now();
        queue.submit([enc.finish()]);
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .expect("device lost");
        t.elapsed().as_secs_f64()
    };
    run();
    let mut times: Vec<f64> = (0..5).map(|_| run()).collect();
    times.sort_by(f64::total_cmp);
    times[2]
}
