//! The library's front door, re-exported at the crate root: [`Model`] (load, classify,
//! save, export), [`Mnist`] (the data) and [`Trainer`] (train with a configuration on a
//! chosen backend, with a progress callback and a cancel flag). The subcommands are built
//! on these same types: `eval`, `predict`, `serve`, `visualize` and `export` load with
//! [`Model::load`], `predict` classifies with [`Model::classify_file`], `train` runs a
//! [`Trainer`].

use crate::backend::Backend;
use crate::checkpoint::{self, Checkpoint, Meta};
use crate::data::{self, Dataset};
use crate::model::RBF_CENTERS;
use crate::model::params::{self, N_PARAMS};
use crate::predict::{self, SIDE};
use crate::select::{DeviceChoice, RunDevice};
use crate::train::meta::{SavedRun, run_meta};
use crate::train::{self, EpochReport, Outcome, Progress, TrainConfig};
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// A LeNet-5: its 60,000 parameters and what is known of how they were trained.
///
/// ```
/// // An untrained network (seed 1's initial weights) reads a blank field as some digit.
/// let model = lenet_gpu::Model::initial(1);
/// let answer = model.classify(&[0u8; 784]);
/// assert!(answer.digit < 10);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    checkpoint: Checkpoint,
    file: Option<PathBuf>,
    note: Option<String>,
}

/// What the network makes of one digit.
///
/// ```
/// let answer = lenet_gpu::Model::initial(1).classify(&[0u8; 784]);
/// let nearest = answer.distances.iter().cloned().fold(f32::INFINITY, f32::min);
/// assert_eq!(answer.distances[answer.digit as usize], nearest);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// The class whose RBF centre is nearest (the first on ties).
    pub digit: u8,
    /// The ten RBF outputs: the squared distance of F6's output to each class's centre.
    pub distances: [f32; 10],
    /// The 28x28 digit the network read, row-major, ink 255 on 0: for a picture, as
    /// prepared the way MNIST prepared its digits (see [`Model::classify_image`]).
    pub pixels: [u8; SIDE * SIDE],
    /// Set when the picture held too little ink or too few pixels to be a digit worth
    /// reading (it is still classified).
    pub warning: Option<String>,
}

