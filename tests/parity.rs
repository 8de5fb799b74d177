//! Parity of the CPU engine with the official PyTorch SwinV2.
//!
//! `tests/fixtures/make_reference.py` built the official `SwinTransformerV2` (microsoft/Swin-Transformer
//! `models/swin_transformer_v2.py`, d19503d7) for small configurations, randomised every parameter,
//! saved the checkpoints in the official format (`{'model': state_dict, 'epoch', 'config'}`, or a bare
//! state dict) and the inputs with the logits of the official forward in float64. Here the checkpoints
//! go through `Weights::load` → `SwinModel::new` → `CpuEngine::infer`, and the logits must match to
//! ≤ 1e-4 relative error (`max|a-b| / max|b|`).

mod common {
    pub mod fixtures;
    pub mod parity_fixtures;
}

use std::sync::Arc;

use swin_serve::engine::cpu::{tables, CpuEngine, Isa, SwinModel, ISA_ENV};
use swin_serve::engine::{Engine, EngineError};
use swin_serve::model::ModelError;

use common::parity_fixtures::{load, rel_err, run, V2_CONFIGS as CONFIGS};

const TOLERANCE: f64 = 1e-4;

#[test]
fn logits_match_official_model() {
    let mut report = vec![];
    for name in CONFIGS {
        let f = load(name);
        let model = Arc::new(SwinModel::new(&f.weights, &f.config).unwrap());
        // Whole batch, 2 threads.
        let logits = run(&model, 2, f.batch, &f.input, f.batch);
        let err = rel_err(&logits, &f.logits);
        let torch_err = rel_err(&f.torch_f32_logits, &f.logits);
        report.push(format!(
            "{name}: rel err {err:.2e} (PyTorch f32: {torch_err:.2e}), batch {}",
            f.batch
        ));
        assert!(
            err <= TOLERANCE,
            "{name}: relative error {err:.3e} > {TOLERANCE:.0e}"
        );
        // One image at a time on one thread, through a second instance sharing the same model: the
        // result may not depend on batch composition or thread count.
        let per_image = f.input.len() / f.batch;
        let classes = f.config.num_classes;
        for b in 0..f.batch {
            let one = run(
                &model,
                1,
                1,
                &f.input[b * per_image..(b + 1) * per_image],
                1,
            );
            let err = rel_err(&one, &f.logits[b * classes..(b + 1) * classes]);
            assert!(
                err <= TOLERANCE,
                "{name} image {b} alone: relative error {err:.3e}"
            );
        }
    }
    println!(
        "parity with the official SwinV2 (float64 reference), kernels: {}",
        Isa::active()
    );
    for line in &report {
        println!("  {line}");
    }
}

/// Every instruction set this CPU has gives the same logits: the parity test again in a child process
/// per ISA, forced with `SWIN_SERVE_ISA` (read once per process, so it takes a process each), so an
/// AVX-512 machine also checks the AVX2 and scalar kernels.
#[test]
fn logits_match_official_model_under_every_isa() {
    let exe = std::env::current_exe().unwrap();
    for isa in Isa::available() {
        let out = std::process::Command::new(&exe)
            .args(["--exact", "logits_match_official_model", "--nocapture"])
            .env(ISA_ENV, isa.name())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{ISA_ENV}={isa}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(&format!("kernels: {isa}\n")),
            "{ISA_ENV}={isa} did not take effect: {stdout}"
        );
        assert!(stdout.contains("1 passed"), "{stdout}");
    }
}

