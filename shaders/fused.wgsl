// The `fused` family (`--kernels fused`, the default): every pass of a training batch in
// 6 dispatches, shaped by a GPU's rules. simple.wgsl holds the same passes in their
// simplest form, one invocation per output value; this file fuses them where a tensor has
// one reader, keeps what a workgroup reuses (an input plane, a layer's weights, the head's
// activations) in workgroup memory, and gives each invocation one output or a few. Why
// each kernel is shaped as it is, with its counts, is in shaders/README.md.
//
// The dependency chain of a training batch, one dispatch per link (a dispatch is a
// device-wide barrier, the only one WebGPU has):
//   c1s2_forward (x0, C1, S2) -> c3s4_forward (C3, S4)
//   -> head_forward_backward (C5, F6, RBF, loss; d6, d5, d4)
//   -> conv_backward_input (d3, d2, d1)
//   -> conv_backward_params (each pattern's share of the C1, S2, C3, S4 gradients)
//   -> grad_sum_update (every gradient summed over the batch in pattern order, C5's and
//      F6's from the deltas, then the SDLM step).
// Evaluation runs c1s2_forward, c3s4_forward and head_forward.
//
// A kernel that owns a pattern (or HEAD_B patterns) takes one workgroup for it; a
// workgroup past the batch (the last row of a 2-D dispatch) returns before its first
// barrier. Within a workgroup values pass through workgroup memory, which each kernel
// writes before it reads it (it is not zeroed); what a kernel writes to a storage buffer
// only a later dispatch reads. Sums keep a fixed order, no atomics (shaders/README.md).

// ---- forward --------------------------------------------------------------------------

var<workgroup> plane: array<f32, 1024>;

// image -> x0: (B,1,32,32) -> x1: (B,6,28,28) -> x2: (B,6,14,14). One workgroup per
// pattern: the input plane (padded, scaled and, with --distort, warped: input.wgsl) into
// workgroup memory and out (C1's gradient reads x0); then one invocation per S2 position
// (14 x 14 = C1S2_WG): for each of the six maps it computes the
// 2x2 block of C1 outputs under its S2 unit (4 x 25 multiply-adds from the input plane in
// workgroup memory, weights from the uniform buffer, the same for every invocation),
// writes them (the backward pass reads x1) and their subsampled, squashed sum.
@compute @workgroup_size(C1S2_WG)
fn c1s2_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) t: u32) {
    let b = group_index(wid, nwg);
    if (b >= step.batch) { return; }
    for (var i = t; i < 1024u; i += C1S2_WG) {
        let v = input_at(b, i / 32u, i % 32u);
        plane[i] = v;
        put_act(b, X0, i, v);
    }
    workgroupBarrier();
    let y = t / 14u;
    let x = t % 14u;
    for (var m = 0u; m < 6u; m++) {
        var s = 0.0;
        for (var q = 0u; q < 4u; q++) {
            let cy = 2u * y + q / 2u;
            let cx = 2u * x + q % 2u;
            var a = sparam(C1_B + m);
            for (var ky = 0u; ky < 5u; ky++) {
                for (var kx = 0u; kx < 5u; kx++) {
                    a += sparam(C1_W + m * 25u + ky * 5u + kx) * plane[(cy + ky) * 32u + cx + kx];
                }
            }
            let v = squash(a);
            put_act(b, X1, m * 784u + cy * 28u + cx, v);
            s += v;
        }
        put_act(b, X2, m * 196u + t, squash(sparam(S2_W + m) * s + sparam(S2_B + m)));
    }
}

var<workgroup> s2_maps: array<f32, 1176>;
var<workgroup> c3_weights: array<f32, 1516>;

