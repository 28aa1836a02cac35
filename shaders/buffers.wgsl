// Where activations and deltas live on a hardware GPU (`Reads::Storage` in src/gpu/storage.rs):
// storage buffers of vec4, one stretch of ACT_STRIDE (DELTA_STRIDE) floats per pattern;
// the parameters are read from `state`. A GPU loads a vec4 from a buffer as fast as a
// texel from a texture, and buffers need no format support beyond WebGPU's baseline.
// Its bindings, acts_v and deltas_v, are declared in the generated header
// (src/gpu/bindings.rs).

// Values i .. i+3 (off + i a multiple of 4) of the region at `off` of pattern b.
fn act4(b: u32, off: u32, i: u32) -> vec4<f32> {
    return acts_v[(b * ACT_STRIDE + off + i) / 4u];
}
fn put_act4(b: u32, off: u32, i: u32, v: vec4<f32>) {
    acts_v[(b * ACT_STRIDE + off + i) / 4u] = v;
}
fn delta4(b: u32, off: u32, i: u32) -> vec4<f32> {
    return deltas_v[(b * DELTA_STRIDE + off + i) / 4u];
}
fn put_delta4(b: u32, off: u32, i: u32, v: vec4<f32>) {
    deltas_v[(b * DELTA_STRIDE + off + i) / 4u] = v;
}

// One value: i of the region at `off` of pattern b (the `hardware` family, simple.wgsl,
// writes one float per invocation).
fn put_act(b: u32, off: u32, i: u32, v: f32) {
    acts_v[(b * ACT_STRIDE + off + i) / 4u][(off + i) % 4u] = v;
}
fn put_delta(b: u32, off: u32, i: u32, v: f32) {
    deltas_v[(b * DELTA_STRIDE + off + i) / 4u][(off + i) % 4u] = v;
}

// Parameters k .. k+3 (k a multiple of 4).
fn param4(k: u32) -> vec4<f32> {
    return vec4<f32>(state[P_OFF + k], state[P_OFF + k + 1u], state[P_OFF + k + 2u], state[P_OFF + k + 3u]);
}
fn put_param4(k: u32, v: vec4<f32>) {
    state[P_OFF + k] = v.x;
    state[P_OFF + k + 1u] = v.y;
    state[P_OFF + k + 2u] = v.z;
    state[P_OFF + k + 3u] = v.w;
}
