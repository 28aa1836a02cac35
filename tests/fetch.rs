//! `lenet_gpu::fetch` against a tiny local HTTP server that serves the real MNIST
//! files (good, corrupted, or 404), so mirror fallback, verification and atomic
//! storage are tested without touching the network.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use flate2::read::GzDecoder;
use lenet_gpu::Error;
use lenet_gpu::fetch::*;
use sha2::{Digest, Sha256};

/// The shared folder with the four real `<name>.gz` files.
fn data_dir() -> PathBuf {
    let dir = match std::env::var_os("LENET_DATA") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist"),
    };
    for name in FILES {
        let p = dir.join(format!("{name}.gz"));
        assert!(
            p.is_file(),
            "{} missing: set LENET_DATA to a folder holding the four MNIST .gz files",
            p.display()
        );
    }
    dir
}

struct Server {
    base: String,
    requests: Arc<AtomicUsize>,
}

/// Start an HTTP/1.1 server on 127.0.0.1:0 serving `/good/<name>.gz` (real bytes),
/// `/corrupt/<name>.gz` (bytes flipped mid-file) and 404 for everything else. It runs
/// until the test process exits.
fn start_server() -> Server {
    let src = data_dir();
    let mut files: HashMap<String, Arc<Vec<u8>>> = HashMap::new();
    for name in FILES {
        let good = std::fs::read(src.join(format!("{name}.gz"))).expect("read MNIST file");
        let mut bad = good.clone();
        let mid = bad.len() / 2;
        for b in &mut bad[mid..mid + 16] {
            *b ^= 0xff;
        }
        files.insert(format!("/good/{name}.gz"), Arc::new(good));
        files.insert(format!("/corrupt/{name}.gz"), Arc::new(bad));
    }
    let files = Arc::new(files);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let files = files.clone();
            let counter = counter.clone();
            std::thread::spawn(move || {
                let _ = serve_one(stream, &files, &counter);
            });
        }
    });
    Server {
        base: format!("http://127.0.0.1:{port}"),
        requests,
    }
}

fn serve_one(
    stream: TcpStream,
    files: &HashMap<String, Arc<Vec<u8>>>,
    counter: &AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Drain the headers up to the blank line.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    counter.fetch_add(1, Ordering::SeqCst);
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let mut stream = stream;
    match files.get(path) {
        Some(body) => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(body)?;
        }
        None => {
            let body = b"not found\n";
            write!(
                stream,
                "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(body)?;
        }
    }
    stream.flush()
}

/// A fresh, uniquely named folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!(
            "lenet-fetch-test-{}-{tag}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn opts(dir: &Path, mirrors: &[String]) -> FetchOptions {
    FetchOptions {
        dir: dir.to_path_buf(),
        mirrors: mirrors.to_vec(),
        progress: false,
    }
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

fn gunzip_sha256(path: &Path) -> String {
    let mut raw = Vec::new();
    GzDecoder::new(std::fs::File::open(path).expect("open"))
        .read_to_end(&mut raw)
        .expect("gunzip");
    Sha256::digest(&raw)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn copy_real(dir: &Path, name: &str) {
    std::fs::copy(
        data_dir().join(format!("{name}.gz")),
        dir.join(format!("{name}.gz")),
    )
    .expect("copy");
}

/// Tests 1 and 2: a corrupt mirror is skipped in favour of the good one, files land
/// verified with no temp files left over; a second run downloads nothing.
#[test]
fn falls_back_past_corrupt_mirror_then_second_run_is_noop() {
    let server = start_server();
    let tmp = TempDir::new("fallback");
    let good = format!("{}/good", server.base);
    let mirrors = vec![format!("{}/corrupt", server.base), good.clone()];

    let out = fetch(&opts(&tmp.0, &mirrors)).expect("fetch succeeds");
    assert_eq!(out.len(), 4);
    for ((name, outcome), expected) in out.iter().zip(FILES) {
        assert_eq!(name, expected);
        assert_eq!(
            outcome,
            &FileOutcome::Downloaded {
                mirror: good.clone()
            }
        );
        let path = tmp.0.join(format!("{name}.gz"));
        // Checked independently of fetch's own verification.
        assert_eq!(gunzip_sha256(&path), expected_sha256(name).expect("known"));
    }
    let mut want: Vec<String> = FILES.iter().map(|n| format!("{n}.gz")).collect();
    want.sort();
    assert_eq!(dir_entries(&tmp.0), want, "only the four .gz files remain");

    let before = server.requests.load(Ordering::SeqCst);
    assert_eq!(before, 8, "one corrupt + one good request per file");
    let again = fetch(&opts(&tmp.0, &mirrors)).expect("second fetch succeeds");
    for (name, outcome) in &again {
        assert_eq!(outcome, &FileOutcome::AlreadyValid, "{name}");
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), before);
    assert_eq!(dir_entries(&tmp.0), want);
}

