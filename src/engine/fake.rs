//! A stand-in [`Engine`] for tests: a test double, not a backend. It is compiled for the crate's
//! own unit tests and, with the `test-util` cargo feature (like tokio's `test-util`), for the
//! integration tests, which get it through the crate's dev-dependency on itself; a plain build
//! has no such module.
//!
//! [`FakeEngine`] computes each image's logits from the image's first value ([`LogitFn`]), records
//! the size of every batch it is given, and can be held at a gate until the test opens it, slowed
//! down, made to panic or fail on a marker input, or made to return NaN for one batch size. Built
//! like `FakeEngine::new(fake::description(2, 3, 4)).gated().with_delay(d).panicking_on(-999.0)`;
//! its clones (and [`FakeEngine::instances`]) share one [`FakeControls`], the test's handle on the
//! gate and on the recorded batches.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::backend_kind::BackendKind;
use super::error::EngineError;
use super::instance::{Engine, EngineDescription};

/// A CPU-engine description for a fake: 3 channels, `input_size`², `num_classes`, `max_batch`,
/// detail `fake engine`. Change other fields with struct update syntax.
pub fn description(input_size: usize, num_classes: usize, max_batch: usize) -> EngineDescription {
    EngineDescription {
        backend: BackendKind::Cpu,
        channels: 3,
        input_size,
        num_classes,
        max_batch,
        precision: super::Precision::Fp32,
        detail: "fake engine".into(),
    }
}

/// How a [`FakeEngine`] computes logit `class` of an image whose first input value is
/// `first_value`.
pub type LogitFn = fn(first_value: f32, class: usize) -> f32;

/// The default [`LogitFn`]: `first_value · (class + 1)`.
pub fn scaled_by_class(first_value: f32, class: usize) -> f32 {
    first_value * (class as f32 + 1.0)
}

/// A deterministic [`Engine`] for tests. Per `infer` call, in order: checks its arguments like
/// every backend ([`EngineDescription::check_infer_args`]), records the batch size in its
/// [`FakeControls`], waits until their gate is open, sleeps its delay, then per image panics or
/// fails on its marker value, else writes the logits ([`LogitFn`]; all NaN for a batch of the
/// size [`Self::with_nan_logits_at_batch`] names).
#[derive(Debug, Clone)]
pub struct FakeEngine {
    description: EngineDescription,
    logit: LogitFn,
    delay: Duration,
    panic_marker: Option<f32>,
    fail_marker: Option<f32>,
    nan_at_batch: Option<usize>,
    controls: Arc<FakeControls>,
}

impl FakeEngine {
    /// An engine of `description` with [`scaled_by_class`] logits, no delay, and controls of its
    /// own whose gate is open.
    pub fn new(description: EngineDescription) -> Self {
        Self {
            description,
            logit: scaled_by_class,
            delay: Duration::ZERO,
            panic_marker: None,
            fail_marker: None,
            nan_at_batch: None,
            controls: FakeControls::with_gate_open(),
        }
    }

    /// Logits computed by `logit` instead.
    pub fn with_logits(mut self, logit: LogitFn) -> Self {
        self.logit = logit;
        self
    }

    /// Sleep `delay` in every `infer` call (after the gate), as a slow engine would.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Controls of its own whose gate starts closed: every batch waits (after being recorded)
    /// until the test calls [`FakeControls::open`].
    pub fn gated(self) -> Self {
        self.with_controls(FakeControls::with_gate_closed())
    }

    /// Use `controls` (shared with other engines or made by the test) instead of its own.
    pub fn with_controls(mut self, controls: Arc<FakeControls>) -> Self {
        self.controls = controls;
        self
    }

    /// Panic (`marker input`) on an image whose first value is `marker`.
    pub fn panicking_on(mut self, marker: f32) -> Self {
        self.panic_marker = Some(marker);
        self
    }

    /// Fail the batch ([`EngineError::Backend`], `fake engine: marker input`) holding an image
    /// whose first value is `marker`.
    pub fn failing_on(mut self, marker: f32) -> Self {
        self.fail_marker = Some(marker);
        self
    }

