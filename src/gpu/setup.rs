//! Building the backend once, in named steps: check the adapter, open the device, lay out
//! the bindings, make the buffers, upload the data, compile the kernels.

use super::bindings::{
    Binding, C3_TABLE, SMALL_LEN, STATE_LEN, STEP_BYTES, STORAGE_BUFFERS, group_entries,
    layout_entries,
};
use super::kernels::{Family, KERNELS, KernelSpec, SMALL_PARAMS};
use super::shader::{C3Lists, module_source};
use super::{
    ACT_STRIDE, Buffers, DELTA_STRIDE, EVAL_BATCH, GpuBackend, STEP_STRIDE, SplitBuffers, gpu_err,
};
use crate::data::Dataset;
use crate::distort::Affine;
use crate::model::{Loss, RBF_CENTERS};
use crate::{Error, Result};
use std::sync::{Arc, Mutex};
use wgpu::util::DeviceExt;

impl GpuBackend {
    /// Builds everything once for batches of up to `max_batch` patterns, with the kernels
    /// of `family`.
    pub fn new(
        adapter: wgpu::Adapter,
        train: Arc<Dataset>,
        test: Arc<Dataset>,
        loss: Loss,
        momentum: f32,
        max_batch: usize,
        family: Family,
    ) -> Result<Self> {
        let info = adapter.get_info();
        let capacity = max_batch.max(EVAL_BATCH);
        let need_binding = check_adapter(&adapter, &train, &test, max_batch, capacity)?;
        let (device, queue) = open_device(&adapter, need_binding)?;
        let fault = keep_first_error(&device);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);

        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("lenet bind group layout"),
            entries: &layout_entries(),
        });
        let steps_capacity = 1024;
        let buf = Buffers {
            state: state_buffer(&device),
            steps: steps_buffer(&device, steps_capacity),
            acts: record_buffer(&device, "acts (B, ACT_STRIDE)", capacity, ACT_STRIDE),
            deltas: record_buffer(&device, "deltas (B, DELTA_STRIDE)", capacity, DELTA_STRIDE),
            small: small_buffer(&device, &queue),
            warps: buffer(
                &device,
                "warps (N, 6): the distortion of each training image",
                train.len().max(1) as u64 * std::mem::size_of::<Affine>() as u64,
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            ),
        };
        let train_b = SplitBuffers::upload(&device, &queue, &layout, &buf, &train, "train")?;
        let test_b = SplitBuffers::upload(&device, &queue, &layout, &buf, &test, "test")?;
        // The images are on the device now: free the host copies (when the caller handed
        // over its only reference) before the driver compiles the kernels, which takes
        // memory of its own, so the two do not add up in the peak.
        drop((train, test));

        let pipelines = compile_kernels(&device, &info, &layout, family)?;
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
            buf,
            steps_capacity,
            layout,
            capacity,
            train: train_b,
            test: test_b,
            loss,
            momentum,
            distorting: false,
            timestamps,
            fault,
            skip: crate::fault::corrupted()
                .iter()
                .filter_map(|name| {
                    Family::ALL
                        .iter()
                        .flat_map(|f| f.training().iter().chain(f.evaluation()))
                        .copied()
                        .find(|k| k.entry() == name)
                })
                .collect(),
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
) -> Result<u64> {
    let info = adapter.get_info();
    let limits = adapter.limits();
    if max_batch > super::MAX_BATCH {
        return Err(Error::Config(format!(
            "--batch {max_batch} is over {}, the largest batch the GPU backend runs: each \
             kernel's dispatch grows with the batch, and a larger one could outrun a display \
             driver's watchdog (2 s on Windows) on a slow GPU; use a smaller --batch, or \
             --backend cpu",
            super::MAX_BATCH
        )));
    }
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
    if limits.max_storage_buffers_per_shader_stage < STORAGE_BUFFERS
        || limits.max_compute_invocations_per_workgroup < 256
    {
        return Err(Error::Gpu(format!(
            "{} offers {} storage buffers per shader stage and {} invocations per workgroup; LeNet-5's kernels need {STORAGE_BUFFERS} and 256",
            info.name,
            limits.max_storage_buffers_per_shader_stage,
            limits.max_compute_invocations_per_workgroup
        )));
    }
    Ok(need_binding)
}

