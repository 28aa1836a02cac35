//! The run log of `train --log`: one record per pass, CSV or JSON lines, written as the run
//! goes (`RunLog`) and read back for the learning curve (`read_log`), also while a run is
//! still writing it.

use super::EpochReport;
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// The per-pass record file of `train --log`: CSV or JSON lines, flushed after every pass.
pub struct RunLog {
    file: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    csv: bool,
}

impl RunLog {
    const FIELDS: &'static str = "epoch,eta,train_loss,train_error,test_loss,test_error,seconds,samples_per_s,step_c1,step_s2,step_c3,step_s4,step_c5,step_f6";

    pub fn open(path: &Path, append: bool) -> Result<Self> {
        let csv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        let exists = path.exists();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let mut log = RunLog {
            file: std::io::BufWriter::new(file),
            path: path.to_path_buf(),
            csv,
        };
        if csv && !(append && exists) {
            log.line(Self::FIELDS.to_string())?;
        }
        Ok(log)
    }

    fn line(&mut self, s: String) -> Result<()> {
        use std::io::Write;
        writeln!(self.file, "{s}")
            .and_then(|_| self.file.flush())
            .map_err(|e| Error::io(&self.path, e))
    }

    pub fn write(&mut self, r: &EpochReport) -> Result<()> {
        let steps: Vec<f64> = r.eps_layers.iter().map(|s| s[2]).collect();
        let values = [
            r.eta,
            r.train_loss,
            r.train_error,
            r.test_loss,
            r.test_error,
            r.seconds,
            r.samples_per_s,
        ];
        let line = if self.csv {
            let mut v: Vec<String> = vec![r.epoch.to_string()];
            // Plain decimals ("0.0125", "0.0000125"): shortest round-trip form, no exponent.
            v.extend(values.iter().chain(&steps).map(|x| format!("{x}")));
            v.join(",")
        } else {
            let names: Vec<&str> = Self::FIELDS.split(',').collect();
            let mut obj = serde_json::Map::new();
            obj.insert(names[0].into(), r.epoch.into());
            for (n, x) in names[1..].iter().zip(values.iter().chain(&steps)) {
                obj.insert((*n).into(), serde_json::json!(x));
            }
            serde_json::Value::Object(obj).to_string()
        };
        self.line(line)
    }
}

/// The (pass, train error, test error) records of a `train --log` file.
pub fn read_log(path: &Path) -> Result<Vec<crate::render::CurvePoint>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_log(&text, path)
}

/// The records of a log's text (`path` names it in errors); the last line may be one a
/// running `train` has not finished writing, and is left out when it does not end the text.
pub fn read_growing_log(path: &Path) -> Result<Vec<crate::render::CurvePoint>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    parse_log(whole, path)
}

/// The records of a log's text; `path` names it in errors.
pub fn parse_log(text: &str, path: &Path) -> Result<Vec<crate::render::CurvePoint>> {
    let bad = |n: usize, why: &str| {
        Error::Config(format!(
            "{}:{n}: {why}; expected a log written by `lenet-gpu train --log`",
            path.display()
        ))
    };
    let mut points = Vec::new();
    let mut header: Option<Vec<String>> = None;
    for (n, line) in text.lines().enumerate().map(|(n, l)| (n + 1, l.trim())) {
        if line.is_empty() {
            continue;
        }
        // Each record as (field, value) pairs, from JSON or from a CSV row under its header.
        let record: std::collections::HashMap<String, f64> = if line.starts_with('{') {
            let v: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(line).map_err(|_| bad(n, "not JSON"))?;
            v.into_iter()
                .filter_map(|(k, x)| Some((k, x.as_f64()?)))
                .collect()
        } else if let Some(h) = &header {
            h.iter()
                .cloned()
                .zip(
                    line.split(',')
                        .map(|v| v.trim().parse().unwrap_or(f64::NAN)),
                )
                .collect()
        } else {
            header = Some(line.split(',').map(|c| c.trim().to_string()).collect());
            continue;
        };
        let get = |k: &str| record.get(k).copied().filter(|v| v.is_finite());
        let (Some(e), Some(tr), Some(te)) = (get("epoch"), get("train_error"), get("test_error"))
        else {
            return Err(bad(n, "missing epoch, train_error or test_error"));
        };
        points.push(crate::render::CurvePoint {
            epoch: e as u32,
            train_error: tr,
            test_error: te,
        });
    }
    if points.is_empty() {
        return Err(bad(0, "no records"));
    }
    Ok(points)
}
