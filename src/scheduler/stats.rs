//! [`PoolStats`]: the pool's counters, and the guard that keeps its images-in-pool gauge.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Counters of the pool (monotonic unless noted).
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Images that got logits.
    pub images_done: AtomicU64,
    /// Engine batches run.
    pub batches_run: AtomicU64,
    /// Images that failed in an engine.
    pub images_failed: AtomicU64,
    /// Images dropped because their caller had gone.
    pub images_cancelled: AtomicU64,
    /// Images dropped because their deadline had passed, before they entered the queue or before an
    /// instance ran them.
    pub images_expired: AtomicU64,
    /// Images refused because the queue was full.
    pub images_rejected: AtomicU64,
    /// Images in the pool now: queued for an instance or running on one (gauge; the server's
    /// `swin_images_in_flight`).
    pub images_in_pool: AtomicUsize,
    /// Engine batches that failed in a row (reset by a batch that succeeds).
    pub failed_in_a_row: AtomicU64,
    /// Recent engine time per image, in nanoseconds (an exponential moving average over batches,
    /// weight 1/4 for the newest; 0 until the first batch has run).
    pub engine_ns_per_image: AtomicU64,
}

/// Counts one image in [`PoolStats::images_in_pool`] while it lives.
pub(super) struct InPoolGuard<'a>(&'a PoolStats);

impl<'a> InPoolGuard<'a> {
    /// Count one more image in the pool, until the guard is dropped.
    pub(super) fn enter(stats: &'a PoolStats) -> Self {
        stats.images_in_pool.fetch_add(1, Ordering::Relaxed);
        Self(stats)
    }
}

impl Drop for InPoolGuard<'_> {
    fn drop(&mut self) {
        self.0.images_in_pool.fetch_sub(1, Ordering::Relaxed);
    }
}
