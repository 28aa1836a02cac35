// Convolution family: C1, C3 (connection table), C5. Twins of src/cpu/conv.rs.
// Kernels are stored link by link: output map o owns links C3_START[o].. (C3) or o*cin..
// (C1, C5), 25 weights each.
//
// Each layer has a forward kernel, and backward kernels in two halves: `_input` gathers the
// gradient of the layer's input (times the squashing derivative of the layer below), and
// `_params` sums each parameter's gradient over the batch. In second-derivative mode
// (step.mode == 1, the `_hessian` twins on the CPU) the same kernels use squared weights,
// squared inputs and squared squashing derivatives.

// x0: (B,1,32,32) -> x1: (B,6,28,28). One invocation per 4x4 tile of output positions,
// all six maps: it loads its 8x8 input patch (16 texels) and C1's 156 parameters (39
// texels, the same for every invocation) once into registers and reuses each input value
// for up to 6*16 products.
@compute @workgroup_size(WG)
fn c1_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 49u) { return; }
    let b = i / 49u;
    let t = i % 49u;
    let y0 = (t / 7u) * 4u;
    let x0 = (t % 7u) * 4u;
    var p: array<f32, 64>;
    /*unroll*/ for (var y = 0u; y < 8u; y++) {
        /*unroll*/ for (var h = 0u; h < 2u; h++) {
            let v = act4(b, X0, (y0 + y) * 32u + x0 + 4u * h);
            p[y * 8u + 4u * h] = v.x;
            p[y * 8u + 4u * h + 1u] = v.y;
            p[y * 8u + 4u * h + 2u] = v.z;
            p[y * 8u + 4u * h + 3u] = v.w;
        }
    }
    // C1's weights and biases are the first 156 parameters (C1_W = 0, C1_B = 150).
    var w: array<f32, 156>;
    /*unroll*/ for (var k = 0u; k < 156u; k++) { w[k] = sparam(k); }
    /*unroll*/ for (var o = 0u; o < 6u; o++) {
        var a: array<f32, 16>;
        /*unroll*/ for (var j = 0u; j < 16u; j++) { a[j] = w[C1_B + o]; }
        /*unroll*/ for (var ky = 0u; ky < 5u; ky++) {
            /*unroll*/ for (var kx = 0u; kx < 5u; kx++) {
                /*unroll*/ for (var ty = 0u; ty < 4u; ty++) {
                    /*unroll*/ for (var tx = 0u; tx < 4u; tx++) {
                        a[ty * 4u + tx] += w[C1_W + o * 25u + ky * 5u + kx] * p[(ty + ky) * 8u + tx + kx];
                    }
                }
            }
        }
        /*unroll*/ for (var ty = 0u; ty < 4u; ty++) {
            let v = vec4<f32>(squash(a[ty * 4u]), squash(a[ty * 4u + 1u]), squash(a[ty * 4u + 2u]), squash(a[ty * 4u + 3u]));
            put_act4(b, X1, o * 784u + (y0 + ty) * 28u + x0, v);
        }
    }
}

