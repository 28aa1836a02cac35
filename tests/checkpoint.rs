//! Checkpoint files: round trip, on-disk layout, atomic overwrite, and rejection of
//! broken files with a reason that names the culprit.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use lenet_gpu::Error;
use lenet_gpu::checkpoint::{self, Meta};
use lenet_gpu::model::params::{self, C3_TABLE, N_PARAMS, TENSORS};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("lenet-gpu-ckpt-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const SHAPES: [(&str, &[usize]); 13] = [
    ("c1.weight", &[6, 1, 5, 5]),
    ("c1.bias", &[6]),
    ("s2.weight", &[6]),
    ("s2.bias", &[6]),
    ("c3.weight", &[16, 6, 5, 5]),
    ("c3.bias", &[16]),
    ("s4.weight", &[16]),
    ("s4.bias", &[16]),
    ("c5.weight", &[120, 16, 5, 5]),
    ("c5.bias", &[120]),
    ("f6.weight", &[84, 120]),
    ("f6.bias", &[84]),
    ("output.centers", &[10, 84]),
];

fn centers() -> Vec<f32> {
    (0..840)
        .map(|i: usize| {
            if (i * 7 + i / 84).is_multiple_of(3) {
                1.0
            } else {
                -1.0
            }
        })
        .collect()
}

fn meta() -> Meta {
    let mut extra = BTreeMap::new();
    extra.insert("backend".to_string(), "cpu".to_string());
    extra.insert(
        "note".to_string(),
        "unicode ✓, \"quotes\" and \n newline".to_string(),
    );
    Meta {
        epoch: 17,
        seed: u64::MAX - 3,
        loss: "mse".to_string(),
        extra,
    }
}

