//! Helpers shared by the benchmarks (`mod common;`; not a bench target: `autobenches = false`).

/// The value of the environment variable `name` as a `usize`; `default` when it is unset or not a
/// number.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
