//! The parity fixtures of `tests/fixtures/parity/` (made by `tests/fixtures/make_reference.py` for
//! SwinV2 and `make_reference_v1.py` for Swin V1): a checkpoint in the official format, its
//! configuration in the metadata of `<name>.io.safetensors`, the inputs and the official forward's
//! logits in float64 (stored as f32) and in PyTorch f32. For `tests/parity.rs`, `tests/parity_v1.rs`
//! and `tests/precision_bf16.rs` (`mod common { pub mod fixtures; pub mod parity_fixtures; }`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use swin_serve::engine::cpu::{CpuEngine, SwinModel};
use swin_serve::engine::Engine;
use swin_serve::model::{SwinConfig, SwinVersion, Weights};

use super::fixtures::f32s;

/// The SwinV2 fixtures (official `swin_transformer_v2.py`).
#[allow(dead_code)]
pub const V2_CONFIGS: [&str; 3] = ["shifted_w4", "clamp_w6_pretrained", "tiny_like_w8"];
/// The Swin V1 fixtures (official `swin_transformer.py`).
#[allow(dead_code)]
pub const V1_CONFIGS: [&str; 3] = ["v1_tiny_like_w7", "v1_w12_clamped_ape", "v1_deep_21841"];

pub fn fixture_dir() -> PathBuf {
    super::fixtures::fixture_dir("parity")
}

pub struct Fixture {
    pub config: SwinConfig,
    pub batch: usize,
    pub input: Vec<f32>,
    /// The official forward in float64.
    pub logits: Vec<f32>,
    /// The official forward in PyTorch's f32.
    #[allow(dead_code)] // tests/precision_bf16.rs compares with the FP32 engine instead
    pub torch_f32_logits: Vec<f32>,
    pub weights: Weights,
}

fn list(meta: &HashMap<String, String>, key: &str) -> Vec<usize> {
    meta[key]
        .split(',')
        .map(|v| v.trim().parse().unwrap())
        .collect()
}

/// Loads fixture `name`; the version is the metadata's `model_type` (`swin` = V1, absent = V2).
pub fn load(name: &str) -> Fixture {
    let io = std::fs::read(fixture_dir().join(format!("{name}.io.safetensors"))).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&io).unwrap();
    let meta = header.metadata().clone().expect("config metadata");
    let num = |k: &str| -> usize { meta[k].parse().unwrap() };
    let flag = |k: &str| -> bool { meta[k] == "True" };
    let depths = list(&meta, "depths");
    let (version, pretrained_window_sizes) = match meta.get("model_type").map(String::as_str) {
        Some("swin") => (SwinVersion::V1, vec![0; depths.len()]),
        None => (SwinVersion::V2, list(&meta, "pretrained_window_sizes")),
        Some(other) => panic!("{name}: model_type {other}"),
    };
    let config = SwinConfig {
        version,
        img_size: num("img_size"),
        patch_size: num("patch_size"),
        in_chans: num("in_chans"),
        num_classes: num("num_classes"),
        embed_dim: num("embed_dim"),
        depths,
        num_heads: list(&meta, "num_heads"),
        window_size: num("window_size"),
        mlp_ratio: meta["mlp_ratio"].parse().unwrap(),
        qkv_bias: flag("qkv_bias"),
        ape: flag("ape"),
        patch_norm: flag("patch_norm"),
        pretrained_window_sizes,
    };
    let st = safetensors::SafeTensors::deserialize(&io).unwrap();
    let (shape, input) = f32s(&st, "input");
    let (lshape, logits) = f32s(&st, "logits");
    let (_, torch_f32_logits) = f32s(&st, "logits_torch_f32");
    assert_eq!(lshape, vec![shape[0], config.num_classes]);
    let weights = Weights::load(&fixture_dir().join(format!("{name}.pth")))
        .unwrap_or_else(|e| panic!("{name}.pth: {e}"));
    Fixture {
        config,
        batch: shape[0],
        input,
        logits,
        torch_f32_logits,
        weights,
    }
}

/// `max|got - want| / max|want|`.
pub fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let max_diff = got
        .iter()
        .zip(want)
        .map(|(&a, &b)| (a as f64 - b as f64).abs())
        .fold(0.0, f64::max);
    let max_ref = want.iter().map(|&b| (b as f64).abs()).fold(0.0, f64::max);
    max_diff / max_ref
}

/// `batch` images through a fresh `CpuEngine` instance of `model` (`threads`, room for `max_batch`).
pub fn run(
    model: &Arc<SwinModel>,
    threads: usize,
    max_batch: usize,
    input: &[f32],
    batch: usize,
) -> Vec<f32> {
    let mut engine = CpuEngine::new(model.clone(), threads, max_batch).unwrap();
    let mut logits = vec![f32::NAN; batch * model.config.num_classes];
    engine.infer(input, batch, &mut logits).unwrap();
    logits
}