impl Model {
    /// Loads a model as `lenet-gpu eval --model` takes it: a checkpoint written by `train`
    /// (`--save`, or a file of `--checkpoint-dir`), a checkpoint folder (its last
    /// checkpoint), or a safetensors file of plain weights with a checkpoint's tensor names
    /// and shapes (saved from PyTorch, say; then [`Model::note`] says what is unknown).
    ///
    /// Errors: [`Error::Io`] when the file cannot be read, [`Error::Checkpoint`] (naming the
    /// file and what is wrong) when it is not a LeNet-5 checkpoint.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("lenet-doc-load-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("lenet.safetensors");
    /// lenet_gpu::Model::initial(7).save(&path)?;
    /// let model = lenet_gpu::Model::load(&path)?;
    /// assert_eq!(model.meta().seed, 7);
    /// assert!(lenet_gpu::Model::load(dir.join("missing.safetensors")).is_err());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        let (checkpoint, file, note) = checkpoint::load_weights(path.as_ref())?;
        Ok(Model {
            checkpoint,
            file: Some(file),
            note,
        })
    }

    /// The untrained network a run with this seed starts from (each weight uniform in
    /// +-2.4/fan-in, as in the paper).
    ///
    /// ```
    /// assert_eq!(lenet_gpu::Model::initial(3), lenet_gpu::Model::initial(3));
    /// assert_ne!(lenet_gpu::Model::initial(3), lenet_gpu::Model::initial(4));
    /// ```
    pub fn initial(seed: u64) -> Model {
        let mut meta = Meta::unknown();
        meta.seed = seed;
        meta.loss = train::meta::loss_name(train::DEFAULT_LOSS);
        Model::from_parts(params::init(seed), meta)
    }

    /// A model from a flat parameter buffer (the layout of [`crate::model::params`],
    /// [`N_PARAMS`] values) and its metadata.
    ///
    /// Panics if `params` does not hold [`N_PARAMS`] values.
    ///
    /// ```
    /// let model = lenet_gpu::Model::initial(1);
    /// let copy = lenet_gpu::Model::from_parts(model.params().to_vec(), model.meta().clone());
    /// assert_eq!(copy.params(), model.params());
    /// ```
    pub fn from_parts(params: Vec<f32>, meta: Meta) -> Model {
        assert_eq!(
            params.len(),
            N_PARAMS,
            "a LeNet-5 has {N_PARAMS} parameters"
        );
        Model {
            checkpoint: Checkpoint {
                params,
                centers: RBF_CENTERS.to_vec(),
                meta,
                optimizer: None,
            },
            file: None,
            note: None,
        }
    }

    /// The parameters, in the flat layout of [`crate::model::params`] (C3 compact).
    ///
    /// ```
    /// assert_eq!(lenet_gpu::Model::initial(1).params().len(), 60_000);
    /// ```
    pub fn params(&self) -> &[f32] {
        &self.checkpoint.params
    }

    /// What the checkpoint records: passes trained, seed, loss, and the run's settings in
    /// `extra` (`test_error` among them for a model saved by `train`).
    ///
    /// ```
    /// assert_eq!(lenet_gpu::Model::initial(5).meta().epoch, 0);
    /// ```
    pub fn meta(&self) -> &Meta {
        &self.checkpoint.meta
    }

    /// The test error recorded when the model was saved by `train`, as a fraction.
    ///
    /// ```
    /// assert_eq!(lenet_gpu::Model::initial(1).test_error(), None);
    /// ```
    pub fn test_error(&self) -> Option<f64> {
        self.meta().extra.get("test_error")?.parse().ok()
    }

    /// The file it was loaded from (a checkpoint folder's last checkpoint), if any.
    ///
    /// ```
    /// assert_eq!(lenet_gpu::Model::initial(1).file(), None);
    /// ```
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// For plain weights without lenet-gpu metadata: a note saying pass, seed and loss are
    /// unknown.
    ///
    /// ```
    /// assert_eq!(lenet_gpu::Model::initial(1).note(), None);
    /// ```
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// Whether the file held RBF centres other than this build's (classification always
    /// uses this build's, the paper's stylised digits).
    ///
    /// ```
    /// assert!(!lenet_gpu::Model::initial(1).centres_differ());
    /// ```
    pub fn centres_differ(&self) -> bool {
        self.checkpoint.centers.as_slice() != RBF_CENTERS.as_slice()
    }

    /// The loaded checkpoint whole (parameters, centres, metadata, optimiser state).
    ///
    /// ```
    /// let model = lenet_gpu::Model::initial(1);
    /// assert_eq!(model.checkpoint().centers.len(), 10 * 84);
    /// assert!(model.checkpoint().optimizer.is_none());
    /// ```
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// Classifies a prepared 28x28 digit (row-major, ink high, 0..255 as in MNIST) with
    /// the CPU reference's forward pass.
    ///
    /// ```
    /// let mut seven = [0u8; 784];
    /// for c in 6..22 { seven[6 * 28 + c] = 255; }       // the bar
    /// for r in 7..23 { seven[r * 28 + 27 - r] = 255; }  // the stroke down
    /// let answer = lenet_gpu::Model::initial(1).classify(&seven);
    /// assert_eq!(answer.pixels, seven);
    /// assert_eq!(answer.distances.len(), 10);
    /// ```
    pub fn classify(&self, pixels: &[u8; SIDE * SIDE]) -> Classification {
        let p = predict::classify(self.params(), pixels);
        Classification {
            digit: p.digit,
            distances: p.distances,
            pixels: *pixels,
            warning: None,
        }
    }

    /// Classifies a picture of one digit held in memory: a PNG or JPEG, any size,
    /// dark-on-light or light-on-dark. It is prepared as MNIST prepared its digits (grey,
    /// inverted when the background is light, cropped to the ink, scaled to fit 20x20,
    /// centred by mass in 28x28), exactly as `lenet-gpu predict` and `serve` prepare it.
    ///
    /// Errors: [`Error::Image`] (named `<memory>`) when the bytes are not a readable PNG
    /// or JPEG, or the picture is blank.
    ///
    /// ```
    /// let png = std::fs::read("examples/seven.png")?;
    /// let answer = lenet_gpu::Model::initial(1).classify_image(&png)?;
    /// assert!(answer.digit < 10 && answer.warning.is_none());
    /// assert!(lenet_gpu::Model::initial(1).classify_image(b"not a picture").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn classify_image(&self, bytes: &[u8]) -> Result<Classification> {
        let prepared = predict::decode(bytes).map_err(|reason| Error::Image {
            path: PathBuf::from("<memory>"),
            reason,
        })?;
        Ok(self.with_warning(prepared))
    }

    /// [`Model::classify_image`] on a file; errors name the file.
    ///
    /// ```
    /// let answer = lenet_gpu::Model::initial(1).classify_file("examples/seven.png")?;
    /// assert!(answer.digit < 10);
    /// # Ok::<(), lenet_gpu::Error>(())
    /// ```
    pub fn classify_file(&self, path: impl AsRef<Path>) -> Result<Classification> {
        Ok(self.with_warning(predict::load_prepared(path.as_ref())?))
    }

    fn with_warning(&self, prepared: predict::Prepared) -> Classification {
        Classification {
            warning: prepared.warning,
            ..self.classify(&prepared.pixels)
        }
    }

    /// Saves the model as a checkpoint (safetensors with PyTorch's names and shapes; see
    /// [`crate::checkpoint`]), atomically: an existing file is only ever replaced by a
    /// complete one. The folder must exist.
    ///
    /// Errors: [`Error::Io`] naming `path`.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("lenet-doc-save-{}.safetensors", std::process::id()));
    /// let model = lenet_gpu::Model::initial(2);
    /// model.save(&path)?;
    /// assert_eq!(lenet_gpu::Model::load(&path)?.params(), model.params());
    /// # std::fs::remove_file(&path).ok();
    /// # Ok::<(), lenet_gpu::Error>(())
    /// ```
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let ck = &self.checkpoint;
        checkpoint::save(path.as_ref(), &ck.params, &ck.centers, &ck.meta)
    }

    /// Writes the model as an ONNX graph (see [`crate::onnx`]): input `input` float32
    /// \[N,1,28,28\] of raw pixels 0..255, outputs `distances` \[N,10\] and `digit` \[N\];
    /// written atomically, the folder must exist.
    ///
    /// Errors: [`Error::Io`] naming `path`.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("lenet-doc-{}.onnx", std::process::id()));
    /// lenet_gpu::Model::initial(1).export_onnx(&path)?;
    /// assert!(std::fs::metadata(&path)?.len() > 240_000); // 60,000 f32 weights and the graph
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn export_onnx(&self, path: impl AsRef<Path>) -> Result<()> {
        let meta = self.note.is_none().then(|| self.meta());
        crate::onnx::save(path.as_ref(), self.params(), &RBF_CENTERS, meta)
    }
}