// x2: (B,6,14,14) -> x3: (B,16,10,10) -> x4: (B,16,5,5). Two workgroups per pattern, each
// for eight C3 maps, one invocation per (map, S4 position) (8 x 25 = C3S4_WG): the 2x2
// block of C3 outputs under its S4 unit, each over the S2 maps of its links (table I),
// from the S2 maps and C3's weights and biases in workgroup memory (10.8 KB).
@compute @workgroup_size(C3S4_WG)
fn c3s4_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) t: u32) {
    let g = group_index(wid, nwg);
    let b = g / 2u;
    if (b >= step.batch) { return; }
    for (var i = t; i < 1176u; i += C3S4_WG) { s2_maps[i] = act(b, X2, i); }
    for (var i = t; i < 1516u; i += C3S4_WG) { c3_weights[i] = param(C3_W + i); }
    workgroupBarrier();
    let o = 8u * (g % 2u) + t / 25u;
    let y = (t % 25u) / 5u;
    let x = t % 5u;
    var s = 0.0;
    for (var q = 0u; q < 4u; q++) {
        let cy = 2u * y + q / 2u;
        let cx = 2u * x + q % 2u;
        var a = c3_weights[1500u + o];
        for (var l = c3_start(o); l < c3_start(o + 1u); l++) {
            let base = c3_in(l) * 196u + cy * 14u + cx;
            for (var ky = 0u; ky < 5u; ky++) {
                for (var kx = 0u; kx < 5u; kx++) {
                    a += c3_weights[l * 25u + ky * 5u + kx] * s2_maps[base + ky * 14u + kx];
                }
            }
        }
        let v = squash(a);
        put_act(b, X3, o * 100u + cy * 10u + cx, v);
        s += v;
    }
    put_act(b, X4, o * 25u + y * 5u + x, squash(sparam(S4_W + o) * s + sparam(S4_B + o)));
}

// The head's tensors for the HEAD_B (= 4) patterns of a workgroup, pattern-major: four
// patterns are the four lanes of a vec4, so each weight read from memory serves four. The
// backward sweep overwrites x6 with d6, x5 with d5 and y with dy, each value by the
// invocation that read it.
var<workgroup> head_x4: array<f32, 1600>;
var<workgroup> head_x5: array<f32, 480>;
var<workgroup> head_x6: array<f32, 336>;
var<workgroup> head_y: array<f32, 40>;
// The RBF centres (CLASSES x CENTRE_LEN): read at an index that differs between the
// invocations of a SIMD group, which a uniform buffer serves one address at a time.
var<workgroup> centres: array<f32, 840>;

// Value i of a (HEAD_B, n) array in workgroup memory for the four patterns, as a vec4.
fn lanes_x4(i: u32) -> vec4<f32> {
    return vec4<f32>(head_x4[i], head_x4[400u + i], head_x4[800u + i], head_x4[1200u + i]);
}
fn lanes_x5(i: u32) -> vec4<f32> {
    return vec4<f32>(head_x5[i], head_x5[120u + i], head_x5[240u + i], head_x5[360u + i]);
}
fn lanes_x6(i: u32) -> vec4<f32> {
    return vec4<f32>(head_x6[i], head_x6[84u + i], head_x6[168u + i], head_x6[252u + i]);
}

// x4: (B,400) -> x5: (B,120) -> x6: (B,84) -> y: (B,10) for patterns b0 .. b0 + n (lanes
// past them compute on zeros, unwritten), then (backward sweep only) the loss, dE/dy
// (into head_y) and the statistics, as loss_forward_backward does. Each dense output is
// one invocation's dot product over the four patterns at once, its inputs from workgroup
// memory.
fn head_forward_at(t: u32, b0: u32, n: u32) {
    for (var i = t; i < HEAD_B * 400u; i += HEAD_WG) {
        // Not select(): it would read both sides, past the buffer for the last group.
        var v = 0.0;
        if (i / 400u < n) { v = act(b0 + i / 400u, X4, i % 400u); }
        head_x4[i] = v;
    }
    for (var i = t; i < CLASSES * CENTRE_LEN; i += HEAD_WG) {
        centres[i] = sparam(RBF_CENTERS + i);
    }
    workgroupBarrier();
    if (t < 120u) {
        var a = vec4<f32>(param(C5_B + t));
        for (var j = 0u; j < 400u; j++) {
            a += param(C5_W + t * 400u + j) * lanes_x4(j);
        }
        for (var p = 0u; p < HEAD_B; p++) {
            let v = squash(a[p]);
            head_x5[p * 120u + t] = v;
            if (p < n) { put_act(b0 + p, X5, t, v); }
        }
    }
    workgroupBarrier();
    if (t < 84u) {
        var a = vec4<f32>(param(F6_B + t));
        for (var j = 0u; j < 120u; j++) {
            a += param(F6_W + t * 120u + j) * lanes_x5(j);
        }
        for (var p = 0u; p < HEAD_B; p++) {
            let v = squash(a[p]);
            head_x6[p * 84u + t] = v;
            if (p < n) { put_act(b0 + p, X6, t, v); }
        }
    }
    workgroupBarrier();
    // The RBF layer: invocation (p, c), the squared distance to class c's centre.
    if (t < HEAD_B * CLASSES) {
        let p = t / CLASSES;
        let c = t % CLASSES;
        var s = 0.0;
        for (var j = 0u; j < CENTRE_LEN; j++) {
            let d = head_x6[p * 84u + j] - centres[c * CENTRE_LEN + j];
            s += d * d;
        }
        head_y[t] = s;
        if (p < n) { put_act(b0 + p, Y, c, s); }
    }
    workgroupBarrier();
    if (t < n && step.mode == 0u) {
        var y: array<f32, 10>;
        for (var c = 0u; c < CLASSES; c++) { y[c] = head_y[t * CLASSES + c]; }
        let dy = loss_at(b0 + t, y);
        for (var c = 0u; c < CLASSES; c++) { head_y[t * CLASSES + c] = dy[c]; }
    }
    workgroupBarrier();
}

