//! [`Pipeline`]: the state every protocol service shares — the model slot, the decode permits, the
//! memory budget, readiness — and the model, as the services ask for it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;
use tonic::Status;

use super::refusal_log::RefusalLog;
use super::refusal_pacing::{HeldRefusal, RefusalPacing};
use crate::server::call::deadline::CallDeadline;
use crate::server::config::ServerConfig;
use crate::server::memory_budget::{BudgetExhausted, BudgetGuard, BudgetSetting, MemoryBudget};
use crate::server::metrics::names;
use crate::server::serving_model::{ModelSlot, ServingModel};

/// State the protocol services share: one model slot, one set of decode permits, one memory
/// budget, one readiness. Cloning shares it.
#[derive(Clone)]
pub struct Pipeline {
    pub(super) slot: ModelSlot,
    config: ServerConfig,
    pub(super) decode_permits: Arc<Semaphore>,
    budget: Arc<MemoryBudget>,
    draining: Arc<AtomicBool>,
    engine_ok: Arc<AtomicBool>,
    pub(super) refusal_log: Arc<RefusalLog>,
    refusal_pacing: Option<Arc<RefusalPacing>>,
}

impl Pipeline {
    /// The pipeline over `slot`: ready once the slot is filled, until [`Pipeline::start_draining`].
    pub fn new(slot: ModelSlot, config: ServerConfig) -> Self {
        let decode_permits = Arc::new(Semaphore::new(config.max_concurrent_decodes.max(1)));
        let budget = MemoryBudget::new(match config.memory_budget {
            BudgetSetting::Bytes(n) => Some(n),
            BudgetSetting::Auto | BudgetSetting::Off => None,
        });
        let refusal_pacing = config
            .max_refusal_rate
            .map(|rate| Arc::new(RefusalPacing::new(rate)));
        Self {
            slot,
            refusal_pacing,
            config,
            decode_permits,
            budget,
            draining: Arc::new(AtomicBool::new(false)),
            engine_ok: Arc::new(AtomicBool::new(true)),
            refusal_log: Arc::default(),
        }
    }

    /// Server settings.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The memory budget every image draws from (see [`crate::server::memory_budget`]).
    pub fn memory_budget(&self) -> &Arc<MemoryBudget> {
        &self.budget
    }

    /// Charge `bytes` to the memory budget, or RESOURCE_EXHAUSTED at once.
    pub(super) fn charge(&self, bytes: u64) -> Result<BudgetGuard, Status> {
        self.budget
            .try_acquire(bytes)
            .map_err(|e: BudgetExhausted| {
                metrics::counter!(
                    names::CALLS_REFUSED_TOTAL,
                    "reason" => names::refused::MEMORY_BUDGET
                )
                .increment(1);
                if e.needed > e.limit {
                    // Retrying cannot help: the image needs more than the whole budget.
                    Status::resource_exhausted(format!(
                        "{e}: this image alone needs more than the server's whole memory budget \
                         (--memory-budget); send a smaller image"
                    ))
                } else {
                    Status::resource_exhausted(format!("{e}; retry later (--memory-budget)"))
                }
            })
    }

    /// The model, or UNAVAILABLE while it loads.
    pub fn model(&self) -> Result<Arc<ServingModel>, Status> {
        self.slot
            .get()
            .cloned()
            .ok_or_else(|| Status::unavailable("model is loading; retry when health is SERVING"))
    }

    /// The model if it is loaded (no error).
    pub fn loaded(&self) -> Option<Arc<ServingModel>> {
        self.slot.get().cloned()
    }

    /// Readiness as OIP ServerReady reports it: the model is loaded, shutdown has not begun and the
    /// engine watchdog finds the engine working.
    pub fn is_ready(&self) -> bool {
        self.slot.get().is_some()
            && !self.draining.load(Ordering::Relaxed)
            && self.engine_ok.load(Ordering::Relaxed)
    }

    /// Whether an image arriving now would be admitted: the model loaded, room in the engine
    /// queue and an estimated wait within `--max-queue-wait`. Checked at a request's headers,
    /// before its body is read, so that a refusal costs nothing; the image is checked again when
    /// it is admitted.
    pub fn admission_open(&self) -> Result<(), Status> {
        let model = self.model()?;
        model
            .pool
            .admission_check()
            .map_err(|e| crate::server::status::scheduler_status(&e))
    }

    /// [`Pipeline::admission_open`] at a call's headers, a refusal answered in its turn under
    /// `--max-refusal-rate` (see [`super::refusal_pacing`]): it waits (nothing read) while more
    /// refusals than the rate were answered lately.
    pub async fn admission_at_headers(&self, deadline: Option<CallDeadline>) -> Result<(), Status> {
        let refusal = match self.admission_open() {
            Ok(()) => return Ok(()),
            Err(status) => status,
        };
        if let Some(held) = self.refusal_turn(deadline) {
            held.wait().await;
        }
        Err(refusal)
    }

    /// When a refusal made now is to be answered (see [`super::refusal_pacing`]): `None` at once.
    pub fn refusal_turn(&self, deadline: Option<CallDeadline>) -> Option<HeldRefusal> {
        self.refusal_pacing
            .as_ref()?
            .hold(Instant::now(), deadline.map(|d| d.at))
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// The engine watchdog's verdict (not hung, not failing).
    pub fn set_engine_ok(&self, ok: bool) {
        self.engine_ok.store(ok, Ordering::Relaxed);
    }

    /// Shutdown has begun: not ready any more (calls are still answered while the server drains).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}
