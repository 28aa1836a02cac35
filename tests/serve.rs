//! `lenet-gpu serve` over real HTTP: the binary is started on a free port and asked as a
//! browser would. Pictures of test digits (PNG and JPEG) are read as `predict` reads the
//! same files; pixel JSON; every kind of bad request gets a one-line JSON error with the
//! right status; 32 clients at once; the run view follows a log that grows; Ctrl-C stops
//! it cleanly.

mod common;

use common::server::Server;
use common::tmp;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::OnceLock;

/// A model trained for this file once: 1 pass over 3,000 images on the CPU backend, with
/// its run log.
fn model() -> &'static (PathBuf, PathBuf) {
    static MODEL: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    MODEL.get_or_init(|| common::server::train_model(&tmp("model"), 1))
}

/// Test digit `i` of MNIST as 28x28 grey values, ink high (the server reads the same
/// first 500).
fn test_digit(i: usize) -> [u8; 784] {
    common::mnist_subset().1.digit28(i)
}

fn test_digit_label(i: usize) -> u8 {
    common::mnist_subset().1.labels[i]
}

fn pixels_body(p: &[u8]) -> Option<(&'static str, Vec<u8>)> {
    Some((
        "application/json",
        json!({ "pixels": p }).to_string().into_bytes(),
    ))
}

#[test]
fn pictures_of_test_digits_read_as_predict_reads_them() {
    let s = Server::start(&model().0, &[]);
    let dir = tmp("pictures");
    let mut files = Vec::new();
    for i in [0usize, 1, 2, 3, 4, 7] {
        // Dark ink on a light page, four times MNIST's size, as a photo would be.
        let digit = test_digit(i);
        let img = image::GrayImage::from_fn(112, 112, |x, y| {
            image::Luma([255 - digit[(y / 4 * 28 + x / 4) as usize]])
        });
        for ext in ["png", "jpg"] {
            let f = dir.join(format!("digit{i}.{ext}"));
            img.save(&f).unwrap();
            files.push(f);
        }
    }
    let mut c = common::bin();
    c.args(["predict", "--json", "--model", model().0.to_str().unwrap()]);
    c.args(&files);
    let (ok, out, err) = common::output(c);
    assert!(ok, "predict failed: {err}");
    let mut agree = 0;
    for (line, f) in out.lines().zip(&files) {
        let want: Value = serde_json::from_str(line).unwrap();
        let ctype = if f.extension().unwrap() == "png" {
            "image/png"
        } else {
            "image/jpeg"
        };
        let got = s.json(
            "POST",
            "/api/classify",
            Some((ctype, std::fs::read(f).unwrap())),
        );
        for key in ["digit", "distances", "warning"] {
            assert_eq!(got[key], want[key], "{}: {key}", f.display());
        }
        agree += 1;
    }
    assert_eq!(agree, files.len());
}

#[test]
fn pixel_json_reads_as_the_test_digit() {
    let s = Server::start(&model().0, &[]);
    let digit = test_digit(3);
    let got = s.json("POST", "/api/classify", pixels_body(&digit));
    let want = s.json("GET", "/api/test/3", None);
    assert_eq!(got["digit"], want["digit"]);
    assert_eq!(got["distances"], want["distances"]);
    assert_eq!(got["input"], json!(digit.to_vec()));
    assert_eq!(want["label"], json!(test_digit_label(3)));
    assert_eq!(got["warning"], Value::Null);
    let shapes: Vec<(String, Value, usize)> = got["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let n = l["values"].as_array().unwrap().len();
            (
                l["name"].as_str().unwrap().to_string(),
                l["shape"].clone(),
                n,
            )
        })
        .collect();
    assert_eq!(
        shapes,
        vec![
            ("C1".into(), json!([6, 28, 28]), 4704),
            ("S2".into(), json!([6, 14, 14]), 1176),
            ("C3".into(), json!([16, 10, 10]), 1600),
            ("S4".into(), json!([16, 5, 5]), 400),
            ("C5".into(), json!([120, 1, 1]), 120),
            ("F6".into(), json!([84, 1, 1]), 84),
        ]
    );
    // A dot gets the low-ink warning predict gives, and so does a blank page.
    let mut dot = [0u8; 784];
    dot[14 * 28 + 14] = 255;
    for (what, p) in [("a dot", dot), ("a blank page", [0u8; 784])] {
        let r = s.json("POST", "/api/classify", pixels_body(&p));
        assert!(
            r["warning"].is_string(),
            "{what}: no warning in {}",
            r["warning"]
        );
        assert!(r["digit"].is_u64());
    }
}

