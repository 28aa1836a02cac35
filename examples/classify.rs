//! Classify a picture of a digit with a trained model, through the library's front door:
//! `cargo run --release --example classify -- lenet.safetensors examples/seven.png`
use lenet_gpu::Model;

fn main() -> Result<(), lenet_gpu::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, picture] = args.as_slice() else {
        eprintln!("usage: classify MODEL PICTURE (a checkpoint, and a PNG or JPEG of one digit)");
        std::process::exit(2);
    };
    let answer = Model::load(model)?.classify_file(picture)?;
    println!(
        "{}: {} (distances {:.1?})",
        picture, answer.digit, answer.distances
    );
    Ok(())
}
