// The software family's dense-layer code, which conv.wgsl (C5) and full.wgsl (F6) share.

// Dense layers (C5 is one: a 5x5 kernel over a 5x5 input), y = f(W x + bias) with W
// (n_out, n_in) row-major. Each invocation computes a register tile of 16 patterns x 8
// units (forward, input gradient) or 16 units x 8 inputs (weight gradient), so one fetch
// of four values serves 32 or 64 products. Invocations past the batch (or, for F6's 84
// units, past the last unit) read the last valid one and write nothing (no early return,
// so loops stay uniform). The forward and input-gradient kernels run in workgroups of 16
// (`DENSE_WG`): at small batches there are few tiles, and a CPU adapter runs each
// workgroup on one core.
const TILE: u32 = 8u;
// TILE_B (generated, src/gpu/kernels.rs) patterns per tile of the forward and
// input-gradient kernels; TILE_O units per tile of the weight gradient.
const TILE_O: u32 = 16u;

// Invocation t of (ceil(batch/16) * ceil(n_out/8)): x (B, n_in) at xoff -> y (B, n_out).
// n_in, w and bias are multiples of 4, so inputs and weights come four to a texel.
fn dense_forward(t: u32, n_in: u32, n_out: u32, xoff: u32, yoff: u32, w: u32, bias: u32) {
    let blocks = (n_out + TILE - 1u) / TILE;
    if (t >= ((step.batch + TILE_B - 1u) / TILE_B) * blocks) { return; }
    let b0 = (t / blocks) * TILE_B;
    let o0 = (t % blocks) * TILE;
    var a: array<f32, 128>;
    /*unroll*/ for (var oj = 0u; oj < 8u; oj++) {
        let bo = param(bias + min(o0 + oj, n_out - 1u));
        /*unroll*/ for (var bj = 0u; bj < 16u; bj++) { a[bj * 8u + oj] = bo; }
    }
    for (var k = 0u; k < n_in; k += 4u) {
        var x: array<vec4<f32>, 16>;
        /*unroll*/ for (var bj = 0u; bj < 16u; bj++) { x[bj] = act4(min(b0 + bj, step.batch - 1u), xoff, k); }
        /*unroll*/ for (var oj = 0u; oj < 8u; oj++) {
            let wk = param4(w + min(o0 + oj, n_out - 1u) * n_in + k);
            /*unroll*/ for (var bj = 0u; bj < 16u; bj++) {
                // One product at a time, in k order, as on the CPU.
                a[bj * 8u + oj] += wk.x * x[bj].x;
                a[bj * 8u + oj] += wk.y * x[bj].y;
                a[bj * 8u + oj] += wk.z * x[bj].z;
                a[bj * 8u + oj] += wk.w * x[bj].w;
            }
        }
    }
    // n_out is a multiple of 4: each half of a tile's row is in the layer or wholly past it.
    /*unroll*/ for (var bj = 0u; bj < 16u; bj++) {
        /*unroll*/ for (var h = 0u; h < 2u; h++) {
            if (b0 + bj < step.batch && o0 + 4u * h < n_out) {
                let j = bj * 8u + 4u * h;
                put_act4(b0 + bj, yoff, o0 + 4u * h, vec4<f32>(squash(a[j]), squash(a[j + 1u]), squash(a[j + 2u]), squash(a[j + 3u])));
            }
        }
    }
}

