//! `swin-serve convert SRC DST.safetensors`: any checkpoint `serve --model` accepts, written in the
//! official layout with its configuration, labels and preprocessing in the safetensors metadata.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::Args;

use crate::model::official_safetensors::write_official_safetensors;
use crate::model::{ConfigHints, WeightsSource};

/// `convert`.
#[derive(Args, Debug, Clone)]
pub struct ConvertArgs {
    /// What to convert: any `serve --model` path (a checkpoint file, a Hugging Face or timm
    /// directory, a directory holding one checkpoint).
    pub source: PathBuf,
    /// The `.safetensors` file to write.
    pub destination: PathBuf,
    /// Image size, when the source cannot say it.
    #[arg(long)]
    pub img_size: Option<usize>,
    /// Window size, when the source cannot say it.
    #[arg(long)]
    pub window_size: Option<usize>,
    /// Replace the destination if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Run `convert` (blocking).
pub fn run_convert(args: ConvertArgs) -> anyhow::Result<()> {
    if args.destination.exists() && !args.force {
        bail!(
            "{} exists: pass --force to replace it",
            args.destination.display()
        );
    }
    let hints = ConfigHints {
        img_size: args.img_size,
        window_size: args.window_size,
        ..Default::default()
    };
    let source = WeightsSource::from_model_arg(&args.source)?;
    let (weights, config) = source
        .load(&hints)
        .with_context(|| format!("reading {}", args.source.display()))?;
    let tensors = write_official_safetensors(&weights, &config, &args.destination)
        .with_context(|| format!("writing {}", args.destination.display()))?;
    println!(
        "wrote {} ({}, {tensors} tensors, {} parameters) from {} ({})",
        args.destination.display(),
        config.name(),
        weights.num_parameters(),
        args.source.display(),
        if weights.metadata.format.is_empty() {
            "checkpoint"
        } else {
            &weights.metadata.format
        }
    );
    Ok(())
}
