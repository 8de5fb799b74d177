//! The global memory budget (`--memory-budget`): one byte counter that every image draws from
//! *before* any work is done on it, with try-acquire semantics — a request that does not fit is
//! answered RESOURCE_EXHAUSTED at once, it never waits.
//!
//! What an encoded image is charged (see [`crate::server::pipeline::Pipeline::classify_image`]):
//! its encoded bytes plus [`crate::preprocess::working_set()`]'s peak (decoder output at its
//! native layout, the decoder's buffers, the RGB copy, the resize buffers, the output tensor),
//! taken after its header was read and before it takes an engine-queue slot or a decode permit. When preprocessing ends,
//! the charge shrinks to the tensor (`3 · crop² · 4` bytes), which is held until the engine has
//! answered for the image. A preprocessed tensor (OIP typed or raw inputs) is charged its size for
//! the same time. Every charge is given back when its call ends, however it ends.
//!
//! The default (`auto`) is derived once the model is loaded: half of what is left of the memory
//! limit after the model — `(limit − resident) / 2`, where `limit` is the cgroup's memory limit
//! (v2 `memory.max`, v1 `memory.limit_in_bytes`) when one is set below the machine's RAM, else
//! `MemTotal` from `/proc/meminfo`, and `resident` is the process's `VmRSS` with the model loaded.
//! The other half is headroom for what the budget does not count: a received message while tonic
//! decodes it (request messages are charged their declared length while they arrive, see
//! [`crate::server::layers::message_arrival`]), HTTP/2 buffers, allocator slack, thread stacks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::server::metrics::names;

/// `--memory-budget` as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BudgetSetting {
    /// Derived from the memory limit once the model is loaded (the default).
    #[default]
    Auto,
    /// No limit (`0` or `off`): charges are still counted for the metrics.
    Off,
    /// This many bytes.
    Bytes(u64),
}

/// Why a `--memory-budget` value cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid memory size {0:?}: expected bytes, optionally with a suffix (K, M, G, T = 1000^n; KiB, MiB, GiB, TiB = 1024^n), e.g. 512MiB, 2GiB, 1.5G; or auto, or 0/off")]
pub struct ParseSizeError(pub String);

impl std::str::FromStr for BudgetSetting {
    type Err = ParseSizeError;

    fn from_str(text: &str) -> Result<Self, ParseSizeError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "off" => Ok(Self::Off),
            _ => match parse_size(text)? {
                0 => Ok(Self::Off),
                n => Ok(Self::Bytes(n)),
            },
        }
    }
}

/// Bytes from `512`, `512MiB`, `2GiB`, `1.5G`, `64k`, `100MB` (case-insensitive; `K/M/G/T`
/// with or without `B` are powers of 1000, `Ki/Mi/Gi/Ti` with or without `B` powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, ParseSizeError> {
    let err = || ParseSizeError(text.to_string());
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, suffix) = t.split_at(split);
    let suffix = suffix.trim().to_ascii_lowercase();
    let unit: u64 = match suffix.trim_end_matches('b') {
        "" if suffix.is_empty() || suffix == "b" => 1,
        "k" => 1000,
        "m" => 1000u64.pow(2),
        "g" => 1000u64.pow(3),
        "t" => 1000u64.pow(4),
        "ki" => 1 << 10,
        "mi" => 1 << 20,
        "gi" => 1 << 30,
        "ti" => 1 << 40,
        _ => return Err(err()),
    };
    if number.is_empty() || number.matches('.').count() > 1 {
        return Err(err());
    }
    if number.contains('.') {
        let value: f64 = number.parse().map_err(|_| err())?;
        let bytes = (value * unit as f64).round();
        if !bytes.is_finite() || bytes >= u64::MAX as f64 {
            return Err(err());
        }
        Ok(bytes as u64)
    } else {
        let value: u64 = number.parse().map_err(|_| err())?;
        value.checked_mul(unit).ok_or_else(err)
    }
}

/// Where the budget in force came from (logged at startup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetOrigin {
    /// `--memory-budget BYTES`.
    Flag,
    /// `--memory-budget 0`/`off`.
    Off,
    /// Half of the cgroup limit left after the model.
    Cgroup { limit: u64, resident: u64 },
    /// Half of the RAM left after the model.
    Ram { total: u64, resident: u64 },
    /// Nothing could be read: no limit.
    Unknown,
}

