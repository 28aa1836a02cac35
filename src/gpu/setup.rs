//! Building the backend once, in named steps: check the adapter, open the device, lay out
//! the bindings, make the buffers, upload the data, compile the kernels.

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
        let family = Family::for_adapter(&adapter.get_info());
        let reads = Reads::for_family(&adapter, family);
        Self::with_kernels(
            adapter, train, test, loss, momentum, max_batch, family, reads,
        )
    }

    /// `new`, with the kernel family and the kernels' reads chosen by the caller
    /// (`--kernels`; tests run every combination an adapter supports).
    #[allow(clippy::too_many_arguments)]
    pub fn with_kernels(
        adapter: wgpu::Adapter,
        train: Arc<Dataset>,
        test: Arc<Dataset>,
        loss: Loss,
        momentum: f32,
        max_batch: usize,
        family: Family,
        reads: Reads,
    ) -> Result<Self> {
        if family.needs_storage() && reads != Reads::Storage {
            return Err(Error::Config(format!(
                "the {} kernels write one float at a time, which needs storage buffers (Reads::Storage)",
                family.name()
            )));
        }
        let info = adapter.get_info();
        let capacity = max_batch.max(EVAL_BATCH);
        let need_binding = check_adapter(&adapter, &train, &test, max_batch, capacity, reads)?;
        let (device, queue) = open_device(&adapter, need_binding, reads)?;
        let fault = keep_first_error(&device);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);

        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("lenet bind group layout"),
            entries: &layout_entries(reads),
        });
        let state = state_buffer(&device);
        let store = Store::new(&device, reads, capacity);
        let small = small_buffer(&device, &queue);
        let steps_capacity = 1024;
        let steps = Self::steps_buffer(&device, steps_capacity);
        let warps = warps_buffer(&device, train.len());
        let shared = Shared {
            steps: &steps,
            state: &state,
            store: &store,
            small: &small,
            warps: &warps,
        };
        let train_b = SplitBuffers::upload(&device, &queue, &layout, &shared, &train, "train");
        let test_b = SplitBuffers::upload(&device, &queue, &layout, &shared, &test, "test");
        // The images are on the device now: free the host copies (when the caller handed
        // over its only reference) before LLVM-based drivers compile the kernels, which
        // takes memory of its own, so the two do not add up in the peak.
        drop((train, test));

        let pipelines = compile_kernels(&device, &info, &layout, reads, family)?;
        check_setup_errors(&info, scope, oom, max_batch)?;
        let timestamps = device.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        Ok(GpuBackend {
            max_groups: adapter
                .limits()
                .max_compute_workgroups_per_dimension
                .min(65535),
            device,
            queue,
            info,
            pipelines,
            family,
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
}

/// Checks what the trainer needs against what the adapter offers, before opening it;
/// returns the largest storage binding needed, in bytes.
fn check_adapter(
    adapter: &wgpu::Adapter,
    train: &Dataset,
    test: &Dataset,
    max_batch: usize,
    capacity: usize,
    reads: Reads,
) -> Result<u64> {
    let info = adapter.get_info();
    let limits = adapter.limits();
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
    let storage_buffers = count_bindings(reads, |k| matches!(k, bindings::Kind::Storage { .. }));
    if limits.max_storage_buffers_per_shader_stage < storage_buffers
        || limits.max_compute_invocations_per_workgroup < WG
    {
        return Err(Error::Gpu(format!(
            "{} offers {} storage buffers per shader stage and {} invocations per workgroup; LeNet-5's kernels need {storage_buffers} and {WG}",
            info.name,
            limits.max_storage_buffers_per_shader_stage,
            limits.max_compute_invocations_per_workgroup
        )));
    }
    if reads == Reads::Textures && !Reads::textures_work(adapter) {
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
    Ok(need_binding)
}

/// How many bindings of `reads` are of a kind.
fn count_bindings(reads: Reads, kind: impl Fn(bindings::Kind) -> bool) -> u32 {
    bindings(reads).filter(|(_, b)| kind(b.kind)).count() as u32
}

/// Opens the device with the limits and features the kernels need (and, where offered,
/// timestamps and SPIR-V pass-through).
fn open_device(
    adapter: &wgpu::Adapter,
    need_binding: u64,
    reads: Reads,
) -> Result<(wgpu::Device, wgpu::Queue)> {
    let limits = adapter.limits();
    let required_limits = wgpu::Limits {
        max_storage_buffer_binding_size: need_binding,
        max_buffer_size: limits.max_buffer_size,
        max_storage_buffers_per_shader_stage: count_bindings(reads, |k| {
            matches!(k, bindings::Kind::Storage { .. })
        }),
        max_storage_textures_per_shader_stage: count_bindings(reads, |k| {
            k == bindings::Kind::Texture
        }),
        ..wgpu::Limits::downlevel_defaults().using_resolution(limits.clone())
    };
    let textures = match reads {
        Reads::Textures => wgpu::Features::TEXTURE_ADAPTER_SPECIFIC_FORMAT_FEATURES,
        Reads::Storage => wgpu::Features::empty(),
    };
    pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("lenet-gpu"),
        required_features: adapter.features()
            & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::PASSTHROUGH_SHADERS)
            | textures,
        required_limits,
        ..Default::default()
    }))
    .map_err(|e| gpu_err(&format!("cannot open {}", adapter.get_info().name), e))
}

