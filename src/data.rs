//! MNIST-format data: the IDX reader (plain or gzipped), where the files are looked for,
//! and the in-memory dataset (raw u8 images; normalisation and padding happen in the
//! model's `input_forward`, on the CPU or the GPU).

use crate::{Error, Result};
use byteorder::{BigEndian, ByteOrder};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

pub const IMAGES_MAGIC: u32 = 0x0000_0803;
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// The standard file names of the two splits: (images, labels).
pub const TRAIN_FILES: (&str, &str) = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte");
pub const TEST_FILES: (&str, &str) = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte");

/// Images and labels of one split, as read from disk.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    /// (len, side, side), u8 as in the file.
    pub images: Vec<u8>,
    /// (len), each 0..9.
    pub labels: Vec<u8>,
    /// 28 (padded to 32 on input) or 32.
    pub side: usize,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.side * self.side;
        &self.images[i * n..(i + 1) * n]
    }
    /// Image `i` as 28x28, row-major (a 32x32 set is cropped to its centre).
    pub fn digit28(&self, i: usize) -> [u8; 784] {
        let img = self.image(i);
        let pad = (self.side - 28) / 2;
        let mut out = [0u8; 784];
        for r in 0..28 {
            out[r * 28..(r + 1) * 28].copy_from_slice(&img[(r + pad) * self.side + pad..][..28]);
        }
        out
    }

    /// The first `n` patterns (all of them when n >= len).
    pub fn truncated(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.images.truncate(n * self.side * self.side);
        self.labels.truncate(n);
        self
    }
}

fn idx_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Idx {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads an IDX file, gunzipping it when it starts with the gzip magic. `header_len` bytes
/// of header are read first and `body_len(header)` says how many bytes must follow; memory
/// is bounded by what the file really holds, never by what its header claims.
fn read_idx(
    path: &Path,
    header_len: usize,
    body_len: impl Fn(&[u8]) -> Result<usize>,
) -> Result<(Vec<u8>, Vec<u8>)> {
    if path.is_dir() {
        return Err(idx_err(path, "is a directory, expected an IDX file"));
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    read_idx_from(path, std::io::BufReader::new(file), header_len, body_len)
}

/// `read_idx` on any byte source; `path` only names it in errors.
fn read_idx_from(
    path: &Path,
    mut peek: impl std::io::BufRead,
    header_len: usize,
    body_len: impl Fn(&[u8]) -> Result<usize>,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut magic = [0u8; 2];
    let gz = {
        let buf = peek.fill_buf().map_err(|e| Error::io(path, e))?;
        if buf.len() >= 2 {
            magic.copy_from_slice(&buf[..2]);
        }
        magic == [0x1f, 0x8b]
    };
    let mut reader: Box<dyn Read + '_> = if gz {
        Box::new(GzDecoder::new(peek))
    } else {
        Box::new(peek)
    };
    let what = if gz { "gzip stream" } else { "file" };
    let mut header = vec![0u8; header_len];
    let mut got = 0;
    while got < header_len {
        match reader.read(&mut header[got..]) {
            Ok(0) => {
                return Err(idx_err(
                    path,
                    format!("{what} ends after {got} bytes, inside the {header_len}-byte header"),
                ));
            }
            Ok(n) => got += n,
            Err(e) => return Err(idx_err(path, format!("cannot read the header: {e}"))),
        }
    }
    let want = body_len(&header)?;
    let mut body = Vec::new();
    reader
        .take(want as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| idx_err(path, format!("cannot read the data ({what} corrupt?): {e}")))?;
    if body.len() < want {
        return Err(idx_err(
            path,
            format!(
                "truncated: the header announces {want} data bytes but the {what} holds {}",
                body.len()
            ),
        ));
    }
    if body.len() > want {
        return Err(idx_err(
            path,
            format!("the {what} holds more than the {want} data bytes its header announces"),
        ));
    }
    Ok((header, body))
}

/// Reads an IDX image file: (pixels, count, side) with side 28 or 32.
pub fn read_images(path: &Path) -> Result<(Vec<u8>, usize, usize)> {
    let (h, body) = read_idx(path, 16, |h| image_body_len(path, h))?;
    let n = BigEndian::read_u32(&h[4..8]) as usize;
    let side = BigEndian::read_u32(&h[8..12]) as usize;
    Ok((body, n, side))
}

/// [`read_images`] on the bytes of a file (plain or gzip); `name` only names it in errors.
/// The fuzz targets call this.
pub fn parse_images(bytes: &[u8], name: &Path) -> Result<(Vec<u8>, usize, usize)> {
    let (h, body) = read_idx_from(name, bytes, 16, |h| image_body_len(name, h))?;
    let n = BigEndian::read_u32(&h[4..8]) as usize;
    let side = BigEndian::read_u32(&h[8..12]) as usize;
    Ok((body, n, side))
}

/// [`read_labels`] on the bytes of a file (plain or gzip); `name` only names it in errors.
pub fn parse_labels(bytes: &[u8], name: &Path) -> Result<Vec<u8>> {
    let (_, body) = read_idx_from(name, bytes, 8, |h| label_body_len(name, h))?;
    check_labels(name, body)
}

/// The data bytes an image file's 16-byte header announces, or why it is refused.
fn image_body_len(path: &Path, h: &[u8]) -> Result<usize> {
    {
        let magic = BigEndian::read_u32(&h[0..4]);
        if magic != IMAGES_MAGIC {
            return Err(idx_err(
                path,
                format!(
                    "magic number is {magic:#010x}, expected {IMAGES_MAGIC:#010x} for an image file (is it a label file?)"
                ),
            ));
        }
        let (n, r, c) = (
            BigEndian::read_u32(&h[4..8]) as usize,
            BigEndian::read_u32(&h[8..12]) as usize,
            BigEndian::read_u32(&h[12..16]) as usize,
        );
        if r != c || !(r == 28 || r == 32) {
            return Err(idx_err(
                path,
                format!("images are {r}x{c}; only 28x28 or 32x32 are supported"),
            ));
        }
        if n == 0 {
            return Err(idx_err(path, "holds 0 images"));
        }
        Ok(n * r * c)
    }
}

/// Reads an IDX label file; every label must be 0..9.
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let (_, body) = read_idx(path, 8, |h| label_body_len(path, h))?;
    check_labels(path, body)
}

