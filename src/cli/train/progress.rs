//! What `train` shows as it goes: the table's header, a progress bar over each pass, and
//! each pass's line.

use super::{Backend, EpochReport, TrainConfig, loss_name, params};

/// The run's first line and the header of the table of passes.
pub(super) fn banner(
    backend: &dyn Backend,
    checked: Option<&str>,
    cfg: &TrainConfig,
    n_train: usize,
    n_test: usize,
) {
    println!(
        "LeNet-5, {} parameters | backend {} | {} training, {} test images | batch {} | loss {} | seed {}",
        params::N_PARAMS,
        backend.describe(),
        n_train,
        n_test,
        cfg.batch,
        loss_name(cfg.loss),
        cfg.seed
    );
    if let Some(c) = checked {
        println!("kernels against the CPU reference: {c}");
    }
    println!(
        "{:>5} {:>9} {:>10} {:>9} {:>9} {:>8} {:>9}  mean step size C1 S2 C3 S4 C5 F6",
        "pass", "eta", "train loss", "train err", "test err", "seconds", "samples/s"
    );
}

/// One pass's line of the table, and with --sdlm-stats the per-layer h_kk and eps_k.
pub(super) fn print_pass(r: &EpochReport, sdlm_stats: bool) {
    let steps: Vec<String> = r
        .eps_layers
        .iter()
        .map(|s| format!("{:.2e}", s[2]))
        .collect();
    println!(
        "{:>5} {:>9.2e} {:>10.4} {:>8.2}% {:>8.2}% {:>8.1} {:>9.0}  {}",
        r.epoch,
        r.eta,
        r.train_loss,
        100.0 * r.train_error,
        100.0 * r.test_error,
        r.seconds,
        r.samples_per_s,
        steps.join(" ")
    );
    if sdlm_stats {
        println!("      SDLM   h_kk min / median / max               eps_k min / median / max");
        for (((name, _), h), e) in params::LAYERS.iter().zip(&r.h_layers).zip(&r.eps_layers) {
            println!(
                "      {name}   {:.2e} / {:.2e} / {:.2e}   {:.2e} / {:.2e} / {:.2e}",
                h[0], h[1], h[3], e[0], e[1], e[3]
            );
        }
    }
}

/// The progress bar's update after each group of batches.
pub(super) fn tick(bar: &Option<indicatif::ProgressBar>) -> impl FnMut(u32, usize) + '_ {
    let mut bar_epoch = 0;
    move |epoch, done| {
        if let Some(b) = bar {
            if epoch != bar_epoch {
                bar_epoch = epoch;
                b.reset();
                b.set_prefix(format!("pass {epoch}"));
            }
            b.set_position(done as u64);
        }
    }
}

/// A bar over the patterns of a pass on a terminal; None when output is not a terminal (CI, a
/// pipe), where the per-pass lines are the progress, or with --quiet.
pub(super) fn progress_bar(quiet: bool, n: usize) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(n as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix:>8} [{bar:40}] {pos}/{len} {rate} ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .with_key(
            "rate",
            |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0} samples/s", s.per_sec());
            },
        )
        .progress_chars("=> "),
    );
    Some(bar)
}
