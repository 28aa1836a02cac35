// The loss of each pattern, dE/dy and the prediction: the twin of loss_forward_backward
// and predict in src/cpu/rbf.rs, shared by both kernel families.

// Per pattern: the loss, dE/dy: (B,10), and (loss, argmin y) into stats.
@compute @workgroup_size(WG)
fn loss_forward_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = flat_id(gid, nwg);
    if (b >= step.batch) { return; }
    // y, then two floats of padding: three texels.
    var y: array<f32, 12>;
    /*unroll*/ for (var q = 0u; q < 3u; q++) {
        let v = act4(b, Y, 4u * q);
        y[4u * q] = v.x;
        y[4u * q + 1u] = v.y;
        y[4u * q + 2u] = v.z;
        y[4u * q + 3u] = v.w;
    }
    loss_at(b, y);
}

// Pattern b's loss and prediction from its RBF outputs y (the first CLASSES of 12): writes
// dE/dy and stats. Also called by the hardware family's head_forward (fused.wgsl).
fn loss_at(b: u32, y: array<f32, 12>) {
    let label = labels[order[step.start + b]];
    var best = 0u;
    var ymin = y[0];
    /*unroll*/ for (var i = 1u; i < 10u; i++) {
        if (y[i] < ymin) { ymin = y[i]; best = i; }
    }
    var e = 0.0;
    // dE/dy, with the two floats of padding after it: three stores of four.
    var dy: array<f32, 12>;
    /*unroll*/ for (var i = 0u; i < 12u; i++) { dy[i] = 0.0; }
    /*unroll*/ for (var i = 0u; i < 10u; i++) {
        if (i == label) { e = y[i]; }
    }
    if (step.loss == 0u) {
        /*unroll*/ for (var i = 0u; i < 10u; i++) {
            dy[i] = select(0.0, 1.0, i == label);
        }
    } else {
        // ln(e^-j + sum e^-y_i) around m = min(j, min y), as on the CPU.
        let m = min(step.map_j, ymin);
        var z = exp(m - step.map_j);
        /*unroll*/ for (var i = 0u; i < 10u; i++) {
            z += exp(m - y[i]);
        }
        /*unroll*/ for (var i = 0u; i < 10u; i++) {
            dy[i] = select(0.0, 1.0, i == label) - exp(m - y[i]) / z;
        }
        e = e - m + log(z);
    }
    /*unroll*/ for (var q = 0u; q < 3u; q++) {
        put_delta4(b, DY, 4u * q, vec4<f32>(dy[4u * q], dy[4u * q + 1u], dy[4u * q + 2u], dy[4u * q + 3u]));
    }
    stats[2u * (step.start + b)] = e;
    stats[2u * (step.start + b) + 1u] = f32(best);
}