/// A dataset in MNIST's format in memory: its training and test splits (28x28 or 32x32
/// images, 10 classes), read from a folder of the four IDX files (plain or `.gz`).
///
/// ```
/// let mnist = lenet_gpu::Mnist::load_or_fetch(lenet_gpu::data::data_dir(None))?.limit(Some(1000), Some(100))?;
/// assert_eq!((mnist.train.len(), mnist.test.len()), (1000, 100));
/// # Ok::<(), lenet_gpu::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Mnist {
    /// The training split (MNIST: 60,000 digits), shared.
    pub train: Arc<Dataset>,
    /// The test split (MNIST: 10,000 digits), shared.
    pub test: Arc<Dataset>,
    /// The folder it was read from.
    pub dir: Option<PathBuf>,
}

impl Mnist {
    /// Reads both splits from `dir` (`lenet-gpu fetch --dir DIR` downloads MNIST there).
    ///
    /// Errors: [`Error::DataMissing`] listing the files not found and the command that
    /// fetches them; [`Error::Idx`] for a damaged file.
    ///
    /// ```
    /// # lenet_gpu::Mnist::load_or_fetch(lenet_gpu::data::data_dir(None))?;
    /// let mnist = lenet_gpu::Mnist::load(lenet_gpu::data::data_dir(None))?;
    /// assert_eq!((mnist.train.len(), mnist.test.len()), (60_000, 10_000));
    /// assert!(lenet_gpu::Mnist::load("no/such/folder").is_err());
    /// # Ok::<(), lenet_gpu::Error>(())
    /// ```
    pub fn load(dir: impl AsRef<Path>) -> Result<Mnist> {
        let dir = dir.as_ref();
        let (train, test) = data::load_mnist(dir)?;
        Ok(Mnist {
            train: Arc::new(train),
            test: Arc::new(test),
            dir: std::path::absolute(dir).ok(),
        })
    }

