//! An in-process fake MagicMind runtime behind the same `MluRuntime` trait as the real FFI runtime
//! (only `tests/mlu_pool.rs` includes it: `mod common { pub mod fake_mlu; }`), and what it returns.
//!
//! The fake records every call, keeps track of which objects are alive, and flags protocol
//! violations the real runtime would punish: destroying the engine while contexts exist, the model
//! while the engine exists, closing a plugin library while the model exists, using a slot from two
//! threads at once, or running an inference on a thread whose current device was not set.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use swin_serve::engine::mlu::runtime::{
    MluRuntime, ModelIo, RuntimeError, RuntimeErrorKind, SelfTestOutcome, SlotConfig, SlotInfo,
    TensorDataType, TensorSpec,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    OpenPlugin,
    DeviceCount,
    SetDevice,
    LoadModel,
    ModelIo,
    CreateEngine,
    CreateSlot,
    Infer,
}

#[derive(Clone)]
pub struct FakeConfig {
    pub device_count: u32,
    pub info: ModelIo,
    /// Classes the fake's output has.
    pub classes: i64,
    /// Largest batch InferOutputShape accepts for a mutable batch (the model's dim_range).
    pub mutable_batch_limit: usize,
    /// Fail the n-th (1-based) call of a step.
    pub fail: Option<(Step, usize)>,
    /// Self-test outcome per (library file name, op); missing = NotAvailable.
    pub self_tests: HashMap<(String, String), SelfTestOutcome>,
    pub infer_delay: Duration,
}

pub fn tensor(name: &str, dims: &[i64]) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        data_type: TensorDataType::Float32,
        dims: dims.to_vec(),
    }
}

impl FakeConfig {
    /// The lab's model: input [-1, 3, 256, 256] float32, output [-1, 1000] float32.
    pub fn swin() -> Self {
        Self {
            device_count: 2,
            info: ModelIo {
                inputs: vec![tensor("input.1", &[-1, 3, 256, 256])],
                outputs: vec![tensor("logits", &[-1, 1000])],
            },
            classes: 1000,
            mutable_batch_limit: 32,
            fail: None,
            self_tests: HashMap::new(),
            infer_delay: Duration::ZERO,
        }
    }

    pub fn with_self_test(mut self, library: &str, op: &str, outcome: SelfTestOutcome) -> Self {
        self.self_tests.insert((library.into(), op.into()), outcome);
        self
    }
}

pub struct FakePlugin {
    name: String,
}
pub struct FakeModel;
pub struct FakeEngine;
pub struct FakeSlot {
    id: usize,
    max_batch: usize,
    busy: Arc<AtomicBool>,
}

#[derive(Default)]
struct Live {
    plugins: Vec<String>,
    models: usize,
    engines: usize,
    slots: HashSet<usize>,
}

pub struct Fake {
    id: u64,
    config: FakeConfig,
    events: Mutex<Vec<String>>,
    calls: Mutex<HashMap<Step, usize>>,
    live: Mutex<Live>,
    violations: Mutex<Vec<String>>,
    next_slot: AtomicUsize,
    active_infers: AtomicUsize,
    pub max_active_infers: AtomicUsize,
    /// Inputs of every inference, per slot id: (dims, first value of each image).
    pub infers_per_slot: Mutex<HashMap<usize, usize>>,
    pub last_input_dims: Mutex<Option<[i64; 4]>>,
    pub last_input: Mutex<Vec<f32>>,
}

static NEXT_FAKE_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Current device per fake runtime on this thread (what cnrtSetDevice would record).
    static CURRENT_DEVICE: RefCell<HashMap<u64, i32>> = RefCell::new(HashMap::new());
}

impl Fake {
    pub fn new(config: FakeConfig) -> Arc<Self> {
        Arc::new(Self {
            id: NEXT_FAKE_ID.fetch_add(1, Ordering::Relaxed),
            config,
            events: Mutex::default(),
            calls: Mutex::default(),
            live: Mutex::default(),
            violations: Mutex::default(),
            next_slot: AtomicUsize::new(1),
            active_infers: AtomicUsize::new(0),
            max_active_infers: AtomicUsize::new(0),
            infers_per_slot: Mutex::default(),
            last_input_dims: Mutex::default(),
            last_input: Mutex::default(),
        })
    }

    fn event(&self, e: impl Into<String>) {
        self.events.lock().unwrap().push(e.into());
    }

    fn violation(&self, v: impl Into<String>) {
        self.violations.lock().unwrap().push(v.into());
    }

