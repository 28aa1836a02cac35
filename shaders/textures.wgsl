// Where activations, deltas and parameters live on a CPU adapter (`Reads::Textures` in
// src/gpu/storage.rs): rgba32float storage textures, one row per pattern, four floats per
// texel, read and written by the kernels in place. On lavapipe a texel load costs about
// what one float costs from a storage buffer (whose loads llvmpipe runs lane by lane, with
// a bounds check per float), and a texel store about what a four-float buffer store costs;
// since one texture serves both, a batch runs in one compute pass with no copies.
// Its bindings, acts_t, deltas_t and params_t (the parameters, 256 to a row, for the
// kernels to read; `state` keeps the master copy), are declared in the generated header
// (src/gpu/bindings.rs).

// Values i .. i+3 (off + i a multiple of 4) of the region at `off` of pattern b.
fn act4(b: u32, off: u32, i: u32) -> vec4<f32> {
    return textureLoad(acts_t, vec2<u32>((off + i) / 4u, b));
}
fn put_act4(b: u32, off: u32, i: u32, v: vec4<f32>) {
    textureStore(acts_t, vec2<u32>((off + i) / 4u, b), v);
}
fn delta4(b: u32, off: u32, i: u32) -> vec4<f32> {
    return textureLoad(deltas_t, vec2<u32>((off + i) / 4u, b));
}
fn put_delta4(b: u32, off: u32, i: u32, v: vec4<f32>) {
    textureStore(deltas_t, vec2<u32>((off + i) / 4u, b), v);
}

// Parameters k .. k+3 (k a multiple of 4).
fn param4(k: u32) -> vec4<f32> {
    return textureLoad(params_t, vec2<u32>((k / 4u) % 64u, k / 256u));
}
fn put_param4(k: u32, v: vec4<f32>) {
    state[P_OFF + k] = v.x;
    state[P_OFF + k + 1u] = v.y;
    state[P_OFF + k + 2u] = v.z;
    state[P_OFF + k + 3u] = v.w;
    textureStore(params_t, vec2<u32>((k / 4u) % 64u, k / 256u), v);
}
