//! Checkpoints: the parameters, the output-layer centres and a little metadata in one
//! safetensors file (f32 little-endian, PyTorch layouts), so other tools load it unchanged.
//!
//! | name | shape |
//! |---|---|
//! | `c1.weight`, `c1.bias` | `[6,1,5,5]`, `[6]` |
//! | `s2.weight`, `s2.bias` | `[6]`, `[6]` |
//! | `c3.weight`, `c3.bias` | `[16,6,5,5]` (zero where the table has no link), `[16]` |
//! | `s4.weight`, `s4.bias` | `[16]`, `[16]` |
//! | `c5.weight`, `c5.bias` | `[120,16,5,5]`, `[120]` |
//! | `f6.weight`, `f6.bias` | `[84,120]`, `[84]` |
//! | `output.centers` | `[10,84]` |
//!
//! Every tensor but `c3.weight` has the same order in the flat buffer of [`crate::model::params`]
//! as in the file. `c3.weight` is compact in the buffer (only the links of
//! [`C3_TABLE`]) and dense in the file; see [`c3_to_dense`] and [`c3_from_dense`].
//!
//! [`save`] is atomic: an existing checkpoint is only ever replaced by a complete one.
//! [`load`] checks names, shapes, dtypes, finiteness, the C3 connection table and the
//! format version, and never panics on what the file holds.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::Error;
use crate::model::params::{C3_LINKS, C3_TABLE, C3_W, N_PARAMS, TENSORS, c3_link_start};

/// Version of the checkpoint layout this program writes and reads.
pub const FORMAT_VERSION: &str = "1";

/// Value of the `format` metadata entry.
pub const FORMAT: &str = "lenet-gpu";

/// Value of the `normalisation` metadata entry: how input images were scaled.
pub const NORMALISATION: &str = "x = p/255*1.275 - 0.1; 28x28 padded by 2 to 32x32 with -0.1";

/// Name of the output-layer centres (the RBF prototypes) in a checkpoint.
pub const CENTERS_NAME: &str = "output.centers";

/// Number of values in the output-layer centres: 10 classes x 84 F6 units.
pub const N_CENTERS: usize = 10 * 84;

/// Metadata keys written by [`save`] itself; [`Meta::extra`] may not use them.
pub const RESERVED_KEYS: [&str; 6] = [
    "format",
    "format_version",
    "epoch",
    "seed",
    "loss",
    "normalisation",
];

/// Number of values of the dense `[16,6,5,5]` C3 weight tensor.
const C3_DENSE_LEN: usize = 16 * 6 * 25;
/// Number of values of the compact C3 weights (60 links x 25).
const C3_COMPACT_LEN: usize = C3_LINKS * 25;

/// What a checkpoint records besides the weights (goes into the safetensors
/// `__metadata__` as strings).
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    /// Number of completed training epochs.
    pub epoch: u32,
    /// Seed the run was started with.
    pub seed: u64,
    /// Loss function, as free text (e.g. "mse" or "map").
    pub loss: String,
    /// Any further entries; keys must not be one of [`RESERVED_KEYS`].
    pub extra: BTreeMap<String, String>,
}

impl Meta {
    /// The metadata of a file of plain weights: nothing known.
    pub fn unknown() -> Self {
        Meta {
            epoch: 0,
            seed: 0,
            loss: "unknown".into(),
            extra: BTreeMap::new(),
        }
    }
}

/// Training state saved beside the weights so a run continues exactly where it stopped:
/// the momentum buffer and the step sizes of the pass in progress (flat layout each).
#[derive(Debug, Clone, PartialEq)]
pub struct Optimizer {
    pub velocity: Vec<f32>,
    pub eps: Vec<f32>,
}

/// Tensor names of [`Optimizer`], each `[N_PARAMS]`.
pub const VELOCITY_NAME: &str = "optimizer.velocity";
pub const EPS_NAME: &str = "optimizer.eps";

/// A loaded checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The [`N_PARAMS`] parameters in the flat layout of [`crate::model::params`] (C3 compact).
    pub params: Vec<f32>,
    /// The output-layer centres, 10 x 84, row-major (class, F6 unit).
    pub centers: Vec<f32>,
    /// The metadata.
    pub meta: Meta,
    /// The optimiser state, in checkpoints written during training with it.
    pub optimizer: Option<Optimizer>,
}