    /// [`Mnist::load`], downloading MNIST into `dir` first (from the mirrors of
    /// `lenet-gpu fetch`, checked against their SHA-256, a progress line on stderr) when
    /// the folder lacks its files, as `lenet-gpu train` does on first use.
    ///
    /// Errors: [`Error::Fetch`] when no mirror can be reached, naming the ways out; the
    /// errors of [`Mnist::load`].
    ///
    /// ```
    /// let mnist = lenet_gpu::Mnist::load_or_fetch(lenet_gpu::data::data_dir(None))?;
    /// assert_eq!(mnist.test.len(), 10_000);
    /// # Ok::<(), lenet_gpu::Error>(())
    /// ```
    pub fn load_or_fetch(dir: impl AsRef<Path>) -> Result<Mnist> {
        let dir = dir.as_ref();
        match Mnist::load(dir) {
            Err(Error::DataMissing { .. }) => {
                eprintln!("MNIST is not in {}: fetching it (once)", dir.display());
                crate::fetch::fetch(&crate::fetch::FetchOptions::new(dir))?;
                Mnist::load(dir)
            }
            r => r,
        }
    }

    /// Keeps only the first `train` training and the first `test` test images (`None`:
    /// all of them).
    ///
    /// Errors: [`Error::Config`] for a limit of 0.
    ///
    /// ```
    /// let mnist = lenet_gpu::Mnist::load_or_fetch(lenet_gpu::data::data_dir(None))?;
    /// assert_eq!(mnist.clone().limit(None, Some(10))?.test.len(), 10);
    /// assert!(mnist.limit(Some(0), None).is_err());
    /// # Ok::<(), lenet_gpu::Error>(())
    /// ```
    pub fn limit(mut self, train: Option<usize>, test: Option<usize>) -> Result<Mnist> {
        for (limit, set, flag) in [
            (train, &mut self.train, "--train-limit"),
            (test, &mut self.test, "--test-limit"),
        ] {
            match limit {
                Some(0) => return Err(Error::Config(format!("{flag} must be at least 1"))),
                Some(n) => {
                    let whole =
                        Arc::try_unwrap(std::mem::take(set)).unwrap_or_else(|s| (*s).clone());
                    *set = Arc::new(whole.truncated(n));
                }
                None => {}
            }
        }
        Ok(self)
    }
}

/// A training run: the configuration, the backend holding the data and the weights, and
/// where the run stands. [`Trainer::run`] trains the remaining passes; [`Trainer::model`]
/// gives the weights back at any time.
///
/// ```
/// use lenet_gpu::{DeviceChoice, Mnist, TrainConfig, Trainer};
/// use std::sync::atomic::AtomicBool;
///
/// let mnist = Mnist::load_or_fetch(lenet_gpu::data::data_dir(None))?.limit(Some(800), Some(200))?;
/// let config = TrainConfig { epochs: 1, hessian_samples: 100, ..TrainConfig::default() };
/// let mut trainer = Trainer::new(config, &DeviceChoice::cpu(), mnist)?;
/// let cancel = AtomicBool::new(false); // set it from another thread to stop after a batch
/// let mut passes = Vec::new();
/// trainer.run(&cancel, |_pass, _patterns| {}, |report, _| {
///     passes.push(report.test_error);
///     Ok(())
/// })?;
/// let model = trainer.model()?;
/// assert_eq!((passes.len(), model.meta().epoch), (1, 1));
/// assert!(model.test_error().is_some());
/// # Ok::<(), lenet_gpu::Error>(())
/// ```
pub struct Trainer {
    backend: Box<dyn Backend>,
    device: RunDevice,
    config: TrainConfig,
    n_train: usize,
    run: SavedRun,
    from: Progress,
    last: Option<EpochReport>,
    checked: Option<String>,
}

