// Subsampling family: S2 and S4. a = coef[c] * (sum of a 2x2 block) + bias[c], squashed.
// Twins of src/cpu/subsample.rs; `_input` and `_params` halves as in conv.wgsl.

// Sum of a 2x2 input block; of the squared inputs when `squared`.
fn block_sum(b: u32, off: u32, c: u32, h: u32, i: u32, j: u32, squared: bool) -> f32 {
    let hin = 2u * h;
    let base = c * hin * hin + 2u * i * hin + 2u * j;
    var s = 0.0;
    for (var k = 0u; k < 4u; k++) {
        let v = act(b, off, base + (k / 2u) * hin + k % 2u);
        s += select(v, v * v, squared);
    }
    return s;
}

fn subsample_forward(i: u32, c: u32, h: u32, xoff: u32, yoff: u32, w: u32, bias: u32) {
    let per = c * h * h;
    if (i >= step.batch * per) { return; }
    let b = i / per;
    let r = i % per;
    let m = r / (h * h);
    let y = (r % (h * h)) / h;
    let x = r % h;
    acts[b * ACT_STRIDE + yoff + r] = squash(state[w + m] * block_sum(b, xoff, m, h, y, x, false) + state[bias + m]);
}

// d_out: (B,c,h,h) -> d_in: (B,c,2h,2h) = coef * d_out of the unit each input feeds.
fn subsample_backward_input(i: u32, c: u32, h: u32, xoff: u32, doff_out: u32, doff_in: u32, w: u32) {
    let hin = 2u * h;
    let per = c * hin * hin;
    if (i >= step.batch * per) { return; }
    let b = i / per;
    let r = i % per;
    let m = r / (hin * hin);
    let y = (r % (hin * hin)) / hin;
    let x = r % hin;
    let d = delta(b, doff_out, m * h * h + (y / 2u) * h + x / 2u);
    deltas[b * DELTA_STRIDE + doff_in + r] = dfac(act(b, xoff, r)) * wt(w + m) * d;
}

// Parameter k of 2c (c coefficients, then c biases), one workgroup each.
fn subsample_backward_params(k: u32, lid: u32, c: u32, h: u32, xoff: u32, doff: u32, w: u32) {
    let n = step.batch * h * h;
    let m = k % c;
    var s = 0.0;
    for (var t = lid; t < n; t += WG) {
        let b = t / (h * h);
        let p = t % (h * h);
        let d = delta(b, doff, m * h * h + p);
        if (k < c) {
            s += d * block_sum(b, xoff, m, h, p / h, p % h, step.mode == 1u);
        } else {
            s += d;
        }
    }
    let total = workgroup_sum(lid, s);
    if (lid == 0u) {
        put_grad(w + k, total);
    }
}

// x1: (B,6,28,28) -> x2: (B,6,14,14)
@compute @workgroup_size(64)
fn s2_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    subsample_forward(flat_id(gid, nwg), 6u, 14u, X1, X2, S2_W, S2_B);
}

// d2: (B,6,14,14) -> d1: (B,6,28,28)
@compute @workgroup_size(64)
fn s2_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    subsample_backward_input(flat_id(gid, nwg), 6u, 14u, X1, D2, D1, S2_W);
}

@compute @workgroup_size(64)
fn s2_backward_params(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    subsample_backward_params(wid.x, lid, 6u, 14u, X1, D2, S2_W);
}

// x3: (B,16,10,10) -> x4: (B,16,5,5)
@compute @workgroup_size(64)
fn s4_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    subsample_forward(flat_id(gid, nwg), 16u, 5u, X3, X4, S4_W, S4_B);
}

// d4: (B,16,5,5) -> d3: (B,16,10,10)
@compute @workgroup_size(64)
fn s4_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    subsample_backward_input(flat_id(gid, nwg), 16u, 5u, X3, D4, D3, S4_W);
}

@compute @workgroup_size(64)
fn s4_backward_params(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    subsample_backward_params(wid.x, lid, 16u, 5u, X3, D4, S4_W);
}
