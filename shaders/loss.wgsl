// The loss of a pattern, dE/dy and the prediction from its RBF outputs: the twin of
// loss_forward_backward and predict in src/cpu/rbf.rs, shared by both kernel families.

// Pattern b's loss and prediction from its RBF outputs y: writes dE/dy and stats, and
// returns dE/dy.
fn loss_at(b: u32, y: array<f32, 10>) -> array<f32, 10> {
    let label = labels[order[step.start + b]];
    var best = 0u;
    var ymin = y[0];
    for (var i = 1u; i < 10u; i++) {
        if (y[i] < ymin) { ymin = y[i]; best = i; }
    }
    var e = 0.0;
    var dy: array<f32, 10>;
    for (var i = 0u; i < 10u; i++) {
        if (i == label) { e = y[i]; }
    }
    if (step.loss == 0u) {
        for (var i = 0u; i < 10u; i++) {
            dy[i] = select(0.0, 1.0, i == label);
        }
    } else {
        // ln(e^-j + sum e^-y_i) around m = min(j, min y), as on the CPU.
        let m = min(step.map_j, ymin);
        var z = exp(m - step.map_j);
        for (var i = 0u; i < 10u; i++) {
            z += exp(m - y[i]);
        }
        for (var i = 0u; i < 10u; i++) {
            dy[i] = select(0.0, 1.0, i == label) - exp(m - y[i]) / z;
        }
        e = e - m + log(z);
    }
    for (var i = 0u; i < 10u; i++) { put_delta(b, DY, i, dy[i]); }
    stats[2u * (step.start + b)] = e;
    stats[2u * (step.start + b) + 1u] = f32(best);
    return dy;
}