/// The labels a label file's 8-byte header announces, or why it is refused.
fn label_body_len(path: &Path, h: &[u8]) -> Result<usize> {
    {
        let magic = BigEndian::read_u32(&h[0..4]);
        if magic != LABELS_MAGIC {
            return Err(idx_err(
                path,
                format!(
                    "magic number is {magic:#010x}, expected {LABELS_MAGIC:#010x} for a label file (is it an image file?)"
                ),
            ));
        }
        let n = BigEndian::read_u32(&h[4..8]) as usize;
        if n == 0 {
            return Err(idx_err(path, "holds 0 labels"));
        }
        Ok(n)
    }
}

fn check_labels(path: &Path, body: Vec<u8>) -> Result<Vec<u8>> {
    if let Some(i) = body.iter().position(|&l| l > 9) {
        return Err(idx_err(
            path,
            format!("label {i} is {}, labels must be 0..9", body[i]),
        ));
    }
    Ok(body)
}

/// Reads one split from an images file and a labels file, checking that they agree.
pub fn read_split(images: &Path, labels: &Path) -> Result<Dataset> {
    let (img, n, side) = read_images(images)?;
    let lab = read_labels(labels)?;
    if lab.len() != n {
        return Err(Error::DataMismatch {
            images: images.to_path_buf(),
            labels: labels.to_path_buf(),
            reason: format!("{n} images but {} labels", lab.len()),
        });
    }
    Ok(Dataset {
        images: img,
        labels: lab,
        side,
    })
}

/// The data folder: `--data DIR`, else `$LENET_DATA`, else `data/mnist`.
pub fn data_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(d) = flag {
        return d.to_path_buf();
    }
    match std::env::var_os("LENET_DATA") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from("data/mnist"),
    }
}

/// Finds `name` or `name.gz` in `dir`.
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))]
        .into_iter()
        .find(|p| p.exists())
}

/// Reads both splits from `dir`; a missing file is an error listing every missing file,
/// where it looked, and the command that fetches them.
pub fn load_mnist(dir: &Path) -> Result<(Dataset, Dataset)> {
    let mut missing = Vec::new();
    let mut paths = Vec::new();
    for name in [TRAIN_FILES.0, TRAIN_FILES.1, TEST_FILES.0, TEST_FILES.1] {
        match find_file(dir, name) {
            Some(p) => paths.push(p),
            None => missing.push(format!("{name}[.gz]")),
        }
    }
    if !missing.is_empty() {
        return Err(Error::DataMissing {
            dir: dir.to_path_buf(),
            missing: missing.join(", "),
        });
    }
    let train = read_split(&paths[0], &paths[1])?;
    let test = read_split(&paths[2], &paths[3])?;
    if train.side != test.side {
        return Err(Error::DataMismatch {
            images: paths[0].clone(),
            labels: paths[2].clone(),
            reason: format!(
                "training images are {0}x{0}, test images {1}x{1}",
                train.side, test.side
            ),
        });
    }
    Ok((train, test))
}
