//! CPU engine benchmark: random-weight SwinV2-T/8 @256 (`swinv2_tiny_patch4_window8_256`), batch-1
//! latency (median of N runs) and batch-8 throughput, on one engine instance.
//!
//! `cargo bench --bench engine` (env: `SWIN_BENCH_THREADS`, default 2; `SWIN_BENCH_RUNS`, default 20).
//! Compare with ONNX Runtime / PyTorch measured in the same sitting:
//! `python ../shared/bench/peers.py --threads 2 --official PATH/swin_transformer_v2.py --runs 10`.

mod common;

use std::sync::Arc;
use std::time::Instant;

use swin_serve::engine::cpu::{CpuEngine, SwinV2Model};
use swin_serve::engine::Engine;
use swin_serve::model::{SwinV2Config, Weights};

use common::env_usize;

fn stats(mut ms: Vec<f64>) -> (f64, f64, f64) {
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[0], ms[ms.len() - 1])
}

fn main() {
    let threads = env_usize("SWIN_BENCH_THREADS", 2);
    let runs = env_usize("SWIN_BENCH_RUNS", 20).max(1);
    let config = SwinV2Config::tiny_window8_256();
    let t = Instant::now();
    let weights = Weights::random(&config, 0);
    let model = Arc::new(SwinV2Model::new(&weights, &config).expect("model"));
    drop(weights);
    println!(
        "model {} ({} parameters), loaded and folded in {:.0} ms",
        config.name(),
        model.num_parameters(),
        t.elapsed().as_secs_f64() * 1e3
    );
    let max_batch = 8;
    let mut engine = CpuEngine::new(model, threads, max_batch).expect("engine");
    println!("engine: {:?}", engine.describe());

    let per_image = 3 * config.img_size * config.img_size;
    // Deterministic pseudo-normal-ish input in [-2, 2].
    let input: Vec<f32> = (0..max_batch * per_image)
        .map(|i| {
            (((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f32 / (1u64 << 24) as f32)
                * 4.0
                - 2.0
        })
        .collect();
    let mut logits = vec![0.0f32; max_batch * config.num_classes];

    for &batch in &[1usize, 8] {
        let n = if batch == 1 { runs } else { (runs / 2).max(3) };
        for _ in 0..3 {
            engine
                .infer(
                    &input[..batch * per_image],
                    batch,
                    &mut logits[..batch * config.num_classes],
                )
                .unwrap();
        }
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            engine
                .infer(
                    &input[..batch * per_image],
                    batch,
                    &mut logits[..batch * config.num_classes],
                )
                .unwrap();
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let (med, min, max) = stats(times);
        println!(
            "{{\"system\": \"swin-serve-cpu\", \"threads\": {threads}, \"batch\": {batch}, \"runs\": {n}, \"median_ms\": {med:.2}, \"min_ms\": {min:.2}, \"max_ms\": {max:.2}, \"img_per_s\": {:.3}}}",
            batch as f64 * 1e3 / med
        );
    }
    // Where the time goes: the fastest of a few profiled batch-1 passes.
    let profile = (0..5)
        .map(|_| {
            engine
                .profile(&input[..per_image], 1, &mut logits[..config.num_classes])
                .unwrap()
        })
        .min_by(|a, b| total(a).total_cmp(&total(b)))
        .unwrap();
    println!(
        "batch-1 profile, ms per operation: {}",
        fmt(&profile.by_operation())
    );
    let stages: Vec<(String, f64)> = profile
        .by_stage()
        .into_iter()
        .map(|(s, ms)| (s.map_or("embed/head".into(), |s| format!("stage {s}")), ms))
        .collect();
    println!("batch-1 profile, ms per stage: {}", fmt(&stages));
    assert!(logits.iter().all(|v| v.is_finite()), "non-finite logits");
}

fn total(p: &swin_serve::engine::cpu::Profile) -> f64 {
    p.entries.iter().map(|e| e.2).sum()
}

fn fmt<S: std::fmt::Display>(entries: &[(S, f64)]) -> String {
    entries
        .iter()
        .map(|(w, ms)| format!("{w} {ms:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}
