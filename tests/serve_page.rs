//! The `serve` page in a real browser: Debian's Chromium, headless, driven by
//! playwright-core (tests/browser/page.mjs, installed by `.ci/run` with `npm ci`). It
//! writes a test digit on the canvas with pointer events and checks that the page shows
//! the digit and distances the API gives for the same picture, then browses a
//! misclassified test digit with the keyboard, shows the run's learning curve and fits a
//! phone-sized window; screenshots go to the test's folder (or to
//! LENET_SCREENSHOTS). With LENET_REQUIRE_BROWSER=1 (as in CI) a missing browser, Node.js
//! or playwright-core is a failure, not a skip.

mod common;

use std::path::Path;
use std::process::Command;

/// Why the browser check cannot run here, if it cannot.
fn missing() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!(
            "no Chromium at {chromium} (apt-get install chromium)"
        ));
    }
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("no node on PATH".into());
    }
    let pw =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/node_modules/playwright-core");
    if !pw.exists() {
        return Some("playwright-core is not installed (npm ci --prefix tests/browser)".into());
    }
    None
}

#[test]
fn the_page_reads_a_digit_written_on_it_and_browses_misread_ones() {
    if let Some(why) = missing() {
        let required = std::env::var("LENET_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        assert!(!required, "LENET_REQUIRE_BROWSER=1 but {why}");
        println!("skipped the browser check: {why}");
        return;
    }
    let dir = common::tmp("page");
    let (model, log) = common::server::train_model(&dir, 2);
    let l = log.to_str().unwrap();
    let server = common::server::Server::start(&model, &["--log", l]);
    let url = format!("{}/", server.url);
    let shots = std::env::var_os("LENET_SCREENSHOTS").map_or(dir.clone(), Into::into);
    let result = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/page.mjs"))
        .args([url.as_str(), shots.to_str().unwrap(), "0"])
        .output()
        .unwrap();
    drop(server);
    let (o, e) = (
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr),
    );
    assert!(result.status.success(), "the browser check failed:\n{o}{e}");
    println!("{o}screenshots in {}", shots.display());
    for f in [
        "serve-write.png",
        "serve-test.png",
        "serve-run.png",
        "serve-phone.png",
    ] {
        assert!(
            shots.join(f).metadata().is_ok_and(|m| m.len() > 10_000),
            "{f} was not written"
        );
    }
}
