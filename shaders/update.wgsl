// The SDLM step of parameter k, element-wise over the flat layout: v = momentum * v + g;
// w -= eps * v. Twin of cpu::update; run in batches whose record says update.

fn update_at(k: u32) {
    let v = step.momentum * state[V_OFF + k] + state[G_OFF + k];
    state[V_OFF + k] = v;
    state[P_OFF + k] = state[P_OFF + k] - state[E_OFF + k] * v;
}
