//! Reading checkpoint files: PyTorch `.pth` (via `pytorch-reader`) and `.safetensors`,
//! told apart by their first bytes, every tensor converted to f32.
//!
//! * PyTorch: the ZIP container `torch.save` writes since 1.6, read by our own `torch` module
//!   (ZIP container, tolerant unpickler, strided tensors), and the legacy and plain-pickle
//!   containers, read by `pytorch-reader`. ZIP files do not go through `pytorch-reader` 0.22
//!   because it refuses two kinds of valid checkpoints: (1) those holding a foreign object it
//!   cannot rebuild, such as
//!   the yacs `CfgNode` the official training script saves under `config` ("unexpected pickle
//!   opcode SetItems"), and (2) some large ones, which the `zip` 9.8 archive-offset detection it
//!   relies on rejects ("Invalid Central Directory header"; seen on a 115 MB SwinV2-T
//!   checkpoint written by `torch.save`; opening with a known offset of 0 reads it fine).
//!   The state dict is taken from the top-level key
//!   `model` (official checkpoints: `{'model': state_dict, 'epoch': …, 'config': …,
//!   'optimizer': …}`), else `state_dict`, else the root (a bare state dict). Non-tensor entries
//!   (`epoch`, `config`, …) and tensors under other top-level keys (`optimizer`, …) are ignored.
//! * safetensors: keys as in the state dict.
//!
//! In both, a `module.` prefix (DistributedDataParallel) is stripped. Floating tensors
//! (f64, f32, f16, bf16) become f32; integer and bool tensors (the `relative_position_index`
//! buffers, int64) are converted to f32 too (exact below 2^24, which holds for every index
//! SwinV2 stores), so their shapes stay available to configuration inference.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use rayon::prelude::*;

use super::torch::TorchFileError;
use super::{ModelError, Tensor};

/// Container format of a checkpoint, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFormat {
    /// `torch.save` output: ZIP archive (PyTorch ≥ 1.6) or a pickle stream (legacy / plain).
    Pytorch,
    /// Hugging Face safetensors: little-endian u64 header length, then a JSON header.
    Safetensors,
}

impl std::fmt::Display for CheckpointFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CheckpointFormat::Pytorch => "PyTorch",
            CheckpointFormat::Safetensors => "safetensors",
        })
    }
}

