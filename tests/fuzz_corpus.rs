//! Replays the committed fuzz corpora through the fuzz targets' own code (`fuzz/src/harness.rs`,
//! included here), so that `cargo test` keeps every seed and every past finding passing without
//! AFL++: each file of `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` must finish within
//! [`PER_INPUT`] without panicking (or failing one of the harness's checks), under the same
//! allocation guard as the fuzzers (any single allocation over 256 MiB aborts).
//! See `fuzz/README.md`.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[path = "../fuzz/src/alloc_guard.rs"]
mod alloc_guard;
#[path = "../fuzz/src/harness.rs"]
mod harness;

#[global_allocator]
static GUARD: alloc_guard::Guard = alloc_guard::Guard;

/// Longest one input may take (the fuzzers run each in well under a second).
const PER_INPUT: Duration = Duration::from_secs(10);

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Run `data` through `target` on its own thread; `Err` says why it failed.
fn replay(target: &'static str, data: Vec<u8>) -> Result<Duration, String> {
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    std::thread::Builder::new()
        .name(format!("replay-{target}"))
        .spawn(move || {
            let outcome = std::panic::catch_unwind(|| harness::run_target(target, &data));
            let _ = tx.send(outcome.is_ok());
        })
        .expect("spawn");
    match rx.recv_timeout(PER_INPUT) {
        Ok(true) => Ok(started.elapsed()),
        Ok(false) => Err("panicked (message above)".into()),
        // The thread is left running; the test fails.
        Err(_) => Err(format!("still running after {PER_INPUT:?}")),
    }
}

#[test]
fn every_corpus_and_regression_input_runs_without_panic_in_time() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut failures = Vec::new();
    for target in harness::TARGETS {
        let seeds = files(&fuzz.join("corpus").join(target));
        assert!(!seeds.is_empty(), "no corpus for fuzz target {target}");
        let regressions = files(&fuzz.join("regressions").join(target));
        let mut slowest = (Duration::ZERO, PathBuf::new());
        for path in seeds.iter().chain(&regressions) {
            let data = std::fs::read(path).expect("read corpus file");
            match replay(target, data) {
                Ok(took) if took > slowest.0 => slowest = (took, path.clone()),
                Ok(_) => {}
                Err(why) => failures.push(format!("{}: {why}", path.display())),
            }
        }
        eprintln!(
            "{target}: {} corpus + {} regression inputs, slowest {:?} ({})",
            seeds.len(),
            regressions.len(),
            slowest.0,
            slowest.1.display()
        );
    }
    assert!(
        failures.is_empty(),
        "fuzz inputs failed:\n{}",
        failures.join("\n")
    );
}
