//! *Internal:* `lenet-gpu fetch`: download the four MNIST files from public mirrors and verify them.
//!
//! Files are stored exactly as the mirrors serve them (`<name>.gz`), but every file is
//! checked against the SHA-256 of its *decompressed* content, built in below. Hashing the
//! decompressed bytes makes the check independent of how a mirror happened to gzip the
//! data, and it is what proves the training data is the real MNIST.
//!
//! Safety properties this module keeps:
//! - a file only appears under its final name once it has been fully downloaded,
//!   verified and fsynced (temp file in the same folder, then rename), so an
//!   interrupted or failed fetch never leaves a half-written `<name>.gz` behind;
//! - downloads and decompression are capped, so a hostile or broken server cannot
//!   exhaust memory or CPU;
//! - every failure of a mirror is recorded and the next mirror is tried; only when all
//!   of them fail is an [`Error::Fetch`] returned, listing each mirror and its reason.

use std::fs::{self, File};
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Base URLs of public MNIST mirrors, tried in order. Each serves the four files as
/// `<base>/<name>.gz`. The original yann.lecun.com host is not listed because it now
/// often refuses downloads.
pub const DEFAULT_MIRRORS: &[&str] = &[
    "https://ossci-datasets.s3.amazonaws.com/mnist",
    "https://storage.googleapis.com/cvdf-datasets/mnist",
];

/// The four MNIST files, by their canonical (decompressed) names.
pub const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// SHA-256 of each file's *decompressed* content (lowercase hex).
///
/// Built in rather than downloaded, so that a mirror can't vouch for its own data.
pub const SHA256: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    (
        "train-labels-idx1-ubyte",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    (
        "t10k-images-idx3-ubyte",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    (
        "t10k-labels-idx1-ubyte",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
];

/// Most bytes accepted from one HTTP response (after any transfer decoding). The largest
/// real file is about 9.9 MB gzipped (47 MB if a server decompresses it on the fly), so
/// this leaves ample room while bounding the memory a hostile server can make us use.
pub const MAX_DOWNLOAD_BYTES: u64 = 64 * 1024 * 1024;

/// Most bytes a file may decompress to. The largest real file is 47,040,016 bytes; the
/// cap stops a gzip bomb from keeping us busy hashing forever.
pub const MAX_DECOMPRESSED_BYTES: u64 = 64 * 1024 * 1024;

/// Time allowed to establish a connection (including TLS) to one mirror.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed for any single read to make progress, so a stalled server is abandoned
/// well before the global timeout.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Time allowed for one whole request, body included (about 33 KB/s for the biggest file).
const GLOBAL_TIMEOUT: Duration = Duration::from_secs(300);

/// What [`fetch`] should do.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Folder to store the files in; created if missing.
    pub dir: PathBuf,
    /// Base URLs to try in order; each must serve `<base>/<name>.gz`. A trailing `/` is fine.
    pub mirrors: Vec<String>,
    /// Report progress on stderr: a progress bar on a terminal, plain lines otherwise.
    /// When false nothing is printed.
    pub progress: bool,
}

impl FetchOptions {
    /// Options for `dir` with the [`DEFAULT_MIRRORS`] and progress reporting on.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FetchOptions {
            dir: dir.into(),
            mirrors: mirrors_from_env()
                .unwrap_or_else(|| DEFAULT_MIRRORS.iter().map(|m| m.to_string()).collect()),
            progress: true,
        }
    }
}

/// What [`fetch`] did for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// A verified copy (`<name>.gz`, or `<name>` when no `.gz` exists) was already there.
    AlreadyValid,
    /// The file was downloaded from `mirror` (the base URL as given) and stored as `<name>.gz`.
    Downloaded { mirror: String },
}

/// The expected SHA-256 (lowercase hex) of the decompressed MNIST file `name`, if it is
/// one of [`FILES`].
pub fn expected_sha256(name: &str) -> Option<&'static str> {
    SHA256.iter().find(|(n, _)| *n == name).map(|(_, h)| *h)
}

/// `LENET_MIRRORS`: comma-separated mirror base URLs that replace [`DEFAULT_MIRRORS`] for
/// `fetch` and for the fetch on first use of `train` (`fetch --mirror` overrides both).
pub fn mirrors_from_env() -> Option<Vec<String>> {
    let v = std::env::var("LENET_MIRRORS").ok()?;
    let list: Vec<String> = v
        .split(',')
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect();
    (!list.is_empty()).then_some(list)
}

/// Make sure all four MNIST files are in `opts.dir`, downloading the ones that are
/// missing or corrupt. Returns, in [`FILES`] order, each file name and what was done.
///
/// Stops at the first file that no mirror could supply, with [`Error::Fetch`]; the
/// files fetched before it stay in place (they are complete and verified).
pub fn fetch(opts: &FetchOptions) -> Result<Vec<(String, FileOutcome)>> {
    // The folders this call creates, deepest first: removed again (when still empty) if
    // nothing could be fetched, so a failed first run leaves nothing behind.
    let created: Vec<PathBuf> = opts
        .dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect();
    fs::create_dir_all(&opts.dir).map_err(|e| Error::io(&opts.dir, e))?;
    let r = fetch_into(opts);
    if r.is_err() {
        for d in &created {
            let _ = fs::remove_dir(d);
        }
    }
    r
}