/// The backend `device` gives, its kernels checked on the adapter first (`check`): when
/// the family fails, the other family if it passes, else the CPU backend, unless the user
/// chose the family or API (`DeviceChoice::forced`): then the run stops with the failure.
fn open_checked(
    device: &DeviceChoice,
    config: &TrainConfig,
    train: Arc<Dataset>,
    test: Arc<Dataset>,
) -> Result<(Box<dyn Backend>, RunDevice, Option<String>)> {
    let n = crate::check::PATTERNS.min(train.len());
    let side2 = train.side * train.side;
    let sample = Dataset {
        images: train.images[..n * side2].to_vec(),
        labels: train.labels[..n].to_vec(),
        side: train.side,
    };
    let open = |d: &DeviceChoice| {
        d.open(
            train.clone(),
            test.clone(),
            config.loss,
            config.momentum,
            config.batch,
        )
    };
    let (mut backend, on) = open(device)?;
    let RunDevice::Gpu { kernels, .. } = &on else {
        return Ok((backend, on, None));
    };
    let failed = *kernels;
    let first = match verify(backend.as_mut(), &sample) {
        Ok(Ok(said)) => return Ok((backend, on, Some(said))),
        Ok(Err(failure)) => failure,
        Err(e) if !device.forced => format!("the {} kernels' check failed: {e}", failed.name()),
        Err(e) => return Err(e),
    };
    if device.forced {
        return Err(Error::Gpu(format!(
            "{first}. The kernels or the API were chosen (by --kernels or --backend, or by \
             resuming a run on the device it trained on), so the run stops. To let it move to \
             kernels that pass or to the CPU backend, drop --kernels and give --backend gpu \
             (or --backend cpu); and please report this with the table of \
             `lenet-gpu devices --check`"
        )));
    }
    eprintln!("warning: {first}");
    let other = match failed {
        crate::gpu::Family::Fused => crate::gpu::Family::Simple,
        crate::gpu::Family::Simple => crate::gpu::Family::Fused,
    };
    drop(backend);
    let mut again = DeviceChoice::resolved(&on);
    again.kernels = other;
    let second = open(&again).and_then(|(mut backend, on)| {
        let verdict = verify(backend.as_mut(), &sample)?;
        Ok((backend, on, verdict))
    });
    let second = match second {
        Ok((backend, on, verdict)) => verdict.map(|said| (backend, on, said)),
        Err(e) => Err(format!("the {} kernels' check failed: {e}", other.name())),
    };
    match second {
        Ok((backend, on, said)) => {
            eprintln!("note: training on the {} kernels instead", other.name());
            let said = format!("{said}; the {} kernels failed it", failed.name());
            Ok((backend, on, Some(said)))
        }
        Err(second) => {
            eprintln!("warning: {second}");
            eprintln!("note: training on the CPU backend instead");

            let (backend, on) = open(&DeviceChoice::cpu())?;
            let said = "both GPU kernel families failed the check; on the CPU backend instead";
            Ok((backend, on, Some(said.into())))
        }
    }
}

/// The check of a GPU backend's kernels, or its record from an earlier run: Ok(what to
/// say) when they pass, Err(the failure) when not.
fn verify(
    backend: &mut dyn Backend,
    sample: &Dataset,
) -> Result<std::result::Result<String, String>> {
    let Some(key) = backend.self_check_key() else {
        return Ok(Ok(String::new()));
    };
    if crate::check::passed_before(&key) {
        return Ok(Ok("checked earlier".into()));
    }
    let Some(c) = backend.self_check(sample)? else {
        return Ok(Ok(String::new()));
    };
    match c.failure() {
        None => {
            crate::check::remember(&key, &c);
            Ok(Ok(format!("checked on this adapter ({:.2} s)", c.seconds)))
        }
        Some(f) => Ok(Err(f)),
    }
}

/// What [`Trainer::run`]'s per-pass callback can read besides the pass's report: the
/// weights and momentum as they stand after the pass.
///
/// ```
/// # let mnist = lenet_gpu::Mnist::load_or_fetch(lenet_gpu::data::data_dir(None))?.limit(Some(200), Some(100))?;
/// # let config = lenet_gpu::TrainConfig { epochs: 1, hessian_samples: 50, ..Default::default() };
/// let mut trainer = lenet_gpu::Trainer::new(config, &lenet_gpu::DeviceChoice::cpu(), mnist)?;
/// let mut kept = Vec::new();
/// trainer.run(&Default::default(), |_, _| {}, |report, end| {
///     kept.push(end.model(report)?); // or save it: end.model(report)?.save(path)
///     assert_eq!(end.velocity()?.len(), 60_000);
///     Ok(())
/// })?;
/// assert_eq!(kept[0].meta().epoch, 1);
/// # Ok::<(), lenet_gpu::Error>(())
/// ```
pub struct PassEnd<'a> {
    trainer: TrainerView<'a>,
}

struct TrainerView<'a> {
    backend: &'a mut dyn Backend,
    config: &'a TrainConfig,
    n_train: usize,
    run: &'a SavedRun,
}

