// Input: a u8 image of side 28 (padded by 2 with background) or 32, scaled so background
// (0) is -0.1 and full ink (255) is 1.175. Twin of `input_forward` in src/cpu/mod.rs.

fn pixel(byte_index: u32) -> f32 {
    let word = images[byte_index / 4u];
    return f32((word >> ((byte_index % 4u) * 8u)) & 0xffu);
}

// x0: (B,1,32,32)
@compute @workgroup_size(64)
fn input_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 1024u) { return; }
    let b = i / 1024u;
    let p = i % 1024u;
    let r = p / 32u;
    let c = p % 32u;
    let side = step.side;
    let pad = (32u - side) / 2u;
    var v = INPUT_BACKGROUND;
    if (r >= pad && r < pad + side && c >= pad && c < pad + side) {
        let img = order[step.start + b];
        v = pixel(img * side * side + (r - pad) * side + (c - pad)) * INPUT_SCALE + INPUT_BACKGROUND;
    }
    acts[b * ACT_STRIDE + X0 + p] = v;
}
