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

// Pixel (r, c) of the 32x32 input plane of image img, warped by `a` (m00 m01 m10 m11 tx
// ty) when distorting.
fn input_value(img: u32, a: array<f32, 6>, r: u32, c: u32) -> f32 {
    let side = step.side;
    let pad = (32u - side) / 2u;
    var v = INPUT_BACKGROUND;
    if (step.distort == 1u) {
        // The plane point u (relative to the centre (16, 16)) samples the image at
        // m u + t, bilinearly (see src/distort.rs).
        let ux = f32(c) + 0.5 - 16.0;
        let uy = f32(r) + 0.5 - 16.0;
        let shift = 16.0 - f32(pad) - 0.5;
        let sx = a[0] * ux + a[1] * uy + a[4] + shift;
        let sy = a[2] * ux + a[3] * uy + a[5] + shift;
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
    return v;
}

// x0: (B,1,32,32). One invocation per four neighbouring pixels of a row, one store.
@compute @workgroup_size(64)
fn input_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 256u) { return; }
    let b = i / 256u;
    let p = (i % 256u) * 4u;
    let r = p / 32u;
    let c = p % 32u;
    let img = order[step.start + b];
    var a: array<f32, 6>;
    if (step.distort == 1u) {
        /*unroll*/ for (var k = 0u; k < 6u; k++) { a[k] = warps[img * 6u + k]; }
    }
    let v = vec4<f32>(input_value(img, a, r, c), input_value(img, a, r, c + 1u), input_value(img, a, r, c + 2u), input_value(img, a, r, c + 3u));
    acts_v[(b * ACT_STRIDE + X0 + p) / 4u] = v;
}