// C1's parameter gradients in two stages, so that every sum keeps a fixed order. S2's
// input gradient d1 and S2's parameter gradients are computed here too: each needs the
// same x1 and d2 rows, and d1 is read by nothing else (s2_backward_input writes it only
// for inspection).
// Stage 1: one invocation per (pattern, block of 4 C1 output rows) holds the 8 input rows
// that the block needs in registers and, map by map:
//   d1[o] = f'(x1[o]) * coef[o] * d2[o] of the S2 unit each position feeds (the 4 rows);
//   sums d2 * (2x2 x1 sum) and d2 over the 2x14 S2 units of the block (S2's coefficient
//   and bias of map o);
//   sums d1[o] * x0 over the 4x28 positions for the 25 weights, and d1[o] for the bias.
// Partial sums go to the pattern's PART region, 168 per row block, 28 (seven texels) per
// map o: its 25 weights, its bias, then S2's coefficient and bias of map o.
@compute @workgroup_size(WG)
fn c1_backward_params(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 7u) { return; }
    let b = i / 7u;
    let rb = i % 7u;
    var p: array<f32, 256>; // x0 rows 4rb .. 4rb+7
    /*unroll*/ for (var q = 0u; q < 64u; q++) {
        let v = act4(b, X0, rb * 128u + 4u * q);
        p[4u * q] = xin(v.x);
        p[4u * q + 1u] = xin(v.y);
        p[4u * q + 2u] = xin(v.z);
        p[4u * q + 3u] = xin(v.w);
    }
    for (var o = 0u; o < 6u; o++) {
        var x1: array<f32, 112>; // x1[o] rows 4rb .. 4rb+3
        /*unroll*/ for (var q = 0u; q < 28u; q++) {
            let v = act4(b, X1, o * 784u + rb * 112u + 4u * q);
            x1[4u * q] = v.x;
            x1[4u * q + 1u] = v.y;
            x1[4u * q + 2u] = v.z;
            x1[4u * q + 3u] = v.w;
        }
        var d2: array<f32, 28>; // d2[o] rows 2rb, 2rb+1
        /*unroll*/ for (var q = 0u; q < 7u; q++) {
            let v = delta4(b, D2, o * 196u + rb * 28u + 4u * q);
            d2[4u * q] = v.x;
            d2[4u * q + 1u] = v.y;
            d2[4u * q + 2u] = v.z;
            d2[4u * q + 3u] = v.w;
        }
        // S2: as subsample_backward_params, unit by unit in order.
        var coef = 0.0;
        var sbias = 0.0;
        /*unroll*/ for (var u = 0u; u < 28u; u++) {
            let top = (u / 14u) * 56u + (u % 14u) * 2u;
            let v = array<f32, 4>(x1[top], x1[top + 1u], x1[top + 28u], x1[top + 29u]);
            var bs = 0.0;
            /*unroll*/ for (var k = 0u; k < 4u; k++) { bs += xin(v[k]); }
            coef += d2[u] * bs;
            sbias += d2[u];
        }
        // d1, as s2_backward_input: (coef * d2) times f'(x1).
        let ws = swt(S2_W + o);
        var d: array<f32, 112>;
        /*unroll*/ for (var y = 0u; y < 4u; y++) {
            /*unroll*/ for (var x = 0u; x < 28u; x++) {
                d[y * 28u + x] = dfac(x1[y * 28u + x]) * (ws * d2[(y / 2u) * 14u + x / 2u]);
            }
        }
        var g: array<f32, 25>;
        /*unroll*/ for (var k = 0u; k < 25u; k++) { g[k] = 0.0; }
        var bias = 0.0;
        /*unroll*/ for (var ty = 0u; ty < 4u; ty++) {
            /*unroll*/ for (var x = 0u; x < 28u; x++) { bias += d[ty * 28u + x]; }
            /*unroll*/ for (var ky = 0u; ky < 5u; ky++) {
                /*unroll*/ for (var kx = 0u; kx < 5u; kx++) {
                    /*unroll*/ for (var x = 0u; x < 28u; x++) {
                        g[ky * 5u + kx] += d[ty * 28u + x] * p[(ty + ky) * 32u + x + kx];
                    }
                }
            }
        }
        let v = array<f32, 28>(g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], g[12],
                               g[13], g[14], g[15], g[16], g[17], g[18], g[19], g[20], g[21], g[22], g[23], g[24],
                               bias, coef, sbias);
        /*unroll*/ for (var q = 0u; q < 7u; q++) {
            put_delta4(b, PART, rb * 168u + o * 28u + 4u * q, vec4<f32>(v[4u * q], v[4u * q + 1u], v[4u * q + 2u], v[4u * q + 3u]));
        }
    }
}

// Stage 2: one invocation per texel of a map's 28 partial sums (six maps of seven) adds
// them in order, pattern by pattern, row block by row block, and writes each float to its
// parameter: C1's weights and bias of the map, S2's coefficient and bias.
@compute @workgroup_size(SUM_WG)
fn c1_backward_params_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_id(gid, nwg);
    if (t >= 42u) { return; }
    let o = t / 7u;
    let q = t % 7u;
    var s = vec4<f32>(0.0);
    for (var b = 0u; b < step.batch; b++) {
        for (var rb = 0u; rb < 7u; rb++) {
            s += delta4(b, PART, rb * 168u + o * 28u + 4u * q);
        }
    }
    /*unroll*/ for (var k = 0u; k < 4u; k++) {
        let j = 4u * q + k;
        if (j < 25u) {
            put_grad(C1_W + o * 25u + j, s[k]);
        } else if (j == 25u) {
            put_grad(C1_B + o, s[k]);
        } else if (j == 26u) {
            put_grad(S2_W + o, s[k]);
        } else {
            put_grad(S2_B + o, s[k]);
        }
    }
}

