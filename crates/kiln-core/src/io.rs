//! safetensors files with PyTorch's names and layouts: a file written here loads in PyTorch with
//! `model.load_state_dict(safetensors.torch.load_file(path))`, and the other way round.
//!
//! Saving is atomic: the bytes go to a temporary file in the same folder, which is fsynced and
//! then renamed over the target, so a crash never leaves a half-written file under the name.
//! Loading accepts f32, f16, bf16 and f64 (converted to f32), i64 and u32.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use safetensors::tensor::{Dtype as StDtype, SafeTensors, TensorView};

use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::state::StateDict;
use crate::tensor::Tensor;

fn io_err(op: &'static str, path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Io { op, path: path.display().to_string(), msg: msg.to_string() }
}

/// Serialises a state_dict to safetensors bytes (tensors are read back from their devices).
pub fn to_safetensors_bytes(sd: &StateDict) -> Result<Vec<u8>> {
    let mut data: Vec<(String, DType, Vec<usize>, Vec<u8>)> = Vec::with_capacity(sd.len());
    for (name, t) in sd.iter() {
        data.push((name.to_string(), t.dtype(), t.shape().to_vec(), t.to_bytes()?));
    }
    let views = data
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            let st = match dtype {
                DType::F32 => StDtype::F32,
                DType::U32 => StDtype::U32,
                DType::I64 => StDtype::I64,
            };
            TensorView::new(st, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::invalid("save_safetensors", format!("{name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut meta: HashMap<String, String> = sd.metadata().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    meta.entry("format".into()).or_insert_with(|| "pt".into());
    safetensors::serialize(views, Some(meta)).map_err(|e| Error::invalid("save_safetensors", e.to_string()))
}

/// Writes `sd` to `path` atomically (temp file in the same folder, fsync, rename).
pub fn save_safetensors(path: impl AsRef<Path>, sd: &StateDict) -> Result<()> {
    let path = path.as_ref();
    let bytes = to_safetensors_bytes(sd)?;
    write_atomic(path, &bytes, "save_safetensors")
}

/// Writes `bytes` to `path` through a temporary file that is fsynced and renamed.
pub fn write_atomic(path: &Path, bytes: &[u8], op: &'static str) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let file_name = path.file_name().ok_or_else(|| io_err(op, path, "not a file path"))?;
    let tmp = dir.join(format!(".{}.tmp-{}", file_name.to_string_lossy(), std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(op, path, e));
    }
    Ok(())
}

/// One entry of a safetensors header, as the file stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderEntry {
    /// Tensor name.
    pub name: String,
    /// The file's dtype name ("F32", "F16", "BF16", "I64", ...).
    pub dtype: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Bytes in the file.
    pub bytes: usize,
}

/// The tensors a safetensors file holds (names, file dtypes, shapes), in file order, with its
/// metadata, validating the whole file.
pub fn read_header(path: impl AsRef<Path>) -> Result<(Vec<HeaderEntry>, HashMap<String, String>)> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| io_err("read_header", path, e))?;
    SafeTensors::deserialize(&bytes)
        .map_err(|e| io_err("read_header", path, format!("not a valid safetensors file: {e}")))?;
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| io_err("read_header", path, e))?;
    let mut entries: Vec<(usize, HeaderEntry)> = meta
        .tensors()
        .into_iter()
        .map(|(name, info)| {
            let e = HeaderEntry {
                name: name.clone(),
                dtype: format!("{:?}", info.dtype),
                shape: info.shape.clone(),
                bytes: info.data_offsets.1 - info.data_offsets.0,
            };
            (info.data_offsets.0, e)
        })
        .collect();
    entries.sort_by_key(|(o, e)| (*o, e.name.clone()));
    Ok((entries.into_iter().map(|(_, e)| e).collect(), meta.metadata().clone().unwrap_or_default()))
}

/// Reads a safetensors file into a state_dict on `dev` (in the file's order).
pub fn load_safetensors(path: impl AsRef<Path>, dev: &Device) -> Result<StateDict> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| io_err("load_safetensors", path, e))?;
    from_safetensors_bytes(&bytes, dev).map_err(|e| match e {
        Error::Invalid { msg, .. } => io_err("load_safetensors", path, msg),
        other => other,
    })
}

/// Parses safetensors bytes into a state_dict on `dev`.
pub fn from_safetensors_bytes(bytes: &[u8], dev: &Device) -> Result<StateDict> {
    let op = "load_safetensors";
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| Error::invalid(op, format!("not a valid safetensors file: {e}")))?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| Error::invalid(op, e.to_string()))?;
    let mut views: Vec<(String, TensorView<'_>)> = st.tensors();
    let offsets = header.tensors();
    views.sort_by_key(|(name, _)| offsets.get(name).map(|i| i.data_offsets.0).unwrap_or(usize::MAX));
    let mut sd = StateDict::new();
    for (name, v) in views {
        let shape = v.shape().to_vec();
        let data = v.data();
        let t = match v.dtype() {
            StDtype::F32 => Tensor::from_bytes(data, DType::F32, &shape, dev)?,
            StDtype::I64 => Tensor::from_bytes(data, DType::I64, &shape, dev)?,
            StDtype::U32 => Tensor::from_bytes(data, DType::U32, &shape, dev)?,
            StDtype::F16 => {
                let vals = data.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect();
                Tensor::from_vec(vals, &shape, dev)?
            }
            StDtype::BF16 => {
                let vals = data.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect();
                Tensor::from_vec(vals, &shape, dev)?
            }
            StDtype::F64 => {
                let vals =
                    data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32).collect();
                Tensor::from_vec(vals, &shape, dev)?
            }
            other => {
                return Err(Error::invalid(
                    op,
                    format!("tensor {name:?} has dtype {other:?}; kiln reads F32, F16, BF16, F64, I64 and U32"),
                ));
            }
        };
        sd.insert(name, t);
    }
    if let Some(meta) = header.metadata() {
        for (k, v) in meta {
            sd.set_metadata(k.clone(), v.clone());
        }
    }
    Ok(sd)
}
