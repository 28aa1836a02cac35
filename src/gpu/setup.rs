//! Building the backend once: device, pipelines, buffers and bind groups.

use super::*;

impl GpuBackend {
    /// Builds everything once for batches of up to `max_batch` patterns, reading as suits
    /// the adapter (`Reads::for_adapter`).
    pub fn new(
        adapter: wgpu::Adapter,
        train: Arc<Dataset>,
        test: Arc<Dataset>,
        loss: Loss,
        momentum: f32,
        max_batch: usize,
    ) -> Result<Self> {
        let reads = Reads::for_adapter(&adapter);
        Self::with_reads(adapter, train, test, loss, momentum, max_batch, reads)
    }

    /// `new`, with the kernels' reads chosen by the caller (tests run both on one adapter).
    pub fn with_reads(
        adapter: wgpu::Adapter,
        train: Arc<Dataset>,
        test: Arc<Dataset>,
        loss: Loss,
        momentum: f32,
        max_batch: usize,
        reads: Reads,
    ) -> Result<Self> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let capacity = max_batch.max(EVAL_BATCH);
        // Check up front what the trainer needs against what the adapter offers.
        let act_bytes = capacity as u64 * ACT_STRIDE.max(DELTA_STRIDE) as u64 * 4;
        let image_bytes = (train.images.len().max(test.images.len()) as u64).div_ceil(4) * 4;
        let need_binding = act_bytes.max(image_bytes).max(STATE_LEN * 4);
        if need_binding > limits.max_storage_buffer_binding_size {
            return Err(Error::Config(format!(
                "{} allows storage buffers of {} MiB, but batch {max_batch} needs {} MiB (activations) and the \
                 images {} MiB; use a smaller --batch or --train-limit, or another adapter",
                info.name,
                limits.max_storage_buffer_binding_size >> 20,
                act_bytes >> 20,
                image_bytes >> 20
            )));
        }
        if limits.max_storage_buffers_per_shader_stage < 8
            || limits.max_compute_invocations_per_workgroup < WG
        {
            return Err(Error::Gpu(format!(
                "{} offers {} storage buffers per shader stage and {} invocations per workgroup; LeNet-5's kernels need 8 and 64",
                info.name,
                limits.max_storage_buffers_per_shader_stage,
                limits.max_compute_invocations_per_workgroup
            )));
        }
        if reads == Reads::Textures && !Reads::textures_work(&adapter) {
            return Err(Error::Config(format!(
                "{} cannot read and write rgba32float storage textures; use Reads::Storage there",
                info.name
            )));
        }
        let need_texture = (DELTA_STRIDE / 4).max(capacity as u32);
        if reads == Reads::Textures && need_texture > limits.max_texture_dimension_2d {
            return Err(Error::Config(format!(
                "{} allows textures of {} texels a side, but batch {max_batch} needs {need_texture}; \
                 use a smaller --batch, or another adapter",
                info.name, limits.max_texture_dimension_2d
            )));
        }
        let required_limits = wgpu::Limits {
            max_storage_buffer_binding_size: need_binding,
            max_buffer_size: limits.max_buffer_size,
            max_storage_buffers_per_shader_stage: 8,
            max_storage_textures_per_shader_stage: 3,
            ..wgpu::Limits::downlevel_defaults().using_resolution(limits.clone())
        };
        let textures = match reads {
            Reads::Textures => wgpu::Features::TEXTURE_ADAPTER_SPECIFIC_FORMAT_FEATURES,
            Reads::Storage => wgpu::Features::empty(),
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("lenet-gpu"),
            required_features: adapter.features()
                & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::PASSTHROUGH_SHADERS)
                | textures,
            required_limits,
            ..Default::default()
        }))
        .map_err(|e| gpu_err(&format!("cannot open {}", info.name), e))?;

        // Errors after setup (a lost device, an allocation that fails mid-run) must become
        // messages, not wgpu's default panic: keep the first one and report it at the next wait.
        let fault: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        {
            let fault = fault.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                let mut f = fault.lock().unwrap_or_else(|p| p.into_inner());
                f.get_or_insert_with(|| e.to_string());
            }));
        }
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let storage = |binding: u32, read_only: bool| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let texture = |binding: u32| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::StorageTexture {
                access: wgpu::StorageTextureAccess::ReadWrite,
                format: wgpu::TextureFormat::Rgba32Float,
                view_dimension: wgpu::TextureViewDimension::D2,
            },
            count: None,
        };
        let mut entries = vec![
            wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: true,
                    min_binding_size: wgpu::BufferSize::new(std::mem::size_of::<Step>() as u64),
                },
                count: None,
            },
            storage(1, false), // state
            storage(2, true),  // images
            storage(3, true),  // labels
            storage(4, true),  // order
            storage(5, false), // stats
            storage(6, true),  // warps
            wgpu::BindGroupLayoutEntry {
                binding: 7, // small
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: wgpu::BufferSize::new((SMALL_PARAMS as u64 + 840) * 4),
                },
                count: None,
            },
        ];
        match reads {
            // textures.wgsl
            Reads::Textures => entries.extend([texture(8), texture(9), texture(10)]),
            // buffers.wgsl
            Reads::Storage => entries.extend([storage(8, false), storage(9, false)]),
        }
        // wgpu's Vulkan backend numbers the descriptor bindings 0, 1, ... in the order of
        // the layout's entries, and the SPIR-V passed through below keeps the WGSL numbers
        // (spirv_kernels): they agree only while the entries are numbered 0, 1, ... in order.
        assert!(
            entries
                .iter()
                .enumerate()
                .all(|(i, e)| e.binding == i as u32)
        );
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("lenet bind group layout"),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("lenet pipeline layout"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });

        let state_init = vec![0f32; STATE_LEN as usize];
        let state = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("state [params | grad | eps | velocity | hacc]"),
            contents: bytemuck::cast_slice(&state_init),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
        });
        let texture = |label: &str, width: u32, height: u32| {
            device.create_texture(&wgpu::TextureDescriptor {
                label: Some(label),
                size: wgpu::Extent3d {
                    width,
                    height,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: wgpu::TextureFormat::Rgba32Float,
                usage: wgpu::TextureUsages::STORAGE_BINDING
                    | wgpu::TextureUsages::COPY_DST
                    | wgpu::TextureUsages::COPY_SRC,
                view_formats: &[],
            })
        };
        let store = match reads {
            Reads::Textures => {
                let acts = texture(
                    "acts_t (B, ACT_STRIDE / 4) rgba32f",
                    ACT_STRIDE / 4,
                    capacity as u32,
                );
                let deltas = texture(
                    "deltas_t (B, DELTA_STRIDE / 4) rgba32f",
                    DELTA_STRIDE / 4,
                    capacity as u32,
                );
                let params = texture("params_t (PARAM_ROWS, 64) rgba32f", 64, PARAM_ROWS);
                let views = [&acts, &deltas, &params].map(|t| t.create_view(&Default::default()));
                Store::Textures {
                    acts,
                    deltas,
                    params,
                    views,
                }
            }
            Reads::Storage => Store::Buffers {
                acts: device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("acts (B, ACT_STRIDE)"),
                    size: capacity as u64 * ACT_STRIDE as u64 * 4,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                }),
                deltas: device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("deltas (B, DELTA_STRIDE)"),
                    size: capacity as u64 * DELTA_STRIDE as u64 * 4,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                }),
            },
        };
        let small = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("small [C1, S2, C3, S4 params | RBF centres]"),
            size: (SMALL_PARAMS as u64 + 840) * 4,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        queue.write_buffer(
            &small,
            SMALL_PARAMS as u64 * 4,
            bytemuck::cast_slice(&RBF_CENTERS),
        );
        let steps_capacity = 1024;
        let steps = Self::steps_buffer(&device, steps_capacity);
        let warps = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("warps (N, 6): the distortion of each training image"),
            size: train.len().max(1) as u64 * std::mem::size_of::<Affine>() as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let split = |set: &Dataset, name: &str, state: &wgpu::Buffer| -> SplitBuffers {
            // The buffer holds whole u32 words; copy (47 MB for MNIST's training set, a
            // large part of peak memory on a software adapter) only if the bytes need padding.
            let padded;
            let bytes: &[u8] = if set.images.len().is_multiple_of(4) {
                &set.images
            } else {
                let mut b = set.images.clone();
                b.resize(b.len().div_ceil(4) * 4, 0);
                padded = b;
                &padded
            };
            let images = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&format!("{name} images (u8 x4 per word)")),
                size: bytes.len() as u64,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            upload(&device, &queue, &images, bytes);
            let labels32: Vec<u32> = set.labels.iter().map(|&l| l as u32).collect();
            let labels = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(&format!("{name} labels")),
                contents: bytemuck::cast_slice(&labels32),
                usage: wgpu::BufferUsages::STORAGE,
            });
            let identity: Vec<u32> = (0..set.len() as u32).collect();
            let order = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(&format!("{name} order")),
                contents: bytemuck::cast_slice(&identity),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            });
            let stats = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&format!("{name} stats (loss, prediction)")),
                size: set.len() as u64 * 8,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let bind_group = Self::bind_group(
                &device, &layout, &steps, state, &store, &small, &images, &labels, &order, &stats,
                &warps, name,
            );
            SplitBuffers {
                bind_group,
                images,
                labels_buf: labels,
                order,
                stats,
                labels: set.labels.clone(),
                side: set.side as u32,
                len: set.len(),
            }
        };
        let train_b = split(&train, "train", &state);
        let test_b = split(&test, "test", &state);
        // The images are on the device now: free the host copies (when the caller handed
        // over its only reference) before LLVM-based drivers compile the kernels, which
        // takes memory of its own, so the two do not add up in the peak.
        drop((train, test));
        let head = prelude(reads);
        // One module for all kernels: every file needs common.wgsl's helpers, and a module
        // per file would hold (in wgpu and the driver) a parsed copy of them for each file.
        let code = unroll(
            &std::iter::once(head.as_str())
                .chain(SHADERS.iter().map(|(_, src)| *src))
                .collect::<Vec<_>>()
                .join("\n"),
        );
        // On Vulkan the kernels go to the driver as SPIR-V translated here, one small module
        // per kernel, and the parsed source is freed before the driver compiles them; a
        // WGSL module would keep wgpu's parsed copy of all kernels (65 MB with the unrolled
        // tiles) alive as long as the pipelines, host memory that counts in the peak.
        let modules = if info.backend == wgpu::Backend::Vulkan
            && device
                .features()
                .contains(wgpu::Features::PASSTHROUGH_SHADERS)
        {
            let spirv = spirv_kernels(&code)
                .map_err(|e| gpu_err("translating the kernels to SPIR-V", e))?;
            drop(code);
            spirv
                .into_iter()
                .zip(KERNELS)
                .map(|((words, size), (_, entry, _))| {
                    // SAFETY: naga wrote this SPIR-V from WGSL it validated; the kernels are
                    // the same as on the WGSL path, which wgpu checks against the layout (on
                    // GL in tests/gpu.rs), and their bounds are argued below.
                    unsafe {
                        device.create_shader_module_passthrough(
                            wgpu::ShaderModuleDescriptorPassthrough {
                                label: Some(entry),
                                entry_points: std::borrow::Cow::Owned(vec![
                                    wgpu::PassthroughShaderEntryPoint {
                                        name: std::borrow::Cow::Borrowed(entry),
                                        workgroup_size: (size[0], size[1], size[2]),
                                    },
                                ]),
                                spirv: Some(std::borrow::Cow::Owned(words)),
                                ..Default::default()
                            },
                        )
                    }
                })
                .collect()
        } else {
            let desc = wgpu::ShaderModuleDescriptor {
                label: Some("lenet kernels"),
                source: wgpu::ShaderSource::Wgsl(code.into()),
            };
            // SAFETY: every index in these kernels is bounded by construction (per-pattern
            // offsets below the strides, patterns below `step.batch` <= the capacity the
            // buffers were sized for; tests/gpu.rs checks every tensor against the CPU), all
            // loops have constant or uniform bounds, and divisors are non-zero constants.
            // wgpu's injected bounds checks cost ~10% on lavapipe; drivers with robust
            // buffer access (wgpu enables it where offered) still clamp.
            vec![unsafe {
                device.create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
            }]
        };
        let pipelines = KERNELS
            .iter()
            .enumerate()
            .map(|(k, (_, entry, _))| {
                let module = &modules[k.min(modules.len() - 1)];
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: Some(&pipeline_layout),
                    module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                })
            })
            .collect();
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(gpu_err(
                &format!("setting up the kernels on {}", info.name),
                e,
            ));
        }
        if let Some(e) = pollster::block_on(oom.pop()) {
            return Err(gpu_err(
                &format!(
                    "{} has not enough memory for batch {max_batch} and the data; use a smaller --batch, or --backend cpu",
                    info.name
                ),
                e,
            ));
        }
        let timestamps = device.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        Ok(GpuBackend {
            device,
            queue,
            info,
            pipelines,
            state,
            steps,
            steps_capacity,
            layout,
            store,
            small,
            capacity,
            train: train_b,
            test: test_b,
            loss,
            momentum,
            max_groups: limits.max_compute_workgroups_per_dimension.min(65535),
            warps,
            distorting: false,
            timestamps,
            fault,
        })
    }

    pub(super) fn steps_buffer(device: &wgpu::Device, n: u64) -> wgpu::Buffer {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("steps (one uniform record per batch)"),
            size: n * STEP_STRIDE,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn bind_group(
        device: &wgpu::Device,
        layout: &wgpu::BindGroupLayout,
        steps: &wgpu::Buffer,
        state: &wgpu::Buffer,
        store: &Store,
        small: &wgpu::Buffer,
        images: &wgpu::Buffer,
        labels: &wgpu::Buffer,
        order: &wgpu::Buffer,
        stats: &wgpu::Buffer,
        warps: &wgpu::Buffer,
        name: &str,
    ) -> wgpu::BindGroup {
        let mut entries = vec![
            wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: steps,
                    offset: 0,
                    size: wgpu::BufferSize::new(std::mem::size_of::<Step>() as u64),
                }),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: state.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: images.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 3,
                resource: labels.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 4,
                resource: order.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 5,
                resource: stats.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 6,
                resource: warps.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 7,
                resource: small.as_entire_binding(),
            },
        ];
        entries.extend(store.entries());
        device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&format!("{name} bind group")),
            layout,
            entries: &entries,
        })
    }
}
