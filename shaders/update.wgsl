// The SDLM update, element-wise over the flat parameter layout:
// v = momentum * v + g; w -= eps * v. Twin of cpu::update.
// One invocation per four parameters (N_PARAMS is a multiple of 4), which it writes with
// put_param4: to `state` and, on a CPU adapter, to the texture the kernels read.

@compute @workgroup_size(WG)
fn update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = 4u * flat_id(gid, nwg);
    if (k >= N_PARAMS) { return; }
    var w: array<f32, 4>;
    /*unroll*/ for (var j = 0u; j < 4u; j++) {
        let v = step.momentum * state[V_OFF + k + j] + state[G_OFF + k + j];
        state[V_OFF + k + j] = v;
        w[j] = state[P_OFF + k + j] - state[E_OFF + k + j] * v;
    }
    put_param4(k, vec4<f32>(w[0], w[1], w[2], w[3]));
}