impl PassEnd<'_> {
    /// The model after this pass, its metadata recording the pass and its test error.
    ///
    /// ```
    /// # let mnist = lenet_gpu::Mnist::load_or_fetch(lenet_gpu::data::data_dir(None))?.limit(Some(200), Some(100))?;
    /// # let config = lenet_gpu::TrainConfig { epochs: 1, hessian_samples: 50, ..Default::default() };
    /// # let mut trainer = lenet_gpu::Trainer::new(config, &lenet_gpu::DeviceChoice::cpu(), mnist)?;
    /// trainer.run(&Default::default(), |_, _| {}, |report, end| {
    ///     assert_eq!(end.model(report)?.test_error(), Some((report.test_error * 1e6).round() / 1e6));
    ///     Ok(())
    /// })?;
    /// # Ok::<(), lenet_gpu::Error>(())
    /// ```
    pub fn model(&mut self, report: &EpochReport) -> Result<Model> {
        let v = &mut self.trainer;
        let mut meta = run_meta(v.config, v.n_train, v.run, report.epoch, None);
        meta.extra
            .insert("test_error".into(), format!("{:.6}", report.test_error));
        Ok(Model::from_parts(v.backend.params()?, meta))
    }

    /// The momentum buffer after this pass: the last update of each parameter (with
    /// `momentum` > 0, its running blend), what `--checkpoint-dir` saves for `--resume`.
    ///
    /// ```
    /// # let mnist = lenet_gpu::Mnist::load_or_fetch(lenet_gpu::data::data_dir(None))?.limit(Some(200), Some(100))?;
    /// # let config = lenet_gpu::TrainConfig { epochs: 1, hessian_samples: 50, ..Default::default() };
    /// # let mut trainer = lenet_gpu::Trainer::new(config, &lenet_gpu::DeviceChoice::cpu(), mnist)?;
    /// trainer.run(&Default::default(), |_, _| {}, |_, end| {
    ///     assert!(end.velocity()?.iter().any(|&v| v != 0.0)); // the pass's last step
    ///     Ok(())
    /// })?;
    /// # Ok::<(), lenet_gpu::Error>(())
    /// ```
    pub fn velocity(&mut self) -> Result<Vec<f32>> {
        self.trainer.backend.velocity()
    }
}

impl Trainer {
    /// Opens the backend `device` chooses (`DeviceChoice::cpu()`, `DeviceChoice::gpu()`;
    /// a plain GPU choice trains on the CPU backend where the only adapters are software
    /// ones) and hands it the data (clone the [`Mnist`] to keep using it: its splits are
    /// shared, not copied) and the initial weights of `config.seed`. A GPU backend's
    /// kernels are first checked against the CPU reference on the first training patterns
    /// (`crate::check`; a pass is remembered in the user's cache folder, and
    /// [`Trainer::checked`] says which); when they fail, the other kernel family or else
    /// the CPU backend trains instead, with a warning on stderr, unless `device.forced`:
    /// then the failure is the error.
    ///
    /// Errors: [`Error::Config`] for a setting out of range, [`Error::NoAdapter`] or
    /// [`Error::Gpu`] when the device cannot be opened or (forced) its kernels fail the
    /// check.
    ///
    /// ```
    /// # let mnist = lenet_gpu::Mnist::load_or_fetch(lenet_gpu::data::data_dir(None))?.limit(Some(200), Some(100))?;
    /// # let config = lenet_gpu::TrainConfig { epochs: 1, hessian_samples: 50, ..Default::default() };
    /// let trainer = lenet_gpu::Trainer::new(config, &lenet_gpu::DeviceChoice::cpu(), mnist.clone())?;
    /// assert_eq!(trainer.device().to_string(), "cpu");
    /// let bad = lenet_gpu::TrainConfig { batch: 0, ..Default::default() };
    /// assert!(lenet_gpu::Trainer::new(bad, &lenet_gpu::DeviceChoice::cpu(), mnist).is_err());
    /// # Ok::<(), lenet_gpu::Error>(())
    /// ```
    pub fn new(config: TrainConfig, device: &DeviceChoice, data: Mnist) -> Result<Trainer> {
        config.validate()?;
        let (n_train, n_test) = (data.train.len(), data.test.len());
        let (mut backend, on, checked) = open_checked(device, &config, data.train, data.test)?;
        backend.set_params(&params::init(config.seed))?;
        Ok(Trainer {
            backend,
            run: SavedRun {
                epochs: Some(config.epochs),
                test_patterns: Some(n_test),
                data: data.dir,
                device: Some(on.clone()),
            },
            device: on,
            n_train,
            config,
            from: Progress::start(),
            last: None,
            checked,
        })
    }

    /// What the on-device check said, for a GPU backend: "checked on this adapter
    /// (0.21 s)", "checked earlier", or where the run went after a failed check.
    ///
    /// ```
    /// # let mnist = lenet_gpu::Mnist::load_or_fetch(lenet_gpu::data::data_dir(None))?.limit(Some(200), Some(100))?;
    /// # let config = lenet_gpu::TrainConfig { epochs: 1, hessian_samples: 50, ..Default::default() };
    /// let trainer = lenet_gpu::Trainer::new(config, &lenet_gpu::DeviceChoice::cpu(), mnist)?;
    /// assert_eq!(trainer.checked(), None); // the CPU backend has no kernels to check
    /// # Ok::<(), lenet_gpu::Error>(())
    /// ```
    pub fn checked(&self) -> Option<&str> {
        self.checked.as_deref()
    }