// Evaluation: the head's forward pass, the loss and the statistics. One workgroup of
// HEAD_WG invocations per HEAD_B patterns.
@compute @workgroup_size(HEAD_WG)
fn head_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) t: u32) {
    let b0 = group_index(wid, nwg) * HEAD_B;
    if (b0 >= step.batch) { return; }
    head_forward_at(t, b0, min(HEAD_B, step.batch - b0));
}

// ---- backward: input gradients -------------------------------------------------------
// Each writes dE/da of the layers below (d), or in second-derivative mode d2E/da2, with
// squared weights and squashing derivatives (wt, dfac).

// Training and the SDLM sweep: head_forward_at, then dy: (B,10) -> d6: (B,84) -> d5:
// (B,120) -> d4: (B,400) for the same patterns, from workgroup memory. The input
// gradients read a weight column per invocation: neighbouring invocations read
// neighbouring weights.
@compute @workgroup_size(HEAD_WG)
fn head_forward_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) t: u32) {
    let b0 = group_index(wid, nwg) * HEAD_B;
    if (b0 >= step.batch) { return; }
    let n = min(HEAD_B, step.batch - b0);
    head_forward_at(t, b0, n);
    // The RBF layer: d6 = f'(a6) sum_c dy[c] 2 (x6 - centre_c), or f'(a6)^2 2.
    for (var i = t; i < HEAD_B * 84u; i += HEAD_WG) {
        let p = i / 84u;
        let j = i % 84u;
        var d = 0.0;
        if (p < n) {
            let x = head_x6[i];
            var s = 2.0;
            if (step.mode == 0u) {
                s = 0.0;
                for (var c = 0u; c < CLASSES; c++) {
                    s += head_y[p * CLASSES + c] * 2.0 * (x - centres[c * CENTRE_LEN + j]);
                }
            }
            d = dfac(x) * s;
            put_delta(b0 + p, D6, j, d);
        }
        head_x6[i] = d;
    }
    workgroupBarrier();
    if (t < 120u) {
        var s = vec4<f32>(0.0);
        for (var o = 0u; o < 84u; o++) {
            s += wt(F6_W + o * 120u + t) * lanes_x6(o);
        }
        for (var p = 0u; p < HEAD_B; p++) {
            var d = 0.0;
            if (p < n) {
                d = dfac(head_x5[p * 120u + t]) * s[p];
                put_delta(b0 + p, D5, t, d);
            }
            head_x5[p * 120u + t] = d;
        }
    }
    workgroupBarrier();
    for (var j = t; j < 400u; j += HEAD_WG) {
        var s = vec4<f32>(0.0);
        for (var o = 0u; o < 120u; o++) {
            s += wt(C5_W + o * 400u + j) * lanes_x5(o);
        }
        for (var p = 0u; p < n; p++) {
            put_delta(b0 + p, D4, j, dfac(head_x4[p * 400u + j]) * s[p]);
        }
    }
}

var<workgroup> c3_deltas: array<f32, 1600>;
var<workgroup> c3_wt: array<f32, 1500>;

