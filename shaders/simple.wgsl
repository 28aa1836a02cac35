// The `simple` family (`--kernels simple`): every pass of LeNet-5 in its simplest readable
// form, one invocation per output value (or per parameter), plain loops, no workgroup
// memory; 22 dispatches per training batch. It is where a reader learns each pass: every
// kernel is the loop of its CPU twin (src/cpu/) for one output, and has its name. The
// fused family (fused.wgsl) computes the same values in 6 dispatches; both are checked
// tensor by tensor against the CPU.
//
// Parameters come from `state` (param), squared in second-derivative mode (wt, swt);
// inputs to a parameter's gradient are squared in that mode (xin); squashing derivatives
// come from the layer's output (dfac, squared in that mode). Parameter gradients loop over
// the batch in pattern order, one invocation per parameter: a fixed order, no atomics.
// A weight and a bias of one layer run the same loop (the bias multiplying by 1 where a
// weight multiplies by an input), which keeps a GPU's SIMD groups together.

// x0: (B,1,32,32), the padded, scaled (and, with --distort, warped) image. Invocation
// (b, r, c).
@compute @workgroup_size(WG)
fn input_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 1024u) { return; }
    let r = i % 1024u;
    put_act(i / 1024u, X0, r, input_at(i / 1024u, r / 32u, r % 32u));
}

// ---- forward ----------------------------------------------------------------------

// One link's share of a 5x5 valid convolution at output position (y, x): the sum of its
// 25 weights (at w) times the input map `cin` (of side `hin`, at `xoff`) under the window.
fn conv_at(b: u32, xoff: u32, hin: u32, w: u32, cin: u32, y: u32, x: u32) -> f32 {
    var a = 0.0;
    for (var ky = 0u; ky < 5u; ky++) {
        for (var kx = 0u; kx < 5u; kx++) {
            a += param(w + ky * 5u + kx) * act(b, xoff, cin * hin * hin + (y + ky) * hin + x + kx);
        }
    }
    return a;
}

// x0: (B,1,32,32) -> x1: (B,6,28,28). Invocation (b, m, y, x).
@compute @workgroup_size(WG)
fn c1_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 4704u) { return; }
    let b = i / 4704u;
    let r = i % 4704u;
    let m = r / 784u;
    let a = param(C1_B + m) + conv_at(b, X0, 32u, C1_W + m * 25u, 0u, (r % 784u) / 28u, r % 28u);
    put_act(b, X1, r, squash(a));
}

// x1 -> x2 (S2) and x3 -> x4 (S4): coef[m] * (sum of a 2x2 block) + bias[m], squashed.
fn subsample_at(b: u32, xoff: u32, h: u32, m: u32, y: u32, x: u32) -> f32 {
    let hin = 2u * h;
    let base = m * hin * hin + 2u * y * hin + 2u * x;
    return act(b, xoff, base) + act(b, xoff, base + 1u) + act(b, xoff, base + hin) + act(b, xoff, base + hin + 1u);
}

@compute @workgroup_size(WG)
fn s2_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 1176u) { return; }
    let b = i / 1176u;
    let r = i % 1176u;
    let m = r / 196u;
    let s = subsample_at(b, X1, 14u, m, (r % 196u) / 14u, r % 14u);
    put_act(b, X2, r, squash(param(S2_W + m) * s + param(S2_B + m)));
}

// x2: (B,6,14,14) -> x3: (B,16,10,10), map o reading the S2 maps of its links (table I).
@compute @workgroup_size(WG)
fn c3_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 1600u) { return; }
    let b = i / 1600u;
    let r = i % 1600u;
    let o = r / 100u;
    let y = (r % 100u) / 10u;
    let x = r % 10u;
    var a = param(C3_B + o);
    for (var l = c3_start(o); l < c3_start(o + 1u); l++) {
        a += conv_at(b, X2, 14u, C3_W + l * 25u, c3_in(l), y, x);
    }
    put_act(b, X3, r, squash(a));
}

@compute @workgroup_size(WG)
fn s4_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 400u) { return; }
    let b = i / 400u;
    let r = i % 400u;
    let m = r / 25u;
    let s = subsample_at(b, X3, 5u, m, (r % 25u) / 5u, r % 5u);
    put_act(b, X4, r, squash(param(S4_W + m) * s + param(S4_B + m)));
}

// A dense layer's output o: f(bias[o] + sum_j W[o][j] x[j]), W (n_out, n_in) row-major.
fn dense_at(b: u32, xoff: u32, n_in: u32, w: u32, bias: u32, o: u32) -> f32 {
    var a = param(bias + o);
    for (var j = 0u; j < n_in; j++) {
        a += param(w + o * n_in + j) * act(b, xoff, j);
    }
    return squash(a);
}

// x4: (B,400) -> x5: (B,120): C5 is a 5x5 kernel over 5x5 inputs, a dense layer.
@compute @workgroup_size(WG)
fn c5_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 120u) { return; }
    put_act(i / 120u, X5, i % 120u, dense_at(i / 120u, X4, 400u, C5_W, C5_B, i % 120u));
}