/// PyTorch shape of the checkpoint tensor `name`, or `None` for a name not in a checkpoint.
pub fn shape_of(name: &str) -> Option<&'static [usize]> {
    Some(match name {
        "c1.weight" => &[6, 1, 5, 5],
        "c1.bias" | "s2.weight" | "s2.bias" => &[6],
        "c3.weight" => &[16, 6, 5, 5],
        "c3.bias" | "s4.weight" | "s4.bias" => &[16],
        "c5.weight" => &[120, 16, 5, 5],
        "c5.bias" => &[120],
        "f6.weight" => &[84, 120],
        "f6.bias" => &[84],
        CENTERS_NAME => &[10, 84],
        VELOCITY_NAME | EPS_NAME => &[N_PARAMS],
        _ => return None,
    })
}

/// Position of S2 map `input` among the inputs of C3 map `map`, if the table links them.
fn c3_link(map: usize, input: usize) -> Option<usize> {
    C3_TABLE
        .get(map)
        .and_then(|ins| ins.iter().position(|&i| i == input))
}

/// Expands the compact C3 weights (1500 = 60 links x 25, as in the flat buffer) to the
/// dense PyTorch tensor `[16,6,5,5]` (2400 values), with zeros where the connection
/// table has no link.
///
/// # Panics
/// If `compact.len()` is not 1500.
pub fn c3_to_dense(compact: &[f32]) -> Vec<f32> {
    assert_eq!(
        compact.len(),
        C3_COMPACT_LEN,
        "compact C3 weights must hold {C3_COMPACT_LEN} values"
    );
    let mut dense = vec![0.0f32; C3_DENSE_LEN];
    for (map, inputs) in C3_TABLE.iter().enumerate() {
        for (j, &input) in inputs.iter().enumerate() {
            let src = (c3_link_start(map) + j) * 25;
            let dst = (map * 6 + input) * 25;
            dense[dst..dst + 25].copy_from_slice(&compact[src..src + 25]);
        }
    }
    dense
}

/// Packs the dense C3 weights `[16,6,5,5]` (2400 values) into the compact layout of the
/// flat buffer (1500 values).
///
/// Fails, saying which C3 map and S2 map, if a weight where the connection table has no
/// link is not zero (or is NaN), or if `dense` does not hold 2400 values.
pub fn c3_from_dense(dense: &[f32]) -> Result<Vec<f32>, String> {
    if dense.len() != C3_DENSE_LEN {
        return Err(format!(
            "dense C3 weights must hold {C3_DENSE_LEN} values (16x6x5x5), got {}",
            dense.len()
        ));
    }
    let mut compact = vec![0.0f32; C3_COMPACT_LEN];
    for (k, window) in dense.chunks_exact(25).enumerate() {
        let (map, input) = (k / 6, k % 6);
        match c3_link(map, input) {
            Some(j) => {
                let dst = (c3_link_start(map) + j) * 25;
                compact[dst..dst + 25].copy_from_slice(window);
            }
            None => {
                if let Some((w, v)) = window.iter().enumerate().find(|&(_, &v)| v != 0.0) {
                    return Err(format!(
                        "C3 map {map} does not read S2 map {input} (connection table), so \
                         c3.weight[{map},{input},{},{}] must be 0, but it is {v}",
                        w / 5,
                        w % 5
                    ));
                }
            }
        }
    }
    Ok(compact)
}

/// Formats flat index `i` of a tensor of `shape` as a multi-index, e.g. `[3,0,2,4]`.
fn index_string(mut i: usize, shape: &[usize]) -> String {
    let mut idx = vec![0usize; shape.len()];
    for (slot, &dim) in idx.iter_mut().zip(shape).rev() {
        if dim > 0 {
            *slot = i % dim;
            i /= dim;
        }
    }
    let parts: Vec<String> = idx.iter().map(usize::to_string).collect();
    format!("[{}]", parts.join(","))
}

/// Error naming the first non-finite value of tensor `name`, if there is one.
fn check_finite(name: &str, shape: &[usize], values: &[f32]) -> Result<(), String> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(format!(
            "tensor `{name}` has a non-finite value at index {} (flat {i}): {}",
            index_string(i, shape),
            values.get(i).copied().unwrap_or(f32::NAN)
        )),
    }
}