// d4: (B,16,5,5) -> d3: (B,16,10,10) -> d2: (B,6,14,14) -> d1: (B,6,28,28). One workgroup
// of C3B_WG invocations per pattern: S4's input gradient into workgroup memory (and out,
// for C3's parameter gradients), then each S2 input's gather over the C3 outputs whose
// windows cover it, from d3 and C3's (squared) weights in workgroup memory (12.4 KB), and
// the four d1 values under it (S2's input gradient, element-wise).
@compute @workgroup_size(C3B_WG)
fn conv_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) t: u32) {
    let b = group_index(wid, nwg);
    if (b >= step.batch) { return; }
    for (var i = t; i < 1500u; i += C3B_WG) { c3_wt[i] = wt(C3_W + i); }
    for (var r = t; r < 1600u; r += C3B_WG) {
        let o = r / 100u;
        let u = o * 25u + ((r % 100u) / 20u) * 5u + (r % 10u) / 2u;
        let d = dfac(act(b, X3, r)) * swt(S4_W + o) * delta(b, D4, u);
        c3_deltas[r] = d;
        put_delta(b, D3, r, d);
    }
    workgroupBarrier();
    for (var r = t; r < 1176u; r += C3B_WG) {
        let c = r / 196u;
        let y = (r % 196u) / 14u;
        let x = r % 14u;
        var s = 0.0;
        for (var k = c3_by_input_start(c); k < c3_by_input_start(c + 1u); k++) {
            let l = c3_by_input_link(k);
            for (var ky = 0u; ky < 5u; ky++) {
                for (var kx = 0u; kx < 5u; kx++) {
                    // The output (y - ky, x - kx), where it exists.
                    if (y >= ky && y - ky < 10u && x >= kx && x - kx < 10u) {
                        s += c3_wt[l * 25u + ky * 5u + kx] * c3_deltas[c3_map(l) * 100u + (y - ky) * 10u + x - kx];
                    }
                }
            }
        }
        let d2 = dfac(act(b, X2, r)) * s;
        put_delta(b, D2, r, d2);
        let coef = swt(S2_W + c) * d2;
        for (var q = 0u; q < 4u; q++) {
            let i1 = c * 784u + (2u * y + q / 2u) * 28u + 2u * x + q % 2u;
            put_delta(b, D1, i1, dfac(act(b, X1, i1)) * coef);
        }
    }
}

// ---- backward: parameter gradients ---------------------------------------------------

var<workgroup> grad_x: array<f32, 1176>;
var<workgroup> grad_d: array<f32, 784>;
var<workgroup> grad_sums: array<vec2<f32>, PARAMS_WG>;

// Pattern b's share of parameter k (k < SMALL_PARAMS: C1, S2, C3, S4), the first stage.
fn put_part(b: u32, k: u32, s: f32) {
    put_delta(b, PART, k, s);
}

// grad_sums[0] = the sum of every invocation's v, in a fixed tree order.
fn workgroup_sum(t: u32, v: vec2<f32>) {
    grad_sums[t] = v;
    workgroupBarrier();
    for (var stride = PARAMS_WG / 2u; stride > 0u; stride /= 2u) {
        if (t < stride) { grad_sums[t] += grad_sums[t + stride]; }
        workgroupBarrier();
    }
}

// A subsampling map's (coefficient, bias) share of pattern b: the sums over its h x h
// units of d * (2x2 input sum, squared inputs in second-derivative mode) and of d.
fn subsample_share(t: u32, b: u32, m: u32, h: u32, xoff: u32, doff: u32) -> vec2<f32> {
    let hin = 2u * h;
    var s = vec2<f32>(0.0);
    for (var u = t; u < h * h; u += PARAMS_WG) {
        let base = m * hin * hin + 2u * (u / h) * hin + 2u * (u % h);
        let x = xin(act(b, xoff, base)) + xin(act(b, xoff, base + 1u))
            + xin(act(b, xoff, base + hin)) + xin(act(b, xoff, base + hin + 1u));
        let d = delta(b, doff, m * h * h + u);
        s += vec2<f32>(d * x, d);
    }
    return s;
}