// x5: (B,120) -> x6: (B,84)
@compute @workgroup_size(WG)
fn f6_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 84u) { return; }
    put_act(i / 84u, X6, i % 84u, dense_at(i / 84u, X5, 120u, F6_W, F6_B, i % 84u));
}

// x6: (B,84) -> y: (B,10): the squared distance of F6's output to class c's centre.
@compute @workgroup_size(WG)
fn rbf_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * CLASSES) { return; }
    let b = i / CLASSES;
    let c = i % CLASSES;
    var s = 0.0;
    for (var j = 0u; j < CENTRE_LEN; j++) {
        let d = act(b, X6, j) - sparam(RBF_CENTERS + c * CENTRE_LEN + j);
        s += d * d;
    }
    put_act(b, Y, c, s);
}

// The loss, dE/dy: (B,10), and (loss, argmin y) into stats. Invocation b. Not in the SDLM
// sweep (mode 1), which starts from the RBF layer's constant second derivative.
@compute @workgroup_size(WG)
fn loss_forward_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = flat_id(gid, nwg);
    if (b >= step.batch || step.mode == 1u) { return; }
    var y: array<f32, 10>;
    for (var c = 0u; c < CLASSES; c++) { y[c] = act(b, Y, c); }
    _ = loss_at(b, y);
}

// ---- backward: input gradients ------------------------------------------------------
// Each writes dE/da of the layer below (its d), from the layer above's d; in
// second-derivative mode the same with squared weights and squashing derivatives.

// dy: (B,10) -> d6: (B,84) = f'(a6) sum_c dy[c] 2 (x6 - centre_c); in second-derivative
// mode (rbf_hessian on the CPU) d2E/dx6^2 = 2, times f'(a6)^2.
@compute @workgroup_size(WG)
fn rbf_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * CENTRE_LEN) { return; }
    let b = i / CENTRE_LEN;
    let j = i % CENTRE_LEN;
    let x = act(b, X6, j);
    var s = 2.0;
    if (step.mode == 0u) {
        s = 0.0;
        for (var c = 0u; c < CLASSES; c++) {
            s += delta(b, DY, c) * 2.0 * (x - sparam(RBF_CENTERS + c * CENTRE_LEN + j));
        }
    }
    put_delta(b, D6, j, dfac(x) * s);
}

// A dense layer's input gradient j: f'(a[j]) sum_o W[o][j] d[o], W (n_out, n_in) row-major,
// the twin of dense_at.
fn dense_input_at(b: u32, n_in: u32, n_out: u32, w: u32, doff: u32, xoff: u32, j: u32) -> f32 {
    var s = 0.0;
    for (var o = 0u; o < n_out; o++) {
        s += wt(w + o * n_in + j) * delta(b, doff, o);
    }
    return dfac(act(b, xoff, j)) * s;
}

// d6: (B,84) -> d5: (B,120)
@compute @workgroup_size(WG)
fn f6_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 120u) { return; }
    put_delta(i / 120u, D5, i % 120u, dense_input_at(i / 120u, 120u, 84u, F6_W, D6, X5, i % 120u));
}

// d5: (B,120) -> d4: (B,400)
@compute @workgroup_size(WG)
fn c5_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 400u) { return; }
    put_delta(i / 400u, D4, i % 400u, dense_input_at(i / 400u, 400u, 120u, C5_W, D5, X4, i % 400u));
}

// A subsampling layer's input gradient r (maps of side 2h): every input of a 2x2 block
// gets f'(a) coef[m] d of its unit, the twin of subsample_at.
fn subsample_input_at(b: u32, h: u32, coef: u32, doff: u32, xoff: u32, r: u32) -> f32 {
    let hin = 2u * h;
    let m = r / (hin * hin);
    let y = (r % (hin * hin)) / hin;
    let x = r % hin;
    let d = delta(b, doff, m * h * h + (y / 2u) * h + x / 2u);
    return dfac(act(b, xoff, r)) * wt(coef + m) * d;
}

// d4: (B,16,5,5) -> d3: (B,16,10,10)
@compute @workgroup_size(WG)
fn s4_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 1600u) { return; }
    put_delta(i / 1600u, D3, i % 1600u, subsample_input_at(i / 1600u, 5u, S4_W, D4, X3, i % 1600u));
}

// d3: (B,16,10,10) -> d2: (B,6,14,14): S2 map c's input (y, x) gathers, over the links
// that read map c, the output units whose 5x5 window covers it.
@compute @workgroup_size(WG)
fn c3_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 1176u) { return; }
    let b = i / 1176u;
    let r = i % 1176u;
    let c = r / 196u;
    let y = (r % 196u) / 14u;
    let x = r % 14u;
    var s = 0.0;
    for (var n = c3_by_input_start(c); n < c3_by_input_start(c + 1u); n++) {
        let l = c3_by_input_link(n);
        for (var ky = 0u; ky < 5u; ky++) {
            for (var kx = 0u; kx < 5u; kx++) {
                // The output (y - ky, x - kx), where it exists.
                if (y >= ky && y - ky < 10u && x >= kx && x - kx < 10u) {
                    s += wt(C3_W + l * 25u + ky * 5u + kx) * delta(b, D3, c3_map(l) * 100u + (y - ky) * 10u + x - kx);
                }
            }
        }
    }
    put_delta(b, D2, r, dfac(act(b, X2, r)) * s);
}