    /// Count the call; fail it if it is the configured one.
    fn step(&self, step: Step) -> Result<(), RuntimeError> {
        let mut calls = self.calls.lock().unwrap();
        let n = calls.entry(step).or_insert(0);
        *n += 1;
        match self.config.fail {
            Some((s, k)) if s == step && k == *n => Err(RuntimeError::new(
                RuntimeErrorKind::MagicMind,
                format!("injected failure of {step:?} call {k}"),
            )),
            _ => Ok(()),
        }
    }

    pub fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }

    /// Events without the per-call noise (set_device, self-tests, inferences).
    pub fn lifecycle(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter(|e| {
                !e.starts_with("set_device")
                    && !e.starts_with("self_test")
                    && !e.starts_with("infer")
            })
            .collect()
    }

    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
    }

    pub fn assert_all_released(&self) {
        let live = self.live.lock().unwrap();
        assert!(
            live.plugins.is_empty(),
            "plugin libraries still open: {:?}",
            live.plugins
        );
        assert_eq!(live.models, 0, "model not destroyed");
        assert_eq!(live.engines, 0, "engine not destroyed");
        assert!(
            live.slots.is_empty(),
            "slots not destroyed: {:?}",
            live.slots
        );
    }

    pub fn current_device(&self) -> Option<i32> {
        CURRENT_DEVICE.with(|d| d.borrow().get(&self.id).copied())
    }
}

/// The fake's model: logit k of image b = k + 0.001 * sum(image b).
fn fake_logits(image: &[f32], classes: usize) -> Vec<f32> {
    let sum: f32 = image.iter().sum();
    (0..classes).map(|k| k as f32 + 0.001 * sum).collect()
}

impl MluRuntime for Fake {
    type PluginLibrary = FakePlugin;
    type Model = FakeModel;
    type Engine = FakeEngine;
    type Slot = FakeSlot;

    fn open_plugin_library(&self, path: &Path) -> Result<FakePlugin, RuntimeError> {
        self.step(Step::OpenPlugin)
            .map_err(|e| RuntimeError::new(RuntimeErrorKind::Library, e.message))?;
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if self.live.lock().unwrap().models > 0 {
            self.violation(format!("plugin {name} opened after the model"));
        }
        self.event(format!("open_plugin {name}"));
        self.live.lock().unwrap().plugins.push(name.clone());
        Ok(FakePlugin { name })
    }

    fn plugin_self_test(&self, library: &FakePlugin, op: &str) -> SelfTestOutcome {
        if self.current_device().is_none() {
            self.violation("self-test without a current device");
        }
        self.event(format!("self_test {} {op}", library.name));
        self.config
            .self_tests
            .get(&(library.name.clone(), op.to_string()))
            .cloned()
            .unwrap_or(SelfTestOutcome::NotAvailable)
    }

    fn close_plugin_library(&self, library: FakePlugin) {
        let mut live = self.live.lock().unwrap();
        if live.models > 0 {
            self.violation(format!(
                "plugin {} closed while the model exists",
                library.name
            ));
        }
        match live.plugins.iter().rposition(|p| *p == library.name) {
            Some(i) => {
                live.plugins.remove(i);
            }
            None => self.violation(format!("plugin {} closed twice", library.name)),
        }
        drop(live);
        self.event(format!("close_plugin {}", library.name));
    }

    fn device_count(&self) -> Result<u32, RuntimeError> {
        self.step(Step::DeviceCount)?;
        self.event("device_count");
        Ok(self.config.device_count)
    }

    fn set_device(&self, device_id: i32) -> Result<(), RuntimeError> {
        self.step(Step::SetDevice)
            .map_err(|e| RuntimeError::new(RuntimeErrorKind::Device, e.message))?;
        if device_id < 0 || device_id as u32 >= self.config.device_count {
            return Err(RuntimeError::new(
                RuntimeErrorKind::Device,
                "cnrtSetDevice: invalid device",
            ));
        }
        CURRENT_DEVICE.with(|d| d.borrow_mut().insert(self.id, device_id));
        self.event(format!("set_device {device_id}"));
        Ok(())
    }

    fn deserialize_model(&self, path: &Path) -> Result<FakeModel, RuntimeError> {
        self.step(Step::LoadModel)?;
        if self.current_device().is_none() {
            self.violation("model loaded before cnrtSetDevice");
        }
        assert!(path.is_file());
        self.event("load_model");
        self.live.lock().unwrap().models += 1;
        Ok(FakeModel)
    }

    fn model_info(&self, _model: &FakeModel) -> Result<ModelIo, RuntimeError> {
        self.step(Step::ModelIo)?;
        self.event("model_info");
        Ok(self.config.info.clone())
    }

    fn destroy_model(&self, _model: FakeModel) {
        let mut live = self.live.lock().unwrap();
        if live.engines > 0 {
            self.violation("model destroyed while its engine exists");
        }
        live.models -= 1;
        drop(live);
        self.event("destroy_model");
    }