/// Errors after setup (a lost device, an allocation that fails mid-run) must become
/// messages, not wgpu's default panic: keeps the first one, reported at the next wait.
fn keep_first_error(device: &wgpu::Device) -> Arc<std::sync::Mutex<Option<String>>> {
    let fault: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let keep = fault.clone();
    device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
        let mut f = keep.lock().unwrap_or_else(|p| p.into_inner());
        f.get_or_insert_with(|| e.to_string());
    }));
    fault
}

/// The state buffer, zeroed: [params | grad | eps | velocity | hacc] (`Region`).
fn state_buffer(device: &wgpu::Device) -> wgpu::Buffer {
    let zeros = vec![0f32; STATE_LEN as usize];
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("state [params | grad | eps | velocity | hacc]"),
        contents: bytemuck::cast_slice(&zeros),
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
    })
}

/// The uniform buffer of the small layers' parameters (copied from `state` before each
/// command buffer) and the RBF centres (written once, here).
fn small_buffer(device: &wgpu::Device, queue: &wgpu::Queue) -> wgpu::Buffer {
    let small = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("small [C1, S2, C3, S4 params | RBF centres]"),
        size: SMALL_LEN as u64 * 4,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    queue.write_buffer(
        &small,
        SMALL_PARAMS as u64 * 4,
        bytemuck::cast_slice(&RBF_CENTERS),
    );
    small
}

fn warps_buffer(device: &wgpu::Device, images: usize) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("warps (N, 6): the distortion of each training image"),
        size: images.max(1) as u64 * std::mem::size_of::<Affine>() as u64,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// One module for the family's kernels (parsed, or from the kernel cache:
