//! `lenet-gpu serve`: the web page where a digit is written and the network reads it.

use super::{DataArgs, load_data, load_model};
use lenet_gpu::Result;
use lenet_gpu::serve::{Served, serve};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The checkpoint to read digits with (a file, a checkpoint folder, or plain weights).
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// The address to listen on; 127.0.0.1 keeps the page on this machine.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// The port to listen on (0: any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// A `train --log` file whose learning curve the page shows, re-read while the run
    /// goes on.
    #[arg(long, value_name = "RUN.csv")]
    log: Option<PathBuf>,
}

pub fn run(a: ServeArgs) -> Result<()> {
    let model = load_model(&a.model)?;
    let file = model.file().unwrap_or(&a.model).to_path_buf();
    // The test set to browse; the page still works without it.
    let test = load_data(&a.data).map(|(_, test)| test).map_err(|e| {
        eprintln!("note: no test set to browse: {e}");
        e.to_string()
    });
    if let Some(log) = &a.log
        && !log.is_file()
    {
        eprintln!(
            "note: {} does not exist yet; the page shows its curve once the run writes it",
            log.display()
        );
    }
    let served = Served::new(
        model.checkpoint().clone(),
        file.display().to_string(),
        test,
        a.log,
    );
    if let Some(e) = served.test_error {
        println!(
            "{}: test error {:.2}% ({} of {} test digits read wrong)",
            file.display(),
            100.0 * e,
            served.misclassified.len(),
            served.test.as_ref().map_or(0, |t| t.len())
        );
    }
    serve(SocketAddr::new(a.host, a.port), served, |addr| {
        println!("serving LeNet-5 on http://{addr}/ (Ctrl-C stops)");
    })?;
    println!("stopped");
    Ok(())
}