// x2: (B,6,14,14) -> x3: (B,16,10,10). One invocation per (pattern, output map): the 100
// sums stay in registers while the linked S2 maps stream through, two rows (7 texels) at
// a time.
@compute @workgroup_size(WG)
fn c3_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 16u) { return; }
    // Map-major, so that neighbouring invocations (one SIMD group on a CPU adapter) loop
    // over the same number of links.
    let o = i / step.batch;
    let b = i % step.batch;
    var a: array<f32, 100>;
    let bias = sparam(C3_B + o);
    /*unroll*/ for (var j = 0u; j < 100u; j++) { a[j] = bias; }
    for (var l = C3_START[o]; l < C3_START[o + 1u]; l++) {
        let m = C3_IN[l];
        var w: array<f32, 25>;
        /*unroll*/ for (var k = 0u; k < 25u; k++) { w[k] = sparam(C3_W + l * 25u + k); }
        var rows: array<f32, 28>;
        /*unroll*/ for (var y = 0u; y < 14u; y++) {
            if (y % 2u == 0u) {
                /*unroll*/ for (var q = 0u; q < 7u; q++) {
                    let v = act4(b, X2, m * 196u + y * 14u + 4u * q);
                    rows[4u * q] = v.x;
                    rows[4u * q + 1u] = v.y;
                    rows[4u * q + 2u] = v.z;
                    rows[4u * q + 3u] = v.w;
                }
            }
            var row: array<f32, 14>;
            /*unroll*/ for (var x = 0u; x < 14u; x++) { row[x] = rows[(y % 2u) * 14u + x]; }
            /*unroll*/ for (var ky = 0u; ky < 5u; ky++) {
                if (ky <= y && y - ky < 10u) {
                    /*unroll*/ for (var kx = 0u; kx < 5u; kx++) {
                        /*unroll*/ for (var ox = 0u; ox < 10u; ox++) {
                            // (y + 10 - ky) % 10 is y - ky here; written so that the index
                            // stays in range in the copies the guard skips, which a GLSL
                            // compiler still range-checks after folding the constants.
                            a[((y + 10u - ky) % 10u) * 10u + ox] += w[ky * 5u + kx] * row[ox + kx];
                        }
                    }
                }
            }
        }
    }
    /*unroll*/ for (var q = 0u; q < 25u; q++) {
        let v = vec4<f32>(squash(a[4u * q]), squash(a[4u * q + 1u]), squash(a[4u * q + 2u]), squash(a[4u * q + 3u]));
        put_act4(b, X3, o * 100u + 4u * q, v);
    }
}

// d3: (B,16,10,10) -> d2: (B,6,14,14). One invocation per (pattern, S2 map m): scatters
// each linked C3 map's deltas, row by row, into 196 sums kept in registers.
@compute @workgroup_size(WG)
fn c3_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 6u) { return; }
    let b = i / 6u;
    let m = i % 6u;
    var s: array<f32, 196>;
    /*unroll*/ for (var j = 0u; j < 196u; j++) { s[j] = 0.0; }
    for (var n = C3_BY_INPUT_START[m]; n < C3_BY_INPUT_START[m + 1u]; n++) {
        let l = C3_BY_INPUT_LINK[n];
        let o = C3_MAP[l];
        var w: array<f32, 25>;
        /*unroll*/ for (var k = 0u; k < 25u; k++) { w[k] = swt(C3_W + l * 25u + k); }
        var rows: array<f32, 20>;
        /*unroll*/ for (var oy = 0u; oy < 10u; oy++) {
            if (oy % 2u == 0u) {
                /*unroll*/ for (var q = 0u; q < 5u; q++) {
                    let v = delta4(b, D3, o * 100u + oy * 10u + 4u * q);
                    rows[4u * q] = v.x;
                    rows[4u * q + 1u] = v.y;
                    rows[4u * q + 2u] = v.z;
                    rows[4u * q + 3u] = v.w;
                }
            }
            var row: array<f32, 10>;
            /*unroll*/ for (var ox = 0u; ox < 10u; ox++) { row[ox] = rows[(oy % 2u) * 10u + ox]; }
            /*unroll*/ for (var ky = 0u; ky < 5u; ky++) {
                /*unroll*/ for (var kx = 0u; kx < 5u; kx++) {
                    let wk = w[ky * 5u + kx];
                    /*unroll*/ for (var ox = 0u; ox < 10u; ox++) {
                        s[(oy + ky) * 14u + ox + kx] += wk * row[ox];
                    }
                }
            }
        }
    }
    /*unroll*/ for (var q = 0u; q < 49u; q++) {
        let r = m * 196u + 4u * q;
        let x = act4(b, X2, r);
        put_delta4(b, D2, r, vec4<f32>(dfac(x.x) * s[4u * q], dfac(x.y) * s[4u * q + 1u], dfac(x.z) * s[4u * q + 2u], dfac(x.w) * s[4u * q + 3u]));
    }
}