// d2: (B,6,14,14) -> d1: (B,6,28,28)
@compute @workgroup_size(WG)
fn s2_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= step.batch * 4704u) { return; }
    put_delta(i / 4704u, D1, i % 4704u, subsample_input_at(i / 4704u, 14u, S2_W, D2, X1, i % 4704u));
}

// ---- backward: parameter gradients --------------------------------------------------
// One invocation per parameter, summing over the batch in pattern order.

// dense_param (common.wgsl): one dense-layer parameter's batch sum.

@compute @workgroup_size(WG)
fn f6_backward_params(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = flat_id(gid, nwg);
    if (k >= 84u * 121u) { return; }
    put_grad(F6_W + k, dense_param(k, 120u, 84u, X5, D6));
}

@compute @workgroup_size(WG)
fn c5_backward_params(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = flat_id(gid, nwg);
    if (k >= 120u * 401u) { return; }
    put_grad(C5_W + k, dense_param(k, 400u, 120u, X4, D5));
}

// A subsampling layer's parameter k (c coefficients, then c biases): the sum over the
// batch and the map's h x h units of d * (2x2 input sum, of squared inputs in
// second-derivative mode) for a coefficient, of d for a bias; one loop for both.
fn subsample_param(k: u32, c: u32, h: u32, xoff: u32, doff: u32) -> f32 {
    let bias = k >= c;
    let m = k % c;
    let hin = 2u * h;
    var s = 0.0;
    for (var b = 0u; b < step.batch; b++) {
        for (var p = 0u; p < h * h; p++) {
            let base = m * hin * hin + 2u * (p / h) * hin + 2u * (p % h);
            let x = xin(act(b, xoff, base)) + xin(act(b, xoff, base + 1u))
                + xin(act(b, xoff, base + hin)) + xin(act(b, xoff, base + hin + 1u));
            s += delta(b, doff, m * h * h + p) * select(x, 1.0, bias);
        }
    }
    return s;
}

@compute @workgroup_size(WG)
fn s4_backward_params(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = flat_id(gid, nwg);
    if (k >= 32u) { return; }
    put_grad(S4_W + k, subsample_param(k, 16u, 5u, X3, D4));
}

@compute @workgroup_size(WG)
fn s2_backward_params(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = flat_id(gid, nwg);
    if (k >= 12u) { return; }
    put_grad(S2_W + k, subsample_param(k, 6u, 14u, X1, D2));
}

// A convolution's parameter: weight (ky, kx) = (tap / 5, tap % 5) of the link from input
// map `cin` (side `hin`) to output map `omap` (side `ho`), or, when `bias`, that map's
// bias: the sum over the batch and the map's outputs of d * x (x squared in
// second-derivative mode), or of d. Weights and biases run the same loop, so the
// invocations of a workgroup stay together.
fn conv_param(bias: bool, tap: u32, cin: u32, omap: u32, ho: u32, hin: u32, xoff: u32, doff: u32) -> f32 {
    let ky = tap / 5u;
    let kx = tap % 5u;
    var s = 0.0;
    for (var b = 0u; b < step.batch; b++) {
        for (var p = 0u; p < ho * ho; p++) {
            let y = p / ho;
            let x = p % ho;
            let input = xin(act(b, xoff, cin * hin * hin + (y + ky) * hin + x + kx));
            s += delta(b, doff, omap * ho * ho + p) * select(input, 1.0, bias);
        }
    }
    return s;
}

// C3: 60 links x 25 weights, then 16 biases.
@compute @workgroup_size(WG)
fn c3_backward_params(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = flat_id(gid, nwg);
    if (k >= 1516u) { return; }
    let bias = k >= 1500u;
    let l = select(k / 25u, 0u, bias);
    let omap = select(c3_map(l), k - 1500u, bias);
    put_grad(C3_W + k, conv_param(bias, k % 25u, c3_in(l), omap, 10u, 14u, X2, D3));
}

// C1: 6 maps x 25 weights, then 6 biases.
@compute @workgroup_size(WG)
fn c1_backward_params(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = flat_id(gid, nwg);
    if (k >= 156u) { return; }
    let bias = k >= 150u;
    let omap = select(k / 25u, k - 150u, bias);
    put_grad(C1_W + k, conv_param(bias, k % 25u, 0u, omap, 28u, 32u, X0, D1));
}

// The SDLM step of every parameter (update.wgsl), in batches whose record says update.
@compute @workgroup_size(WG)
fn update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = flat_id(gid, nwg);
    if (k >= N_PARAMS || step.update == 0u) { return; }
    update_at(k);
}