// C1 map m (25 weights and its bias) and S2 map m (coefficient and bias), pattern b's
// share. Invocation t < 52 sums tap t % 26 (26: the bias, multiplying by 1) over 14 of
// the 28 output rows, from the input plane (squared in second-derivative mode) and the
// map's d1 in workgroup memory; the two halves are added in order.
fn c1s2_share(b: u32, m: u32, t: u32) {
    for (var i = t; i < 1024u; i += PARAMS_WG) { grad_x[i] = xin(act(b, X0, i)); }
    for (var i = t; i < 784u; i += PARAMS_WG) { grad_d[i] = delta(b, D1, m * 784u + i); }
    workgroupBarrier();
    var s = 0.0;
    if (t < 52u) {
        let tap = t % 26u;
        let bias = tap == 25u;
        let ky = select(tap / 5u, 0u, bias);
        let kx = select(tap % 5u, 0u, bias);
        let y0 = 14u * (t / 26u);
        for (var y = y0; y < y0 + 14u; y++) {
            for (var x = 0u; x < 28u; x++) {
                s += grad_d[y * 28u + x] * select(grad_x[(y + ky) * 32u + x + kx], 1.0, bias);
            }
        }
    }
    let sub = subsample_share(t, b, m, 14u, X1, D2);
    workgroupBarrier();
    grad_x[t] = s;
    workgroup_sum(t, sub);
    if (t < 26u) {
        put_part(b, select(C1_W + m * 25u + t, C1_B + m, t == 25u), grad_x[t] + grad_x[t + 26u]);
    }
    if (t == 0u) {
        put_part(b, S2_W + m, grad_sums[0].x);
        put_part(b, S2_B + m, grad_sums[0].y);
    }
}

// C3 map o (25 weights per link and its bias) and S4 map o, pattern b's share. Invocation
// t sums parameters t, t + PARAMS_WG, ... of the map (the bias last, multiplying by 1)
// over the 10 x 10 outputs, from the S2 maps (squared in second-derivative mode) and the
// map's d3 in workgroup memory.
fn c3s4_share(b: u32, o: u32, t: u32) {
    for (var i = t; i < 1176u; i += PARAMS_WG) { grad_x[i] = xin(act(b, X2, i)); }
    for (var i = t; i < 100u; i += PARAMS_WG) { grad_d[i] = delta(b, D3, o * 100u + i); }
    workgroupBarrier();
    let l0 = c3_start(o);
    let n = 25u * (c3_start(o + 1u) - l0) + 1u;
    for (var q = t; q < n; q += PARAMS_WG) {
        let bias = q == n - 1u;
        let l = l0 + select(q / 25u, 0u, bias);
        let tap = select(q % 25u, 0u, bias);
        let at = c3_in(l) * 196u + (tap / 5u) * 14u + tap % 5u;
        var s = 0.0;
        for (var p = 0u; p < 100u; p++) {
            s += grad_d[p] * select(grad_x[at + (p / 10u) * 14u + p % 10u], 1.0, bias);
        }
        put_part(b, select(C3_W + 25u * l0 + q, C3_B + o, bias), s);
    }
    workgroup_sum(t, subsample_share(t, b, o, 5u, X3, D4));
    if (t == 0u) {
        put_part(b, S4_W + o, grad_sums[0].x);
        put_part(b, S4_B + o, grad_sums[0].y);
    }
}

// The first stage of the C1, S2, C3 and S4 parameter gradients: PARAM_GROUPS workgroups
// per pattern, one per C1/S2 map (6) and per C3/S4 map (16), each writing its pattern's
// share of that map's parameters into PART.
@compute @workgroup_size(PARAMS_WG)
fn conv_backward_params(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) t: u32) {
    let g = group_index(wid, nwg);
    let b = g / PARAM_GROUPS;
    if (b >= step.batch) { return; }
    let map = g % PARAM_GROUPS;
    if (map < 6u) {
        c1s2_share(b, map, t);
    } else {
        c3s4_share(b, map - 6u, t);
    }
}

// The second stage, one invocation per parameter: its gradient summed over the batch in
// pattern order (C1 .. S4: the patterns' shares in PART; C5 and F6: from the deltas and
// activations, dense_param), into the gradient (or the SDLM accumulator); then, in
// batches whose record says update, the SDLM step of that parameter (update.wgsl).
@compute @workgroup_size(WG)
fn grad_sum_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = flat_id(gid, nwg);
    if (k >= N_PARAMS) { return; }
    var s = 0.0;
    if (k < SMALL_PARAMS) {
        for (var b = 0u; b < step.batch; b++) {
            s += delta(b, PART, k);
        }
    } else if (k < F6_W) {
        s = dense_param(k - C5_W, 400u, 120u, X4, D5);
    } else {
        s = dense_param(k - F6_W, 120u, 84u, X5, D6);
    }
    put_grad(k, s);
    if (step.update == 1u && step.mode == 0u) {
        update_at(k);
    }
}
