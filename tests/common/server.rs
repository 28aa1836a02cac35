//! A running `lenet-gpu serve` for the tests that ask it over HTTP (tests/serve.rs,
//! tests/serve_page.rs).

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};

/// A model for the server to serve, with its run log, trained in `dir` on the CPU backend:
/// `passes` passes over 3,000 training images, tested on 500.
pub fn train_model(dir: &Path, passes: u32) -> (std::path::PathBuf, std::path::PathBuf) {
    let (model, log) = (dir.join("m.safetensors"), dir.join("run.csv"));
    let passes = passes.to_string();
    let (ok, _, err) = super::run(&[
        "train",
        "--backend",
        "cpu",
        "--epochs",
        &passes,
        "--train-limit",
        "3000",
        "--test-limit",
        "500",
        "--quiet",
        "--save",
        model.to_str().unwrap(),
        "--log",
        log.to_str().unwrap(),
    ]);
    assert!(ok, "training the test model failed: {err}");
    (model, log)
}

/// A running `serve` on a free port; killed when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub out: BufReader<std::process::ChildStdout>,
}

impl Server {
    /// `lenet-gpu serve --model MODEL --port 0 --test-limit 500 EXTRA...`, once it listens.
    pub fn start(model: &Path, extra: &[&str]) -> Server {
        let _ = super::mnist_dir();
        let mut c = super::bin();
        c.args(["serve", "--model", model.to_str().unwrap(), "--port", "0"])
            .args(["--test-limit", "500"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = c.spawn().expect("start lenet-gpu serve");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let url = loop {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "serve exited before listening"
            );
            if let Some(at) = line.find("http://") {
                break line[at..]
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .trim_end_matches('/')
                    .to_string();
            }
        };
        Server { child, url, out }
    }

    /// (status, body) of a request.
    pub fn ask(&self, method: &str, path: &str, body: Option<(&str, Vec<u8>)>) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!("{}{path}", self.url);
        let resp = match (method, body) {
            ("GET", None) => agent.get(&url).call(),
            ("DELETE", None) => agent.delete(&url).call(),
            ("POST", Some((ctype, bytes))) => agent
                .post(&url)
                .header("Content-Type", ctype)
                .send(&bytes[..]),
            (m, _) => panic!("no such request in these tests: {m}"),
        };
        let mut resp = resp.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap();
        (status, text)
    }

    /// The JSON answer of a request that must succeed.
    pub fn json(&self, method: &str, path: &str, body: Option<(&str, Vec<u8>)>) -> Value {
        let (status, text) = self.ask(method, path, body);
        assert_eq!(status, 200, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
