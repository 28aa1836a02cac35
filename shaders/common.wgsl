// Shared by every LeNet-5 kernel. The host puts in front of it a header it generates
// from the Rust definitions (src/gpu/shader.rs, `header`): the parameter offsets, the
// per-pattern layout (X0 .. Y, D1 .. DY, PART), the regions of `state` (P_OFF, G_OFF,
// E_OFF, V_OFF, H_OFF), the squashing and input constants, the workgroup sizes (WG,
// DENSE_WG, SUM_WG, TILE_B), the C3 table, the `Step` record and every binding
// (src/gpu/bindings.rs); then one of textures.wgsl or buffers.wgsl (where activations and
// deltas live, with the helpers that read and write them four floats at a time: act4 /
// put_act4, delta4 / put_delta4, param4 / put_param4).
//
// The bindings:
//   step:   this batch's record (start, batch, mode, loss, map_j, momentum, side, distort)
//   state:  [params | grad | eps | velocity | hacc], each N_PARAMS floats, flat layout
//   acts:   per pattern (ACT_STRIDE floats) [x0 | x1 | x2 | x3 | x4 | x5 | x6 | y], squashed
//           outputs; each region starts on a multiple of 4 floats
//   deltas: per pattern (DELTA_STRIDE floats) [d1 | d2 | d3 | d4 | d5 | d6 | dy | PART]:
//           dE/da of each layer (or, in second-derivative mode, d2E/da2), then dE/dy, then
//           the partial sums of the parameter gradients' first stage
//   images: the split's u8 pixels, four to a word; labels: u32 per pattern
//   order:  pattern indices; a batch is order[start .. start + batch]
//   stats:  per position in order, (loss, predicted class)
//   warps:  per training image, its distortion (src/distort.rs, Affine: m00 m01 m10 m11 tx ty)
//   small:  the parameters of C1, S2, C3 and S4 (the first SMALL_PARAMS) as uniforms, then
//           the RBF centres (CLASSES, CENTRE_LEN) from RBF_CENTERS = SMALL_PARAMS
// Kernels read and write acts and deltas four aligned floats (a texel) at a time.

// C3's connection table (generated): map o's links are C3_START[o] .. C3_START[o + 1]
// (each reading S2 map C3_IN[l] into C3 map C3_MAP[l]); the links reading S2 map c are
// C3_BY_INPUT_LINK[C3_BY_INPUT_START[c] ..].
var<private> C3_START: array<u32, 17> = C3_START_INIT;
var<private> C3_IN: array<u32, 60> = C3_IN_INIT;
var<private> C3_MAP: array<u32, 60> = C3_MAP_INIT;
var<private> C3_BY_INPUT_START: array<u32, 7> = C3_BY_INPUT_START_INIT;
var<private> C3_BY_INPUT_LINK: array<u32, 60> = C3_BY_INPUT_LINK_INIT;

// Dispatches are 2-D when one dimension would exceed 65535 workgroups.
fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// f(a) = A tanh(S a), computed as on the CPU: tanh(u) = sign(u) (1 - e) / (1 + e),
// e = exp(-2|u|), which never overflows.
fn squash(a: f32) -> f32 {
    let u = SQUASH_S * a;
    let e = exp(-2.0 * abs(u));
    let t = (1.0 - e) / (1.0 + e);
    return SQUASH_A * select(t, -t, u < 0.0);
}

// f'(a) from x = f(a); squared in second-derivative mode (the f'' term is dropped).
fn dfac(x: f32) -> f32 {
    let t = x / SQUASH_A;
    let d = SQUASH_A * SQUASH_S * (1.0 - t * t);
    return select(d, d * d, step.mode == 1u);
}

// Parameter k (act4, delta4 and param4 are in textures.wgsl and buffers.wgsl).
fn param(k: u32) -> f32 {
    return param4(k & ~3u)[k & 3u];
}

// Parameter k < SMALL_PARAMS (C1 .. S4), from the uniform copy; squared in second-derivative
// mode (swt).
fn sparam(k: u32) -> f32 {
    return small[k / 4u][k % 4u];
}
fn swt(k: u32) -> f32 {
    let w = sparam(k);
    return select(w, w * w, step.mode == 1u);
}

// Parameters k .. k+3, squared in second-derivative mode.
fn wt4(k: u32) -> vec4<f32> {
    let w = param4(k);
    return select(w, w * w, step.mode == 1u);
}

// An input activation as a parameter's gradient sees it: squared in second-derivative mode.
fn xin(v: f32) -> f32 {
    return select(v, v * v, step.mode == 1u);
}

// Where a parameter's batch sum goes: the gradient (overwritten each batch), or the
// Hessian accumulator (summed over the batches of an estimate, in order).
fn put_grad(k: u32, s: f32) {
    if (step.mode == 1u) {
        state[H_OFF + k] = state[H_OFF + k] + s;
    } else {
        state[G_OFF + k] = s;
    }
}
fn put_grad4(k: u32, s: vec4<f32>) {
    put_grad(k, s.x);
    put_grad(k + 1u, s.y);
    put_grad(k + 2u, s.z);
    put_grad(k + 3u, s.w);
}

// Value i of the region at `off` of pattern b.
fn act(b: u32, off: u32, i: u32) -> f32 {
    return act4(b, off, i & ~3u)[i & 3u];
}
// Values i and i+1 (i even): one texel.
fn act2(b: u32, off: u32, i: u32) -> vec2<f32> {
    return act2_of(act4(b, off, i & ~3u), i);
}
// The pair at even index i of the texel v that holds it.
fn act2_of(v: vec4<f32>, i: u32) -> vec2<f32> {
    return select(v.xy, v.zw, (i & 2u) != 0u);
}
fn delta(b: u32, off: u32, i: u32) -> f32 {
    return delta4(b, off, i & ~3u)[i & 3u];
}

// Weight k of the flat layout from `state`, squared in second-derivative mode.
fn wt(k: u32) -> f32 {
    let w = param(k);
    return select(w, w * w, step.mode == 1u);
}

// A dense layer's parameter k (n_out x n_in weights, then n_out biases): sum_b d[o] x[j]
// (x squared in second-derivative mode) for a weight, sum_b d[o] for a bias. Weights and
// biases run the same loop (see conv_param in simple.wgsl).
fn dense_param(k: u32, n_in: u32, n_out: u32, xoff: u32, doff: u32) -> f32 {
    let bias = k >= n_out * n_in;
    let o = select(k / n_in, k - n_out * n_in, bias);
    let j = select(k % n_in, 0u, bias);
    var s = 0.0;
    for (var b = 0u; b < step.batch; b++) {
        s += delta(b, doff, o) * select(xin(act(b, xoff, j)), 1.0, bias);
    }
    return s;
}