fn fetch_into(opts: &FetchOptions) -> Result<Vec<(String, FileOutcome)>> {
    let reporter = Reporter::new(opts.progress);
    // Built lazily: when every file is already valid no network setup is needed.
    let mut agent: Option<ureq::Agent> = None;
    let mut outcomes = Vec::with_capacity(FILES.len());

    for name in FILES {
        let gz_path = opts.dir.join(format!("{name}.gz"));
        let raw_path = opts.dir.join(name);
        if existing_copy_is_valid(&gz_path, &raw_path, name) {
            reporter.line(&format!("fetch: {name} already present, checksum ok"));
            outcomes.push((name.to_string(), FileOutcome::AlreadyValid));
            continue;
        }
        if opts.mirrors.is_empty() {
            return Err(Error::Config(format!(
                "{name} must be downloaded but no mirrors were given; pass --mirror URL"
            )));
        }
        let agent = agent.get_or_insert_with(build_agent);
        let mirror = download_from_mirrors(agent, opts, name, &gz_path, &reporter)?;
        outcomes.push((name.to_string(), FileOutcome::Downloaded { mirror }));
    }
    Ok(outcomes)
}

/// True if `path` holds the MNIST file `name` with the right decompressed SHA-256.
///
/// A path ending in `.gz` must be gzip data; any other path must be the raw IDX file.
/// (Being strict here matters: a loader opening `<name>.gz` will gunzip it.) Any I/O
/// or format problem, or an unknown `name`, gives false.
pub fn file_is_valid(path: &Path, name: &str) -> bool {
    let Some(expected) = expected_sha256(name) else {
        return false;
    };
    let Ok(file) = File::open(path) else {
        return false;
    };
    let is_gz = path.extension().is_some_and(|e| e == "gz");
    let digest = if is_gz {
        sha256_hex(GzDecoder::new(io::BufReader::new(file)))
    } else {
        sha256_hex(file)
    };
    digest.is_ok_and(|d| d == expected)
}

/// Decide whether `name` needs downloading. An invalid `<name>.gz` is always replaced
/// (even if a valid raw `<name>` sits beside it) because loaders may prefer the `.gz`.
fn existing_copy_is_valid(gz_path: &Path, raw_path: &Path, name: &str) -> bool {
    if gz_path.exists() {
        file_is_valid(gz_path, name)
    } else {
        file_is_valid(raw_path, name)
    }
}

fn build_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_per_read(Some(READ_TIMEOUT))
        .timeout_global(Some(GLOBAL_TIMEOUT))
        // Statuses are checked by hand so the reason can carry the status line.
        .http_status_as_error(false)
        .build()
        .new_agent()
}

/// Try each mirror in turn for `name`; on the first verified download, store it at
/// `gz_path` and return the mirror's base URL.
fn download_from_mirrors(
    agent: &ureq::Agent,
    opts: &FetchOptions,
    name: &str,
    gz_path: &Path,
    reporter: &Reporter,
) -> Result<String> {
    let mut tried = Vec::with_capacity(opts.mirrors.len());
    for mirror in &opts.mirrors {
        let url = format!("{}/{name}.gz", mirror.trim_end_matches('/'));
        let prefix = format!("fetch: {name}.gz from {mirror} ... ");
        reporter.start(&prefix);
        match download_verified(agent, &url, name, reporter) {
            Ok(gz_bytes) => {
                // A local write failure is not the mirror's fault: trying another
                // mirror would fail the same way, so stop with the I/O error.
                if let Err(e) = store_atomically(&opts.dir, name, gz_path, &gz_bytes) {
                    reporter.finish(&prefix, &format!("failed: {e}"));
                    return Err(e);
                }
                reporter.finish(
                    &prefix,
                    &format!("ok ({})", human_size(gz_bytes.len() as u64)),
                );
                return Ok(mirror.clone());
            }
            Err(reason) => {
                // Reasons go in a one-line-per-mirror list, so keep each on one line.
                let reason = reason.replace(['\r', '\n'], " ");
                reporter.finish(&prefix, &format!("failed: {reason}"));
                tried.push(format!("  {url}: {reason}"));
            }
        }
    }
    Err(Error::Fetch {
        file: format!("{name}.gz"),
        tried: tried.join("\n"),
    })
}

