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
    pub mod parity_fixtures;
}

use std::sync::Arc;

use swin_serve::engine::cpu::{Isa, SwinModel, ISA_ENV};
use swin_serve::model::{ConfigHints, ModelError};

use common::parity_fixtures::{load, rel_err, V1_CONFIGS as CONFIGS};

const TOLERANCE: f64 = 1e-4;

fn run(model: &Arc<SwinModel>, threads: usize, input: &[f32], batch: usize) -> Vec<f32> {
    common::parity_fixtures::run(model, threads, batch, input, batch)
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
