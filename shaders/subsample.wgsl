// Subsampling family: S2 and S4. a = coef[c] * (sum of a 2x2 block) + bias[c], squashed.
// Twins of src/cpu/subsample.rs; `_input` and `_params` halves as in conv.wgsl.

// Sum of a 2x2 input block; of the squared inputs when `squared`.
fn block_sum(b: u32, off: u32, c: u32, h: u32, i: u32, j: u32, squared: bool) -> f32 {
    let hin = 2u * h;
    let base = c * hin * hin + 2u * i * hin + 2u * j;
    // Each row pair is within one texel: offsets are even.
    let top = act2(b, off, base);
    let bottom = act2(b, off, base + hin);
    let v = array<f32, 4>(top.x, top.y, bottom.x, bottom.y);
    var s = 0.0;
    /*unroll*/ for (var k = 0u; k < 4u; k++) { s += select(v[k], v[k] * v[k], squared); }
    return s;
}

// Invocation i of batch * c*h*h/4: four consecutive outputs of one pattern (c*h*h is a
// multiple of 4), written in one store.
fn subsample_forward(i: u32, c: u32, h: u32, xoff: u32, yoff: u32, w: u32, bias: u32) {
    let per = c * h * h / 4u;
    if (i >= step.batch * per) { return; }
    let b = i / per;
    let r0 = (i % per) * 4u;
    var v: array<f32, 4>;
    /*unroll*/ for (var k = 0u; k < 4u; k++) {
        let r = r0 + k;
        let m = r / (h * h);
        let y = (r % (h * h)) / h;
        let x = r % h;
        v[k] = squash(sparam(w + m) * block_sum(b, xoff, m, h, y, x, false) + sparam(bias + m));
    }
    put_act4(b, yoff, r0, vec4<f32>(v[0], v[1], v[2], v[3]));
}

// Parameter gradients in two stages (as C1's and C3's). Stage 1: one invocation per
// (pattern, map) sums d * (2x2 input sum) for the coefficient and d for the bias over the
// map's h x h units, and writes the texel (coefficient, bias, 0, 0) at PART + 4 * map.
fn subsample_backward_params(i: u32, c: u32, h: u32, xoff: u32, doff: u32) {
    if (i >= step.batch * c) { return; }
    let b = i / c;
    let m = i % c;
    var coef = 0.0;
    var bias = 0.0;
    for (var p = 0u; p < h * h; p++) {
        let d = delta(b, doff, m * h * h + p);
        coef += d * block_sum(b, xoff, m, h, p / h, p % h, step.mode == 1u);
        bias += d;
    }
    put_delta4(b, PART, 4u * m, vec4<f32>(coef, bias, 0.0, 0.0));
}

// Stage 2: invocation m of c adds the patterns' texels in order and writes the map's
// coefficient (w + m) and bias (w + c + m).
fn subsample_backward_params_sum(m: u32, c: u32, w: u32) {
    if (m >= c) { return; }
    var s = vec4<f32>(0.0);
    for (var b = 0u; b < step.batch; b++) {
        s += delta4(b, PART, 4u * m);
    }
    put_grad(w + m, s.x);
    put_grad(w + c + m, s.y);
}

// x1: (B,6,28,28) -> x2: (B,6,14,14)
@compute @workgroup_size(WG)
fn s2_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    subsample_forward(flat_id(gid, nwg), 6u, 14u, X1, X2, S2_W, S2_B);
}

// d2: (B,6,14,14) -> d1: (B,6,28,28). One invocation per pair of S2 units (x = 2j, 2j+1)
// of a row: their 2x2 blocks are four aligned inputs in each of two C1 rows, read and
// written a texel at a time. Only for inspection (GpuBackend::snapshot): in training,
// c1_backward_params computes d1 where it needs it.
@compute @workgroup_size(WG)
fn s2_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 588u) { return; }
    let b = i / 588u;
    let r = i % 588u; // (m, y, j): 6 x 14 x 7
    let m = r / 98u;
    let y = (r % 98u) / 7u;
    let j = r % 7u;
    let wm = swt(S2_W + m);
    let d = act2_of(delta4(b, D2, (m * 196u + y * 14u + 2u * j) & ~3u), m * 196u + y * 14u + 2u * j);
    let g0 = wm * d.x;
    let g1 = wm * d.y;
    let base = m * 784u + 2u * y * 28u + 4u * j;
    let top = act4(b, X1, base);
    let bottom = act4(b, X1, base + 28u);
    put_delta4(b, D1, base, vec4<f32>(dfac(top.x) * g0, dfac(top.y) * g0, dfac(top.z) * g1, dfac(top.w) * g1));
    put_delta4(b, D1, base + 28u, vec4<f32>(dfac(bottom.x) * g0, dfac(bottom.y) * g0, dfac(bottom.z) * g1, dfac(bottom.w) * g1));
}

// x3: (B,16,10,10) -> x4: (B,16,5,5)
@compute @workgroup_size(WG)
fn s4_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    subsample_forward(flat_id(gid, nwg), 16u, 5u, X3, X4, S4_W, S4_B);
}

// d4: (B,16,5,5) -> d3: (B,16,10,10) = coef * d4 of the unit each input feeds, times
// f'(x3). One invocation per (pattern, map, row of S4): its five units' 2x2 blocks are
// the two C3 rows 2y and 2y + 1, twenty floats from a texel boundary, read and written
// five texels at a time.
@compute @workgroup_size(WG)
fn s4_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 80u) { return; }
    let b = i / 80u;
    let m = (i % 80u) / 5u;
    let y = i % 5u;
    let wm = swt(S4_W + m);
    var g: array<f32, 5>;
    /*unroll*/ for (var x = 0u; x < 5u; x++) { g[x] = wm * delta(b, D4, m * 25u + y * 5u + x); }
    let base = m * 100u + y * 20u;
    /*unroll*/ for (var q = 0u; q < 5u; q++) {
        let x = act4(b, X3, base + 4u * q);
        // Floats 4q .. 4q+3 of the two rows: row (4q) / 10, columns (4q) % 10 onward.
        var d: array<f32, 4>;
        /*unroll*/ for (var k = 0u; k < 4u; k++) {
            let col = (4u * q + k) % 10u;
            d[k] = g[col / 2u];
        }
        put_delta4(b, D3, base + 4u * q, vec4<f32>(dfac(x.x) * d[0], dfac(x.y) * d[1], dfac(x.z) * d[2], dfac(x.w) * d[3]));
    }
}

@compute @workgroup_size(WG)
fn s4_backward_params(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    subsample_backward_params(flat_id(gid, nwg), 16u, 5u, X3, D4);
}

@compute @workgroup_size(SUM_WG)
fn s4_backward_params_sum(@builtin(global_invocation_id) gid: vec3<u32>) {
    subsample_backward_params_sum(gid.x, 16u, S4_W);
}
