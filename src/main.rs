//! `swin-serve`: the gRPC server (`serve`), a small client (`classify`, `info`) and the
//! benchmarks (`bench engine`, `bench server`). The command line lives in [`swin_serve::cli`];
//! this parses it, sets up logs and traces, and runs the subcommand.

use std::time::Duration;

use anyhow::{Context, Result};
use swin_serve::cli;
use swin_serve::telemetry;

fn main() -> Result<()> {
    // Before anything else runs (it sets environment variables) and before parsing.
    let renamed_env = cli::apply_env_aliases();
    let cli = cli::parse_command_line(std::env::args_os(), |name| std::env::var_os(name))
        .unwrap_or_else(|e| e.exit());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    // The OTLP exporter's channel lives on this runtime (which outlives the flush below).
    let traces = match cli.otlp_endpoint() {
        Some(endpoint) => {
            let _runtime = runtime.enter();
            Some(telemetry::otlp_provider(endpoint).context("--otlp-endpoint")?)
        }
        None => None,
    };
    let telemetry = telemetry::init(cli.log_format, traces)?;
    cli::warn_deprecated(&renamed_env);
    if let (true, Some(endpoint)) = (telemetry.traces_enabled(), cli.otlp_endpoint()) {
        tracing::info!(endpoint = %endpoint, service = telemetry::SERVICE_NAME, "exporting traces over OTLP/gRPC");
    }
    let result = runtime.block_on(cli::run_command(cli.command));
    // Export the spans still buffered while the runtime (the exporter's channel) still runs.
    if let Err(e) = telemetry.shutdown() {
        tracing::warn!(error = %e, "traces not flushed");
    }
    // Don't wait for a model load or download still running on a blocking thread (e.g. SIGTERM
    // during the first download): the process is exiting.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}
