// Convolution family: C1, C3 (connection table), C5. Twins of src/cpu/conv.rs.
// Kernels are stored link by link: output map o owns links C3_START[o].. (C3) or o*cin..
// (C1, C5), 25 weights each.
//
// Each layer has a forward kernel, and backward kernels in two halves: `_input` gathers the
// gradient of the layer's input (times the squashing derivative of the layer below), and
// `_params` sums each parameter's gradient over the batch. In second-derivative mode
// (step.mode == 1, the `_hessian` twins on the CPU) the same kernels use squared weights,
// squared inputs and squared squashing derivatives.

var<private> C3_START: array<u32, 17> = C3_START_INIT;
var<private> C3_IN: array<u32, 60> = C3_IN_INIT;
var<private> C3_MAP: array<u32, 60> = C3_MAP_INIT;
var<private> C3_BY_INPUT_START: array<u32, 7> = C3_BY_INPUT_START_INIT;
var<private> C3_BY_INPUT_LINK: array<u32, 60> = C3_BY_INPUT_LINK_INIT;

// x0: (B,1,32,32) -> x1: (B,6,28,28)
@compute @workgroup_size(64)
fn c1_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 4704u) { return; }
    let b = i / 4704u;
    let r = i % 4704u;
    let o = r / 784u;
    let oy = (r % 784u) / 28u;
    let ox = r % 28u;
    var a = state[C1_B + o];
    for (var ky = 0u; ky < 5u; ky++) {
        for (var kx = 0u; kx < 5u; kx++) {
            a += state[C1_W + o * 25u + ky * 5u + kx] * act(b, X0, (oy + ky) * 32u + ox + kx);
        }
    }
    acts[b * ACT_STRIDE + X1 + r] = squash(a);
}

// One workgroup per C1 parameter (150 weights, then 6 biases): sum over (b, oy, ox) of
// d1 * x0 (weights) or d1 (biases).
@compute @workgroup_size(64)
fn c1_backward_params(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let k = wid.x;
    var s = 0.0;
    let n = step.batch * 784u;
    if (k < 150u) {
        let o = k / 25u;
        let ky = (k % 25u) / 5u;
        let kx = k % 5u;
        for (var t = lid; t < n; t += WG) {
            let b = t / 784u;
            let p = t % 784u;
            let oy = p / 28u;
            let ox = p % 28u;
            s += delta(b, D1, o * 784u + p) * xin(act(b, X0, (oy + ky) * 32u + ox + kx));
        }
    } else {
        let o = k - 150u;
        for (var t = lid; t < n; t += WG) {
            s += delta(t / 784u, D1, o * 784u + t % 784u);
        }
    }
    let total = workgroup_sum(lid, s);
    if (lid == 0u && k < 156u) {
        put_grad(C1_W + k, total);
    }
}

// x2: (B,6,14,14) -> x3: (B,16,10,10)
@compute @workgroup_size(64)
fn c3_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 1600u) { return; }
    let b = i / 1600u;
    let r = i % 1600u;
    let o = r / 100u;
    let oy = (r % 100u) / 10u;
    let ox = r % 10u;
    var a = state[C3_B + o];
    for (var l = C3_START[o]; l < C3_START[o + 1u]; l++) {
        let m = C3_IN[l];
        for (var ky = 0u; ky < 5u; ky++) {
            for (var kx = 0u; kx < 5u; kx++) {
                a += state[C3_W + l * 25u + ky * 5u + kx] * act(b, X2, m * 196u + (oy + ky) * 14u + ox + kx);
            }
        }
    }
    acts[b * ACT_STRIDE + X3 + r] = squash(a);
}

// d3: (B,16,10,10) -> d2: (B,6,14,14), gathered over the C3 maps that read each S2 map.
@compute @workgroup_size(64)
fn c3_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 1176u) { return; }
    let b = i / 1176u;
    let r = i % 1176u;
    let m = r / 196u;
    let y = (r % 196u) / 14u;
    let x = r % 14u;
    var s = 0.0;
    for (var n = C3_BY_INPUT_START[m]; n < C3_BY_INPUT_START[m + 1u]; n++) {
        let l = C3_BY_INPUT_LINK[n];
        let o = C3_MAP[l];
        for (var ky = 0u; ky < 5u; ky++) {
            if (y < ky || y - ky >= 10u) { continue; }
            for (var kx = 0u; kx < 5u; kx++) {
                if (x < kx || x - kx >= 10u) { continue; }
                s += wt(C3_W + l * 25u + ky * 5u + kx) * delta(b, D3, o * 100u + (y - ky) * 10u + x - kx);
            }
        }
    }
    deltas[b * DELTA_STRIDE + D2 + r] = dfac(act(b, X2, r)) * s;
}

// One workgroup per C3 parameter (1500 weights, then 16 biases).
@compute @workgroup_size(64)
fn c3_backward_params(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let k = wid.x;
    var s = 0.0;
    let n = step.batch * 100u;
    if (k < 1500u) {
        let l = k / 25u;
        let o = C3_MAP[l];
        let m = C3_IN[l];
        let ky = (k % 25u) / 5u;
        let kx = k % 5u;
        for (var t = lid; t < n; t += WG) {
            let b = t / 100u;
            let p = t % 100u;
            let oy = p / 10u;
            let ox = p % 10u;
            s += delta(b, D3, o * 100u + p) * xin(act(b, X2, m * 196u + (oy + ky) * 14u + ox + kx));
        }
    } else {
        let o = min(k - 1500u, 15u);
        for (var t = lid; t < n; t += WG) {
            s += delta(t / 100u, D3, o * 100u + t % 100u);
        }
    }
    let total = workgroup_sum(lid, s);
    if (lid == 0u && k < 1516u) {
        put_grad(C3_W + k, total);
    }
}

// x4: (B,16,5,5) -> x5: (B,120). A 5x5 kernel over a 5x5 input: one dot product of 400.
@compute @workgroup_size(64)
fn c5_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 120u) { return; }
    let b = i / 120u;
    let o = i % 120u;
    var a = state[C5_B + o];
    for (var k = 0u; k < 400u; k++) {
        a += state[C5_W + o * 400u + k] * act(b, X4, k);
    }
    acts[b * ACT_STRIDE + X5 + o] = squash(a);
}

// d5: (B,120) -> d4: (B,16,5,5)
@compute @workgroup_size(64)
fn c5_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 400u) { return; }
    let b = i / 400u;
    let k = i % 400u;
    var s = 0.0;
    for (var o = 0u; o < 120u; o++) {
        s += wt(C5_W + o * 400u + k) * delta(b, D5, o);
    }
    deltas[b * DELTA_STRIDE + D4 + k] = dfac(act(b, X4, k)) * s;
}

// One thread per C5 parameter (48000 weights, then 120 biases), summing over the batch.
@compute @workgroup_size(64)
fn c5_backward_params(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = flat_id(gid, nwg);
    if (k >= 48120u) { return; }
    var s = 0.0;
    if (k < 48000u) {
        let o = k / 400u;
        let m = k % 400u;
        for (var b = 0u; b < step.batch; b++) {
            s += delta(b, D5, o) * xin(act(b, X4, m));
        }
    } else {
        for (var b = 0u; b < step.batch; b++) {
            s += delta(b, D5, k - 48000u);
        }
    }
    put_grad(C5_W + k, s);
}
