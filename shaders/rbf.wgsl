// Output family: Euclidean RBF units with fixed centres, the loss, the prediction.
// Twin of src/cpu/rbf.rs. The fixed centres (10, 84) are in the uniform buffer `small`.

fn centre(c: u32, j: u32) -> f32 {
    return sparam(RBF_CENTERS + c * 84u + j);
}

// x6: (B,84) -> y: (B,10). One invocation per pattern.
@compute @workgroup_size(WG)
fn rbf_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = flat_id(gid, nwg);
    if (b >= step.batch) { return; }
    var x: array<f32, 84>;
    /*unroll*/ for (var q = 0u; q < 21u; q++) {
        let v = act4(b, X6, 4u * q);
        x[4u * q] = v.x;
        x[4u * q + 1u] = v.y;
        x[4u * q + 2u] = v.z;
        x[4u * q + 3u] = v.w;
    }
    var y: array<f32, 12>;
    y[10] = 0.0;
    y[11] = 0.0;
    /*unroll*/ for (var c = 0u; c < 10u; c++) {
        var s = 0.0;
        /*unroll*/ for (var j = 0u; j < 84u; j++) {
            let d = x[j] - centre(c, j);
            s += d * d;
        }
        y[c] = s;
    }
    // Three stores of four: the last two floats are the padding after y.
    /*unroll*/ for (var q = 0u; q < 3u; q++) {
        put_act4(b, Y, 4u * q, vec4<f32>(y[4u * q], y[4u * q + 1u], y[4u * q + 2u], y[4u * q + 3u]));
    }
}

// dy -> d6: (B,84) = f'(a6) * sum_i dy_i * 2 (x6 - c_i); in second-derivative mode
// (rbf_hessian on the CPU) d2E/dx6^2 = 2, times f'(a6)^2. One invocation per pattern.
@compute @workgroup_size(WG)
fn rbf_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = flat_id(gid, nwg);
    if (b >= step.batch) { return; }
    var dy: array<f32, 12>;
    /*unroll*/ for (var q = 0u; q < 3u; q++) {
        let v = delta4(b, DY, 4u * q);
        dy[4u * q] = v.x;
        dy[4u * q + 1u] = v.y;
        dy[4u * q + 2u] = v.z;
        dy[4u * q + 3u] = v.w;
    }
    /*unroll*/ for (var q = 0u; q < 21u; q++) {
        let x = act4(b, X6, 4u * q);
        var s = vec4<f32>(2.0);
        if (step.mode == 0u) {
            s = vec4<f32>(0.0);
            /*unroll*/ for (var c = 0u; c < 10u; c++) {
                let v = small[(RBF_CENTERS + c * 84u) / 4u + q];
                s += dy[c] * 2.0 * (x - v);
            }
        }
        put_delta4(b, D6, 4u * q, vec4<f32>(dfac(x.x), dfac(x.y), dfac(x.z), dfac(x.w)) * s);
    }
}
