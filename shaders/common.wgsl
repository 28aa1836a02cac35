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

// Dense layers (C5 is one: a 5x5 kernel over a 5x5 input), y = f(W x + bias) with W
// (n_out, n_in) row-major. Each invocation computes a register tile of 16 patterns x 8
// units (forward, input gradient) or 16 units x 8 inputs (weight gradient), so one fetch
// of four values serves 32 or 64 products. Invocations past the batch (or, for F6's 84
// units, past the last unit) read the last valid one and write nothing (no early return,
// so loops stay uniform). The forward and input-gradient kernels run in workgroups of 16
// (`DENSE_WG`): at small batches there are few tiles, and a CPU adapter runs each
// workgroup on one core.
const TILE: u32 = 8u;
// TILE_B (generated, src/gpu/kernels.rs) patterns per tile of the forward and
// input-gradient kernels; TILE_O units per tile of the weight gradient.
const TILE_O: u32 = 16u;

// Invocation t of (ceil(batch/16) * ceil(n_out/8)): x (B, n_in) at xoff -> y (B, n_out).
// n_in, w and bias are multiples of 4, so inputs and weights come four to a texel.
fn dense_forward(t: u32, n_in: u32, n_out: u32, xoff: u32, yoff: u32, w: u32, bias: u32) {
    let blocks = (n_out + TILE - 1u) / TILE;
    if (t >= ((step.batch + TILE_B - 1u) / TILE_B) * blocks) { return; }
    let b0 = (t / blocks) * TILE_B;
    let o0 = (t % blocks) * TILE;
    var a: array<f32, 128>;
    /*unroll*/ for (var oj = 0u; oj < 8u; oj++) {
        let bo = param(bias + min(o0 + oj, n_out - 1u));
        /*unroll*/ for (var bj = 0u; bj < 16u; bj++) { a[bj * 8u + oj] = bo; }
    }
    for (var k = 0u; k < n_in; k += 4u) {
        var x: array<vec4<f32>, 16>;
        /*unroll*/ for (var bj = 0u; bj < 16u; bj++) { x[bj] = act4(min(b0 + bj, step.batch - 1u), xoff, k); }
        /*unroll*/ for (var oj = 0u; oj < 8u; oj++) {
            let wk = param4(w + min(o0 + oj, n_out - 1u) * n_in + k);
            /*unroll*/ for (var bj = 0u; bj < 16u; bj++) {
                // One product at a time, in k order, as on the CPU.
                a[bj * 8u + oj] += wk.x * x[bj].x;
                a[bj * 8u + oj] += wk.y * x[bj].y;
                a[bj * 8u + oj] += wk.z * x[bj].z;
                a[bj * 8u + oj] += wk.w * x[bj].w;
            }
        }
    }
    // n_out is a multiple of 4: each half of a tile's row is in the layer or wholly past it.
    /*unroll*/ for (var bj = 0u; bj < 16u; bj++) {
        /*unroll*/ for (var h = 0u; h < 2u; h++) {
            if (b0 + bj < step.batch && o0 + 4u * h < n_out) {
                let j = bj * 8u + 4u * h;
                put_act4(b0 + bj, yoff, o0 + 4u * h, vec4<f32>(squash(a[j]), squash(a[j + 1u]), squash(a[j + 2u]), squash(a[j + 3u])));
            }
        }
    }
}

