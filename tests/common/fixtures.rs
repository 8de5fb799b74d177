//! The committed test fixtures (`tests/fixtures/`), for `tests/parity.rs`, `tests/plugin_ops.rs`
//! and `tests/preprocess.rs` (`mod common { pub mod fixtures; }`).

use std::path::PathBuf;

/// `tests/fixtures/<name>` (e.g. `parity`, `preprocess`).
pub fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A little-endian FLOAT32 tensor of a safetensors file: (shape, values). Panics with the tensor's
/// name when it is missing, and when it is not F32.
#[allow(dead_code)] // tests/preprocess.rs reads no safetensors fixture
pub fn f32s(st: &safetensors::SafeTensors<'_>, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st
        .tensor(name)
        .unwrap_or_else(|e| panic!("tensor {name}: {e}"));
    assert_eq!(t.dtype(), safetensors::Dtype::F32);
    let data = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (t.shape().to_vec(), data)
}