impl std::fmt::Display for BudgetOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Flag => write!(f, "--memory-budget"),
            Self::Off => write!(f, "--memory-budget off: no limit"),
            Self::Cgroup { limit, resident } => write!(
                f,
                "half of the cgroup memory limit {limit} bytes less the model's resident {resident} bytes"
            ),
            Self::Ram { total, resident } => write!(
                f,
                "half of MemTotal {total} bytes less the model's resident {resident} bytes (no cgroup limit)"
            ),
            Self::Unknown => write!(f, "no memory limit could be read: no limit"),
        }
    }
}

/// Fraction of the memory left after the model that the default budget takes: 1/2.
const DEFAULT_SHARE_DIVISOR: u64 = 2;

/// The cgroup memory limit (v2, then v1), if one is set: "max", unreadable, or a value at or above
/// `ram` (v1's "unlimited" is a huge number) counts as none.
pub fn cgroup_limit(ram: Option<u64>) -> Option<u64> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let value = read("/sys/fs/cgroup/memory.max")
        .or_else(|| read("/sys/fs/cgroup/memory/memory.limit_in_bytes"))?;
    let limit: u64 = value.trim().parse().ok()?;
    match ram {
        Some(ram) if limit >= ram => None,
        _ if limit >= 1 << 60 => None,
        _ => Some(limit),
    }
}

/// A `kB` field of a `/proc` file such as `MemTotal:` of `/proc/meminfo` or `VmRSS:` of
/// `/proc/self/status`, in bytes.
pub fn proc_kb_field(path: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// The budget for `setting`, with the process's current resident size taken as the model's
/// (call it once the model is loaded).
pub fn resolve(setting: BudgetSetting) -> (Option<u64>, BudgetOrigin) {
    match setting {
        BudgetSetting::Bytes(n) => (Some(n), BudgetOrigin::Flag),
        BudgetSetting::Off => (None, BudgetOrigin::Off),
        BudgetSetting::Auto => {
            let resident = proc_kb_field("/proc/self/status", "VmRSS:").unwrap_or(0);
            let ram = proc_kb_field("/proc/meminfo", "MemTotal:");
            let share =
                |limit: u64| (limit.saturating_sub(resident) / DEFAULT_SHARE_DIVISOR).max(1);
            match (cgroup_limit(ram), ram) {
                (Some(limit), _) => (Some(share(limit)), BudgetOrigin::Cgroup { limit, resident }),
                (None, Some(total)) => (Some(share(total)), BudgetOrigin::Ram { total, resident }),
                (None, None) => (None, BudgetOrigin::Unknown),
            }
        }
    }
}

/// A charge refused: what it needed and what the budget held then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("server memory budget exhausted: request needs {needed} bytes, {in_use} of {limit} in use")]
pub struct BudgetExhausted {
    pub needed: u64,
    pub in_use: u64,
    pub limit: u64,
}

/// The budget: bytes in use, the limit (`u64::MAX` when off or not yet known) and the highest
/// use seen.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: AtomicU64,
    in_use: AtomicU64,
    peak: AtomicU64,
}

impl MemoryBudget {
    /// A budget of `limit` bytes (`None`: no limit).
    pub fn new(limit: Option<u64>) -> Arc<Self> {
        let budget = Arc::new(Self {
            limit: AtomicU64::new(u64::MAX),
            in_use: AtomicU64::new(0),
            peak: AtomicU64::new(0),
        });
        budget.set_limit(limit);
        budget
    }

    /// Change the limit (`None`: no limit); charges already taken stay.
    pub fn set_limit(&self, limit: Option<u64>) {
        let limit = limit.unwrap_or(u64::MAX);
        self.limit.store(limit, Ordering::Relaxed);
        if limit != u64::MAX {
            metrics::gauge!(names::MEMORY_BUDGET_BYTES).set(limit as f64);
        }
    }

    /// The limit (`None`: no limit).
    pub fn limit(&self) -> Option<u64> {
        Some(self.limit.load(Ordering::Relaxed)).filter(|&l| l != u64::MAX)
    }

    /// Bytes charged now.
    pub fn in_use(&self) -> u64 {
        self.in_use.load(Ordering::Relaxed)
    }