/// `cache::module`), then one pipeline per kernel of the family, labelled with its entry
/// point, at the kernel's place in the registry (None elsewhere). The pipelines are
/// compiled in parallel, on up to `COMPILE_THREADS` threads: a driver compiles a pipeline
/// on the thread that asks for it, and on a CPU adapter each compilation of the software
/// family's unrolled kernels takes memory of its own, so the peak grows with the threads.
fn compile_kernels(
    device: &wgpu::Device,
    info: &wgpu::AdapterInfo,
    layout: &wgpu::BindGroupLayout,
    reads: Reads,
    family: Family,
) -> Result<Vec<Option<wgpu::ComputePipeline>>> {
    use rayon::prelude::*;
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some("lenet pipeline layout"),
        bind_group_layouts: &[Some(layout)],
        immediate_size: 0,
    });
    // One module for all kernels: every file needs common.wgsl's helpers, and a module
    // per file would hold (in wgpu and the driver) a parsed copy of them for each file.
    let module = cache::module(cache::dir().as_deref(), reads, family)
        .map_err(|e| gpu_err("parsing the kernels", e))?;
    let spirv = info.backend == wgpu::Backend::Vulkan
        && device
            .features()
            .contains(wgpu::Features::PASSTHROUGH_SHADERS);
    let modules = if spirv {
        spirv_modules(device, module, family)?
    } else {
        vec![naga_module(device, module)]
    };
    let specs: Vec<&KernelSpec> = family.kernels().collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.min(COMPILE_THREADS))
        .build()
        .map_err(|e| gpu_err("starting the compiler threads", e))?;
    // wgpu's error scopes belong to the thread that pushed them: each worker keeps its own
    // (the setup's kinds, and the driver's own failures) and hands back what it caught.
    let compiled: Vec<(wgpu::ComputePipeline, Option<wgpu::Error>)> = pool.install(|| {
        specs
            .par_iter()
            .enumerate()
            .map(|(n, spec)| {
                let scopes = [
                    wgpu::ErrorFilter::Validation,
                    wgpu::ErrorFilter::OutOfMemory,
                    wgpu::ErrorFilter::Internal,
                ]
                .map(|f| device.push_error_scope(f));
                let p = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(spec.entry),
                    layout: Some(&pipeline_layout),
                    module: &modules[n.min(modules.len() - 1)],
                    entry_point: Some(spec.entry),
                    compilation_options: Default::default(),
                    cache: None,
                });
                // Popped innermost first, as scopes must be.
                let mut first = None;
                for scope in scopes.into_iter().rev() {
                    let e = pollster::block_on(scope.pop());
                    first = first.or(e);
                }
                (p, first)
            })
            .collect()
    });
    let mut pipelines: Vec<Option<wgpu::ComputePipeline>> = KERNELS.iter().map(|_| None).collect();
    for (spec, (p, error)) in specs.iter().zip(compiled) {
        if let Some(e) = error {
            return Err(gpu_err(
                &format!("compiling {} on {}", spec.entry, info.name),
                e,
            ));
        }
        pipelines[spec.kernel as usize] = Some(p);
    }
    Ok(pipelines)
}

/// The most pipelines compiled at once.
const COMPILE_THREADS: usize = 4;

/// On Vulkan the kernels go to the driver as SPIR-V translated here, one small module per
/// kernel, and the parsed module is freed before the driver compiles them; a module of
/// naga's IR would stay alive in wgpu (65 MB with the unrolled tiles) as long as the
/// pipelines, host memory that counts in the peak.
fn spirv_modules(
    device: &wgpu::Device,
    module: naga::Module,
    family: Family,
) -> Result<Vec<wgpu::ShaderModule>> {
    let spirv = spirv_kernels(&module, family)
        .map_err(|e| gpu_err("translating the kernels to SPIR-V", e))?;
    drop(module);
    Ok(spirv
        .into_iter()
        .zip(family.kernels())
        .map(|((words, size), spec)| {
            // SAFETY: naga wrote this SPIR-V from a module it validated; the kernels are
            // the same as on the naga-IR path, which wgpu checks against the layout (on GL
            // in tests/gpu.rs), and their bounds are argued in `naga_module`.
            unsafe {
                device.create_shader_module_passthrough(wgpu::ShaderModuleDescriptorPassthrough {
                    label: Some(spec.entry),
                    entry_points: std::borrow::Cow::Owned(vec![
                        wgpu::PassthroughShaderEntryPoint {
                            name: std::borrow::Cow::Borrowed(spec.entry),
                            workgroup_size: (size[0], size[1], size[2]),
                        },
                    ]),
                    spirv: Some(std::borrow::Cow::Owned(words)),
                    ..Default::default()
                })
            }
        })
        .collect())
}