/// Writes `bytes` to `tmp`, flushed to disk.
fn write_synced(tmp: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).open(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Saves a checkpoint to `path` atomically.
///
/// `params` is the flat buffer of [`crate::model::params`] ([`N_PARAMS`] values, C3 compact),
/// `centers` the 10x84 output centres. The file is first written to a temporary file
/// `.<name>.tmp-<pid>-<n>` next to `path`, synced, then renamed over `path`, so an
/// existing checkpoint is only ever replaced by a complete one; on any error the
/// temporary file is removed. The parent directory must exist (it is not created).
///
/// Errors: [`Error::Checkpoint`] if the buffers have the wrong length or hold a
/// non-finite value, [`Error::Config`] if an extra metadata key is reserved,
/// [`Error::Io`] (naming `path`) if the file cannot be written.
pub fn save(path: &Path, params: &[f32], centers: &[f32], meta: &Meta) -> crate::Result<()> {
    save_training(path, params, centers, meta, None)
}

/// [`save`], plus the optimiser state when given (tensors `optimizer.velocity` and
/// `optimizer.eps`, which other tools ignore).
pub fn save_training(
    path: &Path,
    params: &[f32],
    centers: &[f32],
    meta: &Meta,
    optimizer: Option<&Optimizer>,
) -> crate::Result<()> {
    let bytes = encode::to_bytes(path, params, centers, meta, optimizer)?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` atomically: into a temporary file `.<name>.tmp-<pid>-<n>` in
/// the same folder, synced, then renamed over `path`; on any error the temporary file is
/// removed and `path` is untouched. The folder must exist (it is not created).
///
/// Errors: [`Error::Io`] naming `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> crate::Result<()> {
    let Some(file_name) = path.file_name() else {
        return Err(Error::io(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
        ));
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(Error::io(
            path,
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "directory {} does not exist; create it first",
                    dir.display()
                ),
            ),
        ));
    }

    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp-{}-{n}", std::process::id()));
    let tmp = dir.join(tmp_name);

    let result = write_synced(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    // Make the rename itself durable where the platform allows syncing a directory.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads the values of tensor `name` from `st`, checking dtype, shape and finiteness.
fn read_tensor(st: &SafeTensors<'_>, name: &str) -> Result<Vec<f32>, String> {
    let expected = shape_of(name).ok_or_else(|| format!("no shape known for `{name}`"))?;
    let view = st.tensor(name).map_err(|_| {
        format!("tensor `{name}` is missing (a lenet-gpu checkpoint has `{name}` {expected:?})")
    })?;
    if view.dtype() != Dtype::F32 {
        return Err(format!(
            "tensor `{name}` has dtype {}, expected F32",
            view.dtype()
        ));
    }
    if view.shape() != expected {
        return Err(format!(
            "tensor `{name}` has shape {:?}, expected {expected:?}",
            view.shape()
        ));
    }
    let data = view.data();
    let n: usize = expected.iter().product();
    if data.len() != n * 4 {
        return Err(format!(
            "tensor `{name}` holds {} bytes, expected {}",
            data.len(),
            n * 4
        ));
    }
    let values: Vec<f32> = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    check_finite(name, expected, &values)?;
    Ok(values)
}

/// Reads metadata entry `key`, failing with a reason if it is missing.
fn meta_entry<'a>(meta: &'a HashMap<String, String>, key: &str) -> Result<&'a str, String> {
    meta.get(key)
        .map(String::as_str)
        .ok_or_else(|| format!("metadata entry `{key}` is missing"))
}

fn parse_meta(meta: Option<&HashMap<String, String>>) -> Result<Meta, String> {
    let Some(meta) = meta else {
        return Err(format!(
            "the header has no __metadata__ (no format_version); this is not a lenet-gpu \
             checkpoint (this program reads format version {FORMAT_VERSION})"
        ));
    };
    if let Some(format) = meta.get("format")
        && format != FORMAT
    {
        return Err(format!(
            "metadata says format `{format}`, this program reads `{FORMAT}` checkpoints"
        ));
    }
    let version = meta.get("format_version").ok_or_else(|| {
        format!(
            "metadata entry `format_version` is missing; this program reads format version \
             {FORMAT_VERSION}"
        )
    })?;
    if version != FORMAT_VERSION {
        return Err(format!(
            "the file has checkpoint format version {version:?}, but this program reads \
             version {FORMAT_VERSION:?}; use a lenet-gpu that matches the file, or retrain"
        ));
    }
    let epoch = meta_entry(meta, "epoch")?;
    let epoch = epoch
        .parse::<u32>()
        .map_err(|e| format!("metadata `epoch` = {epoch:?} is not a whole number: {e}"))?;
    let seed = meta_entry(meta, "seed")?;
    let seed = seed
        .parse::<u64>()
        .map_err(|e| format!("metadata `seed` = {seed:?} is not a whole number: {e}"))?;
    let loss = meta.get("loss").cloned().unwrap_or_default();
    let extra = meta
        .iter()
        .filter(|(k, _)| !RESERVED_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Meta {
        epoch,
        seed,
        loss,
        extra,
    })
}