/// Opens the device with the limits the kernels need (and, where offered, timestamps).
fn open_device(adapter: &wgpu::Adapter, need_binding: u64) -> Result<(wgpu::Device, wgpu::Queue)> {
    let limits = adapter.limits();
    let required_limits = wgpu::Limits {
        max_storage_buffer_binding_size: need_binding,
        max_buffer_size: limits.max_buffer_size,
        max_storage_buffers_per_shader_stage: STORAGE_BUFFERS,
        max_compute_invocations_per_workgroup: 256,
        max_compute_workgroup_size_x: 256,
        max_compute_workgroup_storage_size: 16384,
        ..wgpu::Limits::downlevel_defaults().using_resolution(limits.clone())
    };
    pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("lenet-gpu"),
        required_features: adapter.features() & wgpu::Features::TIMESTAMP_QUERY,
        required_limits,
        ..Default::default()
    }))
    .map_err(|e| gpu_err(&format!("cannot open {}", adapter.get_info().name), e))
}

/// Errors after setup (a lost device, an allocation that fails mid-run) must become
/// messages, not wgpu's default panic: keeps the first one, reported at the next wait.
fn keep_first_error(device: &wgpu::Device) -> Arc<Mutex<Option<String>>> {
    let fault: Arc<Mutex<Option<String>>> = Arc::default();
    let keep = fault.clone();
    device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
        let mut f = keep.lock().unwrap_or_else(|p| p.into_inner());
        f.get_or_insert_with(|| e.to_string());
    }));
    let lost = fault.clone();
    // The loss is the cause of whatever else fails after it: it replaces an earlier error.
    device.set_device_lost_callback(move |reason, message| {
        let mut f = lost.lock().unwrap_or_else(|p| p.into_inner());
        let message = message.trim();
        *f = Some(if message.is_empty() {
            format!("the device was lost ({reason:?})")
        } else {
            format!("the device was lost ({reason:?}: {message})")
        });
    });
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

/// An uninitialised buffer of `bytes`.
pub(super) fn buffer(
    device: &wgpu::Device,
    label: &str,
    bytes: u64,
    usage: wgpu::BufferUsages,
) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes,
        usage,
        mapped_at_creation: false,
    })
}

/// Activations or deltas: `stride` floats for each of `capacity` patterns.
fn record_buffer(device: &wgpu::Device, label: &str, capacity: usize, stride: u32) -> wgpu::Buffer {
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    buffer(device, label, capacity as u64 * stride as u64 * 4, usage)
}

/// The uniform buffer of the small layers' parameters (copied from `state` before each
/// command buffer and after each update), the RBF centres and the C3 table (written once,
/// here).
fn small_buffer(device: &wgpu::Device, queue: &wgpu::Queue) -> wgpu::Buffer {
    let small = buffer(
        device,
        "small [C1, S2, C3, S4 params | RBF centres | C3 table]",
        SMALL_LEN as u64 * 4,
        wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
    );
    queue.write_buffer(
        &small,
        SMALL_PARAMS as u64 * 4,
        bytemuck::cast_slice(&RBF_CENTERS),
    );
    queue.write_buffer(
        &small,
        C3_TABLE as u64 * 4,
        bytemuck::cast_slice(&C3Lists::values()),
    );
    small
}

/// Room for `n` step records.
pub(super) fn steps_buffer(device: &wgpu::Device, n: u64) -> wgpu::Buffer {
    let usage = wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST;
    buffer(
        device,
        "steps (one uniform record per batch)",
        n * STEP_STRIDE,
        usage,
    )
}