/// The tables computed from the configuration equal the buffers the official `__init__` registered.
#[test]
fn computed_tables_equal_checkpoint_buffers() {
    for name in CONFIGS {
        let f = load(name);
        let cfg = &f.config;
        let mut shifted_blocks = 0;
        for i in 0..cfg.num_layers() {
            let res = cfg.stage_resolution(i);
            for j in 0..cfg.depths[i] {
                let (window, shift) = if res <= cfg.window_size {
                    (res, 0)
                } else {
                    (
                        cfg.window_size,
                        if j % 2 == 1 { cfg.window_size / 2 } else { 0 },
                    )
                };
                let prefix = format!("layers.{i}.blocks.{j}");
                let span = 2 * window - 1;
                let table = f
                    .weights
                    .get(
                        &format!("{prefix}.attn.relative_coords_table"),
                        &[1, span, span, 2],
                    )
                    .unwrap();
                let ours = tables::relative_coords_table(window, cfg.pretrained_window_sizes[i]);
                for (a, b) in ours.iter().zip(&table.data) {
                    assert!(
                        (a - b).abs() <= 1e-6,
                        "{name} {prefix} relative_coords_table"
                    );
                }
                let n = window * window;
                let index = f
                    .weights
                    .get(&format!("{prefix}.attn.relative_position_index"), &[n, n])
                    .unwrap();
                let ours: Vec<f32> = tables::relative_position_index(window)
                    .into_iter()
                    .map(|v| v as f32)
                    .collect();
                assert_eq!(ours, index.data, "{name} {prefix} relative_position_index");
                let mask_key = format!("{prefix}.attn_mask");
                match tables::attn_mask(res, window, shift) {
                    Some(mask) => {
                        shifted_blocks += 1;
                        let nw = (res / window).pow(2);
                        let buf = f.weights.get(&mask_key, &[nw, n, n]).unwrap();
                        assert_eq!(mask, buf.data, "{name} {mask_key}");
                    }
                    None => assert!(
                        !f.weights.tensors.contains_key(&mask_key),
                        "{name}: {mask_key} present but the block is not shifted"
                    ),
                }
            }
        }
        assert!(shifted_blocks > 0, "{name} has no shifted block");
    }
}

