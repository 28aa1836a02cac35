//! *Internal:* `lenet-gpu serve`: a local web page to write a digit on and watch LeNet-5 read it, and
//! the JSON API behind it (documented in the README). An axum router on a tokio runtime;
//! the model is loaded once, and every reading runs the CPU reference's forward pass, as
//! `predict` does (`predict::forward`).
//!
//! No request names a file: the only files read are the ones given on the command line
//! (the model at start, the `--log` file at each `/api/run`).

mod api;
pub mod wire;

use crate::checkpoint::Checkpoint;
use crate::data::Dataset;
use crate::{Error, Result};
use axum::Router;
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use api::{BODY_LIMIT, reading};

/// The page: HTML, CSS and JS in one file, embedded in the binary.
const PAGE: &str = include_str!("page.html");

/// What the server knows: the model, the test set to browse (if MNIST was found) and the
/// run log to follow.
pub struct Served {
    pub model: Checkpoint,
    /// A description of where the model came from, for `/api/model`.
    pub model_file: String,
    pub test: Option<Arc<Dataset>>,
    /// Why there is no test set, when there is none.
    pub test_missing: Option<String>,
    /// The test digits the model gets wrong (with the same forward pass as every reading).
    pub misclassified: Vec<usize>,
    /// Test error over the whole test set, when there is one.
    pub test_error: Option<f64>,
    pub log: Option<PathBuf>,
}

impl Served {
    /// Loads what the server serves: classifies the whole test set once, for the list of
    /// misclassified digits and the test error.
    pub fn new(
        model: Checkpoint,
        model_file: String,
        test: std::result::Result<Arc<Dataset>, String>,
        log: Option<PathBuf>,
    ) -> Self {
        let (test, test_missing) = match test {
            Ok(t) => (Some(t), None),
            Err(e) => (None, Some(e)),
        };
        let misclassified = test
            .as_ref()
            .map(|t| api::misclassified(&model.params, t))
            .unwrap_or_default();
        let test_error = test
            .as_ref()
            .map(|t| misclassified.len() as f64 / t.len().max(1) as f64);
        Served {
            model,
            model_file,
            test,
            test_missing,
            misclassified,
            test_error,
            log,
        }
    }
}

/// What the fuzz target serves: seeded initial weights, and a synthetic test set of 16
/// digits (a stroke per digit), with no run log.
pub fn fuzz_served() -> Served {
    use crate::checkpoint::Meta;
    let n = 16;
    let mut images = vec![0u8; n * 784];
    for (i, img) in images.chunks_exact_mut(784).enumerate() {
        for r in 4..24 {
            img[r * 28 + 6 + (r + i) % 16] = 255;
        }
    }
    let test = Dataset {
        images,
        labels: (0..n as u8).map(|i| i % 10).collect(),
        side: 28,
    };
    let model = Checkpoint {
        params: crate::model::params::init(1),
        centers: crate::model::RBF_CENTERS.to_vec(),
        meta: Meta::unknown(),
        optimizer: None,
    };
    Served::new(model, "fuzz".into(), Ok(Arc::new(test)), None)
}

/// Every route of the page and the API.
pub fn router(served: Arc<Served>) -> Router {
    Router::new()
        .route("/", get(|| async { axum::response::Html(PAGE) }))
        .route("/api/classify", post(api::classify))
        .route("/api/test", get(api::test_list))
        .route("/api/test/{index}", get(api::test_digit))
        .route("/api/model", get(api::model))
        .route("/api/run", get(api::run))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .with_state(served)
}

/// Serves on `addr` until Ctrl-C (or SIGTERM), calling `bound` with the address the
/// listener got (port 0 picks a free one).
pub fn serve(addr: SocketAddr, served: Served, bound: impl FnOnce(SocketAddr)) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Config(format!("cannot start the server's runtime: {e}")))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            Error::Config(format!(
                "cannot listen on {addr}: {e}; choose another --port (or --port 0 for any free one)"
            ))
        })?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::Config(format!("cannot read the listening address: {e}")))?;
        bound(local);
        axum::serve(listener, router(Arc::new(served)))
            .with_graceful_shutdown(stop_signal())
            .await
            .map_err(|e| Error::Config(format!("the server stopped: {e}")))
    })
}

/// Ctrl-C or SIGTERM.
async fn stop_signal() {
    let term = async {
        #[cfg(unix)]
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