    fn create_engine(&self, _model: &FakeModel) -> Result<FakeEngine, RuntimeError> {
        self.step(Step::CreateEngine)?;
        self.event("create_engine");
        self.live.lock().unwrap().engines += 1;
        Ok(FakeEngine)
    }

    fn destroy_engine(&self, _engine: FakeEngine) {
        let mut live = self.live.lock().unwrap();
        if !live.slots.is_empty() {
            self.violation(format!(
                "engine destroyed while contexts {:?} exist",
                live.slots
            ));
        }
        live.engines -= 1;
        drop(live);
        self.event("destroy_engine");
    }

    fn create_slot(
        &self,
        _engine: &FakeEngine,
        config: &SlotConfig,
    ) -> Result<(FakeSlot, SlotInfo), RuntimeError> {
        self.step(Step::CreateSlot)?;
        if self.current_device() != Some(config.device_id) {
            self.violation("slot created without its device current");
        }
        let fixed = self.config.info.inputs[0].dims[0];
        let accepted = if fixed > 0 {
            config.max_batch as i64 == fixed
        } else {
            config.max_batch <= self.config.mutable_batch_limit
        };
        if !accepted {
            return Err(RuntimeError::new(
                RuntimeErrorKind::MagicMind,
                format!(
                    "InferOutputShape: batch {} outside the model's range",
                    config.max_batch
                ),
            ));
        }
        let id = self.next_slot.fetch_add(1, Ordering::Relaxed);
        self.event(format!(
            "create_slot {id} batch {} dims {:?}",
            config.max_batch, config.sample_dims
        ));
        self.live.lock().unwrap().slots.insert(id);
        let output_dims = vec![config.max_batch as i64, self.config.classes];
        Ok((
            FakeSlot {
                id,
                max_batch: config.max_batch,
                busy: Arc::new(AtomicBool::new(false)),
            },
            SlotInfo { output_dims },
        ))
    }

    fn infer(
        &self,
        slot: &mut FakeSlot,
        input: &[f32],
        input_dims: [i64; 4],
        output: &mut [f32],
    ) -> Result<(), RuntimeError> {
        if self.current_device().is_none() {
            self.violation("inference on a thread without cnrtSetDevice");
            return Err(RuntimeError::new(
                RuntimeErrorKind::Device,
                "no current device on this thread",
            ));
        }
        if slot.busy.swap(true, Ordering::SeqCst) {
            self.violation(format!("slot {} used by two threads at once", slot.id));
        }
        let active = self.active_infers.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_active_infers.fetch_max(active, Ordering::SeqCst);
        let result = (|| {
            self.step(Step::Infer)?;
            let batch = input_dims[0] as usize;
            let fixed = self.config.info.inputs[0].dims[0];
            let sample: usize = input_dims[1..].iter().product::<i64>() as usize;
            let classes = self.config.classes as usize;
            if batch > slot.max_batch || (fixed > 0 && batch as i64 != fixed) {
                return Err(RuntimeError::new(
                    RuntimeErrorKind::InvalidArgument,
                    format!("batch {batch} not accepted"),
                ));
            }
            assert_eq!(input.len(), batch * sample, "input length vs dims");
            assert_eq!(output.len(), batch * classes, "output length vs dims");
            std::thread::sleep(self.config.infer_delay);
            for b in 0..batch {
                let logits = fake_logits(&input[b * sample..(b + 1) * sample], classes);
                output[b * classes..(b + 1) * classes].copy_from_slice(&logits);
            }
            *self
                .infers_per_slot
                .lock()
                .unwrap()
                .entry(slot.id)
                .or_insert(0) += 1;
            *self.last_input_dims.lock().unwrap() = Some(input_dims);
            *self.last_input.lock().unwrap() = input.to_vec();
            Ok(())
        })();
        self.active_infers.fetch_sub(1, Ordering::SeqCst);
        slot.busy.store(false, Ordering::SeqCst);
        self.event(format!("infer slot {} batch {}", slot.id, input_dims[0]));
        result
    }

    fn destroy_slot(&self, slot: FakeSlot) {
        if self.current_device().is_none() {
            self.violation("slot destroyed on a thread without cnrtSetDevice");
        }
        if !self.live.lock().unwrap().slots.remove(&slot.id) {
            self.violation(format!("slot {} destroyed twice", slot.id));
        }
        self.event(format!("destroy_slot {}", slot.id));
    }
}

/// What [`Fake`] returns for `batch` images in `input` (f32 sums, exactly as the fake computes).
pub fn expected_logits(input: &[f32], batch: usize, classes: usize) -> Vec<f32> {
    let sample = input.len() / batch;
    (0..batch)
        .flat_map(|b| fake_logits(&input[b * sample..(b + 1) * sample], classes))
        .collect()
}
