// Fully connected family: F6, 120 -> 84. Twin of src/cpu/full.rs.

// x5: (B,120) -> x6: (B,84)
@compute @workgroup_size(64)
fn f6_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 84u) { return; }
    let b = i / 84u;
    let j = i % 84u;
    var a = state[F6_B + j];
    for (var k = 0u; k < 120u; k++) {
        a += state[F6_W + j * 120u + k] * act(b, X5, k);
    }
    acts[b * ACT_STRIDE + X6 + j] = squash(a);
}

// d6: (B,84) -> d5: (B,120)
@compute @workgroup_size(64)
fn f6_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 120u) { return; }
    let b = i / 120u;
    let k = i % 120u;
    var s = 0.0;
    for (var j = 0u; j < 84u; j++) {
        s += wt(F6_W + j * 120u + k) * delta(b, D6, j);
    }
    deltas[b * DELTA_STRIDE + D5 + k] = dfac(act(b, X5, k)) * s;
}

// One thread per F6 parameter (10080 weights, then 84 biases), summing over the batch.
@compute @workgroup_size(64)
fn f6_backward_params(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = flat_id(gid, nwg);
    if (k >= 10164u) { return; }
    var s = 0.0;
    if (k < 10080u) {
        let j = k / 120u;
        let m = k % 120u;
        for (var b = 0u; b < step.batch; b++) {
            s += delta(b, D6, j) * xin(act(b, X5, m));
        }
    } else {
        for (var b = 0u; b < step.batch; b++) {
            s += delta(b, D6, k - 10080u);
        }
    }
    put_grad(F6_W + k, s);
}