    /// Continues a run: its weights, momentum (when it used any) and position, as a
    /// checkpoint of `--checkpoint-dir` records them (`train --resume` does this).
    ///
    /// ```
    /// # let mnist = lenet_gpu::Mnist::load_or_fetch(lenet_gpu::data::data_dir(None))?.limit(Some(200), Some(100))?;
    /// # let config = lenet_gpu::TrainConfig { epochs: 1, hessian_samples: 50, ..Default::default() };
    /// let mut trainer = lenet_gpu::Trainer::new(config, &lenet_gpu::DeviceChoice::cpu(), mnist)?;
    /// let start = lenet_gpu::Model::initial(9);
    /// trainer.resume_from(start.params(), None, lenet_gpu::Progress::start())?;
    /// assert_eq!(trainer.model()?.params(), start.params());
    /// # Ok::<(), lenet_gpu::Error>(())
    /// ```
    pub fn resume_from(
        &mut self,
        params: &[f32],
        velocity: Option<&[f32]>,
        from: Progress,
    ) -> Result<()> {
        self.backend.set_params(params)?;
        if let Some(v) = velocity {
            self.backend.set_velocity(v)?;
        }
        self.from = from;
        Ok(())
    }

    /// Where the run trains: `cpu`, `cpu-ref`, or the GPU's API, adapter and kernel family.
    ///
    /// ```
    /// # let mnist = lenet_gpu::Mnist::load_or_fetch(lenet_gpu::data::data_dir(None))?.limit(Some(200), Some(100))?;
    /// # let config = lenet_gpu::TrainConfig { epochs: 1, hessian_samples: 50, ..Default::default() };
    /// let trainer = lenet_gpu::Trainer::new(config, &lenet_gpu::DeviceChoice::cpu(), mnist)?;
    /// assert_eq!(*trainer.device(), lenet_gpu::RunDevice::Cpu);
    /// # Ok::<(), lenet_gpu::Error>(())
    /// ```
    pub fn device(&self) -> &RunDevice {
        &self.device
    }

    /// The configuration.
    ///
    /// ```
    /// # let mnist = lenet_gpu::Mnist::load_or_fetch(lenet_gpu::data::data_dir(None))?.limit(Some(200), Some(100))?;
    /// # let config = lenet_gpu::TrainConfig { epochs: 1, hessian_samples: 50, ..Default::default() };
    /// let trainer = lenet_gpu::Trainer::new(config, &lenet_gpu::DeviceChoice::cpu(), mnist)?;
    /// assert_eq!(trainer.config().epochs, 1);
    /// # Ok::<(), lenet_gpu::Error>(())
    /// ```
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The backend (its name and thread or adapter details, for a banner).
    ///
    /// ```
    /// # let mnist = lenet_gpu::Mnist::load_or_fetch(lenet_gpu::data::data_dir(None))?.limit(Some(200), Some(100))?;
    /// # let config = lenet_gpu::TrainConfig { epochs: 1, hessian_samples: 50, ..Default::default() };
    /// let trainer = lenet_gpu::Trainer::new(config, &lenet_gpu::DeviceChoice::cpu(), mnist)?;
    /// use lenet_gpu::backend::Backend;
    /// println!("training on {}", trainer.backend().describe());
    /// # Ok::<(), lenet_gpu::Error>(())
    /// ```
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// What the run records besides the settings (passes asked for, test patterns, data
    /// folder, device), for checkpoints written along the way.
    ///
    /// ```
    /// # let mnist = lenet_gpu::Mnist::load_or_fetch(lenet_gpu::data::data_dir(None))?.limit(Some(200), Some(100))?;
    /// # let config = lenet_gpu::TrainConfig { epochs: 1, hessian_samples: 50, ..Default::default() };
    /// let trainer = lenet_gpu::Trainer::new(config, &lenet_gpu::DeviceChoice::cpu(), mnist)?;
    /// assert_eq!(trainer.saved_run().test_patterns, Some(100));
    /// # Ok::<(), lenet_gpu::Error>(())
    /// ```
    pub fn saved_run(&self) -> &SavedRun {
        &self.run
    }