/// Every kind of bad request: (method, path, body, status, what the error says).
type BadRequest = (
    &'static str,
    &'static str,
    Option<(&'static str, Vec<u8>)>,
    u16,
    &'static str,
);

fn bad_requests() -> Vec<BadRequest> {
    let png = |b: &[u8]| Some(("image/png", b.to_vec()));
    let js = |t: &str| Some(("application/json", t.as_bytes().to_vec()));
    let mut too_many = vec![0u8; 784];
    too_many.push(1);
    vec![
        (
            "POST",
            "/api/classify",
            png(&vec![0u8; 5 << 20]),
            413,
            "over the limit",
        ),
        (
            "POST",
            "/api/classify",
            png(b"not a picture"),
            400,
            "not a readable PNG or JPEG",
        ),
        (
            "POST",
            "/api/classify",
            png(&[0x89, b'P', b'N', b'G', 13, 10, 26, 10, 0]),
            400,
            "not a readable",
        ),
        ("POST", "/api/classify", png(b""), 400, "empty body"),
        (
            "POST",
            "/api/classify",
            js("{\"pixels\": [1, 2"),
            400,
            "malformed JSON",
        ),
        (
            "POST",
            "/api/classify",
            js("{\"pics\": []}"),
            400,
            "expected {\"pixels\"",
        ),
        (
            "POST",
            "/api/classify",
            pixels_body(&too_many),
            400,
            "has 785 values",
        ),
        (
            "POST",
            "/api/classify",
            js(&json!({"pixels": vec![300; 784]}).to_string()),
            400,
            "pixels[0] is 300",
        ),
        (
            "POST",
            "/api/classify",
            js(&json!({"pixels": vec![-1; 784]}).to_string()),
            400,
            "pixels[0] is -1",
        ),
        ("GET", "/api/test/500", None, 404, "does not exist"),
        ("GET", "/api/test/-1", None, 400, "not a test digit's index"),
        (
            "GET",
            "/api/test/abc",
            None,
            400,
            "not a test digit's index",
        ),
        ("GET", "/api/test?everything", None, 400, "unknown query"),
        ("GET", "/api/nothing", None, 404, "no such page"),
        ("GET", "/api/run", None, 404, "no run log"),
        ("GET", "/../Cargo.toml", None, 404, "no such page"),
        (
            "GET",
            "/api/test/..%2F..%2Fetc%2Fpasswd",
            None,
            400,
            "not a test digit's index",
        ),
        ("GET", "/api/classify", None, 405, "method not allowed"),
        ("DELETE", "/api/model", None, 405, "method not allowed"),
    ]
}

#[test]
fn bad_requests_get_a_one_line_json_error_and_the_right_status() {
    let s = Server::start(&model().0, &[]);
    for (method, path, body, status, says) in bad_requests() {
        let (got, text) = s.ask(method, path, body);
        assert_eq!(got, status, "{method} {path}: {text}");
        assert_eq!(
            text.lines().count(),
            1,
            "{method} {path}: not one line: {text}"
        );
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        let e = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: {text}"));
        assert!(
            e.contains(says),
            "{method} {path}: {e:?} should say {says:?}"
        );
    }
    // Still serving after all that.
    assert_eq!(s.json("GET", "/api/model", None)["parameters"], 60000);
}

#[test]
fn thirty_two_clients_at_once() {
    let s = Server::start(&model().0, &[]);
    let want = s.json("GET", "/api/test/5", None);
    let digit = test_digit(5);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..32)
            .map(|k| {
                let (s, want) = (&s, &want);
                scope.spawn(move || {
                    for _ in 0..4 {
                        let r = if k % 2 == 0 {
                            s.json("POST", "/api/classify", pixels_body(&digit))
                        } else {
                            s.json("GET", "/api/test/5", None)
                        };
                        assert_eq!(r["distances"], want["distances"], "client {k}");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

#[test]
fn model_metadata_and_the_misclassified_list() {
    let s = Server::start(&model().0, &[]);
    let m = s.json("GET", "/api/model", None);
    assert_eq!(m["parameters"], 60000);
    assert_eq!(m["pass"], 1);
    assert_eq!(m["seed"], 1);
    assert!(m["loss"].as_str().unwrap().starts_with("map"));
    assert_eq!(m["test_digits"], 500);
    let list = s.json("GET", "/api/test?misclassified", None);
    assert_eq!(list["count"], 500);
    let wrong: Vec<usize> = serde_json::from_value(list["misclassified"].clone()).unwrap();
    let e = m["test_error"].as_f64().unwrap();
    assert_eq!(e, wrong.len() as f64 / 500.0);
    assert!(
        !wrong.is_empty() && wrong.len() < 250,
        "{} wrong",
        wrong.len()
    );
    for &i in wrong.iter().take(5) {
        let r = s.json("GET", &format!("/api/test/{i}"), None);
        assert_ne!(
            r["digit"], r["label"],
            "test digit {i} is listed as misread"
        );
    }
    let right = (0..500).find(|i| !wrong.contains(i)).unwrap();
    let r = s.json("GET", &format!("/api/test/{right}"), None);
    assert_eq!(r["digit"], r["label"]);
}

#[test]
fn the_run_view_follows_a_log_that_grows() {
    let dir = tmp("run-log");
    let log = dir.join("run.csv");
    std::fs::copy(&model().1, &log).unwrap();
    let s = Server::start(&model().0, &["--log", log.to_str().unwrap()]);
    let before = s.json("GET", "/api/run", None);
    let points = before["points"].as_array().unwrap().len();
    assert_eq!(points, 1);
    assert_eq!(before["paper_test_error"], 0.0095);
    // The run writes its next pass: the same fields as its last line, pass 2.
    let text = std::fs::read_to_string(&log).unwrap();
    let last = text.lines().last().unwrap();
    let next = last.replacen(&last[..last.find(',').unwrap()], "2", 1);
    // Half a line, as a reader may catch a write in progress: left out until it ends.
    let (head, tail) = next.split_at(next.len() / 2);
    let append = |t: &str| {
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        std::io::Write::write_all(&mut f, t.as_bytes()).unwrap();
    };
    append(head);
    let during = s.json("GET", "/api/run", None);
    assert_eq!(during["points"].as_array().unwrap().len(), 1, "{during}");
    append(&format!("{tail}\n"));
    let after = s.json("GET", "/api/run", None);
    let pts = after["points"].as_array().unwrap();
    assert_eq!(pts.len(), 2, "{after}");
    assert_eq!(pts[1]["pass"], 2);
}

#[test]
fn ctrl_c_stops_it_cleanly() {
    let mut s = Server::start(&model().0, &[]);
    assert_eq!(s.json("GET", "/api/model", None)["parameters"], 60000);
    // SAFETY: a plain signal to our own child process.
    unsafe { libc::kill(s.child.id() as i32, libc::SIGINT) };
    let status = s.child.wait().unwrap();
    assert!(status.success(), "serve exited with {status} on Ctrl-C");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut s.out, &mut rest).unwrap();
    assert!(rest.contains("stopped"), "{rest}");
}

#[test]
fn bad_start_up_input_is_refused_with_a_message() {
    let dir = tmp("bad-start");
    let missing = dir.join("none.safetensors");
    let err = common::fails(
        &["serve", "--model", missing.to_str().unwrap(), "--port", "0"],
        &["none.safetensors"],
    );
    assert!(!err.contains("panicked"), "{err}");
    // A port already taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let m = model().0.to_str().unwrap();
    common::fails(
        &["serve", "--model", m, "--port", &port, "--test-limit", "10"],
        &["cannot listen", "--port"],
    );
}
