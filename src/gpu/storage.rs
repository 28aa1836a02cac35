//! Where activations and deltas live: storage buffers (hardware GPUs, GL) or read-write
//! storage textures (CPU adapters), and the buffers of each split.

use super::*;

/// Buffers of one split.
pub(super) struct SplitBuffers {
    /// Made once the buffers exist (`SplitBuffers::bind`).
    pub(super) bind_group: Option<wgpu::BindGroup>,
    pub(super) images: wgpu::Buffer,
    pub(super) labels_buf: wgpu::Buffer,
    pub(super) order: wgpu::Buffer,
    pub(super) stats: wgpu::Buffer,
    pub(super) labels: Vec<u8>,
    pub(super) side: u32,
    pub(super) len: usize,
    /// "train" or "test", for labels.
    pub(super) name: String,
}

impl SplitBuffers {
    pub(super) fn bind_group(&self) -> &wgpu::BindGroup {
        self.bind_group
            .as_ref()
            .expect("a split is bound when it is uploaded")
    }
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

    /// Activations and deltas (and, for textures, the parameters) for `capacity` patterns.
    pub(super) fn new(device: &wgpu::Device, reads: Reads, capacity: usize) -> Store {
        match reads {
            Reads::Textures => {
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
                let rows = capacity as u32;
                let acts = texture("acts_t (B, ACT_STRIDE / 4) rgba32f", ACT_STRIDE / 4, rows);
                let deltas = texture(
                    "deltas_t (B, DELTA_STRIDE / 4) rgba32f",
                    DELTA_STRIDE / 4,
                    rows,
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
            Reads::Storage => {
                let buffer = |label: &str, stride: u32| {
                    device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some(label),
                        size: capacity as u64 * stride as u64 * 4,
                        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                        mapped_at_creation: false,
                    })
                };
                Store::Buffers {
                    acts: buffer("acts (B, ACT_STRIDE)", ACT_STRIDE),
                    deltas: buffer("deltas (B, DELTA_STRIDE)", DELTA_STRIDE),
                }
            }
        }
    }

    pub(super) fn reads(&self) -> Reads {
        match self {
            Store::Textures { .. } => Reads::Textures,
            Store::Buffers { .. } => Reads::Storage,
        }
    }

    /// The resource of the store's binding `name` (`bindings::store_bindings`).
    pub(super) fn resource(&self, name: &str) -> wgpu::BindingResource<'_> {
        match (self, name) {
            (Store::Textures { views, .. }, "acts_t") => {
                wgpu::BindingResource::TextureView(&views[0])
            }
            (Store::Textures { views, .. }, "deltas_t") => {
                wgpu::BindingResource::TextureView(&views[1])
            }
            (Store::Textures { views, .. }, "params_t") => {
                wgpu::BindingResource::TextureView(&views[2])
            }
            (Store::Buffers { acts, .. }, "acts_v") => acts.as_entire_binding(),
            (Store::Buffers { deltas, .. }, "deltas_v") => deltas.as_entire_binding(),
            _ => panic!("no binding {name} in the {:?} store", self.reads()),
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
    /// What `family` reads on `adapter`: storage buffers for a family that needs them
    /// (`Family::needs_storage`), else what `for_adapter` says.
    pub fn for_family(adapter: &wgpu::Adapter, family: Family) -> Self {
        if family.needs_storage() {
            Reads::Storage
        } else {
            Self::for_adapter(adapter)
        }
    }

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
