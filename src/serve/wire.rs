//! Requests in a small text form, for the fuzz target (fuzz/fuzz_targets/http.rs) and the
//! tests that replay its corpus: `METHOD PATH-AND-QUERY\nCONTENT-TYPE\nBODY` (the body is
//! everything after the second line break, bytes as they are). The router is asked as
//! the HTTP server asks it, without a socket.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use tower::ServiceExt;

/// The request `bytes` describe, or None when its first line is not `METHOD PATH`.
pub fn parse(bytes: &[u8]) -> Option<Request<Body>> {
    let mut parts = bytes.splitn(3, |&b| b == b'\n');
    let line = std::str::from_utf8(parts.next()?).ok()?;
    let content_type = std::str::from_utf8(parts.next().unwrap_or_default()).ok()?;
    let body = parts.next().unwrap_or_default().to_vec();
    let (method, path) = line.split_once(' ')?;
    let method = Method::from_bytes(method.as_bytes()).ok()?;
    let mut req = Request::builder().method(method).uri(path);
    if !content_type.is_empty() {
        req = req.header("content-type", content_type);
    }
    req.body(Body::from(body)).ok()
}

/// The router's answer to `req`: status and body.
pub fn answer(router: axum::Router, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(async move {
        let resp = router.oneshot(req).await.expect("the router never fails");
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("answers are in memory");
        (status, body.to_vec())
    })
}