    /// Trains the passes from where the run stands to `config.epochs`. `tick(pass,
    /// patterns done)` is called after each group of batches, `on_pass(report, end)` after
    /// each pass (an error it returns ends the run). Raising `cancel` stops the run after
    /// the current batch (or group of batches on a GPU): the result is then
    /// [`Outcome::Stopped`] with the exact position, and [`Trainer::model`] holds the
    /// weights at that point.
    ///
    /// Errors: [`Error::Numeric`] when the loss stops being finite (naming the pass and
    /// batch), device errors, and what `on_pass` returns.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// # let mnist = lenet_gpu::Mnist::load_or_fetch(lenet_gpu::data::data_dir(None))?.limit(Some(200), Some(100))?;
    /// # let config = lenet_gpu::TrainConfig { epochs: 1, hessian_samples: 50, ..Default::default() };
    /// let mut trainer = lenet_gpu::Trainer::new(config, &lenet_gpu::DeviceChoice::cpu(), mnist)?;
    /// let cancel = AtomicBool::new(false);
    /// // Cancel once 64 patterns are done (from another thread in a real program).
    /// let outcome = trainer.run(&cancel, |_pass, done| {
    ///     if done >= 64 { cancel.store(true, Ordering::SeqCst) }
    /// }, |_, _| Ok(()))?;
    /// let lenet_gpu::Outcome::Stopped(at) = outcome else { panic!("it was cancelled") };
    /// assert_eq!((at.epoch, at.position), (1, 64));
    /// # Ok::<(), lenet_gpu::Error>(())
    /// ```
    pub fn run(
        &mut self,
        cancel: &AtomicBool,
        tick: impl FnMut(u32, usize),
        mut on_pass: impl FnMut(&EpochReport, &mut PassEnd) -> Result<()>,
    ) -> Result<Outcome> {
        let (config, n_train, run) = (&self.config, self.n_train, &self.run);
        let last = &mut self.last;
        let outcome = train::train(
            self.backend.as_mut(),
            config,
            n_train,
            self.from.clone(),
            cancel,
            tick,
            |report, backend| {
                *last = Some(report.clone());
                let mut end = PassEnd {
                    trainer: TrainerView {
                        backend,
                        config,
                        n_train,
                        run,
                    },
                };
                on_pass(report, &mut end)
            },
        )?;
        self.from = match &outcome {
            Outcome::Finished => Progress {
                epoch: config.epochs + 1,
                ..Progress::start()
            },
            Outcome::Stopped(p) => p.clone(),
        };
        Ok(outcome)
    }

    /// The weights as they stand, with the metadata of the last completed pass (its test
    /// error included), or of the initial weights before any.
    ///
    /// ```
    /// # let mnist = lenet_gpu::Mnist::load_or_fetch(lenet_gpu::data::data_dir(None))?.limit(Some(200), Some(100))?;
    /// # let config = lenet_gpu::TrainConfig { epochs: 1, hessian_samples: 50, ..Default::default() };
    /// let mut trainer = lenet_gpu::Trainer::new(config, &lenet_gpu::DeviceChoice::cpu(), mnist)?;
    /// assert_eq!(trainer.model()?.params(), lenet_gpu::Model::initial(1).params());
    /// # Ok::<(), lenet_gpu::Error>(())
    /// ```
    pub fn model(&mut self) -> Result<Model> {
        let params = self.backend.params()?;
        let completed = self.from.epoch.saturating_sub(1);
        let mut meta = run_meta(&self.config, self.n_train, &self.run, completed, None);
        if let Some(r) = &self.last {
            meta.extra
                .insert("test_error".into(), format!("{:.6}", r.test_error));
        }
        Ok(Model::from_parts(params, meta))
    }

    /// The momentum buffer as it stands (zeros before the first update).
    ///
    /// ```
    /// # let mnist = lenet_gpu::Mnist::load_or_fetch(lenet_gpu::data::data_dir(None))?.limit(Some(200), Some(100))?;
    /// # let config = lenet_gpu::TrainConfig { epochs: 1, hessian_samples: 50, ..Default::default() };
    /// let mut trainer = lenet_gpu::Trainer::new(config, &lenet_gpu::DeviceChoice::cpu(), mnist)?;
    /// assert!(trainer.velocity()?.iter().all(|&v| v == 0.0));
    /// # Ok::<(), lenet_gpu::Error>(())
    /// ```
    pub fn velocity(&mut self) -> Result<Vec<f32>> {
        self.backend.velocity()
    }
}
