//! Pool and lifecycle logic of the MLU backend, driven through an in-process fake MagicMind
//! runtime that implements the same `MluRuntime` trait as the real FFI runtime
//! (`tests/common/fake_mlu.rs`, which describes the protocol violations it flags).

mod common {
    pub mod fake_mlu;
}

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fake_mlu::{expected_logits, tensor, Fake, FakeConfig, Step};
use swin_serve::engine::mlu::runtime::{SelfTestOutcome, TensorDataType};
use swin_serve::engine::mlu::{
    create_engines, create_engines_with, MluEngines, MluOptions, DEFAULT_MUTABLE_MAX_BATCH,
};
use swin_serve::engine::{BackendKind, Engine, EngineError};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A model file that exists for the duration of a test (the pool checks the path before loading).
struct TempModel(PathBuf);

impl TempModel {
    fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "swin-serve-mlu-test-{}-{}.magicmind",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, b"fake magicmind model").unwrap();
        Self(path)
    }
}

impl Drop for TempModel {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn options(model: &TempModel, plugins: &[&str], instances: usize) -> MluOptions {
    MluOptions {
        model_path: model.0.clone(),
        plugin_libs: plugins.iter().map(PathBuf::from).collect(),
        device_id: 0,
        instances,
        max_batch: 0,
    }
}

fn backend_message(result: Result<MluEngines, EngineError>) -> String {
    match result {
        Err(EngineError::Backend { backend, message }) => {
            assert_eq!(backend, BackendKind::Mlu);
            message
        }
        Err(other) => panic!("expected a backend error, got {other:?}"),
        Ok(_) => panic!("expected an error, got engines"),
    }
}

/// Deterministic test images: value depends on (seed, index).
fn images(batch: usize, seed: usize) -> Vec<f32> {
    let sample = 3 * 256 * 256;
    (0..batch * sample)
        .map(|i| (((i * 7 + seed * 13) % 101) as f32 - 50.0) / 50.0)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn creation_and_teardown_follow_the_magicmind_order() {
    let fake = Fake::new(FakeConfig::swin());
    let model = TempModel::new();
    let mut engines = create_engines_with(
        Arc::clone(&fake),
        &options(&model, &["libroll.so", "librelu.so"], 3),
    )
    .unwrap();
    assert_eq!(engines.input_size, 256);
    assert_eq!(engines.num_classes, 1000);
    assert_eq!(engines.engines.len(), 3);
    let d = engines.engines[0].describe();
    assert_eq!(
        (d.backend, d.input_size, d.num_classes, d.max_batch),
        (BackendKind::Mlu, 256, 1000, DEFAULT_MUTABLE_MAX_BATCH)
    );
    assert_eq!(
        fake.lifecycle(),
        [
            "open_plugin libroll.so",
            "open_plugin librelu.so",
            "device_count",
            "load_model",
            "model_info",
            "create_engine",
            "create_slot 1 batch 32 dims [3, 256, 256]",
            "create_slot 2 batch 32 dims [3, 256, 256]",
            "create_slot 3 batch 32 dims [3, 256, 256]",
        ]
    );
    // cnrtSetDevice comes before the model is loaded.
    let events = fake.events();
    let set = events.iter().position(|e| e == "set_device 0").unwrap();
    let load = events.iter().position(|e| e == "load_model").unwrap();
    assert!(set < load, "{events:?}");

    // Drop the slots out of order: the engine, the model and the libraries go with the last one.
    let middle = engines.engines.remove(1);
    drop(middle);
    let first = engines.engines.remove(0);
    drop(first);
    assert!(
        !fake.lifecycle().contains(&"destroy_engine".to_string()),
        "engine destroyed while a slot is alive"
    );
    drop(engines);
    let teardown: Vec<String> = fake.lifecycle().into_iter().skip(9).collect();
    assert_eq!(
        teardown,
        [
            "destroy_slot 2",
            "destroy_slot 1",
            "destroy_slot 3",
            "destroy_engine",
            "destroy_model",
            "close_plugin librelu.so",
            "close_plugin libroll.so",
        ]
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
    fake.assert_all_released();
}

#[test]
fn a_failure_at_any_step_releases_what_was_created_in_order() {
    let cases: &[(Step, usize, &str)] = &[
        (Step::OpenPlugin, 1, "cannot load MagicMind plugin library"),
        (Step::OpenPlugin, 2, "cannot load MagicMind plugin library"),
        (Step::DeviceCount, 1, "cannot query MLU devices"),
        (Step::SetDevice, 1, "cannot select MLU device 0"),
        (Step::LoadModel, 1, "cannot load MagicMind model"),
        (Step::ModelIo, 1, "cannot read the inputs/outputs"),
        (Step::CreateEngine, 1, "cannot create the MagicMind engine"),
        (Step::CreateSlot, 1, "cannot create MLU slot 1 of 3"),
        (Step::CreateSlot, 3, "cannot create MLU slot 3 of 3"),
    ];
    for &(step, nth, expected) in cases {
        let mut config = FakeConfig::swin();
        config.fail = Some((step, nth));
        let fake = Fake::new(config);
        let model = TempModel::new();
        let message = backend_message(create_engines_with(
            Arc::clone(&fake),
            &options(&model, &["a.so", "b.so"], 3),
        ));
        assert!(message.contains(expected), "{step:?}#{nth}: {message}");
        assert!(
            message.contains(&format!("injected failure of {step:?} call {nth}")),
            "{step:?}#{nth}: {message}"
        );
        assert_eq!(fake.violations(), Vec::<String>::new(), "{step:?}#{nth}");
        fake.assert_all_released();
        // Whatever was created was destroyed in reverse order.
        let life = fake.lifecycle();
        let pos = |e: &str| life.iter().position(|x| x == e);
        if let (Some(engine), Some(model)) = (pos("destroy_engine"), pos("destroy_model")) {
            assert!(engine < model, "{step:?}#{nth}: {life:?}");
        }
        if let (Some(model), Some(close)) = (pos("destroy_model"), pos("close_plugin b.so")) {
            assert!(model < close, "{step:?}#{nth}: {life:?}");
        }
        if let (Some(b), Some(a)) = (pos("close_plugin b.so"), pos("close_plugin a.so")) {
            assert!(b < a, "{step:?}#{nth}: {life:?}");
        }
    }
}

#[test]
fn slots_are_reused_concurrently_without_sharing() {
    let mut config = FakeConfig::swin();
    config.infer_delay = Duration::from_millis(3);
    let fake = Fake::new(config);
    let model = TempModel::new();
    let engines = create_engines_with(
        Arc::clone(&fake),
        &options(&model, &["libmagicmind_plugin.so"], 4),
    )
    .unwrap();
    let classes = engines.num_classes;

    // A checkout/return pool like the scheduler's: 8 workers share 4 slots.
    let (tx, rx) = crossbeam_channel::unbounded::<Box<dyn Engine>>();
    for engine in engines.engines {
        tx.send(engine).unwrap();
    }
    let failures = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for worker in 0..8usize {
            let (tx, rx, failures) = (tx.clone(), rx.clone(), Arc::clone(&failures));
            scope.spawn(move || {
                for iteration in 0..12usize {
                    let batch = 1 + (worker + iteration) % 3;
                    let input = images(batch, worker * 100 + iteration);
                    let mut logits = vec![0.0f32; batch * classes];
                    let mut engine = rx.recv().unwrap();
                    let result = engine.infer(&input, batch, &mut logits);
                    tx.send(engine).unwrap();
                    match result {
                        Ok(()) if logits == expected_logits(&input, batch, classes) => {}
                        Ok(()) => failures.lock().unwrap().push(format!(
                            "worker {worker} iteration {iteration}: wrong logits"
                        )),
                        Err(e) => failures
                            .lock()
                            .unwrap()
                            .push(format!("worker {worker} iteration {iteration}: {e}")),
                    }
                }
            });
        }
    });
    assert_eq!(*failures.lock().unwrap(), Vec::<String>::new());
    assert_eq!(fake.violations(), Vec::<String>::new());
    let max_active = fake.max_active_infers.load(Ordering::SeqCst);
    assert!(
        (2..=4).contains(&max_active),
        "max concurrent inferences {max_active}"
    );
    let per_slot = fake.infers_per_slot.lock().unwrap().clone();
    assert_eq!(per_slot.len(), 4, "every slot used: {per_slot:?}");
    assert_eq!(per_slot.values().sum::<usize>(), 8 * 12);

    drop(rx);
    drop(tx); // the channel held the last engines
    fake.assert_all_released();
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[test]
fn inference_selects_the_device_on_the_worker_thread() {
    let fake = Fake::new(FakeConfig::swin());
    let model = TempModel::new();
    let mut opts = options(&model, &[], 1);
    opts.device_id = 1;
    let mut engines = create_engines_with(Arc::clone(&fake), &opts).unwrap();
    let mut engine = engines.engines.pop().unwrap();
    // A fresh thread has no current device: the engine must select device 1 itself.
    let fake_in_thread = Arc::clone(&fake);
    std::thread::spawn(move || {
        assert_eq!(fake_in_thread.current_device(), None);
        let input = images(2, 5);
        let mut logits = vec![0.0; 2 * 1000];
        engine.infer(&input, 2, &mut logits).unwrap();
        assert_eq!(fake_in_thread.current_device(), Some(1));
        assert_eq!(logits, expected_logits(&input, 2, 1000));
        drop(engine); // slot destroyed on this thread, with the device selected
    })
    .join()
    .unwrap();
    assert_eq!(fake.violations(), Vec::<String>::new());
    fake.assert_all_released();
}

#[test]
fn invalid_requests_are_rejected_before_reaching_the_device() {
    let fake = Fake::new(FakeConfig::swin());
    let model = TempModel::new();
    let mut opts = options(&model, &[], 1);
    opts.max_batch = 4;
    let mut engines = create_engines_with(Arc::clone(&fake), &opts).unwrap();
    let engine = &mut engines.engines[0];
    assert_eq!(engine.describe().max_batch, 4);
    let one = images(1, 0);
    let five = images(5, 0);
    let mut logits = vec![0.0; 1000];
    let mut logits5 = vec![0.0; 5000];
    let cases: Vec<(Result<(), EngineError>, &str)> = vec![
        (engine.infer(&[], 0, &mut []), "batch 0"),
        (engine.infer(&five, 5, &mut logits5), "batch 5"),
        (engine.infer(&one[1..], 1, &mut logits), "input has"),
        (engine.infer(&one, 1, &mut logits[1..]), "logits buffer has"),
    ];
    for (result, fragment) in cases {
        match result {
            Err(EngineError::InvalidInput(message)) => {
                assert!(message.contains(fragment), "{message}")
            }
            other => panic!("expected InvalidInput containing {fragment:?}, got {other:?}"),
        }
    }
    assert!(
        !fake.events().iter().any(|e| e.starts_with("infer")),
        "a bad request reached the runtime"
    );
}

#[test]
fn a_runtime_error_is_reported_and_the_slot_stays_usable() {
    let mut config = FakeConfig::swin();
    config.fail = Some((Step::Infer, 1));
    let fake = Fake::new(config);
    let model = TempModel::new();
    let mut engines = create_engines_with(Arc::clone(&fake), &options(&model, &[], 1)).unwrap();
    let engine = &mut engines.engines[0];
    let input = images(1, 3);
    let mut logits = vec![0.0; 1000];
    match engine.infer(&input, 1, &mut logits) {
        Err(EngineError::Backend {
            backend: BackendKind::Mlu,
            message,
        }) => {
            assert!(
                message.contains("inference on MLU 0 slot 1/1 failed"),
                "{message}"
            );
            assert!(
                message.contains("injected failure of Infer call 1"),
                "{message}"
            );
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
    engine.infer(&input, 1, &mut logits).unwrap();
    assert_eq!(logits, expected_logits(&input, 1, 1000));
}

#[test]
fn fixed_batch_models_are_padded_to_their_batch() {
    let mut config = FakeConfig::swin();
    config.info.inputs[0].dims = vec![4, 3, 256, 256];
    config.info.outputs[0].dims = vec![4, 1000];
    let fake = Fake::new(config.clone());
    let model = TempModel::new();
    let mut engines = create_engines_with(Arc::clone(&fake), &options(&model, &[], 1)).unwrap();
    assert!(fake
        .events()
        .contains(&"create_slot 1 batch 4 dims [3, 256, 256]".to_string()));
    let engine = &mut engines.engines[0];
    assert_eq!(engine.describe().max_batch, 4);
    let input = images(3, 9);
    let mut logits = vec![0.0; 3 * 1000];
    engine.infer(&input, 3, &mut logits).unwrap();
    assert_eq!(
        *fake.last_input_dims.lock().unwrap(),
        Some([4, 3, 256, 256])
    );
    assert_eq!(logits, expected_logits(&input, 3, 1000));
    // A second, smaller request: its image first, then zeros (not the previous request's images).
    let input = images(1, 10);
    let mut logits = vec![0.0; 1000];
    engine.infer(&input, 1, &mut logits).unwrap();
    assert_eq!(logits, expected_logits(&input, 1, 1000));
    let sent = fake.last_input.lock().unwrap().clone();
    assert_eq!(sent.len(), 4 * input.len());
    assert_eq!(&sent[..input.len()], &input[..]);
    assert!(
        sent[input.len()..].iter().all(|&v| v == 0.0),
        "padding is not zero"
    );

    let fake = Fake::new(config);
    let mut opts = options(&model, &[], 1);
    opts.max_batch = 8;
    let message = backend_message(create_engines_with(Arc::clone(&fake), &opts));
    assert!(
        message.contains("fixed at 4") && message.contains("8"),
        "{message}"
    );
    fake.assert_all_released();
}

#[test]
fn mutable_batch_uses_the_requested_maximum_and_reports_a_too_large_one() {
    let fake = Fake::new(FakeConfig::swin());
    let model = TempModel::new();
    let mut opts = options(&model, &[], 2);
    opts.max_batch = 8;
    let engines = create_engines_with(Arc::clone(&fake), &opts).unwrap();
    assert_eq!(engines.engines[1].describe().max_batch, 8);
    assert!(fake
        .events()
        .contains(&"create_slot 2 batch 8 dims [3, 256, 256]".to_string()));
    drop(engines);

    let fake = Fake::new(FakeConfig::swin()); // dim_range up to 32
    opts.max_batch = 64;
    let message = backend_message(create_engines_with(Arc::clone(&fake), &opts));
    assert!(
        message.contains("cannot create MLU slot 1 of 2") && message.contains("batch 64"),
        "{message}"
    );
    fake.assert_all_released();
}

#[test]
fn unsupported_models_are_explained() {
    let base = FakeConfig::swin();
    let mut cases: Vec<(FakeConfig, &str)> = Vec::new();
    let mut c = base.clone();
    c.info.inputs.push(tensor("extra", &[-1, 3]));
    cases.push((c, "expected 1 input and 1 output, found 2 and 1"));
    let mut c = base.clone();
    c.info.inputs[0].data_type = TensorDataType::Float16;
    cases.push((c, "must be FLOAT32"));
    let mut c = base.clone();
    c.info.inputs[0].dims = vec![-1, 3, 256];
    cases.push((c, "must be NCHW"));
    let mut c = base.clone();
    c.info.inputs[0].dims = vec![-1, 1, 256, 256];
    cases.push((c, "3 channels"));
    let mut c = base.clone();
    c.info.inputs[0].dims = vec![-1, 3, 256, 224];
    cases.push((c, "must be square"));
    let mut c = base.clone();
    c.classes = 10; // InferOutputShape disagrees with the declared [-1, 1000]
    cases.push((c, "declares output"));
    let mut c = base.clone();
    c.info.outputs[0].data_type = TensorDataType::Int64;
    cases.push((c, "output 'logits' must be FLOAT32"));
    for (config, fragment) in cases {
        let fake = Fake::new(config);
        let model = TempModel::new();
        let message = backend_message(create_engines_with(
            Arc::clone(&fake),
            &options(&model, &["p.so"], 2),
        ));
        assert!(
            message.contains("unsupported MagicMind model") && message.contains(fragment),
            "{fragment}: {message}"
        );
        assert_eq!(fake.violations(), Vec::<String>::new());
        fake.assert_all_released();
    }
}

#[test]
fn plugin_self_tests_become_plugin_checks() {
    let model = TempModel::new();
    let config = FakeConfig::swin()
        .with_self_test(
            "libmagicmind_plugin.so",
            "MyPlugin::CnnlRoll",
            SelfTestOutcome::Passed("roll ok".into()),
        )
        .with_self_test(
            "libmagicmind_plugin.so",
            "MyPlugin::PluginReLU",
            SelfTestOutcome::Failed("element 7".into()),
        );
    let fake = Fake::new(config);
    let engines = create_engines_with(
        Arc::clone(&fake),
        &options(&model, &["liblab.so", "libmagicmind_plugin.so"], 1),
    )
    .unwrap();
    let checks = &engines.plugin_checks;
    assert_eq!(checks.len(), 2);
    assert_eq!(
        (
            checks[0].op.as_str(),
            checks[0].short_name.as_str(),
            checks[0].ok
        ),
        ("MyPlugin::CnnlRoll", "roll", true)
    );
    assert!(checks[0].detail.contains("roll ok"), "{}", checks[0].detail);
    assert_eq!(
        (
            checks[1].op.as_str(),
            checks[1].short_name.as_str(),
            checks[1].ok
        ),
        ("MyPlugin::PluginReLU", "relu", false)
    );
    assert!(
        checks[1]
            .detail
            .contains("device self-test failed: element 7"),
        "{}",
        checks[1].detail
    );
    // The library without a self-test was asked first, then skipped.
    assert!(fake
        .events()
        .contains(&"self_test liblab.so MyPlugin::CnnlRoll".to_string()));

    let fake = Fake::new(FakeConfig::swin());
    let engines =
        create_engines_with(Arc::clone(&fake), &options(&model, &["liblab.so"], 1)).unwrap();
    assert!(engines
        .plugin_checks
        .iter()
        .all(|c| !c.ok && c.detail.contains("no loaded plugin library exports")));
    let fake = Fake::new(FakeConfig::swin());
    let engines = create_engines_with(Arc::clone(&fake), &options(&model, &[], 1)).unwrap();
    assert!(engines
        .plugin_checks
        .iter()
        .all(|c| !c.ok && c.detail.contains("no plugin library given")));
}

#[test]
fn bad_options_are_explained() {
    let model = TempModel::new();
    let fake = Fake::new(FakeConfig::swin());
    let mut opts = options(&model, &[], 1);
    opts.device_id = 2; // the fake has devices 0 and 1
    let message = backend_message(create_engines_with(Arc::clone(&fake), &opts));
    assert!(
        message.contains("MLU device 2 does not exist: 2 device(s) visible"),
        "{message}"
    );

    opts.device_id = 0;
    opts.model_path = PathBuf::from("/nonexistent/swinv2.magicmind");
    let message = backend_message(create_engines_with(Arc::clone(&fake), &opts));
    assert!(
        message.contains("model file not found: /nonexistent/swinv2.magicmind"),
        "{message}"
    );

    let mut opts = options(&model, &[], 0);
    assert!(
        matches!(create_engines_with(Arc::clone(&fake), &opts), Err(EngineError::InvalidInput(m)) if m.contains("--instances"))
    );
    opts.instances = 1;
    opts.device_id = -1;
    assert!(
        matches!(create_engines_with(Arc::clone(&fake), &opts), Err(EngineError::InvalidInput(m)) if m.contains("device id"))
    );
    fake.assert_all_released();
}

#[test]
fn create_engines_explains_how_the_binary_was_built() {
    let opts = MluOptions {
        model_path: PathBuf::from("/nonexistent/swinv2.magicmind"),
        plugin_libs: vec![],
        device_id: 0,
        instances: 1,
        max_batch: 0,
    };
    let message = backend_message(create_engines(&opts));
    if cfg!(feature = "mlu") {
        // Without the SDK the runtime is not linked in; with it, the missing file is reported.
        assert!(
            message.contains("without the Neuware SDK (set NEUWARE_HOME when building)")
                || message.contains("model file not found"),
            "{message}"
        );
    } else {
        assert!(
            message.contains("built without --features mlu"),
            "{message}"
        );
    }
}