/// Elsewhere wgpu takes the parsed module itself (it validates it and translates it for
/// the API).
fn naga_module(device: &wgpu::Device, module: naga::Module) -> wgpu::ShaderModule {
    let desc = wgpu::ShaderModuleDescriptor {
        label: Some("lenet kernels"),
        source: wgpu::ShaderSource::Naga(std::borrow::Cow::Owned(module)),
    };
    // SAFETY: every index in these kernels is bounded by construction (per-pattern offsets
    // below the strides, patterns below `step.batch` <= the capacity the buffers were
    // sized for; tests/gpu.rs checks every tensor against the CPU), all loops have
    // constant or uniform bounds, and divisors are non-zero constants. wgpu's injected
    // bounds checks cost ~10% on lavapipe; drivers with robust buffer access (wgpu enables
    // it where offered) still clamp.
    unsafe { device.create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked()) }
}

/// Turns the validation and out-of-memory errors of setup into messages.
fn check_setup_errors(
    info: &wgpu::AdapterInfo,
    scope: wgpu::ErrorScopeGuard,
    oom: wgpu::ErrorScopeGuard,
    max_batch: usize,
) -> Result<()> {
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
    Ok(())
}

/// The buffers every bind group shares, besides a split's own.
pub(super) struct Shared<'a> {
    pub steps: &'a wgpu::Buffer,
    pub state: &'a wgpu::Buffer,
    pub store: &'a Store,
    pub small: &'a wgpu::Buffer,
    pub warps: &'a wgpu::Buffer,
}

impl SplitBuffers {
    /// Uploads a split's images, labels and identity order, and makes its bind group.
    fn upload(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        layout: &wgpu::BindGroupLayout,
        shared: &Shared,
        set: &Dataset,
        name: &str,
    ) -> SplitBuffers {
        // The buffer holds whole u32 words; copy (47 MB for MNIST's training set, a large
        // part of peak memory on a software adapter) only if the bytes need padding.
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
        upload(device, queue, &images, bytes);
        let labels32: Vec<u32> = set.labels.iter().map(|&l| l as u32).collect();
        let identity: Vec<u32> = (0..set.len() as u32).collect();
        let mut split = SplitBuffers {
            bind_group: None,
            images,
            labels_buf: device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(&format!("{name} labels")),
                contents: bytemuck::cast_slice(&labels32),
                usage: wgpu::BufferUsages::STORAGE,
            }),
            order: device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(&format!("{name} order")),
                contents: bytemuck::cast_slice(&identity),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            }),
            stats: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&format!("{name} stats (loss, prediction)")),
                size: set.len() as u64 * 8,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            labels: set.labels.clone(),
            side: set.side as u32,
            len: set.len(),
            name: name.to_string(),
        };
        split.bind(device, layout, shared);
        split
    }

    /// (Re)makes the split's bind group: every binding of the table, found by name.
    pub(super) fn bind(
        &mut self,
        device: &wgpu::Device,
        layout: &wgpu::BindGroupLayout,
        shared: &Shared,
    ) {
        let entries = group_entries(shared.store.reads(), |name| match name {
            "step" => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: shared.steps,
                offset: 0,
                size: wgpu::BufferSize::new(STEP_BYTES),
            }),
            "state" => shared.state.as_entire_binding(),
            "images" => self.images.as_entire_binding(),
            "labels" => self.labels_buf.as_entire_binding(),
            "order" => self.order.as_entire_binding(),
            "stats" => self.stats.as_entire_binding(),
            "warps" => shared.warps.as_entire_binding(),
            "small" => shared.small.as_entire_binding(),
            store => shared.store.resource(store),
        });
        self.bind_group = Some(device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&format!("{} bind group", self.name)),
            layout,
            entries: &entries,
        }));
    }
}