/// C3 weights of the flat buffer expanded to [16,6,5,5] by hand, independently of the crate.
fn c3_dense_by_hand(compact: &[f32]) -> Vec<f32> {
    let mut dense = vec![0.0; 16 * 6 * 25];
    let mut link = 0;
    for (o, inputs) in C3_TABLE.iter().enumerate() {
        for &i in inputs.iter() {
            for k in 0..25 {
                dense[(o * 6 + i) * 25 + k] = compact[link * 25 + k];
            }
            link += 1;
        }
    }
    dense
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The tensors and metadata of a good checkpoint, to be spoiled and serialized by a test.
struct Raw {
    tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
    meta: HashMap<String, String>,
}

impl Raw {
    fn good() -> Self {
        let p = params::init(3);
        let mut tensors = Vec::new();
        for t in TENSORS {
            let shape = SHAPES.iter().find(|s| s.0 == t.name).unwrap().1.to_vec();
            let values = if t == params::C3_W {
                c3_dense_by_hand(t.of(&p))
            } else {
                t.of(&p).to_vec()
            };
            tensors.push((t.name.to_string(), Dtype::F32, shape, le_bytes(&values)));
        }
        tensors.push((
            "output.centers".into(),
            Dtype::F32,
            vec![10, 84],
            le_bytes(&centers()),
        ));
        let meta = [
            ("format", "lenet-gpu"),
            ("format_version", "1"),
            ("epoch", "2"),
            ("seed", "3"),
            ("loss", "mse"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Raw { tensors, meta }
    }

    fn tensor(&mut self, name: &str) -> &mut (String, Dtype, Vec<usize>, Vec<u8>) {
        self.tensors.iter_mut().find(|t| t.0 == name).unwrap()
    }

    fn set_f32(&mut self, name: &str, index: usize, value: f32) {
        let bytes = &mut self.tensor(name).3;
        bytes[index * 4..index * 4 + 4].copy_from_slice(&value.to_le_bytes());
    }

    fn bytes(&self) -> Vec<u8> {
        let views: Vec<(String, TensorView<'_>)> = self
            .tensors
            .iter()
            .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        safetensors::serialize(views, Some(self.meta.clone())).unwrap()
    }

    fn write(&self, path: &Path) {
        std::fs::write(path, self.bytes()).unwrap();
    }
}

/// Loads `path`, which must be rejected as a checkpoint with a reason containing every
/// one of `needles`.
fn assert_rejected(path: &Path, needles: &[&str]) {
    match checkpoint::load(path) {
        Err(Error::Checkpoint { path: p, reason }) => {
            assert_eq!(p, path);
            for n in needles {
                assert!(reason.contains(n), "reason {reason:?} lacks {n:?}");
            }
        }
        Err(e) => panic!(
            "expected Error::Checkpoint for {}, got {e:?}",
            path.display()
        ),
        Ok(_) => panic!("{} was accepted", path.display()),
    }
}

#[test]
fn round_trip_is_bit_exact() {
    let dir = TempDir::new("roundtrip");
    let path = dir.path("model.safetensors");
    let p = params::init(3);
    let c = centers();
    let m = meta();
    checkpoint::save(&path, &p, &c, &m).unwrap();
    let ck = checkpoint::load(&path).unwrap();
    assert_eq!(ck.params.len(), N_PARAMS);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&ck.params), bits(&p));
    assert_eq!(bits(&ck.centers), bits(&c));
    assert_eq!(ck.meta, m);
    assert_eq!(dir.entries(), ["model.safetensors"]);
}

#[test]
fn header_has_exactly_the_pytorch_shapes() {
    let dir = TempDir::new("header");
    let path = dir.path("model.safetensors");
    let p = params::init(3);
    checkpoint::save(&path, &p, &centers(), &meta()).unwrap();
    let bytes = std::fs::read(&path).unwrap();

    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let infos = header.tensors();
    let mut names: Vec<&str> = infos.keys().map(String::as_str).collect();
    names.sort();
    let mut want: Vec<&str> = SHAPES.iter().map(|s| s.0).collect();
    want.sort();
    assert_eq!(names, want);
    for (name, shape) in SHAPES {
        let info = infos[name];
        assert_eq!(info.dtype, Dtype::F32, "{name}");
        assert_eq!(info.shape, shape, "{name}");
    }

    let m = header.metadata().as_ref().unwrap();
    assert_eq!(m["format"], "lenet-gpu");
    assert_eq!(m["format_version"], checkpoint::FORMAT_VERSION);
    assert_eq!(m["epoch"], "17");
    assert_eq!(m["seed"], (u64::MAX - 3).to_string());
    assert_eq!(m["loss"], "mse");
    assert_eq!(m["backend"], "cpu");
    assert_eq!(
        m["normalisation"],
        "x = p/255*1.275 - 0.1; 28x28 padded by 2 to 32x32 with -0.1"
    );

    // The data is the flat buffer in PyTorch order, with C3 dense.
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let good = Raw::good();
    for (name, _, _, data) in &good.tensors {
        assert_eq!(st.tensor(name).unwrap().data(), &data[..], "{name}");
    }
}

#[test]
fn overwrite_replaces_file_and_leaves_no_temp_files() {
    let dir = TempDir::new("overwrite");
    let path = dir.path("ck.safetensors");
    checkpoint::save(&path, &params::init(1), &centers(), &meta()).unwrap();
    let mut m2 = meta();
    m2.epoch = 18;
    m2.extra.clear();
    let p2 = params::init(2);
    checkpoint::save(&path, &p2, &centers(), &m2).unwrap();
    let ck = checkpoint::load(&path).unwrap();
    assert_eq!(ck.params, p2);
    assert_eq!(ck.meta, m2);
    assert_eq!(dir.entries(), ["ck.safetensors"]);

    // A refused save (NaN parameter) leaves the good file untouched and no temp file.
    let mut bad = p2.clone();
    bad[10] = f32::NAN;
    assert!(checkpoint::save(&path, &bad, &centers(), &m2).is_err());
    assert_eq!(checkpoint::load(&path).unwrap().params, p2);
    assert_eq!(dir.entries(), ["ck.safetensors"]);
}

#[test]
fn save_into_missing_directory_is_an_io_error() {
    let dir = TempDir::new("nodir");
    let path = dir.path("no/such/dir/ck.safetensors");
    match checkpoint::save(&path, &params::init(3), &centers(), &meta()) {
        Err(Error::Io { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected Error::Io, got {other:?}"),
    }
    assert!(!dir.path("no").exists());
}

#[test]
fn missing_file_is_an_io_error() {
    let dir = TempDir::new("missing");
    let path = dir.path("absent.safetensors");
    match checkpoint::load(&path) {
        Err(Error::Io { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected Error::Io, got {other:?}"),
    }
}

#[test]
fn empty_and_truncated_files_are_rejected() {
    let dir = TempDir::new("trunc");
    let good = Raw::good().bytes();
    let path = dir.path("t.safetensors");
    for cut in [0, 4, 8, 100, good.len() / 2, good.len() - 1] {
        std::fs::write(&path, &good[..cut]).unwrap();
        assert_rejected(&path, &["safetensors"]);
    }
    // Garbage header length and non-JSON header.
    let mut junk = vec![0xffu8; 64];
    std::fs::write(&path, &junk).unwrap();
    assert_rejected(&path, &["safetensors"]);
    junk[..8].copy_from_slice(&16u64.to_le_bytes());
    std::fs::write(&path, &junk).unwrap();
    assert_rejected(&path, &["safetensors"]);
}

#[test]
fn broken_tensors_are_rejected_with_the_culprit_named() {
    let dir = TempDir::new("broken");
    let path = dir.path("b.safetensors");

    let mut raw = Raw::good();
    raw.tensors.retain(|t| t.0 != "c5.bias");
    raw.write(&path);
    assert_rejected(&path, &["c5.bias", "missing"]);

    let mut raw = Raw::good();
    raw.tensor("f6.weight").2 = vec![120, 84];
    raw.write(&path);
    assert_rejected(&path, &["f6.weight", "[120, 84]", "[84, 120]"]);

    let mut raw = Raw::good();
    raw.set_f32("c1.bias", 3, f32::NAN);
    raw.write(&path);
    assert_rejected(&path, &["c1.bias", "[3]", "NaN"]);

    let mut raw = Raw::good();
    raw.set_f32("c5.weight", 2 * 400 + 25 + 6, f32::INFINITY);
    raw.write(&path);
    assert_rejected(&path, &["c5.weight", "[2,1,1,1]", "inf"]);

    // C3 map 0 reads S2 maps 0, 1, 2 only.
    let mut raw = Raw::good();
    raw.set_f32("c3.weight", 5 * 25 + 12, 0.25);
    raw.write(&path);
    assert_rejected(&path, &["c3.weight", "C3 map 0", "S2 map 5"]);

    let mut raw = Raw::good();
    let t = raw.tensor("s4.bias");
    t.1 = Dtype::F64;
    t.3 = (0..16).flat_map(|i| (i as f64).to_le_bytes()).collect();
    raw.write(&path);
    assert_rejected(&path, &["s4.bias", "F64", "F32"]);

    let mut raw = Raw::good();
    raw.meta.insert("format_version".into(), "2".into());
    raw.write(&path);
    assert_rejected(&path, &["version \"2\"", "version \"1\""]);

    let mut raw = Raw::good();
    raw.meta.remove("format_version");
    raw.write(&path);
    assert_rejected(&path, &["format_version", "missing"]);

    let mut raw = Raw::good();
    raw.meta.clear();
    raw.write(&path);
    assert_rejected(&path, &["format_version"]);

    let mut raw = Raw::good();
    raw.meta.insert("epoch".into(), "-1".into());
    raw.write(&path);
    assert_rejected(&path, &["epoch"]);

    let mut raw = Raw::good();
    raw.meta.insert("seed".into(), "x".into());
    raw.write(&path);
    assert_rejected(&path, &["seed"]);

    let mut raw = Raw::good();
    raw.meta.remove("epoch");
    raw.write(&path);
    assert_rejected(&path, &["epoch", "missing"]);
}

#[test]
fn unexpected_extra_tensors_are_ignored() {
    let dir = TempDir::new("extra");
    let path = dir.path("e.safetensors");
    let mut raw = Raw::good();
    raw.tensors
        .push(("optim.momentum".into(), Dtype::F64, vec![3], vec![0; 24]));
    raw.meta.insert("run".into(), "a".into());
    raw.write(&path);
    let ck = checkpoint::load(&path).unwrap();
    assert_eq!(ck.params, params::init(3));
    assert_eq!(ck.centers, centers());
    assert_eq!(ck.meta.epoch, 2);
    assert_eq!(ck.meta.seed, 3);
    assert_eq!(ck.meta.extra.get("run").map(String::as_str), Some("a"));
    assert_eq!(ck.meta.extra.len(), 1);
}
