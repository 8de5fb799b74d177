//! Parity of the CPU engine with the official PyTorch Swin V1 (`SwinTransformer`).
//!
//! `tests/fixtures/make_reference_v1.py` built the official `SwinTransformer`
//! (microsoft/Swin-Transformer `models/swin_transformer.py`, d19503d7) for small configurations
//! (window 7 with its odd shift, window 12 with a stage smaller than the window, ape without patch
//! norm and without qkv bias, a deep stage and a 21841-class head), randomised every parameter and
//! saved the checkpoints and the float64 logits of the official forward. Here each checkpoint's
//! configuration is inferred from its tensors alone and must equal the one the script used, and the
//! logits through `CpuEngine` must match to ≤ 1e-4 relative error, under every instruction set.

mod common {
    pub mod fixtures;
}

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use swin_serve::engine::cpu::{CpuEngine, Isa, SwinModel, ISA_ENV};
use swin_serve::engine::Engine;
use swin_serve::model::{ConfigHints, ModelError, SwinConfig, SwinVersion, Weights};

use common::fixtures::f32s;

const CONFIGS: [&str; 3] = ["v1_tiny_like_w7", "v1_w12_clamped_ape", "v1_deep_21841"];
const TOLERANCE: f64 = 1e-4;

fn fixture_dir() -> PathBuf {
    common::fixtures::fixture_dir("parity")
}

fn list(meta: &HashMap<String, String>, key: &str) -> Vec<usize> {
    meta[key]
        .split(',')
        .map(|v| v.trim().parse().unwrap())
        .collect()
}

struct Fixture {
    config: SwinConfig,
    batch: usize,
    input: Vec<f32>,
    logits: Vec<f32>,
    torch_f32_logits: Vec<f32>,
    weights: Weights,
}

fn load(name: &str) -> Fixture {
    let io = std::fs::read(fixture_dir().join(format!("{name}.io.safetensors"))).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&io).unwrap();
    let meta = header.metadata().clone().expect("config metadata");
    assert_eq!(meta["model_type"], "swin");
    let num = |k: &str| -> usize { meta[k].parse().unwrap() };
    let flag = |k: &str| -> bool { meta[k] == "True" };
    let depths = list(&meta, "depths");
    let config = SwinConfig {
        version: SwinVersion::V1,
        img_size: num("img_size"),
        patch_size: num("patch_size"),
        in_chans: num("in_chans"),
        num_classes: num("num_classes"),
        embed_dim: num("embed_dim"),
        pretrained_window_sizes: vec![0; depths.len()],
        depths,
        num_heads: list(&meta, "num_heads"),
        window_size: num("window_size"),
        mlp_ratio: meta["mlp_ratio"].parse().unwrap(),
        qkv_bias: flag("qkv_bias"),
        ape: flag("ape"),
        patch_norm: flag("patch_norm"),
    };
    let st = safetensors::SafeTensors::deserialize(&io).unwrap();
    let (shape, input) = f32s(&st, "input");
    let (_, logits) = f32s(&st, "logits");
    let (_, torch_f32_logits) = f32s(&st, "logits_torch_f32");
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

fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let max_diff = got
        .iter()
        .zip(want)
        .map(|(&a, &b)| (a as f64 - b as f64).abs())
        .fold(0.0, f64::max);
    let max_ref = want.iter().map(|&b| (b as f64).abs()).fold(0.0, f64::max);
    max_diff / max_ref
}

fn run(model: &Arc<SwinModel>, threads: usize, input: &[f32], batch: usize) -> Vec<f32> {
    let mut engine = CpuEngine::new(model.clone(), threads, batch).unwrap();
    let mut logits = vec![f32::NAN; batch * model.config.num_classes];
    engine.infer(input, batch, &mut logits).unwrap();
    logits
}

#[test]
fn configuration_is_inferred_from_a_v1_checkpoint() {
    for name in CONFIGS {
        let f = load(name);
        let inferred = f
            .weights
            .infer_config(&ConfigHints::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(inferred, f.config, "{name}");
        assert!(inferred.name().starts_with("swin_"), "{}", inferred.name());
    }
}

#[test]
fn logits_match_official_v1_model() {
    for name in CONFIGS {
        let f = load(name);
        let model = Arc::new(SwinModel::new(&f.weights, &f.config).unwrap());
        let logits = run(&model, 2, &f.input, f.batch);
        let err = rel_err(&logits, &f.logits);
        println!(
            "{name}: rel err {err:.2e} (PyTorch f32: {:.2e})",
            rel_err(&f.torch_f32_logits, &f.logits)
        );
        assert!(err <= TOLERANCE, "{name}: relative error {err:.3e}");
        // One image alone, one thread: the same logits.
        let per_image = f.input.len() / f.batch;
        let classes = f.config.num_classes;
        let one = run(&model, 1, &f.input[per_image..2 * per_image], 1);
        let err = rel_err(&one, &f.logits[classes..2 * classes]);
        assert!(err <= TOLERANCE, "{name} image 1 alone: {err:.3e}");
    }
    println!("kernels: {}", Isa::active());
}

/// The V1 parity again in a child process per instruction set (`SWIN_SERVE_ISA`).
#[test]
fn logits_match_official_v1_model_under_every_isa() {
    let exe = std::env::current_exe().unwrap();
    for isa in Isa::available() {
        let out = std::process::Command::new(&exe)
            .args(["--exact", "logits_match_official_v1_model", "--nocapture"])
            .env(ISA_ENV, isa.name())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{ISA_ENV}={isa}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(&format!("kernels: {isa}\n")), "{stdout}");
        assert!(stdout.contains("1 passed"), "{stdout}");
    }
}

/// V1 tensors are named when missing; the buffers are not needed.
#[test]
fn v1_tensors_are_named_and_buffers_are_optional() {
    let f = load("v1_tiny_like_w7");
    for key in [
        "layers.1.blocks.1.attn.relative_position_bias_table",
        "layers.0.blocks.0.attn.qkv.bias",
        "layers.0.downsample.norm.weight",
    ] {
        let mut w = f.weights.clone();
        w.tensors.remove(key);
        match SwinModel::new(&w, &f.config) {
            Err(ModelError::MissingTensor { name, .. }) => assert_eq!(name, key),
            other => panic!("without {key}: {other:?}"),
        }
    }
    let mut w = f.weights.clone();
    w.tensors
        .retain(|k, _| !(k.ends_with("relative_position_index") || k.ends_with("attn_mask")));
    let model = Arc::new(SwinModel::new(&w, &f.config).unwrap());
    let logits = run(&model, 2, &f.input, f.batch);
    assert!(rel_err(&logits, &f.logits) <= TOLERANCE);
    // Without the buffers the window still comes from the bias table; the image size needs a hint.
    let err = w.infer_config(&ConfigHints::default()).unwrap_err();
    assert!(err.to_string().contains("--img-size"), "{err}");
    let hints = ConfigHints {
        img_size: Some(f.config.img_size),
        ..Default::default()
    };
    assert_eq!(w.infer_config(&hints).unwrap(), f.config);
}
