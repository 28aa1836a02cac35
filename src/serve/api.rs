//! The JSON API: a reading of one digit (every layer's maps, the distances, the verdict),
//! the test set, the model's metadata and the run's learning curve. Every error is one
//! line of JSON, `{"error": "..."}`, with the status that fits.

use super::Served;
use crate::model::{self, Activation, params::N_PARAMS};
use crate::predict::{self, SIDE};
use axum::body::Body;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// The largest request body accepted: a photo of a digit is well under it.
pub const BODY_LIMIT: usize = 4 << 20;

/// An error answer: its status and one line of explanation.
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn bad(why: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, why.into())
    }
    fn missing(why: impl Into<String>) -> Self {
        ApiError(StatusCode::NOT_FOUND, why.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.1 }).to_string();
        (self.0, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

type Answer = std::result::Result<axum::Json<Value>, ApiError>;

/// The layers a reading shows, with their names on the page.
const SHOWN: [(&str, Activation); 6] = [
    ("C1", model::X1),
    ("S2", model::X2),
    ("C3", model::X3),
    ("S4", model::X4),
    ("C5", model::X5),
    ("F6", model::X6),
];

/// What the network makes of a prepared 28x28 digit: `digit`, the ten RBF `distances`
/// (smallest wins), the `input` pixels, and every layer's outputs (`layers`: name, shape
/// (maps, rows, cols) and values, map by map, row by row; rounded to 1e-4).
pub fn reading(params: &[f32], pixels: &[u8; SIDE * SIDE]) -> Value {
    let ws = predict::forward(params, pixels);
    let round = |v: &f32| (*v as f64 * 1e4).round() / 1e4;
    let layers: Vec<Value> = SHOWN
        .iter()
        .map(|(name, a)| {
            let values: Vec<f64> = ws.tensor(a).iter().map(round).collect();
            json!({ "name": name, "shape": a.shape, "values": values })
        })
        .collect();
    json!({
        "digit": crate::cpu::predict(&ws.y),
        "distances": ws.y,
        "input": pixels.to_vec(),
        "layers": layers,
    })
}

/// The test digits `params` misclassifies, with the same forward pass as every reading.
pub fn misclassified(params: &[f32], test: &crate::data::Dataset) -> Vec<usize> {
    use rayon::prelude::*;
    (0..test.len())
        .into_par_iter()
        .filter(|&i| {
            let ws = predict::forward(params, &test.digit28(i));
            crate::cpu::predict(&ws.y) != test.labels[i] as usize
        })
        .collect()
}

/// `POST /api/classify`: a PNG or JPEG picture (prepared as `predict` prepares it), or
/// `{"pixels": [784 grey values, 0-255, row by row, ink high]}`.
pub async fn classify(State(s): State<Arc<Served>>, body: Body) -> Answer {
    let bytes = read_body(body).await?;
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let (pixels, warning) = if first == Some(&b'{') {
        let p = pixels_of_json(&bytes)?;
        (p, predict::ink_warning(&p))
    } else if bytes.is_empty() {
        return Err(ApiError::bad(
            "empty body: send a PNG or JPEG picture, or {\"pixels\": [784 values]}",
        ));
    } else {
        let p = predict::decode(&bytes).map_err(ApiError::bad)?;
        (p.pixels, p.warning)
    };
    let mut r = reading(&s.model.params, &pixels);
    r["warning"] = json!(warning);
    Ok(axum::Json(r))
}

/// A body over the limit is still read, up to this much, and dropped, before the 413 goes
/// out: a client still sending when the server closes would see a broken pipe instead of
/// the answer.
const DRAIN_LIMIT: usize = 4 * BODY_LIMIT;

/// The request body, or 413 when it is over `BODY_LIMIT`.
async fn read_body(body: Body) -> std::result::Result<Vec<u8>, ApiError> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let (mut bytes, mut seen) = (Vec::new(), 0usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad(format!("the request body broke off: {e}")))?;
        seen += chunk.len();
        if seen <= BODY_LIMIT {
            bytes.extend_from_slice(&chunk);
        } else if seen > DRAIN_LIMIT {
            break;
        }
    }
    if seen > BODY_LIMIT {
        return Err(ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is over the limit of {} MiB",
                BODY_LIMIT >> 20
            ),
        ));
    }
    Ok(bytes)
}

