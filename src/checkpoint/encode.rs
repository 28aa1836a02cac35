//! A checkpoint's bytes: the buffers checked, the tensors in the file's layout (C3 dense),
//! the metadata, serialized as safetensors.

use super::*;

/// Serializes the checkpoint to the bytes of a safetensors file.
pub(super) fn to_bytes(
    path: &Path,
    params: &[f32],
    centers: &[f32],
    meta: &Meta,
    optimizer: Option<&Optimizer>,
) -> crate::Result<Vec<u8>> {
    let bad = |reason: String| Error::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    check_writable(params, centers, meta, &bad)?;
    let data = tensor_bytes(params, centers, optimizer, &bad)?;
    let views = data
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.to_vec(), bytes).map(|v| (*name, v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("cannot serialize: {e}")))?;
    safetensors::serialize(views, Some(file_metadata(meta)))
        .map_err(|e| bad(format!("cannot serialize: {e}")))
}

/// Refuses buffers of the wrong length and extra metadata under a reserved key.
fn check_writable(
    params: &[f32],
    centers: &[f32],
    meta: &Meta,
    bad: &dyn Fn(String) -> Error,
) -> crate::Result<()> {
    if params.len() != N_PARAMS {
        return Err(bad(format!(
            "refusing to write: {} parameters given, a LeNet-5 has {N_PARAMS}",
            params.len()
        )));
    }
    if centers.len() != N_CENTERS {
        return Err(bad(format!(
            "refusing to write: {} output centres given, expected {N_CENTERS} (10x84)",
            centers.len()
        )));
    }
    if let Some(key) = meta
        .extra
        .keys()
        .find(|k| RESERVED_KEYS.contains(&k.as_str()))
    {
        return Err(Error::Config(format!(
            "checkpoint metadata key `{key}` is reserved; rename the extra entry"
        )));
    }
    Ok(())
}

/// A tensor as written: (name, shape, little-endian f32 bytes).
type TensorBytes = (&'static str, &'static [usize], Vec<u8>);

/// Every tensor of the file as (name, shape, little-endian bytes), in the order written:
/// the parameters (C3 dense), the centres, then the optimiser state when given. Refuses
/// non-finite values.
fn tensor_bytes(
    params: &[f32],
    centers: &[f32],
    optimizer: Option<&Optimizer>,
    bad: &dyn Fn(String) -> Error,
) -> crate::Result<Vec<TensorBytes>> {
    let mut data: Vec<TensorBytes> = Vec::with_capacity(TENSORS.len() + 1);
    for t in TENSORS {
        let shape = shape_of(t.name).ok_or_else(|| bad(format!("no shape for `{}`", t.name)))?;
        let values = t.of(params);
        let dense;
        let values = if t == C3_W {
            dense = c3_to_dense(values);
            &dense[..]
        } else {
            values
        };
        check_finite(t.name, shape, values).map_err(|e| bad(format!("refusing to write: {e}")))?;
        data.push((t.name, shape, f32_bytes(values)));
    }
    let centers_shape: &'static [usize] = &[10, 84];
    check_finite(CENTERS_NAME, centers_shape, centers)
        .map_err(|e| bad(format!("refusing to write: {e}")))?;
    data.push((CENTERS_NAME, centers_shape, f32_bytes(centers)));
    if let Some(opt) = optimizer {
        for (name, values) in [(VELOCITY_NAME, &opt.velocity), (EPS_NAME, &opt.eps)] {
            let shape = shape_of(name).ok_or_else(|| bad(format!("no shape for `{name}`")))?;
            if values.len() != N_PARAMS {
                return Err(bad(format!(
                    "refusing to write: `{name}` has {} values, expected {N_PARAMS}",
                    values.len()
                )));
            }
            check_finite(name, shape, values)
                .map_err(|e| bad(format!("refusing to write: {e}")))?;
            data.push((name, shape, f32_bytes(values)));
        }
    }
    Ok(data)
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The file's `__metadata__`: the extra entries and the reserved keys.
fn file_metadata(meta: &Meta) -> HashMap<String, String> {
    let mut info: HashMap<String, String> = meta
        .extra
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    info.insert("format".into(), FORMAT.into());
    info.insert("format_version".into(), FORMAT_VERSION.into());
    info.insert("epoch".into(), meta.epoch.to_string());
    info.insert("seed".into(), meta.seed.to_string());
    info.insert("loss".into(), meta.loss.clone());
    info.insert("normalisation".into(), NORMALISATION.into());
    info
}
