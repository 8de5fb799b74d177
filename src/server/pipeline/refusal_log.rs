//! Access lines for refusals for capacity (UNAVAILABLE, RESOURCE_EXHAUSTED; HTTP 503 and 429): at
//! most one a [`REFUSAL_LOG_INTERVAL`]. Under a refusal storm (issue 20, item 5) a line per refused
//! call was 1,600 lines a second on stderr and a large part of what a refusal cost the server (AMD
//! EPYC Zen 4 class, 2 vCPU, gRPC: ~155 µs of CPU per refusal with a line each, ~123 µs with one a
//! second, ~88 µs with the access log off). The line that is written says how many were left out
//! since the previous one (`refusals_not_logged`); metrics and statistics still count every call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// At most one refusal line per this long.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// When the next refusal line may be written, and how many refusals went unlogged since the last.
#[derive(Debug)]
pub struct RefusalLog {
    epoch: Instant,
    /// Nanoseconds after `epoch` from which the next line may be written.
    next_line_ns: AtomicU64,
    not_logged: AtomicU64,
}

impl Default for RefusalLog {
    fn default() -> Self {
        Self::new(Instant::now())
    }
}

impl RefusalLog {
    /// A log whose first refusal (at or after `epoch`) gets its line.
    pub fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            next_line_ns: AtomicU64::new(0),
            not_logged: AtomicU64::new(0),
        }
    }

    /// A refusal at `now`: `Some(n)` if it gets its line (with `n` refusals left unlogged since
    /// the previous line), `None` if it is only counted.
    pub fn refusal(&self, now: Instant) -> Option<u64> {
        let now_ns =
            u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        let next = self.next_line_ns.load(Ordering::Relaxed);
        let interval = REFUSAL_LOG_INTERVAL.as_nanos() as u64;
        if now_ns >= next
            && self
                .next_line_ns
                .compare_exchange(
                    next,
                    now_ns.saturating_add(interval),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            Some(self.not_logged.swap(0, Ordering::Relaxed))
        } else {
            self.not_logged.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_carrying_the_count_left_out() {
        let t0 = Instant::now();
        let log = RefusalLog::new(t0);
        assert_eq!(log.refusal(t0), Some(0), "the first refusal is logged");
        for i in 1..=5 {
            assert_eq!(log.refusal(t0 + Duration::from_millis(100 * i)), None);
        }
        // Just before the interval is over: still counted only.
        assert_eq!(
            log.refusal(t0 + REFUSAL_LOG_INTERVAL - Duration::from_nanos(1)),
            None
        );
        assert_eq!(log.refusal(t0 + REFUSAL_LOG_INTERVAL), Some(6));
        // The interval restarts at the line just written, and the count at 0.
        assert_eq!(
            log.refusal(t0 + REFUSAL_LOG_INTERVAL + Duration::from_millis(1)),
            None
        );
        assert_eq!(log.refusal(t0 + 3 * REFUSAL_LOG_INTERVAL), Some(1));
    }

    #[test]
    fn threads_racing_write_one_line_and_lose_no_count() {
        let t0 = Instant::now();
        let log = std::sync::Arc::new(RefusalLog::new(t0));
        let lines: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let log = log.clone();
                    s.spawn(move || {
                        (0..1000)
                            .filter(|_| log.refusal(t0 + Duration::from_millis(10)).is_some())
                            .count() as u64
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(
            lines, 1,
            "one line in the interval, whichever thread wrote it"
        );
        assert_eq!(
            log.refusal(t0 + 2 * REFUSAL_LOG_INTERVAL),
            Some(3999),
            "every other refusal counted"
        );
    }
}
