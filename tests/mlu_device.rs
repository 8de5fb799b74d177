//! Smoke test on a REAL MLU370 (Cambricon host only; never run in CI here).
//!
//! ```text
//! NEUWARE_HOME=/usr/local/neuware SWIN_MLU_MODEL=swinv2_tiny_myplugin.magicmind \
//!   SWIN_MLU_PLUGIN_LIB=plugins/build/libmagicmind_plugin.so [SWIN_MLU_DEVICE=0] \
//!   cargo test --release --features mlu --test mlu_device -- --nocapture
//! ```
//! Checks: both plugin self-tests pass on the device; logits are finite; every image gets the same
//! logits whether it runs alone or inside a batch of 3, on two slots used from two threads
//! (catches batch/row mix-ups in the mutable-batch model and slot interference).
//! Without `SWIN_MLU_MODEL` it prints that it was skipped. (`.ci/mlu-checks.sh` also runs it
//! against the fake SDK's model, which only exercises the test itself.)
#![cfg(feature = "mlu")]

use std::path::PathBuf;

use swin_serve::engine::mlu::{create_engines, MluOptions};

#[test]
fn swinv2_on_a_real_mlu() {
    let Some(model) = std::env::var_os("SWIN_MLU_MODEL").map(PathBuf::from) else {
        eprintln!("SKIPPED: set SWIN_MLU_MODEL (and SWIN_MLU_PLUGIN_LIB) on a Cambricon host");
        return;
    };
    let plugin = std::env::var_os("SWIN_MLU_PLUGIN_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("plugins/build/libmagicmind_plugin.so"));
    let device_id = std::env::var("SWIN_MLU_DEVICE")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0);
    let opts = MluOptions {
        model_path: model,
        plugin_libs: vec![plugin],
        device_id,
        instances: 2,
        max_batch: 4,
    };
    let engines = create_engines(&opts).expect("create_engines on the MLU");
    for check in &engines.plugin_checks {
        eprintln!(
            "plugin check {}: ok={} {}",
            check.op, check.ok, check.detail
        );
        assert!(check.ok, "{check:?}");
    }
    let (size, classes) = (engines.input_size, engines.num_classes);
    let sample = 3 * size * size;
    let batch: Vec<f32> = (0..3 * sample)
        .map(|i| (((i * 7919) % 1000) as f32 / 1000.0 - 0.5) * 4.0)
        .collect();

    let results: Vec<(Vec<f32>, Vec<Vec<f32>>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = engines
            .engines
            .into_iter()
            .map(|mut engine| {
                let batch = &batch;
                scope.spawn(move || {
                    let started = std::time::Instant::now();
                    let mut together = vec![0.0f32; 3 * classes];
                    engine.infer(batch, 3, &mut together).expect("batch of 3");
                    eprintln!("batch 3 on one slot: {:?}", started.elapsed());
                    let alone = (0..3)
                        .map(|b| {
                            let mut logits = vec![0.0f32; classes];
                            engine
                                .infer(&batch[b * sample..(b + 1) * sample], 1, &mut logits)
                                .expect("batch of 1");
                            logits
                        })
                        .collect();
                    (together, alone)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (together, alone) in &results {
        assert!(together.iter().all(|v| v.is_finite()));
        for (b, single) in alone.iter().enumerate() {
            let row = &together[b * classes..(b + 1) * classes];
            let diff = row
                .iter()
                .zip(single)
                .map(|(a, s)| (a - s).abs())
                .fold(0.0f32, f32::max);
            eprintln!("image {b}: max |batched - alone| = {diff:e}");
            assert!(
                diff <= 1e-3,
                "image {b} differs by {diff} between batch 3 and batch 1"
            );
        }
    }
    assert_eq!(
        results[0].0, results[1].0,
        "the two slots disagree on the same batch"
    );
}
