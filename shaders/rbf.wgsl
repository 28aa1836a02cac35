// Output family: Euclidean RBF units with fixed centres, the loss, the prediction.
// Twin of src/cpu/rbf.rs. The centres live in `state` after the five parameter regions.

fn center(i: u32, j: u32) -> f32 {
    return state[CENTERS_OFF + i * 84u + j];
}

// x6: (B,84) -> y: (B,10)
@compute @workgroup_size(64)
fn rbf_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 10u) { return; }
    let b = i / 10u;
    let c = i % 10u;
    var s = 0.0;
    for (var j = 0u; j < 84u; j++) {
        let d = act(b, X6, j) - center(c, j);
        s += d * d;
    }
    acts[b * ACT_STRIDE + Y + c] = s;
}

// Per pattern: the loss, dE/dy: (B,10), and (loss, argmin y) into stats.
@compute @workgroup_size(64)
fn loss_forward_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = flat_id(gid, nwg);
    if (b >= step.batch) { return; }
    let label = labels[order[step.start + b]];
    var best = 0u;
    var ymin = act(b, Y, 0u);
    for (var i = 1u; i < 10u; i++) {
        let v = act(b, Y, i);
        if (v < ymin) { ymin = v; best = i; }
    }
    var e = act(b, Y, label);
    if (step.loss == 0u) {
        for (var i = 0u; i < 10u; i++) {
            deltas[b * DELTA_STRIDE + DY + i] = select(0.0, 1.0, i == label);
        }
    } else {
        // ln(e^-j + sum e^-y_i) around m = min(j, min y), as on the CPU.
        let m = min(step.map_j, ymin);
        var z = exp(m - step.map_j);
        for (var i = 0u; i < 10u; i++) {
            z += exp(m - act(b, Y, i));
        }
        for (var i = 0u; i < 10u; i++) {
            deltas[b * DELTA_STRIDE + DY + i] = select(0.0, 1.0, i == label) - exp(m - act(b, Y, i)) / z;
        }
        e = e - m + log(z);
    }
    stats[2u * (step.start + b)] = e;
    stats[2u * (step.start + b) + 1u] = f32(best);
}

// dy -> d6: (B,84) = f'(a6) * sum_i dy_i * 2 (x6 - c_i); in second-derivative mode
// (rbf_hessian on the CPU) d2E/dx6^2 = 2, times f'(a6)^2.
@compute @workgroup_size(64)
fn rbf_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 84u) { return; }
    let b = i / 84u;
    let j = i % 84u;
    let x = act(b, X6, j);
    var s = 2.0;
    if (step.mode == 0u) {
        s = 0.0;
        for (var c = 0u; c < 10u; c++) {
            s += delta(b, DY, c) * 2.0 * (x - center(c, j));
        }
    }
    deltas[b * DELTA_STRIDE + D6 + j] = dfac(x) * s;
}
