//! Where activations and deltas live: storage buffers (hardware GPUs, GL) or read-write
//! storage textures (CPU adapters), and the buffers of each split.

/// Buffers of one split.
pub(super) struct SplitBuffers {
    pub(super) bind_group: wgpu::BindGroup,
    pub(super) images: wgpu::Buffer,
    pub(super) labels_buf: wgpu::Buffer,
    pub(super) order: wgpu::Buffer,
    pub(super) stats: wgpu::Buffer,
    pub(super) labels: Vec<u8>,
    pub(super) side: u32,
    pub(super) len: usize,
}

/// Where activations and deltas live on the device (`Reads`). One per backend, so the
/// variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub(super) enum Store {
    /// textures.wgsl: acts_t, deltas_t and params_t, rgba32float storage textures.
    Textures {
        acts: wgpu::Texture,
        deltas: wgpu::Texture,
        params: wgpu::Texture,
        views: [wgpu::TextureView; 3],
    },
    /// buffers.wgsl: acts_v and deltas_v, storage buffers.
    Buffers {
        acts: wgpu::Buffer,
        deltas: wgpu::Buffer,
    },
}

impl Store {
    pub(super) fn bytes(&self) -> u64 {
        let texture = |t: &wgpu::Texture| t.width() as u64 * t.height() as u64 * 16;
        match self {
            Store::Textures {
                acts,
                deltas,
                params,
                ..
            } => texture(acts) + texture(deltas) + texture(params),
            Store::Buffers { acts, deltas } => acts.size() + deltas.size(),
        }
    }

    /// The bind-group entries for the bindings the store's file declares.
    pub(super) fn entries(&self) -> Vec<wgpu::BindGroupEntry<'_>> {
        match self {
            Store::Textures { views, .. } => (0..3)
                .map(|i| wgpu::BindGroupEntry {
                    binding: 8 + i as u32,
                    resource: wgpu::BindingResource::TextureView(&views[i]),
                })
                .collect(),
            Store::Buffers { acts, deltas } => vec![
                wgpu::BindGroupEntry {
                    binding: 8,
                    resource: acts.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 9,
                    resource: deltas.as_entire_binding(),
                },
            ],
        }
    }
}

/// Where the kernels keep activations and deltas, and read the parameters from
/// (`act4`/`put_act4`, `delta4`/`put_delta4`, `param4`/`put_param4`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    /// rgba32float storage textures, read and written in place (shaders/textures.wgsl): on
    /// a CPU adapter a texel load costs about what one float costs from a storage buffer,
    /// whose loads llvmpipe runs lane by lane. Needs an adapter that can read and write
    /// rgba32float storage textures (lavapipe can; GL adapters cannot).
    Textures,
    /// Storage buffers (shaders/buffers.wgsl): on a hardware GPU a vec4 load from a buffer
    /// is as fast as a texel fetch, and buffers need nothing beyond WebGPU's baseline.
    Storage,
}

impl Reads {
    /// Textures on a software (CPU) adapter that supports them, storage buffers elsewhere.
    pub fn for_adapter(adapter: &wgpu::Adapter) -> Self {
        if adapter.get_info().device_type == wgpu::DeviceType::Cpu && Self::textures_work(adapter) {
            Reads::Textures
        } else {
            Reads::Storage
        }
    }

    /// Whether `adapter` can bind rgba32float textures for reading and writing in a kernel.
    pub fn textures_work(adapter: &wgpu::Adapter) -> bool {
        adapter
            .features()
            .contains(wgpu::Features::TEXTURE_ADAPTER_SPECIFIC_FORMAT_FEATURES)
            && adapter
                .get_texture_format_features(wgpu::TextureFormat::Rgba32Float)
                .flags
                .contains(wgpu::TextureFormatFeatureFlags::STORAGE_READ_WRITE)
    }
}