    /// The most bytes ever charged at once.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Charge `bytes` if they fit, else refuse at once.
    pub fn try_acquire(self: &Arc<Self>, bytes: u64) -> Result<BudgetGuard, BudgetExhausted> {
        let limit = self.limit.load(Ordering::Relaxed);
        let mut current = self.in_use.load(Ordering::Relaxed);
        loop {
            let after = current.saturating_add(bytes);
            if after > limit {
                return Err(BudgetExhausted {
                    needed: bytes,
                    in_use: current,
                    limit,
                });
            }
            match self.in_use.compare_exchange_weak(
                current,
                after,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    if self.peak.fetch_max(after, Ordering::Relaxed) < after {
                        metrics::gauge!(names::MEMORY_BUDGET_PEAK_BYTES).set(after as f64);
                    }
                    metrics::gauge!(names::MEMORY_BUDGET_IN_USE_BYTES).increment(bytes as f64);
                    return Ok(BudgetGuard {
                        budget: Arc::clone(self),
                        bytes,
                    });
                }
                Err(now) => current = now,
            }
        }
    }

    fn release(&self, bytes: u64) {
        if bytes > 0 {
            self.in_use.fetch_sub(bytes, Ordering::AcqRel);
            metrics::gauge!(names::MEMORY_BUDGET_IN_USE_BYTES).decrement(bytes as f64);
        }
    }
}

/// A charge on the budget, given back when dropped.
#[derive(Debug)]
pub struct BudgetGuard {
    budget: Arc<MemoryBudget>,
    bytes: u64,
}

impl BudgetGuard {
    /// Bytes this guard holds.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Give back all but `bytes` (no-op when it holds no more than that).
    pub fn shrink_to(&mut self, bytes: u64) {
        if bytes < self.bytes {
            self.budget.release(self.bytes - bytes);
            self.bytes = bytes;
        }
    }
}

impl Drop for BudgetGuard {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_si_and_binary_suffixes() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("2Gi"), Ok(2 << 30));
        assert_eq!(parse_size("1.5G"), Ok(1_500_000_000));
        assert_eq!(parse_size("64k"), Ok(64_000));
        assert_eq!(parse_size("100MB"), Ok(100_000_000));
        assert_eq!(parse_size(" 7 b "), Ok(7));
        for bad in [
            "",
            "MiB",
            "1.2.3G",
            "12X",
            "-5",
            "99999999999999999999T",
            "1e3",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!("auto".parse(), Ok(BudgetSetting::Auto));
        assert_eq!("0".parse(), Ok(BudgetSetting::Off));
        assert_eq!("OFF".parse(), Ok(BudgetSetting::Off));
        assert_eq!("1KiB".parse(), Ok(BudgetSetting::Bytes(1024)));
    }

    #[test]
    fn charges_fit_or_are_refused_at_once_and_go_back_on_drop() {
        let budget = MemoryBudget::new(Some(100));
        let a = budget.try_acquire(60).unwrap();
        let err = budget.try_acquire(50).unwrap_err();
        assert_eq!(
            err,
            BudgetExhausted {
                needed: 50,
                in_use: 60,
                limit: 100
            }
        );
        assert_eq!(
            err.to_string(),
            "server memory budget exhausted: request needs 50 bytes, 60 of 100 in use"
        );
        let mut b = budget.try_acquire(40).unwrap();
        assert_eq!(budget.in_use(), 100);
        b.shrink_to(10);
        assert_eq!(budget.in_use(), 70);
        drop(a);
        drop(b);
        assert_eq!(budget.in_use(), 0);
        assert_eq!(budget.peak(), 100);
        // Never fits: refused, not waited for.
        assert!(budget.try_acquire(101).is_err());
        let unlimited = MemoryBudget::new(None);
        assert!(unlimited.try_acquire(u64::MAX / 2).is_ok());
    }

    #[test]
    fn the_default_is_half_of_what_is_left_after_the_model() {
        let (limit, origin) = resolve(BudgetSetting::Auto);
        match origin {
            BudgetOrigin::Cgroup { limit: l, resident }
            | BudgetOrigin::Ram { total: l, resident } => {
                assert_eq!(limit, Some((l.saturating_sub(resident) / 2).max(1)));
            }
            BudgetOrigin::Unknown => assert_eq!(limit, None),
            other => panic!("{other:?}"),
        }
        assert_eq!(resolve(BudgetSetting::Off).0, None);
        assert_eq!(
            resolve(BudgetSetting::Bytes(5)),
            (Some(5), BudgetOrigin::Flag)
        );
    }
}
