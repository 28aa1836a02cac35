//! `lenet-gpu eval`: the test error of a checkpoint, its confusion matrix, and optionally
//! every misclassified digit in one picture.

use super::{DataArgs, DeviceArgs, load_data, load_model};
use lenet_gpu::Result;
use lenet_gpu::backend::Split;
use lenet_gpu::model::Loss;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    device: DeviceArgs,
    /// The checkpoint to evaluate: a file, a `--checkpoint-dir` folder (its last
    /// checkpoint), or plain safetensors weights with the tensor names of a checkpoint.
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// Also write every misclassified test digit, labelled true->predicted, into one PNG.
    #[arg(long, value_name = "PNG")]
    errors_png: Option<PathBuf>,
}

pub fn run(a: EvalArgs) -> Result<()> {
    let model = load_model(&a.model)?;
    let (train_set, test_set) = load_data(&a.data)?;
    let (mut b, _) = a
        .device
        .choice()
        .open(train_set, test_set.clone(), Loss::Mse, 0.0, 1)?;
    b.set_params(model.params())?;
    let ev = b.evaluate(Split::Test)?;
    if model.centres_differ() {
        eprintln!(
            "warning: {} holds RBF centres that differ from this build's; evaluating with this build's",
            a.model.display()
        );
    }
    let file = model.file().unwrap_or(&a.model).display();
    if model.note().is_some() {
        println!("{file}: plain weights");
    } else {
        let meta = model.meta();
        println!(
            "{file}: pass {}, seed {}, loss {}",
            meta.epoch, meta.seed, meta.loss
        );
    }
    println!(
        "test error {:.2}% ({} of {}), accuracy {:.2}%",
        100.0 * ev.error_rate(),
        ev.errors,
        ev.predictions.len(),
        100.0 * (1.0 - ev.error_rate())
    );
    let mut conf = [[0u32; 10]; 10];
    for (&p, &l) in ev.predictions.iter().zip(&test_set.labels) {
        conf[l as usize][p as usize] += 1;
    }
    if let Some(out) = &a.errors_png {
        let wrong: Vec<usize> = (0..test_set.len())
            .filter(|&i| ev.predictions[i] != test_set.labels[i])
            .collect();
        let images: Vec<[u8; 784]> = wrong.iter().map(|&i| test_set.digit28(i)).collect();
        let truth: Vec<u8> = wrong.iter().map(|&i| test_set.labels[i]).collect();
        let pred: Vec<u8> = wrong.iter().map(|&i| ev.predictions[i]).collect();
        lenet_gpu::render::error_grid_indexed(&images, &truth, &pred, Some(&wrong), out)?;
        println!(
            "wrote {} ({} misclassified digits)",
            out.display(),
            wrong.len()
        );
    }
    print_confusion(&conf);
    Ok(())
}

fn print_confusion(conf: &[[u32; 10]; 10]) {
    println!("confusion matrix (rows: true digit, columns: predicted; last: per-class accuracy)");
    println!(
        "      {} accuracy",
        (0..10).map(|d| format!("{d:>5}")).collect::<String>()
    );
    for (d, row) in conf.iter().enumerate() {
        let total: u32 = row.iter().sum();
        let acc = if total > 0 {
            100.0 * row[d] as f64 / total as f64
        } else {
            0.0
        };
        println!(
            "{d:>5} {} {acc:>7.2}%",
            row.iter().map(|c| format!("{c:>5}")).collect::<String>()
        );
    }
}
