//! Per-model inference statistics, as Triton's `ModelStatistics` reports them (and the OIP service
//! answers): request counts and durations, and per-image time in each stage. Every inference RPC
//! counts, whatever protocol carried it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A count and a total duration.
#[derive(Debug, Default)]
pub struct DurationTotal {
    count: AtomicU64,
    nanos: AtomicU64,
}

impl DurationTotal {
    /// Add one occurrence that took `elapsed`.
    pub fn add(&self, elapsed: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// `(count, total nanoseconds)`.
    pub fn get(&self) -> (u64, u64) {
        (
            self.count.load(Ordering::Relaxed),
            self.nanos.load(Ordering::Relaxed),
        )
    }
}

/// What the served model has done since the server started.
#[derive(Debug, Default)]
pub struct InferenceStats {
    /// Inference requests answered OK (a ClassifyBatch or ModelInfer call is one request).
    pub success: DurationTotal,
    /// Inference requests answered with an error.
    pub fail: DurationTotal,
    /// Per image: time waiting for an engine instance.
    pub queue: DurationTotal,
    /// Per image: decode + preprocessing, or taking a preprocessed tensor.
    pub compute_input: DurationTotal,
    /// Per image: the forward pass of the batch it ran in.
    pub compute_infer: DurationTotal,
    /// Per image: postprocessing (softmax, top-k, output tensors).
    pub compute_output: DurationTotal,
    /// Images classified.
    pub images: AtomicU64,
    /// Milliseconds since the epoch of the last classified image; 0 before the first.
    pub last_inference_ms: AtomicU64,
}

impl InferenceStats {
    /// One request answered (OK or not) after `elapsed`.
    pub fn record_request(&self, ok: bool, elapsed: Duration) {
        if ok {
            self.success.add(elapsed)
        } else {
            self.fail.add(elapsed)
        }
    }

    /// One image through the engine.
    pub fn record_image(&self, input: Duration, queue: Duration, infer: Duration) {
        self.compute_input.add(input);
        self.queue.add(queue);
        self.compute_infer.add(infer);
        self.images.fetch_add(1, Ordering::Relaxed);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_inference_ms.fetch_max(now_ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_up() {
        let stats = InferenceStats::default();
        stats.record_request(true, Duration::from_millis(3));
        stats.record_request(true, Duration::from_millis(4));
        stats.record_request(false, Duration::from_nanos(5));
        assert_eq!(stats.success.get(), (2, 7_000_000));
        assert_eq!(stats.fail.get(), (1, 5));
        assert_eq!(stats.last_inference_ms.load(Ordering::Relaxed), 0);
        stats.record_image(
            Duration::from_micros(1),
            Duration::from_micros(2),
            Duration::from_micros(3),
        );
        assert_eq!(stats.images.load(Ordering::Relaxed), 1);
        assert_eq!(stats.queue.get(), (1, 2_000));
        assert!(stats.last_inference_ms.load(Ordering::Relaxed) > 1_700_000_000_000);
    }
}