/// Test 3: every mirror fails -> Error::Fetch naming the file and each mirror, and the
/// folder stays empty.
#[test]
fn all_mirrors_failing_is_an_error_and_leaves_nothing() {
    let server = start_server();
    let tmp = TempDir::new("allfail");
    let missing = format!("{}/missing", server.base);
    let corrupt = format!("{}/corrupt/", server.base); // trailing slash is tolerated
    let err = fetch(&opts(&tmp.0, &[missing.clone(), corrupt.clone()])).expect_err("must fail");
    assert!(matches!(err, Error::Fetch { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("train-images-idx3-ubyte"), "{msg}");
    assert!(msg.contains(&missing), "{msg}");
    assert!(msg.contains("404"), "{msg}");
    assert!(msg.contains(corrupt.trim_end_matches('/')), "{msg}");
    assert!(dir_entries(&tmp.0).is_empty(), "{:?}", dir_entries(&tmp.0));
}

/// Test 4: a corrupted file already in the folder is replaced; valid ones are kept.
#[test]
fn corrupt_existing_file_is_replaced() {
    let server = start_server();
    let tmp = TempDir::new("replace");
    for name in FILES {
        copy_real(&tmp.0, name);
    }
    let target = "train-labels-idx1-ubyte";
    let path = tmp.0.join(format!("{target}.gz"));
    let mut bytes = std::fs::read(&path).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&path, &bytes).expect("write");
    assert!(!file_is_valid(&path, target));

    let good = format!("{}/good", server.base);
    let out = fetch(&opts(&tmp.0, std::slice::from_ref(&good))).expect("fetch succeeds");
    for (name, outcome) in &out {
        if name == target {
            assert_eq!(
                outcome,
                &FileOutcome::Downloaded {
                    mirror: good.clone()
                }
            );
        } else {
            assert_eq!(outcome, &FileOutcome::AlreadyValid, "{name}");
        }
    }
    assert!(file_is_valid(&path, target));
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    assert_eq!(dir_entries(&tmp.0).len(), 4);
}

/// Test 5: a mirror that refuses connections is skipped.
#[test]
fn unreachable_mirror_is_skipped() {
    let server = start_server();
    let tmp = TempDir::new("closed");
    let closed_port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    // The two big image files are put in place so only the small label files travel;
    // the point here is the connection failure, not the transfer.
    copy_real(&tmp.0, "train-images-idx3-ubyte");
    copy_real(&tmp.0, "t10k-images-idx3-ubyte");
    let good = format!("{}/good", server.base);
    let mirrors = vec![
        format!("http://127.0.0.1:{closed_port}/mnist"),
        good.clone(),
    ];
    let out = fetch(&opts(&tmp.0, &mirrors)).expect("fetch succeeds");
    for (name, outcome) in &out {
        if name.contains("labels") {
            assert_eq!(
                outcome,
                &FileOutcome::Downloaded {
                    mirror: good.clone()
                }
            );
            assert!(file_is_valid(&tmp.0.join(format!("{name}.gz")), name));
        } else {
            assert_eq!(outcome, &FileOutcome::AlreadyValid, "{name}");
        }
    }
}

/// A raw (decompressed) file counts as present when no `.gz` sits beside it, and
/// file_is_valid rejects unknown names and missing files without panicking.
#[test]
fn raw_file_and_odd_inputs() {
    let tmp = TempDir::new("raw");
    let name = "t10k-labels-idx1-ubyte";
    let mut raw = Vec::new();
    GzDecoder::new(std::fs::File::open(data_dir().join(format!("{name}.gz"))).expect("open"))
        .read_to_end(&mut raw)
        .expect("gunzip");
    let raw_path = tmp.0.join(name);
    std::fs::write(&raw_path, &raw).expect("write");
    assert!(file_is_valid(&raw_path, name));
    assert!(!file_is_valid(&raw_path, "not-an-mnist-file"));
    assert!(!file_is_valid(&tmp.0.join("nope.gz"), name));
    // Raw bytes under a .gz name are not accepted: a loader would try to gunzip them.
    let fake_gz = tmp.0.join(format!("{name}.gz"));
    std::fs::write(&fake_gz, &raw).expect("write");
    assert!(!file_is_valid(&fake_gz, name));
}
