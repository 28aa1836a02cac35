// Input: a u8 image of side 28 (padded by 2 with background) or 32, scaled so background
// (0) is -0.1 and full ink (255) is 1.175. Twin of `input_forward` in src/cpu/mod.rs and,
// with step.distort, of `input_forward_distorted` in src/distort.rs.

fn pixel(byte_index: u32) -> f32 {
    let word = images[byte_index / 4u];
    return f32((word >> ((byte_index % 4u) * 8u)) & 0xffu);
}

// Pixel (x, y) of image img, or 0 (background) outside it.
fn pixel_or_zero(img: u32, side: u32, x: i32, y: i32) -> f32 {
    if (x < 0 || y < 0 || x >= i32(side) || y >= i32(side)) { return 0.0; }
    return pixel(img * side * side + u32(y) * side + u32(x));
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
    let img = order[step.start + b];
    var v = INPUT_BACKGROUND;
    if (step.distort == 1u) {
        // The plane point u (relative to the centre (16, 16)) samples the image at
        // m u + t, bilinearly (see src/distort.rs).
        let w = img * 6u;
        let ux = f32(c) + 0.5 - 16.0;
        let uy = f32(r) + 0.5 - 16.0;
        let shift = 16.0 - f32(pad) - 0.5;
        let sx = warps[w] * ux + warps[w + 1u] * uy + warps[w + 4u] + shift;
        let sy = warps[w + 2u] * ux + warps[w + 3u] * uy + warps[w + 5u] + shift;
        let x0f = floor(sx);
        let y0f = floor(sy);
        let fx = sx - x0f;
        let fy = sy - y0f;
        let xi = i32(x0f);
        let yi = i32(y0f);
        let top = pixel_or_zero(img, side, xi, yi) * (1.0 - fx) + pixel_or_zero(img, side, xi + 1, yi) * fx;
        let bottom = pixel_or_zero(img, side, xi, yi + 1) * (1.0 - fx) + pixel_or_zero(img, side, xi + 1, yi + 1) * fx;
        v = (top * (1.0 - fy) + bottom * fy) * INPUT_SCALE + INPUT_BACKGROUND;
    } else if (r >= pad && r < pad + side && c >= pad && c < pad + side) {
        v = pixel(img * side * side + (r - pad) * side + (c - pad)) * INPUT_SCALE + INPUT_BACKGROUND;
    }
    acts[b * ACT_STRIDE + X0 + p] = v;
}
