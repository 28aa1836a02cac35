// The SDLM update, element-wise over the flat parameter layout:
// v = momentum * v + g; w -= eps * v. Twin of the loop in CpuBackend::train_batch.

@compute @workgroup_size(64)
fn update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = flat_id(gid, nwg);
    if (k >= N_PARAMS) { return; }
    let v = step.momentum * state[V_OFF + k] + state[G_OFF + k];
    state[V_OFF + k] = v;
    state[P_OFF + k] = state[P_OFF + k] - state[E_OFF + k] * v;
}
