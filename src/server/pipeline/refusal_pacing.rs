//! Refusals at the headers answered at most `--max-refusal-rate` a second (default
//! [`DEFAULT_MAX_REFUSAL_RATE`]); more wait their turn, without reading anything, at most
//! [`MAX_HOLD`] and at most half the time left to the call's deadline.
//!
//! Why (issue 20, item 5): a refusal at the headers costs the server ~40–240 µs of CPU and the
//! caller about as much again, and callers that retry at once, without back-off, retry as fast as
//! they are answered. On the 2 vCPUs the engine shares with them, 64 such callers took 3,000–5,000
//! refusals a second and ~45% of the engine's throughput, however cheap each refusal was made
//! (AMD EPYC Zen 4 class, `benches/storm.sh`). Answered at a bounded rate, a storm costs the server
//! at most that rate × a refusal, whatever the callers do; a caller still learns at once while the
//! rate is under the bound (a burst of a quarter second's worth is answered without waiting), and
//! a waiting refusal holds only a timer and its stream (HTTP/2 flow control, or the socket
//! buffers, stop the body after its first window). At most [`MAX_HELD`] refusals wait at once; one
//! over that is answered at once. The in-flight cap (`--max-in-flight`) is not paced: it stays an
//! answer at once.
//!
//! The schedule is GCRA (a token bucket kept as one instant): each refusal moves the next free
//! answer time on by `1 / rate`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Default `--max-refusal-rate`: refusals answered a second before the rest wait their turn.
pub const DEFAULT_MAX_REFUSAL_RATE: u32 = 100;

/// Longest a refusal waits for its turn.
pub const MAX_HOLD: Duration = Duration::from_secs(1);

/// Most refusals waiting at once (each holds a stream, and over HTTP/2 up to one flow-control
/// window of its body, 64 KiB).
pub const MAX_HELD: usize = 256;

/// The pace of refusals.
#[derive(Debug)]
pub struct RefusalPacing {
    /// Time between two answers past the burst: `1 / rate`.
    interval: Duration,
    /// How far ahead of now the schedule may run before a refusal waits: the burst.
    burst: Duration,
    /// When the schedule's next answer falls (GCRA's theoretical arrival time).
    next: Mutex<Instant>,
    held: Arc<AtomicUsize>,
}

/// A refusal waiting its turn: counted among the held ones until dropped.
#[derive(Debug)]
pub struct HeldRefusal {
    /// When to answer it.
    pub until: Instant,
    held: Arc<AtomicUsize>,
}

impl Drop for HeldRefusal {
    fn drop(&mut self) {
        self.held.fetch_sub(1, Ordering::Relaxed);
    }
}

impl HeldRefusal {
    /// Wait until its turn.
    pub async fn wait(self) {
        tokio::time::sleep_until(self.until.into()).await;
    }
}

impl RefusalPacing {
    /// At most `rate` refusals a second (at least 1) past a burst of a quarter second's worth.
    pub fn new(rate: u32) -> Self {
        let rate = rate.max(1);
        let interval = Duration::from_secs(1) / rate;
        Self {
            interval,
            burst: interval * (rate / 4).max(1),
            next: Mutex::new(Instant::now()),
            held: Arc::default(),
        }
    }

    /// A refusal made at `now` for a call due by `deadline`: `None` to answer it at once, else
    /// the turn it waits for — never past `now + MAX_HOLD` nor past half the time left to its
    /// deadline.
    pub fn hold(&self, now: Instant, deadline: Option<Instant>) -> Option<HeldRefusal> {
        let turn = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let scheduled = (*next).max(now);
            if scheduled <= now + self.burst {
                *next = scheduled + self.interval;
                return None;
            }
            if self.held.load(Ordering::Relaxed) >= MAX_HELD {
                return None;
            }
            let turn = (scheduled - self.burst).min(now + MAX_HOLD);
            *next = (scheduled + self.interval).min(now + MAX_HOLD + self.burst);
            turn
        };
        let turn = match deadline {
            Some(d) => turn.min(now + d.saturating_duration_since(now) / 2),
            None => turn,
        };
        if turn <= now {
            return None;
        }
        self.held.fetch_add(1, Ordering::Relaxed);
        Some(HeldRefusal {
            until: turn,
            held: Arc::clone(&self.held),
        })
    }

    /// Refusals waiting now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_answered_at_once_then_refusals_keep_the_rate() {
        let pacing = RefusalPacing::new(100); // 10 ms apart, burst of 25
        let now = Instant::now();
        let at_once = (0..26).filter(|_| pacing.hold(now, None).is_none()).count();
        assert_eq!(
            at_once, 26,
            "the burst (25 past the first) waits for nothing"
        );
        let held: Vec<_> = (0..10).map(|_| pacing.hold(now, None).unwrap()).collect();
        for (i, h) in held.iter().enumerate() {
            let expected = now + Duration::from_millis(10 * (i as u64 + 1));
            let off = h.until.max(expected) - h.until.min(expected);
            assert!(off < Duration::from_micros(100), "turn {i} off by {off:?}");
        }
        assert_eq!(pacing.held(), 10);
        drop(held);
        assert_eq!(pacing.held(), 0);
    }

    #[test]
    fn the_rate_is_regained_after_a_quiet_spell() {
        let pacing = RefusalPacing::new(100);
        let now = Instant::now();
        let _held: Vec<_> = (0..60).filter_map(|_| pacing.hold(now, None)).collect();
        let later = now + Duration::from_secs(2);
        assert!(pacing.hold(later, None).is_none());
    }

    #[test]
    fn no_wait_is_longer_than_the_hold_or_half_the_deadline() {
        let pacing = RefusalPacing::new(1); // 1 s apart, a burst of one
        let now = Instant::now();
        assert!(pacing.hold(now, None).is_none());
        assert!(pacing.hold(now, None).is_none());
        let capped = pacing.hold(now, None).expect("waits");
        assert_eq!(capped.until, now + MAX_HOLD);
        let due = now + Duration::from_millis(300);
        let halved = pacing.hold(now, Some(due)).expect("waits");
        assert_eq!(halved.until, now + Duration::from_millis(150));
        // The schedule runs at most MAX_HOLD (+ the burst) ahead: later refusals are not pushed
        // out further and further.
        for _ in 0..100 {
            let h = pacing.hold(now, None).expect("waits");
            assert!(h.until <= now + MAX_HOLD);
        }
        assert!(
            pacing.hold(now, Some(now)).is_none(),
            "expired: answered at once"
        );
    }

    #[test]
    fn at_most_max_held_wait() {
        let pacing = RefusalPacing::new(1);
        let now = Instant::now();
        let held: Vec<_> = (0..MAX_HELD + 10)
            .filter_map(|_| pacing.hold(now, None))
            .collect();
        assert_eq!(held.len(), MAX_HELD);
        assert!(pacing.hold(now, None).is_none());
    }
}