// Invocation t of (ceil(batch/16) * n_in/8): d_out (B, n_out) at doff_out -> d_in (B, n_in)
// at doff_in, times the squashing derivative of the input x at xoff. n_out is a multiple
// of 4, so the deltas come four to a texel.
fn dense_backward_input(t: u32, n_in: u32, n_out: u32, xoff: u32, doff_out: u32, doff_in: u32, w: u32) {
    let blocks = n_in / TILE;
    if (t >= ((step.batch + TILE_B - 1u) / TILE_B) * blocks) { return; }
    let b0 = (t / blocks) * TILE_B;
    let k0 = (t % blocks) * TILE;
    var s: array<f32, 128>;
    /*unroll*/ for (var j = 0u; j < 128u; j++) { s[j] = 0.0; }
    for (var o = 0u; o < n_out; o += 4u) {
        var d: array<vec4<f32>, 16>;
        /*unroll*/ for (var bj = 0u; bj < 16u; bj++) { d[bj] = delta4(min(b0 + bj, step.batch - 1u), doff_out, o); }
        /*unroll*/ for (var oi = 0u; oi < 4u; oi++) {
            let w0 = wt4(w + (o + oi) * n_in + k0);
            let w1 = wt4(w + (o + oi) * n_in + k0 + 4u);
            let wk = array<f32, 8>(w0.x, w0.y, w0.z, w0.w, w1.x, w1.y, w1.z, w1.w);
            /*unroll*/ for (var kj = 0u; kj < 8u; kj++) {
                /*unroll*/ for (var bj = 0u; bj < 16u; bj++) { s[bj * 8u + kj] += wk[kj] * d[bj][oi]; }
            }
        }
    }
    /*unroll*/ for (var bj = 0u; bj < 16u; bj++) {
        let b = b0 + bj;
        if (b < step.batch) {
            let x0 = act4(b, xoff, k0);
            let x1 = act4(b, xoff, k0 + 4u);
            let x = array<f32, 8>(x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w);
            /*unroll*/ for (var h = 0u; h < 2u; h++) {
                let j = bj * 8u + 4u * h;
                put_delta4(b, doff_in, k0 + 4u * h, vec4<f32>(dfac(x[4u * h]) * s[j], dfac(x[4u * h + 1u]) * s[j + 1u],
                                                              dfac(x[4u * h + 2u]) * s[j + 2u], dfac(x[4u * h + 3u]) * s[j + 3u]));
            }
        }
    }
}

// Invocation t of (ceil(n_out/16) * n_in/8): the gradient of a tile of 16 units x 8 inputs
// of W, summed over the batch in order; the tiles of the first 8 inputs also write the
// sums of their units' biases (every tile adds them: a CPU adapter would run a separate
// branch for all anyway). Past the last unit (F6's 84), a tile reads the next region's
// values and writes nothing.
fn dense_backward_params(t: u32, n_in: u32, n_out: u32, xoff: u32, doff: u32, w: u32, bias: u32) {
    let blocks_o = (n_out + TILE_O - 1u) / TILE_O;
    let blocks_k = n_in / TILE;
    let tiles = blocks_o * blocks_k;
    if (t >= tiles) { return; }
    let o0 = (t / blocks_k) * TILE_O;
    let k0 = (t % blocks_k) * TILE;
    var s: array<f32, 128>;
    /*unroll*/ for (var j = 0u; j < 128u; j++) { s[j] = 0.0; }
    var sb: array<f32, 16>;
    /*unroll*/ for (var j = 0u; j < 16u; j++) { sb[j] = 0.0; }
    for (var b = 0u; b < step.batch; b++) {
        let x0 = act4(b, xoff, k0);
        let x1 = act4(b, xoff, k0 + 4u);
        let x = array<f32, 8>(xin(x0.x), xin(x0.y), xin(x0.z), xin(x0.w), xin(x1.x), xin(x1.y), xin(x1.z), xin(x1.w));
        var d: array<f32, 16>;
        /*unroll*/ for (var q = 0u; q < 4u; q++) {
            let v = delta4(b, doff, o0 + 4u * q);
            d[4u * q] = v.x;
            d[4u * q + 1u] = v.y;
            d[4u * q + 2u] = v.z;
            d[4u * q + 3u] = v.w;
        }
        /*unroll*/ for (var oj = 0u; oj < 16u; oj++) {
            sb[oj] += d[oj];
            /*unroll*/ for (var kj = 0u; kj < 8u; kj++) { s[oj * 8u + kj] += d[oj] * x[kj]; }
        }
    }
    if (k0 == 0u) {
        /*unroll*/ for (var oj = 0u; oj < 16u; oj++) {
            if (o0 + oj < n_out) { put_grad(bias + o0 + oj, sb[oj]); }
        }
    }
    /*unroll*/ for (var oj = 0u; oj < 16u; oj++) {
        if (o0 + oj < n_out) {
            /*unroll*/ for (var kj = 0u; kj < 8u; kj++) {
                put_grad(w + (o0 + oj) * n_in + k0 + kj, s[oj * 8u + kj]);
            }
        }
    }
}