    /// Return NaN logits for every batch of `batch` images (a model with broken weights).
    pub fn with_nan_logits_at_batch(mut self, batch: usize) -> Self {
        self.nan_at_batch = Some(batch);
        self
    }

    /// The gate and batch record this engine (and every clone of it) uses.
    pub fn controls(&self) -> Arc<FakeControls> {
        Arc::clone(&self.controls)
    }

    /// `n` clones, boxed for an engine pool: they share this engine's controls.
    pub fn instances(&self, n: usize) -> Vec<Box<dyn Engine>> {
        (0..n)
            .map(|_| Box::new(self.clone()) as Box<dyn Engine>)
            .collect()
    }
}

impl Engine for FakeEngine {
    fn describe(&self) -> EngineDescription {
        self.description.clone()
    }

    fn infer(
        &mut self,
        input: &[f32],
        batch: usize,
        logits: &mut [f32],
    ) -> Result<(), EngineError> {
        self.description.check_infer_args(input, batch, logits)?;
        self.controls.record(batch);
        self.controls.wait_until_open();
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        let image_len = self.description.image_len();
        let classes = self.description.num_classes;
        let nan = self.nan_at_batch == Some(batch);
        for (image, row) in input
            .chunks_exact(image_len)
            .zip(logits.chunks_exact_mut(classes))
        {
            let first = image[0];
            if self.panic_marker == Some(first) {
                panic!("marker input");
            }
            if self.fail_marker == Some(first) {
                return Err(EngineError::Backend {
                    backend: self.description.backend,
                    message: "fake engine: marker input".into(),
                });
            }
            for (class, logit) in row.iter_mut().enumerate() {
                *logit = if nan {
                    f32::NAN
                } else {
                    (self.logit)(first, class)
                };
            }
        }
        Ok(())
    }
}

/// What a test holds of its [`FakeEngine`]s: the gate they wait at and the size of every batch
/// they were given (recorded on entry, before the gate), shared by every engine built with them.
#[derive(Debug)]
pub struct FakeControls {
    open: Mutex<bool>,
    opened: Condvar,
    batches: Mutex<Vec<usize>>,
}

impl FakeControls {
    /// Controls whose gate is open: engines run at once.
    pub fn with_gate_open() -> Arc<Self> {
        Self::with_gate(true)
    }

    /// Controls whose gate is closed: engines hold every batch until [`Self::open`].
    pub fn with_gate_closed() -> Arc<Self> {
        Self::with_gate(false)
    }

    fn with_gate(open: bool) -> Arc<Self> {
        Arc::new(Self {
            open: Mutex::new(open),
            opened: Condvar::new(),
            batches: Mutex::new(Vec::new()),
        })
    }

    /// Open the gate: held batches go on, later ones no longer wait.
    pub fn open(&self) {
        *lock(&self.open) = true;
        self.opened.notify_all();
    }

    /// A guard that opens the gate when dropped, so that a failing test does not leave an engine
    /// thread blocked (an engine pool joins its threads when it goes).
    pub fn open_on_drop(self: &Arc<Self>) -> OpenOnDrop {
        OpenOnDrop(Arc::clone(self))
    }

    /// The size of every batch the engines were given, in order.
    pub fn batches(&self) -> Vec<usize> {
        lock(&self.batches).clone()
    }

    /// Wait until the engines have been given `n` batches (polling; panics after 60 s, a hang
    /// guard only).
    pub async fn wait_for_batches(&self, n: usize) {
        let guard = Instant::now() + Duration::from_secs(60);
        while lock(&self.batches).len() < n {
            assert!(Instant::now() < guard, "the engine never got batch {n}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn record(&self, batch: usize) {
        lock(&self.batches).push(batch);
    }

    fn wait_until_open(&self) {
        let mut open = lock(&self.open);
        while !*open {
            open = self
                .opened
                .wait(open)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Opens its controls' gate when dropped ([`FakeControls::open_on_drop`]).
#[derive(Debug)]
pub struct OpenOnDrop(pub Arc<FakeControls>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// A test that panicked while holding a lock must not hide the next assertion behind a poison error.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
