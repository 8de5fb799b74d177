//! `swin-serve bench engine` and `swin-serve bench server`: run [`crate::client::engine_bench`]
//! or [`crate::client::load_generator`] as the flags say and print the tables.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context as _};

use super::bench_args::{
    BenchEngineArgs, BenchServerArgs, DEFAULT_BENCH_REQUESTS, DEFAULT_BENCH_WARMUP_CALLS,
};
use super::output::{
    engine_report_text, load_table_header, load_table_row, print_stdout, printable,
};
use crate::client::connection::{connect_channel, read_bearer_token, Bearer, ConnectionOptions};
use crate::client::engine_bench::{self, EngineBenchOptions};
use crate::client::load_generator::{self, LoadOptions, Rpc, Stop};
use crate::engine::cpu::default_threads;
use crate::model::formats::timm::architecture_config;
use crate::model::{ConfigHints, SwinConfig, WeightsSource};

/// `bench engine`: the local CPU engine (blocking; run it off the async threads).
pub fn run_bench_engine(args: BenchEngineArgs) -> anyhow::Result<()> {
    let source = match (&args.model, args.random_weights) {
        (Some(path), _) => WeightsSource::from_model_arg(path)?,
        (None, seed) => {
            let mut config = match &args.arch {
                Some(name) => architecture_config(name).map_err(anyhow::Error::msg)?,
                None => SwinConfig::tiny_window8_256(),
            };
            if let Some(s) = args.img_size {
                config.img_size = s;
            }
            if let Some(w) = args.window_size {
                config.window_size = w;
            }
            WeightsSource::Random {
                seed: seed.unwrap_or(0),
                config,
            }
        }
    };
    let hints = ConfigHints {
        img_size: args.img_size,
        window_size: args.window_size,
        ..Default::default()
    };
    let opts = EngineBenchOptions {
        batches: if args.batch.is_empty() {
            engine_bench::DEFAULT_BATCHES.to_vec()
        } else {
            args.batch.clone()
        },
        threads: args.threads.unwrap_or_else(default_threads),
        runs: args.runs.unwrap_or(engine_bench::DEFAULT_RUNS),
        warmup: args.warmup.unwrap_or(engine_bench::DEFAULT_WARMUP),
        profile: args.profile,
        progress: true,
    };
    let started = Instant::now();
    let model = engine_bench::load_bench_model(&source, &hints, args.precision)?;
    eprintln!(
        "{} ({}, {:.2} GFLOP/image), {} parameters, loaded in {:.1} s",
        model.config.name(),
        source.describe(),
        model.config.flops_per_image() as f64 / 1e9,
        model.num_parameters(),
        started.elapsed().as_secs_f64()
    );
    let report = engine_bench::run(&model, &opts)?;
    print_stdout(&engine_report_text(&report, args.json));
    Ok(())
}

/// `bench server`: closed- or open-loop load on a running server, one run per RPC and
/// concurrency, one table line each. Fails when any call failed (after all runs).
pub async fn run_bench_server(args: BenchServerArgs) -> anyhow::Result<()> {
    let rpcs = if args.rpc.is_empty() {
        vec![Rpc::Classify]
    } else {
        args.rpc.clone()
    };
    let concurrencies = if args.concurrency.is_empty() {
        vec![1]
    } else {
        args.concurrency.clone()
    };
    let image = match &args.image {
        Some(path) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        None => load_generator::default_image(),
    };
    let image = Arc::new(image);
    let stop = match args.duration {
        None => Stop::Requests(args.requests.unwrap_or(DEFAULT_BENCH_REQUESTS)),
        Some(seconds) => Stop::Duration(seconds.duration()),
    };
    let connection = ConnectionOptions::from(&args.connection);
    // The gRPC channel only when a gRPC method is driven (the HTTP port may be all there is).
    let grpc = if rpcs.iter().any(|r| !r.is_http()) {
        Some(connect_channel(&connection).await?)
    } else {
        None
    };
    // The token file is read once: by the gRPC connection when there is one.
    let token = match (&grpc, &connection.token_file) {
        (Some((_, token)), _) => token.clone(),
        (None, Some(path)) => read_bearer_token(path)?,
        (None, None) => Bearer(None),
    };
    let http_url = args
        .http_server
        .clone()
        .unwrap_or_else(|| connection.url().to_string());
    print_stdout(&load_table_header());
    let mut failed = false;
    for &concurrency in &concurrencies {
        for &rpc in &rpcs {
            let options = LoadOptions {
                rpc,
                concurrency,
                stop,
                warmup: args.warmup.unwrap_or(DEFAULT_BENCH_WARMUP_CALLS),
                image: Arc::clone(&image),
                progress: true,
                rate: args.rate,
            };
            eprintln!(
                "running {} at concurrency {concurrency}{} ({})",
                rpc.name(),
                args.rate
                    .map_or(String::new(), |r| format!(", {r} calls/s open loop")),
                match stop {
                    Stop::Requests(n) => format!("{n} calls"),
                    Stop::Duration(d) => format!("{:.0} s", d.as_secs_f64()),
                }
            );
            let report = match &grpc {
                _ if rpc.is_lean() => {
                    let url = if rpc.is_http() {
                        http_url.as_str()
                    } else {
                        connection.url()
                    };
                    load_generator::run_lean(url, &token, &options).await?
                }
                Some((channel, token)) if !rpc.is_http() => {
                    load_generator::run(channel.clone(), token.clone(), &options).await?
                }
                _ => load_generator::run_http(&http_url, &token, &options).await?,
            };
            print_stdout(&load_table_row(&report));
            let refusals: usize = report
                .codes
                .iter()
                .filter(|(code, _)| is_capacity_refusal(code))
                .map(|(_, n)| n)
                .sum();
            let counted = if args.expect_refusals {
                report.errors - refusals
            } else {
                report.errors
            };
            if args.expect_refusals && refusals > 0 {
                eprintln!(
                    "{}: {refusals} calls refused for capacity ({:.0}/s)",
                    rpc.name(),
                    refusals as f64 / report.wall.as_secs_f64().max(f64::MIN_POSITIVE)
                );
            }
            if let Some(e) = &report.first_error {
                eprintln!("{}: first error: {}", rpc.name(), printable(e));
            }
            if counted > 0 {
                failed = true;
            }
        }
    }
    if failed {
        bail!("some calls failed");
    }
    Ok(())
}

/// Whether a failure (a [`load_generator::LoadReport`] code) is a refusal for capacity, which
/// `--expect-refusals` accepts.
fn is_capacity_refusal(code: &str) -> bool {
    matches!(
        code,
        "Unavailable" | "ResourceExhausted" | "HTTP 503" | "HTTP 429"
    )
}
