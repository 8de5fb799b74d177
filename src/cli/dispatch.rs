//! Running the subcommand the command line names.

use anyhow::{bail, Context as _};

use super::args::Command;
use super::bench::{run_bench_engine, run_bench_server};
use super::bench_args::BenchMode;
use super::classify::run_classify;
use super::convert::run_convert;
use super::info::run_info;
use super::serve::run_serve;

/// Run `command` (inside the Tokio runtime; `bench engine` moves to a blocking thread).
pub async fn run_command(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => run_serve(args).await,
        Command::Classify(args) => run_classify(args).await,
        Command::Info(args) => run_info(args).await,
        Command::Convert(args) => tokio::task::spawn_blocking(move || run_convert(args))
            .await
            .context("convert task")?,
        Command::Bench(args) => match args.mode {
            Some(BenchMode::Engine(args)) => {
                tokio::task::spawn_blocking(move || run_bench_engine(args))
                    .await
                    .context("engine benchmark task")?
            }
            Some(BenchMode::Server(args)) => run_bench_server(args).await,
            // `parse_command_line` gives the old form its subcommand.
            None => {
                bail!("bench needs a subcommand: engine or server (see swin-serve bench --help)")
            }
        },
    }
}
