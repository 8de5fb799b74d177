//! gRPC load benchmark: the real server in-process on 127.0.0.1:0 (random-weight SwinV2-T/8 @256),
//! `SWIN_LOAD_CLIENTS` concurrent clients sending `SWIN_LOAD_REQUESTS` Classify calls in all with a
//! 640×480 JPEG. Prints throughput, latency percentiles and the status codes seen.
//!
//! `cargo bench --bench grpc_load` (env: `SWIN_LOAD_INSTANCES` 1, `SWIN_LOAD_THREADS` 2,
//! `SWIN_LOAD_MAX_BATCH` 8, `SWIN_LOAD_CLIENTS` 16, `SWIN_LOAD_REQUESTS` 160).

mod common;
#[path = "../tests/common/test_server.rs"]
mod test_server;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::time::Instant;

use swin_serve::engine::cpu::CpuOptions;
use swin_serve::engine::BackendOptions;
use swin_serve::model::{SwinConfig, WeightsSource};
use swin_serve::proto;
use swin_serve::proto::classifier_client::ClassifierClient;
use swin_serve::server::ModelOptions;

use common::env_usize;
use test_server::TestServer;

fn jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_fn(640, 480, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x * y) % 251) as u8])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let instances = env_usize("SWIN_LOAD_INSTANCES", 1);
    let threads = env_usize("SWIN_LOAD_THREADS", 2);
    let max_batch = env_usize("SWIN_LOAD_MAX_BATCH", 8);
    let clients = env_usize("SWIN_LOAD_CLIENTS", 16).max(1);
    let requests = env_usize("SWIN_LOAD_REQUESTS", 160).max(clients);

    let mut cpu = CpuOptions::new(WeightsSource::Random {
        seed: 0,
        config: SwinConfig::tiny_window8_256(),
    });
    cpu.instances = instances;
    cpu.threads = threads;
    cpu.max_batch = max_batch;
    let (server, channel) = TestServer::builder()
        .model(ModelOptions::new(BackendOptions::Cpu(cpu)))
        .serving()
        .await;

    let image = jpeg();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut client = ClassifierClient::new(channel.clone());
        let image = image.clone();
        let share = requests / clients + usize::from(c < requests % clients);
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(share);
            for _ in 0..share {
                let t = Instant::now();
                let r = client
                    .classify(proto::ClassifyRequest {
                        image: image.clone(),
                        top_k: 5,
                        request_id: String::new(),
                    })
                    .await;
                let batch = r
                    .as_ref()
                    .ok()
                    .and_then(|r| r.get_ref().timing.as_ref().map(|t| t.batch_size));
                out.push((t.elapsed(), r.map(|_| ()).map_err(|s| s.code()), batch));
            }
            out
        }));
    }
    let mut latencies = Vec::new();
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    let mut batch_sum = 0u64;
    for t in tasks {
        for (lat, result, batch) in t.await.unwrap() {
            latencies.push(lat.as_secs_f64() * 1e3);
            batch_sum += u64::from(batch.unwrap_or(0));
            *codes
                .entry(match result {
                    Ok(()) => "OK".into(),
                    Err(code) => format!("{code:?}"),
                })
                .or_default() += 1;
        }
    }
    let wall = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    let ok = codes.get("OK").copied().unwrap_or(0);
    println!(
        "{{\"system\": \"swin-serve-grpc\", \"instances\": {instances}, \"threads\": {threads}, \"max_batch\": {max_batch}, \"clients\": {clients}, \"requests\": {}, \"img_per_s\": {:.2}, \"p50_ms\": {:.1}, \"p95_ms\": {:.1}, \"p99_ms\": {:.1}, \"mean_batch\": {:.2}, \"codes\": {:?}}}",
        latencies.len(),
        latencies.len() as f64 / wall,
        pct(0.5),
        pct(0.95),
        pct(0.99),
        batch_sum as f64 / ok.max(1) as f64,
        codes
    );
    server.stop().await;
}