/// The 784 grey values of a `{"pixels": [...]}` body.
fn pixels_of_json(bytes: &[u8]) -> std::result::Result<[u8; SIDE * SIDE], ApiError> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::bad(format!("malformed JSON: {e}")))?;
    let list = v
        .get("pixels")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad("expected {\"pixels\": [784 grey values, 0-255]}"))?;
    if list.len() != SIDE * SIDE {
        return Err(ApiError::bad(format!(
            "\"pixels\" has {} values; expected 784 (28 rows of 28)",
            list.len()
        )));
    }
    let mut out = [0u8; SIDE * SIDE];
    for (i, (o, x)) in out.iter_mut().zip(list).enumerate() {
        match x.as_f64() {
            Some(g) if (0.0..=255.0).contains(&g) => *o = g.round() as u8,
            _ => {
                return Err(ApiError::bad(format!(
                    "pixels[{i}] is {x}; expected a number from 0 to 255"
                )));
            }
        }
    }
    Ok(out)
}

fn test_set(s: &Served) -> std::result::Result<&crate::data::Dataset, ApiError> {
    s.test.as_deref().ok_or_else(|| {
        ApiError::missing(format!(
            "no test set: {}",
            s.test_missing.as_deref().unwrap_or("none was loaded")
        ))
    })
}

/// `GET /api/test`: the size of the test set; `?misclassified`: the indices of the
/// digits the model gets wrong.
pub async fn test_list(State(s): State<Arc<Served>>, RawQuery(q): RawQuery) -> Answer {
    let test = test_set(&s)?;
    let mut out = json!({ "count": test.len() });
    match q.as_deref() {
        None | Some("") => {}
        Some(q)
            if q.split('&')
                .any(|k| k == "misclassified" || k.starts_with("misclassified=")) =>
        {
            out["misclassified"] = json!(s.misclassified);
        }
        Some(q) => {
            return Err(ApiError::bad(format!(
                "unknown query {q:?}; try ?misclassified"
            )));
        }
    }
    Ok(axum::Json(out))
}

/// `GET /api/test/{i}`: the reading of test digit i, with its label.
pub async fn test_digit(
    State(s): State<Arc<Served>>,
    Path(index): Path<String>,
    Query(_): Query<HashMap<String, String>>,
) -> Answer {
    let test = test_set(&s)?;
    let i: usize = index
        .parse()
        .map_err(|_| ApiError::bad(format!("{index:?} is not a test digit's index (0, 1, ...)")))?;
    if i >= test.len() {
        return Err(ApiError::missing(format!(
            "test digit {i} does not exist; there are {} (0 to {})",
            test.len(),
            test.len() - 1
        )));
    }
    let mut r = reading(&s.model.params, &test.digit28(i));
    r["index"] = json!(i);
    r["label"] = json!(test.labels[i]);
    Ok(axum::Json(r))
}

/// `GET /api/model`: what is known of the model.
pub async fn model(State(s): State<Arc<Served>>) -> Answer {
    let m = &s.model.meta;
    let known = m.loss != "unknown";
    Ok(axum::Json(json!({
        "file": s.model_file,
        "parameters": N_PARAMS,
        "pass": known.then_some(m.epoch),
        "seed": known.then_some(m.seed),
        "loss": known.then(|| m.loss.clone()),
        "test_error": s.test_error,
        "test_digits": s.test.as_ref().map(|t| t.len()),
        "saved_test_error": m.extra.get("test_error").and_then(|v| v.parse::<f64>().ok()),
    })))
}

/// `GET /api/run`: the learning curve of the `--log` file, read afresh each time (the run
/// may still be writing it).
pub async fn run(State(s): State<Arc<Served>>) -> Answer {
    let path = s
        .log
        .as_ref()
        .ok_or_else(|| ApiError::missing("no run log: start the server with --log RUN.csv"))?;
    let points = match crate::train::log::read_growing_log(path) {
        Ok(p) => p,
        // A run that has not finished its first pass has a log of its header alone, or
        // none yet.
        Err(_) if log_has_no_records(path) => Vec::new(),
        Err(e) => return Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    };
    let points: Vec<Value> = points
        .iter()
        .map(|p| json!({"pass": p.epoch, "train_error": p.train_error, "test_error": p.test_error}))
        .collect();
    Ok(axum::Json(json!({
        "log": path.display().to_string(),
        "points": points,
        "paper_test_error": crate::render::PAPER_TEST_ERROR,
    })))
}

/// Whether the log at `path` is missing or holds no whole record yet (at most a header).
fn log_has_no_records(path: &std::path::Path) -> bool {
    std::fs::read_to_string(path).map_or(true, |t| {
        t.lines().filter(|l| !l.trim().is_empty()).count() <= 1
    })
}

pub async fn not_found() -> ApiError {
    ApiError::missing("no such page; the API is under /api/ (see the README)")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed here: /api/classify takes POST, the rest GET".into(),
    )
}