/// A missing or mis-shaped tensor is an error that names it.
#[test]
fn missing_and_misshaped_tensors_are_named() {
    let f = load("shifted_w4");
    let mut w = f.weights.clone();
    w.tensors.remove("layers.1.blocks.1.attn.cpb_mlp.2.weight");
    match SwinModel::new(&w, &f.config) {
        Err(ModelError::MissingTensor { name, .. }) => {
            assert_eq!(name, "layers.1.blocks.1.attn.cpb_mlp.2.weight")
        }
        other => panic!("expected MissingTensor, got {other:?}"),
    }
    let mut w = f.weights.clone();
    let t = w
        .tensors
        .get_mut("layers.0.downsample.reduction.weight")
        .unwrap();
    t.shape = vec![t.shape[1], t.shape[0]];
    let err = SwinModel::new(&w, &f.config).unwrap_err();
    assert!(matches!(err, ModelError::ShapeMismatch { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("layers.0.downsample.reduction.weight"),
        "{err}"
    );
    // The buffers are not needed: the model computes them from the configuration.
    let mut w = f.weights.clone();
    w.tensors.retain(|k, _| {
        !(k.ends_with("relative_coords_table")
            || k.ends_with("relative_position_index")
            || k.ends_with("attn_mask"))
    });
    assert!(SwinModel::new(&w, &f.config).is_ok());
}

#[test]
fn bad_engine_input_is_refused_without_panic() {
    let f = load("shifted_w4");
    let model = Arc::new(SwinModel::new(&f.weights, &f.config).unwrap());
    let mut engine = CpuEngine::new(model, 2, 2).unwrap();
    let per_image = f.input.len() / f.batch;
    let classes = f.config.num_classes;
    let mut logits = vec![0.0; 3 * classes];
    let cases: [(&[f32], usize, usize); 5] = [
        (&f.input[..per_image], 0, 0),               // batch 0
        (&f.input[..3 * per_image], 3, 3 * classes), // batch over max_batch
        (&f.input[..per_image - 1], 1, classes),     // short input
        (&f.input[..2 * per_image], 1, classes),     // input of another batch size
        (&f.input[..per_image], 1, classes + 1),     // wrong logits length
    ];
    for (input, batch, out) in cases {
        let r = engine.infer(input, batch, &mut logits[..out]);
        assert!(matches!(r, Err(EngineError::InvalidInput(_))), "{r:?}");
    }
    // Still serves afterwards.
    engine
        .infer(&f.input[..per_image], 1, &mut logits[..classes])
        .unwrap();
    assert!(rel_err(&logits[..classes], &f.logits[..classes]) <= TOLERANCE);
    assert!(CpuEngine::new(engine.model().clone(), 0, 1).is_err());
    assert!(CpuEngine::new(engine.model().clone(), 1, 0).is_err());
}

/// The scheduler prepares a batch's images through `run_on_engine_threads`: on the CPU engine every
/// index runs exactly once, on the instance's own pool threads (`swin-cpu-*`), spread over them,
/// with IEEE denormals (`with_ieee_denormals` restores flushing after each, unit-tested there).
#[test]
fn cpu_engine_runs_preparation_on_its_own_threads() {
    use std::collections::HashSet;
    use std::sync::Mutex;
    use swin_serve::engine::Engine as _;
    let f = load("shifted_w4");
    let model = Arc::new(SwinModel::new(&f.weights, &f.config).unwrap());
    let engine = CpuEngine::new(model, 2, 2).unwrap();
    let seen = Mutex::new(Vec::new());
    engine.run_on_engine_threads(16, &|i| {
        let name = std::thread::current().name().unwrap_or("").to_string();
        // Preparation keeps IEEE denormals, though the engine's threads flush them.
        assert!(!swin_serve::engine::cpu::kernels::denormals::flushing_in_this_thread());
        // Long enough that both threads take part.
        std::thread::sleep(std::time::Duration::from_millis(5));
        seen.lock().unwrap().push((i, name));
    });
    let mut seen = seen.into_inner().unwrap();
    seen.sort();
    let indices: Vec<usize> = seen.iter().map(|(i, _)| *i).collect();
    assert_eq!(indices, (0..16).collect::<Vec<_>>(), "each index once");
    let threads: HashSet<&str> = seen.iter().map(|(_, t)| t.as_str()).collect();
    assert!(
        threads.iter().all(|t| t.starts_with("swin-cpu-")),
        "{threads:?}"
    );
    assert_eq!(threads.len(), 2, "{threads:?}");
    let mut engine = engine;
    let per_image = f.input.len() / f.batch;
    let mut logits = vec![0.0; f.config.num_classes];
    engine.infer(&f.input[..per_image], 1, &mut logits).unwrap();
    assert!(rel_err(&logits, &f.logits[..f.config.num_classes]) <= TOLERANCE);
}

/// A batch of full-size SwinV2-T/8 @256 images (random weights) gives each image exactly the logits it
/// gets alone: in a batch, stages 0–1 (1.5 MiB and 768 KiB of residual an image) run one image at a
/// time and their outputs are gathered for stages 2–3 (`image_by_image_stages`, `Buffers::staged`),
/// which the small parity fixtures never reach. Both precisions (the bf16 rounding is per element).
#[test]
fn full_size_batch_equals_its_images_alone() {
    use swin_serve::engine::cpu::kernels::isa::bf16_supported;
    use swin_serve::engine::Precision;
    use swin_serve::model::{SwinConfig, Weights};

    let config = SwinConfig::tiny_window8_256();
    let weights = Weights::random(&config, 7);
    let image = config.in_chans * config.img_size * config.img_size;
    let batch = 3;
    let input: Vec<f32> = (0..batch * image)
        .map(|i| ((i.wrapping_mul(2_654_435_761) >> 7) % 2001) as f32 / 1000.0 - 1.0)
        .collect();
    let mut precisions = vec![Precision::Fp32];
    if bf16_supported() {
        precisions.push(Precision::Bf16);
    }
    let classes = config.num_classes;
    for precision in precisions {
        let model = Arc::new(SwinModel::with_precision(&weights, &config, precision).unwrap());
        let together = run(&model, 2, batch, &input, batch);
        assert!(together.iter().all(|v| v.is_finite()));
        for b in 0..batch {
            let alone = run(&model, 2, 1, &input[b * image..(b + 1) * image], 1);
            assert_eq!(
                alone,
                together[b * classes..(b + 1) * classes],
                "{precision:?}: image {b} alone differs from its batch"
            );
        }
        // Images differ, so a mix-up of their places in the batch would show.
        assert_ne!(together[..classes], together[classes..2 * classes]);
    }
}
