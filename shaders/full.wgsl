// Fully connected family: F6, 120 -> 84. Twin of src/cpu/full.rs; the tiled dense-layer
// code it shares with C5 is in dense.wgsl.

// x5: (B,120) -> x6: (B,84)
@compute @workgroup_size(DENSE_WG)
fn f6_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    dense_forward(gid.x, 120u, 84u, X5, X6, F6_W, F6_B);
}

// d6: (B,84) -> d5: (B,120)
@compute @workgroup_size(DENSE_WG)
fn f6_backward_input(@builtin(global_invocation_id) gid: vec3<u32>) {
    dense_backward_input(gid.x, 120u, 84u, X5, D6, D5, F6_W);
}

// F6's 10080 weights and 84 biases, summed over the batch.
@compute @workgroup_size(WG)
fn f6_backward_params(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    dense_backward_params(flat_id(gid, nwg), 120u, 84u, X5, D6, F6_W, F6_B);
}
