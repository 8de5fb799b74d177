//! Admission before work: the queue capacity is a number of admission slots ([`QueueSlot`]). A
//! request takes one before it spends anything on its image and gives it back when an engine
//! instance takes the image (or when the request ends first).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Default images allowed to wait for a free instance (`--queue-capacity`).
pub const DEFAULT_QUEUE_CAPACITY: usize = 256;

/// An admission slot: the right to queue one image
/// ([`EnginePool::reserve`](super::EnginePool::reserve)). Dropping it unused gives it back.
#[derive(Debug)]
pub struct QueueSlot {
    permit: OwnedSemaphorePermit,
}

impl QueueSlot {
    /// What the queued job holds until an instance takes it.
    pub(super) fn into_permit(self) -> OwnedSemaphorePermit {
        self.permit
    }
}

/// The pool's admission slots.
pub(super) struct Admission {
    slots: Arc<Semaphore>,
    capacity: usize,
}

impl Admission {
    /// `capacity` free slots.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(capacity)),
            capacity,
        }
    }

    /// Number of slots, taken or not.
    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    /// A free slot, or `None` at once when all are taken. Never waits.
    pub(super) fn try_take(&self) -> Option<QueueSlot> {
        Arc::clone(&self.slots)
            .try_acquire_owned()
            .ok()
            .map(|permit| QueueSlot { permit })
    }

    /// Slots taken now (images being prepared or queued).
    pub(super) fn in_use(&self) -> usize {
        self.capacity - self.slots.available_permits()
    }
}
