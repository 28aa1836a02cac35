//! One error type for the whole program. Every message names the file or flag at fault
//! and says what to do about it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{path}: not a valid IDX file: {reason}. Replace the file (for MNIST, `lenet-gpu fetch --dir DIR` \
         downloads verified copies)"
    )]
    Idx { path: PathBuf, reason: String },

    #[error(
        "MNIST files not found: {missing} (looked in {dir}). Run `lenet-gpu fetch --dir {dir}` \
         to download them, or point --data / LENET_DATA at a folder that holds them."
    )]
    DataMissing { dir: PathBuf, missing: String },

    #[error("{images} and {labels} disagree: {reason}")]
    DataMismatch {
        images: PathBuf,
        labels: PathBuf,
        reason: String,
    },

    #[error(
        "{path}: not a usable checkpoint: {reason}. Use a file written by `lenet-gpu train --save` or \
         `--checkpoint-dir`"
    )]
    Checkpoint { path: PathBuf, reason: String },

    #[error("{path}: cannot use this image: {reason}")]
    Image { path: PathBuf, reason: String },

    #[error(
        "download of {file} failed from every mirror:\n{tried}\nWays out: check the network; download from a mirror you can reach with \
         `lenet-gpu fetch --mirror URL`; or point at a folder that already holds the four MNIST files with \
         --data DIR or LENET_DATA=DIR."
    )]
    Fetch { file: String, tried: String },

    #[error("{0}")]
    NoAdapter(String),

    #[error("GPU: {0}")]
    Gpu(String),

    #[error("invalid setting: {0}")]
    Config(String),

    #[error("training stopped: {0}")]
    Numeric(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
