//! Engine health: each worker marks when its current batch started ([`Heartbeat`]); the pool reads
//! the marks ([`Heartbeats::health`]) to tell a hung instance and a failing engine from working
//! ones.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Batches that must fail in a row before the pool is reported [`EngineHealth::Failing`].
pub const FAILING_AFTER_BATCHES: u64 = 3;

/// What [`EnginePool::health`](super::EnginePool::health) finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineHealth {
    /// Every instance is idle or has been running its batch for less than the limit, and the last
    /// batches did not all fail.
    Ok,
    /// An instance has been running one batch for longer than the limit.
    Hung { instance: usize, running: Duration },
    /// The last `batches` batches all failed.
    Failing { batches: u64 },
}

/// Per instance: when its current batch started, in microseconds since `epoch` plus one; 0 while
/// idle. Written by the workers ([`Heartbeat`]), read by [`Self::health`].
pub(super) struct Heartbeats {
    busy_since: Arc<[AtomicU64]>,
    epoch: Instant,
}

impl Heartbeats {
    /// Marks for `instances` idle instances.
    pub(super) fn new(instances: usize) -> Self {
        Self {
            busy_since: (0..instances).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
        }
    }

    /// The mark instance `index` writes.
    pub(super) fn heartbeat(&self, index: usize) -> Heartbeat {
        Heartbeat {
            busy_since: Arc::clone(&self.busy_since),
            index,
            epoch: self.epoch,
        }
    }

    /// [`EngineHealth::Hung`] if an instance has been running one batch for longer than
    /// `hang_after`, else [`EngineHealth::Failing`] after [`FAILING_AFTER_BATCHES`] batches
    /// failed in a row, else [`EngineHealth::Ok`].
    pub(super) fn health(&self, hang_after: Duration, failed_in_a_row: u64) -> EngineHealth {
        let now = self.epoch.elapsed();
        for (instance, since) in self.busy_since.iter().enumerate() {
            let since = since.load(Ordering::Relaxed);
            if since == 0 {
                continue;
            }
            let running = now.saturating_sub(Duration::from_micros(since - 1));
            if running > hang_after {
                return EngineHealth::Hung { instance, running };
            }
        }
        if failed_in_a_row >= FAILING_AFTER_BATCHES {
            return EngineHealth::Failing {
                batches: failed_in_a_row,
            };
        }
        EngineHealth::Ok
    }
}

/// A worker's "running a batch since" mark.
pub(super) struct Heartbeat {
    busy_since: Arc<[AtomicU64]>,
    index: usize,
    epoch: Instant,
}

impl Heartbeat {
    /// A batch starts now.
    pub(super) fn busy(&self) {
        let micros = self.epoch.elapsed().as_micros() as u64 + 1;
        self.busy_since[self.index].store(micros, Ordering::Relaxed);
    }

    /// The batch is over.
    pub(super) fn idle(&self) {
        self.busy_since[self.index].store(0, Ordering::Relaxed);
    }
}
