//! The `lenet-gpu` command line: clap structs (their doc comments are the help) -> a config
//! value -> the library. One file per subcommand in `cli/`; this file only dispatches.

mod cli;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::process::ExitCode;

/// Train and run the original LeNet-5 (LeCun et al., 1998) on MNIST.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train LeNet-5 with SDLM and report each pass.
    Train(cli::train::TrainArgs),
    /// Classify the test set with a saved checkpoint: error rate and confusion matrix.
    Eval(cli::eval::EvalArgs),
    /// Download the four MNIST files from public mirrors and verify their SHA-256.
    Fetch(cli::fetch::FetchArgs),
    /// List the GPU adapters (every graphics API) with the limits that matter here.
    Devices(cli::devices::DevicesArgs),
    /// Draw the learning curve of a `train --log` file as a PNG.
    Plot(cli::plot::PlotArgs),
    /// Write a trained model as an ONNX graph (onnxruntime, tract, Netron, ...).
    Export(cli::export::ExportArgs),
    /// Classify your own digit images (PNG or JPEG, any size, dark-on-light or light-on-dark).
    Predict(cli::predict::PredictArgs),
    /// Picture what the network sees: a test digit, its C1 and C3 feature maps, the C1 kernels.
    Visualize(cli::visualize::VisualizeArgs),
    /// Serve a web page to write a digit on and watch the network read it, with a JSON API.
    Serve(cli::serve::ServeArgs),
    /// Measure training and evaluation speed of each backend (validated against the CPU
    /// reference before timing), with memory use and GPU/CPU ratios.
    Bench(cli::bench::BenchArgs),
}

fn main() -> ExitCode {
    // The matches as well as the parsed structs: `train --resume` asks which flags the user
    // wrote.
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.format(&mut Cli::command()).exit(),
    };
    let sub = matches
        .subcommand()
        .map(|(_, m)| m.clone())
        .unwrap_or_default();
    let result = match cli.command {
        Command::Train(a) => cli::train::run(a, &sub),
        Command::Predict(a) => cli::predict::run(a),
        Command::Eval(a) => cli::eval::run(a).map(|()| ExitCode::SUCCESS),
        Command::Export(a) => cli::export::run(a).map(|()| ExitCode::SUCCESS),
        Command::Fetch(a) => cli::fetch::run(a).map(|()| ExitCode::SUCCESS),
        Command::Plot(a) => cli::plot::run(a).map(|()| ExitCode::SUCCESS),
        Command::Visualize(a) => cli::visualize::run(a).map(|()| ExitCode::SUCCESS),
        Command::Bench(a) => cli::bench::run(a).map(|()| ExitCode::SUCCESS),
        Command::Devices(a) => cli::devices::run(a),
        Command::Serve(a) => cli::serve::run(a).map(|()| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
}
