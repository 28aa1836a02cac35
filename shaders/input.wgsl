// The input plane: a u8 image of side 28 (padded by 2 with background) or 32, scaled so
// background (0) is -0.1 and full ink (255) is 1.175; with `train --distort`, warped first.
// Twins of `input_forward` in src/cpu/mod.rs and of `input_forward_distorted` in
// src/distort.rs. Both families take each value of x0 from `input_at`.

fn pixel(byte_index: u32) -> f32 {
    let word = images[byte_index / 4u];
    return f32((word >> ((byte_index % 4u) * 8u)) & 0xffu);
}

// Pixel (x, y) of image img, or 0 (background) outside it.
fn pixel_or_zero(img: u32, side: u32, x: i32, y: i32) -> f32 {
    if (x < 0 || y < 0 || x >= i32(side) || y >= i32(side)) { return 0.0; }
    return pixel(img * side * side + u32(y) * side + u32(x));
}

// Pixel (r, c) of the 32x32 input plane of image img, as it is.
fn input_plain(img: u32, r: u32, c: u32) -> f32 {
    let pad = (32u - step.side) / 2u;
    let v = pixel_or_zero(img, step.side, i32(c) - i32(pad), i32(r) - i32(pad));
    return v * INPUT_SCALE + INPUT_BACKGROUND;
}

// Pixel (r, c) of the 32x32 input plane of image img warped by its entry in `warps`
// (m00 m01 m10 m11 tx ty): the plane point u (relative to the centre (16, 16)) samples the
// image at m u + t, bilinearly (see src/distort.rs).
fn input_distorted(img: u32, r: u32, c: u32) -> f32 {
    let side = step.side;
    let pad = (32u - side) / 2u;
    let a = img * 6u;
    let ux = f32(c) + 0.5 - 16.0;
    let uy = f32(r) + 0.5 - 16.0;
    let shift = 16.0 - f32(pad) - 0.5;
    let sx = warps[a] * ux + warps[a + 1u] * uy + warps[a + 4u] + shift;
    let sy = warps[a + 2u] * ux + warps[a + 3u] * uy + warps[a + 5u] + shift;
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

// Value (r, c) of x0 for the batch's pattern b: warped in batches whose record says so.
fn input_at(b: u32, r: u32, c: u32) -> f32 {
    let img = order[step.start + b];
    if (step.distort == 1u) {
        return input_distorted(img, r, c);
    }
    return input_plain(img, r, c);
}