/// GET `url`, check its content, and return gzip bytes ready to store. The error is a
/// human-readable reason for this mirror's failure.
fn download_verified(
    agent: &ureq::Agent,
    url: &str,
    name: &str,
    reporter: &Reporter,
) -> std::result::Result<Vec<u8>, String> {
    let expected = expected_sha256(name).ok_or_else(|| format!("unknown MNIST file {name}"))?;
    let response = agent.get(url).call().map_err(|e| e.to_string())?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!(
            "HTTP {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
        .trim_end()
        .to_string());
    }
    let content_length = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(len) = content_length
        && len > MAX_DOWNLOAD_BYTES
    {
        return Err(format!(
            "server announces {len} bytes, over the {} cap",
            human_size(MAX_DOWNLOAD_BYTES)
        ));
    }

    let mut reader = response
        .into_body()
        .into_with_config()
        .limit(MAX_DOWNLOAD_BYTES)
        .reader();
    let bar = reporter.bar(content_length, &format!("{name}.gz"));
    // Don't trust Content-Length for the allocation beyond the cap checked above.
    let mut body = Vec::with_capacity(content_length.unwrap_or(0) as usize);
    let mut buf = vec![0u8; 64 * 1024];
    let read_result = loop {
        match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                body.extend_from_slice(&buf[..n]);
                if let Some(bar) = &bar {
                    bar.inc(n as u64);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(format!("reading body: {e}")),
        }
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    read_result?;

    if body.starts_with(&[0x1f, 0x8b]) {
        let digest =
            sha256_hex(GzDecoder::new(&body[..])).map_err(|e| format!("bad gzip data: {e}"))?;
        check_digest(&digest, expected)?;
        Ok(body)
    } else {
        // ureq transparently gunzips when a server labels the file `Content-Encoding: gzip`,
        // so a correct download can arrive decompressed. Verify it as is and re-gzip it
        // so what we store is always `<name>.gz`.
        let digest = sha256_hex(&body[..]).map_err(|e| format!("reading body: {e}"))?;
        check_digest(&digest, expected)?;
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(&body)
            .and_then(|()| enc.finish())
            .map_err(|e| format!("re-compressing: {e}"))
    }
}

fn check_digest(got: &str, expected: &str) -> std::result::Result<(), String> {
    if got == expected {
        Ok(())
    } else {
        Err(format!("SHA-256 mismatch (got {got}, expected {expected})"))
    }
}

/// SHA-256 (lowercase hex) of everything `reader` yields, refusing more than
/// [`MAX_DECOMPRESSED_BYTES`].
fn sha256_hex(mut reader: impl Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        if total > MAX_DECOMPRESSED_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("content exceeds {} cap", human_size(MAX_DECOMPRESSED_BYTES)),
            ));
        }
        hasher.update(&buf[..n]);
    }
    let digest = hasher.finalize();
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// Deletes the temp file when dropped unless the rename succeeded, so no error path
/// (or panic) can leave a partial file in the data folder.
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Write `bytes` to `final_path` so that readers see either the old file or the whole
/// new one: temp file in the same folder (same filesystem, so rename is atomic), fsync,
/// rename, then fsync the folder so the rename itself survives a crash.
fn store_atomically(dir: &Path, name: &str, final_path: &Path, bytes: &[u8]) -> Result<()> {
    let mut temp = TempFile {
        path: dir.join(format!(".{name}.gz.part-{}", std::process::id())),
        armed: true,
    };
    let write = || -> io::Result<()> {
        let mut f = File::create(&temp.path)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().map_err(|e| Error::io(&temp.path, e))?;
    fs::rename(&temp.path, final_path).map_err(|e| Error::io(final_path, e))?;
    temp.armed = false;
    // Best effort: not every platform lets a directory be opened and synced, and the
    // file itself is already complete.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// "9.9 MB" / "28.9 kB": decimal units with one decimal, as download sizes are usually
/// quoted.
fn human_size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.1} kB", b / 1e3)
    }
}

/// Progress output on stderr: nothing when disabled; on a terminal a byte progress bar
/// while downloading plus one summary line per attempt; otherwise just the plain lines
/// (bars would fill logs with control characters).
struct Reporter {
    enabled: bool,
    tty: bool,
}

impl Reporter {
    fn new(enabled: bool) -> Self {
        Reporter {
            enabled,
            tty: enabled && io::stderr().is_terminal(),
        }
    }

    // Writes go through `writeln!` with the result ignored, not `eprintln!`, which
    // panics if stderr is a closed pipe; progress output must never abort a download.
    fn line(&self, msg: &str) {
        if self.enabled {
            let _ = writeln!(io::stderr(), "{msg}");
        }
    }

    /// Begin a "fetch: X from M ... " line. On a terminal it is printed whole in
    /// `finish` instead, because the progress bar would overwrite a half-written line.
    fn start(&self, prefix: &str) {
        if self.enabled && !self.tty {
            let mut err = io::stderr();
            let _ = write!(err, "{prefix}");
            let _ = err.flush();
        }
    }

    fn finish(&self, prefix: &str, result: &str) {
        if !self.enabled {
            return;
        }
        if self.tty {
            let _ = writeln!(io::stderr(), "{prefix}{result}");
        } else {
            let _ = writeln!(io::stderr(), "{result}");
        }
    }

    fn bar(&self, total: Option<u64>, label: &str) -> Option<indicatif::ProgressBar> {
        if !self.tty {
            return None;
        }
        let (bar, template) = match total {
            Some(len) => (
                indicatif::ProgressBar::new(len),
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ),
            None => (
                indicatif::ProgressBar::no_length(),
                "{spinner} {msg} {bytes} {bytes_per_sec}",
            ),
        };
        // A bad template only costs the styling, never the download.
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_string());
        Some(bar)
    }
}
