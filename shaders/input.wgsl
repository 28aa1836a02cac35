// Input: a u8 image of side 28 (padded by 2 with background) or 32, scaled so background
// (0) is -0.1 and full ink (255) is 1.175. Twins of `input_forward` in src/cpu/mod.rs and
// of `input_forward_distorted` in src/distort.rs.

fn pixel(byte_index: u32) -> f32 {
    let word = images[byte_index / 4u];
    return f32((word >> ((byte_index % 4u) * 8u)) & 0xffu);
}

// Pixel (x, y) of image img, or 0 (background) outside it.
fn pixel_or_zero(img: u32, side: u32, x: i32, y: i32) -> f32 {
    if (x < 0 || y < 0 || x >= i32(side) || y >= i32(side)) { return 0.0; }
    return pixel(img * side * side + u32(y) * side + u32(x));
}

// Pixel (r, c) of the 32x32 input plane of image img warped by `a` (m00 m01 m10 m11 tx ty).
fn input_distorted(img: u32, a: array<f32, 6>, r: u32, c: u32) -> f32 {
    let side = step.side;
    let pad = (32u - side) / 2u;
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
    return (top * (1.0 - fy) + bottom * fy) * INPUT_SCALE + INPUT_BACKGROUND;
}

// x0: (B,1,32,32). One invocation per row of the input plane: the image row is 7 (side
// 28) or 8 (side 32) whole words, read once; the plane row is 8 stores of four.
@compute @workgroup_size(WG)
fn input_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 32u) { return; }
    let b = i / 32u;
    let r = i % 32u;
    let img = order[step.start + b];
    var v: array<f32, 32>;
    /*unroll*/ for (var c = 0u; c < 32u; c++) { v[c] = INPUT_BACKGROUND; }
    let side = step.side;
    let pad = (32u - side) / 2u;
    if (r >= pad && r < pad + side) {
        // Rows start on a word: side * side and side are multiples of 4.
        let w0 = (img * side * side + (r - pad) * side) / 4u;
        var words: array<u32, 8>;
        /*unroll*/ for (var k = 0u; k < 7u; k++) { words[k] = images[w0 + k]; }
        if (side == 28u) {
            /*unroll*/ for (var k = 0u; k < 28u; k++) {
                v[k + 2u] = f32((words[k / 4u] >> ((k % 4u) * 8u)) & 0xffu) * INPUT_SCALE + INPUT_BACKGROUND;
            }
        } else {
            words[7] = images[w0 + 7u];
            /*unroll*/ for (var k = 0u; k < 32u; k++) {
                v[k] = f32((words[k / 4u] >> ((k % 4u) * 8u)) & 0xffu) * INPUT_SCALE + INPUT_BACKGROUND;
            }
        }
    }
    /*unroll*/ for (var q = 0u; q < 8u; q++) {
        put_act4(b, X0, r * 32u + 4u * q, vec4<f32>(v[4u * q], v[4u * q + 1u], v[4u * q + 2u], v[4u * q + 3u]));
    }
}

// x0: (B,1,32,32) with each training image warped by its entry in `warps` (train
// --distort; the host runs this kernel instead of input_forward for such batches). A
// kernel of its own: a CPU adapter runs both sides of a branch.
@compute @workgroup_size(WG)
fn input_forward_distorted(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 32u) { return; }
    let b = i / 32u;
    let r = i % 32u;
    let img = order[step.start + b];
    var a: array<f32, 6>;
    /*unroll*/ for (var k = 0u; k < 6u; k++) { a[k] = warps[img * 6u + k]; }
    /*unroll*/ for (var q = 0u; q < 8u; q++) {
        let v = vec4<f32>(input_distorted(img, a, r, 4u * q), input_distorted(img, a, r, 4u * q + 1u),
                          input_distorted(img, a, r, 4u * q + 2u), input_distorted(img, a, r, 4u * q + 3u));
        put_act4(b, X0, r * 32u + 4u * q, v);
    }
}
