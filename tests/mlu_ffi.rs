//! End-to-end test of the REAL MLU FFI path against the TEST-ONLY fake Neuware SDK
//! (`tests/neuware_stub/fake_sdk`): `create_engines` → `FfiRuntime` → bindgen bindings →
//! `mm_shim.cc` (compiled and linked by build.rs) → fake MagicMind/CNRT/CNNL, with the plugin
//! library built from the real `plugins/` sources (registration on dlopen, device self-tests).
//!
//! Runs only when the crate was built against the fake SDK and told where it is:
//!
//! ```text
//! bash tests/neuware_stub/fake_sdk/build_fake_sdk.sh target/fake-sdk
//! NEUWARE_HOME=$PWD/target/fake-sdk CXXFLAGS=-DSWIN_SERVE_NEUWARE_STUB \
//!   SWIN_MLU_FAKE_SDK=$PWD/target/fake-sdk cargo test --features mlu --test mlu_ffi
//! ```
//! (`.ci/mlu-checks.sh` does this.) Without `SWIN_MLU_FAKE_SDK` the test only prints that it
//! was skipped. It says nothing about the real SDK: it checks our side of the boundary.
#![cfg(feature = "mlu")]

use std::path::{Path, PathBuf};

use swin_serve::engine::mlu::{create_engines, MluOptions};
use swin_serve::engine::EngineError;

/// What the TEST-ONLY fake SDK's model (`tests/neuware_stub/fake_sdk/fake_magicmind.cc`) returns:
/// the formula of the in-process fake runtime (`tests/common/fake_mlu.rs`), logit k of image b =
/// k + 0.001 * sum(image b), with the sum in f64 as the C++ fake computes it.
fn expected_sdk_logits(input: &[f32], batch: usize, classes: usize) -> Vec<f32> {
    let sample = input.len() / batch;
    (0..batch)
        .flat_map(|b| {
            let sum: f64 = input[b * sample..(b + 1) * sample]
                .iter()
                .map(|&v| f64::from(v))
                .sum();
            (0..classes).map(move |k| (k as f64 + 0.001 * sum) as f32)
        })
        .collect()
}

fn options(sdk: &Path, plugins: bool, instances: usize, max_batch: usize) -> MluOptions {
    MluOptions {
        model_path: sdk.join("model/swinv2_fake.magicmind"),
        plugin_libs: if plugins {
            vec![plugin_library(sdk)]
        } else {
            vec![]
        },
        device_id: 0,
        instances,
        max_batch,
    }
}

/// The plugin library under test: `SWIN_MLU_PLUGIN_LIB` (CI passes the one the CMake SDK branch
/// built), else the one build_fake_sdk.sh built from the same sources.
fn plugin_library(sdk: &Path) -> PathBuf {
    std::env::var_os("SWIN_MLU_PLUGIN_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| sdk.join("plugin/libmagicmind_plugin.so"))
}

fn error_message<T>(result: Result<T, EngineError>) -> String {
    match result {
        Err(e) => e.to_string(),
        Ok(_) => panic!("expected an error"),
    }
}

fn live_device_allocations(sdk: &Path) -> i32 {
    // SAFETY: the fake libcnrt.so is already loaded (the binary links it); the symbol has this
    // signature in tests/neuware_stub/fake_sdk/fake_cnrt.cc.
    unsafe {
        let lib = libloading::Library::new(sdk.join("lib64/libcnrt.so")).unwrap();
        let live: libloading::Symbol<unsafe extern "C" fn() -> i32> =
            lib.get(b"fake_cnrt_live_device_allocations\0").unwrap();
        live()
    }
}

#[test]
fn ffi_path_runs_end_to_end_on_the_fake_sdk() {
    let Some(sdk) = std::env::var_os("SWIN_MLU_FAKE_SDK").map(PathBuf::from) else {
        eprintln!("SKIPPED: SWIN_MLU_FAKE_SDK is not set (see the header of tests/mlu_ffi.rs)");
        return;
    };

    // The model needs the plugin ops: without the library, deserialization fails and says why.
    let message = error_message(create_engines(&options(&sdk, false, 1, 0)));
    assert!(message.contains("cannot load MagicMind model"), "{message}");
    assert!(
        message.contains("requires plugin op MyPlugin::CnnlRoll"),
        "{message}"
    );
    assert!(message.contains("no --plugin-lib given"), "{message}");

    // With the library: plugins registered on dlopen, device self-tests run through dlsym.
    let engines = create_engines(&options(&sdk, true, 2, 4)).expect("engines on the fake SDK");
    assert_eq!(
        (
            engines.input_size,
            engines.num_classes,
            engines.engines.len()
        ),
        (256, 1000, 2)
    );
    for check in &engines.plugin_checks {
        assert!(check.ok, "{check:?}");
    }
    assert!(
        engines.plugin_checks[0]
            .detail
            .contains("cnnlRoll [2,9,7,5]"),
        "{:?}",
        engines.plugin_checks
    );
    assert!(
        engines.plugin_checks[1]
            .detail
            .contains("BANG ReLU, UNION1"),
        "{:?}",
        engines.plugin_checks
    );
    assert_eq!(engines.engines[0].describe().max_batch, 4);
    assert!(live_device_allocations(&sdk) > 0);

    // Both slots used from fresh threads (the fake CNRT fails any call without cnrtSetDevice).
    let sample = 3 * 256 * 256;
    std::thread::scope(|scope| {
        for (n, mut engine) in engines.engines.into_iter().enumerate() {
            scope.spawn(move || {
                for round in 0..3usize {
                    let batch = 1 + (n + round) % 4;
                    let input: Vec<f32> = (0..batch * sample)
                        .map(|i| ((i * 31 + n * 7 + round) % 97) as f32 / 97.0 - 0.5)
                        .collect();
                    let mut logits = vec![0.0f32; batch * 1000];
                    engine
                        .infer(&input, batch, &mut logits)
                        .expect("inference through the shim");
                    let expected = expected_sdk_logits(&input, batch, 1000);
                    for (got, want) in logits.iter().zip(&expected) {
                        assert!(
                            (got - want).abs() <= 1e-3 * want.abs().max(1.0),
                            "{got} vs {want}"
                        );
                    }
                }
                let too_big = vec![0.0f32; 5 * sample];
                let mut logits = vec![0.0f32; 5 * 1000];
                assert!(matches!(
                    engine.infer(&too_big, 5, &mut logits),
                    Err(EngineError::InvalidInput(_))
                ));
                drop(engine); // IContext, queue and buffers destroyed on this thread
            });
        }
    });
    // Slots, engine, model, plugin library released: no device memory left.
    assert_eq!(live_device_allocations(&sdk), 0);

    // The shim's errors come back with their MagicMind message.
    let message = error_message(create_engines(&options(&sdk, true, 1, 16)));
    assert!(
        message.contains("cannot create MLU slot 1 of 1"),
        "{message}"
    );
    assert!(
        message.contains("batch 16 outside dim_range [1, 8]"),
        "{message}"
    );
    let mut opts = options(&sdk, true, 1, 0);
    opts.device_id = 3;
    let message = error_message(create_engines(&opts));
    assert!(
        message.contains("MLU device 3 does not exist: 1 device(s) visible"),
        "{message}"
    );
    let mut opts = options(&sdk, true, 1, 0);
    opts.plugin_libs = vec![sdk.join("plugin/libdoes_not_exist.so")];
    let message = error_message(create_engines(&opts));
    assert!(
        message.contains("cannot load MagicMind plugin library"),
        "{message}"
    );
    assert_eq!(live_device_allocations(&sdk), 0);
}
