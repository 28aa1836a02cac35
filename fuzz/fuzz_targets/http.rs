//! The server's request paths (`serve::router`): any method, path, query, content type and
//! body, in the form of `serve::wire`. Every answer is a status the API uses and, for the
//! API's paths, JSON: a reading or a one-line error. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lenet_gpu::serve::{Served, router, wire};
use std::sync::{Arc, OnceLock};

/// A model of seeded initial weights over a small synthetic test set.
fn served() -> Arc<Served> {
    static S: OnceLock<Arc<Served>> = OnceLock::new();
    S.get_or_init(|| Arc::new(lenet_gpu::serve::fuzz_served())).clone()
}

fuzz_target!(|bytes: &[u8]| {
    let Some(req) = wire::parse(bytes) else { return };
    let api = req.uri().path().starts_with("/api");
    let (status, body) = wire::answer(router(served()), req);
    assert!(
        [200, 400, 404, 405, 413].contains(&status.as_u16()),
        "status {status}"
    );
    if api || status != 200 {
        let v: serde_json::Value = serde_json::from_slice(&body).expect("a JSON answer");
        if status != 200 {
            assert!(v["error"].is_string());
            assert!(!body.contains(&b'\n'));
        }
    }
});
