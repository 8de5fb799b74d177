//! The queue-wait estimate behind `--max-queue-wait`: images ahead × recent engine time per image
//! / instances, where the engine time per image is a moving average the workers keep.

use std::time::Duration;

/// Default bound on an image's estimated wait for an instance (`--max-queue-wait`): 10 s. With the
/// default queue capacity (256) a saturated CPU server would otherwise let an accepted call wait
/// far longer (docs/performance.md).
pub const DEFAULT_MAX_QUEUE_WAIT: Duration = Duration::from_secs(10);

/// The wait of an image admitted behind `ahead` others, on `instances` instances that recently
/// took `ns_per_image` nanoseconds an image (zero before any batch has run).
pub(super) fn estimate(ahead: usize, ns_per_image: u64, instances: usize) -> Duration {
    Duration::from_nanos((ahead as u64).saturating_mul(ns_per_image) / instances.max(1) as u64)
}

/// The moving average of the engine time per image after a batch of `images` that took
/// `worker_time` (its preparation included): weight 1/4 for the newest batch; the first batch
/// sets it (`old` is 0 until then).
pub(super) fn moving_average(old: u64, worker_time: Duration, images: usize) -> u64 {
    let per_image = (worker_time.as_nanos() / images.max(1) as u128).min(u64::MAX as u128) as u64;
    if old == 0 {
        per_image
    } else {
        (old.saturating_mul(3) / 4).saturating_add(per_image / 4)
    }
}