// C3's parameter gradients in two stages (as C1's). Stage 1: one invocation per (pattern,
// S2 map m) holds x2[m] in registers and, link by link over the ten links that read m,
// sums d3[o] * x2[m] for the link's 25 weights, written as seven texels at PART + 28 l
// (three floats of padding); it also sums the deltas of C3 maps 3m .. 3m+2 for their
// biases, one texel at PART + C3_PART_BIAS + 4m.
@compute @workgroup_size(WG)
fn c3_backward_params(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 6u) { return; }
    let b = i / 6u;
    let m = i % 6u;
    var sb = vec4<f32>(0.0);
    /*unroll*/ for (var j = 0u; j < 3u; j++) {
        // Map 3m + j; past the last map (m = 5), map 15 again, not written.
        let o = min(3u * m + j, 15u);
        var s = 0.0;
        /*unroll*/ for (var q = 0u; q < 25u; q++) {
            let v = delta4(b, D3, o * 100u + 4u * q);
            s += v.x;
            s += v.y;
            s += v.z;
            s += v.w;
        }
        sb[j] = select(0.0, s, 3u * m + j < 16u);
    }
    put_delta4(b, PART, C3_PART_BIAS + 4u * m, sb);
    var p: array<f32, 196>; // x2[m]
    /*unroll*/ for (var q = 0u; q < 49u; q++) {
        let v = act4(b, X2, m * 196u + 4u * q);
        p[4u * q] = xin(v.x);
        p[4u * q + 1u] = xin(v.y);
        p[4u * q + 2u] = xin(v.z);
        p[4u * q + 3u] = xin(v.w);
    }
    for (var n = C3_BY_INPUT_START[m]; n < C3_BY_INPUT_START[m + 1u]; n++) {
        let l = C3_BY_INPUT_LINK[n];
        let o = C3_MAP[l];
        var d: array<f32, 100>; // d3[o]
        /*unroll*/ for (var q = 0u; q < 25u; q++) {
            let v = delta4(b, D3, o * 100u + 4u * q);
            d[4u * q] = v.x;
            d[4u * q + 1u] = v.y;
            d[4u * q + 2u] = v.z;
            d[4u * q + 3u] = v.w;
        }
        var g: array<f32, 25>;
        /*unroll*/ for (var k = 0u; k < 25u; k++) { g[k] = 0.0; }
        /*unroll*/ for (var oy = 0u; oy < 10u; oy++) {
            /*unroll*/ for (var ky = 0u; ky < 5u; ky++) {
                /*unroll*/ for (var kx = 0u; kx < 5u; kx++) {
                    /*unroll*/ for (var x = 0u; x < 10u; x++) {
                        g[ky * 5u + kx] += d[oy * 10u + x] * p[(oy + ky) * 14u + x + kx];
                    }
                }
            }
        }
        let v = array<f32, 28>(g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], g[12],
                               g[13], g[14], g[15], g[16], g[17], g[18], g[19], g[20], g[21], g[22], g[23], g[24],
                               0.0, 0.0, 0.0);
        /*unroll*/ for (var q = 0u; q < 7u; q++) {
            put_delta4(b, PART, l * 28u + 4u * q, vec4<f32>(v[4u * q], v[4u * q + 1u], v[4u * q + 2u], v[4u * q + 3u]));
        }
    }
}

// Stage 2: one invocation per texel of partial sums (60 links of seven, then six of
// biases) adds the patterns' texels in order and writes each float to its parameter.
@compute @workgroup_size(SUM_WG)
fn c3_backward_params_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_id(gid, nwg);
    if (t >= 426u) { return; }
    // Link l's texel q is at 28 l + 4 q = 4 t.
    let off = select(C3_PART_BIAS + 4u * (t - 420u), 4u * t, t < 420u);
    var s = vec4<f32>(0.0);
    for (var b = 0u; b < step.batch; b++) {
        s += delta4(b, PART, off);
    }
    if (t < 420u) {
        let l = t / 7u;
        let q = t % 7u;
        /*unroll*/ for (var k = 0u; k < 4u; k++) {
            if (4u * q + k < 25u) { put_grad(C3_W + l * 25u + 4u * q + k, s[k]); }
        }
    } else {
        let m = t - 420u;
        /*unroll*/ for (var k = 0u; k < 3u; k++) {
            if (3u * m + k < 16u) { put_grad(C3_B + 3u * m + k, s[k]); }
        }
    }
}

// x4: (B,16,5,5) -> x5: (B,120). A 5x5 kernel over a 5x5 input is a dense layer of 400
// inputs (dense.wgsl).
@compute @workgroup_size(DENSE_WG)
fn c5_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    dense_forward(gid.x, 400u, 120u, X4, X5, C5_W, C5_B);
}

// d5: (B,120) -> d4: (B,16,5,5)
@compute @workgroup_size(DENSE_WG)
fn c5_backward_input(@builtin(global_invocation_id) gid: vec3<u32>) {
    dense_backward_input(gid.x, 400u, 120u, X4, D5, D4, C5_W);
}

// C5's 48000 weights and 120 biases, summed over the batch.
@compute @workgroup_size(WG)
fn c5_backward_params(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    dense_backward_params(flat_id(gid, nwg), 400u, 120u, X4, D5, C5_W, C5_B);
}