// Invocation t of (ceil(batch/16) * n_in/8): d_out (B, n_out) at doff_out -> d_in (B, n_in)
// at doff_in, times the squashing derivative of the input x at xoff. n_out is a multiple
// of 4, so the deltas come four to a texel.
fn dense_backward_input(t: u32, n_in: u32, n_out: u32, xoff: u32, doff_out: u32, doff_in: u32, w: u32) {
    let blocks = n_in / TILE;
    if (t >= ((step.batch + TILE_B - 1u) / TILE_B) * blocks) { return; }
    let b0 = (t / blocks) * TILE_B;
    let k0 = (t % blocks) * TILE;
    var s: array<f32, 128>;
    /*unroll*/ for (var j = 0u; j < 128u; j++) { s[j] = 0.0; }
    for (var o = 0u; o < n_out; o += 4u) {
        var d: array<vec4<f32>, 16>;
        /*unroll*/ for (var bj = 0u; bj < 16u; bj++) { d[bj] = delta4(min(b0 + bj, step.batch - 1u), doff_out, o); }
        /*unroll*/ for (var oi = 0u; oi < 4u; oi++) {
            let w0 = wt4(w + (o + oi) * n_in + k0);
            let w1 = wt4(w + (o + oi) * n_in + k0 + 4u);
            let wk = array<f32, 8>(w0.x, w0.y, w0.z, w0.w, w1.x, w1.y, w1.z, w1.w);
            /*unroll*/ for (var kj = 0u; kj < 8u; kj++) {
                /*unroll*/ for (var bj = 0u; bj < 16u; bj++) { s[bj * 8u + kj] += wk[kj] * d[bj][oi]; }
            }
        }
    }
    /*unroll*/ for (var bj = 0u; bj < 16u; bj++) {
        let b = b0 + bj;
        if (b < step.batch) {
            let x0 = act4(b, xoff, k0);
            let x1 = act4(b, xoff, k0 + 4u);
            let x = array<f32, 8>(x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w);
            /*unroll*/ for (var h = 0u; h < 2u; h++) {
                let j = bj * 8u + 4u * h;
                put_delta4(b, doff_in, k0 + 4u * h, vec4<f32>(dfac(x[4u * h]) * s[j], dfac(x[4u * h + 1u]) * s[j + 1u],
                                                              dfac(x[4u * h + 2u]) * s[j + 2u], dfac(x[4u * h + 3u]) * s[j + 3u]));
            }
        }
    }
}

// Invocation t of (ceil(n_out/16) * n_in/8): the gradient of a tile of 16 units x 8 inputs
// of W, summed over the batch in order; the tiles of the first 8 inputs also write the
// sums of their units' biases (every tile adds them: a CPU adapter would run a separate
// branch for all anyway). Past the last unit (F6's 84), a tile reads the next region's
// values and writes nothing.
fn dense_backward_params(t: u32, n_in: u32, n_out: u32, xoff: u32, doff: u32, w: u32, bias: u32) {
    let blocks_o = (n_out + TILE_O - 1u) / TILE_O;
    let blocks_k = n_in / TILE;
    let tiles = blocks_o * blocks_k;
    if (t >= tiles) { return; }
    let o0 = (t / blocks_k) * TILE_O;
    let k0 = (t % blocks_k) * TILE;
    var s: array<f32, 128>;
    /*unroll*/ for (var j = 0u; j < 128u; j++) { s[j] = 0.0; }
    var sb: array<f32, 16>;
    /*unroll*/ for (var j = 0u; j < 16u; j++) { sb[j] = 0.0; }
    for (var b = 0u; b < step.batch; b++) {
        let x0 = act4(b, xoff, k0);
        let x1 = act4(b, xoff, k0 + 4u);
        let x = array<f32, 8>(xin(x0.x), xin(x0.y), xin(x0.z), xin(x0.w), xin(x1.x), xin(x1.y), xin(x1.z), xin(x1.w));
        var d: array<f32, 16>;
        /*unroll*/ for (var q = 0u; q < 4u; q++) {
            let v = delta4(b, doff, o0 + 4u * q);
            d[4u * q] = v.x;
            d[4u * q + 1u] = v.y;
            d[4u * q + 2u] = v.z;
            d[4u * q + 3u] = v.w;
        }
        /*unroll*/ for (var oj = 0u; oj < 16u; oj++) {
            sb[oj] += d[oj];
            /*unroll*/ for (var kj = 0u; kj < 8u; kj++) { s[oj * 8u + kj] += d[oj] * x[kj]; }
        }
    }
    if (k0 == 0u) {
        /*unroll*/ for (var oj = 0u; oj < 16u; oj++) {
            if (o0 + oj < n_out) { put_grad(bias + o0 + oj, sb[oj]); }
        }
    }
    /*unroll*/ for (var oj = 0u; oj < 16u; oj++) {
        if (o0 + oj < n_out) {
            /*unroll*/ for (var kj = 0u; kj < 8u; kj++) {
                put_grad(w + (o0 + oj) * n_in + k0 + kj, s[oj * 8u + kj]);
            }
        }
    }
}