fn format_error(path: &Path, message: impl Into<String>) -> ModelError {
    ModelError::Format {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// The stage of [`read_torch_zip`] a [`TorchFileError`] comes from (it decides the wording).
enum TorchStage<'a> {
    /// Opening the archive, reading `byteorder`, `data.pkl` or a storage entry.
    Archive,
    /// Unpickling `data.pkl`.
    Pickle,
    /// Checking and materialising the named tensor.
    Tensor(&'a str),
}

/// The [`ModelError::Format`] for a failure of the torch ZIP reader.
fn torch_error(path: &Path, stage: TorchStage<'_>, e: TorchFileError) -> ModelError {
    let message = match (stage, &e) {
        (_, TorchFileError::UnknownByteOrder { .. }) => {
            format!("not a readable PyTorch checkpoint: {e}")
        }
        (TorchStage::Archive, _) => {
            format!("not a readable PyTorch checkpoint: {e} (truncated or damaged file?)")
        }
        (TorchStage::Pickle, _) => format!("cannot parse the checkpoint's pickle: {e}"),
        (TorchStage::Tensor(name), _) => format!("cannot read tensor `{name}`: {e}"),
    };
    format_error(path, message)
}

fn io_error(path: &Path, source: std::io::Error) -> ModelError {
    ModelError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Detect the container from the first bytes of `path`.
pub fn detect_format(path: &Path) -> Result<CheckpointFormat, ModelError> {
    let mut header = Vec::with_capacity(16);
    File::open(path)
        .and_then(|f| f.take(16).read_to_end(&mut header))
        .map_err(|e| io_error(path, e))?;
    if header.is_empty() {
        return Err(format_error(path, "the file is empty"));
    }
    if header.starts_with(b"PK\x03\x04") || header.starts_with(b"PK\x05\x06") {
        return Ok(CheckpointFormat::Pytorch);
    }
    if header.len() >= 9 && header[8] == b'{' {
        let len = u64::from_le_bytes(header[..8].try_into().expect("8 bytes"));
        if len <= 100_000_000 {
            return Ok(CheckpointFormat::Safetensors);
        }
    }
    // Pickle protocol 2+ opens with PROTO (0x80); legacy torch.save files are pickle streams too.
    if header[0] == 0x80 {
        return Ok(CheckpointFormat::Pytorch);
    }
    Err(format_error(
        path,
        format!(
            "not a PyTorch checkpoint (ZIP or pickle) nor a safetensors file (first bytes {:02x?})",
            &header[..header.len().min(8)]
        ),
    ))
}

/// Read every tensor of the checkpoint at `path` as f32, keyed by state-dict name
/// (top-level `model` selected, `module.` stripped).
pub fn read_checkpoint(
    path: &Path,
) -> Result<(CheckpointFormat, BTreeMap<String, Tensor>), ModelError> {
    let format = detect_format(path)?;
    let tensors = match format {
        CheckpointFormat::Pytorch => read_pytorch(path)?,
        CheckpointFormat::Safetensors => read_safetensors(path)?,
    };
    Ok((format, tensors))
}

/// The state-dict key for a stored name: `module.` (DDP) stripped.
fn state_dict_key(name: &str) -> String {
    name.strip_prefix("module.").unwrap_or(name).to_string()
}

fn read_pytorch(path: &Path) -> Result<BTreeMap<String, Tensor>, ModelError> {
    if is_zip(path) {
        read_torch_zip(path)
    } else {
        read_with_pytorch_reader(path)
    }
}

/// Read a PyTorch checkpoint with `pytorch-reader` (used for the legacy and plain-pickle
/// containers; ZIP files go through [`read_torch_zip`], see the module docs for why).
pub fn read_with_pytorch_reader(path: &Path) -> Result<BTreeMap<String, Tensor>, ModelError> {
    let reader = pytorch_reader::PytorchReader::new(path).map_err(|e| {
        let hint = match &e {
            pytorch_reader::PytorchError::Zip(_) | pytorch_reader::PytorchError::Io(_) => {
                " (truncated or damaged file?)"
            }
            _ => "",
        };
        format_error(
            path,
            format!("not a readable PyTorch checkpoint: {e}{hint}"),
        )
    })?;
    let selected = select_state_dict(path, reader.into_tensors().into_iter().collect())?;

    // Tensor reads are independent (the reader keeps the file open and reads at offsets).
    selected
        .into_par_iter()
        .map(|(name, t)| {
            let bytes = t
                .read()
                .map_err(|e| format_error(path, format!("cannot read tensor `{name}`: {e}")))?;
            use pytorch_reader::DType as D;
            let data = match t.dtype() {
                D::F32 => elements_to_f32::<4>(&bytes, f32::from_ne_bytes),
                D::F64 => elements_to_f32::<8>(&bytes, |b| f64::from_ne_bytes(b) as f32),
                D::F16 => elements_to_f32::<2>(&bytes, |b| half::f16::from_ne_bytes(b).to_f32()),
                D::BF16 => elements_to_f32::<2>(&bytes, |b| half::bf16::from_ne_bytes(b).to_f32()),
                D::I64 => elements_to_f32::<8>(&bytes, |b| i64::from_ne_bytes(b) as f32),
                D::I32 => elements_to_f32::<4>(&bytes, |b| i32::from_ne_bytes(b) as f32),
                D::I16 => elements_to_f32::<2>(&bytes, |b| i16::from_ne_bytes(b) as f32),
                D::I8 => elements_to_f32::<1>(&bytes, |b| i8::from_ne_bytes(b) as f32),
                D::U64 => elements_to_f32::<8>(&bytes, |b| u64::from_ne_bytes(b) as f32),
                D::U32 => elements_to_f32::<4>(&bytes, |b| u32::from_ne_bytes(b) as f32),
                D::U16 => elements_to_f32::<2>(&bytes, |b| u16::from_ne_bytes(b) as f32),
                D::U8 | D::Bool => elements_to_f32::<1>(&bytes, |b| b[0] as f32),
            };
            Ok((
                name,
                Tensor {
                    shape: t.shape().to_vec(),
                    data,
                },
            ))
        })
        .collect()
}

fn is_zip(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && (magic == *b"PK\x03\x04" || magic == *b"PK\x05\x06")
}

/// Read a `torch.save` ZIP checkpoint with our tolerant reader (module `torch`)
/// (same state-dict selection and conversions as the `pytorch-reader` path).
pub fn read_torch_zip(path: &Path) -> Result<BTreeMap<String, Tensor>, ModelError> {
    // One sequential read of the whole file; uncompressed storages are then used in place.
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    read_torch_zip_bytes(&bytes, path)
}

/// [`read_torch_zip`] of a checkpoint already in memory (`path` only names it in errors): what the
/// file path uses, and the entry point of the checkpoint fuzz target.
pub fn read_torch_zip_bytes(
    bytes: &[u8],
    path: &Path,
) -> Result<BTreeMap<String, Tensor>, ModelError> {
    use super::torch::{materialize, parse_tensors, TorchZip};
    let damaged = |e| torch_error(path, TorchStage::Archive, e);
    let mut zip = TorchZip::new(bytes).map_err(damaged)?;
    let order = zip.byteorder().map_err(damaged)?;
    let pickle = zip.pickle().map_err(damaged)?;
    let all = parse_tensors(&pickle).map_err(|e| torch_error(path, TorchStage::Pickle, e))?;
    let selected = select_state_dict(path, all)?;
    check_expansion(path, bytes.len(), &selected)?;
    let mut raw = Vec::with_capacity(selected.len());
    for (name, t) in selected {
        let storage = zip.storage(&t.storage.key).map_err(damaged)?;
        raw.push((name, t, storage));
    }
    raw.into_par_iter()
        .map(|(name, t, storage)| {
            let data = storage
                .verified()
                .and_then(|bytes| materialize(&t, bytes, order))
                .map_err(|e| torch_error(path, TorchStage::Tensor(&name), e))?;
            Ok((
                name,
                Tensor {
                    shape: t.shape,
                    data,
                },
            ))
        })
        .collect()
}

/// Bytes of f32 the tensors of a checkpoint may expand to beyond `4 ×` the file: every stored
/// element becomes one f32, so real checkpoints stay under `4 × file` (4 only for 1-byte storages);
/// more can only come from broadcast views (stride 0), which a hostile file can make enormous
/// (`torch.zeros(1).expand(2**40)` is a legal 4-byte storage).
const EXPANSION_ALLOWANCE: u64 = 64 << 20;

/// Refuse a checkpoint whose tensors would take more than `4 × file + EXPANSION_ALLOWANCE` bytes of
/// f32 once read, before anything is allocated.
fn check_expansion(
    path: &Path,
    file_len: usize,
    tensors: &[(String, super::torch::TensorRef)],
) -> Result<(), ModelError> {
    let limit = (file_len as u64)
        .saturating_mul(4)
        .saturating_add(EXPANSION_ALLOWANCE);
    let mut total: u64 = 0;
    for (name, t) in tensors {
        let bytes = t
            .numel()
            .and_then(|n| (n as u64).checked_mul(4))
            .unwrap_or(u64::MAX);
        total = total.saturating_add(bytes);
        if total > limit {
            return Err(format_error(
                path,
                format!(
                    "its tensors would take more than {limit} bytes as f32 (at `{name}`, shape {:?}), \
                     far more than a {file_len}-byte file holds: refusing to expand broadcast views",
                    t.shape
                ),
            ));
        }
    }
    Ok(())
}

/// The state dict among a checkpoint's tensors (dotted paths from the pickle's root): the entries
/// under `model.` (official), else `state_dict.`, else the root when it looks like a SwinV2 state
/// dict; `module.` stripped.
fn select_state_dict<T>(
    path: &Path,
    all: Vec<(String, T)>,
) -> Result<Vec<(String, T)>, ModelError> {
    let prefix = ["model.", "state_dict."]
        .into_iter()
        .find(|p| all.iter().any(|(k, _)| k.starts_with(p)));
    let mut selected: Vec<(String, T)> = match prefix {
        Some(p) => all
            .into_iter()
            .filter_map(|(k, t)| k.strip_prefix(p).map(|s| (state_dict_key(s), t)))
            .collect(),
        None => {
            // Official and timm keys, or Hugging Face's (mapped later: `formats`).
            let looks_like_swin = |k: &str| {
                [
                    "patch_embed.",
                    "swin.",
                    "swinv2.",
                    "embeddings.patch_embeddings.",
                ]
                .iter()
                .any(|p| k.starts_with(p))
            };
            if !all.iter().any(|(k, _)| looks_like_swin(&state_dict_key(k))) {
                let mut groups: Vec<&str> = all
                    .iter()
                    .map(|(k, _)| k.split('.').next().unwrap_or(""))
                    .collect();
                groups.sort();
                groups.dedup();
                return Err(format_error(
                    path,
                    format!(
                        "no Swin state dict found: expected it under the top-level key 'model' \
                         (official checkpoints) or a bare state dict with keys like \
                         `patch_embed.proj.weight` (official, timm) or `swin.embeddings.…` \
                         (Hugging Face); the file's tensors are under {groups:?}"
                    ),
                ));
            }
            all.into_iter()
                .map(|(k, t)| (state_dict_key(&k), t))
                .collect()
        }
    };
    selected.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(selected)
}

fn read_safetensors(path: &Path) -> Result<BTreeMap<String, Tensor>, ModelError> {
    use safetensors::Dtype as D;
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| format_error(path, format!("not a valid safetensors file: {e}")))?;
    st.tensors()
        .into_par_iter()
        .map(|(name, view)| {
            let b = view.data();
            let data = match view.dtype() {
                D::F32 => elements_to_f32::<4>(b, f32::from_le_bytes),
                D::F64 => elements_to_f32::<8>(b, |b| f64::from_le_bytes(b) as f32),
                D::F16 => elements_to_f32::<2>(b, |b| half::f16::from_le_bytes(b).to_f32()),
                D::BF16 => elements_to_f32::<2>(b, |b| half::bf16::from_le_bytes(b).to_f32()),
                D::I64 => elements_to_f32::<8>(b, |b| i64::from_le_bytes(b) as f32),
                D::I32 => elements_to_f32::<4>(b, |b| i32::from_le_bytes(b) as f32),
                D::I16 => elements_to_f32::<2>(b, |b| i16::from_le_bytes(b) as f32),
                D::I8 => elements_to_f32::<1>(b, |b| i8::from_le_bytes(b) as f32),
                D::U64 => elements_to_f32::<8>(b, |b| u64::from_le_bytes(b) as f32),
                D::U32 => elements_to_f32::<4>(b, |b| u32::from_le_bytes(b) as f32),
                D::U16 => elements_to_f32::<2>(b, |b| u16::from_le_bytes(b) as f32),
                D::U8 | D::BOOL => elements_to_f32::<1>(b, |b| b[0] as f32),
                other => {
                    return Err(format_error(
                        path,
                        format!("tensor `{name}` has unsupported dtype {other:?}"),
                    ))
                }
            };
            Ok((
                state_dict_key(&name),
                Tensor {
                    shape: view.shape().to_vec(),
                    data,
                },
            ))
        })
        .collect()
}

/// Decode `bytes` as consecutive `N`-byte elements.
fn elements_to_f32<const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> f32) -> Vec<f32> {
    bytes
        .chunks_exact(N)
        .map(|c| f(c.try_into().expect("chunk of N bytes")))
        .collect()
}

/// The `__metadata__` of a `.safetensors` file (its header only is read), `None` when it has none
/// or the file is not safetensors.
pub fn safetensors_metadata(
    path: &Path,
) -> Result<Option<std::collections::HashMap<String, String>>, ModelError> {
    if detect_format(path)? != CheckpointFormat::Safetensors {
        return Ok(None);
    }
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|e| io_error(path, e))?;
    // detect_format checked the header length is at most 100 MB.
    let n = u64::from_le_bytes(len) as usize;
    let mut header = Vec::with_capacity(n.min(1 << 20));
    file.take(n as u64)
        .read_to_end(&mut header)
        .map_err(|e| io_error(path, e))?;
    // Only `__metadata__` is wanted here: the whole file is checked when its tensors are read.
    let json: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| format_error(path, format!("not a valid safetensors header: {e}")))?;
    let Some(meta) = json.get("__metadata__") else {
        return Ok(None);
    };
    let meta = meta
        .as_object()
        .ok_or_else(|| format_error(path, "`__metadata__` is not an object"))?;
    meta.iter()
        .map(|(k, v)| match v.as_str() {
            Some(v) => Ok((k.clone(), v.to_string())),
            None => Err(format_error(
                path,
                format!("`__metadata__.{k}` is not a string"),
            )),
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::pth_writer::opcodes::{EMPTY_DICT, PROTO, SETITEM, STOP};
    use crate::model::pth_writer::{cat, storage, su, tensor_v2, zip_archive, CompressionMethod};

    /// `{'model': {'patch_embed.proj.weight': <f32 tensor [3] over storage 0>}}`, protocol 2.
    fn pickle() -> Vec<u8> {
        cat(&[
            &[PROTO, 2, EMPTY_DICT],
            &su("model"),
            &[EMPTY_DICT],
            &su("patch_embed.proj.weight"),
            &tensor_v2(&storage("FloatStorage", "0", 3), 0, &[3], &[1]),
            &[SETITEM, SETITEM, STOP],
        ])
    }

    fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
        zip_archive(entries, CompressionMethod::Stored)
    }

    const VALUES: [f32; 3] = [1.5, -2.0, 1e-3];

    #[test]
    fn big_endian_checkpoints_are_read_byte_swapped() {
        let pickle = pickle();
        for (order, storage) in [
            ("little", VALUES.map(f32::to_le_bytes).concat()),
            ("big", VALUES.map(f32::to_be_bytes).concat()),
        ] {
            let bytes = archive(&[
                ("archive/data.pkl", &pickle),
                ("archive/byteorder", order.as_bytes()),
                ("archive/data/0", &storage),
            ]);
            let tensors = read_torch_zip_bytes(&bytes, Path::new("m.pth")).unwrap();
            let t = &tensors["patch_embed.proj.weight"];
            assert_eq!(
                (t.shape.as_slice(), t.data.as_slice()),
                (&[3][..], &VALUES[..])
            );
        }
    }

    #[test]
    fn unknown_byteorder_and_misplaced_data_pkl_are_clear_errors() {
        let pickle = pickle();
        let storage = VALUES.map(f32::to_le_bytes).concat();
        let message = |bytes: &[u8]| {
            read_torch_zip_bytes(bytes, Path::new("m.pth"))
                .expect_err("refused")
                .to_string()
        };
        let bytes = archive(&[
            ("archive/data.pkl", &pickle),
            ("archive/byteorder", b"middle"),
            ("archive/data/0", &storage),
        ]);
        let m = message(&bytes);
        assert!(
            m.ends_with(
                "not a readable PyTorch checkpoint: unknown byte order \"middle\" in the byteorder \
                 entry (expected little or big)"
            ),
            "{m}"
        );
        let bytes = archive(&[("data.pkl", &pickle), ("data/0", &storage)]);
        let m = message(&bytes);
        assert!(
            m.contains("ZIP entry \"data.pkl\" is not in a folder"),
            "{m}"
        );
        let bytes = archive(&[("a/b/data.pkl", &pickle), ("a/b/data/0", &storage)]);
        let m = message(&bytes);
        assert!(m.contains("ZIP archive has no a/data.pkl"), "{m}");
    }
}