/// Parses the bytes of a checkpoint file; with `plain`, also a file of weights alone (the
/// tensor names and shapes of a checkpoint, no lenet-gpu metadata, the centres optional),
/// whose `Meta` is then `Meta::unknown()`.
fn from_bytes(bytes: &[u8], plain: bool) -> Result<(Checkpoint, bool), String> {
    let wrap = |e: safetensors::SafeTensorError| {
        format!("not a readable safetensors file (truncated or corrupt?): {e}")
    };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(wrap)?;
    let st = SafeTensors::deserialize(bytes).map_err(wrap)?;
    let no_meta = header
        .metadata()
        .as_ref()
        .is_none_or(|m| !m.contains_key("format_version") && !m.contains_key("format"));
    let meta = if plain && no_meta {
        Meta::unknown()
    } else {
        parse_meta(header.metadata().as_ref())?
    };
    let plain = plain && no_meta;

    let mut params = vec![0.0f32; N_PARAMS];
    for t in TENSORS {
        let values = read_tensor(&st, t.name)?;
        let values = if t == C3_W {
            c3_from_dense(&values).map_err(|e| format!("tensor `c3.weight`: {e}"))?
        } else {
            values
        };
        let dst = params
            .get_mut(t.range())
            .ok_or_else(|| format!("internal layout error for `{}`", t.name))?;
        if dst.len() != values.len() {
            return Err(format!("internal layout error for `{}`", t.name));
        }
        dst.copy_from_slice(&values);
    }
    let has = |n: &str| st.names().contains(&n);
    let centers = if plain && !has(CENTERS_NAME) {
        crate::model::RBF_CENTERS.to_vec()
    } else {
        read_tensor(&st, CENTERS_NAME)?
    };
    let optimizer = match (has(VELOCITY_NAME), has(EPS_NAME)) {
        (false, false) => None,
        (true, true) => Some(Optimizer {
            velocity: read_tensor(&st, VELOCITY_NAME)?,
            eps: read_tensor(&st, EPS_NAME)?,
        }),
        _ => {
            return Err(format!(
                "holds only one of `{VELOCITY_NAME}` and `{EPS_NAME}`; the optimiser state is incomplete"
            ));
        }
    };
    Ok((
        Checkpoint {
            params,
            centers,
            meta,
            optimizer,
        },
        plain,
    ))
}

/// Loads and checks a checkpoint written by [`save`] (or any tool that follows the same
/// names, shapes and metadata).
///
/// Errors: [`Error::Io`] (naming `path`) if the file cannot be read;
/// [`Error::Checkpoint`] if it is not a safetensors file, is truncated, lacks a tensor,
/// has a tensor of the wrong shape or dtype, holds a non-finite value, has a non-zero
/// C3 weight where the connection table has no link, or has missing/different
/// `format_version` or unparsable `epoch`/`seed`. Tensors not in a checkpoint are ignored.
pub fn load(path: &Path) -> crate::Result<Checkpoint> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    from_bytes(&bytes, false)
        .map(|(ck, _)| ck)
        .map_err(|reason| Error::Checkpoint {
            path: path.to_path_buf(),
            reason,
        })
}

/// [`load`] (or, with `plain`, [`load_weights`]) on the bytes of a file: the fuzz targets
/// call this. Errors are the reason [`Error::Checkpoint`] would carry.
pub fn parse(bytes: &[u8], plain: bool) -> Result<Checkpoint, String> {
    from_bytes(bytes, plain).map(|(ck, _)| ck)
}

/// The file in a checkpoint folder that `--resume DIR` and `load_weights(DIR)` read.
pub const LAST: &str = "last.safetensors";

/// Weights to classify with, as `eval`, `predict` and `visualize` take them: a checkpoint,
/// a checkpoint folder (its `last.safetensors`), or a safetensors file of the weights
/// alone with a checkpoint's tensor names and shapes but no lenet-gpu metadata (saved
/// from PyTorch, say; the output centres may be left out, this build's are used). Returns
/// the file read, and for a plain-weights file a note saying what is unknown.
pub fn load_weights(path: &Path) -> crate::Result<(Checkpoint, PathBuf, Option<String>)> {
    let file = if path.is_dir() {
        path.join(LAST)
    } else {
        path.to_path_buf()
    };
    if path.is_dir() && !file.exists() {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            reason: format!(
                "is a folder without {LAST}; give a checkpoint file, or the folder of a \
                 `train --checkpoint-dir` run"
            ),
        });
    }
    let bytes = fs::read(&file).map_err(|e| Error::io(&file, e))?;
    let (ck, plain) = from_bytes(&bytes, true).map_err(|reason| Error::Checkpoint {
        path: file.clone(),
        reason,
    })?;
    let note = plain.then(|| {
        format!(
            "{} holds weights without lenet-gpu metadata (pass, seed and loss unknown); using them as they are",
            file.display()
        )
    });
    Ok((ck, file, note))
}

mod encode;

#[cfg(test)]
mod tests;