/// The family's module (WGSL, which wgpu parses, validates and translates for the API,
/// with its bounds checks), then one pipeline per kernel of the family, labelled with its
/// entry point, at the kernel's place in the registry (None elsewhere). Drivers compile a
/// pipeline on the thread that asks for it: up to `COMPILE_THREADS` compile at once, each
/// catching validation, out-of-memory and internal errors in its own error scopes (wgpu's
/// scopes belong to the thread that pushed them).
fn compile_kernels(
    device: &wgpu::Device,
    info: &wgpu::AdapterInfo,
    layout: &wgpu::BindGroupLayout,
    family: Family,
) -> Result<Vec<Option<wgpu::ComputePipeline>>> {
    use rayon::prelude::*;
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some("lenet pipeline layout"),
        bind_group_layouts: &[Some(layout)],
        immediate_size: 0,
    });
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(family.name()),
        source: wgpu::ShaderSource::Wgsl(module_source(family).into()),
    });
    let specs: Vec<&KernelSpec> = family.kernels().collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.min(COMPILE_THREADS))
        .build()
        .map_err(|e| gpu_err("starting the compiler threads", e))?;
    let compiled: Vec<(wgpu::ComputePipeline, Option<wgpu::Error>)> = pool.install(|| {
        specs
            .par_iter()
            .map(|spec| {
                let scopes = [
                    wgpu::ErrorFilter::Validation,
                    wgpu::ErrorFilter::OutOfMemory,
                    wgpu::ErrorFilter::Internal,
                ]
                .map(|f| device.push_error_scope(f));
                let p = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(spec.entry),
                    layout: Some(&pipeline_layout),
                    module: &module,
                    entry_point: Some(spec.entry),
                    // Every kernel writes the workgroup memory it reads before a barrier, so
                    // none is zeroed first: wgpu's zeroing (WebGPU's default) has one
                    // invocation store every element before the kernel starts, up to 13 KB
                    // per workgroup, and took llvmpipe minutes to compile (shaders/README.md).
                    compilation_options: wgpu::PipelineCompilationOptions {
                        zero_initialize_workgroup_memory: false,
                        ..Default::default()
                    },
                    cache: None,
                });
                // Popped innermost first, as scopes must be.
                let mut first = None;
                for scope in scopes.into_iter().rev() {
                    if let Some(e) = pollster::block_on(scope.pop()) {
                        first.get_or_insert(e);
                    }
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

impl SplitBuffers {
    /// Uploads a split's images, labels and identity order, and makes its bind group.
    fn upload(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        layout: &wgpu::BindGroupLayout,
        shared: &Buffers,
        set: &Dataset,
        name: &str,
    ) -> Result<SplitBuffers> {
        // The buffer holds whole u32 words; copy (47 MB for MNIST's training set) only if
        // the bytes need padding.
        let padded;
        let bytes: &[u8] = if set.images.len().is_multiple_of(4) {
            &set.images
        } else {
            let mut b = set.images.clone();
            b.resize(b.len().div_ceil(4) * 4, 0);
            padded = b;
            &padded
        };
        let images = buffer(
            device,
            &format!("{name} images (u8 x4 per word)"),
            bytes.len() as u64,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        );
        upload(device, queue, &images, bytes)?;
        let labels32: Vec<u32> = set.labels.iter().map(|&l| l as u32).collect();
        let identity: Vec<u32> = (0..set.len() as u32).collect();
        let labels_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(&format!("{name} labels")),
            contents: bytemuck::cast_slice(&labels32),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let order = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(&format!("{name} order")),
            contents: bytemuck::cast_slice(&identity),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        });
        let stats = buffer(
            device,
            &format!("{name} stats (loss, prediction)"),
            set.len() as u64 * 8,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        );
        let own = [&images, &labels_buf, &order, &stats];
        let bind_group = bind(device, layout, shared, own, name);
        Ok(SplitBuffers {
            bind_group,
            images,
            labels_buf,
            order,
            stats,
            labels: set.labels.clone(),
            side: set.side as u32,
            len: set.len(),
            name: name.to_string(),
        })
    }

    /// Makes the split's bind group again (after `shared` changed).
    pub(super) fn rebind(
        &mut self,
        device: &wgpu::Device,
        layout: &wgpu::BindGroupLayout,
        shared: &Buffers,
    ) {
        let own = [&self.images, &self.labels_buf, &self.order, &self.stats];
        self.bind_group = bind(device, layout, shared, own, &self.name);
    }
}

/// A split's bind group: every binding, from the shared buffers and the split's own
/// (images, labels, order, stats).
fn bind(
    device: &wgpu::Device,
    layout: &wgpu::BindGroupLayout,
    shared: &Buffers,
    [images, labels, order, stats]: [&wgpu::Buffer; 4],
    name: &str,
) -> wgpu::BindGroup {
    let entries = group_entries(|b| match b {
        Binding::Step => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &shared.steps,
            offset: 0,
            size: wgpu::BufferSize::new(STEP_BYTES),
        }),
        Binding::State => shared.state.as_entire_binding(),
        Binding::Images => images.as_entire_binding(),
        Binding::Labels => labels.as_entire_binding(),
        Binding::Order => order.as_entire_binding(),
        Binding::Stats => stats.as_entire_binding(),
        Binding::Warps => shared.warps.as_entire_binding(),
        Binding::Small => shared.small.as_entire_binding(),
        Binding::Acts => shared.acts.as_entire_binding(),
        Binding::Deltas => shared.deltas.as_entire_binding(),
    });
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(&format!("{name} bind group")),
        layout,
        entries: &entries,
    })
}

/// Writes `bytes` into `buffer` a few MiB at a time, waiting for each piece, so the staging
/// memory wgpu takes for a write (host memory, on a CPU adapter) stays small instead of
/// holding a second copy of the whole training set.
fn upload(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    buffer: &wgpu::Buffer,
    bytes: &[u8],
) -> Result<()> {
    const PIECE: usize = 4 << 20;
    for (i, piece) in bytes.chunks(PIECE).enumerate() {
        queue.write_buffer(buffer, (i * PIECE) as u64, piece);
        queue.submit([]);
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| gpu_err("uploading the images", e))?;
    }
    Ok(())
}
