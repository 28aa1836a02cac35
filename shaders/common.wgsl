// Shared by every LeNet-5 kernel. The host puts in front of it a header it generates
// from the Rust definitions (src/gpu/shader.rs, `header`): the parameter offsets, the
// per-pattern layout (X0 .. Y, D1 .. DY, PART), the regions of `state` (P_OFF, G_OFF,
// E_OFF, V_OFF, H_OFF), the squashing and input constants, the workgroup sizes, where the
// C3 table sits in `small`, the `Step` record and every binding (src/gpu/bindings.rs), each
// declared with what it holds. Activations and deltas are one
// record of floats per pattern: acts [x0 | x1 | .. | y], deltas [d1 | .. | dy | PART], where
// a delta is dE/da of the layer's output (d2E/da2 in the SDLM sweep) and PART the pattern's
// share of the C1 .. S4 parameter gradients.

// Dispatches are 2-D when one dimension would exceed the device's limit (encode.rs): the
// invocation's index in a dispatch of WG-wide workgroups...
fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}
// ... and the workgroup's index.
fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
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

// C3's connection table (table I), from `small`: map o's links are c3_start(o) ..
// c3_start(o + 1), link l reading S2 map c3_in(l) into C3 map c3_map(l); the links reading
// S2 map c are c3_by_input_link(c3_by_input_start(c) ..). A table in a buffer, not an
// array in the shader: drivers turn a run-time index into a shader array into a chain of
// compares (or a copy of the array per invocation), which some compile for minutes.
fn table(i: u32) -> u32 {
    return u32(small[(C3_TABLE + i) / 4u][(C3_TABLE + i) % 4u]);
}
fn c3_start(o: u32) -> u32 { return table(C3_START + o); }
fn c3_in(l: u32) -> u32 { return table(C3_IN + l); }
fn c3_map(l: u32) -> u32 { return table(C3_MAP + l); }
fn c3_by_input_start(c: u32) -> u32 { return table(C3_BY_INPUT_START + c); }
fn c3_by_input_link(k: u32) -> u32 { return table(C3_BY_INPUT_LINK + k); }

// Parameter k of the flat layout, from `state`; squared in second-derivative mode (wt).
fn param(k: u32) -> f32 {
    return state[P_OFF + k];
}
fn wt(k: u32) -> f32 {
    let w = state[P_OFF + k];
    return select(w, w * w, step.mode == 1u);
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

// Activations and deltas: value i of the region at `off` of pattern b.
fn act(b: u32, off: u32, i: u32) -> f32 {
    return acts[b * ACT_STRIDE + off + i];
}
fn put_act(b: u32, off: u32, i: u32, v: f32) {
    acts[b * ACT_STRIDE + off + i] = v;
}
fn delta(b: u32, off: u32, i: u32) -> f32 {
    return deltas[b * DELTA_STRIDE + off + i];
}
fn put_delta(b: u32, off: u32, i: u32, v: f32) {
    deltas[b * DELTA_STRIDE + off + i] = v;
}

// A dense layer's parameter k (n_out x n_in weights, then n_out biases): sum_b d[o] x[j]
// (x squared in second-derivative mode) for a weight, sum_b d[o] for a bias, in pattern
// order. Weights and biases run the same loop, so the invocations of a SIMD group stay
// together (on lavapipe, bias invocations that looped apart from the weights of their
// group once summed wrong).
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
