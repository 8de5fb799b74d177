//! Fuzz targets of swin-serve, for AFL++ (`cargo afl`): see `fuzz/README.md`.
//!
//! [`harness`] holds the targets' bodies; the binaries in `src/bin/` feed them AFL's inputs and the
//! main crate's `tests/fuzz_corpus.rs` replays the committed corpora through the same file.

pub mod alloc_guard;
pub mod harness;

/// One rayon thread (the checkpoint reader converts tensors in parallel): executions stay
/// deterministic and cheap, and the fuzzer keeps to one core. Call before anything runs.
pub fn single_threaded() {
    std::env::set_var("RAYON_NUM_THREADS", "1");
}
