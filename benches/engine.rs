//! CPU engine benchmark: random-weight SwinV2-T/8 @256 (`swinv2_tiny_patch4_window8_256`), batch-1
//! latency and batch-8 throughput (median of N runs), and the batch-1 profile, on one engine
//! instance. The same code as `swin-serve bench` without `--server` (`client::engine_bench`).
//!
//! `cargo bench --bench engine` (env: `SWIN_BENCH_THREADS`, default 2; `SWIN_BENCH_RUNS`, default 20).
//! Compare with ONNX Runtime / PyTorch measured in the same sitting: `benches/compare.sh`.

mod common;

use std::time::Instant;

use swin_serve::client::engine_bench::{self, EngineBenchOptions};
use swin_serve::model::{ConfigHints, SwinConfig, WeightsSource};

use common::env_usize;

fn main() {
    let threads = env_usize("SWIN_BENCH_THREADS", 2);
    let runs = env_usize("SWIN_BENCH_RUNS", 20).max(1);
    let t = Instant::now();
    let source = WeightsSource::Random {
        seed: 0,
        config: SwinConfig::tiny_window8_256(),
    };
    let model =
        engine_bench::load_bench_model(&source, &ConfigHints::default(), Default::default())
            .expect("model");
    println!(
        "model {} ({} parameters, {:.2} GFLOP/image), loaded and folded in {:.0} ms",
        model.config.name(),
        model.num_parameters(),
        model.config.flops_per_image() as f64 / 1e9,
        t.elapsed().as_secs_f64() * 1e3
    );
    let opts = EngineBenchOptions {
        batches: vec![1, 8],
        threads,
        runs,
        warmup: engine_bench::DEFAULT_WARMUP,
        profile: false,
        progress: false,
    };
    let report = engine_bench::run(&model, &opts).expect("benchmark");
    for figure in &report.figures {
        println!("{}", figure.to_json());
    }
    print!("{}", engine_bench::format_table(&report.figures));
    // Where the time goes at batch 1.
    let profiled = EngineBenchOptions {
        batches: vec![1],
        runs: 1,
        warmup: 1,
        profile: true,
        ..opts
    };
    let report = engine_bench::run(&model, &profiled).expect("profile");
    for profile in &report.profiles {
        println!("{}", profile.describe());
    }
}
